"""One level of XR-Linear: one-vs-rest linear rankers, each trained on its parent's instances."""

from __future__ import annotations

import logging
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import numba as nb
import numpy as np
import scipy.sparse as sp
from numba.typed import List

from xmc._config import Config, Interval, Options, option
from xmc.linear.solvers import LOSSES, row_norms_sq, train_group
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
    negatives: str = option("tfn", "tfn: siblings under true parents; man: +the model's own top-b; tfn+man",
                            Options(NEGATIVE_SAMPLERS))
    seed: int = option(0, "seed of the coordinate order", Interval(int, 0, None))


GROUP_WIDTH = 32  # children trained together; wider groups stream more weights per pass than the caches hold
MIN_GROUPS = 2  # a level with fewer groups than this trains one child per group, so threads have work


def _block_problem(X: sp.csr_matrix, local: np.ndarray):
    """The rows ``X`` re-indexed to the features they use, as the solver's arrays.

    ``local`` is a reusable ``n_features`` int32 array of -1: it maps the block's features to
    0..F-1 for one gather (much cheaper than sorting or searching the block's indices) and is
    reset on the way out.
    """
    local[X.indices] = 0
    feats = np.flatnonzero(local == 0)
    local[feats] = np.arange(feats.size, dtype=np.int32)
    indices = local[X.indices].view(np.uint32)  # unsigned: numba skips its negative-index check
    local[feats] = -1
    return X.indptr.astype(np.int64), indices, X.data.astype(np.float32, copy=False), feats


def _group_width(sizes: np.ndarray) -> int:
    """GROUP_WIDTH, or one child per group on levels too small to give every thread a group
    (one child runs on a register accumulator, the fastest path for big blocks).

    It depends on the tree only, never on the thread count: the grouping fixes each child's random
    stream, so a model is the same on any machine.
    """
    return GROUP_WIDTH if np.ceil(sizes / GROUP_WIDTH).sum() >= MIN_GROUPS else 1


class _LevelTrainer:
    """Prepares blocks on the calling thread while worker threads train their groups of children."""

    def __init__(self, config: LinearConfig, n_features: int, n_threads: int, bar):
        self.config, self.n_features, self.bar = config, n_features, bar
        self.pool = ThreadPoolExecutor(max_workers=n_threads)
        self.max_pending = 2 * n_threads  # bounds the prepared blocks held in memory
        self.pending: dict[Future, tuple] = {}  # future -> (block features, children)
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.n_unconverged = 0
        self.w_proto = np.zeros(0, np.float32)

    def submit(self, block, xsq, positives, children: np.ndarray) -> None:
        indptr, indices, data, feats = block
        c = self.config
        future = self.pool.submit(
            train_group, indptr, indices, data, xsq, feats.size, positives, c.Cp, c.Cn, c.bias, c.eps,
            c.max_iter, LOSSES.index(c.loss), c.seed, int(children[0]), c.threshold, self.w_proto,
        )
        self.pending[future] = (feats, children)
        if len(self.pending) >= self.max_pending:
            self._collect(FIRST_COMPLETED)

    def _collect(self, how) -> None:
        finished, _ = wait(self.pending, return_when=how)
        for future in finished:
            child, feature, value, iters = future.result()
            feats, children = self.pending.pop(future)
            self.n_unconverged += int((iters >= self.config.max_iter).sum())
            in_block = feats[np.minimum(feature, feats.size - 1)]
            # 32-bit indices: the pruned weights of a level can run to tens of millions
            self.rows.append(np.where(feature == feats.size, self.n_features, in_block).astype(np.int32))
            self.cols.append(children[child].astype(np.int32))
            self.vals.append(value)
            self.bar.update(children.size)

    def abandon(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    def finish(self, shape) -> sp.csc_matrix:
        self._collect(ALL_COMPLETED)
        self.pool.shutdown()
        if not self.rows:
            return sp.csc_matrix(shape, dtype=np.float32)
        rows, cols, vals = (_concatenate_and_clear(parts) for parts in (self.rows, self.cols, self.vals))
        W = sp.csc_matrix((vals, (rows, cols)), shape=shape)
        W.sort_indices()
        return W


def _concatenate_and_clear(parts: list[np.ndarray]) -> np.ndarray:
    """One array from ``parts``, emptying the list so the pieces are freed as soon as possible."""
    whole = np.concatenate(parts)
    parts.clear()
    return whole


def train_level(X: sp.csr_matrix, Y_level: sp.csr_matrix, M: sp.csr_matrix, C: sp.csr_matrix,
                config: LinearConfig, desc: str = "", parents: np.ndarray | None = None) -> sp.csc_matrix:
    """Weights ``(n_features + 1, n_nodes)`` of one level (last row: bias weight).

    Parameters
    ----------
    X : (n_docs, n_features) CSR features.
    Y_level : (n_docs, n_nodes) which nodes of this level each doc is positive for.
    M : (n_docs, n_parents) matching: which parents route each doc (its negatives' pool).
    C : (n_nodes, n_parents) the level's cluster matrix.
    parents : train only the children of these parents (a shard of a distributed run); the other
        columns stay empty. The weights of a child never depend on which shard trained it.

    Uses ``numba.get_num_threads()`` threads.
    """
    n_features = X.shape[1]
    children_of = sp.csc_matrix(C)
    routed = sp.csc_matrix(M)
    Y_level = sp.csr_matrix(Y_level)
    width = _group_width(np.diff(children_of.indptr))  # from the whole level, so shards group alike
    if parents is None:
        parents = np.arange(children_of.shape[1])
    n_children = int(np.diff(children_of.indptr)[parents].sum())
    desc = desc or "train level"
    with progress(total=n_children, desc=desc, unit="node") as bar:
        trainer = _LevelTrainer(config, n_features, nb.get_num_threads(), bar)
        try:
            _submit_blocks(X, Y_level, children_of, routed, config, trainer, parents, width)
        except BaseException:
            trainer.abandon()
            raise
        W = trainer.finish((n_features + 1, C.shape[0]))
    if trainer.n_unconverged:
        log.info("%s: %d rankers stopped at max_iter=%d", desc, trainer.n_unconverged, config.max_iter)
    return W


def _submit_blocks(X, Y_level, children_of, routed, config, trainer, parents, width) -> None:
    """Prepare each parent's block and hand its groups of children to the trainer."""
    local = np.full(X.shape[1], -1, dtype=np.int32)
    for p in parents:
        children = children_of.indices[children_of.indptr[p] : children_of.indptr[p + 1]]
        inst = np.sort(routed.indices[routed.indptr[p] : routed.indptr[p + 1]])
        if children.size == 0 or inst.size == 0:
            trainer.bar.update(children.size)
            continue
        block = _block_problem(X[inst], local)
        xsq = row_norms_sq(block[0], block[2], config.bias)
        Y_sub = sp.csc_matrix(Y_level[inst][:, children])
        for lo in range(0, children.size, width):
            group = children[lo : lo + width]
            positives = List([Y_sub.indices[Y_sub.indptr[j] : Y_sub.indptr[j + 1]].astype(np.int64)
                              for j in range(lo, lo + group.size)])
            trainer.submit(block, xsq, positives, group)
