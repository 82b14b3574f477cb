"""A dataset's TF-IDF rows computed once: memory-mapped, keyed by the texts' and the featuriser's
fingerprints.

``xmc train`` fits a featuriser on a training split; ``xmc evaluate``, ``xmc predict --data``,
``xmc update``, the members of an ensemble and a second training with the same TF-IDF settings then
read the same rows again. An entry is a folder named by SHA-256 over the texts (every text,
length-prefixed) and the featuriser (its settings, terms and idf; for a fit, its settings alone),
holding the CSR arrays as ``.npy`` files (mapped copy-on-write, so a caller that writes to them
writes to its own pages) and, for a fit, the fitted featuriser. A changed text or setting gives
another key, so a stale entry is never read; entries are written to a temporary folder and renamed
into place, and the least recently used are removed past a size limit.

Where: ``XMC_FEATURE_CACHE`` (a folder, or ``off``), else ``$XDG_CACHE_HOME/xmc/features`` (by
default ``~/.cache/xmc/features``); at most ``XMC_FEATURE_CACHE_GB`` GiB (default 4). Inputs of
fewer than :data:`MIN_TEXTS` texts (a request, a handful of texts) are featurised directly: hashing
them would cost more than it saves.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from xmc.features.tfidf import TfidfFeaturizer
from xmc.utils.fingerprint import digest_texts

log = logging.getLogger(__name__)
MIN_TEXTS = 1000
ARRAYS = ("indptr", "indices", "data")


class FeatureCache:
    """TF-IDF rows by (texts, featuriser) in ``folder``; see the module docstring."""

    def __init__(self, folder: str | os.PathLike, max_bytes: int = 4 << 30):
        self.folder, self.max_bytes = Path(folder), int(max_bytes)

    @classmethod
    def default(cls) -> FeatureCache | None:
        """The cache the environment asks for (None when ``XMC_FEATURE_CACHE=off``)."""
        where = os.environ.get("XMC_FEATURE_CACHE", "")
        if where.lower() in ("off", "0", "none", "false"):
            return None
        if not where:
            base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
            where = os.path.join(base, "xmc", "features")
        try:
            gb = float(os.environ.get("XMC_FEATURE_CACHE_GB", "4"))
        except ValueError:
            gb = 4.0
        return cls(where, int(gb * (1 << 30)))

    def transform(self, featurizer: TfidfFeaturizer, texts: list[str]) -> sp.csr_matrix:
        """``featurizer.transform(texts)``, read from the cache when it holds it."""
        key = _key("transform", featurizer_digest(featurizer), digest_texts(texts))
        X = self._read(key)
        if X is None:
            X = featurizer.transform(texts)
            self._write(key, X)
        return X

    def fit_transform(self, featurizer: TfidfFeaturizer, texts: list[str]) -> sp.csr_matrix:
        """``featurizer.fit_transform(texts)``; on a hit, ``featurizer`` takes the cached fit."""
        key = _key("fit", json.dumps(featurizer.config.to_dict(), sort_keys=True), digest_texts(texts))
        X = self._read(key)
        if X is not None:
            try:
                fitted = TfidfFeaturizer.load(self.folder / key / "tfidf")
            except Exception as exc:  # noqa: BLE001  a damaged entry is recomputed, never trusted
                log.info("feature cache entry %s unreadable (%s); featurising again", key, exc)
                X = None
            else:
                featurizer._adopt(fitted)
                return X
        X = featurizer.fit_transform(texts)
        self._write(key, X, featurizer)
        return X

    def _read(self, key: str) -> sp.csr_matrix | None:
        entry = self.folder / key
        try:
            meta = json.loads((entry / "meta.json").read_text())
            arrays = [np.load(entry / f"{name}.npy", mmap_mode="c", allow_pickle=False) for name in ARRAYS]
            X = sp.csr_matrix(tuple(arrays[::-1]), shape=tuple(meta["shape"]), copy=False)
            if X.indptr[-1] != X.indices.size or X.indices.size != X.data.size or X.data.dtype != np.float32:
                raise ValueError("arrays of different lengths")
            X.has_sorted_indices = True
            os.utime(entry / "meta.json")  # recently used
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.info("feature cache entry %s unreadable (%s); featurising again", entry, exc)
            return None
        log.info("features read from the cache %s", entry)
        return X

    def _write(self, key: str, X: sp.csr_matrix, featurizer: TfidfFeaturizer | None = None) -> None:
        size = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
        if size > self.max_bytes:
            return
        tmp = self.folder / f".{key}.{os.getpid()}.tmp"
        try:
            self._evict(self.max_bytes - size)
            tmp.mkdir(parents=True, exist_ok=True)
            for name in ARRAYS:
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(getattr(X, name)), allow_pickle=False)
            if featurizer is not None:
                featurizer.save(tmp / "tfidf")
            (tmp / "meta.json").write_text(json.dumps({"shape": list(X.shape), "written": time.time()}))
            if (self.folder / key).exists():  # another process wrote it meanwhile
                shutil.rmtree(tmp)
            else:
                os.replace(tmp, self.folder / key)
        except OSError as exc:  # a full disk or a read-only home: the features are still returned
            log.info("features not cached in %s (%s)", self.folder, exc)
            shutil.rmtree(tmp, ignore_errors=True)

    def _evict(self, budget: int) -> None:
        """Remove the least recently used entries until the rest fit in ``budget`` bytes."""
        if not self.folder.is_dir():
            return
        entries = []
        for entry in self.folder.iterdir():
            if entry.is_dir() and not entry.name.startswith("."):
                used = (entry / "meta.json").stat().st_mtime if (entry / "meta.json").exists() else 0.0
                entries.append((used, sum(f.stat().st_size for f in entry.rglob("*") if f.is_file()), entry))
        total = sum(size for _, size, _ in entries)
        for _, size, entry in sorted(entries, key=lambda e: e[0]):
            if total <= budget:
                break
            shutil.rmtree(entry, ignore_errors=True)
            total -= size


def featurizer_digest(featurizer: TfidfFeaturizer) -> str:
    """SHA-256 over a fitted featuriser's settings, terms and idf (kept on it until its vocabulary
    changes)."""
    if featurizer._digest is None:
        h = hashlib.sha256(json.dumps(featurizer.config.to_dict(), sort_keys=True).encode())
        h.update("\n".join(featurizer.terms_).encode("utf-8", "surrogatepass"))
        h.update(np.ascontiguousarray(featurizer.idf_, np.float32).tobytes())
        featurizer._digest = h.hexdigest()
    return featurizer._digest


def _key(kind: str, featurizer: str, texts: str) -> str:
    return hashlib.sha256(f"{kind}\0{featurizer}\0{texts}".encode()).hexdigest()[:40]


def cached_transform(featurizer: TfidfFeaturizer, texts: list[str]) -> sp.csr_matrix:
    """``featurizer.transform(texts)`` through the default cache (directly for small inputs)."""
    cache = FeatureCache.default() if len(texts) >= MIN_TEXTS else None
    return featurizer.transform(texts) if cache is None else cache.transform(featurizer, texts)


def cached_fit_transform(featurizer: TfidfFeaturizer, texts: list[str]) -> sp.csr_matrix:
    """``featurizer.fit_transform(texts)`` through the default cache (directly for small inputs)."""
    cache = FeatureCache.default() if len(texts) >= MIN_TEXTS else None
    return featurizer.fit_transform(texts) if cache is None else cache.fit_transform(featurizer, texts)
