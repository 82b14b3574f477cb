"""A cascade of label levels read from one text encoder: the network of LightXML, CascadeXML and
SyncXML (each is a list of :class:`LevelSpec` and features, nothing more).

Level 0 scores all its nodes with a dense head; every later level scores only the children of the
parents the level above shortlists (its own top-k, with the true parents first while training),
with a candidate head. Each level reads one feature: taps of the encoder, concatenated, optionally
projected (CascadeXML reads a different layer per level; LightXML and SyncXML one feature for all).
The loss is the weighted sum of each level's binary cross-entropy; a prediction multiplies each
node's probability by its parent's path score (``weighted``: the product down the whole path), by
its parent's own probability only (``parent``: CascadeXML's official scoring), or keeps the
level's own (``level``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from xmc.nn.encoders import Tap, TapFeature
from xmc.nn.heads import CandidateHead, DenseHead, masked_bce
from xmc.nn.shortlist import ClusterShortlist, candidate_targets, dense_positives

SCHEMES = ("weighted", "parent", "level")


@dataclass(frozen=True)
class FeatureSpec:
    taps: tuple[int, ...]  # indices into the network's taps
    project: int = 0  # project the concatenation to this width (0 = keep it)
    dropout: float = 0.0


@dataclass(frozen=True)
class LevelSpec:
    n_nodes: int
    feature: int = 0  # which FeatureSpec the level reads
    dim: int = 0  # candidate-table width (0 = the feature's width; another width adds a bottleneck)
    hidden: int = 0  # a hidden block in front of the head (SyncXML)
    dropout: float = 0.0  # of that hidden block
    top_k: int = 10  # parents shortlisted from the level above (prediction may use another k)
    loss_weight: float = 1.0
    sparse: bool = False  # sparse gradients for the candidate table (SparseAdam)
    residual: bool = False  # the hidden block as InceptionXML's official residual block (hidden = feature width)
    out_dropout: float = 0.0  # dropout after that residual block


class CascadeNet(nn.Module):
    """``encoder(input_ids, attention_mask, taps)`` must return one ``(B, d)`` tensor per tap (a
    transformer's [CLS] or mean of named layers; a CNN returns its one feature whatever the taps).
    ``chains[t]`` (t >= 1) maps level t's nodes to level t-1's, as a ``(n_t, n_{t-1})`` 0/1 matrix."""

    def __init__(self, encoder: nn.Module, taps: tuple[Tap, ...], tap_dim: int, features: list[FeatureSpec],
                 levels: list[LevelSpec], chains: list[sp.csr_matrix]):
        super().__init__()
        self.encoder, self.taps = encoder, tuple(taps)
        self.feature_specs, self.level_specs = list(features), list(levels)
        self.features = nn.ModuleList(TapFeature(len(f.taps), tap_dim, f.project, f.dropout) for f in features)
        heads = []
        for t, level in enumerate(levels):
            in_dim = self.features[level.feature].dim
            if t == 0:
                heads.append(DenseHead(in_dim, level.n_nodes, level.hidden, level.dropout, level.residual,
                                       level.out_dropout))
            else:
                heads.append(CandidateHead(level.n_nodes, level.dim or in_dim, in_dim, level.hidden, level.dropout,
                                           level.sparse, level.residual, level.out_dropout))
        self.heads = nn.ModuleList(heads)
        self.shortlists = nn.ModuleList([nn.Identity()] + [ClusterShortlist(chains[t]) for t in range(1, len(levels))])
        self.detached: set[int] = set()  # levels whose head sees the features without their gradient

    def _features(self, input_ids, attention_mask, pooled: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        if pooled is None:
            pooled = self.encoder(input_ids, attention_mask, self.taps)
        return [f([pooled[i] for i in spec.taps]) for f, spec in zip(self.features, self.feature_specs, strict=True)]

    def loss(self, input_ids, attention_mask, Ys: list[sp.csr_matrix],
             pooled: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Weighted sum of the levels' BCE; ``Ys[t]`` holds the batch's positives at level t. ``pooled``:
        the taps' outputs given (cached from a frozen encoder, :mod:`xmc.training.warm`) instead of
        computed from the token ids."""
        feats = self._features(input_ids, attention_mask, pooled)
        device = feats[0].device
        total, logs, full = 0.0, {}, None
        for t, (level, head) in enumerate(zip(self.level_specs, self.heads, strict=True)):
            x = feats[level.feature]
            if t in self.detached:
                x = x.detach()
            if t == 0:
                logits = head(x)
                level_loss = masked_bce(logits, dense_positives(Ys[0], device).float())
                full = logits
            else:
                shortlist = self.shortlists[t]
                parents = shortlist.select(full, level.top_k, dense_positives(Ys[t - 1], device))
                candidates = shortlist.expand(parents)
                logits = head(x, candidates)
                level_loss = masked_bce(logits, candidate_targets(candidates, Ys[t]), candidates != level.n_nodes)
                if t + 1 < len(self.level_specs):
                    full = _scatter_full(logits.detach(), candidates, level.n_nodes)
            logs[f"loss{t}"] = float(level_loss.detach())
            total = total + level.loss_weight * level_loss
        return total, logs

    @torch.inference_mode()
    def predict(self, input_ids, attention_mask, top_k: int, shortlist_k: tuple[int, ...] | None = None,
                scheme: str = "weighted") -> tuple[torch.Tensor, torch.Tensor]:
        """``(indices, scores)`` of each row's ``top_k`` best nodes of the last level, scores in [0, 1]
        (``-1`` indices where a row has fewer candidates). ``shortlist_k[t - 1]`` overrides level t's
        ``top_k`` parents."""
        feats = self._features(input_ids, attention_mask)
        prob = own_full = torch.sigmoid(self.heads[0](feats[self.level_specs[0].feature]).float())
        candidates = None
        for t in range(1, len(self.level_specs)):
            level, shortlist = self.level_specs[t], self.shortlists[t]
            k = shortlist_k[t - 1] if shortlist_k and len(shortlist_k) >= t else level.top_k
            parents = shortlist.select(prob, k)
            candidates = shortlist.expand(parents)
            own = torch.sigmoid(self.heads[t](feats[level.feature], candidates).float())
            score = own
            if scheme != "level":  # weighted: the parent's path score; parent: the parent's own probability
                above = prob if scheme == "weighted" else own_full
                score = own * above.gather(1, parents).repeat_interleave(shortlist.width, dim=1)
            score = score.masked_fill(candidates == level.n_nodes, -1.0)
            if t + 1 < len(self.level_specs):
                prob = _scatter_full(score, candidates, level.n_nodes, fill=0.0).clamp_min(0.0)
                own_full = _scatter_full(own, candidates, level.n_nodes, fill=0.0)
            else:
                prob = score
        k = min(top_k, prob.shape[1])
        scores, pos = torch.topk(prob, k, dim=1)
        indices = pos if candidates is None else candidates.gather(1, pos)
        indices = indices.masked_fill(scores < 0, -1)
        return indices, scores


def _scatter_full(values: torch.Tensor, candidates: torch.Tensor, n_nodes: int, fill: float = -float("inf")):
    """``(B, n_nodes)`` with ``values`` at ``candidates`` and ``fill`` elsewhere (padding dropped)."""
    out = torch.full((values.shape[0], n_nodes + 1), fill, dtype=values.dtype, device=values.device)
    out.scatter_(1, candidates, values)
    return out[:, :n_nodes]


def topk_to_csr(indices: np.ndarray, scores: np.ndarray, n_cols: int) -> sp.csr_matrix:
    """Row-wise ``(indices, scores)`` (``-1`` = none) as a CSR of shape ``(B, n_cols)``."""
    keep = indices >= 0
    counts = keep.sum(1)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return sp.csr_matrix((scores[keep].astype(np.float32), indices[keep].astype(np.int32), indptr),
                         shape=(indices.shape[0], n_cols))
