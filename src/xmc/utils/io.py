"""File helpers: atomic file writes, pickle-free arrays loaded with their shapes checked, JSON.

Every file that a later step reads is written through :func:`atomic_file`: a temporary file in the
same folder, flushed and fsynced, then renamed over the target. A reader sees the old file or the
new one, never half of one, even if the writer is killed with ``kill -9``. Loading never unpickles
(``allow_pickle=False``) and checks what it reads, so a damaged or hostile file is a
:class:`ModelFormatError` naming the file, not a crash further down.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import scipy.sparse as sp

from xmc.exceptions import ModelFormatError
from xmc.utils.faults import kill_point


def open_text(path: str | os.PathLike, mode: str = "rt") -> IO[str]:
    """Open a plain or gzip text file (chosen by the ``.gz`` suffix) as UTF-8."""
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, mode, encoding="utf-8", newline="\n")  # type: ignore[return-value]
    return open(path, mode, encoding="utf-8", newline="\n")


def default_mode(folder: bool = False) -> int:
    """The permissions a plain ``open``/``mkdir`` would give under the current umask (temporary files
    and folders start private; a saved model must be as readable as any file the user writes)."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if folder else 0o666) & ~mask


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename inside ``folder`` durable (a no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Yield a file open on a temporary sibling of ``path``; on success it is fsynced and renamed
    over ``path``, on failure removed. ``mode`` is ``"wb"`` or ``"w"`` (UTF-8 text)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".xmc-tmp", dir=path.parent)
    try:
        os.fchmod(fd, default_mode())
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": "\n"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        kill_point("file:written")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def read_model_text(path: str | os.PathLike, what: str = "") -> str:
    """A UTF-8 text file of a model folder; a missing or mis-encoded file is a ModelFormatError naming it
    (``what``, e.g. ``"label vocabulary "``, says which file it is)."""
    path = Path(path)
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ModelFormatError(f"missing {what}{path}") from None
    except UnicodeDecodeError as exc:
        raise ModelFormatError(f"{path} is not UTF-8 ({exc.reason} at byte {exc.start})") from None


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_file(path, "w") as f:
        f.write(text)


def save_csr(path: str | os.PathLike, matrix: sp.spmatrix) -> None:
    """Save a CSR (or CSC) matrix as ``.npz`` in SciPy's layout (no pickled objects)."""
    matrix = matrix if sp.issparse(matrix) and matrix.format in ("csr", "csc") else sp.csr_matrix(matrix)
    with atomic_file(path) as f:
        sp.save_npz(f, matrix, compressed=False)


def save_arrays(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    with atomic_file(path) as f:
        np.savez(f, **arrays)


def load_arrays(path: str | os.PathLike,
                expect: dict[str, tuple[str, tuple | None]] | None = None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file, never unpickled.

    ``expect`` maps names to ``(dtype kinds, shape)``: kinds is a string of NumPy kind codes
    (``"iu"`` integers, ``"f"`` floats, ``"b"`` booleans, ``"U"`` strings) and shape a tuple whose
    ``None`` entries match any size (``None`` for the whole shape: any). A missing array, another
    kind or shape is a :class:`ModelFormatError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"missing file {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # noqa: BLE001  numpy's parser of an untrusted file fails in many ways
        # (zip errors, ValueError, tokenize errors on a damaged header, MemoryError on a forged
        # shape); all of them mean the same: the file is not what it should be
        raise ModelFormatError(f"cannot read arrays {path}: {type(exc).__name__}: {exc}") from None
    for name, (kinds, shape) in (expect or {}).items():
        if name not in arrays:
            raise ModelFormatError(f"{path}: missing array {name!r} (has {', '.join(sorted(arrays)) or 'none'})")
        check_array(arrays[name], kinds, shape, f"{path}: array {name!r}")
    return arrays


def check_array(a: np.ndarray, kinds: str, shape: tuple | None, what: str) -> None:
    if a.dtype.kind not in kinds:
        raise ModelFormatError(f"{what} has dtype {a.dtype}, expected kind {kinds!r}")
    if shape is not None and (a.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, a.shape,
                                                                                                   strict=True))):
        raise ModelFormatError(f"{what} has shape {a.shape}, expected {tuple('*' if s is None else s for s in shape)}")
    if a.dtype.kind == "f" and a.size and not np.isfinite(a).all():
        raise ModelFormatError(f"{what} holds NaN or infinite values")


def load_csr(path: str | os.PathLike, shape: tuple[int | None, int | None] | None = None,
             fmt: str = "csr") -> sp.csr_matrix | sp.csc_matrix:
    """A sparse matrix saved by :func:`save_csr`, with every array checked before SciPy (or a
    numba kernel) touches it: format, shape (``None`` entries match any size), monotone ``indptr``,
    in-range ``indices`` and finite values."""
    arrays = load_arrays(path, {"format": ("SU", ()), "shape": ("iu", (2,)), "data": ("fiub", (None,)),
                                "indices": ("iu", (None,)), "indptr": ("iu", (None,))})
    raw = arrays["format"].item()
    found = raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)
    if found not in ("csr", "csc"):
        raise ModelFormatError(f"{path}: unsupported sparse format {found!r}")
    n_rows, n_cols = (int(s) for s in arrays["shape"])
    if n_rows < 0 or n_cols < 0 or (shape is not None and any(
            want is not None and want != got for want, got in zip(shape, (n_rows, n_cols), strict=True))):
        raise ModelFormatError(f"{path}: matrix of shape {(n_rows, n_cols)}, expected "
                               f"{tuple('*' if s is None else s for s in (shape or (None, None)))}")
    major, minor = (n_rows, n_cols) if found == "csr" else (n_cols, n_rows)
    indptr, indices, data = arrays["indptr"].astype(np.int64), arrays["indices"], arrays["data"]
    nnz = indices.size
    if (indptr.size != major + 1 or indptr[0] != 0 or indptr[-1] != nnz or data.size != nnz
            or np.any(np.diff(indptr) < 0)):
        raise ModelFormatError(f"{path}: inconsistent sparse structure (indptr of {indptr.size} entries ending at "
                               f"{indptr[-1] if indptr.size else None}, {nnz} indices, {data.size} values)")
    if nnz and (indices.min() < 0 or indices.max() >= minor):
        raise ModelFormatError(f"{path}: an index lies outside [0, {minor})")
    index_dtype = np.int32 if max(nnz, minor) < 2**31 else np.int64
    cls = sp.csr_matrix if found == "csr" else sp.csc_matrix
    matrix = cls((data.astype(np.float32), indices.astype(index_dtype), indptr.astype(index_dtype)),
                 shape=(n_rows, n_cols))
    out = matrix if found == fmt else matrix.asformat(fmt)
    return out


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike, max_bytes: int = 64 << 20) -> Any:
    path = Path(path)
    try:
        if path.stat().st_size > max_bytes:
            raise ModelFormatError(f"{path} is larger than {max_bytes >> 20} MB; not an xmc file")
        return json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ModelFormatError(f"missing file {path}") from None
    except IsADirectoryError:
        raise ModelFormatError(f"{path} is a folder, expected a JSON file") from None
    except UnicodeDecodeError as exc:
        raise ModelFormatError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ModelFormatError(f"{path} is not valid JSON: {exc}") from None
