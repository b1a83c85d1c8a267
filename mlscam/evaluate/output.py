"""Atomic writers for the evaluation outputs: metrics.json, metrics.csv and figures."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from mlscam.atomic import atomic_path

__all__ = ["atomic_write_bytes", "write_json", "write_csv", "metric_rows", "CSV_COLUMNS"]

CSV_COLUMNS = ("variable", "level", "metric", "lead_hours", "source", "value")


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place."""
    path = Path(path)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
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
