"""ELIAS's learned label index: a sparse, weighted cluster -> label graph in which a label may hang
under several clusters (Gupta et al., NeurIPS 2022).

Each of the C clusters owns ``kappa`` label *slots* (a ``(C, kappa)`` table of label ids, padded
with ``n_labels``) and one learnable value per slot. While the index is *fixed* (stage 1) a slot
weighs 1; once *learned* (stage 2) a cluster's slot values become weights
``min(1, beta x softmax(row))`` over its filled slots. Padding slots are masked out of the softmax
(the official code lets them take a share); that is a choice of ours, so that a cluster's weights do
not depend on how many of its slots are empty.

Everything here costs O(B x b x kappa) per batch (b clusters shortlisted per document) or
O(C x kappa + L) per refresh, never O(C x L) and never a dense ``(B, L)`` tensor: duplicates of a
label reached through two clusters are found by sorting each row, not by scattering into a row of
every label.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn


class LearnedIndex(nn.Module):
    """``n_clusters`` clusters with ``kappa`` label slots each over ``n_labels`` labels."""

    def __init__(self, n_clusters: int, n_labels: int, kappa: int, beta: float = 150.0):
        super().__init__()
        self.n_clusters, self.n_labels, self.kappa, self.beta = n_clusters, n_labels, kappa, float(beta)
        self.register_buffer("slots", torch.full((n_clusters, kappa), n_labels, dtype=torch.int64))
        self.register_buffer("parent", torch.full((n_labels + 1,), n_clusters, dtype=torch.int64))
        self.register_buffer("learned", torch.zeros((), dtype=torch.bool))
        self.register_buffer("width", torch.zeros((), dtype=torch.int64))  # slots in use (the fixed index's widest)
        self.edge_logits = nn.Parameter(torch.zeros(n_clusters, kappa))

    @property
    def is_learned(self) -> bool:
        return bool(self.learned)

    @property
    def slot_width(self) -> int:
        """Slots a cluster expands to: kappa once learned, the fixed index's widest cluster before."""
        return self.kappa if self.is_learned else int(self.width)

    # -- building ----------------------------------------------------------------------------------
    @torch.no_grad()
    def assign(self, assignment: sp.spmatrix) -> None:
        """The fixed index of a label tree's leaves: ``assignment`` ``(n_labels, n_clusters)``, one
        cluster per label; every slot weighs 1."""
        A = sp.csc_matrix(assignment, dtype=np.float32)
        self._fill(A)
        self.learned.fill_(False)
        self.refresh_parents()

    @torch.no_grad()
    def set_adjacency(self, adjacency: sp.spmatrix, init: str = "uniform",
                      generator: torch.Generator | None = None) -> None:
        """The learned index from ``adjacency`` ``(n_labels, n_clusters)``: each cluster keeps its
        ``kappa`` heaviest labels. Slot values start as the official code's (``uniform``: random in
        [0, 1), so every edge of a cluster weighs about the same), or (``weights``) as the log of
        the adjacency's values, so that a cluster's softmax starts proportional to them."""
        A = sp.csc_matrix(adjacency, dtype=np.float32)
        values = self._fill(A)
        if init == "uniform":
            logits = torch.rand(self.edge_logits.shape, generator=generator)
        elif init == "weights":
            logits = torch.from_numpy(np.log(np.maximum(values, 1e-12)))
        else:
            raise ValueError(f"init must be uniform or weights, got {init!r}")
        self.edge_logits.copy_(logits.to(self.edge_logits.device))
        self.learned.fill_(True)
        self.refresh_parents()

    def _fill(self, A: sp.csc_matrix) -> np.ndarray:
        """Slots from ``A``'s columns (heaviest first); returns the slots' values (0 for padding)."""
        if A.shape != (self.n_labels, self.n_clusters):
            raise ValueError(f"an index of {self.n_labels} labels x {self.n_clusters} clusters, got {A.shape}")
        table = np.full((self.n_clusters, self.kappa), self.n_labels, dtype=np.int64)
        values = np.zeros((self.n_clusters, self.kappa), dtype=np.float32)
        widest = 0
        for c in range(self.n_clusters):  # C columns, each sorted once: O(nnz log kappa)
            rows, vals = A.indices[A.indptr[c]:A.indptr[c + 1]], A.data[A.indptr[c]:A.indptr[c + 1]]
            keep = np.argsort(-vals, kind="stable")[: self.kappa]
            table[c, : keep.size], values[c, : keep.size] = rows[keep], vals[keep]
            widest = max(widest, keep.size)
        self.slots.copy_(torch.from_numpy(table).to(self.slots.device))
        self.width.fill_(widest)
        return values

    # -- the graph ---------------------------------------------------------------------------------
    def slot_weights(self, clusters: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(labels, weights)`` of the slots of ``clusters`` (any shape S): ``S + (w,)`` each, where
        w is ``kappa`` once learned and the fixed index's widest cluster before."""
        if not self.is_learned:
            labels = self.slots[:, : int(self.width)][clusters]
            return labels, (labels != self.n_labels).to(torch.float32)
        labels = self.slots[clusters]
        logits = self.edge_logits[clusters].float().masked_fill(labels == self.n_labels, float("-inf"))
        weights = torch.softmax(logits, dim=-1).nan_to_num(0.0)  # a cluster with no label: all zero
        return labels, (self.beta * weights).clamp(max=1.0)

    @torch.no_grad()
    def refresh_parents(self) -> None:
        """Each label's parent: its highest-weight cluster (``n_clusters`` for a label in none).
        O(C x kappa log): every slot sorted by weight, then by label, first of each label wins."""
        labels, weights = self.slot_weights(torch.arange(self.n_clusters, device=self.slots.device))
        clusters = torch.arange(self.n_clusters, device=labels.device).repeat_interleave(labels.shape[1])
        labels, weights = labels.reshape(-1), weights.reshape(-1)
        order = torch.sort(weights, descending=True, stable=True).indices
        order = order[torch.sort(labels[order], stable=True).indices]
        labels, clusters = labels[order], clusters[order]
        first = torch.ones_like(labels, dtype=torch.bool)
        first[1:] = labels[1:] != labels[:-1]
        parent = torch.full_like(self.parent, self.n_clusters)
        parent[labels[first]] = clusters[first]
        parent[self.n_labels] = self.n_clusters
        self.parent.copy_(parent)

    def expand(self, clusters: torch.Tensor, cluster_scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(labels, path)`` ``(B, b x w)``: every label under the ``(B, b)`` shortlisted clusters, with
        path score = cluster score x edge weight. A label reached through two clusters keeps its
        best path; its other copies become padding (label ``n_labels``, path 0)."""
        labels, weights = self.slot_weights(clusters)
        B = clusters.shape[0]
        labels = labels.reshape(B, -1)
        path = (cluster_scores.unsqueeze(-1) * weights).reshape(B, -1)
        if self.is_learned:  # a label can sit under several clusters only once learned
            labels, path = dedupe_best(labels, path, self.n_labels)
        return labels, path


def dedupe_best(labels: torch.Tensor, scores: torch.Tensor, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ``(labels, scores)`` with every repeated label but its best-scored copy replaced by
    ``pad`` (score 0). Sorted by score, then stably by label, so the first copy of a label is its best."""
    by_score = torch.sort(scores, dim=1, descending=True, stable=True).indices
    labels, scores = labels.gather(1, by_score), scores.gather(1, by_score)
    by_label = torch.sort(labels, dim=1, stable=True).indices
    sorted_labels = labels.gather(1, by_label)
    repeat = torch.zeros_like(sorted_labels, dtype=torch.bool)
    repeat[:, 1:] = sorted_labels[:, 1:] == sorted_labels[:, :-1]
    drop = torch.zeros_like(repeat).scatter(1, by_label, repeat)  # back to score order
    return labels.masked_fill(drop, pad), scores.masked_fill(drop, 0.0)


def approx_adjacency(matches: sp.spmatrix, Y: sp.spmatrix, kappa: int,
                     keep: sp.spmatrix | None = None) -> sp.csr_matrix:
    """ELIAS's ``A_approx``: ``Y^T M`` ``(n_labels, n_clusters)`` from the clusters a model shortlists
    for each training document (``matches`` ``(n_docs, n_clusters)``, its cluster scores), cut to the
    ``kappa`` heaviest labels of every cluster.

    ``keep`` ``(n_labels, n_clusters)`` (the fixed index's assignment) is always kept, ahead of the
    rest: in the official code a label that no cluster ranks in its top kappa is lost for good (its
    parent becomes cluster 0); here every label stays reachable through the cluster it started in.
    """
    S = sp.csc_matrix(sp.csr_matrix(Y, dtype=np.float32).T @ sp.csr_matrix(matches, dtype=np.float32))
    if keep is not None:
        K = sp.csc_matrix(keep, dtype=np.float32)
        top = float(S.data.max()) if S.nnz else 0.0
        S = sp.csc_matrix(S + K * (1.0 + top))
    S.eliminate_zeros()
    rows, cols, vals = [], [], []
    for c in range(S.shape[1]):
        lo, hi = S.indptr[c], S.indptr[c + 1]
        keep_idx = np.argsort(-S.data[lo:hi], kind="stable")[:kappa]
        rows.append(S.indices[lo:hi][keep_idx])
        cols.append(np.full(keep_idx.size, c, dtype=np.int64))
        vals.append(S.data[lo:hi][keep_idx])
    if not rows:
        return sp.csr_matrix(S.shape, dtype=np.float32)
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=S.shape,
                         dtype=np.float32)
