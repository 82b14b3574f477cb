"""ELIAS's network (Gupta et al., "ELIAS: End-to-end Learning to Index and Search in Large Output
Spaces", NeurIPS 2022; nilesh2797/ELIAS ``nets.py``, ``losses.py``).

One encoder feature feeds a cluster head and a label head; between them sits the
:class:`~xmc.nn.index.LearnedIndex`. A document's clusters score ``min(1, alpha x softmax)``; the
top ``beam`` clusters expand to their labels with path score = cluster score x edge weight (a label
reached twice keeps its best path); the ``shortlist`` labels with the best paths are scored by the
label head, and a label's final score is path x sigmoid(label logit).

Loss: BCE on the final scores of the shortlist, plus ``recall_weight`` x BCE on the path scores of
the positives the expanded shortlist holds (the recall term, which teaches the index to surface
positives). While training, every positive's parent cluster is shortlisted ahead of the model's
own choices and every positive is kept in the label shortlist (the official code forces the
clusters, and relies on a shortlist of 2,000 to keep the labels; on a small one it would not).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from xmc.nn.encoders import Tap, TapFeature
from xmc.nn.heads import CandidateHead, DenseHead
from xmc.nn.index import LearnedIndex
from xmc.nn.shortlist import candidate_targets, dense_positives

EPS = 1e-7


class EliasNet(nn.Module):
    """``encoder(input_ids, attention_mask, taps)`` returns one ``(B, d)`` tensor per tap (as for
    :class:`xmc.nn.cascade.CascadeNet`, so warm heads and the int8 encoder work alike)."""

    def __init__(self, encoder: nn.Module, taps: tuple[Tap, ...], tap_dim: int, n_clusters: int, n_labels: int, *,
                 kappa: int, beam: int, shortlist: int, alpha: float = 10.0, beta: float = 150.0, label_dim: int = 0,
                 dropout: float = 0.5, sparse: bool = False):
        super().__init__()
        self.encoder, self.taps = encoder, tuple(taps)
        self.features = nn.ModuleList([TapFeature(len(taps), tap_dim, 0, dropout)])
        dim = self.features[0].dim
        self.heads = nn.ModuleList([DenseHead(dim, n_clusters),
                                    CandidateHead(n_labels, label_dim or dim, dim, sparse=sparse)])
        self.index = LearnedIndex(n_clusters, n_labels, kappa, beta)
        self.alpha, self.beam, self.shortlist_k = float(alpha), int(beam), int(shortlist)
        self.recall_weight = 0.0  # set by the stage that trains the net
        self.dense_labels: bool | None = None  # None: chosen by size (see _dense); tests force either path

    @property
    def n_labels(self) -> int:
        return self.index.n_labels

    def feature(self, input_ids, attention_mask, pooled: list[torch.Tensor] | None = None) -> torch.Tensor:
        """The embedding both heads read (taps concatenated, dropout while training)."""
        if pooled is None:
            pooled = self.encoder(input_ids, attention_mask, self.taps)
        return self.features[0](pooled)

    def cluster_scores(self, x: torch.Tensor) -> torch.Tensor:
        return (self.alpha * torch.softmax(self.heads[0](x).float(), dim=1)).clamp(max=1.0)

    def _clusters(self, scores: torch.Tensor, beam: int, positives: torch.Tensor | None) -> torch.Tensor:
        """The ``beam`` best clusters; while training every positive's parent first (the beam widens
        to hold them all)."""
        priority = scores.detach()
        if positives is not None:
            beam = max(beam, int(positives.sum(1).max()) if positives.numel() else 0)
            priority = priority.masked_fill(positives, float("inf"))
        return torch.topk(priority, max(1, min(beam, scores.shape[1])), dim=1).indices

    def _parent_mask(self, Y_rows: sp.csr_matrix, device) -> torch.Tensor:
        """``(B, C)`` True at each positive's parent cluster."""
        rows = np.repeat(np.arange(Y_rows.shape[0]), np.diff(Y_rows.indptr))
        parents = self.index.parent[torch.from_numpy(Y_rows.indices.astype(np.int64)).to(device)]
        mask = torch.zeros((Y_rows.shape[0], self.index.n_clusters + 1), dtype=torch.bool, device=device)
        mask[torch.from_numpy(rows).to(device), parents] = True
        return mask[:, :-1]  # column C: labels in no cluster (none once the index keeps every label)

    def shortlist(self, x: torch.Tensor, Y_rows: sp.csr_matrix | None = None, beam: int | None = None,
                  k: int | None = None):
        """``(labels, path, targets, positive_paths)``: each row's label shortlist ``(B, K)`` with its
        path scores (labels ``n_labels`` = padding, path 0), and with ``Y_rows`` (training: the
        positives forced in) the targets and the path scores of the positives the expanded shortlist
        reached (what the recall term reads); targets and positive_paths are None without it."""
        Y_rows = None if Y_rows is None else sp.csr_matrix(Y_rows)
        scores = self.cluster_scores(x)
        forced = None if Y_rows is None else self._parent_mask(Y_rows, x.device)
        clusters = self._clusters(scores, beam or self.beam, forced)
        k = k or self.shortlist_k
        if self._dense(clusters.shape[1]):
            return self._shortlist_dense(clusters, scores, Y_rows, k)
        return self._shortlist_sparse(clusters, scores, Y_rows, k)

    def _dense(self, n_clusters: int) -> bool:
        """Whether the expanded shortlist is gathered into a ``(B, L)`` row per document: cheaper than
        sorting it once it reaches a quarter of the labels (EURLEX57K's 4k labels), never at scale."""
        if self.dense_labels is not None:
            return self.dense_labels
        return self.n_labels <= 4 * n_clusters * self.index.slot_width

    def _shortlist_sparse(self, clusters, scores, Y_rows, k):
        labels, path = self.index.expand(clusters, scores.gather(1, clusters))
        targets = None if Y_rows is None else candidate_targets(labels, Y_rows)
        k = min(k, labels.shape[1])
        priority = path.detach().masked_fill(labels == self.n_labels, -1.0)
        if targets is not None:
            k = max(k, int(targets.sum(1).max()))
            priority = priority + 2.0 * targets  # positives first (paths are at most 1)
        top = torch.topk(priority, k, dim=1).indices
        positive_paths = None if targets is None else path[targets > 0]
        return (labels.gather(1, top), path.gather(1, top), None if targets is None else targets.gather(1, top),
                positive_paths)

    def _shortlist_dense(self, clusters, scores, Y_rows, k):
        B, L = clusters.shape[0], self.n_labels
        labels, weights = self.index.slot_weights(clusters)
        labels = labels.reshape(B, -1)
        entries = (scores.gather(1, clusters).unsqueeze(-1) * weights).reshape(B, -1)
        # a label reached twice keeps its best path: the max over its copies
        path = torch.zeros((B, L + 1), dtype=entries.dtype, device=entries.device)
        path = path.scatter_reduce(1, labels, entries, "amax", include_self=False)
        reached = torch.zeros((B, L + 1), dtype=torch.bool, device=labels.device).scatter_(1, labels, True)
        reached[:, L] = False
        priority = path.detach().masked_fill(~reached, -1.0)
        targets = None
        k = min(k, L)
        if Y_rows is not None:
            targets = torch.zeros((B, L + 1), device=labels.device)
            targets[:, :L] = dense_positives(Y_rows, labels.device).float()
            targets = targets * reached
            k = max(k, int(targets.sum(1).max()))
            priority = priority + 2.0 * targets
        top = torch.topk(priority, k, dim=1).indices
        missing = ~reached.gather(1, top)
        out_labels = top.masked_fill(missing, L)
        out_path = path.gather(1, top).masked_fill(missing, 0.0)
        if targets is None:
            return out_labels, out_path, None, None
        return out_labels, out_path, targets.gather(1, top), path[targets > 0]

    def label_logits(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The label head's logits of ``labels`` ``(B, K)``: one matrix product over every label
        gathered at the shortlist while that is cheaper (a dense table at a few thousand labels),
        else each document's own rows of the table."""
        head = self.heads[1]
        if not head.table.sparse and self.n_labels <= 16 * labels.shape[1]:
            return head.score_all(x).gather(1, labels)
        return head(x, labels)

    def loss(self, input_ids, attention_mask, Ys: list[sp.csr_matrix],
             pooled: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """``Ys[-1]``: the batch's label rows (earlier entries, the tree's levels, are not read)."""
        x = self.feature(input_ids, attention_mask, pooled)
        labels, path, targets, positive_paths = self.shortlist(x, Ys[-1])
        final = path * torch.sigmoid(self.label_logits(x, labels).float())
        real = (labels != self.n_labels).float()
        per = F.binary_cross_entropy(final.clamp(EPS, 1 - EPS), targets, reduction="none")
        classify = (per * real).sum() / real.sum().clamp_min(1.0)
        total, logs = classify, {"classify": float(classify.detach())}
        if self.recall_weight:
            recall = -torch.log(positive_paths.clamp(EPS, 1.0)).mean() if positive_paths.numel() else classify * 0
            total = total + self.recall_weight * recall
            logs["recall"] = float(recall.detach())
        return total, logs

    @torch.inference_mode()
    def predict(self, input_ids, attention_mask, top_k: int, shortlist_k: tuple[int, ...] | None = None,
                scheme: str = "", x: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(indices, scores)`` of each row's ``top_k`` labels (``-1`` where a row has fewer);
        ``shortlist_k[0]`` overrides the beam of clusters. ``scheme`` is the cascades' and ignored."""
        if x is None:
            x = self.feature(input_ids, attention_mask)
        beam = shortlist_k[0] if shortlist_k else None
        labels, path, _, _ = self.shortlist(x, beam=beam)
        final = (path * torch.sigmoid(self.label_logits(x, labels).float())).masked_fill(labels == self.n_labels, -1.0)
        scores, pos = torch.topk(final, min(top_k, final.shape[1]), dim=1)
        indices = labels.gather(1, pos).masked_fill(scores < 0, -1)
        return indices, scores

    @torch.inference_mode()
    def candidates(self, input_ids, attention_mask, beam: int | None = None) -> torch.Tensor:
        """``(B, K)`` label shortlist before ranking (``n_labels`` = padding): what the recall of the
        index is measured on."""
        return self.shortlist(self.feature(input_ids, attention_mask), beam=beam)[0]
