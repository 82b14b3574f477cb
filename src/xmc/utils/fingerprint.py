"""Fingerprints of a training run: SHA-256 digests of its inputs plus its settings.

A checkpoint or a cache is reused only when its recorded fingerprint equals the current run's;
:func:`differences` says in words what changed when it does not (which inputs, which settings).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp


def digest_texts(texts: Iterable[str]) -> str:
    """SHA-256 over every text, length-prefixed (so ``["ab", "c"]`` and ``["a", "bc"]`` differ)."""
    h = hashlib.sha256()
    n = 0
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
        n += 1
    h.update(n.to_bytes(8, "little"))
    return h.hexdigest()


def digest_matrix(matrix) -> str:
    """SHA-256 over a sparse matrix's shape, structure and values (canonical CSR)."""
    m = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    m.sum_duplicates()
    m.sort_indices()
    h = hashlib.sha256()
    h.update(np.asarray(m.shape, np.int64).tobytes())
    for part in (m.indptr.astype(np.int64), m.indices.astype(np.int64), m.data):
        h.update(np.ascontiguousarray(part).tobytes())
    return h.hexdigest()


def digest_folder(folder: str | os.PathLike) -> str:
    """SHA-256 over every file of a folder (relative names and contents, in sorted order)."""
    folder = Path(folder)
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` as ``{"a.b": 1}``; lists and scalars are leaves."""
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, sub in value.items():
        out.update(flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
    return out


DESCRIPTIONS = {"texts": "the training texts", "labels": "the training labels", "encoder": "the encoder files"}


def differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between two fingerprints, in words: changed inputs, then changed settings."""
    old, new = flatten(recorded), flatten(current)
    out = []
    for key in sorted(set(old) | set(new)):
        if old.get(key, "<absent>") == new.get(key, "<absent>"):
            continue
        top = key.split(".")[0]
        if top in DESCRIPTIONS:
            out.append(f"{DESCRIPTIONS[top]} differ")
        else:
            out.append(f"{key}: {old.get(key, '<absent>')!r} then, {new.get(key, '<absent>')!r} now")
    return out
