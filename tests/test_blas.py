"""The BLAS mode behind the decomposition promise (``mlscam.blas``), and the promise under other CPUs' kernels.

MKL picks its kernels by CPU: an Intel CPU with AVX-512 runs other code than an
AMD CPU with AVX2. ``MKL_ENABLE_INSTRUCTIONS`` restricts MKL to older
instruction sets, so every machine can run the kernels of other CPUs; the
bit-for-bit decomposition tests (marker ``decomposition``) are rerun here under
each restriction.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# One matmul per call with the same shape; True if any row's result depends on its slot in the call.
SLOT_PROBE = """
import torch
torch.manual_seed(0)
found = False
for rows in (7, 16, 64, 512):
    for k, n in ((20, 8), (72, 32), (576, 128)):
        a, lin = torch.randn(rows, k), torch.nn.Linear(k, n)
        with torch.no_grad():
            ref = lin(a)
            found |= any(not torch.equal(torch.roll(lin(torch.roll(a, s, 0)), -s, 0), ref) for s in range(1, 8))
print("slot-dependent" if found else "slot-independent")
"""


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MKL_")}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**base, **env}, capture_output=True,
                          text=True, timeout=120)


def test_pin_makes_a_fresh_process_strict_and_exports_it():
    p = _python("from mlscam import blas; m = blas.pin(); import os; print(m.name, m.reproducible, os.environ['MKL_CBWR'])")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["AUTO,STRICT", "True", "AUTO,STRICT"]


def test_pin_keeps_a_mode_the_user_chose_and_says_what_it_means():
    p = _python("from mlscam import blas; m = blas.pin(); print(m.name); print(m.message)", MKL_CBWR="AUTO")
    assert p.returncode == 0, p.stderr
    name, message = p.stdout.splitlines()
    assert name == "AUTO"
    assert "not reproducible" in message and "MKL_CBWR=AUTO,STRICT" in message


def test_torch_used_before_mlscam_is_reported_in_one_line_by_the_emulator():
    code = """
import warnings, torch
torch.ones(8, 8) @ torch.ones(8, 8)          # a host that computed first
from mlscam import blas
m = blas.pin()
print(m.reproducible)
print(m.message)
import sys; sys.path.insert(0, 'tests')
from test_model import make_emulator
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    make_emulator()
print([str(w.message) for w in caught if w.category is blas.ReproducibilityWarning] == [m.message])
"""
    p = _python(code)
    assert p.returncode == 0, p.stderr
    ok, message, warned = p.stdout.splitlines()
    assert ok == "False" and warned == "True"
    assert "already computed" in message and "MKL_CBWR=AUTO,STRICT" in message


def test_avx2_kernels_depend_on_the_row_slot_unless_strict():
    """The restriction below is a real test: MKL's AVX2 kernels (as on AMD CPUs) give a row other bits
    in another slot of the same matmul (measured on Intel and AMD); in strict mode they do not."""
    loose = _python(SLOT_PROBE, MKL_ENABLE_INSTRUCTIONS="AVX2", MKL_CBWR="AUTO")
    strict = _python("from mlscam import blas; blas.pin()\n" + SLOT_PROBE, MKL_ENABLE_INSTRUCTIONS="AVX2")
    assert loose.returncode == 0 and strict.returncode == 0, loose.stderr + strict.stderr
    assert loose.stdout.strip() == "slot-dependent"
    assert strict.stdout.strip() == "slot-independent"


@pytest.mark.mpi
@pytest.mark.parametrize("isa", ["AVX2", "SSE4_2"])
def test_decomposition_is_bit_for_bit_with_mkl_restricted_to(isa):
    """Every ``decomposition`` test (ranks, tiles, chunks, restarts, host examples, the demo on 1-4 ranks),
    rerun with MKL limited to another CPU generation's kernels."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MKL_")}
    env["MKL_ENABLE_INSTRUCTIONS"] = isa
    p = subprocess.run([sys.executable, "-m", "pytest", "-x", "-p", "no:cacheprovider", "-m",
                        "decomposition and not slow", "-k", "not 16", "tests"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    tail = (p.stdout + p.stderr)[-4000:]
    assert p.returncode == 0, tail
    assert f"MKL instructions: {isa}" in p.stdout
    assert " passed" in tail and "failed" not in tail
