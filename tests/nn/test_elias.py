"""ELIAS and ELIAS++ end to end: the shortlist, the two stages, learning, model folders, resume."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from xmc.exceptions import NotFittedError
from xmc.metrics import precision_at_k
from xmc.models import model_class
from xmc.models.pipeline import load


def elias_config(method: str, encoder, **train):
    """ELIAS for the keyword task (40 labels, 8 clusters of at most 8): the paper's alpha and beta
    would let every cluster and edge saturate at 1 at this size, so they are scaled down."""
    from xmc.features.tfidf import TfidfConfig
    from xmc.nn.encoders import EncoderConfig
    from xmc.training.trainer import OptimConfig, TrainConfig
    from xmc.tree.label_tree import TreeConfig

    options = dict(epochs=4, batch_size=16, device="cpu", eval_docs=0,
                   optim=OptimConfig(lr=5e-3, head_lr=2e-2, warmup=0.05))
    options.update(train)
    return model_class(method).config_class(
        encoder=EncoderConfig(name=str(encoder), max_seq_len=24), tfidf=TfidfConfig(min_df=1),
        tree=TreeConfig(max_leaf_size=8), alpha=2.0, beta=12.0, kappa=16, beam=3, shortlist=24, dropout=0.1,
        stage1_epochs=4, edge_lr=1e-2, train=TrainConfig(**options))


@pytest.fixture(scope="module")
def fitted(keyword_task, keyword_bert):
    import xmc.models.elias as elias

    texts, Y, test_texts, Y_test = keyword_task
    snapshots = {}
    learn = elias.Elias._learn_index

    def spy(self):  # the edge values stage 2 starts from
        learn(self)
        snapshots["edges"] = self.net_.index.edge_logits.detach().clone()
        snapshots["slots"] = self.net_.index.slots.clone()

    elias.Elias._learn_index = spy
    try:
        model = model_class("elias")(elias_config("elias", keyword_bert)).fit(texts, Y)
    finally:
        elias.Elias._learn_index = learn
    return model, snapshots, test_texts, Y_test


def test_elias_learns_the_keyword_task_with_a_shortlist_that_holds_the_truth(fitted):
    model, _, texts, Y = fitted
    scores = model.predict(texts, top_k=5)
    assert scores.shape == Y.shape and np.all(np.diff(scores.indptr) == 5)
    assert np.all((scores.data >= 0) & (scores.data <= 1))
    assert precision_at_k(Y, scores, 1) > 0.9
    assert model.shortlist_recall(texts, Y) > 0.9
    assert [e["stage"] for e in model.epoch_logs_] == ["elias-1"] * 4 + ["elias-2"] * 4


def test_stage_two_learns_the_edges_and_labels_gain_second_parents(fitted):
    model, snapshots, _, _ = fitted
    index = model.net_.index
    assert index.is_learned and torch.equal(index.slots, snapshots["slots"])
    moved = (index.edge_logits.detach() - snapshots["edges"]).abs()
    filled = index.slots != index.n_labels
    assert float(moved[filled].max()) > 0.05 and float(moved[~filled].sum()) == 0.0  # padding never learns
    assert model.multi_parent_labels() > 0
    per_label = torch.bincount(index.slots[filled], minlength=index.n_labels)
    assert int(per_label.min()) >= 1  # every label stays reachable


def test_training_shortlist_holds_every_positive_and_prediction_only_its_own(fitted, keyword_task):
    model, _, _, _ = fitted
    net = model.net_.eval()
    texts, Y = keyword_task[0][:64], sp.csr_matrix(keyword_task[1][:64])
    tokens = model._tokenize(texts)
    ids, mask = tokens.batch(np.arange(64))
    with torch.no_grad():
        x = net.feature(ids, mask)
        labels, _, targets, _ = net.shortlist(x, Y, beam=1, k=1)  # a beam and a shortlist of one
        for row in range(64):
            assert set(Y[row].indices) <= set(labels[row].tolist())
        assert float(targets.sum()) == Y.nnz
        own, _, none, _ = net.shortlist(x, beam=1, k=1000)
        assert none is None
        top_cluster = net.cluster_scores(x).argmax(1)
        for row in range(64):
            allowed = set(net.index.slots[top_cluster[row]].tolist())
            assert set(own[row].tolist()) - {net.n_labels} <= allowed


def test_elias_model_folder_and_model_checks(fitted, keyword_task, tmp_path):
    model, _, texts, _ = fitted
    with pytest.raises(NotFittedError):
        model_class("elias")().predict(["a text"])
    with pytest.raises(ValueError, match="takes texts"):
        model.predict(np.zeros((2, 3)))
    model.save(tmp_path / "m")
    assert not list((tmp_path / "m").glob("**/*.pkl")) and not list((tmp_path / "m").glob("**/*.bin"))
    again = load(tmp_path / "m")
    assert type(again) is type(model) and again.config == model.config
    assert (again.predict(texts) != model.predict(texts)).nnz == 0
    assert again.multi_parent_labels() == model.multi_parent_labels()
    batch = model.predict(texts[:6], top_k=5)
    for i in range(6):
        single = model.predict([texts[i]], top_k=5)
        assert single.indices.tolist() == batch[i].indices.tolist()
        np.testing.assert_allclose(single.data, batch[i].data, rtol=1e-4, atol=1e-6)


def test_resume_after_a_killed_stage_two_epoch_gives_the_same_model(keyword_task, keyword_bert, tmp_path,
                                                                     monkeypatch):
    import xmc.training.trainer as trainer

    texts, Y, test_texts, _ = keyword_task
    config = elias_config("elias", keyword_bert, epochs=2).replace(stage1_epochs=1, warm_epochs=2)
    cls = model_class("elias")
    texts, Y = texts[:200], Y[:200]
    straight = cls(config).fit(texts, Y, checkpoint_dir=tmp_path / "a")
    calls = []

    def killed(name):
        calls.append(name)
        if name == "trainer:epoch" and calls.count(name) == 4:  # warm 2, stage 1, then stage 2's first
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "kill_point", killed)
    with pytest.raises(KeyboardInterrupt):
        cls(config).fit(texts, Y, checkpoint_dir=tmp_path / "b")
    monkeypatch.undo()
    resumed = cls(config).fit(texts, Y, checkpoint_dir=tmp_path / "b", resume=True)
    for (name, a), (_, b) in zip(straight.net_.state_dict().items(), resumed.net_.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert (straight.predict(test_texts) != resumed.predict(test_texts)).nnz == 0


def test_elias_plus_plus_reranks_elias_top_labels(keyword_task, keyword_bert, tmp_path):
    texts, Y, test_texts, Y_test = keyword_task
    config = elias_config("elias++", keyword_bert).replace(rerank=10)
    model = model_class("elias++")(config).fit(texts, Y)
    scores = model.predict(test_texts, top_k=5)
    assert precision_at_k(Y_test, scores, 1) > 0.9
    assert "ranker" in model.fit_seconds_
    elias_top = super(type(model), model).predict(test_texts, top_k=10)
    for row in range(len(test_texts)):  # the ranker only re-scores what ELIAS proposed
        assert set(scores[row].indices) <= set(elias_top[row].indices)
    model.save(tmp_path / "m")
    again = load(tmp_path / "m")
    assert type(again) is type(model) and (again.predict(test_texts, top_k=5) != scores).nnz == 0


def _net_with_fixed_parts(path: list[float], seen: list, labels=(0, 2, 3), logits=None, positive_paths=None):
    """An EliasNet whose feature, shortlist and label logits are given: the loss alone is under test.
    Shortlist ``labels`` (3 is padding) with path scores ``path``; label logits 0, ln 3, 0 unless given;
    label 0 is true. ``seen`` collects the ids and mask the feature is called with."""
    import math
    from types import MethodType, SimpleNamespace

    import torch

    from xmc.nn.elias import EliasNet

    net = EliasNet.__new__(EliasNet)
    torch.nn.Module.__init__(net)
    net.index, net.recall_weight = SimpleNamespace(n_labels=3), 0.5
    x = torch.zeros(1, 2)
    shortlist = (torch.tensor([list(labels)]), torch.tensor([path]), torch.tensor([[1.0, 0.0, 0.0]]),
                 torch.tensor([path[0]]) if positive_paths is None else positive_paths)
    logits = torch.tensor([[0.0, math.log(3.0), 0.0]]) if logits is None else torch.tensor([logits])

    def feature(self, ids, mask, pooled=None):
        seen.append((ids, mask, pooled))
        return x

    net.feature = MethodType(feature, net)
    net.shortlist = MethodType(lambda self, x, Y: shortlist, net)
    net.label_logits = MethodType(lambda self, x, labels: logits, net)
    return net


def test_elias_loss_matches_the_formula_worked_by_hand():
    """Path scores 0.8, 0.5, 0 -> final 0.8 * 0.5 = 0.4 and 0.5 * 0.75 = 0.375; the classification
    term is the BCE over the real entries, -(ln 0.4 + ln 0.625) / 2; the recall term is -ln of the
    true label's path score, -ln 0.8, weighted 0.5. The ids and mask reach the encoder as given."""
    import math

    seen = []
    ids, mask = object(), object()
    total, logs = _net_with_fixed_parts([0.8, 0.5, 0.0], seen).loss(ids, mask, [None])
    assert len(seen) == 1 and seen[0][0] is ids and seen[0][1] is mask and seen[0][2] is None
    classify = -(math.log(0.4) + math.log(0.625)) / 2
    assert logs["classify"] == pytest.approx(classify, rel=1e-5)
    assert logs["recall"] == pytest.approx(-math.log(0.8), rel=1e-5)
    assert float(total) == pytest.approx(classify + 0.5 * -math.log(0.8), rel=1e-5)


