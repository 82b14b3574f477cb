"""Row-wise top-k against a reference built with NumPy's lexsort."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from xmc.utils.sparse import SERIAL_BELOW, topk_per_row


def reference(scores: sp.csr_matrix, k: int) -> list[list[tuple[int, float]]]:
    rows = []
    for i in range(scores.shape[0]):
        lo, hi = scores.indptr[i], scores.indptr[i + 1]
        idx, val = scores.indices[lo:hi], scores.data[lo:hi]
        order = np.lexsort((idx, -val))[:k]  # higher score first, then lower index
        rows.append([(int(idx[j]), float(val[j])) for j in order])
    return rows


def as_rows(top: sp.csr_matrix) -> list[list[tuple[int, float]]]:
    return [[(int(c), float(v)) for c, v in zip(top.indices[top.indptr[i]:top.indptr[i + 1]],
                                                 top.data[top.indptr[i]:top.indptr[i + 1]], strict=True)]
            for i in range(top.shape[0])]


@pytest.mark.parametrize("n_rows", [SERIAL_BELOW - 1, 3 * SERIAL_BELOW])  # the serial and the threaded kernel
@pytest.mark.parametrize("k", [1, 3, 10, 50])
def test_topk_keeps_the_k_best_in_ranking_order_with_ties_by_index(n_rows, k):
    rng = np.random.default_rng(k)
    dense = rng.integers(-3, 4, size=(n_rows, 40)).astype(np.float32)  # few values: many ties
    dense[rng.random(dense.shape) < 0.5] = 0
    scores = sp.csr_matrix(dense)
    scores.data[::7] = 0.5  # explicit entries that tie across rows too
    perm = rng.permutation(scores.indices.size)  # indices unsorted within rows, as beam search leaves them
    for i in range(n_rows):
        lo, hi = scores.indptr[i], scores.indptr[i + 1]
        sel = lo + np.argsort(perm[lo:hi])
        scores.indices[lo:hi], scores.data[lo:hi] = scores.indices[sel].copy(), scores.data[sel].copy()
    scores.has_sorted_indices = False
    assert as_rows(topk_per_row(scores, k)) == reference(scores, k)


def test_empty_rows_and_k_above_the_row_length():
    scores = sp.csr_matrix(np.array([[0, 0, 0], [0, 2, 1]], np.float32))
    top = topk_per_row(scores, 5)
    assert as_rows(top) == [[], [(1, 2.0), (2, 1.0)]]
