"""Sparse-matrix helpers: row normalisation, row-wise top-k, CSR hygiene."""

from __future__ import annotations

import types

import numba as nb
import numpy as np
import scipy.sparse as sp


def as_csr_f32(matrix) -> sp.csr_matrix:
    """CSR float32 with sorted indices and no explicit duplicates."""
    out = sp.csr_matrix(matrix, dtype=np.float32)
    if not out.has_sorted_indices:
        out.sort_indices()
    out.sum_duplicates()
    return out


def binarize(matrix) -> sp.csr_matrix:
    """CSR float32 copy with every stored entry set to 1 (counts become memberships)."""
    out = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    out.data[:] = 1.0
    return out


def l2_normalize_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """A copy with rows scaled to unit L2 norm (zero rows stay zero)."""
    matrix = as_csr_f32(matrix)
    kernel = _unit_rows_serial if matrix.shape[0] < SERIAL_BELOW else _unit_rows  # a request's text or two
    data = kernel(matrix.indptr.astype(np.int64), matrix.data)
    return sp.csr_matrix((data, matrix.indices.copy(), matrix.indptr.copy()), shape=matrix.shape)


@nb.njit(cache=True, parallel=True)
def _unit_rows(indptr, data):
    out = np.empty_like(data)
    for i in nb.prange(indptr.size - 1):
        total = 0.0  # float64: a float32 sum of many squares loses the last digits
        for e in range(indptr[i], indptr[i + 1]):
            total += np.float64(data[e]) * data[e]
        scale = np.float32(1.0 / np.sqrt(total)) if total > 0 else np.float32(1.0)
        for e in range(indptr[i], indptr[i + 1]):
            out[e] = data[e] * scale
    return out


@nb.njit(cache=True, inline="always")
def _ahead(v, c, v2, c2):
    """Ranking order: the higher score first, then the lower index (deterministic ties)."""
    return v > v2 or (v == v2 and c < c2)


