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
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from xmc._config import Config, Interval, Options, option
from xmc.metrics.ranking import precision_at_k
from xmc.nn.device import resolve_device
from xmc.nn.embed import embed
from xmc.nn.encoders import TextEncoder
from xmc.nn.heads import LOSSES, ShortlistHead, shortlist_loss
from xmc.nn.tokens import TokenizedTexts, bucketed_batches
from xmc.search.postprocess import combine_dense
from xmc.training.checkpoints import RunCheckpoints
from xmc.training.trainer import ParamGroup, Stage, TrainConfig, Trainer, standard_groups
from xmc.tree.label_tree import LabelTree
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


def _batches(tokens: TokenizedTexts, config: FinetuneConfig, rng: np.random.Generator):
    while True:
        for rows in bucketed_batches(tokens.lengths, config.batch_size, rng):
            yield {"rows": rows}


class _LevelNet(nn.Module):
    """The encoder and the heads trained so far (one per finished or current level)."""

    def __init__(self, encoder: TextEncoder, dropout: float):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleList()


class Finetuner:
    """Runs the schedule on :class:`xmc.training.trainer.Trainer`, one stage per tree level;
    ``heads[t]`` is level t's head once trained."""

    def __init__(self, encoder: TextEncoder, tree: LabelTree, config: FinetuneConfig, dropout: float = 0.1,
                 checkpoints: RunCheckpoints | None = None):
        self.encoder, self.tree, self.config = encoder, tree, config
        self.device = resolve_device(config.device)
        self.net = _LevelNet(encoder, dropout)
        self.checkpoints = checkpoints
        self.logs: list[LevelLog] = []

    @property
    def heads(self) -> list[ShortlistHead]:
        return list(self.net.heads)

    def run(self, tokens: TokenizedTexts, Y: sp.csr_matrix,
            eval_set: tuple[TokenizedTexts, sp.csr_matrix] | None = None,
            on_level_end: Callable[[int], None] | None = None) -> list[ShortlistHead]:
        cfg = self.config
        Ys = [binarize(self.tree.project_labels(Y, t)) for t in range(self.tree.depth)]
        steps = cfg.level_steps(self.tree.depth)
        stages = [self._stage(t, tokens, Ys, steps[t], eval_set, on_level_end) for t in range(self.tree.depth)]
        train = TrainConfig(batch_size=cfg.batch_size, grad_accum=cfg.grad_accum, select="", amp=cfg.amp,
                            device=cfg.device, threads=cfg.threads, seed=cfg.seed)
        epochs = Trainer(self.net, train, self.checkpoints).run(stages)
        self.logs = [LevelLog(t, self.tree.level_sizes[t], e.steps, e.seconds, e.items_per_second, e.loss, e.dev)
                     for t, e in enumerate(epochs)]
        return self.heads

    def _stage(self, t: int, tokens, Ys, n_steps, eval_set, on_level_end) -> Stage:
        cfg = self.config
        shortlist = Shortlister(self.tree, t, Ys[t], Ys[t - 1] if t else None, cfg.negatives, cfg.matcher_top)
        return Stage(
            name=f"fine-tune level {t + 1}/{self.tree.depth} ({self.tree.level_sizes[t]:,} nodes)",
            loss=lambda batch: self._loss(tokens, batch["rows"], t, shortlist),
            batches=lambda rng: _batches(tokens, cfg, rng),
            groups=lambda: self._groups(t, self.net.heads[t]),
            steps=n_steps, warmup=cfg.at_level("warmup", t), schedule="linear", clip=cfg.clip,
            setup=lambda: self.net.heads.append(self._new_head(t)),
            evaluate=(lambda: self._evaluate(t, *eval_set)) if eval_set is not None and cfg.eval_docs else None,
            on_end=(lambda: on_level_end(t)) if on_level_end is not None else None, keep_best=False)

    def _new_head(self, t: int) -> ShortlistHead:
        head = ShortlistHead(self.tree.level_sizes[t], self.encoder.dim).to(self.device)
        if t == 0:
            torch.nn.init.normal_(head.weight, std=0.02)
        else:
            head.inherit(self.net.heads[t - 1], torch.from_numpy(self.tree.parent_of(t)).to(self.device))
        return head

    def _groups(self, t: int, head: ShortlistHead) -> list[ParamGroup]:
        """The encoder at level t's rate and the head at its own, without weight decay on the head;
        with ``sparse_embeddings`` the word-embedding table gets sparse gradients (only the rows of a
        batch's tokens) and SparseAdam: most of a small encoder's parameters sit in that table, and a
        dense update of it costs every step."""
        cfg = self.config
        lr, head_lr = cfg.at_level("lr", t), cfg.at_level("head_lr", t)
        words = self.encoder.transformer.get_input_embeddings()
        train_words = not cfg.freeze_embeddings and lr > 0  # SparseAdam refuses a rate of 0
        words.weight.requires_grad_(train_words)
        words.sparse = cfg.sparse_embeddings and train_words and self.device.type == "cpu"
        return [*standard_groups(self.encoder, [], lr, 0.0, cfg.weight_decay),
                ParamGroup(list(head.parameters()), head_lr, 0.0)]

    def _loss(self, tokens: TokenizedTexts, rows: np.ndarray, t: int, shortlist: Shortlister):
        ids, mask = tokens.batch(rows)
        head = self.net.heads[t]
        parent = self.net.heads[t - 1] if t else None
        emb = self.net.dropout(self.encoder(ids.to(self.device), mask.to(self.device)))
        parent_scores = None
        if parent is not None and shortlist.use_man:
            with torch.no_grad():
                parent_scores = parent(emb.detach()).float()
        nodes, targets, pair_mask = shortlist(rows, parent_scores)
        scores = head(emb, torch.from_numpy(nodes).to(self.device))
        loss = shortlist_loss(scores, torch.from_numpy(targets).to(self.device),
                              torch.from_numpy(pair_mask).to(self.device), self.config.loss, self.config.pos_weight)
        return loss, {}

    def _evaluate(self, t: int, tokens: TokenizedTexts, Y: sp.csr_matrix) -> dict[str, float]:
        """P@k at level t of a beam search through heads 0..t on held-out documents."""
        rows = np.arange(min(len(tokens), self.config.eval_docs))
        emb = embed(self.encoder, tokens, self.config.embed_batch_size, self.device, rows=rows, amp=self.config.amp,
                    desc=f"score dev at level {t + 1}")
        with torch.no_grad():
            x = torch.from_numpy(emb).to(self.device)
            level_scores = [self.net.heads[s](x).float().cpu().numpy() for s in range(t + 1)]
        ranked = matcher_beam(level_scores, self.tree, beam_size=10)
        truth = binarize(self.tree.project_labels(Y[rows], t))
        return {f"P@{k}": 100 * float(precision_at_k(truth, ranked, k)) for k in (1, 3, 5) if k <= ranked.shape[1]}


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
