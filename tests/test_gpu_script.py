"""``benchmarks/gpu/run.sh`` in its CPU mode (what every machine without CUDA gets): it runs in seconds,
skips the CUDA parts with a clear line, and writes one results file with every section."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_script_cpu_mode_writes_its_results(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu" / "run.sh"), "--cpu"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.txt", "run.log"]
    text = (tmp_path / "results.txt").read_text()
    lines = text.splitlines()
    assert lines[0] == "# benchmarks/gpu/run.sh --cpu"
    assert f"mlscam from {ROOT / 'mlscam' / '__init__.py'}" in lines
    assert "CUDA not available (or --cpu): skipping the CUDA tests and the GPU measurements; CPU mode runs a tiny" in lines
    assert "command: python benchmarks/gpu_throughput.py --quick --device cpu" in text
    for section in ("## ceilings", "## throughput", "## bf16 accuracy", "## ranks", "## summary"):
        assert any(line.startswith(section) for line in lines), section
    rows = [line.split() for line in lines if line.startswith("tiny ")]  # grid columns chunk prec mode ...
    assert [(r[2], r[3], r[4]) for r in rows] == [
        ("512", "fp32", "eager"), ("512", "fp32", "graph"), ("512", "bf16", "eager"), ("512", "bf16", "graph"),
        ("64", "fp32", "eager"), ("64", "bf16", "eager")]  # the checkpoint's chunk, then --chunk-sizes
    assert all(r[5] == "skipped:" and "device cpu is not a CUDA device" in " ".join(r) for r in rows[1:4:2])
    assert all(float(r[7]) > 0 for r in rows[0:4:2] + rows[4:])  # col-steps/s
    assert "  temperature       RMSE(bf16 - fp32) " in text and "latents identical: yes" in text
    assert lines[-2] == "benchmarks/gpu_throughput.py: exit 0" and lines[-1].startswith("total ")
