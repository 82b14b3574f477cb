"""Losses over a similarity matrix of documents against candidate labels: the dual encoder's
contrastive loss and ALC's auxiliary losses for coverage.

Every function takes ``sims`` (B, K): cosine similarities of B documents with K candidate labels
(the batch's positives and mined hard negatives), and ``positives`` (B, K) bool: which candidates
are true labels of which document. A document's other true labels are never its negatives.

ALC (Almagro et al., 2025, "Auxiliary Learning for Coverage") adds to a bi-encoder's loss two
objectives over the hardest in-batch negatives and a threshold-consistent margin loss, so that one
global similarity threshold accepts many predictions at a fixed precision. The paper's text leaves
the exact form of the two objectives open; the choices here (each measured on/off in
``benchmarks/accuracy/label_text.py``) are:

* :func:`hardest_negative_margin`: each document's weakest positive must beat its hardest negative
  by a margin (a batch-aware triplet on the extremes, so the gap a threshold needs opens everywhere);
* :func:`pair_classification_loss`: a small classifier reads the pair representation
  Gamma(q, l) = [q * l, |q - l|] (the embeddings' element-wise interactions) and tells positives from
  the hardest negatives; its gradient shapes the embeddings, and it is not used at prediction.
"""

from __future__ import annotations

import torch
from torch import nn


def multi_positive_nce(sims: torch.Tensor, positives: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE with several positives: each positive pair against the document's negatives only,
    ``-log e^(s_p/t) / (e^(s_p/t) + sum_n e^(s_n/t))``, averaged over positive pairs."""
    logits = sims / temperature
    negatives = torch.logsumexp(logits.masked_fill(positives, float("-inf")), dim=1, keepdim=True)
    per_pair = torch.logaddexp(logits, negatives) - logits
    return per_pair[positives].mean() if positives.any() else sims.sum() * 0.0


def threshold_consistent_margin(sims: torch.Tensor, positives: torch.Tensor, margin_pos: float = 0.9,
                                margin_neg: float = 0.5, weight_pos: float = 1.0,
                                weight_neg: float = 1.0) -> torch.Tensor:
    """Zhang et al. (ICLR 2024): the mean of ``m+ - s`` over positive pairs below ``m+`` plus the mean
    of ``s - m-`` over negative pairs above ``m-`` (as pytorch-metric-learning's
    ThresholdConsistentMarginLoss)."""
    low = positives & (sims < margin_pos)
    high = ~positives & (sims > margin_neg)
    loss = sims.sum() * 0.0
    if low.any():
        loss = loss + weight_pos * (margin_pos - sims[low]).mean()
    if high.any():
        loss = loss + weight_neg * (sims[high] - margin_neg).mean()
    return loss


def hardest_negative_margin(sims: torch.Tensor, positives: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean over documents with a positive and a negative of ``relu(margin - (weakest positive -
    hardest negative))``."""
    hardest = sims.masked_fill(positives, float("-inf")).max(dim=1).values
    weakest = sims.masked_fill(~positives, float("inf")).min(dim=1).values
    valid = torch.isfinite(hardest) & torch.isfinite(weakest)
    if not valid.any():
        return sims.sum() * 0.0
    return torch.relu(margin - (weakest[valid] - hardest[valid])).mean()


class PairClassifier(nn.Module):
    """``Gamma(q, l) = [q * l, |q - l|]`` -> Linear -> GELU -> Linear: one logit per pair."""

    def __init__(self, dim: int, hidden: int = 256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * dim, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, docs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([docs * labels, (docs - labels).abs()], dim=-1)).squeeze(-1)


def pair_classification_loss(classifier: PairClassifier, docs: torch.Tensor, labels: torch.Tensor,
                             sims: torch.Tensor, positives: torch.Tensor, n_hard: int) -> torch.Tensor:
    """Binary cross-entropy of ``classifier`` on every positive pair and each document's ``n_hard``
    most similar negatives (``docs`` (B, d) and ``labels`` (K, d) are the embeddings behind ``sims``)."""
    pos_doc, pos_label = positives.nonzero(as_tuple=True)
    top = sims.detach().masked_fill(positives, float("-inf")).topk(min(n_hard, sims.shape[1]), dim=1)
    valid = torch.isfinite(top.values)
    neg_doc = torch.arange(sims.shape[0], device=sims.device)[:, None].expand_as(top.indices)[valid]
    neg_label = top.indices[valid]
    doc = torch.cat([pos_doc, neg_doc])
    if doc.numel() == 0:
        return sims.sum() * 0.0
    label = torch.cat([pos_label, neg_label])
    target = torch.cat([torch.ones_like(pos_doc), torch.zeros_like(neg_doc)]).float()
    logits = classifier(docs[doc].float(), labels[label].float())
    return nn.functional.binary_cross_entropy_with_logits(logits, target)
