"""Damaged model folders and random ``--set`` overrides: loading gives a working model or a
ModelFormatError naming the file; overrides give a config or an InvalidConfigError naming the key."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st
from tests.fuzz.test_fuzz_readers import JSON

from xmc import api
from xmc.exceptions import InvalidConfigError, XMCError
from xmc.models.pipeline import Pipeline, load
from xmc.models.xr_linear import XRLinearConfig
from xmc.utils.faults import ARRAY_DAMAGES, BYTE_DAMAGES, damage_array_file, damage_bytes, damage_json


@pytest.fixture(scope="module")
def saved_model(small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz") / "model"
    api.train("xr-linear", small_data, out, overrides=["tree.max_leaf_size=16"], eval_split=None)
    texts = [t[:300] for t in api.resolve(small_data).load("dev").texts[:5]]
    return out, texts, sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


@st.composite
def damage(draw, files):
    name = draw(st.sampled_from(files))
    kind = draw(st.sampled_from(["json", "bytes", "delete", "array"]))
    if kind == "json" and not name.endswith(".json"):
        kind = "bytes"
    if kind == "array" and not name.endswith((".npz", ".npy")):
        kind = "bytes"
    detail = {"json": lambda: (draw(st.lists(st.integers(0, 50), max_size=4)), draw(JSON)),
              "bytes": lambda: (draw(st.sampled_from(BYTE_DAMAGES)), draw(st.integers(0, 2**32 - 1))),
              "delete": lambda: None,
              "array": lambda: draw(st.sampled_from(ARRAY_DAMAGES))}[kind]()
    return name, kind, detail


def _apply(folder: Path, name: str, kind: str, detail) -> None:
    path = folder / name
    if kind == "json":
        path.write_text(damage_json(path.read_text(errors="replace"), *detail))
    elif kind == "bytes":
        how, seed = detail
        path.write_bytes(damage_bytes(path.read_bytes(), how, np.random.default_rng(seed)))
    elif kind == "delete":
        path.unlink()
    else:
        damage_array_file(path, detail)


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
