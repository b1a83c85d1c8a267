"""The host-facing documentation agrees with the code (issue 14 item 10): the tendency formula in the header and
the docs, the minimal example's coupling interval and the shipped coupled namelist against the shipped demo
checkpoint, the status codes of the header, the namelist groups, the host binaries named in the README."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlscam.config import load_config
from mlscam.parallel import SelfComm
from mlscam.runtime import Component
from mlscam.status import Status

ROOT = Path(__file__).resolve().parents[1]
HEADER = (ROOT / "coupler" / "mlscam.h").read_text()
COUPLING = (ROOT / "docs" / "coupling.md").read_text()
COMPONENT = (ROOT / "docs" / "component.md").read_text()
README = (ROOT / "README.md").read_text()
STEP_JUST_TAKEN = "(decode(z[t]) - decode(z[t-1])) / dt"


def test_the_tendency_is_the_step_just_taken_everywhere():
    for name, text in (("mlscam.h", HEADER), ("coupling.md", COUPLING), ("component.md", COMPONENT)):
        assert STEP_JUST_TAKEN in text, name
        assert "decode(z[t+1])" not in text, name


def test_the_header_files_status_5_and_6_as_the_code_does():
    assert "MLSCAM_ERR_FILE = 5" in HEADER and "MLSCAM_ERR_CHECKPOINT = 6" in HEADER
    file_doc = HEADER.split("MLSCAM_ERR_FILE = 5")[1].split("MLSCAM_ERR_CHECKPOINT")[0]
    ckpt_doc = HEADER.split("MLSCAM_ERR_CHECKPOINT = 6")[1].split("MLSCAM_ERR_INTERVAL")[0]
    assert "missing" in file_doc and "truncated" in ckpt_doc
    assert Status.FILE == 5 and Status.CHECKPOINT == 6
    assert "the limit is 10 s" not in COUPLING


def test_the_minimal_example_and_the_coupled_namelist_fit_the_shipped_demo():
    """The interval of the minimal Fortran host and of namelists/coupled_host.nml is the demo's step:
    Component.init accepts it on the shipped checkpoint (as mlscam_init would)."""
    example = COUPLING.split("### Minimal Fortran host")[1].split("```")[1]
    intervals = {float(v) for v in re.findall(r"(\d+)d0\)", example)}
    assert intervals == {3600.0}, intervals
    cfg = load_config(ROOT / "namelists" / "coupled_host.nml")
    assert cfg.coupler.coupling_interval_seconds in intervals
    comp = Component.init(cfg, SelfComm(), coupling_interval_seconds=intervals.pop())
    try:
        grid = comp.grid
        assert f"nlon = {grid.nlon}, nlat = {grid.nlat}, nlev = {comp.layout.nlev}" in example
    finally:
        comp.finalize()


@pytest.mark.parametrize("group", ["&rollout", "checkpoint_path", "&parallel", "&coupler", "&mlscam",
                                   "host_groups"])
def test_coupling_md_lists_the_namelist_groups_a_host_needs(group):
    section = COUPLING.split("### The namelist groups a host needs")[1].split("\n## ")[0]
    assert group in section


def test_the_readme_names_the_host_binaries_that_the_makefiles_build():
    assert "./host`" not in README and "./host)" not in README
    for binary in ("fortran_host", "c_host"):
        assert f"./{binary}" in README
        makefiles = " ".join(p.read_text() for p in (ROOT / "host_examples").glob("*/Makefile"))
        assert binary in makefiles
