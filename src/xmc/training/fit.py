"""The end of every trainer-based fit: the stages run on :class:`xmc.training.trainer.Trainer`,
checkpointed and resumable when the caller gives a folder, timed, and their epoch logs kept."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from torch import nn

from xmc.training.checkpoints import RunCheckpoints
from xmc.training.trainer import Stage, TrainConfig, Trainer


def run_stages(net: nn.Module, config: TrainConfig, stages: list[Stage], checkpoint_dir: str | Path | None,
               fingerprint: dict[str, Any], resume: bool) -> tuple[list[dict], float]:
    """Train ``net`` through ``stages``; with ``checkpoint_dir`` every epoch is checkpointed under
    ``fingerprint`` (what a resumed run must match) and ``resume`` continues a killed run. Returns
    the epochs' logs (plain dicts, for the model's manifest) and the seconds the stages took."""
    checkpoints = RunCheckpoints(checkpoint_dir, fingerprint, resume) if checkpoint_dir is not None else None
    start = time.perf_counter()
    logs = Trainer(net, config, checkpoints).run(stages)
    return [dataclasses.asdict(log) for log in logs], time.perf_counter() - start
