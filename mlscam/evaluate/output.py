"""Atomic writers for the evaluation outputs: metrics.json, metrics.csv and figures."""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_bytes", "write_json", "write_csv", "metric_rows", "CSV_COLUMNS"]

CSV_COLUMNS = ("variable", "level", "metric", "lead_hours", "source", "value")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path, result: dict) -> Path:
    """The whole result dict as JSON (None for undefined values)."""
    text = json.dumps(result, indent=1, allow_nan=False)
    return atomic_write_bytes(path, text.encode())


def metric_rows(result: dict):
    """Rows ``(variable, level, metric, lead_hours, source, value)`` of every scalar score."""
    for var, levels in result["metrics"].items():
        for lk, metrics in levels.items():
            for m, sources in metrics.items():
                for src, by_lead in sources.items():
                    for lead, value in sorted(by_lead.items(), key=lambda kv: float(kv[0])):
                        yield var, lk, m, float(lead), src, ("" if value is None else repr(value))


def write_csv(path, result: dict) -> Path:
    """The scalar scores as a long table with columns :data:`CSV_COLUMNS` (empty value = undefined)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for row in metric_rows(result):
        w.writerow([row[0], row[1], row[2], f"{row[3]:g}", row[4], row[5]])
    return atomic_write_bytes(path, buf.getvalue().encode())
