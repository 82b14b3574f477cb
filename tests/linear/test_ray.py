"""XR-Linear on Ray: the same weights as one process, and sharded prediction equal to local."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from tests.conftest import random_problem

ray = pytest.importorskip("ray")

from xmc.linear.distributed import shards  # noqa: E402
from xmc.models.xr_linear import XRLinear, XRLinearConfig  # noqa: E402
from xmc.tree import TreeConfig  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_shards_cover_every_parent_once_and_balance_work():
    C = sp.csr_matrix((np.ones(12), np.repeat(np.arange(4), [6, 3, 2, 1]), np.arange(13)), shape=(12, 4))
    M = sp.csr_matrix(np.ones((10, 4)))
    parts = shards(C, M, 2)
    assert sorted(np.concatenate(parts).tolist()) == [0, 1, 2, 3]
    assert [sorted(p.tolist()) for p in parts] == [[0], [1, 2, 3]]  # 6 children against 3 + 2 + 1


def test_ray_training_gives_the_one_process_model(local_ray):
    X, Y = random_problem(n=400, n_labels=70, seed=5)
    config = XRLinearConfig(tree=TreeConfig(max_leaf_size=8, n_splits=4))
    local = XRLinear(config).fit(X, Y)
    remote = XRLinear(config).fit(X, Y, backend="ray", workers=2)
    for a, b in zip(local.weights_, remote.weights_, strict=True):
        assert a.shape == b.shape and (a != b).nnz == 0
    assert (local.predict(X) != remote.predict(X)).nnz == 0
    from xmc.linear.distributed import predict_ray

    assert (predict_ray(local, X, 3, top_k=5) != local.predict(X, top_k=5)).nnz == 0
