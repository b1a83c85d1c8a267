"""How `python -m mlscam.train` decides between serial and tile-parallel training, and refuses torchrun."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlscam.parallel.torchdist import LaunchError, launch_world, mpi_world_size

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("env,size", [
    ({}, 1),
    ({"OMPI_COMM_WORLD_SIZE": "4"}, 4),
    ({"PMI_SIZE": "3"}, 3),
    ({"PMIX_SIZE": "2"}, 2),
    ({"SLURM_NTASKS": "8"}, 1),  # a batch script, not a task started by srun
    ({"SLURM_NTASKS": "8", "SLURM_PROCID": "5"}, 8),
    ({"OMPI_COMM_WORLD_SIZE": "1", "WORLD_SIZE": "1"}, 1),
])
def test_mpi_world_size_from_the_launcher_environment(env, size):
    assert mpi_world_size(env) == size


def test_single_process_is_serial():
    assert launch_world({}) is None
    assert launch_world({"WORLD_SIZE": "1", "RANK": "0"}) is None


def test_several_processes_without_mpi_are_refused():
    with pytest.raises(LaunchError, match=r"WORLD_SIZE=2 .*mpirun -n N python -m mlscam.train"):
        launch_world({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"})


def test_cli_refuses_a_torchrun_style_launch(tmp_path):
    """Under torchrun each process would otherwise train on the whole globe alone: exit 1 with the fix."""
    sys.path.insert(0, str(ROOT / "tests" / "mpi"))
    import tileparallel_case as case

    from mlscam.config import config_to_namelist

    nml = tmp_path / "run.nml"
    nml.write_text(config_to_namelist(case.config(case.write_data(tmp_path / "d.nc"), "global", max_steps=1,
                                                  checkpoint_dir=str(tmp_path / "ck"))))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMI", "SLURM_"))}
    env.update(WORLD_SIZE="2", RANK="0", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="29500")
    proc = subprocess.run([sys.executable, "-m", "mlscam.train", str(nml)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "WORLD_SIZE=2" in proc.stderr and "mpirun -n N" in proc.stderr
    assert not (tmp_path / "ck").exists()  # nothing trained
