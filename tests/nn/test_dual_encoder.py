"""The dual encoder: its losses against hand computations, the label index against brute force, and
the model end to end on the keyword task (label texts = the labels' keywords), zero-shot included."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from xmc.metrics import precision_at_k
from xmc.nn.ann import LabelIndex
from xmc.nn.contrastive import (
    PairClassifier,
    hardest_negative_margin,
    multi_positive_nce,
    pair_classification_loss,
    threshold_consistent_margin,
)

SIMS = torch.tensor([[0.9, 0.2, 0.6], [0.1, 0.8, 0.7]])
POS = torch.tensor([[True, False, True], [False, True, False]])
HELD_OUT = 5  # the keyword task's last labels lose their training documents


def test_multi_positive_nce_matches_the_formula_worked_by_hand():
    t = 0.5
    doc0_neg = math.exp(0.2 / t)
    doc1_neg = math.exp(0.1 / t) + math.exp(0.7 / t)
    pairs = [-math.log(math.exp(0.9 / t) / (math.exp(0.9 / t) + doc0_neg)),
             -math.log(math.exp(0.6 / t) / (math.exp(0.6 / t) + doc0_neg)),
             -math.log(math.exp(0.8 / t) / (math.exp(0.8 / t) + doc1_neg))]
    assert float(multi_positive_nce(SIMS, POS, t)) == pytest.approx(np.mean(pairs), rel=1e-5)
    # a batch without a positive pair: a loss of exactly 0 that still backpropagates (zeros)
    sims = SIMS.clone().requires_grad_(True)
    loss = multi_positive_nce(sims, torch.zeros_like(POS), t)
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.equal(sims.grad, torch.zeros_like(SIMS))


def test_threshold_consistent_margin_matches_the_formula_worked_by_hand():
    # positives below 0.9: 0.6 and 0.8 -> mean (0.3, 0.1); negatives above 0.5: 0.7 -> 0.2
    assert float(threshold_consistent_margin(SIMS, POS, 0.9, 0.5)) == pytest.approx(0.2 + 0.2, rel=1e-5)
    assert float(threshold_consistent_margin(SIMS, POS, 0.5, 0.95)) == 0.0  # nothing violates
    assert float(threshold_consistent_margin(SIMS, POS)) == pytest.approx(0.4, rel=1e-5)  # the paper's 0.9 / 0.5
    # a pair exactly at its margin violates nothing, and takes no part in the mean: 0.7 -> 0.2
    at_margins = torch.tensor([[0.9, 0.5, 0.7]])
    got = threshold_consistent_margin(at_margins, torch.tensor([[True, False, False]]), 0.9, 0.5)
    assert float(got) == pytest.approx(0.2, rel=1e-5)


def test_hardest_negative_margin_compares_the_weakest_positive_with_the_hardest_negative():
    # doc 0: weakest positive 0.6, hardest negative 0.2 -> relu(0.5 - 0.4) = 0.1
    # doc 1: 0.8 against 0.7 -> relu(0.5 - 0.1) = 0.4
    assert float(hardest_negative_margin(SIMS, POS, 0.5)) == pytest.approx(0.25, rel=1e-5)
    no_negative = torch.ones_like(POS)
    assert float(hardest_negative_margin(SIMS, no_negative, 0.5)) == 0.0
    # a document without a positive and one without a negative take no part in the mean
    sims = torch.cat([SIMS, torch.tensor([[0.3, 0.9, 0.1], [0.4, 0.5, 0.6]])])
    positives = torch.cat([POS, torch.tensor([[False, False, False], [True, True, True]])])
    assert float(hardest_negative_margin(sims, positives, 0.5)) == pytest.approx(0.25, rel=1e-5)


def test_pair_classification_reads_positives_and_the_hardest_negatives():
    torch.manual_seed(0)
    classifier = PairClassifier(4, hidden=8)
    docs, labels = torch.randn(2, 4), torch.randn(3, 4)
    seen = []
    forward = classifier.forward

    def spy(docs_, labels_):
        seen.append(len(docs_))
        return forward(docs_, labels_)

    classifier.forward = spy
    loss = pair_classification_loss(classifier, docs, labels, SIMS, POS, n_hard=1)
    assert seen == [3 + 2] and float(loss.detach()) > 0  # 3 positive pairs, one negative per document
    # one positive pair and no negatives: the binary cross-entropy of that pair's logit alone
    one = torch.tensor([[True, False, False], [False, False, False]])
    loss = pair_classification_loss(classifier, docs, labels, SIMS, one, n_hard=0)
    logit = forward(docs[:1], labels[:1])
    assert float(loss.detach()) == pytest.approx(float(-torch.nn.functional.logsigmoid(logit).detach()), rel=1e-5)
    # no pair at all: exactly 0, and the similarities get zero gradients
    sims = SIMS.clone().requires_grad_(True)
    loss = pair_classification_loss(classifier, docs, labels, sims, torch.zeros_like(POS), n_hard=0)
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.equal(sims.grad, torch.zeros_like(SIMS))


@pytest.mark.gpu
def test_alcs_losses_run_on_cuda_as_on_the_cpu():
    """Every index the losses build stays on the tensors' device (a CPU run cannot tell)."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    torch.manual_seed(0)
    classifier = PairClassifier(4, hidden=8)
    docs, labels = torch.randn(2, 4), torch.randn(3, 4)
    on_cpu = [float(multi_positive_nce(SIMS, POS, 0.5)), float(hardest_negative_margin(SIMS, POS, 0.5)),
              float(pair_classification_loss(classifier, docs, labels, SIMS, POS, n_hard=1).detach())]
    cuda = [t.cuda() for t in (docs, labels, SIMS, POS)]
    on_gpu = [float(multi_positive_nce(cuda[2], cuda[3], 0.5)), float(hardest_negative_margin(cuda[2], cuda[3], 0.5)),
              float(pair_classification_loss(classifier.cuda(), *cuda, n_hard=1).detach())]
    assert on_gpu == pytest.approx(on_cpu, rel=1e-4)


