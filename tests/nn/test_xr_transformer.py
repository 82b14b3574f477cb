"""XR-Transformer end to end with a tiny random BERT on real EURLEX57K documents."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from tests.nn.conftest import tiny_config

from xmc.exceptions import InvalidConfigError, NotFittedError, XMCError
from xmc.features.join import join_embedding
from xmc.metrics import precision_at_k
from xmc.models.pipeline import load
from xmc.models.xr_transformer import XRTransformer
from xmc.nn.encoders import TextEncoder, load_pretrained
from xmc.nn.heads import ShortlistHead
from xmc.training.finetune import FinetuneConfig, Finetuner


def test_schedule_visits_every_level_coarse_to_fine(fitted_tiny):
    sizes = fitted_tiny.matcher_tree_.level_sizes
    assert len(sizes) >= 3 and sizes == sorted(sizes) and sizes[-1] == fitted_tiny.matcher_tree_.n_labels
    assert [e["level"] for e in fitted_tiny.level_logs_] == list(range(len(sizes)))
    assert [e["n_nodes"] for e in fitted_tiny.level_logs_] == sizes
    assert [e["steps"] for e in fitted_tiny.level_logs_] == [8, 8, 16, 16][: len(sizes)] + [16] * (len(sizes) - 4)
    assert all("P@1" in e["dev"] for e in fitted_tiny.level_logs_)
    assert [h.n_nodes for h in fitted_tiny.heads_] == sizes


def test_beats_the_most_frequent_labels_on_dev(fitted_tiny, encoded_docs):
    _, Y, dev_texts, Y_dev, _ = encoded_docs
    scores = fitted_tiny.predict(dev_texts, top_k=5)
    assert scores.shape == Y_dev.shape and np.all(np.diff(scores.indptr) == 5)
    popular = np.argsort(-np.asarray(Y.sum(0)).ravel())[:5]
    n_dev = len(dev_texts)
    baseline = sp.csr_matrix((np.tile([5, 4, 3, 2, 1], n_dev).astype(np.float32), np.tile(popular, n_dev),
                              np.arange(0, 5 * n_dev + 1, 5)), shape=Y_dev.shape)
    assert precision_at_k(Y_dev, scores, 1) > precision_at_k(Y_dev, baseline, 1) + 0.2


def test_ranker_sees_text_and_embedding_features(fitted_tiny):
    n_tfidf = fitted_tiny.tfidf_.n_features_
    assert fitted_tiny.ranker_.n_features_in_ == n_tfidf + fitted_tiny.encoder_.dim


def test_ranker_input_balances_tfidf_and_embedding_blocks():
    """PIFA re-clusters on this matrix too: raw pooled embeddings (norms near 5) must not outweigh TF-IDF."""
    rng = np.random.default_rng(0)
    X = sp.random(6, 20, density=0.4, format="csr", dtype=np.float32, random_state=0)
    X = sp.csr_matrix(X / np.linalg.norm(X.toarray(), axis=1, keepdims=True))
    emb = rng.normal(5.0, 1.0, size=(6, 4)).astype(np.float32)
    for scale in (1.0, 0.5):
        joined = join_embedding(X, emb, scale)
        np.testing.assert_allclose(np.linalg.norm(joined[:, :20].toarray(), axis=1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(joined[:, 20:].toarray(), axis=1), scale, rtol=1e-5)
        unit_rows = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        np.testing.assert_allclose(joined[:, 20:].toarray() / scale, unit_rows, rtol=1e-5)


def _assert_heads_hold_their_parents_rows(model: XRTransformer) -> None:
    tree = model.matcher_tree_
    for t in range(1, tree.depth):
        parent = model.heads_[t - 1].weight.detach()[torch.from_numpy(tree.parent_of(t))]
        torch.testing.assert_close(model.heads_[t].weight.detach(), parent, rtol=0, atol=0)


def test_heads_start_from_their_parents(tiny_bert, encoded_docs):
    texts, Y, *_ = encoded_docs
    model = XRTransformer(tiny_config(tiny_bert, steps=(6, 0), eval_docs=0)).fit(texts, Y)
    assert model.heads_[0].weight.detach().abs().sum() > 0
    _assert_heads_hold_their_parents_rows(model)  # zero steps below the top: every node still holds its parent's row


def test_learning_rates_are_per_level(tiny_bert, encoded_docs):
    """Level 1 trains at its rates; below it a rate of 0 (the last value repeats) must leave the
    encoder as level 1 left it and every head on its parent's rows."""
    texts, Y, *_ = encoded_docs
    snapshots = []
    config = tiny_config(tiny_bert, steps=(6, 4), lr=(1e-3, 0.0), head_lr=(1e-2, 0.0), warmup=(2, 1), eval_docs=0)
    model = XRTransformer(config)
    model.fit(texts, Y, on_level_end=lambda t: snapshots.append(
        {k: v.detach().clone() for k, v in model.encoder_.state_dict().items()}))
    assert len(snapshots) == model.matcher_tree_.depth >= 3
    after_top = snapshots[0]
    pretrained = load_pretrained(tiny_bert)[1].state_dict()
    assert any(not torch.equal(after_top["transformer." + k], v) for k, v in pretrained.items())
    for later in snapshots[1:]:
        for name, value in later.items():
            torch.testing.assert_close(value, after_top[name], rtol=0, atol=0, msg=name)
    _assert_heads_hold_their_parents_rows(model)


