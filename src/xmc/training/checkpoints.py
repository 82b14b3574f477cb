"""Per-level checkpoints of a fine-tuning run (safetensors + JSON, written atomically).

``folder/level_<t>/`` holds the encoder and every head trained so far after level t, plus the
run's fingerprint (SHA-256 digests of the training texts, labels and encoder files, and every
setting that changes the weights). Resuming refuses a checkpoint whose fingerprint differs and
says what differs, so a changed config or dataset never continues a stale run.
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
from xmc.utils.fingerprint import differences
from xmc.utils.folders import atomic_folder
from xmc.utils.io import read_json, write_json

if TYPE_CHECKING:
    from xmc.training.finetune import Finetuner

log = logging.getLogger(__name__)


class LevelCheckpoints:
    def __init__(self, folder: str | Path, fingerprint: dict[str, Any], resume: bool = False):
        self.folder, self.fingerprint, self.resume = Path(folder), fingerprint, resume

    def _levels(self) -> list[int]:
        if not self.folder.is_dir():
            return []
        return sorted(int(p.name.split("_")[1]) for p in self.folder.glob("level_*")
                      if p.name.split("_")[1].isdigit() and _is_checkpoint(p))

    def save(self, run: Finetuner, level: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_folder(self.folder / f"level_{level}", overwrite=True, owned=_is_checkpoint) as tmp:
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
        if not isinstance(state, dict) or state.get("fingerprint") != self.fingerprint:
            recorded = state.get("fingerprint", {}) if isinstance(state, dict) else {}
            changed = "; ".join(differences(recorded, self.fingerprint)) or "its state is unreadable"
            raise XMCError(f"the checkpoint in {path} belongs to a different run ({changed}); "
                           "start afresh without --resume or use another --checkpoint-dir")
        load_model(run.encoder, str(path / "encoder.safetensors"), device=str(run.device))
        level = state["level"]
        shapes = [(n, run.encoder.dim) for n in run.tree.level_sizes[: level + 1]]
        run.heads = load_heads(path / "heads.safetensors", shapes, run.device)
        run.logs = [LevelLog(**e) for e in state["logs"]]
        log.info("resuming after level %d from %s", state["level"] + 1, path)
        return state["level"] + 1


def _is_checkpoint(folder: Path) -> bool:
    return (folder / "state.json").is_file()