def test_exact_index_matches_brute_force_and_hnsw_finds_most_neighbours():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3000, 16)).astype(np.float32)
    queries = rng.standard_normal((50, 16)).astype(np.float32)
    idx, sims = LabelIndex(vectors, "exact").search(queries, 10)
    want = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :10]
    assert np.array_equal(idx, want)
    assert np.allclose(sims, np.take_along_axis(queries @ vectors.T, want, axis=1), atol=1e-5)
    assert LabelIndex(vectors, "auto").kind == "exact"
    pytest.importorskip("faiss")
    approx, _ = LabelIndex(vectors, "hnsw").search(queries, 10)
    recall = np.mean([len(set(a) & set(w)) / 10 for a, w in zip(approx, want, strict=True)])
    assert recall > 0.9


def dual_config(encoder, **options):
    from xmc.models.dual_encoder import DualEncoderConfig
    from xmc.nn.encoders import EncoderConfig
    from xmc.training.trainer import OptimConfig, TrainConfig

    train = dict(epochs=4, batch_size=16, device="cpu", eval_docs=0, optim=OptimConfig(lr=5e-3, head_lr=1e-2))
    options = {"label_epochs": 5, "label_batch_size": 64, "refresh_steps": 20, **options}
    return DualEncoderConfig(encoder=EncoderConfig(name=str(encoder), max_seq_len=24), label_max_seq_len=8,
                             train=TrainConfig(**train), **options)


@pytest.fixture(scope="module")
def keyword_labels(keyword_task):
    """The keyword task with its last labels taken out of training, and every label's text."""
    texts, Y, test_texts, Y_test = keyword_task
    keep = sp.diags((np.arange(Y.shape[1]) < Y.shape[1] - HELD_OUT).astype(np.float32))
    train_Y = sp.csr_matrix(Y @ keep)
    train_Y.eliminate_zeros()
    words = {}
    for text, row in zip(texts + test_texts, sp.vstack([Y, Y_test]).tolil().rows, strict=True):
        for label in row:  # a label's keywords: the words every document of it holds
            words[label] = words.get(label, set(text.split())) & set(text.split())
    label_texts = [" ".join(sorted(words[j])) for j in range(Y.shape[1])]
    return texts, train_Y, test_texts, Y_test, label_texts


@pytest.fixture(scope="module")
def fitted_dual(keyword_labels, keyword_bert):
    from xmc.models.dual_encoder import DualEncoder

    texts, Y, _, _, label_texts = keyword_labels
    return DualEncoder(dual_config(keyword_bert)).fit(texts, Y, label_texts=label_texts)


def test_dual_encoder_learns_the_keyword_task_and_scores_unseen_labels_from_their_text(fitted_dual, keyword_labels):
    _, _, texts, Y, _ = keyword_labels
    scores = fitted_dual.predict(texts, top_k=5)
    assert scores.shape == Y.shape and np.all((scores.data >= 0) & (scores.data <= 1))
    assert precision_at_k(Y, scores, 1) > 0.9
    n = Y.shape[1]
    zero_docs = np.flatnonzero(np.asarray(Y[:, n - HELD_OUT:].sum(1)).ravel() > 0)
    found = np.asarray((scores[zero_docs][:, n - HELD_OUT:] > 0).sum(1)).ravel() > 0
    assert zero_docs.size > 10 and found.mean() > 0.8  # never seen in training, found by their text


def test_label_vectors_move_only_for_labels_with_training_documents(fitted_dual, keyword_labels):
    net = fitted_dual.net_
    n = net.n_labels
    with torch.no_grad():
        vectors = net.label_vectors()
        base = torch.nn.functional.normalize(net.label_base, dim=-1)
    assert torch.allclose(vectors[n - HELD_OUT:], base[n - HELD_OUT:], atol=1e-6)
    moved = (vectors[: n - HELD_OUT] - base[: n - HELD_OUT]).norm(dim=1)
    assert bool((moved > 1e-3).all())
    assert net.learnable.tolist() == [True] * (n - HELD_OUT) + [False] * HELD_OUT


