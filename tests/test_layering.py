"""The layering rule of docs/design.md, checked on the imports."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ["mlscam.grid", "mlscam.layout", "mlscam.normalization", "mlscam.config", "mlscam.model", "mlscam.losses"]


@pytest.mark.parametrize("module", CORE)
def test_core_modules_import_no_files_or_mpi(module):
    code = (
        f"import sys, {module}\n"
        "bad = [m for m in ('mpi4py', 'xarray', 'netCDF4') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "", f"{module} imports {out.stdout.strip()}"


def test_only_parallel_touches_mpi():
    offenders = []
    for path in (ROOT / "mlscam").rglob("*.py"):
        rel = path.relative_to(ROOT / "mlscam").as_posix()
        if rel.startswith("parallel/"):
            continue
        if re.search(r"^\s*(from|import)\s+mpi4py", path.read_text(), re.M):
            offenders.append(rel)
    assert offenders == [], f"only mlscam/parallel may import mpi4py, found it in {offenders}"


@pytest.mark.parametrize("module", ["mlscam.config", "mlscam.losses", "mlscam.losses.registry"])
def test_config_and_loss_registry_import_without_torch(module):
    """``python -m mlscam.config validate`` stays light: checking &loss against the registry needs no torch."""
    code = f"import sys, {module}\nprint('torch' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False", f"{module} imports torch"