@nb.njit(cache=True, parallel=True)
def _topk_rows(indptr, indices, data, k, n_threads):
    n = indptr.size - 1
    counts = np.empty(n, dtype=np.int64)
    for i in range(n):
        counts[i] = min(k, indptr[i + 1] - indptr[i])
    out_ptr = np.zeros(n + 1, dtype=np.int64)
    out_ptr[1:] = np.cumsum(counts)
    out_idx = np.empty(out_ptr[-1], dtype=np.int32)
    out_val = np.empty(out_ptr[-1], dtype=np.float32)
    for t in nb.prange(n_threads):
        for i in range(t * n // n_threads, (t + 1) * n // n_threads):
            # insertion into the row's own output slots, kept in ranking order: an entry behind the
            # current k-th is rejected with one comparison, so a row costs O(nnz) in the usual case
            # instead of the O(nnz log nnz) of sorting it (and its indices need not be sorted)
            base, m, filled = out_ptr[i], counts[i], 0
            for e in range(indptr[i], indptr[i + 1]):
                v, c = data[e], indices[e]
                if filled == m:
                    if not _ahead(v, c, out_val[base + m - 1], out_idx[base + m - 1]):
                        continue
                    pos = m - 1
                else:
                    pos = filled
                    filled += 1
                while pos > 0 and _ahead(v, c, out_val[base + pos - 1], out_idx[base + pos - 1]):
                    out_val[base + pos] = out_val[base + pos - 1]
                    out_idx[base + pos] = out_idx[base + pos - 1]
                    pos -= 1
                out_val[base + pos] = v
                out_idx[base + pos] = c
    return out_ptr, out_idx, out_val


def serial_version(kernel):
    """``kernel`` (an ``njit(parallel=True)`` function) compiled without threads: ``prange`` runs as
    ``range``. Waking numba's thread pool costs milliseconds (far more when the cores are busy), which
    swamps the work of a handful of rows; and after a parallel region OpenMP's workers spin, burning a
    second core per call. The copy gets a name of its own because numba's on-disk cache is keyed by
    the function's name and line, not by its flags: under the same name the serial and the parallel
    versions would load each other's cached machine code."""
    fn = kernel.py_func
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + "_serial"
    twin.__doc__ = fn.__doc__
    return nb.njit(cache=True)(twin)


_topk_rows_serial = serial_version(_topk_rows)  # for a few rows
_unit_rows_serial = serial_version(_unit_rows)
SERIAL_BELOW = 64  # rows; below this the kernels here and in search/beam.py run on the calling thread


def kernel_for(n_rows: int, parallel, serial):
    """The kernel for ``n_rows`` rows (``serial`` below :data:`SERIAL_BELOW`) and the number of
    threads to split them over."""
    return (serial if n_rows < SERIAL_BELOW else parallel), max(1, min(nb.get_num_threads(), n_rows))


def topk_per_row(scores: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep each row's ``k`` largest entries; rows come back sorted by descending score."""
    scores = sp.csr_matrix(scores, dtype=np.float32)
    ptr, idx, val = topk_arrays(scores.indptr.astype(np.int64), scores.indices, scores.data, k)
    return sp.csr_matrix((val, idx, ptr), shape=scores.shape)


def topk_arrays(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, k: int):
    """:func:`topk_per_row` on the raw CSR arrays (int64 pointers, float32 values), without building
    SciPy matrices: for a single document their construction costs more than the work."""
    kernel, n_threads = kernel_for(indptr.size - 1, _topk_rows, _topk_rows_serial)
    return kernel(indptr, indices, data, int(k), n_threads)


def topk_dense_rows(scores: np.ndarray, k: int) -> sp.csr_matrix:
    """:func:`topk_per_row` of a dense float32 array (zeros are entries too): each row's ``k``
    largest, by the same parallel kernel, several times faster than ``np.argpartition`` on a wide
    block, which runs on one core."""
    n, m = scores.shape
    indptr = np.arange(n + 1, dtype=np.int64) * m
    columns = np.tile(np.arange(m, dtype=np.int32), n)
    ptr, idx, val = topk_arrays(indptr, columns, np.ascontiguousarray(scores, dtype=np.float32).ravel(), k)
    return sp.csr_matrix((val, idx, ptr), shape=(n, m))


@nb.njit(cache=True, parallel=True)
def _rows_times_columns(a_ptr, a_idx, a_val, bt_ptr, bt_idx, bt_val, n_cols, n_threads):
    n = a_ptr.size - 1
    out = np.zeros((n, n_cols), dtype=np.float32)
    for t in nb.prange(n_threads):
        for i in range(t * n // n_threads, (t + 1) * n // n_threads):
            for e in range(a_ptr[i], a_ptr[i + 1]):
                term, x = a_idx[e], a_val[e]
                for f in range(bt_ptr[term], bt_ptr[term + 1]):
                    out[i, bt_idx[f]] += x * bt_val[f]
    return out


_rows_times_columns_serial = serial_version(_rows_times_columns)


def dense_product(A: sp.csr_matrix, B_T: sp.csr_matrix) -> np.ndarray:
    """``A @ B.T`` as a dense float32 array, given ``B_T`` (``B`` transposed, as CSR: one row per
    feature listing the columns of the result that hold it). For a dense result this is many times
    faster than SciPy's sparse product, which builds a sparse matrix on one thread, and it runs on
    every core."""
    A = as_csr_f32(A)
    if A.shape[1] != B_T.shape[0]:
        raise ValueError(f"shapes {A.shape} and {B_T.shape[::-1]} do not multiply")
    kernel, n_threads = kernel_for(A.shape[0], _rows_times_columns, _rows_times_columns_serial)
    return kernel(A.indptr.astype(np.int64), A.indices, A.data, B_T.indptr.astype(np.int64), B_T.indices,
                  np.asarray(B_T.data, dtype=np.float32), B_T.shape[1], n_threads)


def transposed(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """``matrix.T`` as a float32 CSR (the layout :func:`dense_product` reads)."""
    return as_csr_f32(sp.csr_matrix(matrix).T.tocsr())


@nb.njit(cache=True, parallel=True)
def _product_topk_rows(a_ptr, a_idx, a_val, a2_ptr, a2_idx, a2_val, b_ptr, b_idx, b_val, n_cols, k, out_ptr,
                       out2_ptr, n_threads):
    """Each row of ``A @ B`` and of ``(A + A2) @ B`` cut to its ``k`` largest entries, written at
    ``out_ptr[i]`` and ``out2_ptr[i]`` (room for an upper bound of the row's size; no second
    output when ``out2_ptr`` is empty); returns the arrays and each row's real sizes."""
    n = a_ptr.size - 1
    out_idx, out_val = np.empty(out_ptr[-1], dtype=np.int32), np.empty(out_ptr[-1], dtype=np.float32)
    second = out2_ptr.size > 0
    out2_idx = np.empty(out2_ptr[-1] if second else 0, dtype=np.int32)
    out2_val = np.empty(out2_idx.size, dtype=np.float32)
    sizes, sizes2 = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    for t in nb.prange(n_threads):
        acc = np.zeros(n_cols, dtype=np.float32)
        seen = np.full(n_cols, -1, dtype=np.int32)
        cols = np.empty(n_cols, dtype=np.int32)
        for i in range(t, n, n_threads):  # interleaved: rows of one size cluster (frequent labels first)
            touched = _accumulate(a_ptr, a_idx, a_val, b_ptr, b_idx, b_val, i, acc, seen, cols, 0)
            sizes[i] = _write_largest(acc, cols[:touched], k, out_idx, out_val, out_ptr[i])
            if second:
                touched = _accumulate(a2_ptr, a2_idx, a2_val, b_ptr, b_idx, b_val, i, acc, seen, cols, touched)
                sizes2[i] = _write_largest(acc, cols[:touched], k, out2_idx, out2_val, out2_ptr[i])
            for j in range(touched):
                acc[cols[j]] = 0.0
    return out_idx, out_val, sizes, out2_idx, out2_val, sizes2


@nb.njit(cache=True, inline="always")
def _accumulate(a_ptr, a_idx, a_val, b_ptr, b_idx, b_val, i, acc, seen, cols, touched):
    """Adds row ``i`` of ``A @ B`` into ``acc``, listing newly reached columns after ``touched``."""
    for e in range(a_ptr[i], a_ptr[i + 1]):
        r, x = a_idx[e], a_val[e]
        for f in range(b_ptr[r], b_ptr[r + 1]):
            c = b_idx[f]
            if seen[c] != i:
                seen[c] = i
                cols[touched] = c
                touched += 1
            acc[c] += x * b_val[f]
    return touched


@nb.njit(cache=True, inline="always")
def _write_largest(acc, cols, k, out_idx, out_val, base):
    kept = _largest_columns(acc, cols, k)
    for j in range(kept.size):
        out_idx[base + j] = kept[j]
        out_val[base + j] = acc[kept[j]]
    return kept.size


@nb.njit(cache=True)
def _largest_columns(acc, cols, k):
    """The ``k`` columns of largest ``acc`` (among equal values the lower columns), in column order."""
    if cols.size <= k:
        return np.sort(cols)
    values = np.empty(cols.size, dtype=np.float32)
    for j in range(cols.size):
        values[j] = -acc[cols[j]]
    kth = -np.partition(values, k - 1)[k - 1]
    kept = np.empty(k, dtype=np.int32)
    ties = np.empty(cols.size, dtype=np.int32)
    m = n_ties = 0
    for c in cols:
        if acc[c] > kth:
            kept[m] = c
            m += 1
        elif acc[c] == kth:
            ties[n_ties] = c
            n_ties += 1
    kept[m:] = np.sort(ties[:n_ties])[:k - m]
    return np.sort(kept)


def sparse_product(A: sp.csr_matrix, B: sp.csr_matrix, k: int = 0) -> sp.csr_matrix:
    """``A @ B`` as CSR float32 with sorted indices; with ``k`` > 0 only each row's ``k`` largest
    entries (ties: the lower columns), formed on every core in a dense accumulator per thread, so
    the whole product, many times larger (label centroids cut to their heaviest terms), is never
    built. The whole product is SciPy's (as fast as a two-pass kernel here, and it sizes its output
    exactly)."""
    A, B = _multiplying(A, B)
    if k <= 0:
        return as_csr_f32(A @ B)
    return _topk_products(A, None, B, k)[0]


def sparse_products_topk(A: sp.csr_matrix, A2: sp.csr_matrix, B: sp.csr_matrix, k: int
                         ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """``sparse_product(A, B, k)`` and ``sparse_product(A + A2, B, k)`` for the price of about one:
    the second sum carries on from the first (label centroids without and with held-out documents)."""
    A, B = _multiplying(A, B)
    A2, _ = _multiplying(A2, B)
    if A2.shape != A.shape:
        raise ValueError(f"shapes {A.shape} and {A2.shape} do not add")
    return _topk_products(A, A2, B, max(int(k), 1))


def _multiplying(A, B) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    A, B = as_csr_f32(A), as_csr_f32(B)
    if A.shape[1] != B.shape[0]:
        raise ValueError(f"shapes {A.shape} and {B.shape} do not multiply")
    return A, B


def _topk_products(A, A2, B, k):
    b_ptr = B.indptr.astype(np.int64)
    row_sizes = np.diff(b_ptr)

    def layout(M):  # each row's room: its k, or fewer when the rows of B it reaches hold fewer entries
        ptr = M.indptr.astype(np.int64)
        reach = np.bincount(np.repeat(np.arange(M.shape[0]), np.diff(ptr)), weights=row_sizes[M.indices],
                            minlength=M.shape[0]).astype(np.int64)
        return ptr, reach

    a_ptr, reach = layout(A)
    out_ptr = _pointers(np.minimum(reach, k))
    if A2 is None:
        a2_ptr, a2_idx, a2_val, out2_ptr = a_ptr[:1], A.indices[:0], A.data[:0], out_ptr[:0]
    else:
        a2_ptr, reach2 = layout(A2)
        a2_idx, a2_val, out2_ptr = A2.indices, A2.data, _pointers(np.minimum(reach + reach2, k))
    n_threads = max(1, min(nb.get_num_threads(), A.shape[0]))
    idx, val, sizes, idx2, val2, sizes2 = _product_topk_rows(
        a_ptr, A.indices, A.data, a2_ptr, a2_idx, a2_val, b_ptr, B.indices, B.data, B.shape[1], k, out_ptr,
        out2_ptr, n_threads)
    shape = (A.shape[0], B.shape[1])
    first = _packed(idx, val, out_ptr, sizes, shape)
    return (first,) if A2 is None else (first, _packed(idx2, val2, out2_ptr, sizes2, shape))


def _pointers(counts: np.ndarray) -> np.ndarray:
    ptr = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return ptr


def _packed(idx, val, room_ptr, sizes, shape) -> sp.csr_matrix:
    """A CSR of the first ``sizes[i]`` entries of each row's room."""
    room = np.diff(room_ptr)
    used = np.arange(room_ptr[-1]) - np.repeat(room_ptr[:-1], room) < np.repeat(sizes, room)
    return sp.csr_matrix((val[used], idx[used], _pointers(sizes)), shape=shape)
