"""Helpers of the crash tests: run ``xmc`` in a child process, kill it at a chosen point, compare models."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

# manifest keys that hold timings
VOLATILE = ("fit_seconds", "level_logs", "metrics", "versions", "seconds", "items_per_second")


def run_xmc(args: list[str], kill_at: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``xmc ARGS`` in a child process; with ``kill_at`` it SIGKILLs itself there (xmc.utils.faults)."""
    env = {**os.environ, "XMC_PROGRESS": "0"}
    env.pop("XMC_KILL_AT", None)
    if kill_at:
        env["XMC_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-m", "xmc.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, check=False)


def killed(proc: subprocess.CompletedProcess) -> bool:
    return proc.returncode == -signal.SIGKILL


def _stable(obj):
    if isinstance(obj, dict):
        return {k: _stable(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_stable(v) for v in obj]
    return obj


def model_contents(folder: Path) -> dict[str, object]:
    """Everything a model folder holds that must not depend on when or how often it was trained:
    arrays by value (zip timestamps differ), manifests without timings, other files byte for byte."""
    out: dict[str, object] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                out[rel] = {k: data[k].tolist() for k in data.files}
        elif path.name == "xmc.json":
            out[rel] = _stable(json.loads(path.read_text()))
        else:
            out[rel] = path.read_bytes()
    return out


def leftovers(target: Path) -> list[str]:
    """Temporary or backup siblings of ``target`` that xmc left behind."""
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.xmc-"))