def test_per_level_options_pick_their_level_and_need_a_value(tiny_bert):
    config = FinetuneConfig(lr=(1e-4, 5e-5), warmup=(10,))
    assert [config.at_level("lr", t) for t in range(3)] == [1e-4, 5e-5, 5e-5]
    assert config.at_level("warmup", 2) == 10 and config.at_level("head_lr", 5) == config.head_lr
    assert FinetuneConfig().with_overrides(["lr=[0.001,0.0001]"]).lr == (0.001, 0.0001)
    with pytest.raises(InvalidConfigError, match="lr"):
        FinetuneConfig(lr=())
    with pytest.raises(InvalidConfigError, match="warmup"):
        FinetuneConfig(warmup=(10, -1))
    # The first step of level t runs at lr_t / warmup_t (linear warm-up), for the encoder and the head.
    from xmc.training.trainer import _Optimisers, schedule_factor
    from xmc.tree.label_tree import LabelTree

    tree = LabelTree([sp.csr_matrix(np.ones((2, 1), np.float32)), sp.csr_matrix(np.eye(2, dtype=np.float32)),
                      sp.csr_matrix(np.eye(2, dtype=np.float32))])
    config = FinetuneConfig(lr=(1e-3, 2e-3), head_lr=(1e-2, 4e-2), warmup=(2, 4), device="cpu")
    tuner = Finetuner(TextEncoder(load_pretrained(tiny_bert)[1]), tree=tree, config=config)
    Ys = [sp.csr_matrix((1, 2), dtype=np.float32)] * 3
    for t, (lr, head_lr, warmup) in enumerate([(1e-3, 1e-2, 2), (2e-3, 4e-2, 4), (2e-3, 4e-2, 4)]):
        stage = tuner._stage(t, None, Ys, 100, None, None)
        assert stage.warmup == warmup and stage.steps == 100
        head = ShortlistHead(2, tuner.encoder.dim)
        optim = _Optimisers(tuner._groups(t, head), schedule_factor(stage.schedule, warmup, 100))
        rates = {(id(p), g["lr"]) for o in optim.optimizers for g in o.param_groups for p in g["params"]}
        head_ids = {id(p) for p in head.parameters()}
        assert sorted({rate for pid, rate in rates if pid in head_ids}) == pytest.approx([head_lr / warmup])
        assert sorted({rate for pid, rate in rates if pid not in head_ids}) == pytest.approx([lr / warmup])


