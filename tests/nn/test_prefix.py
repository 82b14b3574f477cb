"""The cache of frozen layers: the same outputs as the full forward pass, and only the layers that
learn move."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.nn.conftest import cascade_config

from xmc.exceptions import XMCError
from xmc.models import model_class
from xmc.nn.encoders import Tap, TextEncoder, load_pretrained
from xmc.nn.prefix import FrozenPrefix
from xmc.nn.tokens import tokenize


@pytest.fixture(scope="module")
def encoder_and_tokens(keyword_task, keyword_bert):
    tokenizer, transformer = load_pretrained(keyword_bert)
    return TextEncoder(transformer), tokenize(tokenizer, keyword_task[0][:40], 24)


def test_cached_layers_give_the_full_forward_pass(encoder_and_tokens):
    encoder, tokens = encoder_and_tokens
    prefix = FrozenPrefix(encoder, tokens, 1, torch.device("cpu"))
    assert prefix.states.dtype == torch.float16 and prefix.states.shape == (int(tokens.offsets[-1]), encoder.dim)
    encoder.eval()
    rows = np.array([3, 0, 17, 9, 39])
    taps = (Tap("mean", -1), Tap("cls", -1), Tap("mean", 1))
    with torch.no_grad():
        got, _ = prefix.taps(rows, taps)
        want = encoder(*tokens.batch(rows), taps)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=5e-3, rtol=5e-3)
    with pytest.raises(XMCError, match="below the 1 cached frozen layers"):
        prefix.taps(rows, (Tap("mean", 0),))
    with pytest.raises(XMCError, match="freeze_layers <"):
        FrozenPrefix(encoder, tokens, encoder.n_layers, torch.device("cpu"))


def test_training_on_the_cache_moves_only_the_layers_that_learn(keyword_task, keyword_bert):
    texts, Y, _, _ = keyword_task
    config = cascade_config("lightxml", keyword_bert, epochs=2).replace(freeze_layers=1)
    model = model_class("lightxml")(config)
    start = {k: v.clone() for k, v in load_pretrained(keyword_bert)[1].state_dict().items()}
    model.fit(texts[:200], Y[:200])
    after = model.net_.encoder.transformer.state_dict()
    frozen = [k for k in start if k.startswith(("embeddings.", "encoder.layer.0."))]
    learning = [k for k in start if k.startswith("encoder.layer.1.") and k.endswith("weight")]
    assert frozen and learning
    assert all(torch.equal(start[k], after[k]) for k in frozen)
    assert all(not torch.equal(start[k], after[k]) for k in learning)
    assert model._prefix is None  # dropped after training
    assert model.epoch_logs_[-1]["loss"] < model.epoch_logs_[0]["loss"]
