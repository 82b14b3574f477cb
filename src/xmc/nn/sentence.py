"""Sentence embeddings of texts with a pretrained encoder (mean pooling, no fine-tuning): what the
label-text scorer compares documents and label texts with."""

from __future__ import annotations

import functools

import numpy as np
import torch

from xmc.nn.device import resolve_device
from xmc.nn.embed import embed
from xmc.nn.encoders import TextEncoder, load_pretrained, resolve_encoder
from xmc.nn.tokens import tokenize


@functools.lru_cache(maxsize=2)
def _encoder(name: str):
    tokenizer, transformer = load_pretrained(resolve_encoder(name))
    return tokenizer, TextEncoder(transformer, "mean").eval()


def sentence_embeddings(texts: list[str], name: str, max_seq_len: int = 128, batch_size: int = 128) -> np.ndarray:
    """``(n, dim)`` float32 mean-pooled embeddings of ``texts`` (not normalised)."""
    tokenizer, encoder = _encoder(name)
    device = resolve_device("auto")
    encoder.to(device)
    tokens = tokenize(tokenizer, [t or " " for t in texts], max_seq_len, desc="embed (sentence encoder)")
    with torch.inference_mode():
        return embed(encoder, tokens, batch_size, device)
