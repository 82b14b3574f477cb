"""Balanced spherical 2-means, applied recursively (PECOS's hierarchical k-means).

Every split halves a cluster exactly (sizes ``floor(n/2)`` and ``ceil(n/2)``), so all clusters
of one depth differ in size by at most one. Labels are ranked by how much closer they are to the
left centroid than to the right one, and the top half goes left.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def _split_segment(E: sp.csr_matrix, rng: np.random.Generator, max_iter: int) -> np.ndarray:
    """Order of the rows of ``E``: the first ``n // 2`` form the left child."""
    n = E.shape[0]
    half = n // 2
    if n < 2:
        return np.arange(n)
    seeds = rng.choice(n, size=2, replace=False)
    centre_l = E[seeds[0]].toarray().ravel()
    centre_r = E[seeds[1]].toarray().ravel()
    left = np.zeros(n, dtype=bool)
    order = np.arange(n)
    for _ in range(max_iter):
        margin = E @ (centre_l - centre_r)
        # ties broken by row index so the split is deterministic
        order = np.lexsort((np.arange(n), -margin))
        new_left = np.zeros(n, dtype=bool)
        new_left[order[:half]] = True
        if np.array_equal(new_left, left):
            break
        left = new_left
        centre_l = _unit(E.T @ left.astype(np.float32))
        centre_r = _unit(E.T @ (~left).astype(np.float32))
    return order


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v)
    return v / norm if norm > 0 else v


def balanced_leaf_clusters(E: sp.csr_matrix, depth: int, max_iter: int = 20, seed: int = 0) -> np.ndarray:
    """Leaf cluster id (``0 .. 2**depth - 1``) of every row of ``E`` after ``depth`` binary splits.

    Ids are in depth-first order, so the leaves under one ancestor ``j`` levels up are the
    consecutive ids ``[a * 2**j, (a + 1) * 2**j)``.
    """
    n = E.shape[0]
    E = sp.csr_matrix(E, dtype=np.float32)
    rng = np.random.default_rng(seed)
    perm = np.arange(n)
    bounds = [0, n]  # segment boundaries into perm
    for _ in range(depth):
        new_bounds = [0]
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            seg = perm[lo:hi]
            order = _split_segment(E[seg], rng, max_iter)
            perm[lo:hi] = seg[order]
            new_bounds += [lo + (hi - lo) // 2, hi]
        bounds = new_bounds
    cluster = np.empty(n, dtype=np.int64)
    for c, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        cluster[perm[lo:hi]] = c
    return cluster
