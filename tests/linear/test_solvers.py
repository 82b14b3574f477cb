"""Our dual coordinate descent against scikit-learn's LIBLINEAR on small random problems."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC
from tests.conftest import random_problem

from xmc.linear import LinearConfig, solve_binary, solve_multi, train_level


def _problem(seed):
    rng = np.random.default_rng(seed)
    X = sp.random(250, 40, density=0.25, random_state=seed, format="csr", dtype=np.float32)
    y = (X @ rng.normal(size=40) + 0.1 * rng.normal(size=250) > 0.1).astype(int)
    return X, y


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("loss, C", [("squared_hinge", 1.0), ("squared_hinge", 4.0), ("hinge", 0.5)])
def test_svm_matches_liblinear(seed, loss, C):
    X, y = _problem(seed)
    w = solve_binary(X, y, loss=loss, C=C, bias=1.0, eps=1e-9, max_iter=100_000)
    ref = LinearSVC(loss=loss, dual=True, C=C, tol=1e-9, max_iter=1_000_000, intercept_scaling=1.0).fit(X, y)
    np.testing.assert_allclose(w[:-1], ref.coef_.ravel(), atol=1e-5)
    assert w[-1] == pytest.approx(ref.intercept_[0], abs=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_logistic_matches_liblinear(seed):
    X, y = _problem(seed)
    w = solve_binary(X, y, loss="logistic", C=2.0, eps=1e-10, max_iter=100_000)
    ref = LogisticRegression(solver="liblinear", dual=True, C=2.0, tol=1e-10, max_iter=1_000_000).fit(X, y)
    np.testing.assert_allclose(w[:-1], ref.coef_.ravel(), atol=1e-5)
    assert w[-1] == pytest.approx(ref.intercept_[0], abs=1e-5)


def test_unequal_costs_shift_the_solution():
    X, y = _problem(2)
    w_even = solve_binary(X, y, C=1.0, Cn=1.0, eps=1e-6, max_iter=10_000)
    w_pos = solve_binary(X, y, C=8.0, Cn=1.0, eps=1e-6, max_iter=10_000)
    Xb = sp.hstack([X, np.ones((X.shape[0], 1))]).tocsr()
    recall = lambda w: ((Xb @ w > 0) & (y == 1)).sum() / (y == 1).sum()  # noqa: E731
    assert recall(w_pos) >= recall(w_even)


def test_train_level_only_keeps_weights_above_threshold_and_routes_by_parent():
    X, Y = random_problem(n=300, n_labels=8)
    C = sp.csr_matrix((np.ones(8), np.arange(8) // 4, np.arange(9)), shape=(8, 2))  # 2 parents x 4 children
    M = sp.csr_matrix(np.ones((300, 2), np.float32))
    W = train_level(X, Y, M, C, LinearConfig(threshold=0.05))
    assert W.shape == (X.shape[1] + 1, 8)
    body = W[:-1].data
    assert np.all(np.abs(body) >= 0.05)
    # with each parent routing every doc, every child is a plain one-vs-rest classifier
    w0 = solve_binary(X, Y[:, 0].toarray().ravel(), eps=0.1, max_iter=100)
    w0[:-1][np.abs(w0[:-1]) < 0.05] = 0
    np.testing.assert_allclose(W[:, 0].toarray().ravel(), w0, atol=1e-4)


@pytest.mark.parametrize("loss", ["squared_hinge", "hinge", "logistic"])
def test_children_trained_together_reach_each_ones_own_optimum(loss):
    """A group shares its passes over the rows; each child must still solve its own problem."""
    X, _ = _problem(3)
    rng = np.random.default_rng(3)
    masks = [rng.random(X.shape[0]) < p for p in (0.05, 0.3, 0.5, 0.8)]
    tight = dict(loss=loss, eps=1e-9, max_iter=100_000)
    together = solve_multi(X, masks, **tight)
    for j, mask in enumerate(masks):
        np.testing.assert_allclose(together[:, j], solve_binary(X, mask, **tight), atol=1e-5)


def test_train_level_is_deterministic_and_independent_of_thread_count():
    import numba

    X, Y = random_problem(n=300, n_labels=70)
    C = sp.csr_matrix((np.ones(70), np.arange(70) // 35, np.arange(71)), shape=(70, 2))  # 2 groups of 32 + 3
    M = sp.csr_matrix(np.ones((300, 2), np.float32))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = train_level(X, Y, M, C, LinearConfig())
        numba.set_num_threads(before)
        many = train_level(X, Y, M, C, LinearConfig())
    finally:
        numba.set_num_threads(before)
    assert (one != many).nnz == 0
    assert one.nnz > 70  # not just the biases


def test_defaults_are_liblinears_and_every_argument_reaches_the_solver():
    X, y = _problem(3)
    explicit = solve_binary(X, y, loss="squared_hinge", C=1.0, Cn=None, bias=1.0, eps=0.1, max_iter=100, seed=0)
    np.testing.assert_array_equal(solve_binary(X, y), explicit)
    np.testing.assert_array_equal(solve_multi(X, [y > 0]), explicit[:, None])
    # a negative cost of 4 is LIBLINEAR's class weight 4 on the negative class
    w = solve_binary(X, y, C=1.0, Cn=4.0, eps=1e-9, max_iter=100_000)
    ref = LinearSVC(dual=True, C=1.0, class_weight={0: 4.0, 1: 1.0}, tol=1e-9, max_iter=1_000_000).fit(X, y)
    np.testing.assert_allclose(w[:-1], ref.coef_.ravel(), atol=1e-5)
    # the bias feature's value: sklearn reports intercept = scaling x its weight
    w = solve_binary(X, y, bias=2.0, eps=1e-9, max_iter=100_000)
    ref = LinearSVC(dual=True, intercept_scaling=2.0, tol=1e-9, max_iter=1_000_000).fit(X, y)
    assert 2.0 * w[-1] == pytest.approx(ref.intercept_[0], abs=1e-4)
    # the seed orders the coordinates: stopping early, two seeds stop at two different points
    a, b = (solve_binary(X, y, eps=0.5, max_iter=3, seed=s) for s in (0, 1))
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, solve_binary(X, y, eps=0.5, max_iter=3, seed=0))


def test_the_default_iteration_cap_is_100():
    X, y = _problem(4)
    capped = solve_binary(X, y, C=1e4, eps=1e-12)  # a hard problem: stops at the cap, not the tolerance
    np.testing.assert_array_equal(capped, solve_binary(X, y, C=1e4, eps=1e-12, max_iter=100))
    assert not np.array_equal(capped, solve_binary(X, y, C=1e4, eps=1e-12, max_iter=101))


def test_every_parent_is_trained_whatever_its_size_and_the_level_keeps_its_shape():
    """Parent 0 routes no document (its children stay at zero), parent 1 has a single child, parent 2
    a single routed document; the level keeps all 6 columns and float32 weights."""
    X, Y = random_problem(n=200, d=40, n_labels=6, density=0.3)
    C = sp.csr_matrix((np.ones(6), [0, 0, 1, 2, 2, 2], np.arange(7)), shape=(6, 3))
    M = sp.lil_matrix((200, 3), dtype=np.float32)
    M[:, 1] = 1
    M[5, 2] = 1
    Y = Y.toarray()
    Y[5, 3] = 1
    Y = sp.csr_matrix(Y)
    W = train_level(X, Y, sp.csr_matrix(M), C, LinearConfig(threshold=0.0))
    assert W.shape == (41, 6) and W.dtype == np.float32
    dense = W.toarray()
    assert not dense[:, :2].any()  # nobody routed to parent 0
    assert np.abs(dense[:, 2]).sum() > 0  # a lone child is still trained
    assert np.abs(dense[:, 3:]).sum() > 0  # one routed document is still a problem to solve


@pytest.mark.parametrize("loss", ["hinge", "logistic"])
def test_the_level_uses_its_configured_loss(loss):
    X, Y = random_problem(n=300, n_labels=4)
    C = sp.csr_matrix((np.ones(4), np.zeros(4, int), np.arange(5)), shape=(4, 1))
    M = sp.csr_matrix(np.ones((300, 1), np.float32))
    W = train_level(X, Y, M, C, LinearConfig(loss=loss, threshold=0.0, eps=1e-9, max_iter=100_000))
    masks = [Y[:, j].toarray().ravel() > 0 for j in range(4)]
    expected = solve_multi(X, masks, loss=loss, eps=1e-9, max_iter=100_000)
    np.testing.assert_allclose(W.toarray(), expected, atol=1e-3)  # float32 level weights against float64
    other = solve_multi(X, masks, loss="squared_hinge", eps=1e-9, max_iter=100_000)
    assert np.abs(W.toarray() - other).max() > 0.05


def test_the_default_iteration_cap_is_100_passes():
    X, y = _problem(4)
    masks = [y > 0, y <= 0]
    capped = solve_multi(X, masks, eps=1e-12)  # far from converged: the cap decides where it stops
    np.testing.assert_array_equal(capped, solve_multi(X, masks, eps=1e-12, max_iter=100))
    assert np.abs(capped - solve_multi(X, masks, eps=1e-12, max_iter=101)).max() > 0


def test_float64_features_train_as_their_float32_rounding():
    """The solver reads features in float32 (the library's feature type), whatever it is given."""
    X, y = _problem(5)
    X64 = sp.csr_matrix(X, dtype=np.float64)
    X64.data += 1e-9 * np.arange(X64.nnz)  # digits that float32 drops
    rounded = sp.csr_matrix(X64, dtype=np.float32)
    assert (rounded.astype(np.float64) != X64).nnz > 0
    np.testing.assert_array_equal(solve_multi(X64, [y > 0]), solve_multi(rounded, [y > 0]))