def test_dual_encoder_save_load_and_resume_give_the_same_scores(fitted_dual, keyword_labels, keyword_bert, tmp_path):
    from xmc.models.dual_encoder import DualEncoder

    texts, Y, test_texts, _, label_texts = keyword_labels
    fitted_dual.save(tmp_path / "m")
    loaded = DualEncoder.load(tmp_path / "m")
    a, b = fitted_dual.predict(test_texts, top_k=5), loaded.predict(test_texts, top_k=5)
    assert np.array_equal(a.indices, b.indices) and np.allclose(a.data, b.data, atol=1e-5)
    first = DualEncoder(dual_config(keyword_bert)).fit(texts, Y, label_texts=label_texts, checkpoint_dir=tmp_path)
    again = DualEncoder(dual_config(keyword_bert)).fit(texts, Y, label_texts=label_texts, checkpoint_dir=tmp_path,
                                                      resume=True)
    a, b = first.predict(test_texts, top_k=5), again.predict(test_texts, top_k=5)
    assert np.array_equal(a.indices, b.indices) and np.allclose(a.data, b.data, atol=1e-5)


def test_alc_adds_its_losses_and_still_learns(keyword_labels, keyword_bert):
    from xmc.models.dual_encoder import DualEncoder

    texts, Y, test_texts, Y_test, label_texts = keyword_labels
    model = DualEncoder(dual_config(keyword_bert, alc=True)).fit(texts, Y, label_texts=label_texts)
    assert model.net_.pair is not None and model.net_.weights.alc > 0 and model.net_.weights.tcm > 0
    assert precision_at_k(Y_test, model.predict(test_texts, top_k=5), 1) > 0.8


def test_dual_encoder_refuses_missing_label_texts(keyword_labels, keyword_bert):
    from xmc.exceptions import XMCError
    from xmc.models.dual_encoder import DualEncoder

    texts, Y, _, _, label_texts = keyword_labels
    with pytest.raises(XMCError, match="label_texts"):
        DualEncoder(dual_config(keyword_bert)).fit(texts, Y)
    with pytest.raises(XMCError, match="one per column"):
        DualEncoder(dual_config(keyword_bert)).fit(texts, Y, label_texts=label_texts[:-1])


def test_an_ensemble_of_dual_encoders_asks_for_label_texts_and_others_do_not(keyword_bert):
    from xmc.models.dual_encoder import DualEncoder
    from xmc.models.ensemble import Ensemble
    from xmc.models.xr_linear import XRLinear

    duals = [DualEncoder(dual_config(keyword_bert)) for _ in range(2)]
    assert Ensemble(None, duals).reads_label_texts
    assert not Ensemble(None, [XRLinear(), XRLinear()]).reads_label_texts


def _doc_gradient(weights, seed=0):
    """d(loss)/d(docs) of the dual encoder's loss with ``weights`` on fixed small embeddings."""
    from types import SimpleNamespace

    from xmc.nn.dual import DualEncoderNet

    torch.manual_seed(seed)
    net = DualEncoderNet(SimpleNamespace(dim=4), 5, weights, pair_hidden=8)
    gen = torch.Generator().manual_seed(1)
    docs = torch.nn.functional.normalize(torch.randn(3, 4, generator=gen), dim=-1).requires_grad_()
    labels = torch.nn.functional.normalize(torch.randn(5, 4, generator=gen), dim=-1)
    positives = torch.tensor([[1, 0, 0, 1, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 1]], dtype=torch.bool)
    loss, parts = net.loss(docs, labels, positives)
    loss.backward()
    return docs.grad.clone(), parts, (net, docs.detach(), labels, positives)


def test_alc_and_the_margin_loss_move_the_encoders_gradient_only_when_weighted():
    """Off (weight 0), each loss leaves the gradient exactly the contrastive loss's; on, it adds
    exactly its weight times its own gradient (computed here from the loss functions directly)."""
    from xmc.nn.dual import LossWeights

    base, parts, _ = _doc_gradient(LossWeights())
    assert set(parts) == {"nce"}
    for field, value in (("alc", 0.7), ("tcm", 0.4)):
        on, parts, (net, docs, labels, positives) = _doc_gradient(LossWeights(**{field: value}))
        assert set(parts) == {"nce", field} and parts[field] > 0
        assert not torch.allclose(on, base, atol=1e-6)  # the auxiliary loss reaches the encoder
        docs = docs.clone().requires_grad_()
        sims = docs @ labels.T
        w = net.weights
        if field == "alc":
            aux = hardest_negative_margin(sims, positives, w.alc_margin) + pair_classification_loss(
                net.pair, docs, labels, sims, positives, w.alc_pair_negatives)
        else:
            aux = threshold_consistent_margin(sims, positives, w.tcm_pos, w.tcm_neg)
        aux.backward()
        torch.testing.assert_close(on - base, value * docs.grad, rtol=1e-4, atol=1e-6)
