"""Beam search over the levels of a label tree, sparse in and sparse out.

Each level's weights are stored *chunked by parent* (PECOS's layout): for every parent node, the
features that any of its children uses, sorted, and for each such feature the (child, weight)
pairs. Scoring a document against one parent's children then costs one intersection of two
sorted feature lists (binary search or merge, whichever is cheaper), not a pass over the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np
import scipy.sparse as sp

from xmc._config import Config, Interval, Options, option
from xmc.search.postprocess import POST_PROCESSORS, code, combine
from xmc.utils.sparse import SERIAL_BELOW, kernel_for, serial_version, topk_per_row  # noqa: F401  (SERIAL_BELOW: the threshold beam search uses)


@dataclass(frozen=True, kw_only=True)
class BeamConfig(Config):
    """Prediction settings; saved with a model and overridable per call."""

    beam_size: int = option(10, "nodes kept per document at each level above the labels", Interval(int, 1, None))
    top_k: int = option(20, "labels returned per document", Interval(int, 1, None))
    post_processor: str = option("l3-hinge", "how margins become scores", Options(tuple(POST_PROCESSORS)))


@dataclass
class ChunkedLevel:
    """One level's weights grouped by parent; see the module docstring."""

    child_ptr: np.ndarray  # (n_parents + 1,) into child_ids
    child_ids: np.ndarray  # node ids, grouped by parent
    feat_ptr: np.ndarray  # (n_parents + 1,) into feats
    feats: np.ndarray  # sorted feature ids per parent chunk
    entry_ptr: np.ndarray  # (len(feats) + 1,) into entry_child / entry_val
    entry_child: np.ndarray  # child position within its parent's group
    entry_val: np.ndarray
    bias_row: np.ndarray  # (len(child_ids),) the weights' bias row, in node order
    # the same weights feature-major: for feature f, rows[row_ptr[f]:row_ptr[f+1]] are
    # (grouped child position, weight); cheaper than chunks when a beam covers much of the level
    row_ptr: np.ndarray
    row_pos: np.ndarray
    row_val: np.ndarray
    parent_of_pos: np.ndarray
    bias: np.ndarray  # (len(child_ids),) bias term of each grouped child: bias_row[child_ids] x bias value

    @classmethod
    def build(cls, W: sp.csc_matrix, C: sp.csr_matrix, bias_value: float) -> ChunkedLevel:
        """From ``W`` ``(n_features + 1, n_nodes)`` (last row bias) and ``C`` ``(n_nodes, n_parents)``.

        Per-weight arrays are 32-bit and built with one sort, because a level can hold tens of
        millions of weights: the transient memory is what bounds the threshold a user can afford.
        """
        W = sp.csc_matrix(W, dtype=np.float32)
        n_features = W.shape[0] - 1
        Cc = sp.csc_matrix(C)
        child_ptr = Cc.indptr.astype(np.int64)
        child_ids = Cc.indices.astype(np.int64)
        n_parents = Cc.shape[1]
        parent_of_pos = np.repeat(np.arange(n_parents), np.diff(child_ptr))
        local_of_pos = (np.arange(child_ids.size) - child_ptr[parent_of_pos]).astype(np.int32)
        bias_row = W[n_features].toarray().ravel().astype(np.float32)
        weights = W[:n_features][:, child_ids]  # columns in grouped order
        weights.sort_indices()
        by_feature = weights.tocsr()
        by_feature.sort_indices()
        feat_ptr, feats, entry_ptr, entry_child, entry_val = _chunks(weights, parent_of_pos, local_of_pos, n_parents)
        return cls.from_parts(child_ptr, child_ids, feat_ptr=feat_ptr, feats=feats, entry_ptr=entry_ptr,
                              entry_child=entry_child, entry_val=entry_val, bias_row=bias_row,
                              row_ptr=by_feature.indptr.astype(np.int64), row_pos=by_feature.indices.astype(np.int32),
                              row_val=by_feature.data, bias_value=bias_value)

    @classmethod
    def from_parts(cls, child_ptr: np.ndarray, child_ids: np.ndarray, *, bias_value: float, **arrays) -> ChunkedLevel:
        """A level from its weight arrays (built, or mapped from files by :mod:`xmc.search.level_files`)
        and the tree's grouping of children under parents."""
        parent_of_pos = np.repeat(np.arange(child_ptr.size - 1, dtype=np.int64), np.diff(child_ptr))
        bias = (arrays["bias_row"][child_ids] * bias_value).astype(np.float32)
        return cls(child_ptr=child_ptr, child_ids=child_ids, parent_of_pos=parent_of_pos, bias=bias, **arrays)

    @property
    def n_weights(self) -> int:
        return int(self.entry_val.size)

    def to_weights(self) -> sp.csc_matrix:
        """The level's ``(n_features + 1, n_nodes)`` weights (last row bias), as :meth:`build` took them."""
        n_features, n_nodes = self.row_ptr.size - 1, self.bias_row.size
        rows = np.repeat(np.arange(n_features, dtype=np.int32), np.diff(self.row_ptr))
        cols = self.child_ids[self.row_pos]
        keep = np.flatnonzero(self.bias_row)
        W = sp.csc_matrix((np.concatenate([self.row_val, self.bias_row[keep]]),
                           (np.concatenate([rows, np.full(keep.size, n_features, np.int32)]),
                            np.concatenate([cols, keep]))), shape=(n_features + 1, n_nodes), dtype=np.float32)
        W.sort_indices()
        return W


