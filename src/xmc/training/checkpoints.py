"""Per-level checkpoints of a fine-tuning run (safetensors + JSON, written atomically).

``folder/level_<t>/`` holds the encoder and every head trained so far after level t, plus the
run's fingerprint (configs, data shape, tree shape). Resuming refuses a checkpoint whose
fingerprint differs, so a changed config or dataset never continues a stale run.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors.torch import load_model, save_model

from xmc.exceptions import XMCError
from xmc.nn.heads import load_heads, save_heads
from xmc.utils.io import atomic_folder, read_json, write_json

if TYPE_CHECKING:
    from xmc.training.finetune import Finetuner

log = logging.getLogger(__name__)


class LevelCheckpoints:
    def __init__(self, folder: str | Path, fingerprint: dict[str, Any], resume: bool = False):
        self.folder, self.fingerprint, self.resume = Path(folder), fingerprint, resume

    def _levels(self) -> list[int]:
        if not self.folder.is_dir():
            return []
        return sorted(int(p.name.split("_")[1]) for p in self.folder.glob("level_*") if (p / "state.json").is_file())

    def save(self, run: Finetuner, level: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_folder(self.folder / f"level_{level}") as tmp:
            save_model(run.encoder, str(tmp / "encoder.safetensors"))
            save_heads(tmp / "heads.safetensors", run.heads)
            write_json(tmp / "state.json", {"level": level, "fingerprint": self.fingerprint,
                                            "logs": [dataclasses.asdict(e) for e in run.logs]})
        for older in self._levels():
            if older < level:
                shutil.rmtree(self.folder / f"level_{older}", ignore_errors=True)

    def restore(self, run: Finetuner) -> int:
        """Load the latest checkpoint into ``run``; returns the first level still to train."""
        levels = self._levels()
        if not self.resume or not levels:
            if levels and not self.resume:
                log.info("ignoring the checkpoints in %s (not resuming)", self.folder)
            return 0
        from xmc.training.finetune import LevelLog

        path = self.folder / f"level_{levels[-1]}"
        state = read_json(path / "state.json")
        if state["fingerprint"] != self.fingerprint:
            raise XMCError(f"the checkpoint in {path} belongs to a different run (config or data changed); "
                           "start afresh without --resume or use another --checkpoint-dir")
        load_model(run.encoder, str(path / "encoder.safetensors"), device=str(run.device))
        run.heads = load_heads(path / "heads.safetensors", state["level"] + 1, run.device)
        run.logs = [LevelLog(**e) for e in state["logs"]]
        log.info("resuming after level %d from %s", state["level"] + 1, path)
        return state["level"] + 1
