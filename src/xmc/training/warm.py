"""Warm heads: before joint fine-tuning, the heads learn alone on the frozen encoder's outputs,
computed once and cached, for many cheap epochs.

A head that starts random and learns jointly with the encoder spends the first part of a short
run sending noise into the encoder; here it starts from what the pretrained encoder already says.
An epoch over the cache costs the heads' arithmetic only (no encoder pass), so ten of them cost
less than one joint epoch. Any network that reads encoder taps (:class:`xmc.nn.cascade.CascadeNet`)
can use it: the stage feeds the cached taps in place of the encoder's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

from xmc.nn.device import autocast
from xmc.nn.tokens import TokenizedTexts, length_sorted_batches
from xmc.training.trainer import OptimConfig, Stage, standard_groups
from xmc.utils.progress import progress


@torch.no_grad()
def cache_taps(encoder: torch.nn.Module, taps, tokens: TokenizedTexts, batch_size: int, device: torch.device,
               amp: bool = True) -> torch.Tensor:
    """``(n_docs, n_taps, dim)`` float16 outputs of the encoder's taps, without dropout."""
    was_training = encoder.training
    encoder.eval()
    out = None
    for rows in progress(length_sorted_batches(tokens.lengths, batch_size), desc="cache encoder outputs",
                         unit="batch"):
        ids, mask = tokens.batch(rows)
        with autocast(device, amp):
            feats = encoder(ids.to(device), mask.to(device), taps)
        stacked = torch.stack([f.float() for f in feats], dim=1)
        if out is None:
            out = torch.empty((len(tokens), *stacked.shape[1:]), dtype=torch.float16, device=device)
        out[torch.from_numpy(rows).to(device)] = stacked.half()
    encoder.train(was_training)
    return out


def warm_stage(net, tokens: TokenizedTexts, Ys: list[sp.csr_matrix], epochs: int, batch_size: int,
               optim: OptimConfig, device: torch.device, amp: bool, embed_batch_size: int = 128,
               cache: dict[str, torch.Tensor] | None = None) -> Stage:
    """A stage of ``epochs`` passes over the cached taps that trains ``net.features`` and ``net.heads``
    (at the heads' learning rate) and leaves the encoder alone. The cache is made on the stage's
    first step (a run resumed past this stage never makes it) and dropped at its end, unless it is
    the caller's ``cache`` (filled already, or kept for later use of the same encoder outputs)."""
    own = cache is None
    cache = {} if own else cache

    def loss(batch):
        if "taps" not in cache:
            cache["taps"] = cache_taps(net.encoder, net.taps, tokens, embed_batch_size, device, amp)
        rows = batch["rows"]
        pooled = list(cache["taps"][torch.from_numpy(rows).to(device)].float().unbind(1))
        return net.loss(None, None, [Y[rows] for Y in Ys], pooled=pooled)

    def groups():
        return standard_groups(None, [net.features, net.heads], optim.head_lr, optim.head_lr,
                               optim.weight_decay * optim.head_decay)

    n = len(tokens)
    return Stage(name="warm-heads", loss=loss, batches=_shuffled(n, batch_size), groups=groups, epochs=epochs,
                 n_batches=int(np.ceil(n / batch_size)), warmup=optim.warmup, schedule=optim.schedule,
                 clip=optim.clip, on_end=cache.clear if own else None, keep_best=False)


def _shuffled(n: int, batch_size: int) -> Callable[[np.random.Generator], list[dict]]:
    def batches(rng: np.random.Generator) -> list[dict]:
        order = rng.permutation(n)
        return [{"rows": order[i:i + batch_size]} for i in range(0, n, batch_size) if order[i:i + batch_size].size > 1]

    return batches
