"""The level trainer's helpers: a block's features re-indexed for the solver, and the group width."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from xmc.linear.ranker import GROUP_WIDTH, MIN_GROUPS, _block_problem, _group_width


def test_a_block_is_reindexed_to_its_own_features_and_the_scratch_map_is_reset():
    n_features = 50
    local = np.full(n_features, -1, np.int32)
    for seed in range(3):  # the same scratch map, reused block after block
        X = sp.random(7, n_features, density=0.1, format="csr", dtype=np.float64, random_state=seed)
        indptr, indices, data, feats = _block_problem(X, local)
        np.testing.assert_array_equal(feats, np.unique(X.indices))
        np.testing.assert_array_equal(feats[indices], X.indices)
        np.testing.assert_array_equal(indptr, X.indptr)
        np.testing.assert_array_equal(data, X.data.astype(np.float32))
        assert (indptr.dtype, indices.dtype, data.dtype) == (np.int64, np.uint32, np.float32)
        assert np.all(local == -1)


def test_groups_are_used_from_exactly_min_groups_groups_on():
    assert MIN_GROUPS == 2
    assert _group_width(np.array([GROUP_WIDTH, 1])) == GROUP_WIDTH  # two groups: enough
    assert _group_width(np.array([GROUP_WIDTH + 1])) == GROUP_WIDTH
    assert _group_width(np.array([GROUP_WIDTH])) == 1  # one group: a child per group instead


def _level():
    """40 features, 6 nodes under 3 parents (2 each), every parent routing every document."""
    from tests.conftest import random_problem

    X, Y = random_problem(n=120, d=40, n_labels=6, density=0.3)
    C = sp.csr_matrix((np.ones(6), [0, 0, 1, 1, 2, 2], np.arange(7)), shape=(6, 3))
    return X, Y, sp.csr_matrix(np.ones((120, 3), np.float32)), C


def test_a_shard_of_parents_fills_only_its_columns_of_the_full_level():
    from xmc.linear import LinearConfig, train_level

    X, Y, M, C = _level()
    full = train_level(X, Y, M, C, LinearConfig(threshold=0.0))
    first = train_level(X, Y, M, C, LinearConfig(threshold=0.0), parents=np.array([0]))
    assert first.shape == full.shape == (41, 6) and first.dtype == np.float32
    np.testing.assert_array_equal(first.toarray()[:, :2], full.toarray()[:, :2])
    assert first[:, 2:].nnz == 0
    none = train_level(X, Y, M, C, LinearConfig(), parents=np.array([], np.int64))
    assert none.shape == (41, 6) and none.dtype == np.float32 and none.nnz == 0


class _Bar:
    """Records what a progress bar is asked to show."""

    def __init__(self, **shown):
        self.shown, self.done = shown, 0

    def update(self, n):
        self.done += n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_training_shows_its_progress_in_nodes_and_logs_rankers_stopped_at_the_cap(monkeypatch, caplog):
    import logging

    from xmc.linear import LinearConfig, ranker, train_level

    bars = []
    monkeypatch.setattr(ranker, "progress", lambda **shown: bars.append(_Bar(**shown)) or bars[-1])
    X, Y, M, C = _level()
    with caplog.at_level(logging.INFO, logger="xmc.linear.ranker"):
        train_level(X, Y, M, C, LinearConfig(max_iter=1), desc="level 2")
        train_level(X, Y, M, C, LinearConfig(max_iter=1), parents=np.array([2]))
    assert [(b.shown, b.done) for b in bars] == [({"total": 6, "desc": "level 2", "unit": "node"}, 6),
                                                 ({"total": 2, "desc": "train level", "unit": "node"}, 2)]
    assert [r.getMessage() for r in caplog.records] == ["level 2: 6 rankers stopped at max_iter=1",
                                                        "train level: 2 rankers stopped at max_iter=1"]
    bars.clear()
    M = M.toarray()
    M[:, 1] = 0  # parent 1 routes no document: its 2 children are skipped, and still counted done
    train_level(X, Y, sp.csr_matrix(M), C, LinearConfig())
    assert bars[0].done == 6
