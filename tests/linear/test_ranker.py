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
