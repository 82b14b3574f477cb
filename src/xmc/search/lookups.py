"""The look-ups of beam search: a document's features in one parent's chunk of weights, and the
accumulation of the entries found (:mod:`xmc.search.beam` says when each is used).

Every path runs in passes, so that the look-ups of different features (each a likely cache miss
into a level's large arrays) wait for memory side by side instead of one after another: the slots
or rows of the document's features first (prefetched), their entry ranges (prefetching the
entries), then the entries (:func:`accumulate_rows`).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from xmc.utils.prefetch import prefetch

HASH_MULT = np.uint64(0x9E3779B97F4A7C15)


@nb.njit(cache=True, inline="always")
def slot(feature, mask):
    return np.int64(((np.uint64(feature) * HASH_MULT) >> np.uint64(32)) & np.uint64(mask))


@nb.njit(cache=True)
def feature_hash_tables(feat_ptr, feats):
    n_parents = feat_ptr.size - 1
    hash_ptr = np.zeros(n_parents + 1, np.int64)
    for p in range(n_parents):
        nf = feat_ptr[p + 1] - feat_ptr[p]
        size = 1
        while size * 3 < nf * 4:  # load at most 3/4
            size *= 2
        hash_ptr[p + 1] = hash_ptr[p] + (size if nf else 0)
    keys = np.full(hash_ptr[-1], -1, np.int32)
    rows = np.empty(hash_ptr[-1], np.int32)
    for p in range(n_parents):
        base, mask = hash_ptr[p], hash_ptr[p + 1] - hash_ptr[p] - 1
        for j in range(feat_ptr[p], feat_ptr[p + 1]):
            s = slot(feats[j], mask)
            while keys[base + s] != -1:
                s = (s + 1) & mask
            keys[base + s], rows[base + s] = feats[j], j - feat_ptr[p]
    return hash_ptr, keys, rows


@nb.njit(cache=True, inline="always")
def accumulate_rows(x_val, rows, lo, hi, found, entry_ptr, entry_child, entry_val, acc):
    """The entries of the ``found`` chunk rows ``lo[:found]`` (document features ``rows``) into
    ``acc``: their entry ranges first (prefetching the entries), then the entries."""
    for q in range(found):
        j = lo[q]
        lo[q], hi[q] = entry_ptr[j], entry_ptr[j + 1]
        prefetch(entry_child, lo[q])
        prefetch(entry_val, lo[q])
    for q in range(found):
        v = x_val[rows[q]]
        for e in range(lo[q], hi[q]):
            acc[entry_child[e]] += v * entry_val[e]


@nb.njit(cache=True)
def score_by_hash(x_idx, x_val, xlo, xhi, hash_keys, hash_rows, hlo, hhi, flo, entry_ptr, entry_child, entry_val,
                   acc, rows, lo, hi):
    """In passes, so that the look-ups of different features (each a likely cache miss into the
    level's large arrays) wait for memory side by side rather than one after another: the hashed
    slots prefetched, the chunk rows of the document's features, their entry ranges (prefetching
    the entries), then the entries. Measured on EURLEX57K, one full text: 1.4 ms -> 0.9 ms."""
    if hhi == hlo:
        return
    mask = hhi - hlo - 1
    for k in range(xlo, xhi):
        s = slot(x_idx[k], mask)
        prefetch(hash_keys, hlo + s)
        prefetch(hash_rows, hlo + s)
    found = 0
    for k in range(xlo, xhi):
        f = x_idx[k]
        s = slot(f, mask)
        while True:
            key = hash_keys[hlo + s]
            if key == f:
                rows[found] = k
                lo[found] = flo + hash_rows[hlo + s]
                found += 1
                break
            if key == -1:
                break
            s = (s + 1) & mask
    accumulate_rows(x_val, rows, lo, hi, found, entry_ptr, entry_child, entry_val, acc)


@nb.njit(cache=True)
def fill_table(lookup, feats, flo, fhi, n_cols, clear):
    for j in range(flo, fhi):
        if feats[j] < n_cols:
            lookup[feats[j]] = -1 if clear else j


@nb.njit(cache=True)
def score_by_table(x_idx, x_val, xlo, xhi, lookup, entry_ptr, entry_child, entry_val, acc, rows, lo, hi):
    """The dense table's look-ups, in the same prefetched passes as :func:`score_by_hash`."""
    found = 0
    for k in range(xlo, xhi):
        j = lookup[x_idx[k]]
        if j >= 0:
            rows[found], lo[found] = k, j
            prefetch(entry_ptr, j)
            found += 1
    accumulate_rows(x_val, rows, lo, hi, found, entry_ptr, entry_child, entry_val, acc)
