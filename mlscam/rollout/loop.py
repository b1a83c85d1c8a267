"""The forecast loop: step in latent space, decode only at output steps, write one CF file atomically."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mlscam import __version__
from mlscam.runtime import Component, ComponentError, Status
from mlscam.parallel import agree

__all__ = ["run_forecast", "output_steps", "provenance"]


def output_steps(start: int, num_steps: int, output_every: int) -> list[int]:
    """Global step counts in ``(start, start + num_steps]`` that are multiples of ``output_every``.

    >>> output_steps(0, 10, 4)
    [4, 8]
    >>> output_steps(4, 6, 2)
    [6, 8, 10]
    """
    first = (start // output_every + 1) * output_every
    return list(range(first, start + num_steps + 1, output_every))


def provenance(component: Component, extra: dict | None = None) -> dict[str, Any]:
    """Global attributes of a forecast file: checkpoint and its sha256, configuration, version, ranks, and how
    input files name the variables and levels (``input_file_names``, ``input_level_source``: the
    component's naming, which ``mlscam.evaluate`` applies to the truth)."""
    from mlscam.config import config_to_namelist

    c = component
    attrs = {
        "mlscam_version": __version__,
        "checkpoint": c.checkpoint_path,
        "checkpoint_sha256": c.checkpoint_hash,
        "mpi_ranks": c.size,
        "decomposition": "; ".join(str(t) for t in c.decomposition.tiles),
        "time_step_seconds": c.dt_seconds,
        "namelist": config_to_namelist(c.config),
        "input_file_names": c.naming.describe(c.layout.variables),
        "input_level_source": c.naming.level_source,
        "climate_correction": c.climate_correction,
    }
    attrs.update(extra or {})
    return attrs


def _agree(c: Component, ok: bool, message: str, what: str, status: int = Status.FAILED) -> None:
    code, text = agree(c.comm, ok, message, status)
    if code:
        raise ComponentError(f"run_forecast ({what}): {text}", code)


def run_forecast(component: Component, *, num_steps: int, output_every: int, output_path,
                 restart_out=None, progress: bool = True, attrs: dict | None = None,
                 root: int = 0, output_initial: bool = False) -> Path:
    """Advance ``component`` by ``num_steps`` and write the decoded states at output steps to ``output_path``.

    The state must be set (``set_state_from_file``, ``read_restart`` or
    ``set_state`` + ``set_time``).  Collective over the component's
    communicator.  Steps stay in latent space; at output steps (global step
    counts that are multiples of ``output_every``) the tile states are decoded
    and gathered to ``root``, which appends them to a
    :class:`mlscam.io.forecast.ForecastWriter` (memory flat in steps; latitude in the order of the
    initial-state file, ``component.lat_descending``).  Valid
    times are the initial time plus ``step * dt``.  The file appears only when
    complete: on any failure (SIGINT or, under :func:`mlscam.atomic.interrupts_as_exceptions`,
    SIGTERM included) every rank raises and no file, partial or not, is left at ``output_path``;
    both ``output_path`` and ``restart_out`` are checked writable before the first step.  ``restart_out`` (optional) is written at the end, before
    the forecast file is moved into place.  ``output_initial``: the first
    record is the decoded state the run starts from (lead ``step * dt`` of the
    current step; 0 unless continuing a restart).  ``num_steps = 0`` needs it:
    a forecast without times is refused (``Status.BAD_ARGUMENT``).

    Returns the output path (on every rank).
    """
    from mlscam.atomic import raise_if_interrupted
    from mlscam.io.forecast import ForecastWriter

    c = component
    output_path = Path(output_path)
    ok, msg = True, ""
    if isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < 0:
        ok, msg = False, f"num_steps must be an integer >= 0, got {num_steps!r}"
    elif num_steps == 0 and not output_initial:
        ok, msg = False, ("num_steps is 0, so the forecast would have no times; run at least one step "
                          "(--num-steps, &rollout num_steps), or write the initial state alone with "
                          "output_initial=True (--output-initial, &rollout output_initial = .true.)")
    elif isinstance(output_every, bool) or int(output_every) != output_every or output_every < 1:
        ok, msg = False, f"output_every must be an integer >= 1, got {output_every!r}"
    elif not c.has_state:
        ok, msg = False, "no state set; call set_state_from_file, read_restart or set_state first"
    elif c.initial_time is None:
        ok, msg = False, "the state has no valid time; call set_time (or set the state from a file)"
    _agree(c, ok, msg, "arguments", Status.BAD_ARGUMENT)

    start = c.step_count
    steps = ([start] if output_initial else []) + output_steps(start, int(num_steps), int(output_every))
    writer, bar = None, None
    try:
        ok, msg = True, ""
        if c.rank == root:
            try:  # both outputs checked before any step: a restart that cannot be written fails now
                from mlscam.atomic import check_writable

                check_writable(output_path, "output_nc_path (--output-nc-path)")
                if restart_out:
                    check_writable(restart_out, "restart_out (--restart-out)")
            except ValueError as exc:
                ok, msg = False, str(exc)
        _agree(c, ok, msg, "output paths", Status.FILE_ERROR)
        if c.rank == root:
            try:
                writer = ForecastWriter(output_path, layout=c.layout, grid=c.grid, initial_time=c.initial_time,
                                        time_units=c.time_units, calendar=c.calendar,
                                        attrs=provenance(c, attrs), lat_descending=c.lat_descending)
            except Exception as exc:  # noqa: BLE001 - agreed on below
                ok, msg = False, f"cannot create {output_path}: {type(exc).__name__}: {exc}"
        _agree(c, ok, msg, "output file", Status.FILE_ERROR)
        if progress and c.rank == root:
            from tqdm import tqdm

            bar = tqdm(total=int(num_steps), desc="rollout", unit="step", file=sys.stderr, dynamic_ncols=True)
        for target in sorted(set(steps) | {start + int(num_steps)}):
            raise_if_interrupted()  # an interrupt that library code swallowed (netCDF4's writes do) ends the run too
            n = target - c.step_count
            if n > 0:
                c.step(n)
                if bar is not None:
                    bar.update(n)
            if target not in steps:
                continue
            x = c.gather_state(root)  # decode only here (collective, checks finite values)
            ok, msg = True, ""
            if c.rank == root:
                try:
                    writer.write(c.step_count * c.dt_seconds, x)
                except Exception as exc:  # noqa: BLE001
                    ok, msg = False, f"cannot write step {c.step_count} to {output_path}: {exc}"
            _agree(c, ok, msg, "write", Status.FILE_ERROR)
        if restart_out:
            c.write_restart(restart_out)
        ok, msg = True, ""
        if c.rank == root:
            try:
                writer.close()
                writer = None
            except Exception as exc:  # noqa: BLE001
                ok, msg = False, f"cannot finish {output_path}: {exc}"
        _agree(c, ok, msg, "close", Status.FILE_ERROR)
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.abort()
    return output_path
