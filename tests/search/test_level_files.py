"""The search layout on disk: saved, memory-mapped, checked; and old model folders still load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from tests.conftest import random_problem

from xmc.exceptions import ModelFormatError
from xmc.models.xr_linear import XRLinear, XRLinearConfig
from xmc.search.beam import ChunkedLevel
from xmc.search.level_files import ARRAYS, load_level, save_level
from xmc.tree import TreeConfig
from xmc.utils.io import save_csr


@pytest.fixture(scope="module")
def fitted():
    X, Y = random_problem(n=300, n_labels=64)
    return XRLinear(XRLinearConfig(tree=TreeConfig(max_leaf_size=4, n_splits=4))).fit(X, Y), X


def test_a_level_gives_back_the_weights_it_was_built_from():
    rng = np.random.default_rng(0)
    W = sp.random(31, 12, density=0.3, format="csc", dtype=np.float32, random_state=rng)  # 30 features + bias row
    C = sp.csr_matrix((np.ones(12, np.float32), rng.integers(0, 4, 12), np.arange(13)), shape=(12, 4))
    level = ChunkedLevel.build(W, C, bias_value=2.0)
    assert (level.to_weights() != W).nnz == 0
    assert level.n_weights == W[:30].nnz
    np.testing.assert_allclose(level.bias, 2.0 * W[30].toarray().ravel()[level.child_ids])


def test_a_saved_model_is_memory_mapped_and_predicts_the_same(fitted, tmp_path):
    model, X = fitted
    model.save(tmp_path / "m")
    loaded = XRLinear.load(tmp_path / "m")
    assert all(isinstance(level.entry_val, np.memmap) and isinstance(level.entry_child, np.memmap)
               for level in loaded._levels)
    assert not loaded._levels[0].entry_val.flags.writeable
    a, b = model.predict(X, top_k=5), loaded.predict(X, top_k=5)
    assert (a != b).nnz == 0
    for w1, w2 in zip(model.weights_, loaded.weights_, strict=True):
        assert (w1 != w2).nnz == 0


def test_a_folder_from_before_the_search_layout_still_loads(fitted, tmp_path):
    model, X = fitted
    folder = model.save(tmp_path / "m")
    manifest = json.loads((folder / "xmc.json").read_text())
    del manifest["shapes"]["ranker_layout"]
    (folder / "xmc.json").write_text(json.dumps(manifest))
    for t, W in enumerate(model.weights_):  # the CSC files older versions wrote
        for name in ARRAYS:
            (folder / "ranker" / f"level_{t}" / f"{name}.npy").unlink()
        (folder / "ranker" / f"level_{t}").rmdir()
        save_csr(folder / "ranker" / f"level_{t}.npz", W)
    assert (XRLinear.load(folder).predict(X, top_k=5) != model.predict(X, top_k=5)).nnz == 0


def _edit(path, change):
    a = np.load(path).copy()
    change(a)
    np.save(path, a)


@pytest.mark.parametrize("name, change, message", [
    ("feats", lambda a: a.__setitem__(0, 10**6), "feature id"),
    ("feats", lambda a: a.__setitem__(-1, -1), "feature id"),
    ("entry_child", lambda a: a.__setitem__(0, 99), "outside its parent's group"),
    ("entry_child", lambda a: a.__setitem__(-1, -1), "outside its parent's group"),
    ("entry_ptr", lambda a: a.__setitem__(1, a[-1] + 5), "pointer"),
    ("feat_ptr", lambda a: a.__setitem__(0, 1), "pointer"),
    ("entry_ptr", lambda a: a.__setitem__(-1, a[-1] - 1), "pointer"),
    ("entry_val", lambda a: a.__setitem__(0, np.nan), "NaN"),
    ("bias_row", lambda a: a.__setitem__(0, np.inf), "NaN"),
])
def test_a_damaged_array_is_refused_before_any_kernel_reads_it(fitted, tmp_path, name, change, message):
    model, _ = fitted
    level = tmp_path / "level"
    save_level(level, model._levels[1])
    _edit(level / f"{name}.npy", change)
    with pytest.raises(ModelFormatError, match=message):
        load_level(level, model.tree_.chain[1], model.n_features_in_, 1.0)


@pytest.mark.parametrize("damage", ["dtype", "length", "2-d", "missing", "garbage"])
def test_a_wrong_file_is_refused_naming_it(fitted, tmp_path, damage):
    model, _ = fitted
    level = tmp_path / "level"
    save_level(level, model._levels[1])
    path = level / "entry_child.npy"
    a = np.load(path)
    if damage == "dtype":
        np.save(path, a.astype(np.int64))
    elif damage == "length":
        np.save(path, a[:-1])
    elif damage == "2-d":
        np.save(path, a.reshape(1, -1))
    elif damage == "missing":
        path.unlink()
    else:
        path.write_bytes(b"\x93NUMPY garbage")
    message = {"dtype": "entry_child.npy holds a 1-d int64 array, expected 1-d int32",
               "garbage": r"cannot read array .*entry_child.npy: \w+Error"}.get(damage, "entry_child")
    with pytest.raises(ModelFormatError, match=message):
        load_level(level, model.tree_.chain[1], model.n_features_in_, 1.0)


@pytest.mark.parametrize("mmap", [True, False])
def test_a_pickled_array_is_never_unpickled(fitted, tmp_path, mmap):
    model, _ = fitted
    level = tmp_path / "level"
    save_level(level, model._levels[1])
    np.save(level / "entry_child.npy", np.array([object()] * 3, dtype=object), allow_pickle=True)
    with pytest.raises(ModelFormatError, match="cannot read array .*entry_child.npy"):
        load_level(level, model.tree_.chain[1], model.n_features_in_, 1.0, mmap=mmap)


def test_the_layout_is_loaded_into_memory_without_mmap(fitted, tmp_path):
    model, X = fitted
    save_level(tmp_path / "new" / "level", model._levels[1])
    save_level(tmp_path / "new" / "level", model._levels[0])  # parents are made as needed; files replaced
    level = load_level(tmp_path / "new" / "level", model.tree_.chain[0], model.n_features_in_,
                       model.config.ranker.bias, mmap=False)
    assert not isinstance(level.entry_val, np.memmap)
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(level, name), getattr(model._levels[0], name))
    np.testing.assert_array_equal(level.bias, model._levels[0].bias)


def test_a_level_saved_with_the_older_feature_major_copy_still_loads(fitted, tmp_path):
    """Folders of 2026-12-01 also hold row_ptr / row_pos / row_val: they are left unread."""
    model, X = fitted
    folder = model.save(tmp_path / "m")
    for t in range(len(model._levels)):
        for name, dtype in (("row_ptr", np.int64), ("row_pos", np.int32), ("row_val", np.float32)):
            np.save(folder / "ranker" / f"level_{t}" / f"{name}.npy", np.zeros(3, dtype))
    assert (XRLinear.load(folder).predict(X, top_k=5) != model.predict(X, top_k=5)).nnz == 0
