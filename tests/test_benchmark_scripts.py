"""The benchmark scripts that cannot run in a normal test: syntax, and a dry run of the GPU script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_gpu_script_parses():
    subprocess.run(["bash", "-n", str(REPO / "benchmarks" / "gpu.sh")], check=True)


@pytest.mark.slow
def test_gpu_script_dry_run_on_cpu(shared_data):
    """The whole GPU benchmark on a tiny slice with tiny budgets: every method trains, predicts and
    joins an ensemble, and the report is written (outside benchmarks/results)."""
    env = {**os.environ, "XMC_PYTHON": sys.executable, "XMC_DATA_DIR": str(shared_data), "XMC_PROGRESS": "0"}
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu.sh"), "--dry-run"], env=env, capture_output=True,
                          text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (REPO / "benchmarks" / ".work" / "neural_gpu_dry_run.md").read_text()
    for system in ("| xr-linear |", "| xr-transformer |", "| lightxml |", "| cascadexml |", "| elias++ |",
                   "| dual-encoder |", "| ensemble lightxml + xr-linear (average) |"):
        assert system in report
