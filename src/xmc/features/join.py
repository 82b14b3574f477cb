"""Sparse and dense features side by side: the input of the linear rankers that follow a fine-tuned
encoder (XR-Transformer's ranker, ELIAS++'s)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def join_embedding(X: sp.csr_matrix, emb: np.ndarray, scale: float = 1.0) -> sp.csr_matrix:
    """[X, scale x L2-normalised embedding] as one float32 CSR (normalised on the dense array: SciPy's
    row scaling cost more than the encoder for one int8 title)."""
    emb = np.asarray(emb, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", emb, emb))
    norms[norms == 0] = 1.0
    dense = sp.csr_matrix(emb * (np.float32(scale) / norms.astype(np.float32))[:, None])
    return sp.hstack([X, dense], format="csr", dtype=np.float32)
