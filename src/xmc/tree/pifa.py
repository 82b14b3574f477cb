"""PIFA label embeddings: each label is the normalised sum of its positive instances' features."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from xmc.utils.sparse import l2_normalize_rows


def pifa(X, Y: sp.csr_matrix, dense: np.ndarray | None = None) -> sp.csr_matrix:
    """``normalize(normalize(Y).T @ [X, dense])`` as CSR float32, ``(n_labels, n_features [+ dim])``.

    ``dense`` (``(n_docs, dim)``, e.g. fine-tuned text embeddings) is joined to ``X`` column-wise,
    which is how XR-Transformer re-clusters labels on ``[TF-IDF, embeddings]``.
    """
    feats = sp.csr_matrix(X, dtype=np.float32)
    if dense is not None:
        dense = np.asarray(dense, dtype=np.float32)
        if dense.shape[0] != feats.shape[0]:
            raise ValueError(f"X has {feats.shape[0]} rows but the dense embeddings have {dense.shape[0]}")
        feats = sp.hstack([feats, sp.csr_matrix(dense)], format="csr", dtype=np.float32)
    Y_norm = l2_normalize_rows(sp.csr_matrix(Y, dtype=np.float32))
    return l2_normalize_rows(sp.csr_matrix(Y_norm.T @ feats))
