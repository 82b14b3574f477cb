"""XR-Linear beyond one process, on Ray: every level's parents are cut into shards of about equal
work, each shard's rankers train in a Ray task (features, labels and matching travel through Ray's
object store, not a shared disk), and the driver joins the shards' disjoint columns. A child's
weights never depend on its shard (its random stream and its group follow the tree alone), so the
model equals the one-process model for the same seed. Batch prediction is sharded by rows.

Ray is an optional extra (``pip install 'xmc[ray]'``) and is imported only here, only when used.
"""

from __future__ import annotations

import itertools

import numpy as np
import scipy.sparse as sp

from xmc.exceptions import XMCError
from xmc.linear.ranker import LinearConfig, train_level


def ray_module(address: str | None = None):
    """Ray, initialised (a local cluster, or ``address``: ``auto`` or ``ray://host:port``)."""
    try:
        import ray
    except ModuleNotFoundError:
        raise XMCError("the ray backend needs Ray: pip install 'xmc[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    return ray


def shards(C: sp.csr_matrix, M: sp.csr_matrix, n_shards: int) -> list[np.ndarray]:
    """Parents cut into ``n_shards`` groups of about equal work (children x routed documents)."""
    children = np.diff(sp.csc_matrix(C).indptr)
    routed = np.diff(sp.csc_matrix(M).indptr)
    work = children.astype(np.float64) * np.maximum(routed, 1)
    order = np.argsort(-work, kind="stable")
    load = np.zeros(n_shards)
    out: list[list[int]] = [[] for _ in range(n_shards)]
    for p in order:  # largest first onto the least loaded shard
        s = int(np.argmin(load))
        out[s].append(int(p))
        load[s] += work[p]
    return [np.sort(np.asarray(s, dtype=np.int64)) for s in out if s]


def _train_shard(X, Y_level, M, C, config, parents):
    return train_level(X, Y_level, M, C, config, parents=parents)


def train_level_ray(X: sp.csr_matrix, Y_level: sp.csr_matrix, M: sp.csr_matrix, C: sp.csr_matrix,
                    config: LinearConfig, n_workers: int, address: str | None = None) -> sp.csc_matrix:
    """:func:`xmc.linear.ranker.train_level`, its parents spread over ``n_workers`` Ray tasks."""
    ray = ray_module(address)
    task = ray.remote(_train_shard)
    refs = [ray.put(a) for a in (X, Y_level, M, C)]
    parts = ray.get([task.remote(*refs, config, parents) for parents in shards(C, M, n_workers)])
    W = parts[0]
    for part in parts[1:]:
        W = W + part  # disjoint columns
    W = sp.csc_matrix(W, dtype=np.float32)
    W.sort_indices()
    return W


def _predict_shard(model, X, kwargs):
    return model.predict(X, **kwargs)


def row_ranges(n_rows: int, n_parts: int) -> list[tuple[int, int]]:
    """``n_parts`` consecutive row ranges of about equal size that cover ``0..n_rows`` (empty ones
    left out)."""
    cuts = np.linspace(0, n_rows, n_parts + 1).astype(np.int64)
    return [(int(lo), int(hi)) for lo, hi in itertools.pairwise(cuts) if hi > lo]


def predict_ray(model, X: sp.csr_matrix, n_workers: int, address: str | None = None, **kwargs) -> sp.csr_matrix:
    """``model.predict(X)`` with the rows cut into ``n_workers`` Ray tasks (the model goes through the
    object store once)."""
    if X.shape[0] == 0:
        return model.predict(X, **kwargs)
    ray = ray_module(address)
    task = ray.remote(_predict_shard)
    model_ref = ray.put(model)
    parts = ray.get([task.remote(model_ref, X[lo:hi], kwargs) for lo, hi in row_ranges(X.shape[0], n_workers)])
    return sp.vstack(parts, format="csr")
