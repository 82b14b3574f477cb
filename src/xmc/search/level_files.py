"""One level of beam-search weights on disk, laid out as the search reads it, and memory-mapped.

A level is saved as one ``.npy`` file per array of :class:`~xmc.search.beam.ChunkedLevel` (the
grouping of children under parents comes from the label tree, saved beside it). Loading maps the
files (``np.load(mmap_mode="r")``) instead of reading them: a model starts without building
anything, the operating system pages in only the weights that predictions touch, and several
server processes on one machine share one copy of the pages.

Mapped or not, nothing reaches a numba kernel unchecked: :func:`load_level` checks every array's
dtype and length, the pointers' monotonicity and every index against the tree (one numba pass
over the arrays, no transient copies), so a damaged or hostile file is a
:class:`~xmc.exceptions.ModelFormatError` naming the file, not an out-of-bounds read.
"""

from __future__ import annotations

import os
from pathlib import Path

import numba as nb
import numpy as np
import scipy.sparse as sp

from xmc.exceptions import ModelFormatError
from xmc.search.beam import ChunkedLevel
from xmc.utils.io import atomic_file

# saved arrays and their dtypes (child_ptr and child_ids come from the tree); folders written before
# 2026-12-02 also hold a feature-major copy (row_*.npy), which is no longer read
ARRAYS = {"feat_ptr": np.int64, "feats": np.int32, "entry_ptr": np.int64, "entry_child": np.int32,
          "entry_val": np.float32, "bias_row": np.float32}


def save_level(folder: str | os.PathLike, level: ChunkedLevel) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, dtype in ARRAYS.items():
        with atomic_file(folder / f"{name}.npy") as f:
            np.save(f, np.ascontiguousarray(getattr(level, name), dtype=dtype), allow_pickle=False)


def load_level(folder: str | os.PathLike, C: sp.csr_matrix, n_features: int, bias_value: float,
               mmap: bool = True) -> ChunkedLevel:
    """The level saved in ``folder`` for the tree level ``C`` (``(n_nodes, n_parents)``), checked;
    its arrays are read-only maps of the files with ``mmap``, in memory without."""
    folder = Path(folder)
    arrays = {name: _load_array(folder / f"{name}.npy", dtype, mmap) for name, dtype in ARRAYS.items()}
    Cc = sp.csc_matrix(C)
    child_ptr = Cc.indptr.astype(np.int64)
    n_nodes, n_parents = Cc.shape
    _check_lengths(folder, arrays, n_nodes, n_parents)
    problem = _first_problem(child_ptr, arrays["feat_ptr"], arrays["feats"], arrays["entry_ptr"],
                             arrays["entry_child"], n_features)
    if problem:
        raise ModelFormatError(f"{folder}: {PROBLEMS[problem]}")
    for name in ("entry_val", "bias_row"):
        if not _all_finite(arrays[name]):
            raise ModelFormatError(f"{folder / name}.npy holds NaN or infinite values")
    return ChunkedLevel.from_parts(child_ptr, Cc.indices.astype(np.int64), bias_value=bias_value,
                                   n_features=n_features, **arrays)


def _load_array(path: Path, dtype, mmap: bool) -> np.ndarray:
    if not path.is_file():
        raise ModelFormatError(f"missing file {path}")
    try:
        a = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001  a damaged header fails in many ways; all mean the same
        raise ModelFormatError(f"cannot read array {path}: {type(exc).__name__}: {exc}") from None
    if a.dtype != np.dtype(dtype) or a.ndim != 1:
        raise ModelFormatError(f"{path} holds a {a.ndim}-d {a.dtype} array, expected 1-d {np.dtype(dtype)}")
    return a


def _check_lengths(folder: Path, a: dict[str, np.ndarray], n_nodes: int, n_parents: int) -> None:
    expected = {"feat_ptr": n_parents + 1, "feats": a["entry_ptr"].size - 1, "entry_child": a["entry_val"].size,
                "bias_row": n_nodes}
    for name, size in expected.items():
        if a[name].size != size:
            raise ModelFormatError(f"{folder / name}.npy has {a[name].size} entries, expected {size}")


PROBLEMS = {1: "a pointer array does not start at 0, decreases, or does not end at its array's length",
            2: "a feature id lies outside the model's features",
            3: "an entry names a child outside its parent's group"}


@nb.njit(cache=True)
def _monotone(ptr, end):
    if ptr.size == 0 or ptr[0] != 0 or ptr[ptr.size - 1] != end:
        return False
    for i in range(ptr.size - 1):
        if ptr[i + 1] < ptr[i]:
            return False
    return True


@nb.njit(cache=True)
def _first_problem(child_ptr, feat_ptr, feats, entry_ptr, entry_child, n_features):
    """0, or the code in :data:`PROBLEMS` of the first inconsistency. Pointers are checked before
    anything is read through them."""
    if not (_monotone(feat_ptr, feats.size) and _monotone(entry_ptr, entry_child.size)):
        return 1
    for j in range(feats.size):
        if feats[j] < 0 or feats[j] >= n_features:
            return 2
    for p in range(feat_ptr.size - 1):
        width = child_ptr[p + 1] - child_ptr[p]
        for j in range(feat_ptr[p], feat_ptr[p + 1]):
            for e in range(entry_ptr[j], entry_ptr[j + 1]):
                if entry_child[e] < 0 or entry_child[e] >= width:
                    return 3
    return 0


@nb.njit(cache=True)
def _all_finite(values):
    for v in values:
        if not np.isfinite(v):
            return False
    return True
