"""Balanced spherical 2-means, applied recursively (PECOS's hierarchical k-means).

Every split halves a cluster exactly (sizes ``floor(n/2)`` and ``ceil(n/2)``), so all clusters
of one depth differ in size by at most one. Labels are ranked by how much closer they are to the
left centroid than to the right one, and the top half goes left.

The splits of one depth are independent, so they run in parallel (numba ``prange``) straight on
the CSR arrays, each with its own random stream: the tree does not depend on the thread count.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import scipy.sparse as sp

from xmc.utils.rng import next_random, seed_state


@nb.njit(cache=True, fastmath=True)
def _add_row(out, indptr, indices, data, row, sign):
    for k in range(indptr[row], indptr[row + 1]):
        out[indices[k]] += sign * data[k]


@nb.njit(cache=True, fastmath=True)
def _normalise(v, feats):
    acc = 0.0
    for f in feats:
        acc += v[f] * v[f]
    if acc > 0:
        scale = 1.0 / np.sqrt(acc)
        for f in feats:
            v[f] *= scale


@nb.njit(cache=True)
def _features_of(indptr, indices, rows, n_features):
    """The features used by ``rows``: per-iteration work touches only these, not all columns."""
    used = np.zeros(n_features, np.bool_)
    for r in rows:
        for k in range(indptr[r], indptr[r + 1]):
            used[indices[k]] = True
    return np.flatnonzero(used)


@nb.njit(cache=True, fastmath=True)
def _split_segment(indptr, indices, data, rows, n_features, max_iter, state):
    """Reorder ``rows`` in place: the first ``len(rows) // 2`` form the left child."""
    n = rows.size
    if n < 2:
        return
    half = n // 2
    state, r = next_random(state)
    first = np.int64(r % np.uint64(n))
    state, r = next_random(state)
    second = np.int64(r % np.uint64(n - 1))
    second += second >= first
    direction = np.zeros(n_features, np.float32)  # centre_left - centre_right
    _add_row(direction, indptr, indices, data, rows[first], 1.0)
    _add_row(direction, indptr, indices, data, rows[second], -1.0)
    left, right = np.zeros(n_features, np.float32), np.zeros(n_features, np.float32)
    feats = _features_of(indptr, indices, rows, n_features)
    margin = np.empty(n)
    is_left = np.zeros(n, np.bool_)
    order = np.arange(n)
    for it in range(max_iter):
        for j in range(n):
            acc = 0.0
            for k in range(indptr[rows[j]], indptr[rows[j] + 1]):
                acc += direction[indices[k]] * data[k]
            margin[j] = -acc
        order = np.argsort(margin, kind="mergesort")  # stable: ties go by position, deterministically
        moved = False
        for j in range(n):
            side = j < half
            if is_left[order[j]] != side:
                is_left[order[j]] = side
                moved = True
        if not moved and it > 0:
            break
        for f in feats:
            left[f] = 0.0
            right[f] = 0.0
        for j in range(n):
            _add_row(left if is_left[j] else right, indptr, indices, data, rows[j], 1.0)
        _normalise(left, feats)
        _normalise(right, feats)
        for f in feats:
            direction[f] = left[f] - right[f]
    rows[:] = rows[order].copy()


@nb.njit(cache=True, parallel=True)
def _split_depth(indptr, indices, data, perm, bounds, n_features, max_iter, seed, depth):
    n_segments = bounds.size - 1
    for s in nb.prange(n_segments):
        key = (np.int64(1) << depth) + s  # the segment's heap index: unique over the whole tree
        _split_segment(indptr, indices, data, perm[bounds[s] : bounds[s + 1]], n_features, max_iter,
                       seed_state(seed, key))


def balanced_leaf_clusters(E: sp.csr_matrix, depth: int, max_iter: int = 20, seed: int = 0) -> np.ndarray:
    """Leaf cluster id (``0 .. 2**depth - 1``) of every row of ``E`` after ``depth`` binary splits.

    Ids are in depth-first order, so the leaves under one ancestor ``j`` levels up are the
    consecutive ids ``[a * 2**j, (a + 1) * 2**j)``.
    """
    n = E.shape[0]
    E = sp.csr_matrix(E, dtype=np.float32)
    indptr, indices = E.indptr.astype(np.int64), E.indices.astype(np.uint32)  # unsigned: no negative-index checks
    perm = np.arange(n)
    bounds = np.array([0, n])  # segment boundaries into perm
    for d in range(depth):
        _split_depth(indptr, indices, E.data, perm, bounds, E.shape[1], max_iter, seed, d)
        mid = bounds[:-1] + (bounds[1:] - bounds[:-1]) // 2
        bounds = np.insert(bounds, np.arange(1, bounds.size), mid)
    cluster = np.empty(n, dtype=np.int64)
    for c in range(bounds.size - 1):
        cluster[perm[bounds[c] : bounds[c + 1]]] = c
    return cluster
