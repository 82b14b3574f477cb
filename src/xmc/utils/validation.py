"""Input checks at the public boundary; private workers assume clean input."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from xmc.exceptions import NotFittedError
from xmc.utils.sparse import as_csr_f32


def check_features(X, n_features: int | None = None, name: str = "X") -> sp.csr_matrix:
    """CSR float32 with sorted indices; dense arrays are accepted and converted."""
    if not (sp.issparse(X) or isinstance(X, np.ndarray)):
        raise TypeError(f"{name} must be a SciPy sparse matrix or a NumPy array, got {type(X).__name__}")
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {X.shape}")
    X = as_csr_f32(X)
    if not np.all(np.isfinite(X.data)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{name} has {X.shape[1]} features but the model was fitted with {n_features}")
    return X


def check_labels(Y, n_rows: int) -> sp.csr_matrix:
    if not sp.issparse(Y):
        Y = sp.csr_matrix(np.asarray(Y))
    Y = as_csr_f32(Y)
    if Y.shape[0] != n_rows:
        raise ValueError(f"X has {n_rows} rows but Y has {Y.shape[0]}")
    if Y.nnz and Y.data.min() < 0:
        raise ValueError("Y must not hold negative relevance values")
    return Y


def check_is_fitted(model, attribute: str) -> None:
    if getattr(model, attribute, None) is None:
        raise NotFittedError(
            f"This {type(model).__name__} instance is not fitted yet. "
            "Call 'fit' with appropriate arguments before using it."
        )


def check_k(k: int, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{name} must be a positive int, got {k!r}")
    return int(k)
