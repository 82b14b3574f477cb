"""``dense_product``: A @ B.T as a dense array from B transposed, equal to SciPy's product."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from xmc.utils.sparse import dense_product, transposed


@pytest.mark.parametrize("rows", [1, 5, 300])  # the serial kernel below 64 rows, the parallel one above
def test_dense_product_equals_scipy(rows):
    rng = np.random.default_rng(rows)
    A = sp.random(rows, 400, density=0.05, random_state=rng, format="csr", dtype=np.float32)
    B = sp.random(70, 400, density=0.1, random_state=rng, format="csr", dtype=np.float32)
    got = dense_product(A, transposed(B))
    assert got.shape == (rows, 70) and got.dtype == np.float32
    np.testing.assert_allclose(got, (A @ B.T).toarray(), rtol=1e-5, atol=1e-6)


def test_duplicate_entries_are_summed_and_empty_rows_stay_zero():
    A = sp.csr_matrix((np.array([1.0, 2.0], np.float32), np.array([1, 1]), np.array([0, 0, 2])), shape=(2, 3))
    B = sp.csr_matrix(np.array([[0, 3, 0], [1, 1, 1]], np.float32))
    np.testing.assert_allclose(dense_product(A, transposed(B)), [[0, 0], [9, 3]])


def test_shapes_that_do_not_multiply_are_refused():
    with pytest.raises(ValueError, match="do not multiply"):
        dense_product(sp.csr_matrix((2, 3), dtype=np.float32), transposed(sp.csr_matrix((4, 5), dtype=np.float32)))
