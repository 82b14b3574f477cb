"""Ranking metrics over CSR score and truth matrices, vectorised.

Conventions, shared by every function here:

- Each row of ``y_score`` is ranked by descending score; ties go to the lower label index.
  Only stored entries count as predictions, so a row with fewer than ``k`` scores simply has
  fewer chances to hit.
- Every function returns the mean over *all* documents; a document without labels scores 0.
- PSP@k and PSnDCG@k are normalised by the best value reachable on the same documents (the
  Extreme Classification Repository's tools do the same): summed propensity-weighted hits over
  the summed weights of each document's ``k`` highest-weighted true labels.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from xmc.exceptions import InvalidInputError
from xmc.utils.sparse import topk_per_row


def _check(y_true, y_score, k: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidInputError(f"k must be a positive int, got {k!r}")
    y_true = sp.csr_matrix(y_true)
    y_score = sp.csr_matrix(y_score)
    if y_true.shape[0] != y_score.shape[0]:
        raise InvalidInputError(f"y_true has {y_true.shape[0]} rows but y_score has {y_score.shape[0]}")
    if y_score.shape[1] > y_true.shape[1]:
        raise InvalidInputError(f"y_score has {y_score.shape[1]} label columns but y_true only {y_true.shape[1]}")
    return y_true, y_score


def ranked_labels(y_score: sp.csr_matrix, k: int) -> np.ndarray:
    """``(n_docs, k)`` label indices by rank, ``-1`` where a row has fewer than k scores."""
    top = topk_per_row(y_score, k)
    n = top.shape[0]
    counts = np.diff(top.indptr)
    out = np.full((n, k), -1, dtype=np.int64)
    rows = np.repeat(np.arange(n), counts)
    ranks = np.arange(top.nnz) - np.repeat(top.indptr[:-1], counts)
    out[rows, ranks] = top.indices
    return out


def hit_matrix(y_true: sp.csr_matrix, y_score: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(hits, ranked)``: hits[i, r] is 1.0 when the rank-r label of doc i is a true label."""
    ranked = ranked_labels(y_score, k)
    y_true = sp.csr_matrix(y_true)
    y_true.sort_indices()
    width = np.int64(y_true.shape[1])
    true_keys = np.repeat(np.arange(y_true.shape[0], dtype=np.int64), np.diff(y_true.indptr)) * width + y_true.indices
    true_keys = true_keys[y_true.data != 0] if y_true.nnz else true_keys
    pred_keys = np.arange(ranked.shape[0], dtype=np.int64)[:, None] * width + ranked
    hits = np.isin(pred_keys, true_keys, assume_unique=False) & (ranked >= 0)
    return hits.astype(np.float64), ranked


def _n_true(y_true: sp.csr_matrix) -> np.ndarray:
    return np.diff(sp.csr_matrix(y_true).indptr).astype(np.float64)


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def precision_at_k(y_true, y_score, k: int) -> float:
    """P@k in [0, 1]: the true labels among each document's k best scores, over k, averaged over the
    documents (a document without labels counts as 0)."""
    y_true, y_score = _check(y_true, y_score, k)
    hits, _ = hit_matrix(y_true, y_score, k)
    return float(hits.sum(axis=1).mean() / k) if hits.shape[0] else 0.0


def _ideal_dcg(n_true: np.ndarray, k: int) -> np.ndarray:
    """Each document's best reachable DCG@k with binary gains, at least 1: it is 0 only for a document
    without true labels, whose DCG is 0 too, so dividing by 1 leaves that document at 0."""
    cum = np.concatenate([[0.0], np.cumsum(_discounts(k))])
    return np.maximum(cum[np.minimum(n_true, k).astype(np.int64)], 1.0)


def recall_at_k(y_true, y_score, k: int) -> float:
    """R@k in [0, 1]: the share of each document's true labels found in its k best scores, averaged."""
    y_true, y_score = _check(y_true, y_score, k)
    hits, _ = hit_matrix(y_true, y_score, k)
    n_true = _n_true(y_true)
    per_doc = hits.sum(axis=1) / np.maximum(n_true, 1)  # a document without true labels has no hit: 0
    return float(per_doc.mean()) if per_doc.size else 0.0


def ndcg_at_k(y_true, y_score, k: int) -> float:
    """nDCG@k in [0, 1] with binary gains: each document's DCG@k over the best one it could reach."""
    y_true, y_score = _check(y_true, y_score, k)
    hits, _ = hit_matrix(y_true, y_score, k)
    per_doc = (hits @ _discounts(k)) / _ideal_dcg(_n_true(y_true), k)
    return float(per_doc.mean()) if per_doc.size else 0.0


def _best_weights(y_true: sp.csr_matrix, inv_prop: np.ndarray, k: int) -> np.ndarray:
    """``(n_docs, k)``: each doc's true-label weights sorted high to low, zero padded."""
    y_true = sp.csr_matrix(y_true)
    weights = sp.csr_matrix((inv_prop[y_true.indices].astype(np.float32), y_true.indices, y_true.indptr),
                            shape=y_true.shape)
    ranked = ranked_labels(weights, k)
    return np.where(ranked >= 0, inv_prop[np.maximum(ranked, 0)], 0.0)


def _check_prop(inv_prop, n_labels: int) -> np.ndarray:
    inv_prop = np.asarray(inv_prop, dtype=np.float64).ravel()
    if inv_prop.shape[0] != n_labels:
        raise InvalidInputError(f"inv_propensity has {inv_prop.shape[0]} entries but y_true has {n_labels} labels")
    return inv_prop


def psp_at_k(y_true, y_score, k: int, inv_propensity) -> float:
    """Propensity-scored P@k (Jain et al., 2016), normalised by the best value reachable on the same
    documents, as the Extreme Classification Repository's tools do."""
    y_true, y_score = _check(y_true, y_score, k)
    w = _check_prop(inv_propensity, y_true.shape[1])
    hits, ranked = hit_matrix(y_true, y_score, k)
    gained = (hits * w[np.maximum(ranked, 0)]).sum()
    best = _best_weights(y_true, w, k).sum()
    return float(gained / best) if best > 0 else 0.0


def psndcg_at_k(y_true, y_score, k: int, inv_propensity) -> float:
    """Propensity-scored nDCG@k; each doc's DCG is divided by its binary ideal DCG first (pyxclib)."""
    y_true, y_score = _check(y_true, y_score, k)
    w = _check_prop(inv_propensity, y_true.shape[1])
    hits, ranked = hit_matrix(y_true, y_score, k)
    disc = _discounts(k)
    scale = 1.0 / _ideal_dcg(_n_true(y_true), k)
    gained = ((hits * w[np.maximum(ranked, 0)]) @ disc * scale).sum()
    best = ((_best_weights(y_true, w, k) @ disc) * scale).sum()
    return float(gained / best) if best > 0 else 0.0


def coverage_at_k(y_true, y_score, k: int) -> float:
    """Fraction of the labels present in ``y_true`` hit at least once in some document's top-k."""
    y_true, y_score = _check(y_true, y_score, k)
    hits, ranked = hit_matrix(y_true, y_score, k)
    present = np.unique(sp.csr_matrix(y_true).indices)
    if present.size == 0:
        return 0.0
    covered = np.unique(ranked[hits > 0])
    return float(covered.size / present.size)
