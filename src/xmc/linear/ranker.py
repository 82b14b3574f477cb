"""One level of XR-Linear: one-vs-rest linear rankers, each trained on its parent's instances."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from xmc._config import Config, Interval, Options, option
from xmc.linear.solvers import LOSSES, train_block
from xmc.utils.progress import progress

log = logging.getLogger(__name__)
NEGATIVE_SAMPLERS = ("tfn", "man", "tfn+man")


@dataclass(frozen=True, kw_only=True)
class LinearConfig(Config):
    loss: str = option("squared_hinge", "solver loss", Options(LOSSES))
    Cp: float = option(1.0, "cost of errors on positives", Interval(float, 0, None, "neither"))
    Cn: float = option(1.0, "cost of errors on negatives", Interval(float, 0, None, "neither"))
    bias: float = option(1.0, "value of the constant bias feature (0 = no bias)", Interval(float, 0, None))
    eps: float = option(0.1, "solver stopping tolerance", Interval(float, 0, None, "neither"))
    max_iter: int = option(100, "solver passes over the data", Interval(int, 1, None))
    threshold: float = option(0.1, "weights with smaller magnitude are pruned", Interval(float, 0, None))
    negatives: str = option("tfn", "tfn: siblings under true parents; man: +the model's own top-b; tfn+man", Options(NEGATIVE_SAMPLERS))
    seed: int = option(0, "seed of the coordinate order", Interval(int, 0, None))


def _block_problem(X: sp.csr_matrix, Y_sub: sp.csc_matrix, used: np.ndarray):
    """The rows ``X`` re-indexed to the features they use, plus each child's positive rows.

    ``used`` is a reusable all-False marker array of ``n_features`` entries (a marker pass is
    much cheaper than sorting the block's indices).
    """
    used[X.indices] = True
    feats = np.flatnonzero(used)
    used[feats] = False
    local = np.searchsorted(feats, X.indices).astype(np.int32)
    return (
        X.indptr.astype(np.int64),
        local,
        X.data.astype(np.float32),
        feats,
        Y_sub.indptr.astype(np.int64),
        Y_sub.indices.astype(np.int64),
    )


def train_level(X: sp.csr_matrix, Y_level: sp.csr_matrix, M: sp.csr_matrix, C: sp.csr_matrix,
                config: LinearConfig, desc: str = "") -> sp.csc_matrix:
    """Weights ``(n_features + 1, n_nodes)`` of one level (last row: bias weight).

    Parameters
    ----------
    X : (n_docs, n_features) CSR features.
    Y_level : (n_docs, n_nodes) which nodes of this level each doc is positive for.
    M : (n_docs, n_parents) matching: which parents route each doc (its negatives' pool).
    C : (n_nodes, n_parents) the level's cluster matrix.
    """
    n_features = X.shape[1]
    children_of = sp.csc_matrix(C)
    routed = sp.csc_matrix(M)
    Y_level = sp.csr_matrix(Y_level)
    rows, cols, vals = [], [], []
    n_unconverged = 0
    used = np.zeros(n_features, dtype=bool)
    w_proto = np.zeros(0, np.float32)
    for p in progress(range(C.shape[1]), desc=desc or "train level"):
        children = children_of.indices[children_of.indptr[p] : children_of.indptr[p + 1]]
        inst = np.sort(routed.indices[routed.indptr[p] : routed.indptr[p + 1]])
        if children.size == 0 or inst.size == 0:
            continue
        X_sub = X[inst]
        Y_sub = sp.csc_matrix(Y_level[inst][:, children])
        indptr, indices, data, feats, pos_ptr, pos_idx = _block_problem(X_sub, Y_sub, used)
        W, iters = train_block(
            indptr, indices, data, feats.size, pos_ptr, pos_idx, config.Cp, config.Cn, config.bias,
            config.eps, config.max_iter, LOSSES.index(config.loss), config.seed, w_proto,
        )
        n_unconverged += int((iters >= config.max_iter).sum())
        W[:, :-1][np.abs(W[:, :-1]) < config.threshold] = 0.0
        child_idx, feat_idx = np.nonzero(W)
        rows.append(np.where(feat_idx == feats.size, n_features, feats[np.minimum(feat_idx, feats.size - 1)]))
        cols.append(children[child_idx])
        vals.append(W[child_idx, feat_idx])
    if n_unconverged:
        log.info("%s: %d rankers stopped at max_iter=%d", desc, n_unconverged, config.max_iter)
    shape = (n_features + 1, C.shape[0])
    if not rows:
        return sp.csc_matrix(shape, dtype=np.float32)
    W = sp.csc_matrix(
        (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))), shape=shape
    )
    W.sort_indices()
    return W
