"""XR-Linear on Ray: the same weights as one process, and sharded prediction equal to local."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from tests.conftest import random_problem

ray = pytest.importorskip("ray")

from xmc.linear.distributed import predict_ray, row_ranges, shards  # noqa: E402
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


def test_shards_weigh_children_by_routed_documents_largest_first():
    """Work is children x routed documents (at least 1): here 6, 4, 1, 3, 5. Largest first onto the
    least loaded of 2 shards: 6 | 5, then 4 and 3 each onto the lighter (9 | 9), then 1 onto the first."""
    C = sp.csr_matrix((np.ones(8), np.repeat(np.arange(5), [1, 2, 1, 3, 1]), np.arange(9)), shape=(8, 5))
    routed = np.zeros((6, 5))
    for parent, n_docs in enumerate([6, 2, 0, 1, 5]):
        routed[:n_docs, parent] = 1
    parts = shards(C, sp.csr_matrix(routed), 2)
    assert {tuple(p.tolist()) for p in parts} == {(0, 2, 3), (1, 4)}
    assert all(p.dtype == np.int64 for p in parts)


@pytest.mark.parametrize(("n_rows", "n_parts", "expected"), [
    (10, 3, [(0, 3), (3, 6), (6, 10)]), (2, 4, [(0, 1), (1, 2)]), (5, 1, [(0, 5)]), (0, 2, [])])
def test_prediction_cuts_the_rows_into_consecutive_non_empty_ranges(n_rows, n_parts, expected):
    assert row_ranges(n_rows, n_parts) == expected


def test_ray_training_gives_the_one_process_model(local_ray):
    X, Y = random_problem(n=400, n_labels=70, seed=5)
    config = XRLinearConfig(tree=TreeConfig(max_leaf_size=8, n_splits=4))
    local = XRLinear(config).fit(X, Y)
    remote = XRLinear(config).fit(X, Y, backend="ray", workers=2)
    for a, b in zip(local.weights_, remote.weights_, strict=True):
        assert a.shape == b.shape and (a != b).nnz == 0
    assert (local.predict(X) != remote.predict(X)).nnz == 0
    assert (predict_ray(local, X, 3, top_k=5) != local.predict(X, top_k=5)).nnz == 0
    assert (predict_ray(local, X[:2], 3, top_k=5) != local.predict(X[:2], top_k=5)).nnz == 0  # fewer rows than tasks
    assert predict_ray(local, X[:0], 2).shape == (0, Y.shape[1])


def test_prediction_connects_to_the_address_it_is_given(local_ray, monkeypatch):
    from xmc.linear import distributed

    X, Y = random_problem(n=60, n_labels=20, seed=2)
    model = XRLinear(XRLinearConfig(tree=TreeConfig(max_leaf_size=8, n_splits=4))).fit(X, Y)
    asked = []
    monkeypatch.setattr(distributed, "ray_module", lambda address=None: asked.append(address) or ray)
    assert (predict_ray(model, X, 2, address="auto", top_k=3) != model.predict(X, top_k=3)).nnz == 0
    assert asked == ["auto"]
