"""The collective status protocol of a component call: validate locally, agree, raise the same error everywhere.

Every component call runs its local checks inside :func:`collect`; the ranks
then agree on one status (:func:`mlscam.parallel.agree`) before any halo
exchange, so a failure on one rank raises the same :class:`ComponentError` on
every rank, naming the failing rank, and nothing hangs.

A caller that validates its own arguments first (the C API: extents, dtype,
NaN of a host array) does so locally and hands its failure to the component
call as ``caller_error``: it is agreed in the call's one agreement, so the
call still costs a single allreduce.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from mlscam.parallel import agree
from mlscam.restart import RestartError
from mlscam.status import Status

__all__ = ["ComponentError", "LocalError", "collect", "check_array"]


class ComponentError(RuntimeError):
    """A component call that failed on at least one rank; raised on every rank alike.

    ``status`` is the non-zero :class:`~mlscam.status.Status` code; the message
    names the failing rank(s) and says what to do.
    """

    def __init__(self, message: str, status: int = Status.FAILED):
        super().__init__(message)
        self.status = int(status) or int(Status.FAILED)


class LocalError(Exception):
    """A local validation failure with its status, before the ranks agree."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = int(status)


def collect(comm: Any, fn: Callable[[], Any], what: str, default_status: int = Status.FAILED,
            caller_error: LocalError | None = None) -> Any:
    """Run ``fn`` locally; agree on the outcome over ``comm``; raise one ComponentError everywhere.

    The message is ``"<what>: rank R of N failed: ..."``.  ``caller_error``: a
    failure the caller already found on this rank; ``fn`` is then not run and
    this rank reports ``caller_error`` (status and message as they are, without
    ``what``: the caller's message names its own call).
    """
    result, ok, message, status, where = None, True, "", 0, what
    if caller_error is not None:
        ok, message, status, where = False, str(caller_error), caller_error.status, ""
    else:
        try:
            result = fn()
        except LocalError as exc:
            ok, message, status = False, str(exc), exc.status
        except RestartError as exc:
            ok, message, status = False, str(exc), Status.CHECKPOINT
        except FileNotFoundError as exc:
            ok, message, status = False, str(exc), Status.FILE
        except Exception as exc:  # noqa: BLE001 - every local failure becomes the collective status
            ok, message, status = False, f"{type(exc).__name__}: {exc}", default_status
    code, text = agree(comm, ok, message, status or default_status, where=where)
    if code:
        raise ComponentError(text, code)
    return result


def check_array(a: Any, shape: tuple[int, ...], what: str,
                where: Callable[[tuple[int, ...]], str] | None = None) -> np.ndarray:
    """Shape, floating dtype and finite values of a host array (local check).

    ``where`` (optional) names the index of the first non-finite value in words
    (e.g. variable, level and global cell); without it the tile index is given.
    """
    if not isinstance(a, np.ndarray):
        raise LocalError(f"{what} must be a numpy array, got {type(a).__name__}", Status.ARGUMENT)
    if tuple(a.shape) != tuple(shape):
        raise LocalError(f"{what} has shape {tuple(a.shape)} but this rank's tile needs {tuple(shape)} "
                         "(lat, lon[, feature]); pass this rank's tile only", Status.ARGUMENT)
    if a.dtype not in (np.float32, np.float64):
        raise LocalError(f"{what} has dtype {a.dtype}; pass float32 or float64 values", Status.ARGUMENT)
    bad = ~np.isfinite(a)
    if bad.any():
        idx = tuple(int(v) for v in np.argwhere(bad)[0])
        at = f"tile index {idx}" if where is None else where(idx)
        raise LocalError(f"{what} has {int(bad.sum())} non-finite value(s) (NaN/Inf), first at {at}: "
                         f"{a[idx]}; fix the input on this rank", Status.VALUE)
    return a
