"""Coarse-to-fine fine-tuning of a text encoder over the levels of a label tree (XR-Transformer).

At level t a linear head scores that level's nodes. A document is trained only on its shortlist:
the children of its true parents (teacher forcing, ``tfn``) and of the parents the level above
ranks highest for it (matcher-aware negatives, ``man``). The matcher's ranking is computed on the
fly from the batch's own embeddings and the frozen head of the level above, so it costs one small
matrix product per step instead of a pass over the training set per level. Each new head starts
from its parent's weights; the encoder carries over from level to level.

Every level starts from a seed derived from ``(seed, level)`` and ends with a checkpoint, so a
killed run resumed from its last checkpoint produces the same weights as an uninterrupted run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from xmc._config import Config, Interval, Options, option
from xmc.metrics.ranking import precision_at_k
from xmc.nn.device import autocast, resolve_device
from xmc.nn.embed import embed
from xmc.nn.encoders import TextEncoder
from xmc.nn.heads import LOSSES, ShortlistHead, shortlist_loss
from xmc.nn.tokens import TokenizedTexts, bucketed_batches
from xmc.search.postprocess import combine_dense
from xmc.training.checkpoints import LevelCheckpoints
from xmc.tree.label_tree import LabelTree
from xmc.utils.faults import kill_point
from xmc.utils.progress import progress
from xmc.utils.sparse import binarize

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig(Config):
    steps: tuple[int, ...] = option((300, 300, 600),
                                    "optimiser steps per tree level, coarse to fine (the last value repeats)",
                                    Interval(int, 0, None))
    batch_size: int = option(32, "documents per optimiser step (before accumulation)", Interval(int, 1, None))
    grad_accum: int = option(1, "micro-batches accumulated into one step", Interval(int, 1, None))
    lr: float | tuple[float, ...] = option(5e-5, "peak learning rate of the encoder (one value, or one per level)",
                                           Interval(float, 0, None))
    head_lr: float | tuple[float, ...] = option(1e-3, "peak learning rate of the heads (one value, or one per level)",
                                                Interval(float, 0, None))
    warmup: int | tuple[int, ...] = option(50, "warm-up steps at the start of a level (one value, or one per level)",
                                           Interval(int, 0, None))
    weight_decay: float = option(0.0, "AdamW weight decay", Interval(float, 0, None))
    clip: float = option(1.0, "gradient-norm clipping (0 = none)", Interval(float, 0, None))
    loss: str = option("squared_hinge", "loss on the shortlisted (document, node) pairs", Options(LOSSES))
    pos_weight: float = option(1.0, "weight of positive pairs relative to negatives",
                               Interval(float, 0, None, "neither"))
    matcher_top: int = option(10, "parents the level above proposes per document (man negatives)",
                              Interval(int, 0, None))
    negatives: str = option("tfn+man", "shortlist: tfn (true parents), man (matcher's top parents) or both",
                            Options(("tfn", "man", "tfn+man")))
    freeze_embeddings: bool = option(False, "keep the word-embedding table fixed (cheaper steps on a CPU)")
    sparse_embeddings: bool = option(True, "update only the word-embedding rows a batch uses (SparseAdam), "
                                           "not the whole table")
    device: str = option("auto", "auto (CUDA when present), cpu, cuda or cuda:N")
    amp: bool = option(True, "bfloat16 autocast on CUDA (ignored on CPU)")
    threads: int = option(0, "torch CPU threads (0 = torch's default)", Interval(int, 0, None))
    embed_batch_size: int = option(128, "documents per batch when embedding", Interval(int, 1, None))
    eval_docs: int = option(1000, "held-out documents scored after every level for the log (0 = none)",
                            Interval(int, 0, None))
    seed: int = option(0, "seed of batch order, dropout and head initialisation", Interval(int, 0, None))

    def at_level(self, name: str, t: int):
        """``name``'s value at tree level ``t``: a per-level sequence's last value repeats below its end."""
        value = getattr(self, name)
        return value[min(t, len(value) - 1)] if isinstance(value, tuple) else value

    def level_steps(self, depth: int) -> list[int]:
        return [self.at_level("steps", t) for t in range(depth)]


@dataclass
class LevelLog:
    level: int
    n_nodes: int
    steps: int
    seconds: float
    docs_per_second: float
    loss: float
    dev: dict[str, float] = field(default_factory=dict)


class Shortlister:
    """Which nodes each document of a batch is trained on at one level."""

    def __init__(self, tree: LabelTree, level: int, Y_level: sp.csr_matrix, Y_parent: sp.csr_matrix | None,
                 negatives: str, matcher_top: int):
        self.level, self.Y = level, Y_level
        self.Y_parent = Y_parent
        self.children = sp.csr_matrix(tree.chain[level].T) if level else None  # parent -> children
        self.use_tfn, self.use_man = "tfn" in negatives, "man" in negatives and matcher_top > 0
        self.matcher_top = matcher_top

    def __call__(self, rows: np.ndarray,
                 parent_scores: torch.Tensor | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(nodes, targets, mask)``: the batch's candidate nodes and dense ``(batch, nodes)``
        0/1 targets and mask."""
        Y = self.Y[rows]
        if self.level == 0:
            nodes = np.arange(self.Y.shape[1])
            return nodes, (Y.toarray() > 0).astype(np.float32), np.ones((rows.size, nodes.size), np.float32)
        parents = sp.csr_matrix((rows.size, self.children.shape[0]), dtype=np.float32)
        if self.use_tfn:
            parents = parents + self.Y_parent[rows]
        if self.use_man and parent_scores is not None:
            k = min(self.matcher_top, parent_scores.shape[1])
            top = torch.topk(parent_scores, k, dim=1).indices.cpu().numpy()
            matched = (np.ones(top.size, np.float32), top.ravel(), np.arange(0, top.size + 1, k))
            parents = parents + sp.csr_matrix(matched, shape=parents.shape)
        candidates = sp.csr_matrix(parents @ self.children)
        nodes = np.unique(candidates.indices)
        local = sp.csr_matrix((np.ones(candidates.nnz, np.float32), np.searchsorted(nodes, candidates.indices),
                               candidates.indptr), shape=(rows.size, nodes.size))
        mask = (local.toarray() > 0).astype(np.float32)
        targets = (Y[:, nodes].toarray() > 0).astype(np.float32) * mask
        return nodes, targets, mask


