"""``sparse_product`` (A @ B on every core, whole or cut to each row's k largest entries) and
``l2_normalize_rows``."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from xmc.utils.sparse import sparse_product, sparse_products_topk, topk_dense_rows, topk_per_row


def _random(rng, rows, cols, density):
    return sp.random(rows, cols, density=density, random_state=rng, format="csr", dtype=np.float32)


@pytest.mark.parametrize("rows", [1, 3, 200])
def test_the_whole_product_equals_scipy(rows):
    rng = np.random.default_rng(rows)
    A, B = _random(rng, rows, 60, 0.1), _random(rng, 60, 300, 0.05)
    got = sparse_product(A, B)
    expected = sp.csr_matrix(A @ B)
    assert got.dtype == np.float32 and got.has_sorted_indices and got.shape == (rows, 300)
    assert got.nnz == expected.nnz  # one entry per column any term reaches, as SciPy's
    np.testing.assert_allclose(got.toarray(), expected.toarray(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("k", [1, 5, 40, 1000])
def test_a_cut_keeps_each_rows_k_largest_as_topk_per_row(k):
    rng = np.random.default_rng(k)
    A, B = _random(rng, 150, 60, 0.1), _random(rng, 60, 300, 0.05)
    got = sparse_product(A, B, k)
    expected = topk_per_row(sp.csr_matrix(A @ B), k)
    assert got.has_sorted_indices and np.diff(got.indptr).max() <= k
    np.testing.assert_allclose(got.toarray(), expected.toarray(), rtol=1e-5, atol=1e-7)


def test_equal_values_at_the_cut_go_to_the_lower_columns():
    A = sp.csr_matrix(np.array([[1.0], [2.0]], np.float32))
    B = sp.csr_matrix(np.array([[1, 3, 1, 1, 0, 1]], np.float32))
    got = sparse_product(A, B, 3)
    assert got.indices[:3].tolist() == [0, 1, 2] and got.data[:3].tolist() == [1, 3, 1]
    assert got.indices[3:].tolist() == [0, 1, 2] and got.data[3:].tolist() == [2, 6, 2]


def test_empty_rows_and_duplicates():
    A = sp.csr_matrix((np.array([1.0, 2.0], np.float32), np.array([1, 1]), np.array([0, 0, 2])), shape=(2, 2))
    B = sp.csr_matrix(np.array([[5, 0, 0], [0, 1, 3]], np.float32))
    for k in (0, 1, 5):
        np.testing.assert_allclose(sparse_product(A, B, k).toarray(), [[0, 0, 0], [0, 3 * (k != 1), 9]])
        last_empty = sparse_product(sp.csr_matrix(A.toarray()[::-1]), B, k)
        np.testing.assert_allclose(last_empty.toarray(), [[0, 3 * (k != 1), 9], [0, 0, 0]])
    assert sparse_product(sp.csr_matrix((0, 2), dtype=np.float32), B).shape == (0, 3)


def test_shapes_that_do_not_multiply_are_refused():
    with pytest.raises(ValueError, match="do not multiply"):
        sparse_product(sp.csr_matrix((2, 3), dtype=np.float32), sp.csr_matrix((4, 5), dtype=np.float32))


def test_l2_normalize_rows_equals_sklearn_and_leaves_its_input_alone():
    from sklearn.preprocessing import normalize

    from xmc.utils.sparse import l2_normalize_rows

    rng = np.random.default_rng(0)
    M = _random(rng, 120, 50, 0.1)
    M[7] = 0  # an empty row stays empty
    M = sp.csr_matrix(M)
    M.eliminate_zeros()
    before = M.copy()
    got = l2_normalize_rows(M)
    np.testing.assert_allclose(got.toarray(), normalize(M.toarray()), rtol=1e-6)
    assert got.dtype == np.float32 and got[7].nnz == 0
    got.data[:] = 0
    got.indices[:] = 0
    assert (M != before).nnz == 0 and (M.indices == before.indices).all()


@pytest.mark.parametrize("k", [1, 8, 500])
def test_a_pair_of_cut_products_equals_two_separate_ones(k):
    rng = np.random.default_rng(k)
    A, A2, B = _random(rng, 90, 60, 0.08), _random(rng, 90, 60, 0.04), _random(rng, 60, 300, 0.05)
    A[5] = 0  # a row only the second part reaches
    A = sp.csr_matrix(A)
    A.eliminate_zeros()
    first, both = sparse_products_topk(A, A2, B, k)
    np.testing.assert_allclose(first.toarray(), topk_per_row(sp.csr_matrix(A @ B), k).toarray(), rtol=1e-5)
    np.testing.assert_allclose(both.toarray(), topk_per_row(sp.csr_matrix((A + A2) @ B), k).toarray(), rtol=1e-5)
    assert first.has_sorted_indices and both.has_sorted_indices and first[5].nnz == 0 < both[5].nnz
    with pytest.raises(ValueError, match="do not add"):
        sparse_products_topk(A, A2[:3], B, k)


@pytest.mark.parametrize("shape, k", [((5, 7), 3), ((300, 40), 40), ((3, 4), 9), ((0, 4), 2), ((2, 1), 1)])
def test_topk_of_dense_rows_keeps_each_rows_k_largest_by_value_then_column(shape, k):
    rng = np.random.default_rng(7)
    scores = rng.integers(0, 4, shape).astype(np.float32)  # many ties and zeros
    got = topk_dense_rows(scores, k)
    assert got.shape == shape
    for i, row in enumerate(scores):
        want = sorted(range(shape[1]), key=lambda c: (-row[c], c))[:k]  # every column counts, zeros too
        assert got.indices[got.indptr[i]:got.indptr[i + 1]].tolist() == want
        np.testing.assert_array_equal(got.data[got.indptr[i]:got.indptr[i + 1]], row[want])
