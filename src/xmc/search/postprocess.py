"""Score post-processors: how a node's raw margin becomes a score combined with its parent's.

``l{p}-hinge``: ``exp(-max(0, 1 - z)^p) * parent``; ``sigmoid``: ``sigmoid(z) * parent``;
``noop``: the raw margin, parent ignored. Codes are what the numba kernels switch on.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from xmc.exceptions import InvalidInputError

POST_PROCESSORS = {"noop": 0, "sigmoid": 1, "l1-hinge": 2, "l2-hinge": 3, "l3-hinge": 4}


def code(name: str) -> int:
    try:
        return POST_PROCESSORS[name]
    except KeyError:
        raise InvalidInputError(f"unknown post-processor {name!r}; choose from {', '.join(POST_PROCESSORS)}") from None


@nb.njit(cache=True, inline="always")
def combine(z, parent, pp):
    if pp == 0:
        return z
    if pp == 1:
        return parent / (1.0 + math.exp(-z))
    h = max(0.0, 1.0 - z)
    return parent * math.exp(-(h ** (pp - 1)))


def combine_dense(z: np.ndarray, parent: np.ndarray, name: str) -> np.ndarray:
    """Vectorised reference of :func:`combine` (used for exhaustive scoring)."""
    pp = code(name)
    if pp == 0:
        return z
    if pp == 1:
        return parent / (1.0 + np.exp(-z))
    return parent * np.exp(-(np.maximum(0.0, 1.0 - z) ** (pp - 1)))
