"""mlscam.parallel imports without loading mpi4py or torch (both are imported lazily)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_import_does_not_load_mpi4py_or_torch():
    code = (
        "import sys, mlscam.parallel\n"
        "loaded = sorted(m for m in ('mpi4py', 'torch') if m in sys.modules)\n"
        "print('loaded:', loaded)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "loaded: []"
