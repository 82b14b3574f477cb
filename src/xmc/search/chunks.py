"""Building a level's search layout from its weights, with transient memory of a few bytes per weight.

A leaf level holds tens to hundreds of millions of weights, so the peak memory of training is set
here. The entries of each parent's children are gathered and sorted per parent, in parallel, straight
from the CSC weights: no reordered copy of the matrix, no global sort keys, only one int32 feature
id per weight besides the layout itself.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import scipy.sparse as sp


def chunk_layout(W: sp.csc_matrix, child_ptr: np.ndarray, child_ids: np.ndarray):
    """``feat_ptr, feats, entry_ptr, entry_child, entry_val`` of ``W`` ``(n_features + 1, n_nodes)``
    (the last row, the bias, left out): for each parent, the features its children use, ascending, and
    per feature the (child position within the parent, weight) pairs, positions ascending."""
    n_features = W.shape[0] - 1
    W.sum_duplicates()  # canonical: sorted, one entry per (feature, node)
    entries_of_node = np.diff(W.indptr) - _has_bias_entry(W, n_features)
    entry_start = _start_of_groups(entries_of_node[child_ids], child_ptr)
    n = int(entry_start[-1])
    entry_feat = np.empty(n, dtype=np.int32)
    entry_child = np.empty(n, dtype=np.int32)
    entry_val = np.empty(n, dtype=np.float32)
    n_feats = _group_entries(W.indptr.astype(np.int64), W.indices, W.data.astype(np.float32, copy=False),
                             child_ptr, child_ids, n_features, entry_start, entry_feat, entry_child, entry_val)
    feat_ptr = _offsets(n_feats)
    feats = np.empty(int(feat_ptr[-1]), dtype=np.int32)
    entry_ptr = np.empty(feats.size + 1, dtype=np.int64)
    _feature_runs(entry_start, entry_feat, feat_ptr, feats, entry_ptr)
    return feat_ptr, feats, entry_ptr, entry_child, entry_val


def _has_bias_entry(W: sp.csc_matrix, n_features: int) -> np.ndarray:
    """1 for the nodes whose column holds a bias weight (the last row: last in a sorted column)."""
    if W.nnz == 0:
        return np.zeros(W.shape[1], dtype=np.int64)
    last = np.maximum(W.indptr[1:] - 1, 0)
    return ((W.indptr[1:] > W.indptr[:-1]) & (W.indices[last] == n_features)).astype(np.int64)


def _offsets(sizes: np.ndarray) -> np.ndarray:
    """``(n + 1,)`` start offsets of ``n`` consecutive runs of the given sizes (the last: their total)."""
    out = np.zeros(sizes.size + 1, dtype=np.int64)
    np.cumsum(sizes, out=out[1:])
    return out


def _start_of_groups(sizes: np.ndarray, group_ptr: np.ndarray) -> np.ndarray:
    """Offsets ``(n_groups + 1,)`` of groups of consecutive items with the given sizes."""
    return _offsets(sizes)[group_ptr]


@nb.njit(cache=True, parallel=True)
def _group_entries(indptr, indices, data, child_ptr, child_ids, n_features, entry_start, entry_feat,
                   entry_child, entry_val):
    """Each parent's entries sorted by (feature, child position); returns the features per parent."""
    n_parents = child_ptr.size - 1
    n_feats = np.zeros(n_parents, dtype=np.int64)
    for p in nb.prange(n_parents):
        lo, hi = entry_start[p], entry_start[p + 1]
        width = child_ptr[p + 1] - child_ptr[p]
        keys = np.empty(hi - lo, dtype=np.int64)
        vals = np.empty(hi - lo, dtype=np.float32)
        k = 0
        for c in range(child_ptr[p], child_ptr[p + 1]):
            node = child_ids[c]
            for e in range(indptr[node], indptr[node + 1]):
                if indices[e] < n_features:
                    keys[k] = np.int64(indices[e]) * width + (c - child_ptr[p])
                    vals[k] = data[e]
                    k += 1
        order = np.argsort(keys)  # keys are distinct: the order is the same for any sort
        last = -1
        for j in range(order.size):
            key = keys[order[j]]
            feature = key // width
            entry_feat[lo + j] = feature
            entry_child[lo + j] = key - feature * width
            entry_val[lo + j] = vals[order[j]]
            if feature != last:
                n_feats[p] += 1
                last = feature
    return n_feats


@nb.njit(cache=True, parallel=True)
def _feature_runs(entry_start, entry_feat, feat_ptr, feats, entry_ptr):
    """Each parent's distinct features and where their entries start."""
    for p in nb.prange(feat_ptr.size - 1):
        j = feat_ptr[p]
        last = -1
        for e in range(entry_start[p], entry_start[p + 1]):
            if entry_feat[e] != last:
                feats[j] = entry_feat[e]
                entry_ptr[j] = e
                last = entry_feat[e]
                j += 1
    entry_ptr[feats.size] = entry_start[entry_start.size - 1]
