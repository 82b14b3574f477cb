"""``xmc update`` and ``xmc train --dry-run`` / ``--max-memory`` from the command line, on real data."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from xmc import api
from xmc.api.preflight import Preflight, Sample, _extrapolate
from xmc.cli.main import main
from xmc.data import resolve, write_text_split
from xmc.exceptions import XMCError
from xmc.tree.label_tree import tree_shape


@pytest.fixture(scope="module")
def held_out(small_data, tmp_path_factory):
    """``small_data`` without 5 of its training labels (taken off every document; dev as it was)."""
    src = resolve(small_data)
    train = src.load("train")
    counts = {}
    for labels in train.labels:
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
    held = sorted(label for label, c in counts.items() if 3 <= c <= 20)[:5]
    out = tmp_path_factory.mktemp("held") / "Held"
    kept = [(t, [x for x in ls if x not in held]) for t, ls in zip(train.texts, train.labels, strict=True)]
    kept = [(t, ls) for t, ls in kept if ls]
    write_text_split(out, "train", [t for t, _ in kept], [ls for _, ls in kept])
    dev = src.load("dev")
    write_text_split(out, "dev", dev.texts, dev.labels)
    return out, held


def test_update_adds_the_missing_labels(small_data, held_out, tmp_path, capsys):
    held_data, held = held_out
    m0, m1 = tmp_path / "m0", tmp_path / "m1"
    assert main(["train", "--method", "xr-linear", "--data", str(held_data), "--out", str(m0)]) == 0
    capsys.readouterr()
    assert main(["update", "--model", str(m0), "--data", str(small_data), "--out", str(m1)]) == 0
    out = capsys.readouterr().out
    before, after = api.load(m0), api.load(m1)
    assert set(after.vocab.labels) - set(before.vocab.labels) >= set(held)
    n_new = len(after.vocab) - len(before.vocab)
    assert f"added {n_new} labels" in out and "dev" in out and f"saved {m1}" in out
    assert after.vocab.labels[: len(before.vocab)] == before.vocab.labels  # known labels keep their columns
    train = resolve(small_data).load("train")
    Y = after.vocab.encode(train.labels).Y
    np.testing.assert_array_equal(after.label_freq[len(before.vocab):],
                                  np.diff(sp.csc_matrix(Y).indptr)[len(before.vocab):])
    docs = [i for i, ls in enumerate(train.labels) if set(ls) & set(held)]
    top = after.predict([train.texts[i] for i in docs], top_k=10)
    found = [bool(set(after.vocab.labels[j] for j in top[r].indices) & set(held)) for r in range(len(docs))]
    assert np.mean(found) > 0.8  # training documents of the added labels find them again
    assert main(["update", "--model", str(m1), "--data", str(small_data), "--out", str(tmp_path / "m2")]) == 2
    assert "already known to the model: nothing to add" in capsys.readouterr().err


def test_retrain_known_trains_the_labels_that_gained_documents(small_data, tmp_path, capsys):
    src = resolve(small_data)
    train = src.load("train")
    part = tmp_path / "Part"
    write_text_split(part, "train", train.texts[:300], train.labels[:300])
    m0, m1 = tmp_path / "m0", tmp_path / "m1"
    assert main(["train", "--method", "xr-linear", "--data", str(part), "--out", str(m0), "--eval-split", "none"]) == 0
    assert main(["update", "--model", str(m0), "--data", str(small_data), "--out", str(m1), "--retrain-known",
                 "--eval-split", "none"]) == 0
    before, after = api.load(m0), api.load(m1)
    counts = np.diff(sp.csc_matrix(after.vocab.encode(train.labels).Y).indptr)
    k = len(before.vocab)
    gained = np.flatnonzero(counts[:k] > before.label_freq)
    assert gained.size and "rankers trained per level" in capsys.readouterr().out
    np.testing.assert_array_equal(after.label_freq, counts)  # gained and new labels count their documents now
    assert after.n_train == 500
    w0, w1 = before.model.weights_[-1], after.model.weights_[-1]
    changed = np.flatnonzero(np.diff(sp.csc_matrix(w1[:, :k] != w0).indptr))
    np.testing.assert_array_equal(changed, gained)


def test_dry_run_estimates_and_trains_nothing(small_data, tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["train", "--method", "xr-linear", "--data", str(small_data), "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "dry run: xr-linear" in text and "documents 500" in text and "estimate for 500 documents" in text
    assert not out.exists()
    assert main(["train", "--method", "xr-linear", "--data", str(small_data), "--out", str(out),
                 "--max-memory", "1M"]) == 2
    assert "estimated to need" in capsys.readouterr().err and not out.exists()
    assert main(["train", "--method", "xr-linear", "--data", str(small_data), "--out", str(out),
                 "--max-memory", "lots"]) == 2
    assert "8G, 512M or 1.5GB" in capsys.readouterr().err


def test_preflight_measures_each_sample_in_a_child(eurlex_slice):
    report = api.preflight("xr-linear", str(eurlex_slice), fractions=(1 / 8, 1 / 4, 1 / 2), min_sample=250)
    assert [s.n_docs for s in report.samples] == [250, 375, 750]  # 1/8 of 1,500 raised to min_sample
    assert report.n_docs == 1500 and report.levels == tree_shape(report.n_labels)
    for s in report.samples:
        assert s.seconds > 0 and s.peak_bytes > 50 << 20 and 0 < s.n_labels <= report.n_labels
    assert report.samples[0].n_features < report.samples[2].n_features < report.n_features
    assert report.peak_bytes > report.samples[0].peak_bytes and report.seconds > report.samples[0].seconds
    assert api.preflight("xr-linear", str(eurlex_slice), min_sample=500).samples[0].n_docs == 1500  # small: all


def test_extrapolation_reads_the_fits_at_every_document_and_label():
    report = Preflight("m", "d", 1000, 50, 0, False, None, baseline_bytes=10_000, samples=[
        Sample(100, 5, 1000, 2.0, 10_000 + 2 * 100 + 30 * 5), Sample(200, 9, 1414, 3.0, 10_000 + 2 * 200 + 30 * 9),
        Sample(400, 20, 2000, 5.0, 10_000 + 2 * 400 + 30 * 20)])
    _extrapolate(report, max_features=None)
    assert report.seconds == pytest.approx(1.0 + 0.01 * 1000)  # exact line: 1 s + 10 ms a document
    assert report.peak_bytes == 10_000 + 2 * 1000 + 30 * 50  # baseline + per document + per label, at 1,000 and 50
    assert report.n_features == pytest.approx(100 * 1000 ** 0.5, rel=1e-3)  # Heaps: 100 sqrt(n)
    _extrapolate(report, max_features=2500)
    assert report.n_features == 2500
    report.max_memory, report.max_memory_source = 1000, "set by --max-memory"
    with pytest.raises(XMCError, match="estimated to need"):
        report.check()


@pytest.mark.parametrize(("method", "expected"), [("xr-linear", [94, 188, 375]), ("lightxml", [23, 47, 94])])
def test_neural_methods_are_measured_on_smaller_samples(eurlex_slice, monkeypatch, method, expected):
    """A neural fit costs epochs x documents, so its samples are 1/64-1/16 of the data, not 1/16-1/4."""
    import importlib

    pf = importlib.import_module("xmc.api.preflight")  # the module, not the function xmc.api exports
    sizes = []

    def fake(size, args):
        sizes.append(size)
        grown = 1000 * size if sizes[1:] else 0  # the first call is the baseline
        return Sample(size, 10, 100, 0.01 * size, 50_000 + grown)

    monkeypatch.setattr(pf, "_measure", fake)
    report = pf.preflight(method, str(eurlex_slice), min_sample=10)
    assert sizes == [min(100, expected[0] // 2), *expected]  # the baseline, then the samples
    assert report.seconds == pytest.approx(15.0) and report.peak_bytes == 50_000 + 1_500_000  # read at 1,500