def _schedule(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _seed(config: FinetuneConfig, level: int) -> np.random.Generator:
    torch.manual_seed(config.seed * 1_000_003 + level)
    return np.random.default_rng([config.seed, level])


def _batches(tokens: TokenizedTexts, config: FinetuneConfig, rng: np.random.Generator):
    while True:
        yield from bucketed_batches(tokens.lengths, config.batch_size, rng)


class Finetuner:
    """Runs the schedule; ``heads[t]`` is level t's head once trained."""

    def __init__(self, encoder: TextEncoder, tree: LabelTree, config: FinetuneConfig, dropout: float = 0.1,
                 checkpoints: LevelCheckpoints | None = None):
        self.encoder, self.tree, self.config = encoder, tree, config
        self.device = resolve_device(config.device)
        self.dropout = torch.nn.Dropout(dropout)
        self.checkpoints = checkpoints
        self.heads: list[ShortlistHead] = []
        self.logs: list[LevelLog] = []

    def run(self, tokens: TokenizedTexts, Y: sp.csr_matrix,
            eval_set: tuple[TokenizedTexts, sp.csr_matrix] | None = None,
            on_level_end: Callable[[int], None] | None = None) -> list[ShortlistHead]:
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        self.encoder.to(self.device)
        start = 0
        if self.checkpoints is not None:
            start = self.checkpoints.restore(self)
        Ys = [binarize(self.tree.project_labels(Y, t)) for t in range(self.tree.depth)]
        steps = self.config.level_steps(self.tree.depth)
        for t in range(start, self.tree.depth):
            self._train_level(t, tokens, Ys, steps[t])
            if eval_set is not None and self.config.eval_docs:
                self.logs[-1].dev = self._evaluate(t, *eval_set)
            self._report(self.logs[-1])
            if self.checkpoints is not None:
                self.checkpoints.save(self, t)
            if on_level_end is not None:
                on_level_end(t)
        return self.heads

    def _new_head(self, t: int) -> ShortlistHead:
        head = ShortlistHead(self.tree.level_sizes[t], self.encoder.dim).to(self.device)
        if t == 0:
            torch.nn.init.normal_(head.weight, std=0.02)
        else:
            head.inherit(self.heads[t - 1], torch.from_numpy(self.tree.parent_of(t)).to(self.device))
        return head

    def _optimizer(self, t: int, head: ShortlistHead,
                   total: int) -> list[tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]]:
        """AdamW on the encoder and the head; with ``sparse_embeddings``, SparseAdam on the word
        embeddings, whose gradient then holds only the rows of the batch's tokens (most of a
        small encoder's parameters sit in that table, and a dense update of it costs every step)."""
        cfg = self.config
        lr, head_lr = cfg.at_level("lr", t), cfg.at_level("head_lr", t)
        words = self.encoder.transformer.get_input_embeddings()
        train_words = not cfg.freeze_embeddings and lr > 0  # SparseAdam refuses a rate of 0
        words.weight.requires_grad_(train_words)
        sparse = cfg.sparse_embeddings and train_words and self.device.type == "cpu"
        words.sparse = sparse
        dense_params = [p for p in self.encoder.parameters() if p.requires_grad and not (sparse and p is words.weight)]
        groups = [{"params": dense_params, "lr": lr},
                  {"params": list(head.parameters()), "lr": head_lr, "weight_decay": 0.0}]
        optimizers = [torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)]
        if sparse:
            optimizers.append(torch.optim.SparseAdam([words.weight], lr=lr))
        return [(opt, _schedule(opt, cfg.at_level("warmup", t), total)) for opt in optimizers]

    def _train_level(self, t: int, tokens: TokenizedTexts, Ys: list[sp.csr_matrix], n_steps: int) -> None:
        cfg = self.config
        rng = _seed(cfg, t)
        head = self._new_head(t)
        parent = self.heads[t - 1] if t else None
        shortlist = Shortlister(self.tree, t, Ys[t], Ys[t - 1] if t else None, cfg.negatives, cfg.matcher_top)
        optimizers = self._optimizer(t, head, n_steps)
        params = [p for opt, _ in optimizers for g in opt.param_groups for p in g["params"]]
        self.encoder.train()
        batches = _batches(tokens, cfg, rng)
        losses, docs, started = [], 0, time.perf_counter()
        bar = progress(range(n_steps), desc=f"fine-tune level {t + 1}/{self.tree.depth} ({head.n_nodes:,} nodes)",
                       unit="step")
        for _ in bar:
            step_loss = 0.0
            for _ in range(cfg.grad_accum):
                rows = next(batches)
                step_loss += self._micro_step(tokens, rows, head, parent, shortlist) / cfg.grad_accum
                docs += rows.size
            if cfg.clip:
                clip_grad_norm(params, cfg.clip)
            for optimizer, scheduler in optimizers:
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            losses.append(step_loss)
            kill_point("finetune:step")
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        seconds = time.perf_counter() - started
        self.heads.append(head)
        self.logs.append(LevelLog(t, head.n_nodes, n_steps, seconds, docs / max(seconds, 1e-9),
                                  float(np.mean(losses[-50:])) if losses else float("nan")))

    def _micro_step(self, tokens, rows, head, parent, shortlist) -> float:
        ids, mask = tokens.batch(rows)
        with autocast(self.device, self.config.amp):
            emb = self.encoder(ids.to(self.device), mask.to(self.device))
            emb = self.dropout(emb)
            parent_scores = None
            if parent is not None and shortlist.use_man:
                with torch.no_grad():
                    parent_scores = parent(emb.detach()).float()
            nodes, targets, pair_mask = shortlist(rows, parent_scores)
            scores = head(emb, torch.from_numpy(nodes).to(self.device))
        loss = shortlist_loss(scores, torch.from_numpy(targets).to(self.device),
                              torch.from_numpy(pair_mask).to(self.device), self.config.loss, self.config.pos_weight)
        (loss / self.config.grad_accum).backward()
        return float(loss.detach())

    def _evaluate(self, t: int, tokens: TokenizedTexts, Y: sp.csr_matrix) -> dict[str, float]:
        """P@k at level t of a beam search through heads 0..t on held-out documents."""
        rows = np.arange(min(len(tokens), self.config.eval_docs))
        emb = embed(self.encoder, tokens, self.config.embed_batch_size, self.device, rows=rows, amp=self.config.amp,
                    desc=f"score dev at level {t + 1}")
        with torch.no_grad():
            x = torch.from_numpy(emb).to(self.device)
            level_scores = [self.heads[s](x).float().cpu().numpy() for s in range(t + 1)]
        ranked = matcher_beam(level_scores, self.tree, beam_size=10)
        truth = binarize(self.tree.project_labels(Y[rows], t))
        return {f"P@{k}": 100 * float(precision_at_k(truth, ranked, k)) for k in (1, 3, 5) if k <= ranked.shape[1]}

    def _report(self, entry: LevelLog) -> None:
        dev = "  ".join(f"dev {k} {v:.2f}" for k, v in entry.dev.items())
        log.info("level %d (%d nodes): %d steps in %.0fs, %.1f docs/s, loss %.4f  %s", entry.level + 1, entry.n_nodes,
                 entry.steps, entry.seconds, entry.docs_per_second, entry.loss, dev)