def _chunks(weights: sp.csc_matrix, parent_of_pos, local_of_pos, n_parents: int):
    """Entries ordered by (parent, feature, child position): one stable sort on a combined key
    (the CSC order already has positions ascending, and features ascending within one)."""
    n_features = weights.shape[0]
    pos = np.repeat(np.arange(weights.shape[1], dtype=np.int32), np.diff(weights.indptr))
    key = parent_of_pos[pos].astype(np.int64) * n_features + weights.indices
    order = np.argsort(key, kind="stable")
    key = key[order]
    entry_child = local_of_pos[pos[order]]
    del pos
    entry_val = weights.data[order]
    del order
    change = np.ones(key.size, dtype=bool)
    change[1:] = key[1:] != key[:-1]
    starts = np.flatnonzero(change)
    first_keys = key[starts]
    feats = (first_keys % n_features).astype(np.int32)  # feature ids < 2**31 (checked at load)
    feat_ptr = np.searchsorted(first_keys // n_features, np.arange(n_parents + 1)).astype(np.int64)
    entry_ptr = np.append(starts, key.size).astype(np.int64)
    return feat_ptr, feats, entry_ptr, entry_child, entry_val


@nb.njit(cache=True, inline="always")
def _find(arr, lo, hi, value):
    """Leftmost position in arr[lo:hi] with arr[pos] >= value."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if arr[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo


@nb.njit(cache=True)
def _score_parent(x_idx, x_val, xlo, xhi, feats, flo, fhi, entry_ptr, entry_child, entry_val, acc):
    nx = xhi - xlo
    nf = fhi - flo
    if nx == 0 or nf == 0:
        return
    if nx * (np.log2(nf) + 1.0) < nx + nf:  # few query features: binary search each
        pos = flo
        for k in range(xlo, xhi):
            pos = _find(feats, pos, fhi, x_idx[k])
            if pos == fhi:
                break
            if feats[pos] == x_idx[k]:
                for e in range(entry_ptr[pos], entry_ptr[pos + 1]):
                    acc[entry_child[e]] += x_val[k] * entry_val[e]
    else:  # comparable sizes: merge the two sorted lists
        k, pos = xlo, flo
        while k < xhi and pos < fhi:
            if x_idx[k] < feats[pos]:
                k += 1
            elif x_idx[k] > feats[pos]:
                pos += 1
            else:
                for e in range(entry_ptr[pos], entry_ptr[pos + 1]):
                    acc[entry_child[e]] += x_val[k] * entry_val[e]
                k += 1
                pos += 1


@nb.njit(cache=True)
def _score_doc_rows(x_idx, x_val, xlo, xhi, row_ptr, row_pos, row_val, parent_of_pos, active, acc):
    for k in range(xlo, xhi):
        f = x_idx[k]
        if f >= row_ptr.size - 1:
            continue
        for e in range(row_ptr[f], row_ptr[f + 1]):
            pos = row_pos[e]
            if active[parent_of_pos[pos]]:
                acc[pos] += x_val[k] * row_val[e]


@nb.njit(cache=True, parallel=True)
def _score_level(x_ptr, x_idx, x_val, b_ptr, b_idx, b_val, child_ptr, child_ids, feat_ptr, feats,
                 entry_ptr, entry_child, entry_val, bias, row_ptr, row_pos, row_val, parent_of_pos, pp,
                 n_threads):
    n = x_ptr.size - 1
    counts = np.zeros(n, dtype=np.int64)
    for i in range(n):
        for q in range(b_ptr[i], b_ptr[i + 1]):
            p = b_idx[q]
            counts[i] += child_ptr[p + 1] - child_ptr[p]
    out_ptr = np.zeros(n + 1, dtype=np.int64)
    out_ptr[1:] = np.cumsum(counts)
    out_idx = np.empty(out_ptr[-1], dtype=np.int32)
    out_val = np.empty(out_ptr[-1], dtype=np.float32)
    n_parents = child_ptr.size - 1
    for t in nb.prange(n_threads):
        # per-thread buffers, reused across this thread's documents and cleared after each
        acc = np.zeros(child_ids.size)
        active = np.zeros(n_parents, dtype=np.bool_)
        for i in range(t * n // n_threads, (t + 1) * n // n_threads):
            xlo, xhi = x_ptr[i], x_ptr[i + 1]
            nx = xhi - xlo
            row_cost = 0
            for k in range(xlo, xhi):
                if x_idx[k] < row_ptr.size - 1:
                    row_cost += row_ptr[x_idx[k] + 1] - row_ptr[x_idx[k]]
            chunk_cost = 0.0
            for q in range(b_ptr[i], b_ptr[i + 1]):
                nf = feat_ptr[b_idx[q] + 1] - feat_ptr[b_idx[q]]
                chunk_cost += min(nx * (np.log2(nf + 1) + 1.0), nx + nf)
            use_rows = row_cost < 2.0 * chunk_cost  # a row entry is cheaper than a search step
            if use_rows:
                for q in range(b_ptr[i], b_ptr[i + 1]):
                    active[b_idx[q]] = True
                _score_doc_rows(x_idx, x_val, xlo, xhi, row_ptr, row_pos, row_val, parent_of_pos, active, acc)
            o = out_ptr[i]
            for q in range(b_ptr[i], b_ptr[i + 1]):
                p = b_idx[q]
                clo, chi = child_ptr[p], child_ptr[p + 1]
                if not use_rows:
                    _score_parent(x_idx, x_val, xlo, xhi, feats, feat_ptr[p], feat_ptr[p + 1], entry_ptr,
                                  entry_child, entry_val, acc[clo:chi])
                for c in range(clo, chi):
                    out_idx[o] = child_ids[c]
                    out_val[o] = combine(acc[c] + bias[c], b_val[q], pp)
                    acc[c] = 0.0
                    o += 1
                active[p] = False
    return out_ptr, out_idx, out_val


_score_level_serial = serial_version(_score_level)  # for a handful of documents


def score_level(X: sp.csr_matrix, beam: sp.csr_matrix, level: ChunkedLevel, n_nodes: int,
                post_processor: str) -> sp.csr_matrix:
    """Scores of every child of every parent in ``beam`` (``(n_docs, n_parents)``), as CSR."""
    kernel, n_threads = kernel_for(X.shape[0], _score_level, _score_level_serial)
    ptr, idx, val = kernel(
        X.indptr.astype(np.int64), X.indices, X.data, beam.indptr.astype(np.int64), beam.indices, beam.data,
        level.child_ptr, level.child_ids, level.feat_ptr, level.feats, level.entry_ptr, level.entry_child,
        level.entry_val, level.bias, level.row_ptr, level.row_pos, level.row_val, level.parent_of_pos,
        code(post_processor), n_threads,
    )
    out = sp.csr_matrix((val, idx, ptr), shape=(X.shape[0], n_nodes))
    out.has_sorted_indices = False
    return out


def beam_search(X: sp.csr_matrix, levels: list[ChunkedLevel], level_sizes: list[int], *, beam_size: int,
                top_k: int, post_processor: str = "l3-hinge", stop_level: int | None = None) -> sp.csr_matrix:
    """Top-``top_k`` scores at the last level (or at ``stop_level``), keeping ``beam_size`` nodes
    per document at every level above it."""
    last = len(levels) - 1 if stop_level is None else stop_level
    n = X.shape[0]
    beam = sp.csr_matrix((np.ones(n, np.float32), np.zeros(n, np.int32), np.arange(n + 1)), shape=(n, 1))
    for t in range(last + 1):
        scores = score_level(X, beam, levels[t], level_sizes[t], post_processor)
        beam = topk_per_row(scores, top_k if t == last else beam_size)
    return beam
