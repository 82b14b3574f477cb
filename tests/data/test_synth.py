"""Synthetic XC data has the shape of the real sets, is learnable, and is deterministic; given
feature rows are L2-normalised by default and the norm goes along with the model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xmc import api
from xmc.data import read_bow, resolve
from xmc.metrics import precision_at_k

PINNED_DIGEST = "d0e933ba1e499816"  # see test_a_seed_gives_the_same_set_in_every_version


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "Synth"
    api.synth_dataset(out, n_train=3000, n_test=600, n_features=800, n_labels=400, seed=3)
    return out


def test_shape_of_the_real_sets(synth):
    X, Y = read_bow(synth / "train_data.txt.gz")
    assert X.shape == (3000, 800) and Y.shape == (3000, 400)
    assert 4.0 <= Y.sum(1).mean() <= 6.0  # about 5 labels a document
    assert 40 <= np.diff(X.indptr).mean() <= 75  # about 75 words, fewer distinct ones
    freq = np.sort(np.asarray(Y.sum(0)).ravel())[::-1]
    share = freq / freq.sum()
    assert freq[0] > 10 * np.median(freq)  # a head ...
    assert share[:40].sum() > 0.4 and share[200:].sum() < 0.25  # ... the top tenth of labels carries most assignments
    assert freq[-40] < np.median(freq) / 1.5  # ... and a tail well below the median
    assert np.all(X.data >= 1) and np.all(X.data == np.round(X.data))  # counts
    assert resolve(synth).splits == ["train", "test"]


def test_deterministic_from_the_seed(synth, tmp_path):
    again = tmp_path / "again"
    api.synth_dataset(again, n_train=3000, n_test=600, n_features=800, n_labels=400, seed=3)
    assert (again / "train_data.txt.gz").exists()
    a, b = read_bow(synth / "train_data.txt.gz"), read_bow(again / "train_data.txt.gz")
    assert (a[0] != b[0]).nnz == 0 and (a[1] != b[1]).nnz == 0
    other = tmp_path / "other"
    api.synth_dataset(other, n_train=3000, n_test=0, n_features=800, n_labels=400, seed=4)
    assert (read_bow(other / "train_data.txt.gz")[1] != a[1]).nnz > 0


def test_learnable_far_above_chance_and_normalised_by_default(synth, tmp_path):
    result = api.train("xr-linear", synth, tmp_path / "m", overrides=["tree.max_leaf_size=16"], eval_split="test")
    assert result.metrics["P@1"] > 50.0
    X, Y = read_bow(synth / "test_data.txt.gz")
    popular = np.argsort(-np.asarray(read_bow(synth / "train_data.txt.gz")[1].sum(0)).ravel())[:1]
    assert result.metrics["P@1"] > 100 * Y[:, popular].mean() + 30  # far above always answering the head label
    assert json.loads((tmp_path / "m" / "xmc.json").read_text())["feature_norm"] == "l2"
    raw = api.train("xr-linear", synth, None, overrides=["tree.max_leaf_size=16", "features.norm=none"],
                    eval_split="test")
    assert raw.pipeline.feature_norm == "none"
    model = api.load(tmp_path / "m")
    scaled = model.predict(features=X * 7.0, top_k=5)  # the stored norm makes the scale of the rows irrelevant
    plain = model.predict(features=X, top_k=5)
    assert abs(scaled - plain).max() < 1e-5 and (scaled.indices == plain.indices).mean() > 0.99  # ties may swap
    assert precision_at_k(Y, model.predict(features=X, top_k=5), 1) == pytest.approx(result.metrics["P@1"] / 100,
                                                                                   abs=1e-6)


def test_sizes_are_checked(tmp_path):
    from xmc.exceptions import XMCError

    with pytest.raises(XMCError, match="--labels"):
        api.synth_dataset(tmp_path / "x", n_train=10, n_features=10)
    with pytest.raises(XMCError, match="at least 1"):
        api.synth_dataset(tmp_path / "x", n_train=10, n_features=0, n_labels=5)


def _digest(folder) -> str:
    import hashlib

    h = hashlib.sha256()
    for split in ("train", "test"):
        X, Y = read_bow(folder / f"{split}_data.txt.gz")
        for a in (X.indptr, X.indices, X.data, Y.indptr, Y.indices):
            h.update(np.ascontiguousarray(a, np.float64).tobytes())
    return h.hexdigest()[:16]


def test_a_seed_gives_the_same_set_in_every_version(tmp_path):
    """Every figure of benchmarks/results/scale.md is measured on these sets, so a seed must keep
    giving the same one across versions: a deliberate change to the generator updates this pin and
    re-measures the results."""
    from xmc.data.synth import SynthSpec, generate

    generate(SynthSpec(n_train=120, n_test=30, n_features=90, n_labels=40, seed=5), tmp_path / "s")
    assert _digest(tmp_path / "s") == PINNED_DIGEST


def test_the_smallest_sizes_are_accepted(tmp_path):
    from xmc.data.synth import SynthSpec, generate

    generate(SynthSpec(n_train=1, n_test=0, n_features=1, n_labels=1, nnz_per_doc=1, topic_size=1), tmp_path / "s")
    X, Y = read_bow(tmp_path / "s" / "train_data.txt.gz")
    assert X.shape == (1, 1) and Y.shape == (1, 1) and Y.nnz == 1 and X.nnz == 1
    assert not (tmp_path / "s" / "test_data.txt.gz").exists()


def _tiny(**changes):
    from xmc.data.synth import SynthSpec

    sizes = dict(n_train=6, n_test=2, n_features=9, n_labels=4, nnz_per_doc=3, topic_size=2)
    return SynthSpec(**{**sizes, **changes})


SPEC_RULE = "^synthetic data needs labels_per_doc >= 1, topic_share in \\[0, 1\\], alpha > 0$"


@pytest.mark.parametrize(("changes", "message"), [
    ({"n_train": 0}, "^--n-train must be at least 1$"), ({"topic_size": 0}, "^--topic-size must be at least 1$"),
    ({"n_test": -1}, SPEC_RULE), ({"labels_per_doc": 0.9}, SPEC_RULE), ({"topic_share": -0.1}, SPEC_RULE),
    ({"topic_share": 1.5}, SPEC_RULE), ({"alpha": 0.0}, SPEC_RULE)])
def test_a_spec_out_of_bounds_is_refused_with_its_rule(tmp_path, changes, message):
    from xmc.data.synth import generate
    from xmc.exceptions import InvalidInputError

    with pytest.raises(InvalidInputError, match=message):
        generate(_tiny(**changes), tmp_path / "s")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("changes", [{"labels_per_doc": 1.0}, {"topic_share": 0.0}, {"topic_share": 1.0},
                                     {"alpha": 0.01}])
def test_a_spec_on_its_bounds_is_accepted(tmp_path, changes):
    from xmc.data.synth import generate

    generate(_tiny(**changes), tmp_path / "s")
    assert read_bow(tmp_path / "s" / "train_data.txt.gz")[0].shape == (6, 9)


def test_a_set_is_replaced_only_when_asked_and_a_user_folder_never(tmp_path):
    from xmc.data.synth import generate
    from xmc.utils.folders import OutputExistsError

    out = generate(_tiny(), tmp_path / "s")
    assert (out / "README.txt").read_text(encoding="utf-8") == f"synthetic XC dataset: {_tiny()}\n"
    with pytest.raises(OutputExistsError, match="--overwrite"):
        generate(_tiny(seed=1), out)
    generate(_tiny(seed=1), out, overwrite=True)
    assert (out / "README.txt").read_text(encoding="utf-8") == f"synthetic XC dataset: {_tiny(seed=1)}\n"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(OutputExistsError, match="not an xmc model folder"):
        generate(_tiny(), tmp_path / "mine", overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_a_split_is_written_chunk_by_chunk_to_its_exact_size(tmp_path, monkeypatch):
    from xmc.data import synth

    monkeypatch.setattr(synth, "CHUNK", 7)  # 20 documents: chunks of 7, 7 and 6
    synth.generate(_tiny(n_train=20), tmp_path / "s")
    X, Y = read_bow(tmp_path / "s" / "train_data.txt.gz")
    assert X.shape[0] == Y.shape[0] == 20 and np.all(np.diff(Y.indptr) >= 1)


def test_a_document_gets_at_most_50_labels(tmp_path):
    from xmc.data.synth import generate

    generate(_tiny(n_labels=100_000, labels_per_doc=300.0, alpha=0.01), tmp_path / "s")  # few repeats
    _, Y = read_bow(tmp_path / "s" / "train_data.txt.gz")
    assert np.diff(Y.indptr).max() == 50


def test_each_split_shows_its_progress_in_chunks(tmp_path, monkeypatch):
    from xmc.data import synth

    shown = []

    def progress(chunks, **labels):
        shown.append(labels)
        return chunks

    monkeypatch.setattr(synth, "progress", progress)
    synth.generate(_tiny(), tmp_path / "s")
    assert shown == [{"desc": "synth train", "unit": "chunk"}, {"desc": "synth test", "unit": "chunk"}]
