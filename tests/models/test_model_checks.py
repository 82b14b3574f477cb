"""Checks every registered model must pass (scikit-learn's estimator checks, for xmc)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from tests.conftest import random_problem

from xmc.exceptions import ModelFormatError, NotFittedError
from xmc.models import method_names, model_class
from xmc.models.pipeline import load

METHODS = [name for name in method_names() if model_class(name).input_kind == "features"]


def _fit(method, X, Y):
    cls = model_class(method)
    return cls(cls._test_config()).fit(X, Y)


@pytest.fixture(scope="module")
def data():
    X, Y = random_problem(n=300, n_labels=40)
    return X[:240], Y[:240], X[240:]


@pytest.mark.parametrize("method", METHODS)
def test_fit_returns_self_and_keeps_config(method, data):
    X, Y, _ = data
    cls = model_class(method)
    cfg = cls._test_config()
    model = cls(cfg)
    assert model.fit(X, Y) is model
    assert model.config == cfg


@pytest.mark.parametrize("method", METHODS)
def test_predict_before_fit_raises(method, data):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        model_class(method)().predict(data[2])


@pytest.mark.parametrize("method", METHODS)
def test_save_load_predict_identical(method, data, tmp_path):
    X, Y, Xt = data
    cls = model_class(method)
    model = _fit(method, X, Y)
    model.save(tmp_path / "m")
    assert not list((tmp_path / "m").glob("**/*.pkl"))
    again = load(tmp_path / "m")
    assert type(again) is cls and again.config == model.config
    a, b = model.predict(Xt), again.predict(Xt)
    assert (a != b).nnz == 0


@pytest.mark.parametrize("method", METHODS)
def test_one_row_equals_its_batch_row(method, data):
    X, Y, Xt = data
    model = _fit(method, X, Y)
    batch = model.predict(Xt)
    for i in (0, 7, 31):
        single = model.predict(Xt[i])
        np.testing.assert_array_equal(single.toarray(), batch[i].toarray())


@pytest.mark.parametrize("method", METHODS)
def test_fixed_seed_is_deterministic(method, data):
    X, Y, Xt = data
    a = _fit(method, X, Y).predict(Xt)
    b = _fit(method, X, Y).predict(Xt)
    assert (a != b).nnz == 0


@pytest.mark.parametrize("method", METHODS)
def test_dense_and_sparse_inputs_agree(method, data):
    X, Y, Xt = data
    model = _fit(method, X, Y)
    assert (model.predict(Xt) != model.predict(Xt.toarray())).nnz == 0


@pytest.mark.parametrize("method", METHODS)
def test_wrong_feature_count_is_a_clear_error(method, data):
    X, Y, Xt = data
    model = _fit(method, X, Y)
    with pytest.raises(ValueError, match="features but the model was fitted with"):
        model.predict(sp.csr_matrix((2, X.shape[1] + 1), dtype=np.float32))


def test_loading_garbage_raises_model_format_error(tmp_path):
    with pytest.raises(ModelFormatError, match="not an xmc model folder"):
        load(tmp_path)
    (tmp_path / "xmc.json").write_text('{"format_version": 99}')
    with pytest.raises(ModelFormatError, match="format version 99"):
        load(tmp_path)


def test_import_xmc_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, xmc, xmc.api, xmc.cli.main, xmc.models.xr_linear; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_xr_linear_learns_planted_structure(data):
    from xmc.metrics import precision_at_k

    X, Y, _ = data
    model = _fit("xr-linear", X, Y)
    assert precision_at_k(Y, model.predict(X), 1) > 0.9
