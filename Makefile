# The two README commands: `make demo` and `make test`. Both set up the machine first.
PYTHON ?= python3
export OMPI_ALLOW_RUN_AS_ROOT ?= 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM ?= 1
export OMPI_MCA_rmaps_base_oversubscribe ?= 1
export OMPI_MCA_mpi_yield_when_idle ?= 1
NP ?= 4
STAMP := .setup.stamp

.PHONY: setup demo test test-slow reference clean

$(STAMP): pyproject.toml setup.py .ci/setup.sh
	PYTHON=$(PYTHON) bash .ci/setup.sh
	touch $@

setup: $(STAMP)

# The main job: the shipped demo model and initial state as an MPI component on $(NP) ranks.
demo: $(STAMP)
	mpirun --bind-to none -n $(NP) $(PYTHON) -m mlscam.coupler.run namelists/demo.nml

test: $(STAMP)
	$(PYTHON) -m pytest -q --durations=15

test-slow: $(STAMP)
	$(PYTHON) -m pytest -q -m slow

reference: $(STAMP)
	$(PYTHON) -m mlscam.config reference > docs/namelist.md

clean:
	rm -f $(STAMP)
