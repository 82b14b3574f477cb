"""InceptionXML and SyncXML: the CNN convolves along the embedding axis, the shortlist and the
detached warm-up behave, and both learn a short-text task; save, load and predict agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xmc.metrics import precision_at_k
from xmc.models import model_class
from xmc.models.pipeline import load
from xmc.nn.inception import InceptionEncoder
from xmc.nn.words import WordVocab, clean


def _config(method: str, **changes):
    from xmc.models.inceptionxml import InceptionConfig, SyncXMLConfig
    from xmc.training.trainer import OptimConfig, TrainConfig
    from xmc.tree.label_tree import TreeConfig

    train = TrainConfig(epochs=20, batch_size=32, device="cpu", eval_docs=0,
                        optim=OptimConfig(lr=5e-3, head_lr=5e-3, weight_decay=0.0, schedule="one_cycle",
                                          warmup=0.3, clip=0.0))
    common = dict(embeddings="random", embedding_dim=64, hidden=128, train=train, min_count=1, channels=16)
    common.update(changes)
    if method == "syncxml":
        return SyncXMLConfig(tree=TreeConfig(max_leaf_size=4), top_k=4, meta_epochs=2, **common)
    return InceptionConfig(**common)


def test_words_are_cleaned_counted_and_padded():
    assert clean("Council Regulation (EEC) No 1/2, on imports; it's") == ["council", "regulation", "eec", "no",
                                                                         "1", "2", "on", "imports", "it's"]
    vocab = WordVocab.build(["a b b c", "b c d"], min_count=2)
    assert vocab.words == ["<pad>", "<unk>", "b", "c"]
    tokens = vocab.encode(["b c a x", "", "c"], length=3)
    assert tokens.lengths.tolist() == [3, 1, 1] and tokens.ids.tolist() == [2, 3, 1, 1, 3]


@pytest.mark.parametrize("method", ["inceptionxml", "syncxml"])
def test_encoder_strip_cuts_words_before_the_cnn_reads_them(method):
    from xmc.nn.encoders import EncoderConfig

    model = model_class(method)(_config(method, encoder=EncoderConfig(max_seq_len=8, strip=r"\bno \d+/\d+")))
    text = "regulation no 12/76 on bananas and apples from the south of spain"
    model._prepare_encoder([text, "decision no 3/99 on fish"])
    assert "no" not in model.vocab_.words and "12" not in model.vocab_.words
    expected = model.vocab_.encode(["regulation on bananas and apples from the south"], 8)
    got = model._tokenize([text])
    assert got.ids.tolist() == expected.ids.tolist() and got.lengths.tolist() == [8]


def test_the_cnn_shapes_and_its_axis():
    """The parallel convolutions slide along the embedding axis (circularly, stride 4): rolling the
    embedding dimensions by 4 rolls their outputs by one step, exactly; the 1x1 convolution before
    them maps the token positions to channels."""
    torch.manual_seed(0)
    table = torch.randn(50, 64)
    cnn = InceptionEncoder(table, seq_len=8, channels=8, dropout=0.0, attention=False).eval()
    ids = torch.randint(2, 50, (6, 8))
    mask = torch.ones_like(ids)
    (feature,) = cnn(ids, mask)
    assert feature.shape == (6, cnn.dim) and cnn.dim == 8 * ((64 // 4 + 1 - 16) // 4 + 1)
    with torch.no_grad():
        z = cnn.positions(cnn.embedding(ids))
        assert z.shape == (6, 8, 64)  # positions became channels; the length is the embedding axis
        for block in cnn.parallel:
            out = block(z)
            rolled = block(torch.roll(z, 4, dims=-1))
            torch.testing.assert_close(rolled[..., :16], torch.roll(out[..., :16], 1, dims=-1))
    assert cnn(ids[:, :5], mask[:, :5])[0].shape == feature.shape  # a shorter batch is padded to length 8


PAPER = dict(learned_attention=True, residual_head=True, out_dropout=0.1)  # the official enhancement and head


@pytest.fixture(scope="module", params=["inceptionxml", "syncxml", "inceptionxml-paper"])
def fitted(request, keyword_task):
    texts, Y, test_texts, Y_test = keyword_task
    method, _, variant = request.param.partition("-")
    model = model_class(method)(_config(method, **(PAPER if variant else {}))).fit(texts, Y)
    return model, test_texts, Y_test


def test_learns_the_keyword_task(fitted):
    model, texts, Y = fitted
    # the official block learns this tiny task more slowly (BatchNorm and dropout on a 16-channel CNN's output);
    # chance is 0.04
    floor = 0.5 if model.config.residual_head else 0.85
    assert precision_at_k(Y, model.predict(texts, top_k=5), 1) > floor


def test_save_load_predict_identical(fitted, tmp_path):
    model, texts, _ = fitted
    model.save(tmp_path / "m")
    again = load(tmp_path / "m")
    assert (again.predict(texts) != model.predict(texts)).nnz == 0
    single = again.predict(texts[3], top_k=5)
    assert single.indices.tolist() == model.predict(texts[:8], top_k=5)[3].indices.tolist()


def test_syncxml_shortlist_and_detached_warm_up(keyword_task):
    """The candidates hold every positive while training; with the extreme level detached (the
    warm-up), its loss sends no gradient into the encoder, and afterwards it does."""
    import dataclasses

    from xmc.nn.shortlist import dense_positives

    texts, Y, _, _ = keyword_task
    model = model_class("syncxml")(_config("syncxml", train=_config("syncxml").train.replace(epochs=1)))
    model.fit(texts[:64], Y[:64])
    net = model.net_
    assert len(net.level_specs) == 2 and net.level_specs[0].loss_weight == model.config.meta_scale
    ids, mask = model._tokenize(texts[:16]).batch(np.arange(16))
    Ys = [y[:16] for y in model._level_labels(Y[:64])]
    net.train()
    x = net._features(ids, mask)[0]
    candidates = net.shortlists[1].expand(net.shortlists[1].select(net.heads[0](x), 4, dense_positives(Ys[0])))
    assert all(set(Ys[1][i].indices) <= set(candidates[i].tolist()) for i in range(16))
    net.level_specs[0] = dataclasses.replace(net.level_specs[0], loss_weight=0.0)  # the extreme loss alone
    for detached in (True, False):
        net.zero_grad(set_to_none=True)
        net.detached = {1} if detached else set()
        loss, _ = net.loss(ids, mask, Ys)
        loss.backward()
        grad = net.encoder.final.conv.weight.grad
        assert (grad is None or float(grad.abs().sum()) == 0.0) == detached


def test_fit_is_reproducible_from_the_seed(keyword_task):
    """The CNN is built from scratch, so its initialisation must come from the config's seed too."""
    texts, Y, test_texts, _ = keyword_task
    config = _config("inceptionxml", train=_config("inceptionxml").train.__class__(epochs=1, batch_size=64,
                                                                               device="cpu", eval_docs=0))
    a = model_class("inceptionxml")(config).fit(texts[:200], Y[:200])
    b = model_class("inceptionxml")(config).fit(texts[:200], Y[:200])
    for (name, x), (_, y) in zip(a.net_.state_dict().items(), b.net_.state_dict().items(), strict=True):
        assert torch.equal(x, y), name


