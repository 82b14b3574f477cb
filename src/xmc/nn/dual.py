"""The dual encoder's network: one text encoder for documents and label texts, per-label vectors
that start at the label texts' embeddings, and the losses of its two stages.

A label's vector is ``normalise(text embedding + delta)``: ``delta`` (zeros at first, an embedding
table with sparse gradients) is learned only for labels with training documents, so a label known
only by its text keeps its text embedding and is scored from the text alone (NGAME's and DEXA's
free vectors, with DEXA's start at the label-text embedding).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from xmc.nn.contrastive import (
    PairClassifier,
    hardest_negative_margin,
    multi_positive_nce,
    pair_classification_loss,
    threshold_consistent_margin,
)
from xmc.nn.encoders import TextEncoder


@dataclass(frozen=True)
class LossWeights:
    temperature: float = 0.05
    alc: float = 0.0  # weight of ALC's two auxiliary objectives (0 = off)
    alc_margin: float = 0.1
    alc_pair_negatives: int = 4
    tcm: float = 0.0  # weight of the threshold-consistent margin loss (0 = off)
    tcm_pos: float = 0.9
    tcm_neg: float = 0.5


class DualEncoderNet(nn.Module):
    def __init__(self, encoder: TextEncoder, n_labels: int, weights: LossWeights, pair_hidden: int = 256):
        super().__init__()
        self.encoder, self.weights = encoder, weights
        dim = encoder.dim
        self.register_buffer("label_base", torch.zeros(n_labels, dim))  # label-text embeddings (unit rows)
        self.register_buffer("learnable", torch.zeros(n_labels, dtype=torch.bool))  # labels with documents
        self.delta = nn.Embedding(n_labels, dim, sparse=True)
        nn.init.zeros_(self.delta.weight)
        self.pair = PairClassifier(dim, pair_hidden) if weights.alc else None

    @property
    def n_labels(self) -> int:
        return self.label_base.shape[0]

    def label_vectors(self, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Unit label vectors (of ``labels``, default all)."""
        if labels is None:
            labels = torch.arange(self.n_labels, device=self.label_base.device)
        delta = self.delta(labels) * self.learnable[labels, None]
        return nn.functional.normalize(self.label_base[labels] + delta, dim=-1)

    def loss(self, docs: torch.Tensor, labels: torch.Tensor, positives: torch.Tensor
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """Contrastive loss (plus ALC's and the margin loss when weighted) of unit ``docs`` (B, d)
        against unit candidate ``labels`` (K, d)."""
        w = self.weights
        sims = docs.float() @ labels.float().T
        loss = multi_positive_nce(sims, positives, w.temperature)
        parts = {"nce": float(loss.detach())}
        if w.alc:
            alc = hardest_negative_margin(sims, positives, w.alc_margin)
            alc = alc + pair_classification_loss(self.pair, docs, labels, sims, positives, w.alc_pair_negatives)
            loss = loss + w.alc * alc
            parts["alc"] = float(alc.detach())
        if w.tcm:
            tcm = threshold_consistent_margin(sims, positives, w.tcm_pos, w.tcm_neg)
            loss = loss + w.tcm * tcm
            parts["tcm"] = float(tcm.detach())
        return loss, parts
