"""The shared neural parts (taps, shortlist sampler, cascade network, trainer) and LightXML /
CascadeXML end to end, with a tiny random BERT."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from xmc.exceptions import InvalidConfigError
from xmc.nn.cascade import CascadeNet, FeatureSpec, LevelSpec
from xmc.nn.encoders import Tap, TextEncoder, load_pretrained
from xmc.nn.shortlist import ClusterShortlist, candidate_targets, dense_positives
from xmc.nn.tokens import tokenize


def test_taps_read_the_layers_they_name(tiny_bert):
    tokenizer, transformer = load_pretrained(tiny_bert)
    transformer.eval()
    encoder = TextEncoder(transformer)
    tokens = tokenize(tokenizer, ["council regulation on imports of fish", "bananas"], max_len=16)
    ids, mask = tokens.batch(np.arange(2))
    with torch.no_grad():
        states = transformer(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        out = encoder(ids, mask, (Tap("cls", -1), Tap("cls", 1), Tap("mean", 0), Tap.parse("cls@-2")))
    torch.testing.assert_close(out[0], states[2][:, 0])
    torch.testing.assert_close(out[1], states[1][:, 0])
    n = int(mask[1].sum())
    torch.testing.assert_close(out[2][1], states[0][1, :n].mean(0))
    torch.testing.assert_close(out[3], states[1][:, 0])
    with pytest.raises(InvalidConfigError, match="reads layer 3, but the encoder has 2 layers"):
        encoder.layer_index(Tap("cls", 3))
    with pytest.raises(InvalidConfigError, match="a tap is"):
        Tap.parse("max@1")


def _two_level_chain():
    # 3 parents: {0, 1}, {2, 3, 4}, {5}
    parent = np.array([0, 0, 1, 1, 1, 2])
    return sp.csr_matrix((np.ones(6, np.float32), (np.arange(6), parent)), shape=(6, 3))


def test_the_sampler_keeps_every_positive_while_training_and_only_the_top_k_otherwise():
    shortlist = ClusterShortlist(_two_level_chain())
    assert shortlist.table.tolist() == [[0, 1, 6], [2, 3, 4], [5, 6, 6]]
    scores = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.8, 0.3]])
    assert shortlist.select(scores, 1).tolist() == [[0], [1]]  # prediction: the model's own top-k only
    positives = dense_positives(sp.csr_matrix(np.array([[0, 1, 1], [1, 0, 0]], np.float32)))
    chosen = shortlist.select(scores, 1, positives)
    assert chosen.shape == (2, 2)  # k grows to the most positives of a row
    assert set(chosen[0].tolist()) == {1, 2} and chosen[1, 0].item() == 0  # true parents first
    candidates = shortlist.expand(chosen)
    Y = sp.csr_matrix(np.array([[0, 0, 0, 1, 0, 1], [0, 1, 0, 0, 0, 0]], np.float32))
    targets = candidate_targets(candidates, Y)
    expected = [[float(c < 6 and Y[i, c] > 0) for c in row] for i, row in enumerate(candidates.tolist())]
    assert targets.tolist() == expected
    assert all(Y[i, j] == 0 or j in candidates[i].tolist() for i in range(2) for j in Y[i].indices)


def test_with_every_parent_shortlisted_the_cascade_scores_like_exhaustive_products(tiny_bert):
    tokenizer, transformer = load_pretrained(tiny_bert)
    encoder = TextEncoder(transformer)
    chains = [sp.csr_matrix(np.ones((3, 1), np.float32)), _two_level_chain()]
    torch.manual_seed(0)
    net = CascadeNet(encoder, (Tap("cls", -1),), encoder.dim, [FeatureSpec((0,))],
                     [LevelSpec(3), LevelSpec(6, top_k=1)], chains).eval()
    tokens = tokenize(tokenizer, ["fish and bananas", "council regulation", "imports"], max_len=16)
    ids, mask = tokens.batch(np.arange(3))
    indices, scores = net.predict(ids, mask, top_k=6, shortlist_k=(3,))
    with torch.no_grad():
        x = net.features[0]([encoder(ids, mask, net.taps)[0]])
        parent = torch.sigmoid(net.heads[0](x))
        everything = torch.arange(6).repeat(3, 1)
        own = torch.sigmoid(net.heads[1](x, everything))
    exhaustive = own * parent[:, [0, 0, 1, 1, 1, 2]]
    for i in range(3):
        order = torch.argsort(exhaustive[i], descending=True)
        assert indices[i].tolist() == order.tolist()
        torch.testing.assert_close(scores[i], exhaustive[i][order])
    narrow, _ = net.predict(ids, mask, top_k=6, shortlist_k=(1,))  # one parent: only its children
    for i in range(3):
        kept = {c for c in narrow[i].tolist() if c >= 0}
        assert len({[0, 0, 1, 1, 1, 2][c] for c in kept}) == 1


@pytest.mark.parametrize("scheme", ["weighted", "parent", "level"])
def test_the_scoring_schemes_on_three_levels(tiny_bert, scheme):
    """With every parent shortlisted: weighted = the product down the whole path, parent = a label's
    probability times its parent's own, level = the label's own."""
    tokenizer, transformer = load_pretrained(tiny_bert)
    encoder = TextEncoder(transformer)
    up1, up2 = np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1, 2, 2, 3, 3])
    chains = [sp.csr_matrix(np.ones((2, 1), np.float32)),
              sp.csr_matrix((np.ones(4, np.float32), (np.arange(4), up1)), shape=(4, 2)),
              sp.csr_matrix((np.ones(8, np.float32), (np.arange(8), up2)), shape=(8, 4))]
    torch.manual_seed(1)
    net = CascadeNet(encoder, (Tap("cls", -1),), encoder.dim, [FeatureSpec((0,))],
                     [LevelSpec(2), LevelSpec(4, top_k=1), LevelSpec(8, top_k=1)], chains).eval()
    with torch.no_grad():
        for head in net.heads[1:]:
            head.table.weight.normal_(0, 1.0)  # spread the probabilities so that the schemes rank differently
    tokens = tokenize(tokenizer, ["fish and bananas", "council regulation", "imports"], max_len=16)
    ids, mask = tokens.batch(np.arange(3))
    indices, scores = net.predict(ids, mask, top_k=8, shortlist_k=(2, 4), scheme=scheme)
    with torch.no_grad():
        x = net.features[0]([encoder(ids, mask, net.taps)[0]])
        p0 = torch.sigmoid(net.heads[0](x))
        p1 = torch.sigmoid(net.heads[1](x, torch.arange(4).repeat(3, 1)))
        p2 = torch.sigmoid(net.heads[2](x, torch.arange(8).repeat(3, 1)))
    expected = {"weighted": p2 * p1[:, up2] * p0[:, up1[up2]], "parent": p2 * p1[:, up2], "level": p2}[scheme]
    for i in range(3):
        order = torch.argsort(expected[i], descending=True)
        assert indices[i].tolist() == order.tolist()
        torch.testing.assert_close(scores[i], expected[i][order])