def test_learned_attention_starts_as_the_identity_and_computes_the_papers_product():
    import torch

    from xmc.nn.inception import LearnedEnhancement, SimpleSelfAttention

    torch.manual_seed(0)
    attention = SimpleSelfAttention(5).eval()
    x, y = torch.randn(2, 5, 7), torch.randn(2, 5, 7)
    torch.testing.assert_close(attention(x), x)  # gamma starts at 0
    with torch.no_grad():
        attention.gamma.fill_(0.3)
    W = attention.conv.weight.detach()[:, :, 0]  # the spectral-normalised weight in use
    assert abs(torch.linalg.matrix_norm(W, ord=2).item() - 1.0) < 0.05
    expected = x + 0.3 * (x @ y.transpose(1, 2)) @ (W @ x)
    torch.testing.assert_close(attention(x, y), expected, rtol=1e-4, atol=1e-4)
    enhance = LearnedEnhancement(5, 7).eval()
    torch.testing.assert_close(enhance(x), x)


def test_the_residual_head_block_by_hand():
    import torch

    from xmc.nn.heads import HiddenBlock

    torch.manual_seed(0)
    block = HiddenBlock(6, 6, dropout=0.5, residual=True, out_dropout=0.5).eval()
    with torch.no_grad():
        block.norm.running_mean.uniform_(-1, 1)
        block.norm.running_var.uniform_(0.5, 2)
    x = torch.randn(4, 6)
    h = torch.nn.functional.gelu(x @ block.linear.weight.T + block.linear.bias)
    bn = (h - block.norm.running_mean) / torch.sqrt(block.norm.running_var + block.norm.eps)
    torch.testing.assert_close(block(x), x + bn * block.norm.weight + block.norm.bias)
    with pytest.raises(ValueError, match="keeps the width"):
        HiddenBlock(6, 8, residual=True)
