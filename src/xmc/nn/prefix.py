"""A cache of what the frozen bottom of a transformer computes: with ``freeze_layers=n`` the
embedding block and the first n layers never change, so their output is computed once per training
text (float16, only the real tokens: a flat ``(total tokens, hidden)`` table) and every epoch runs
only the layers that learn.

The cache is made without dropout (an uncached frozen layer, in train mode, would still drop), and
the upper layers are called one by one with an additive attention mask; a BERT-family encoder
(``transformer.encoder.layer``) is required, and the first batch is checked against the full
forward pass, so an architecture whose layers want something else fails loudly, never silently.
"""

from __future__ import annotations

import numpy as np
import torch

from xmc.exceptions import XMCError
from xmc.nn.device import autocast
from xmc.nn.encoders import Tap, TextEncoder, _pool
from xmc.nn.tokens import TokenizedTexts, length_sorted_batches
from xmc.utils.progress import progress

CHECK_TOLERANCE = 5e-2  # float16 storage of states with norms near 10


class FrozenPrefix:
    """The output of the embedding block and the first ``n_layers`` layers for every text of
    ``tokens``, and the forward pass of the layers above it."""

    def __init__(self, encoder: TextEncoder, tokens: TokenizedTexts, n_layers: int, device: torch.device,
                 batch_size: int = 128, amp: bool = True):
        layers = _layers(encoder)
        if not 1 <= n_layers < len(layers):
            raise XMCError(f"caching frozen layers needs 1 <= freeze_layers < {len(layers)}, got {n_layers}")
        self.encoder, self.tokens, self.n_layers, self.device = encoder, tokens, n_layers, device
        self.states = self._compute(batch_size, amp)
        self._check()

    @torch.no_grad()
    def _compute(self, batch_size: int, amp: bool) -> torch.Tensor:
        encoder, tokens = self.encoder, self.tokens
        layers = _layers(encoder)
        out = torch.empty((int(tokens.offsets[-1]), encoder.dim), dtype=torch.float16)
        was_training = encoder.training
        encoder.eval()
        encoder.transformer.encoder.layer = torch.nn.ModuleList(list(layers)[: self.n_layers])  # only the bottom
        try:
            for rows in progress(length_sorted_batches(tokens.lengths, batch_size), desc="cache frozen layers",
                                 unit="batch"):
                ids, mask = tokens.batch(rows)
                with autocast(self.device, amp):
                    states = encoder.transformer(input_ids=ids.to(self.device),
                                                 attention_mask=mask.to(self.device)).last_hidden_state
                states = states.float().cpu().half()
                for j, i in enumerate(rows):
                    n = int(tokens.lengths[i])
                    out[tokens.offsets[i]:tokens.offsets[i] + n] = states[j, :n]
        finally:
            encoder.transformer.encoder.layer = layers
            encoder.train(was_training)
        return out

    def hidden(self, rows: np.ndarray) -> torch.Tensor:
        """``(B, T, hidden)`` cached states of ``rows``, padded like ``tokens.batch(rows)`` (zeros)."""
        lengths = self.tokens.lengths[rows]
        width = int(lengths.max()) if rows.size else 0
        index = np.zeros((rows.size, width), dtype=np.int64)
        valid = np.arange(width)[None, :] < lengths[:, None]
        index[valid] = np.concatenate([np.arange(self.tokens.offsets[i], self.tokens.offsets[i] + n)
                                       for i, n in zip(rows, lengths, strict=True)])
        states = self.states[torch.from_numpy(index)].float()
        states[torch.from_numpy(~valid)] = 0.0
        return states.to(self.device)

    def taps(self, rows: np.ndarray, taps: tuple[Tap, ...]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The pooled taps of ``rows`` through the layers above the cache, and the attention mask."""
        _, mask = self.tokens.batch(rows)
        mask = mask.to(self.device)
        hidden = self.hidden(rows)
        additive = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        states = {self.n_layers: hidden}
        for i, layer in enumerate(_layers(self.encoder)[self.n_layers:], start=self.n_layers + 1):
            out = layer(states[i - 1], attention_mask=additive)
            states[i] = out[0] if isinstance(out, tuple) else out
        pooled = []
        for tap in taps:
            index = self.encoder.layer_index(tap)
            if index < self.n_layers:
                raise XMCError(f"tap {tap} reads layer {index}, below the {self.n_layers} cached frozen layers")
            pooled.append(_pool(states[index], mask, tap.pooling))
        return pooled, mask

    @torch.no_grad()
    def _check(self) -> None:
        """The cached path must give the encoder's own outputs on a few texts (eval mode)."""
        rows = np.arange(min(8, len(self.tokens)))
        ids, mask = self.tokens.batch(rows)
        taps = (Tap("mean", -1),)
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            want = self.encoder(ids.to(self.device), mask.to(self.device), taps)[0].float()
            got = self.taps(rows, taps)[0][0].float()
        except (TypeError, RuntimeError, ValueError) as exc:
            raise XMCError(f"freeze_layers with cache_frozen needs a BERT-family encoder: {exc}") from None
        finally:
            self.encoder.train(was_training)
        if not torch.allclose(got, want, atol=CHECK_TOLERANCE, rtol=CHECK_TOLERANCE):
            raise XMCError("the cached frozen layers do not reproduce this encoder's outputs (max difference "
                           f"{float((got - want).abs().max()):.3g}); train with cache_frozen=false")


def _layers(encoder: TextEncoder) -> torch.nn.ModuleList:
    layers = getattr(getattr(getattr(encoder, "transformer", None), "encoder", None), "layer", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise XMCError("caching frozen layers needs a BERT-family encoder (transformer.encoder.layer); train "
                       "with cache_frozen=false")
    return layers


def freeze_encoder(encoder: TextEncoder, embeddings: bool, n_layers: int) -> None:
    """The word-embedding table (and with ``n_layers``, the whole embedding block and the first layers)
    stop learning: no gradient is computed for them."""
    if not hasattr(encoder, "transformer"):  # a CNN: only its word table can be frozen
        if embeddings:
            encoder.embedding.weight.requires_grad_(False)
        return
    if embeddings or n_layers:
        encoder.transformer.get_input_embeddings().weight.requires_grad_(False)
    if not n_layers:
        return
    if n_layers > encoder.n_layers:
        raise XMCError(f"freeze_layers={n_layers} but the encoder has {encoder.n_layers} layers "
                       "(set freeze_layers below that, e.g. --set freeze_layers=0)")
    for p in encoder.transformer.embeddings.parameters():
        p.requires_grad_(False)
    for layer in encoder.transformer.encoder.layer[:n_layers]:
        for p in layer.parameters():
            p.requires_grad_(False)
