"""Batched inference: documents -> pooled embeddings."""

from __future__ import annotations

import numpy as np
import torch

from xmc.nn.device import autocast
from xmc.nn.encoders import TextEncoder
from xmc.nn.tokens import TokenizedTexts, length_sorted_batches
from xmc.utils.progress import progress


@torch.no_grad()
def embed(encoder: TextEncoder, tokens: TokenizedTexts, batch_size: int, device: torch.device,
          rows: np.ndarray | None = None, amp: bool = True, desc: str = "embed") -> np.ndarray:
    """``(n_rows, dim)`` float32 embeddings, in the order of ``rows`` (default: all documents)."""
    rows = np.arange(len(tokens)) if rows is None else np.asarray(rows)
    out = np.zeros((rows.size, encoder.dim), dtype=np.float32)
    was_training = encoder.training
    if was_training:  # eval() and train() walk every module: a tenth of a one-text prediction
        encoder.eval()
    try:
        batches = length_sorted_batches(tokens.lengths[rows], batch_size)
        for local in progress(batches, desc=desc, unit="batch"):
            ids, mask = tokens.batch(rows[local])
            with autocast(device, amp):
                out[local] = encoder(ids.to(device), mask.to(device)).float().cpu().numpy()
    finally:
        if was_training:
            encoder.train()
    return out
