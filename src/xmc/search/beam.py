"""Beam search over the levels of a label tree, sparse in and sparse out.

Each level's weights are stored *chunked by parent* (PECOS's layout): for every parent node, the
features that any of its children uses, sorted, and for each such feature the (child, weight)
pairs. A level is scored parent by parent: the (document, parent) pairs of the beam are grouped by
parent, so one parent's chunk is read once for all the documents that reach it. A parent reached
by many documents gets a dense feature -> chunk-row table (filled once, then one look-up per
document feature); one reached by few finds each document feature in the chunk's own hash table
(built once per level, on first use), a probe or two where a binary search took ~17. One
document, or a thousand, takes the cheap path for its shape.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numba as nb
import numpy as np
import scipy.sparse as sp

from xmc._config import Config, Interval, Options, option
from xmc.search.chunks import chunk_layout
from xmc.search.lookups import accumulate_rows, feature_hash_tables, fill_table, score_by_hash, score_by_table
from xmc.search.postprocess import POST_PROCESSORS, code, combine
from xmc.utils.prefetch import prefetch
from xmc.utils.sparse import SERIAL_BELOW, kernel_for, serial_version, topk_arrays


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
    n_features: int
    bias: np.ndarray  # (len(child_ids),) bias term of each grouped child: bias_row[child_ids] x bias value
    _hash: tuple | None = field(default=None, repr=False, compare=False)  # see feature_hash
    _by_feature: tuple | None = field(default=None, repr=False, compare=False)  # see by_feature

    @classmethod
    def build(cls, W: sp.csc_matrix, C: sp.csr_matrix, bias_value: float) -> ChunkedLevel:
        """From ``W`` ``(n_features + 1, n_nodes)`` (last row bias) and ``C`` ``(n_nodes, n_parents)``."""
        W = sp.csc_matrix(W, dtype=np.float32)
        n_features = W.shape[0] - 1
        Cc = sp.csc_matrix(C)
        child_ptr = Cc.indptr.astype(np.int64)
        child_ids = Cc.indices.astype(np.int64)
        bias_row = W[n_features].toarray().ravel().astype(np.float32)
        feat_ptr, feats, entry_ptr, entry_child, entry_val = chunk_layout(W, child_ptr, child_ids)
        return cls.from_parts(child_ptr, child_ids, feat_ptr=feat_ptr, feats=feats, entry_ptr=entry_ptr,
                              entry_child=entry_child, entry_val=entry_val, bias_row=bias_row,
                              n_features=n_features, bias_value=bias_value)

    @classmethod
    def from_parts(cls, child_ptr: np.ndarray, child_ids: np.ndarray, *, bias_value: float, **arrays) -> ChunkedLevel:
        """A level from its weight arrays (built, or mapped from files by :mod:`xmc.search.level_files`)
        and the tree's grouping of children under parents."""
        bias = (arrays["bias_row"][child_ids] * bias_value).astype(np.float32)
        return cls(child_ptr=child_ptr, child_ids=child_ids, bias=bias, **arrays)

    def feature_hash(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per parent chunk, an open-addressing table feature -> chunk row (``hash_ptr``, keys,
        rows), built on first use: a document's feature is then found in one or two probes instead
        of a binary search's ~17 over the chunk. About 12 bytes per chunk feature."""
        return self._once("_hash", lambda: feature_hash_tables(self.feat_ptr, self.feats))

    def by_feature(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The level's weights feature-major (``ptr`` over features, node ids, values), built on first
        use: when a few documents reach every parent of a level (the top levels), each document
        feature's weights for all the level's nodes are one contiguous run, read once, instead of
        one look-up per parent."""
        def build():
            W = self.to_weights()[: self.n_features].tocsr()
            W.sort_indices()
            return W.indptr.astype(np.int64), W.indices.astype(np.int32), W.data.astype(np.float32)

        return self._once("_by_feature", build)

    def _once(self, name: str, build):
        """The attribute ``name``, built by ``build`` on first use (once, whatever the threads)."""
        if getattr(self, name) is None:
            with _BUILD_LOCK:
                if getattr(self, name) is None:
                    setattr(self, name, build())
        return getattr(self, name)

    @property
    def n_weights(self) -> int:
        return int(self.entry_val.size)

    def to_weights(self) -> sp.csc_matrix:
        """The level's ``(n_features + 1, n_nodes)`` weights (last row bias), as :meth:`build` took them."""
        n_features, n_nodes = self.n_features, self.bias_row.size
        feat_of_entry = np.repeat(np.arange(self.feats.size), np.diff(self.entry_ptr))
        parent_of_feat = np.repeat(np.arange(self.child_ptr.size - 1), np.diff(self.feat_ptr))
        rows = self.feats[feat_of_entry]
        cols = self.child_ids[self.child_ptr[parent_of_feat[feat_of_entry]] + self.entry_child]
        keep = np.flatnonzero(self.bias_row)
        W = sp.csc_matrix((np.concatenate([self.entry_val, self.bias_row[keep]]),
                           (np.concatenate([rows, np.full(keep.size, n_features, np.int32)]),
                            np.concatenate([cols, keep]))), shape=(n_features + 1, n_nodes), dtype=np.float32)
        W.sort_indices()
        return W


_BUILD_LOCK = threading.Lock()
HASH_COST = 2.0  # a hash look-up against a dense-table look-up (measured: benchmarks/results/text_path.md)


@nb.njit(cache=True)
def _pairs_by_parent(b_ptr, b_idx, child_ptr, out_ptr):
    """The beam's (document, parent) pairs grouped by parent, with where each pair's scores go."""
    n_parents = child_ptr.size - 1
    pair_ptr = np.zeros(n_parents + 1, dtype=np.int64)
    for q in range(b_idx.size):
        pair_ptr[b_idx[q] + 1] += 1
    pair_ptr = np.cumsum(pair_ptr)
    fill = pair_ptr[:-1].copy()
    pairs = np.empty(b_idx.size, dtype=np.int64)  # beam entries, grouped by parent
    docs = np.empty(b_idx.size, dtype=np.int64)
    out_at = np.empty(b_idx.size, dtype=np.int64)
    for i in range(b_ptr.size - 1):
        o = out_ptr[i]
        for q in range(b_ptr[i], b_ptr[i + 1]):
            p = b_idx[q]
            pairs[fill[p]] = q
            docs[fill[p]] = i
            out_at[fill[p]] = o
            fill[p] += 1
            o += child_ptr[p + 1] - child_ptr[p]
    return pair_ptr, pairs, docs, out_at


@nb.njit(cache=True)
def _tasks(pair_ptr, n_threads):
    """The beam's pairs cut into tasks of one parent's consecutive pairs (a parent reached by many
    documents is split, so one big parent, as at the first level, keeps every thread busy), and
    each thread's contiguous run of tasks with about equal numbers of pairs."""
    total, n_parents = pair_ptr[-1], pair_ptr.size - 1
    piece = max(1, total // (4 * n_threads)) if n_threads > 1 else max(1, total)
    count = 0
    for p in range(n_parents):
        count += (pair_ptr[p + 1] - pair_ptr[p] + piece - 1) // piece
    parent, lo, hi = np.empty(count, np.int64), np.empty(count, np.int64), np.empty(count, np.int64)
    k = 0
    for p in range(n_parents):
        for r in range(pair_ptr[p], pair_ptr[p + 1], piece):
            parent[k], lo[k], hi[k] = p, r, min(r + piece, pair_ptr[p + 1])
            k += 1
    cuts = np.empty(n_threads + 1, dtype=np.int64)
    cuts[0], cuts[n_threads] = 0, count
    for t in range(1, n_threads):
        cuts[t] = np.searchsorted(lo, t * total // n_threads)
    return parent, lo, hi, cuts


@nb.njit(cache=True)
def _children_output(b_ptr, b_idx, child_ptr):
    """Output arrays with room for every child of every beam entry, and each document's offsets."""
    n = b_ptr.size - 1
    out_ptr = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        for q in range(b_ptr[i], b_ptr[i + 1]):
            out_ptr[i + 1] += child_ptr[b_idx[q] + 1] - child_ptr[b_idx[q]]
    out_ptr = np.cumsum(out_ptr)
    return out_ptr, np.empty(out_ptr[-1], dtype=np.int32), np.empty(out_ptr[-1], dtype=np.float32)


@nb.njit(cache=True, parallel=True)
def _score_level(x_ptr, x_idx, x_val, n_cols, b_ptr, b_idx, b_val, child_ptr, child_ids, feat_ptr, feats,
                 entry_ptr, entry_child, entry_val, bias, hash_ptr, hash_keys, hash_rows, pp, n_threads):
    n = x_ptr.size - 1
    out_ptr, out_idx, out_val = _children_output(b_ptr, b_idx, child_ptr)
    pair_ptr, pairs, docs, out_at = _pairs_by_parent(b_ptr, b_idx, child_ptr, out_ptr)
    task_parent, task_lo, task_hi, cuts = _tasks(pair_ptr, n_threads)
    max_width = 0
    for p in range(child_ptr.size - 1):
        max_width = max(max_width, child_ptr[p + 1] - child_ptr[p])
    mean_nx = x_idx.size / max(n, 1)
    max_nx = 0
    for i in range(n):
        max_nx = max(max_nx, x_ptr[i + 1] - x_ptr[i])
    for t in nb.prange(n_threads):
        acc = np.zeros(max_width)
        rows, lo, hi = np.empty(max_nx, np.int64), np.empty(max_nx, np.int64), np.empty(max_nx, np.int64)
        lookup = np.empty(0, dtype=np.int32)  # feature -> chunk row of the table's parent, made on first use
        in_table = -1  # the parent whose rows the table holds
        for task in range(cuts[t], cuts[t + 1]):
            p = task_parent[task]
            m = task_hi[task] - task_lo[task]
            flo, fhi = feat_ptr[p], feat_ptr[p + 1]
            nf = fhi - flo
            # a dense table costs one pass to fill and one to clear, then a direct look-up per document
            # feature; the hash costs a probe or two (a hashed slot, a compare) per document feature
            use_table = in_table == p or (m > 1 and 2.0 * nf + m * mean_nx < HASH_COST * m * mean_nx)
            if use_table and in_table != p:
                if lookup.size == 0:
                    lookup = np.full(n_cols, -1, dtype=np.int32)
                if in_table >= 0:
                    fill_table(lookup, feats, feat_ptr[in_table], feat_ptr[in_table + 1], n_cols, True)
                fill_table(lookup, feats, flo, fhi, n_cols, False)
                in_table = p
            clo, chi = child_ptr[p], child_ptr[p + 1]
            for r in range(task_lo[task], task_hi[task]):
                i = docs[r]
                if use_table:
                    score_by_table(x_idx, x_val, x_ptr[i], x_ptr[i + 1], lookup, entry_ptr, entry_child, entry_val,
                                    acc, rows, lo, hi)
                else:
                    score_by_hash(x_idx, x_val, x_ptr[i], x_ptr[i + 1], hash_keys, hash_rows, hash_ptr[p],
                                   hash_ptr[p + 1], flo, entry_ptr, entry_child, entry_val, acc, rows, lo, hi)
                o = out_at[r]
                parent_score = b_val[pairs[r]]
                for c in range(clo, chi):
                    out_idx[o] = child_ids[c]
                    out_val[o] = combine(acc[c - clo] + bias[c], parent_score, pp)
                    acc[c - clo] = 0.0
                    o += 1
    return out_ptr, out_idx, out_val


_score_level_serial = serial_version(_score_level)  # for a handful of documents


def score_level(X: sp.csr_matrix, beam: sp.csr_matrix, level: ChunkedLevel, n_nodes: int,
                post_processor: str) -> sp.csr_matrix:
    """Scores of every child of every parent in ``beam`` (``(n_docs, n_parents)``), as CSR."""
    ptr, idx, val = _level_arrays(_query(X), (beam.indptr.astype(np.int64), beam.indices, beam.data), level,
                                  code(post_processor))
    out = sp.csr_matrix((val, idx, ptr), shape=(X.shape[0], n_nodes))
    out.has_sorted_indices = False
    return out


def _query(X: sp.csr_matrix) -> tuple:
    return X.indptr.astype(np.int64), X.indices, X.data, X.shape[1]


@nb.njit(cache=True)
def _score_every_node(x_ptr, x_idx, x_val, n_cols, b_ptr, b_idx, b_val, child_ptr, child_ids, bias, fm_ptr, fm_node,
                      fm_val, n_nodes, pp):
    """:func:`_score_level` for documents whose beam holds every parent of the level: every node's
    margin from the feature-major weights, then the children in the beam's order, as there."""
    n = x_ptr.size - 1
    out_ptr, out_idx, out_val = _children_output(b_ptr, b_idx, child_ptr)
    n_features = fm_ptr.size - 1
    acc = np.zeros(n_nodes)
    max_nx = 0
    for i in range(n):
        max_nx = max(max_nx, x_ptr[i + 1] - x_ptr[i])
    rows, lo, hi = np.empty(max_nx, np.int64), np.empty(max_nx, np.int64), np.empty(max_nx, np.int64)
    for i in range(n):
        found = 0
        for k in range(x_ptr[i], x_ptr[i + 1]):
            if x_idx[k] < n_features:
                rows[found], lo[found] = k, x_idx[k]
                prefetch(fm_ptr, x_idx[k])
                found += 1
        accumulate_rows(x_val, rows, lo, hi, found, fm_ptr, fm_node, fm_val, acc)
        o = out_ptr[i]
        for q in range(b_ptr[i], b_ptr[i + 1]):
            p = b_idx[q]
            for c in range(child_ptr[p], child_ptr[p + 1]):
                node = child_ids[c]
                out_idx[o] = node
                out_val[o] = combine(acc[node] + bias[c], b_val[q], pp)
                o += 1
        acc[:] = 0.0
    return out_ptr, out_idx, out_val


def _level_arrays(query: tuple, beam: tuple, level: ChunkedLevel, pp: int) -> tuple:
    n_docs, n_parents = query[0].size - 1, level.child_ptr.size - 1
    if 0 < n_docs < SERIAL_BELOW and np.all(np.diff(beam[0]) == n_parents):  # a few documents, every parent
        return _score_every_node(*query, *beam, level.child_ptr, level.child_ids, level.bias, *level.by_feature(),
                                 level.bias_row.size, pp)
    kernel, n_threads = kernel_for(n_docs, _score_level, _score_level_serial)
    return kernel(*query, *beam, level.child_ptr, level.child_ids, level.feat_ptr, level.feats, level.entry_ptr,
                  level.entry_child, level.entry_val, level.bias, *level.feature_hash(), pp, n_threads)


def beam_search(X: sp.csr_matrix, levels: list[ChunkedLevel], level_sizes: list[int], *, beam_size: int,
                top_k: int, post_processor: str = "l3-hinge", stop_level: int | None = None) -> sp.csr_matrix:
    """Top-``top_k`` scores at the last level (or at ``stop_level``), keeping ``beam_size`` nodes
    per document at every level above it. Levels pass raw arrays to each other: a SciPy matrix is
    built once, at the end."""
    last = len(levels) - 1 if stop_level is None else stop_level
    ptr, idx, val = beam_search_arrays(_query(X), levels, beam_size=beam_size, top_k=top_k,
                                       post_processor=post_processor, stop_level=last)
    return sp.csr_matrix((val, idx, ptr), shape=(X.shape[0], level_sizes[last]))


def beam_search_arrays(query: tuple, levels: list[ChunkedLevel], *, beam_size: int, top_k: int,
                       post_processor: str = "l3-hinge", stop_level: int | None = None) -> tuple:
    """:func:`beam_search` on raw arrays: ``query`` is ``(indptr int64, indices int32, data float32,
    n_features)`` with sorted, in-range indices (the caller vouches: the one-text path of prediction
    passes the featuriser's own rows, with no copy and no check); returns the top-k CSR arrays,
    each row sorted best first."""
    last = len(levels) - 1 if stop_level is None else stop_level
    n = query[0].size - 1
    pp = code(post_processor)
    beam = np.arange(n + 1, dtype=np.int64), np.zeros(n, np.int32), np.ones(n, np.float32)
    for t in range(last + 1):
        beam = topk_arrays(*_level_arrays(query, beam, levels[t], pp), top_k if t == last else beam_size)
    return beam
