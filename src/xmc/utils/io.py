"""File helpers: atomic folder writes, pickle-free sparse/dense arrays, JSON."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import scipy.sparse as sp

from xmc.exceptions import ModelFormatError


def open_text(path: str | os.PathLike, mode: str = "rt") -> IO[str]:
    """Open a plain or gzip text file (chosen by the ``.gz`` suffix) as UTF-8."""
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, mode, encoding="utf-8", newline="\n")  # type: ignore[return-value]
    return open(path, mode, encoding="utf-8", newline="\n")


@contextlib.contextmanager
def atomic_folder(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``target`` only when the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            backup = target.with_name(f".{target.name}.old")
            shutil.rmtree(backup, ignore_errors=True)
            target.rename(backup)
            tmp.rename(target)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_csr(path: str | os.PathLike, matrix: sp.spmatrix) -> None:
    """Save a CSR matrix as ``.npz`` (SciPy's layout, no pickled objects)."""
    sp.save_npz(path, sp.csr_matrix(matrix), compressed=False)


def load_csr(path: str | os.PathLike) -> sp.csr_matrix:
    try:
        return sp.load_npz(path).tocsr()
    except (OSError, ValueError, KeyError) as exc:
        raise ModelFormatError(f"cannot read sparse matrix {path}: {exc}") from exc


def save_arrays(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    np.savez(path, **arrays)


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"cannot read arrays {path}: {exc}") from exc


def write_json(path: str | os.PathLike, obj: Any) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_json(path: str | os.PathLike) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelFormatError(f"missing file {path}") from exc
    except json.JSONDecodeError as exc:
        raise ModelFormatError(f"{path} is not valid JSON: {exc}") from exc
