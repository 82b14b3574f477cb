"""LightXML and CascadeXML end to end: they learn, save, load, resume and pass the model checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.nn.conftest import cascade_config

from xmc.exceptions import NotFittedError
from xmc.metrics import precision_at_k
from xmc.models import model_class
from xmc.models.pipeline import load

METHODS = ["lightxml", "cascadexml"]


@pytest.fixture(scope="module", params=METHODS)
def fitted(request, keyword_task, keyword_bert):
    texts, Y, test_texts, Y_test = keyword_task
    cls = model_class(request.param)
    config = cascade_config(request.param, keyword_bert, eval_docs=150)
    model = cls(config).fit(texts, Y, eval_set=(test_texts, Y_test))
    return model, test_texts, Y_test


def test_learns_the_keyword_task(fitted):
    model, texts, Y = fitted
    scores = model.predict(texts, top_k=5)
    assert scores.shape == Y.shape and np.all(np.diff(scores.indptr) == 5)
    assert np.all((scores.data >= 0) & (scores.data <= 1))
    assert precision_at_k(Y, scores, 1) > 0.85
    logs = model.epoch_logs_
    assert len(logs) == 8 and logs[-1]["loss"] < logs[0]["loss"] and "P@5" in logs[0]["dev"]


def test_save_load_predict_identical_and_the_folder_holds_no_pickle(fitted, tmp_path):
    model, texts, _ = fitted
    model.save(tmp_path / "m")
    assert not list((tmp_path / "m").glob("**/*.pkl")) and not list((tmp_path / "m").glob("**/*.bin"))
    again = load(tmp_path / "m")
    assert type(again) is type(model) and again.config == model.config
    assert (again.predict(texts) != model.predict(texts)).nnz == 0


def test_one_text_scores_like_its_row_in_a_batch(fitted):
    model, texts, _ = fitted
    batch = model.predict(texts[:12], top_k=5)
    for i in (0, 7):
        single = model.predict(texts[i], top_k=5)
        assert single.indices.tolist() == batch[i].indices.tolist()
        np.testing.assert_allclose(single.data, batch[i].data, rtol=1e-4, atol=1e-6)


def test_the_shortlist_width_is_a_prediction_setting(fitted):
    model, texts, Y = fitted
    narrow = model.predict(texts, top_k=5, beam_size=1)
    wide = model.predict(texts, top_k=5, beam_size=10**6)
    assert precision_at_k(Y, wide, 5) >= precision_at_k(Y, narrow, 5) - 0.02
    assert narrow.nnz <= wide.nnz


def test_the_strip_pattern_applies_at_training_and_prediction(fitted):
    model, texts, _ = fitted
    noisy = [f"zq{chr(97 + i)} zq{chr(97 + i)} {t}" for i, t in enumerate(texts[:20])]  # no digit: not skipped
    original = model.config
    try:
        model.config = original.replace(encoder=original.encoder.replace(strip=r"zq[a-z] "))
        from_noisy = model.predict(noisy, top_k=5)
        train_tokens = model._train_tokens(noisy, {"texts": "a", "encoder": "b"}, None, False)
    finally:
        model.config = original
    assert (from_noisy != model.predict(texts[:20], top_k=5)).nnz == 0
    plain = model._tokenize(texts[:20])
    assert np.array_equal(train_tokens.ids, plain.ids) and np.array_equal(train_tokens.offsets, plain.offsets)
    assert not np.array_equal(model._tokenize(noisy).offsets, plain.offsets)


@pytest.mark.parametrize("method", METHODS)
def test_model_checks(method, keyword_task, keyword_bert):
    texts, Y, test_texts, _ = keyword_task
    cls = model_class(method)
    config = cascade_config(method, keyword_bert, epochs=1)
    with pytest.raises(NotFittedError):
        cls(config).predict(["a text"])
    model = cls(config)
    assert model.fit(texts[:200], Y[:200]) is model and model.config == config
    again = cls(config).fit(texts[:200], Y[:200])  # a fixed seed gives the same model
    assert (model.predict(test_texts[:20]) != again.predict(test_texts[:20])).nnz == 0
    with pytest.raises(ValueError, match="takes texts"):
        model.predict(np.zeros((2, 3)))


def test_resume_after_a_killed_epoch_gives_the_same_weights(keyword_task, keyword_bert, tmp_path, monkeypatch):
    import xmc.training.trainer as trainer

    texts, Y, test_texts, _ = keyword_task
    config = cascade_config("lightxml", keyword_bert, epochs=3, swa_start=2, swa_every=5)
    cls = model_class("lightxml")
    texts, Y = texts[:240], Y[:240]
    straight = cls(config).fit(texts, Y, checkpoint_dir=tmp_path / "a")
    calls = []

    def killed(name):
        calls.append(name)
        if name == "trainer:epoch" and calls.count(name) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "kill_point", killed)
    with pytest.raises(KeyboardInterrupt):
        cls(config).fit(texts, Y, checkpoint_dir=tmp_path / "b")
    monkeypatch.undo()
    resumed = cls(config).fit(texts, Y, checkpoint_dir=tmp_path / "b", resume=True)
    for (name, a), (_, b) in zip(straight.net_.state_dict().items(), resumed.net_.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert (straight.predict(test_texts) != resumed.predict(test_texts)).nnz == 0


@pytest.mark.parametrize("change", [dict(clustered=False), dict(dense_up_to=40)], ids=["flat", "dense_up_to"])
def test_the_flat_variant_has_one_head_over_all_labels(keyword_task, keyword_bert, change):
    texts, Y, test_texts, Y_test = keyword_task
    config = cascade_config("lightxml", keyword_bert).replace(**change)
    model = model_class("lightxml")(config).fit(texts, Y)
    assert len(model.net_.heads) == 1 and model.net_.heads[0].n_out == 40
    assert precision_at_k(Y_test, model.predict(test_texts, top_k=5), 1) > 0.85


def test_the_cpu_config_clusters_above_its_dense_bound_as_the_gpu_config_does(keyword_task):
    from xmc.models.lightxml import DENSE_UP_TO, LightXML, LightXMLConfig
    from xmc.tree.label_tree import TreeConfig

    cpu, gpu = LightXMLConfig.for_cpu(), LightXMLConfig.for_gpu()
    assert cpu.clustered and cpu.dense_up_to == gpu.dense_up_to == DENSE_UP_TO
    texts, Y = keyword_task[:2]
    assert len(LightXML(cpu)._label_tree(texts, Y)) == 1  # 40 labels: one dense head
    chains = LightXML(cpu.replace(dense_up_to=39, tree=TreeConfig(max_leaf_size=8)))._label_tree(texts, Y)
    assert len(chains) == 2 and chains[1].shape[0] == 40 and chains[0].shape[0] == chains[1].shape[1] > 1


def test_label_sets_above_dense_up_to_are_clustered(keyword_task, keyword_bert):
    texts, Y, _, _ = keyword_task
    config = cascade_config("lightxml", keyword_bert, epochs=1).replace(dense_up_to=39)
    model = model_class("lightxml")(config).fit(texts, Y)
    assert len(model.net_.heads) == 2 and model.net_.heads[-1].n_out == 40


def test_cascadexml_taps_one_layer_per_level(fitted):
    from xmc.models.cascadexml import spread_taps

    def names(spec):
        return [[str(tap) for tap in level] for level in spec]

    assert names(spread_taps(12, 4)) == [["cls@5", "cls@6"], ["cls@8"], ["cls@10"], ["cls@12"]]  # the paper's
    assert names(spread_taps(12, 3)) == [["cls@7", "cls@8"], ["cls@10"], ["cls@12"]]
    assert names(spread_taps(6, 3)) == [["cls@1", "cls@2"], ["cls@4"], ["cls@6"]]
    assert names(spread_taps(3, 3)) == [["cls@1"], ["cls@2"], ["cls@3"]]
    model, _, _ = fitted
    if model.method != "cascadexml":
        return
    net = model.net_
    assert len(net.level_specs) == len(model.chains_) >= 3
    read = [[str(net.taps[i]) for i in spec.taps] for spec in net.feature_specs]
    assert read == names(spread_taps(2, len(read)))


def test_cli_trains_lightxml_and_ensembles_it_with_xr_linear(small_data, tiny_bert, tmp_path, capsys):
    """``xmc ensemble`` combines a TF-IDF XR-Linear and a neural text model: each member featurises
    the raw text itself, and the combined folder predicts and evaluates like any model."""
    from xmc import api
    from xmc.cli.main import main
    from xmc.models.ensemble import combine_scores

    linear, neural, both = tmp_path / "linear", tmp_path / "neural", tmp_path / "both"
    assert main(["train", "--method", "xr-linear", "--data", str(small_data), "--out", str(linear),
                 "--set", "tree.max_leaf_size=16", "--eval-split", "none"]) == 0
    assert main(["train", "--method", "lightxml", "--data", str(small_data), "--out", str(neural),
                 "--encoder", str(tiny_bert), "--device", "cpu", "--max-seq-len", "24", "--checkpoint-dir",
                 str(tmp_path / "ckpt"), "--set", "train.epochs=1", "--set", "train.batch_size=32",
                 "--set", "encoder.n_layers=0", "--set", "train.eval_docs=40", "--set", "tree.max_leaf_size=32"]) == 0
    assert "trained lightxml" in capsys.readouterr().out
    assert main(["ensemble", "--models", str(linear), str(neural), "--out", str(both), "--combine", "average"]) == 0
    assert main(["evaluate", "--model", str(both), "--data", str(small_data), "--split", "dev", "--json"]) == 0
    capsys.readouterr()
    texts = api.resolve(small_data).load("dev").texts[:20]
    members = [api.load(p).predict(texts=texts, top_k=50) for p in (linear, neural)]
    expected = combine_scores(members, "average", 5)
    assert (api.load(both).predict(texts=texts, top_k=5) != expected).nnz == 0
