"""The fast CPU path (``--quantize``): the encoder runs in ONNX Runtime with int8 weights, its vectors
and scores stay close to the float model's, and a quantised model is never saved."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from tests.nn.conftest import cascade_config

from xmc import api
from xmc.exceptions import XMCError
from xmc.metrics import precision_at_k
from xmc.models import model_class
from xmc.nn.fast_cpu import is_quantized, onnx_int8_encoder


def test_the_onnx_encoder_gives_the_float_encoder_s_vectors_and_taps(tiny_bert, eurlex_docs):
    from xmc.nn.encoders import Tap, TextEncoder, load_pretrained
    from xmc.nn.tokens import tokenize

    tokenizer, transformer = load_pretrained(tiny_bert)
    encoder = TextEncoder(transformer, "mean").eval()
    ids, mask = tokenize(tokenizer, eurlex_docs[2][:9], 24).batch(np.arange(9))
    taps = (Tap("mean", -1), Tap("cls", 1), Tap("mean", 0))
    with torch.inference_mode():
        want, want_taps = encoder(ids, mask), encoder(ids, mask, taps)
    plain, tapped = onnx_int8_encoder(encoder), onnx_int8_encoder(encoder, taps)
    got, got_taps = plain(ids, mask), tapped(ids, mask, taps)
    assert is_quantized(plain) and not is_quantized(encoder) and plain.dim == encoder.dim
    assert got.shape == want.shape and len(got_taps) == 3
    for a, b in [(got, want), *zip(got_taps, want_taps, strict=True)]:
        assert a.shape == b.shape and not torch.equal(a, b)  # int8 weights: close, not equal
        assert torch.nn.functional.cosine_similarity(a, b).min() > 0.9
    one = plain(ids[:1, : int(mask[0].sum())], mask[:1, : int(mask[0].sum())])  # any batch size and length
    assert torch.nn.functional.cosine_similarity(one, want[:1]).item() > 0.9
    with pytest.raises(ValueError, match="exported for taps"):
        plain(ids, mask, taps)


@pytest.fixture(scope="module")
def lightxml(keyword_task, keyword_bert):
    texts, Y, test_texts, Y_test = keyword_task
    model = model_class("lightxml")(cascade_config("lightxml", keyword_bert)).fit(texts, Y)
    return model, test_texts, Y_test


def test_a_quantised_lightxml_ranks_like_the_float_one(lightxml, tmp_path):
    model, texts, Y = lightxml
    fast = copy.deepcopy(model)
    assert fast.quantize() and is_quantized(fast.net_.encoder) and not is_quantized(model.net_.encoder)
    assert fast.quantize()  # twice is once
    want, got = model.predict(texts, top_k=5), fast.predict(texts, top_k=5)
    assert abs(precision_at_k(Y, got, 1) - precision_at_k(Y, want, 1)) <= 0.03
    same_top = np.mean([a.indices[np.argmax(a.data)] == b.indices[np.argmax(b.data)]
                        for a, b in zip(want, got, strict=True)])
    assert same_top >= 0.9
    with pytest.raises(XMCError, match="quantised for CPU inference"):
        fast.save(tmp_path / "q")
    assert not (tmp_path / "q").exists()


def test_quantised_xr_transformer_and_pipelines(fitted_tiny, encoded_docs, small_data, tmp_path):
    texts = encoded_docs[2][:20]
    fast = copy.deepcopy(fitted_tiny)
    assert fast.quantize() and is_quantized(fast.encoder_)
    want, got = fitted_tiny.predict(texts, top_k=5), fast.predict(texts, top_k=5)
    overlap = np.mean([len(set(a.indices) & set(b.indices)) / 5 for a, b in zip(want, got, strict=True)])
    assert overlap >= 0.8
    api.train("xr-linear", small_data, tmp_path / "linear", overrides=["tree.max_leaf_size=16"], eval_split=None)
    with pytest.raises(XMCError, match="no transformer encoder to quantise"):
        api.load(tmp_path / "linear", quantize=True)


def test_int8_weights_get_one_scale_per_output_column_by_default(tiny_bert):
    """Every quantised weight matrix (K, N) of the exported encoder carries N scales (one per output
    column) by default, and a single scale with ``per_channel=False``."""
    import onnx
    from onnx import numpy_helper

    from xmc.nn.encoders import TextEncoder, load_pretrained
    from xmc.nn.fast_cpu import int8_model

    _, transformer = load_pretrained(tiny_bert)
    encoder = TextEncoder(transformer, "mean").eval()

    def weight_scales(model_bytes):
        graph = onnx.load_from_string(model_bytes).graph
        init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        out = []
        for node in graph.node:
            if node.op_type == "MatMulInteger" and node.input[1] in init:
                weight = init[node.input[1]]
                scale = next(v for k, v in init.items() if k == node.input[1].replace("_quantized", "_scale"))
                out.append((weight.shape, scale.shape))
        return out

    per_column, per_matrix = weight_scales(int8_model(encoder)), weight_scales(int8_model(encoder, per_channel=False))
    assert len(per_column) >= 4 and len(per_column) == len(per_matrix)  # every layer's projections
    assert all(scale == (shape[1],) for shape, scale in per_column)
    assert all(scale in ((), (1,)) for _, scale in per_matrix)


def _neighbour_agreement(want: torch.Tensor, got: torch.Tensor, k: int = 10) -> float:
    """Mean share of each text's k nearest texts (cosine, itself left out) that the two embeddings agree on."""
    def neighbours(vectors):
        unit = torch.nn.functional.normalize(vectors, dim=-1)
        sims = unit @ unit.T
        sims.fill_diagonal_(-2.0)
        return sims.topk(k).indices.tolist()

    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(neighbours(want), neighbours(got), strict=True)]))


def test_int8_minilm_finds_the_float_model_s_neighbours_on_real_texts(eurlex_docs):
    """What the int8 encoder is for: on 300 real EURLEX57K texts the pre-trained MiniLM's int8 copy
    finds most of the float model's 10 nearest texts (measured 0.89 per column, 0.81 per matrix), and
    one scale per output column keeps clearly more of them than one scale per matrix."""
    from xmc.nn.encoders import TextEncoder, load_pretrained, packaged_encoder_dir
    from xmc.nn.tokens import tokenize

    tokenizer, transformer = load_pretrained(packaged_encoder_dir())
    encoder = TextEncoder(transformer, "mean").eval()
    texts = eurlex_docs[0][:300]
    ids, mask = tokenize(tokenizer, texts, 64).batch(np.arange(len(texts)))
    with torch.inference_mode():
        want = encoder(ids, mask)
    per_column = _neighbour_agreement(want, onnx_int8_encoder(encoder)(ids, mask))
    per_matrix = _neighbour_agreement(want, onnx_int8_encoder(encoder, per_channel=False)(ids, mask))
    assert per_column >= 0.85
    assert per_column >= per_matrix + 0.04
