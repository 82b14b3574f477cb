"""Feature rows as users of bag-of-words data expect them: L2-normalised by default (PECOS's usual
pipeline does the same); the norm is recorded in the model folder and applied again at prediction.
On an XC-format set with binary features, raw rows trailed normalised ones by about 6 P@1."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from xmc._config import Config, Options, option
from xmc.utils.sparse import as_csr_f32, l2_normalize_rows

NORMS = ("l2", "l1", "none")


@dataclass(frozen=True, kw_only=True)
class FeaturesConfig(Config):
    norm: str = option("l2", "row normalisation of given feature rows (bag-of-words data): l2, l1 or none",
                       Options(NORMS))


def normalize_rows(X, norm: str) -> sp.csr_matrix:
    X = as_csr_f32(X)
    if norm == "l2":
        return l2_normalize_rows(X)
    if norm == "l1":
        sums = np.asarray(abs(X).sum(axis=1), dtype=np.float64).ravel()
        sums[sums == 0] = 1.0
        return sp.csr_matrix(sp.diags((1.0 / sums).astype(np.float32)) @ X, dtype=np.float32)
    return X
