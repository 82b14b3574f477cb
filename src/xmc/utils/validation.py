"""Input checks at the public boundary; private workers assume clean input."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from xmc.exceptions import InvalidInputError, NotFittedError
from xmc.utils.sparse import as_csr_f32


def check_features(X, n_features: int | None = None, name: str = "X") -> sp.csr_matrix:
    """CSR float32 with sorted, in-range indices and finite values; dense arrays are converted."""
    if not (sp.issparse(X) or isinstance(X, np.ndarray)):
        raise InvalidInputError(f"{name} must be a SciPy sparse matrix or a NumPy array, got {type(X).__name__}")
    if X.ndim != 2:
        raise InvalidInputError(f"{name} must be 2-D, got shape {X.shape}")
    if sp.issparse(X) and X.format == "csr":
        _check_csr_structure(X, name)
    try:
        X = as_csr_f32(X)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} cannot be read as a float32 matrix: {exc}") from None
    if not np.all(np.isfinite(X.data)):
        raise InvalidInputError(f"{name} contains NaN or infinite values")
    if n_features is not None and X.shape[1] != n_features:
        raise InvalidInputError(f"{name} has {X.shape[1]} features but the model was fitted with {n_features}")
    return X


def _check_csr_structure(X: sp.csr_matrix, name: str) -> None:
    """SciPy builds a CSR from raw arrays without checking its indices; numba kernels must never
    see one out of range."""
    n_rows, n_cols = X.shape
    indptr, indices = X.indptr, X.indices
    if (indptr.size != n_rows + 1 or (indptr.size and (indptr[0] != 0 or indptr[-1] > indices.size))
            or np.any(np.diff(indptr) < 0)):
        raise InvalidInputError(f"{name} is not a valid CSR matrix (its indptr is inconsistent)")
    used = indices[: indptr[-1]] if indptr.size else indices
    if used.size and (used.min() < 0 or used.max() >= n_cols):
        raise InvalidInputError(f"{name} holds a column index outside [0, {n_cols})")


def check_labels(Y, n_rows: int) -> sp.csr_matrix:
    if not sp.issparse(Y):
        Y = sp.csr_matrix(np.asarray(Y))
    elif Y.format == "csr":
        _check_csr_structure(Y, "Y")
    Y = as_csr_f32(Y)
    if Y.shape[0] != n_rows:
        raise InvalidInputError(f"X has {n_rows} rows but Y has {Y.shape[0]}")
    if Y.nnz and (Y.data.min() < 0 or not np.all(np.isfinite(Y.data))):
        raise InvalidInputError("Y must hold finite, non-negative relevance values")
    return Y


def check_is_fitted(model, attribute: str) -> None:
    if getattr(model, attribute, None) is None:
        raise NotFittedError(
            f"This {type(model).__name__} instance is not fitted yet. "
            "Call 'fit' with appropriate arguments before using it."
        )


def check_k(k, name: str = "k", default: int | None = None) -> int:
    """A positive int; ``None`` takes ``default``. Zero or a negative value is an error, never the default."""
    if k is None and default is not None:
        k = default
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidInputError(f"{name} must be a positive int, got {k!r}")
    return int(k)


def check_texts(texts, who: str | None = None) -> list[str]:
    """``texts`` as a list of str (one str is one text); ``who`` (a method) names the taker in the
    message. A feature matrix or any non-str item is an :class:`InvalidInputError`."""
    if isinstance(texts, str):
        texts = [texts]
    taker = f"{who} takes" if who else "expected"
    if sp.issparse(texts) or isinstance(texts, np.ndarray):
        raise InvalidInputError(f"{taker} texts (a list of str), not a feature matrix")
    texts = list(texts)
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise InvalidInputError(f"{taker} texts (str); item {bad} is a {type(texts[bad]).__name__}")
    return texts