@torch.no_grad()
def clip_grad_norm(params: list[torch.Tensor], max_norm: float) -> float:
    """``torch.nn.utils.clip_grad_norm_`` that also takes sparse gradients (the embedding rows)."""
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


def matcher_beam(level_scores: list[np.ndarray], tree: LabelTree, beam_size: int) -> sp.csr_matrix:
    """Beam search over dense per-level head scores (small evaluation sets): a node's path score is
    its parent's times ``exp(-max(0, 1 - s)^3)`` (PECOS's l3-hinge), the beam keeps the best
    ``beam_size`` nodes per level. Returns CSR path scores of the last level's beam."""
    n = level_scores[0].shape[0]
    path = combine_dense(level_scores[0], 1.0, "l3-hinge")
    for t in range(1, len(level_scores)):
        keep = np.argsort(-path, axis=1)[:, :beam_size]
        parent_score = np.zeros_like(path)
        np.put_along_axis(parent_score, keep, np.take_along_axis(path, keep, 1), 1)
        path = combine_dense(level_scores[t], parent_score[:, tree.parent_of(t)], "l3-hinge")
    k = min(beam_size, path.shape[1])
    top = np.argsort(-path, axis=1)[:, :k]
    values = np.take_along_axis(path, top, 1)
    return sp.csr_matrix((values.ravel().astype(np.float32), top.ravel(), np.arange(0, n * k + 1, k)),
                         shape=path.shape)
