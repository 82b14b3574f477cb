"""Checkpoints of a training run (safetensors + JSON, written atomically), and resuming from them.

``folder/latest/`` holds, after every epoch (and after every stage), the network's weights, the
optimisers' and SWA's state while a stage is under way, the best epoch's weights, the logs and the
run's fingerprint: SHA-256 digests of the training texts, labels and encoder files and every setting
that changes the weights. Resuming refuses a checkpoint whose fingerprint differs and says what
differs, so a changed config or dataset never continues a stale run.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from xmc.exceptions import ModelFormatError, XMCError
from xmc.utils.fingerprint import differences
from xmc.utils.folders import atomic_folder
from xmc.utils.io import read_json, write_json

log = logging.getLogger(__name__)


class RestorePoint(NamedTuple):
    stage: int
    epoch: int
    stage_done: bool


def flatten_state(state: Any, prefix: str = "") -> tuple[dict[str, torch.Tensor], Any]:
    """Tensors of a nested state (optimiser ``state_dict``s) apart, for safetensors; the rest as JSON
    with ``{"__tensor__": key}`` placeholders."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(value, path):
        if isinstance(value, torch.Tensor):
            key = path or "value"
            tensors[key] = value.detach().cpu().contiguous().clone()
            return {"__tensor__": key}
        if isinstance(value, dict):
            return {"__dict__": [[_key(k), walk(v, f"{path}.{k}" if path else str(k))] for k, v in value.items()]}
        if isinstance(value, (list, tuple)):
            return [walk(v, f"{path}.{i}" if path else str(i)) for i, v in enumerate(value)]
        return value

    return tensors, walk(state, prefix)


def _key(k):
    return {"__int__": k} if isinstance(k, int) else k


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skeleton, dict) and "__tensor__" in skeleton:
        return tensors[skeleton["__tensor__"]]
    if isinstance(skeleton, dict) and "__dict__" in skeleton:
        return {(k["__int__"] if isinstance(k, dict) else k): unflatten_state(v, tensors)
                for k, v in skeleton["__dict__"]}
    if isinstance(skeleton, list):
        return [unflatten_state(v, tensors) for v in skeleton]
    return skeleton


def save_state_dict(path: Path, state: dict[str, torch.Tensor]) -> None:
    """A module's state dict as safetensors (tensors that share memory are written separately)."""
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in state.items()}, str(path))


def load_tensors_file(path: Path, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelFormatError(f"cannot read tensors {path}: {exc}") from None


class RunCheckpoints:
    def __init__(self, folder: str | Path, fingerprint: dict[str, Any], resume: bool = False):
        self.folder, self.fingerprint, self.resume = Path(folder), fingerprint, resume

    @property
    def latest(self) -> Path:
        return self.folder / "latest"

    def restore_point(self) -> RestorePoint | None:
        """Where a resumed run continues, or None (nothing saved, or not resuming)."""
        if not (self.latest / "state.json").is_file():
            return None
        if not self.resume:
            log.info("ignoring the checkpoint in %s (not resuming)", self.folder)
            return None
        state = read_json(self.latest / "state.json")
        if not isinstance(state, dict) or state.get("fingerprint") != self.fingerprint:
            recorded = state.get("fingerprint", {}) if isinstance(state, dict) else {}
            changed = "; ".join(differences(recorded, self.fingerprint)) or "its state is unreadable"
            raise XMCError(f"the checkpoint in {self.latest} belongs to a different run ({changed}); "
                           "start afresh without --resume or use another --checkpoint-dir")
        point = RestorePoint(int(state["stage"]), int(state["epoch"]), bool(state["stage_done"]))
        log.info("resuming after stage %d, epoch %d, from %s", point.stage + 1, point.epoch + 1, self.latest)
        return point

    def save(self, net: torch.nn.Module, *, stage: int, epoch: int, stage_done: bool, optim: dict | None,
             swa: dict | None, logs: list, best: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_folder(self.latest, overwrite=True, owned=lambda p: (p / "state.json").is_file()) as tmp:
            save_state_dict(tmp / "net.safetensors", net.state_dict())
            extra = {}
            for name, value in (("optim", optim), ("swa", swa)):
                if value is not None:
                    tensors, skeleton = flatten_state(value)
                    save_file(tensors, str(tmp / f"{name}.safetensors"))
                    extra[name] = skeleton
            if "state" in best:
                save_state_dict(tmp / "best.safetensors", best["state"])
            write_json(tmp / "state.json", {
                "stage": stage, "epoch": epoch, "stage_done": stage_done, "fingerprint": self.fingerprint,
                "logs": [dataclasses.asdict(e) for e in logs], "extra": extra,
                "best": {k: v for k, v in best.items() if k != "state"}})

    def load(self, net: torch.nn.Module, device: torch.device) -> dict[str, Any]:
        """Load the weights into ``net``; return the optimiser/SWA states, logs and best epoch."""
        from xmc.training.trainer import EpochLog

        state = read_json(self.latest / "state.json")
        net.load_state_dict(load_tensors_file(self.latest / "net.safetensors", device))
        out: dict[str, Any] = {"logs": [EpochLog(**e) for e in state["logs"]], "best": dict(state["best"])}
        for name, skeleton in state.get("extra", {}).items():
            out[name] = unflatten_state(skeleton, load_tensors_file(self.latest / f"{name}.safetensors", device))
        if (self.latest / "best.safetensors").is_file():
            out["best"]["state"] = load_tensors_file(self.latest / "best.safetensors", "cpu")
        return out
