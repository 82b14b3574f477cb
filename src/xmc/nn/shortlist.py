"""The shortlist sampler shared by every neural method: the model's own top-k parents, the true
parents added first while training (teacher forcing), expanded to their children as padded
candidate lists; and which candidates are positive. All of it is vectorised tensor work, on the
device the scores live on: no per-document Python loops.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn


class ClusterShortlist(nn.Module):
    """The children of one tree level's parents, as a ``(n_parents, width)`` table padded with
    ``n_children`` (the candidate heads' padding row)."""

    def __init__(self, C: sp.csr_matrix):
        super().__init__()
        C = sp.csc_matrix(C)  # (n_children, n_parents): column p lists p's children
        self.n_children, self.n_parents = C.shape
        counts = np.diff(C.indptr)
        width = int(counts.max()) if counts.size else 0
        table = np.full((self.n_parents, width), self.n_children, dtype=np.int64)
        slot = np.arange(C.nnz) - np.repeat(C.indptr[:-1], counts)
        table[np.repeat(np.arange(self.n_parents), counts), slot] = C.indices
        self.register_buffer("table", torch.from_numpy(table), persistent=False)

    @property
    def width(self) -> int:
        return self.table.shape[1]

    def select(self, scores: torch.Tensor, k: int, positives: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, k')`` parents: the ``k`` best by ``scores``; with ``positives`` (a ``(B, n_parents)``
        boolean mask) every true parent comes first and ``k' = max(k, most true parents of a row)``,
        so no positive is ever left out of the shortlist."""
        scores = scores.detach().float()
        if positives is not None:
            k = max(k, int(positives.sum(1).max()) if positives.numel() else 0)
            scores = scores.masked_fill(positives, float("inf"))
        k = max(1, min(k, scores.shape[1]))
        return torch.topk(scores, k, dim=1).indices

    def expand(self, parents: torch.Tensor) -> torch.Tensor:
        """``(B, k * width)`` children of ``parents``, padded with ``n_children``."""
        return self.table[parents].reshape(parents.shape[0], -1)


def dense_positives(Y_rows: sp.csr_matrix, device: torch.device | str = "cpu") -> torch.Tensor:
    """A ``(B, n)`` boolean tensor with the stored entries of ``Y_rows`` set."""
    Y_rows = sp.csr_matrix(Y_rows)
    out = torch.zeros(Y_rows.shape, dtype=torch.bool, device=device)
    rows = np.repeat(np.arange(Y_rows.shape[0]), np.diff(Y_rows.indptr))
    out[torch.from_numpy(rows).to(device), torch.from_numpy(Y_rows.indices.astype(np.int64)).to(device)] = True
    return out


def candidate_targets(candidates: torch.Tensor, Y_rows: sp.csr_matrix) -> torch.Tensor:
    """``(B, K)`` float targets: 1 where ``candidates[i, j]`` is a positive of row i of ``Y_rows``
    (padding entries are never positive)."""
    Y_rows = sp.csr_matrix(Y_rows)
    width = Y_rows.shape[1] + 1
    device = candidates.device
    rows = np.repeat(np.arange(Y_rows.shape[0], dtype=np.int64), np.diff(Y_rows.indptr))
    keys = torch.from_numpy(rows * width + Y_rows.indices.astype(np.int64)).to(device)
    cand = torch.arange(candidates.shape[0], device=device).unsqueeze(1) * width + candidates
    return torch.isin(cand, keys).float()