def test_elias_loss_bounds_a_true_label_scored_zero_at_the_epsilon():
    """A true label whose path is 0 costs -ln(1e-7) (16.1), not the -ln(0) torch would cap at 100."""
    import math

    total, logs = _net_with_fixed_parts([0.0, 0.5, 0.0], []).loss(None, None, [None])
    assert logs["classify"] == pytest.approx((-math.log(1e-7) - math.log(0.625)) / 2, rel=1e-4)
    assert logs["recall"] == pytest.approx(-math.log(1e-7), rel=1e-4)


def test_elias_loss_bounds_a_false_label_scored_one_at_the_epsilon():
    """A false label with path 1 and a logit of 40 (sigmoid 1.0 in float32) costs -ln(1 - (1 - 1e-7)) with
    1 - 1e-7 rounded to float32 (15.9), not the 100 of an unbounded log."""
    import math

    import numpy as np

    total, logs = _net_with_fixed_parts([0.5, 1.0, 0.0], [], logits=[0.0, 40.0, 0.0]).loss(None, None, [None])
    capped = -math.log(1.0 - float(np.float32(1 - 1e-7)))
    assert logs["classify"] == pytest.approx((-math.log(0.25) + capped) / 2, rel=1e-4)  # label 0: true, 0.25


def test_elias_loss_averages_over_the_real_entries_only():
    """One real entry (label 0, path 0.8, logit 0: final 0.4) and two paddings: -ln 0.4, not half of it."""
    import math

    total, logs = _net_with_fixed_parts([0.8, 0.0, 0.0], [], labels=(0, 3, 3)).loss(None, None, [None])
    assert logs["classify"] == pytest.approx(-math.log(0.4), rel=1e-5)


def test_elias_recall_term_is_zero_without_positive_paths():
    """A batch whose labels reach no cluster in the shortlist has no recall term (not the mean of nothing)."""
    import torch

    net = _net_with_fixed_parts([0.8, 0.5, 0.0], [], positive_paths=torch.zeros(0))
    total, logs = net.loss(None, None, [None])
    assert logs["recall"] == 0.0 and float(total) == pytest.approx(logs["classify"], rel=1e-6)
