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
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    matrix = as_csr_f32(matrix)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags((1.0 / norms).astype(np.float32)) @ matrix, dtype=np.float32)


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
