"""Damaged model folders and random ``--set`` overrides: loading gives a working model or a
ModelFormatError naming the file; overrides give a config or an InvalidConfigError naming the key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st
from tests.fuzz.test_fuzz_readers import BYTES, JSON

from xmc import api
from xmc.exceptions import InvalidConfigError, XMCError
from xmc.models.pipeline import Pipeline, load
from xmc.models.xr_linear import XRLinearConfig
from xmc.utils.io import save_arrays


@pytest.fixture(scope="module")
def saved_model(small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz") / "model"
    api.train("xr-linear", small_data, out, overrides=["tree.max_leaf_size=16"], eval_split=None)
    texts = [t[:300] for t in api.resolve(small_data).load("dev").texts[:5]]
    return out, texts, sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


def _set_path(obj, path, value):
    """Replace the value at a random key path of a JSON document (or the whole document)."""
    if not path or not isinstance(obj, (dict, list)) or not obj:
        return value
    keys = list(obj) if isinstance(obj, dict) else list(range(len(obj)))
    key = keys[path[0] % len(keys)]
    obj[key] = _set_path(obj[key], path[1:], value)
    return obj


@st.composite
def damage(draw, files):
    name = draw(st.sampled_from(files))
    kind = draw(st.sampled_from(["json", "truncate", "flip", "delete", "replace", "array"]))
    if kind == "json" and not name.endswith(".json"):
        kind = "flip"
    if kind == "array" and not name.endswith(".npz"):
        kind = "truncate"
    detail = {"json": lambda: (draw(st.lists(st.integers(0, 50), max_size=4)), draw(JSON)),
              "truncate": lambda: draw(st.floats(0, 1)),
              "flip": lambda: draw(st.lists(st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=4)),
                                            min_size=1, max_size=3)),
              "delete": lambda: None,
              "replace": lambda: draw(BYTES),
              "array": lambda: draw(st.sampled_from(["negative", "huge", "nan", "shape", "dtype", "empty"]))}[kind]()
    return name, kind, detail


def _damage_array(path: Path, how: str) -> None:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception:  # already damaged by an earlier step: nothing to edit
        return
    key = next((k for k in ("indices", "label_freq", "idf") if k in arrays), sorted(arrays)[0])
    a = arrays[key]
    if how == "negative" and a.size:
        a = a.copy()
        a.flat[0] = -1
    elif how == "huge" and a.size:
        a = a.astype(np.int64) if a.dtype.kind in "iu" else a.copy()
        a.flat[-1] = 2**40 if a.dtype.kind in "iu" else 1e30
    elif how == "nan" and a.dtype.kind == "f" and a.size:
        a = a.copy()
        a.flat[0] = np.nan
    elif how == "shape":
        a = np.concatenate([a.ravel(), a.ravel()[:1]]) if a.size else np.zeros(3)
    elif how == "dtype":
        a = a.astype(np.float64) if a.dtype.kind in "iu" else a.astype(np.int64)
    elif how == "empty":
        a = a[:0]
    arrays[key] = a
    save_arrays(path, **arrays)


def _apply(folder: Path, name: str, kind: str, detail) -> None:
    path = folder / name
    if kind == "json":
        key_path, value = detail
        try:
            doc = json.loads(path.read_text())
        except ValueError:  # already damaged by an earlier step
            doc = None
        path.write_text(json.dumps(_set_path(doc, key_path, value)))
    elif kind == "truncate":
        path.write_bytes(path.read_bytes()[: int(path.stat().st_size * detail)])
    elif kind == "flip":
        data = bytearray(path.read_bytes())
        for where, junk in detail:
            pos = int(where * len(data))
            data[pos:pos + len(junk)] = junk
        path.write_bytes(bytes(data))
    elif kind == "delete":
        path.unlink()
    elif kind == "replace":
        path.write_bytes(detail)
    else:
        _damage_array(path, detail)


@given(data=st.data())
def test_a_damaged_model_folder_loads_cleanly_or_fails_cleanly(saved_model, tmp_path_factory, data):
    source, texts, files = saved_model
    folder = tmp_path_factory.mktemp("damaged") / "model"
    shutil.copytree(source, folder)
    for name, kind, detail in data.draw(st.lists(damage(files), min_size=1, max_size=2)):
        if (folder / name).is_file():
            _apply(folder, name, kind, detail)
    try:
        model = load(folder)
        scores = model.predict(texts, top_k=5)
    except XMCError as exc:
        assert str(exc)
        return
    assert isinstance(model, Pipeline) and sp.issparse(scores) and scores.shape[0] == len(texts)
    assert np.all(np.isfinite(scores.data))


KEYS = [row[0] for row in XRLinearConfig.help_rows()] + ["tree", "beam.nope", "nope", ""]
RAW = st.one_of(st.text(max_size=12), st.sampled_from(["true", "False", "0", "-1", "1e309", "nan", "[1,2]", "[]",
                                                        "null", "1,2", '"x"', "l3-hinge", "1.5", "01"]))


@given(assignments=st.lists(st.tuples(st.sampled_from(KEYS), RAW).map(lambda kv: f"{kv[0]}={kv[1]}")
                            | st.text(max_size=15), max_size=3))
def test_random_overrides_give_a_config_or_a_named_error(assignments):
    try:
        config = XRLinearConfig().with_overrides(assignments)
    except InvalidConfigError as exc:
        assert str(exc)
        return
    assert XRLinearConfig.from_dict(config.to_dict()) == config