def test_resume_after_an_interrupted_level_gives_the_same_weights(tiny_bert, encoded_docs, tmp_path):
    texts, Y, *_ = encoded_docs
    config = tiny_config(tiny_bert, eval_docs=0)
    straight = XRTransformer(config).fit(texts, Y, checkpoint_dir=tmp_path / "a")

    def killed(level):
        if level == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        XRTransformer(config).fit(texts, Y, checkpoint_dir=tmp_path / "b", on_level_end=killed)
    assert json.loads((tmp_path / "b" / "latest" / "state.json").read_text())["stage"] == 1
    resumed = XRTransformer(config).fit(texts, Y, checkpoint_dir=tmp_path / "b", resume=True)
    assert [e["level"] for e in resumed.level_logs_] == [e["level"] for e in straight.level_logs_]
    for (name, a), (_, b) in zip(straight.encoder_.named_parameters(), resumed.encoder_.named_parameters(),
                                      strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    for a, b in zip(straight.heads_, resumed.heads_, strict=True):
        torch.testing.assert_close(a.weight, b.weight, rtol=0, atol=0)
    assert (straight.predict(texts[:20]) != resumed.predict(texts[:20])).nnz == 0


def test_resume_refuses_a_checkpoint_of_another_run(tiny_bert, encoded_docs, tmp_path):
    texts, Y, *_ = encoded_docs
    XRTransformer(tiny_config(tiny_bert, steps=(1,), eval_docs=0)).fit(texts, Y, checkpoint_dir=tmp_path)
    other_run = XRTransformer(tiny_config(tiny_bert, steps=(2,), eval_docs=0))
    with pytest.raises(XMCError, match="different run"):
        other_run.fit(texts, Y, checkpoint_dir=tmp_path, resume=True)


def test_save_load_predict_identical(fitted_tiny, encoded_docs, tmp_path):
    dev_texts = encoded_docs[2]
    fitted_tiny.save(tmp_path / "m")
    assert not list((tmp_path / "m").glob("**/*.pkl")) and not list((tmp_path / "m").glob("**/*.bin"))
    assert (tmp_path / "m" / "encoder" / "model.safetensors").is_file()
    again = load(tmp_path / "m")
    assert isinstance(again, XRTransformer) and again.config == fitted_tiny.config
    assert (again.predict(dev_texts) != fitted_tiny.predict(dev_texts)).nnz == 0


def test_one_text_scores_like_its_row_in_a_batch(fitted_tiny, encoded_docs):
    dev_texts = encoded_docs[2]
    batch = fitted_tiny.predict(dev_texts[:16])
    for i in (0, 5):
        single = fitted_tiny.predict(dev_texts[i])
        assert single.indices.tolist() == batch[i].indices.tolist()
        np.testing.assert_allclose(single.data, batch[i].data, rtol=1e-4, atol=1e-5)


def test_clear_errors(tiny_bert, fitted_tiny, tmp_path):
    with pytest.raises(NotFittedError):
        XRTransformer(tiny_config(tiny_bert)).predict(["a text"])
    with pytest.raises(ValueError, match="takes texts"):
        fitted_tiny.predict(sp.csr_matrix((2, 3), dtype=np.float32))
    with pytest.raises(XMCError, match="does not exist"):
        XRTransformer(tiny_config(tmp_path / "missing")).fit(["a b"], sp.csr_matrix(np.ones((1, 1), np.float32)))
    with pytest.raises(XMCError, match="n_layers=5"):
        XRTransformer(tiny_config(tiny_bert).with_overrides(["encoder.n_layers=5"])).fit(
            ["a b", "c d"], sp.csr_matrix(np.eye(2, dtype=np.float32)))


@pytest.mark.gpu
def test_trains_and_predicts_on_cuda(tiny_bert, encoded_docs):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    texts, Y, dev_texts, Y_dev, _ = encoded_docs
    model = XRTransformer(tiny_config(tiny_bert, device="cuda")).fit(texts, Y)
    assert next(model.encoder_.parameters()).is_cuda
    assert precision_at_k(Y_dev, model.predict(dev_texts), 1) > 0.2


def test_saved_text_models_combine_into_an_ensemble(fitted_tiny, encoded_docs, tmp_path):
    from xmc import api
    from xmc.models.ensemble import Ensemble
    from xmc.models.pipeline import Pipeline

    texts, Y, dev_texts, _, vocab = encoded_docs
    freq = np.diff(sp.csc_matrix(Y).indptr)
    for name in ("a", "b"):
        Pipeline(fitted_tiny, vocab, None, freq, Y.shape[0]).save(tmp_path / name)
    pipeline = api.ensemble([tmp_path / "a", tmp_path / "b"], tmp_path / "e", combine="average")
    again = api.load(tmp_path / "e")
    assert isinstance(again.model, Ensemble) and again.model.input_kind == "texts"
    single = fitted_tiny.predict(dev_texts[:10], top_k=5)
    assert (again.predict(dev_texts[:10], top_k=5) != single).nnz == 0
    assert (pipeline.predict(dev_texts[:10], top_k=5) != single).nnz == 0
