"""The one training loop of every neural method.

A run is a list of :class:`Stage`\\ s: XR-Transformer has one per tree level (a step budget each),
LightXML and CascadeXML one (epochs), SyncXML a detached warm-up and then joint training. A stage
brings its loss, its batches, its parameter groups and optionally a setup (the modules it adds), an
evaluation and an epoch hook; the :class:`Trainer` owns everything else: AdamW (and SparseAdam for
sparse embedding tables), learning-rate schedules, gradient accumulation and clipping, AMP on CUDA,
SWA, per-epoch evaluation with best-checkpoint selection, atomic checkpoints, ``--resume`` and the
progress bar.

Every epoch starts from a seed derived from ``(seed, stage, epoch)``, and a checkpoint is written
after every epoch, so a run resumed after a kill produces the same weights as an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from xmc._config import Config, Interval, Options, option
from xmc.nn.device import autocast, resolve_device
from xmc.training import distributed
from xmc.utils.faults import kill_point
from xmc.utils.progress import progress

log = logging.getLogger(__name__)
SCHEDULES = ("linear", "one_cycle", "constant")


@dataclass(frozen=True, kw_only=True)
class OptimConfig(Config):
    lr: float = option(1e-4, "peak learning rate of the encoder", Interval(float, 0, None))
    head_lr: float = option(1e-3, "peak learning rate of the heads (and of a CNN encoder's classifier)",
                            Interval(float, 0, None))
    weight_decay: float = option(0.01, "AdamW weight decay (never on biases and LayerNorm)", Interval(float, 0, None))
    schedule: str = option("linear", "linear warm-up then decay, one_cycle (cosine up, cosine down), or constant",
                           Options(SCHEDULES))
    warmup: float = option(0.1, "share of the steps spent warming up", Interval(float, 0, 1))
    clip: float = option(1.0, "gradient-norm clipping (0 = none)", Interval(float, 0, None))
    head_decay: float = option(1.0, "the heads' weight decay as a multiple of weight_decay (CascadeXML's code: 0.1)",
                               Interval(float, 0, None))


@dataclass(frozen=True, kw_only=True)
class TrainConfig(Config):
    epochs: int = option(5, "passes over the training set", Interval(int, 1, None))
    batch_size: int = option(32, "documents per micro-batch", Interval(int, 1, None))
    grad_accum: int = option(1, "micro-batches accumulated into one optimiser step", Interval(int, 1, None))
    optim: OptimConfig = field(default_factory=OptimConfig)
    swa_start: int = option(0, "first epoch (1-based) whose steps are averaged into SWA weights (0 = no SWA)",
                            Interval(int, 0, None))
    swa_every: int = option(50, "optimiser steps between two SWA updates", Interval(int, 1, None))
    select: str = option("P@5", "dev metric that picks the best epoch's weights ('' = keep the last)")
    eval_docs: int = option(2000, "dev documents scored after every epoch (0 = none)", Interval(int, 0, None))
    amp: bool = option(True, "bfloat16 autocast on CUDA (ignored on CPU)")
    device: str = option("auto", "auto (CUDA when present), cpu, cuda or cuda:N")
    threads: int = option(0, "torch CPU threads (0 = torch's default)", Interval(int, 0, None))
    seed: int = option(0, "seed of batch order, dropout and initialisation", Interval(int, 0, None))


@dataclass
class ParamGroup:
    params: list[torch.nn.Parameter]
    lr: float
    weight_decay: float = 0.0
    sparse: bool = False  # trained by SparseAdam (embedding tables with sparse gradients)


@dataclass
class Stage:
    """One phase of a run. ``steps > 0`` gives it a step budget over an endless stream of batches
    (``batches`` may cycle); otherwise it makes ``epochs`` passes of ``n_batches`` batches each."""

    name: str
    loss: Callable[[Any], tuple[torch.Tensor, dict[str, float]]]
    batches: Callable[[np.random.Generator], Iterable[Any]]
    groups: Callable[[], list[ParamGroup]]
    steps: int = 0
    epochs: int = 1
    n_batches: int = 0
    warmup: float = 0.0  # steps when >= 1, else a share of the stage's steps
    schedule: str = "linear"
    clip: float = 1.0
    setup: Callable[[], None] | None = None
    evaluate: Callable[[], dict[str, float]] | None = None
    on_epoch_start: Callable[[int], None] | None = None
    on_end: Callable[[], None] | None = None  # after the stage's checkpoint is written
    keep_best: bool = True


@dataclass
class EpochLog:
    stage: str
    epoch: int
    steps: int
    seconds: float
    items_per_second: float
    loss: float
    dev: dict[str, float] = field(default_factory=dict)


def standard_groups(encoder: nn.Module | None, heads: Iterable[nn.Module], lr: float, head_lr: float,
                    weight_decay: float, head_weight_decay: float | None = None) -> list[ParamGroup]:
    """Encoder at ``lr``, heads at ``head_lr``; weight decay (``head_weight_decay`` for the heads,
    default the same) on matrices only (never on biases and LayerNorm); embedding tables with sparse
    gradients in a group of their own for SparseAdam."""
    groups = []
    head_weight_decay = weight_decay if head_weight_decay is None else head_weight_decay
    for modules, rate, decay_rate in (([encoder] if encoder is not None else [], lr, weight_decay),
                                      (list(heads), head_lr, head_weight_decay)):
        decay, no_decay, sparse = [], [], []
        for module in modules:
            sparse_ids = {id(m.weight) for m in module.modules() if isinstance(m, nn.Embedding) and m.sparse}
            for name, p in module.named_parameters():
                if not p.requires_grad:
                    continue
                if id(p) in sparse_ids:
                    sparse.append(p)
                elif p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name or name.endswith("bias"):
                    no_decay.append(p)
                else:
                    decay.append(p)
        groups += [ParamGroup(decay, rate, decay_rate), ParamGroup(no_decay, rate, 0.0),
                   ParamGroup(sparse, rate, 0.0, sparse=True)]
    return [g for g in groups if g.params]


def schedule_factor(kind: str, warmup: int, total: int) -> Callable[[int], float]:
    """The multiplier of the peak learning rate at each step."""
    def linear(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    def one_cycle(step: int) -> float:  # torch's OneCycleLR shape: from peak/25 up, then down to peak/1e4
        up = max(1, warmup)
        if step < up:
            return 1 / 25 + (1 - 1 / 25) * (1 - math.cos(math.pi * step / up)) / 2
        progress_down = min(1.0, (step - up) / max(1, total - up))
        return 1e-4 + (1 - 1e-4) * (1 + math.cos(math.pi * progress_down)) / 2

    return {"linear": linear, "one_cycle": one_cycle, "constant": lambda step: 1.0}[kind]


@torch.no_grad()
def clip_grad_norm(params: list[torch.Tensor], max_norm: float) -> float:
    """``torch.nn.utils.clip_grad_norm_`` that also takes sparse gradients (embedding rows)."""
    grads = []
    for p in params:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()
            grads.append((p.grad, p.grad.values()))
        else:
            grads.append((p.grad, p.grad))
    if not grads:
        return 0.0
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(v.float()) for _, v in grads]))
    scale = max_norm / (float(total) + 1e-6)
    if scale < 1.0:
        for g, _ in grads:
            g.mul_(scale)
    return float(total)


def epoch_seed(seed: int, stage: int, epoch: int) -> np.random.Generator:
    """Seed torch (dropout, initialisation) and return the batch-order generator of one epoch."""
    torch.manual_seed(seed * 1_000_003 + stage + 7919 * epoch)
    return np.random.default_rng([seed, stage] if epoch == 0 else [seed, stage, epoch])


class _Optimisers:
    """AdamW over the dense groups, SparseAdam over the sparse ones, one schedule for both."""

    def __init__(self, groups: list[ParamGroup], factor: Callable[[int], float]):
        dense = [{"params": g.params, "lr": g.lr, "weight_decay": g.weight_decay} for g in groups
                 if not g.sparse and g.lr > 0]
        sparse = [{"params": g.params, "lr": g.lr} for g in groups if g.sparse and g.lr > 0]
        # foreach: one multi-tensor kernel per update step instead of a loop over tensors; PyTorch
        # only picks it by itself on GPUs, and on CPU it made an InceptionXML step 18% faster
        self.optimizers = ([torch.optim.AdamW(dense, foreach=True)] if dense else []) + (
            [torch.optim.SparseAdam(sparse)] if sparse else [])
        self.schedulers = [torch.optim.lr_scheduler.LambdaLR(o, factor) for o in self.optimizers]
        self.params = [p for g in groups if g.lr > 0 for p in g.params]
        self.frozen = [p for g in groups if g.lr == 0 for p in g.params]  # a rate of 0: never moves

    def step(self) -> None:
        for optimizer, scheduler in zip(self.optimizers, self.schedulers, strict=True):
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        for p in self.frozen:
            p.grad = None

    def state_dict(self) -> dict[str, Any]:
        return {"optimizers": [o.state_dict() for o in self.optimizers],
                "schedulers": [s.state_dict() for s in self.schedulers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for o, s in zip(self.optimizers, state["optimizers"], strict=True):
            o.load_state_dict(s)
        for sch, s in zip(self.schedulers, state["schedulers"], strict=True):
            sch.load_state_dict(s)


class Trainer:
    """Runs the stages of one model; see the module docstring. ``checkpoints`` (a
    :class:`xmc.training.checkpoints.RunCheckpoints`) makes the run resumable."""

    def __init__(self, net: nn.Module, config: TrainConfig, checkpoints=None):
        self.net, self.config, self.checkpoints = net, config, checkpoints
        self.distributed, self.rank, self.world = False, 0, 1
        self.device = resolve_device(config.device)
        self.logs: list[EpochLog] = []
        self.best: dict[str, Any] = {}

    def run(self, stages: list[Stage]) -> list[EpochLog]:
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        self.net.to(self.device)
        self.distributed = distributed.init(self.device)
        self.rank, self.world = distributed.world() if self.distributed else (0, 1)
        if self.distributed and self.checkpoints is not None and self.rank != 0:
            self.checkpoints = _ReadOnly(self.checkpoints)  # every process resumes; only the first writes
        resume = self.checkpoints.restore_point() if self.checkpoints is not None else None
        for s, stage in enumerate(stages):
            rng = epoch_seed(self.config.seed, s, 0)  # before setup: a new head's initialisation is seeded too
            if stage.setup is not None:
                stage.setup()
            self.net.to(self.device)
            if resume is not None and s < resume.stage:
                continue
            first_epoch, saved = 0, None
            if resume is not None and s == resume.stage:
                saved = self.checkpoints.load(self.net, self.device)
                self.logs, self.best = saved["logs"], saved["best"]
                if resume.stage_done:
                    continue
                first_epoch = resume.epoch + 1
            self._run_stage(s, stage, first_epoch, saved, rng)
        return self.logs

    def _total_steps(self, stage: Stage) -> int:
        if stage.steps:
            return stage.steps
        return stage.epochs * math.ceil(stage.n_batches / self.config.grad_accum)

    def _run_stage(self, s: int, stage: Stage, first_epoch: int, saved: dict | None,
                   rng: np.random.Generator) -> None:
        total = self._total_steps(stage)
        warmup = int(stage.warmup) if stage.warmup >= 1 else int(stage.warmup * total)
        optim = _Optimisers(stage.groups(), schedule_factor(stage.schedule, warmup, total))
        swa = self._swa() if self.config.swa_start else None
        if saved is not None and saved.get("optim") is not None:
            optim.load_state_dict(saved["optim"])
            if swa is not None and saved.get("swa") is not None:
                swa.load_state_dict(saved["swa"])
        n_epochs = 1 if stage.steps else stage.epochs
        for epoch in range(first_epoch, n_epochs):
            if epoch > 0:
                rng = epoch_seed(self.config.seed, s, epoch)
            if stage.on_epoch_start is not None:
                stage.on_epoch_start(epoch)
            self.net.train()
            entry = self._run_epoch(stage, epoch, optim, swa, rng, total)
            if swa is not None and epoch + 1 >= self.config.swa_start and int(swa.n_averaged) > 0:
                self._evaluate_with(swa, stage, entry)
            elif stage.evaluate is not None:
                entry.dev = self._evaluate(stage)
            self._remember_best(stage, entry, swa)
            self.logs.append(entry)
            self._report(entry)
            last = epoch == n_epochs - 1
            if last:
                self._finish_stage(stage, swa)
            if self.checkpoints is not None:
                self.checkpoints.save(self.net, stage=s, epoch=epoch, stage_done=last,
                                      optim=None if last else optim.state_dict(),
                                      swa=None if last or swa is None else swa.state_dict(),
                                      logs=self.logs, best=self.best)
            kill_point("trainer:epoch")
        if stage.on_end is not None:
            stage.on_end()

    def _run_epoch(self, stage, epoch, optim, swa, rng, total) -> EpochLog:
        cfg = self.config
        batches = iter(stage.batches(rng))
        n_steps = stage.steps if stage.steps else math.ceil(stage.n_batches / cfg.grad_accum)
        losses, items, started, done = [], 0, time.perf_counter(), 0
        bar = progress(range(n_steps), desc=f"{stage.name} epoch {epoch + 1}" if not stage.steps else stage.name,
                       unit="step")
        for _ in bar:
            step_loss, n_micro = 0.0, 0
            for _ in range(cfg.grad_accum):
                batch = next(batches, None)
                if batch is None:
                    break
                batch = distributed.shard_rows(batch, self.rank, self.world)
                with autocast(self.device, cfg.amp):
                    loss, _ = stage.loss(batch)
                (loss / cfg.grad_accum).backward()
                step_loss += float(loss.detach())
                items += _batch_size(batch)
                n_micro += 1
            if n_micro == 0:
                break
            if self.distributed:
                distributed.average_gradients(optim.params)
            if stage.clip:
                clip_grad_norm(optim.params, stage.clip)
            optim.step()
            done += 1
            losses.append(step_loss / n_micro)
            if swa is not None and epoch + 1 >= cfg.swa_start and done % cfg.swa_every == 0:
                swa.update_parameters(self.net)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
            kill_point("trainer:step")
        seconds = time.perf_counter() - started
        return EpochLog(stage.name, epoch, done, seconds, items / max(seconds, 1e-9),
                        float(np.mean(losses[-50:])) if losses else float("nan"))

    def _swa(self):
        from torch.optim.swa_utils import AveragedModel

        return AveragedModel(self.net, use_buffers=True)

    def _evaluate(self, stage: Stage) -> dict[str, float]:
        was_training = self.net.training
        self.net.eval()
        try:
            with torch.no_grad(), autocast(self.device, self.config.amp):
                return stage.evaluate()
        finally:
            self.net.train(was_training)  # restored explicitly: dropout stays on for the rest of training

    def _evaluate_with(self, swa, stage: Stage, entry: EpochLog) -> None:
        """Dev metrics of the SWA weights (swapped in, then back)."""
        if stage.evaluate is None:
            return
        current = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        self.net.load_state_dict(swa.module.state_dict())
        try:
            entry.dev = self._evaluate(stage)
        finally:
            self.net.load_state_dict(current)

    def _remember_best(self, stage: Stage, entry: EpochLog, swa) -> None:
        key = self.config.select
        if not (stage.keep_best and key and key in entry.dev):
            return
        if entry.dev[key] > self.best.get("value", -math.inf) or self.best.get("stage") != stage.name:
            source = swa.module if swa is not None and entry.dev and int(swa.n_averaged) > 0 else self.net
            self.best = {"stage": stage.name, "epoch": entry.epoch, "value": entry.dev[key],
                         "state": {k: v.detach().cpu().clone() for k, v in source.state_dict().items()}}

    def _finish_stage(self, stage: Stage, swa) -> None:
        """The stage's final weights: the best epoch's when one was selected, else the SWA average
        when SWA ran, else the last step's."""
        if stage.keep_best and self.best.get("stage") == stage.name and "state" in self.best:
            self.net.load_state_dict(self.best["state"])
            log.info("%s: keeping epoch %d (%s %.2f)", stage.name, self.best["epoch"] + 1, self.config.select,
                     self.best["value"])
        elif swa is not None and int(swa.n_averaged) > 0:
            self.net.load_state_dict(swa.module.state_dict())

    def _report(self, entry: EpochLog) -> None:
        dev = "  ".join(f"dev {k} {v:.2f}" for k, v in entry.dev.items())
        log.info("%s epoch %d: %d steps in %.0fs, %.1f docs/s, loss %.4f  %s", entry.stage, entry.epoch + 1,
                 entry.steps, entry.seconds, entry.items_per_second, entry.loss, dev)


class _ReadOnly:
    """Checkpoints seen by every process but the first: they resume from them and never write."""

    def __init__(self, checkpoints):
        self.inner = checkpoints

    def restore_point(self):
        return self.inner.restore_point()

    def load(self, net, device):
        return self.inner.load(net, device)

    def save(self, *args, **kwargs) -> None:
        return None


def _batch_size(batch: Any) -> int:
    rows = batch.get("rows") if isinstance(batch, dict) else batch
    return int(len(rows)) if rows is not None else 0
