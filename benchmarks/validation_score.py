"""The score that chooses between candidate models: their one-year validation climates, drift included.

    python benchmarks/validation_score.py LABEL=DIR[,DIR...] [LABEL=DIR ...] [--drift-tolerance 0.5]

Each DIR holds a ``climate.json`` of ``python -m mlscam.evaluate climate`` (``benchmarks/climate_report.sh`` on
the validation truth, e.g. ``CLIMATE_STARTS="0 365" bash benchmarks/climate_report.sh
data/hs_climate_seed1_2y.nc DIR CKPT``); a label may gather several directories (one per start year). For every
one-year forecast in them the score adds, for temperature and u, the terms of ``&train select_by = 'climate'``
(``mlscam.train.climate``: ``bias / tolerance + |ln eddy ratio| / ln 1.4``, tolerances 1.5 K and 2 m/s), and
``|global-mean T end - start| / drift_tolerance``: 1 at each of issue 13's thresholds. The label's score is
the mean over its forecasts; lower is better. The drift term is new (2026-11-28): stage 15F beat 15D on the
score without it, and drifted 0.5-0.7 K on the test years where 15D drifted 0.1-0.2 K.

``--rule MAX_SCORE`` also says, per label, whether it passes the rule that chose the shipped demo (stages 16E,
16G, 16H in ``docs/demo_model.md``): a score of at most MAX_SCORE (3.0 there) and every one of its forecasts
within the bias tolerances (1.5 K, 2 m/s). Give one label per validation seed; the rule needs all to pass.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from mlscam.train.climate import EDDY_TOLERANCE  # the training score's constant, not a second copy

TOLERANCES = {"temperature": 1.5, "u": 2.0}


def forecast_terms(forecast: dict, drift_tolerance: float) -> dict[str, float]:
    """The score's terms of one forecast of a climate.json (``inf`` if any variable is not finite)."""
    terms: dict[str, float] = {}
    for v, tol in TOLERANCES.items():
        m = forecast["variables"][v]
        bias, ratio = m["zonal_mean_bias_rms"]["total"], m["eddy_variance_ratio"]["total"]
        ok = m["stability"]["finite"] and bias is not None and ratio is not None and ratio > 0
        terms[f"{v} bias"] = bias / tol if ok else math.inf
        terms[f"{v} eddy"] = abs(math.log(ratio)) / math.log(EDDY_TOLERANCE) if ok else math.inf
    drift = forecast["variables"]["temperature"]["global_mean"]["end_minus_start"]
    terms["T drift"] = abs(drift) / drift_tolerance if drift is not None else math.inf
    return terms


def label_rows(dirs: list[Path], drift_tolerance: float) -> list[dict[str, float]]:
    """The score's terms of every forecast in the ``climate.json`` files of ``dirs``."""
    rows = []
    for d in dirs:
        path = d / "climate.json"
        if not path.is_file():
            raise SystemExit(f"error: {path} not found: run benchmarks/climate_report.sh with OUT_DIR {d} first")
        rows += [forecast_terms(f, drift_tolerance) for f in json.loads(path.read_text())["forecasts"]]
    if not rows:
        raise SystemExit(f"error: no forecasts in {[str(d) for d in dirs]}")
    return rows


def _score(rows: list[dict[str, float]]) -> tuple[float, dict[str, float], int]:
    means = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
    return sum(means.values()), means, len(rows)


def label_score(dirs: list[Path], drift_tolerance: float) -> tuple[float, dict[str, float], int]:
    """Mean score, mean terms and the number of forecasts over the ``climate.json`` files of ``dirs``."""
    return _score(label_rows(dirs, drift_tolerance))


def rule_verdict(dirs: list[Path], drift_tolerance: float, max_score: float) -> tuple[bool, str]:
    """Whether a label passes the shipping rule (score <= ``max_score``, every forecast's T and u bias within
    its tolerance), and why not."""
    rows = label_rows(dirs, drift_tolerance)
    score = _score(rows)[0]
    why = [f"score {score:.2f} > {max_score:g}"] if not score <= max_score else []
    for v, tol in TOLERANCES.items():
        worst = max(r[f"{v} bias"] for r in rows) * tol
        if not worst <= tol:
            why.append(f"{v} bias {worst:.2f} > {tol:g} in a forecast")
    return not why, "; ".join(why) or "passes"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", metavar="LABEL=DIR[,DIR...]")
    p.add_argument("--drift-tolerance", type=float, default=0.5, help="K of global-mean T drift that count 1")
    p.add_argument("--rule", type=float, metavar="MAX_SCORE",
                   help="also check the shipping rule: score <= MAX_SCORE and every forecast within the bias "
                        "tolerances; the exit status is 1 when a label fails it")
    args = p.parse_args(argv)
    header = None
    verdicts = []
    for run in args.runs:
        label, sep, dirs = run.partition("=")
        if not sep or not dirs:
            raise SystemExit(f"error: {run!r} is not LABEL=DIR[,DIR...]")
        score, terms, n = label_score([Path(d) for d in dirs.split(",")], args.drift_tolerance)
        if header is None:
            header = list(terms)
            print(f"{'run':<16} {'score':>7} {'(no drift)':>10} " + " ".join(f"{k:>14}" for k in header) + "  forecasts")
        print(f"{label:<16} {score:7.3f} {score - terms['T drift']:10.3f} "
              + " ".join(f"{terms[k]:14.3f}" for k in header) + f"  {n}")
        if args.rule is not None:
            verdicts.append((label, *rule_verdict([Path(d) for d in dirs.split(",")], args.drift_tolerance, args.rule)))
    if verdicts:
        print(f"rule (score <= {args.rule:g}, every forecast within " + ", ".join(
            f"{tol:g} {'K' if v == 'temperature' else 'm/s'} ({v})" for v, tol in TOLERANCES.items()) + "):")
        for label, ok, why in verdicts:
            print(f"  {label:<16} {'PASS' if ok else 'FAIL'}  {why}")
        passed = all(ok for _, ok, _ in verdicts)
        print("all pass" if passed else "not all pass")
        return 0 if passed else 1  # a script can act on the verdict
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
