"""Nearest label vectors by inner product: exact (blocked matrix products) up to a size where that
stays fast, faiss's HNSW graph above it.

The dual encoder searches its label vectors with it at prediction, and mines hard negatives from the
label-text embeddings with it while training (rebuilt as the encoder learns). Exact search over
4,271 labels costs about 1.5 M multiply-adds per document, far less than the encoder's forward
pass, so an approximate index only pays from about 10^5 labels on.
"""

from __future__ import annotations

import numpy as np

from xmc.exceptions import XMCError

INDEX_KINDS = ("auto", "exact", "hnsw")
EXACT_UP_TO = 100_000  # "auto": exact search up to this many labels
_BLOCK = 4096  # query rows per matrix product in exact search


class LabelIndex:
    """Top-k label vectors by inner product (cosine when the rows are unit vectors)."""

    def __init__(self, vectors: np.ndarray, kind: str = "auto", hnsw_m: int = 32, ef_search: int = 128):
        if kind not in INDEX_KINDS:
            raise XMCError(f"index kind must be one of {', '.join(INDEX_KINDS)}, got {kind!r}")
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if kind == "auto":
            kind = "exact" if len(self.vectors) <= EXACT_UP_TO else "hnsw"
        self.kind, self.ef_search = kind, ef_search
        self._hnsw = _hnsw(self.vectors, hnsw_m, ef_search) if kind == "hnsw" else None

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(n, k)`` label indices and inner products, best first (``k`` capped at the label count)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = min(k, len(self.vectors))
        if self._hnsw is not None:
            self._hnsw.hnsw.efSearch = max(self.ef_search, k)  # HNSW returns at most efSearch good neighbours
            sims, idx = self._hnsw.search(queries, k)
            return idx.astype(np.int64), sims
        idx = np.empty((len(queries), k), dtype=np.int64)
        sims = np.empty((len(queries), k), dtype=np.float32)
        for start in range(0, len(queries), _BLOCK):
            block = queries[start:start + _BLOCK] @ self.vectors.T
            top = np.argpartition(-block, k - 1, axis=1)[:, :k] if k < block.shape[1] else \
                np.tile(np.arange(block.shape[1]), (len(block), 1))
            vals = np.take_along_axis(block, top, axis=1)
            order = np.argsort(-vals, axis=1, kind="stable")
            idx[start:start + len(block)] = np.take_along_axis(top, order, axis=1)
            sims[start:start + len(block)] = np.take_along_axis(vals, order, axis=1)
        return idx, sims


def _hnsw(vectors: np.ndarray, m: int, ef_search: int):
    try:
        import faiss
    except ModuleNotFoundError:
        raise XMCError("an HNSW label index needs faiss: pip install faiss-cpu (or use index=exact)") from None
    index = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = max(40, 2 * m)
    index.hnsw.efSearch = ef_search
    index.add(vectors)
    return index
