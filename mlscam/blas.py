"""The BLAS mode that makes results independent of the decomposition, on any x86-64 CPU.

mlscam promises the same bits on 1, 2, 3, ... ranks. Its chunk engine
(``mlscam.model.chunks``) gives every matmul the same shape however the columns
are split; what is left is the BLAS. MKL (torch's CPU BLAS on x86-64) rounds a
row of a matmul by its position in the block on some code paths (measured: its
AVX2 kernels, the default on AMD CPUs), unless its Conditional Numerical
Reproducibility mode is strict. ``MKL_CBWR=AUTO,STRICT`` keeps the fastest
kernels of the CPU and makes every row's arithmetic the same; it can only be
chosen before MKL's first matmul in the process.

:func:`pin` is called once, visibly, by every entry point that computes
(``python -m mlscam.train``, ``mlscam.rollout``, ``mlscam.coupler.run``, the C
library's ``mlscam_init``, the benchmarks, the test suite) before any matmul.
It never overrides a mode the user or host chose; :func:`check` (called when a
component or emulator is built) says in one line what a mode that is not
reproducible means. A Python host calls ``mlscam.blas.pin()`` first thing, or
sets ``MKL_CBWR=AUTO,STRICT`` in the environment.

Scope: bit for bit across ranks, decompositions, restarts and threads per
rank on one CPU model; across CPU models (different MKL kernels) results agree
only to rounding (``docs/component.md`` gives the measured difference).
"""
from __future__ import annotations

import ctypes
import functools
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BlasMode", "ReproducibilityWarning", "check", "mode", "pin", "REPRODUCIBLE_ENV"]

#: The environment setting equivalent to :func:`pin` (for hosts that set it before starting).
REPRODUCIBLE_ENV = {"MKL_CBWR": "AUTO,STRICT"}

# mkl_cbwr.h
_ALL = -1
_STRICT = 0x10000
_BRANCHES = {1: "OFF", 2: "AUTO", 3: "COMPATIBLE", 4: "SSE2", 6: "SSSE3", 7: "SSE4_1", 8: "SSE4_2", 9: "AVX",
             10: "AVX2", 11: "AVX512_MIC", 12: "AVX512", 13: "AVX512_MIC_E1", 14: "AVX512_E1"}
_AUTO_STRICT = 2 | _STRICT
_SUCCESS = 0

_FIX = "set MKL_CBWR=AUTO,STRICT in the environment before the process starts (or call mlscam.blas.pin() " \
       "before any torch computation)"


class ReproducibilityWarning(UserWarning):
    """Results may differ in the last bits between decompositions (ranks, tiles)."""


@dataclass(frozen=True)
class BlasMode:
    """What the process's BLAS does for reproducibility.

    ``name``: the MKL mode (``"AUTO,STRICT"``, ``"OFF"``, ...) or ``"not MKL"`` /
    ``"unknown"``; ``reproducible``: every row of a matmul gets the same
    arithmetic, so decompositions agree bit for bit; ``message``: one line for
    the user when it is not, else ``""``.
    """

    name: str
    reproducible: bool
    message: str = ""


@functools.lru_cache(maxsize=1)
def _mkl():
    """``(get, set)`` of MKL's CNR functions inside torch's CPU library, or None (looked up once)."""
    import torch

    lib_dir = Path(torch.__file__).parent / "lib"
    for name in ("libtorch_cpu.so", "libtorch_cpu.dylib", "torch_cpu.dll"):
        path = lib_dir / name
        if not path.exists():
            continue
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:
            return None
        for prefix in ("mkl_cbwr_", "mkl_serv_cbwr_", "MKL_CBWR_"):
            get, set_ = getattr(lib, prefix + "get", None), getattr(lib, prefix + "set", None)
            if get is not None and set_ is not None:
                for f in (get, set_):
                    f.restype, f.argtypes = ctypes.c_int, [ctypes.c_int]
                return get, set_
        return None
    return None


def _name(value: int) -> str:
    branch = _BRANCHES.get(value & 0xFFFF, f"branch {value & 0xFFFF}")
    return branch + (",STRICT" if value & _STRICT else "")


def _describe(value: int) -> BlasMode:
    name = _name(value)
    if value & _STRICT or value & 0xFFFF == 3:  # strict, or the COMPATIBLE branch (same code on every CPU)
        return BlasMode(name, True)
    return BlasMode(name, False,
                    f"mlscam: MKL runs in mode {name}, not reproducible: results may differ in the last bits "
                    f"between decompositions (numbers of ranks, tiles); {_FIX}")


def mode() -> BlasMode:
    """The current mode of the process's BLAS (reads only; imports torch)."""
    import torch

    if not torch.backends.mkl.is_available():
        return BlasMode("not MKL", True)  # no MKL row-slot effect known; the decomposition tests check it
    funcs = _mkl()
    if funcs is None:
        env = os.environ.get("MKL_CBWR", "")
        if env.replace(" ", "").upper() in ("AUTO,STRICT", "COMPATIBLE") or "STRICT" in env.upper():
            return BlasMode(env, True)
        return BlasMode("unknown", False,
                        "mlscam: cannot read MKL's reproducibility mode from this torch build; "
                        f"bit-for-bit equality between decompositions is not guaranteed unless you {_FIX}")
    return _describe(funcs[0](_ALL))


def pin() -> BlasMode:
    """Put MKL in ``AUTO,STRICT`` mode unless a mode was chosen already; return the resulting mode.

    Call it before the process's first matmul (entry points do). A mode the
    user set (``MKL_CBWR``) is kept. When MKL already ran in a mode that is not
    reproducible, the mode cannot change any more: the returned
    :class:`BlasMode` says so (``reproducible=False`` and a one-line message).
    Also sets ``MKL_CBWR`` for child processes when it was unset.
    """
    global _pinned
    user_env = "MKL_CBWR" in os.environ
    os.environ.setdefault("MKL_CBWR", REPRODUCIBLE_ENV["MKL_CBWR"])
    current = mode()
    if current.reproducible or current.name in ("unknown", "not MKL") or user_env:
        _pinned = current
        return current
    funcs = _mkl()
    if funcs is not None and funcs[1](_AUTO_STRICT) == _SUCCESS:
        _pinned = mode()
        return _pinned
    _pinned = BlasMode(current.name, False,
                    f"mlscam: MKL already computed in mode {current.name} before mlscam could make it "
                    "reproducible (torch was used first): results may differ in the last bits between "
                    f"decompositions (numbers of ranks, tiles); {_FIX}")
    return _pinned


_pinned: BlasMode | None = None  # what pin() found, for check()'s message
_warned: set[str] = set()


def check(*, warn: bool = True) -> BlasMode:
    """The current mode; when it is not reproducible and ``warn``, warns once per process
    (:class:`ReproducibilityWarning`, the one-line message)."""
    current = mode()
    if not current.reproducible and _pinned is not None and _pinned.name == current.name and _pinned.message:
        current = _pinned  # pin() knows why (the host computed first, or chose the mode)
    if warn and not current.reproducible and current.message not in _warned:
        _warned.add(current.message)
        warnings.warn(current.message, ReproducibilityWarning, stacklevel=2)
    return current
