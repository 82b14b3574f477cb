"""Warm heads (:mod:`xmc.training.warm`): heads trained alone on the frozen encoder's cached taps."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from tests.nn.conftest import cascade_config

from xmc.models.lightxml import LightXML
from xmc.nn.tokens import tokenize
from xmc.training.warm import cache_taps


def test_cached_taps_are_the_encoders_outputs(keyword_task, keyword_bert):
    texts = keyword_task[0][:40]
    model = LightXML(cascade_config("lightxml", keyword_bert, epochs=1)).fit(keyword_task[0][:100],
                                                                              keyword_task[1][:100])
    net = model.net_
    tokens = tokenize(model.tokenizer_, texts, 24)
    cached = cache_taps(net.encoder, net.taps, tokens, 7, torch.device("cpu"))  # odd batches, longest first
    net.eval()
    ids, mask = tokens.batch(np.arange(len(texts)))
    with torch.no_grad():
        direct = torch.stack(net.encoder(ids, mask, net.taps), dim=1)
    assert cached.dtype == torch.float16 and cached.shape == direct.shape
    torch.testing.assert_close(cached.float(), direct, rtol=2e-3, atol=2e-3)


def test_warm_epochs_train_the_heads_and_leave_the_encoder(keyword_task, keyword_bert):
    texts, Y = keyword_task[:2]
    config = cascade_config("lightxml", keyword_bert, epochs=1)
    warm_only = dataclasses.replace(config, warm_epochs=6, warm_batch_size=64,
                                    train=dataclasses.replace(config.train, optim=dataclasses.replace(
                                        config.train.optim, lr=0.0)))  # joint epoch at lr 0: encoder fixed
    cold = LightXML(dataclasses.replace(warm_only, warm_epochs=0)).fit(texts, Y)
    warm = LightXML(warm_only).fit(texts, Y)
    stages = [e["stage"] for e in warm.epoch_logs_]
    assert stages == ["warm-heads"] * 6 + ["lightxml"]
    for name, p in warm.net_.encoder.state_dict().items():
        torch.testing.assert_close(p, cold.net_.encoder.state_dict()[name], msg=name)  # never trained
    warm_logs = [e["loss"] for e in warm.epoch_logs_ if e["stage"] == "warm-heads"]
    assert warm_logs[-1] < 0.85 * warm_logs[0]
    heads = {k: v for k, v in warm.net_.state_dict().items() if not k.startswith("encoder.")}
    assert any(not torch.equal(v, cold.net_.state_dict()[k]) for k, v in heads.items())
