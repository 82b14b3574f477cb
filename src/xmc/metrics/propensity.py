"""Inverse label propensities of Jain et al. (2016), as pyxclib computes them."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

DEFAULT_A = 0.55
DEFAULT_B = 1.5


def inv_propensity(y_train, a: float = DEFAULT_A, b: float = DEFAULT_B, n_labels: int | None = None) -> np.ndarray:
    """``w_l = 1 + C (N_l + B)^-A`` with ``C = (ln N - 1)(B + 1)^A``.

    ``n_labels`` widens the result past ``y_train``'s columns (labels never seen in training get
    ``N_l = 0``, the largest weight), so unseen labels can be scored as misses.
    """
    y_train = sp.csr_matrix(y_train)
    n = y_train.shape[0]
    freq = np.asarray((y_train != 0).sum(axis=0), dtype=np.float64).ravel()
    if n_labels is not None and n_labels > freq.size:
        freq = np.concatenate([freq, np.zeros(n_labels - freq.size)])
    return inv_propensity_from_counts(freq, n, a, b)


def inv_propensity_from_counts(freq: np.ndarray, n_docs: int, a: float = DEFAULT_A,
                               b: float = DEFAULT_B) -> np.ndarray:
    """The same weights from per-label training counts ``freq`` and the training-set size."""
    c = (np.log(max(n_docs, 2)) - 1.0) * (b + 1.0) ** a
    return 1.0 + c * (np.asarray(freq, dtype=np.float64) + b) ** (-a)
