"""Linear heads scored on a shortlist, and the losses XR-Transformer trains them with."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

LOSSES = ("squared_hinge", "bce")


class ShortlistHead(nn.Module):
    """One linear scorer per node of a tree level; a batch is scored only on the union of its
    documents' shortlists, so a step costs O(batch x shortlist), not O(batch x nodes)."""

    def __init__(self, n_nodes: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_nodes, dim))
        self.bias = nn.Parameter(torch.zeros(n_nodes))

    @property
    def n_nodes(self) -> int:
        return self.weight.shape[0]

    def forward(self, emb: torch.Tensor, nodes: torch.Tensor | None = None) -> torch.Tensor:
        if nodes is None:
            return emb @ self.weight.T + self.bias
        return emb @ self.weight[nodes].T + self.bias[nodes]

    @torch.no_grad()
    def inherit(self, parent: ShortlistHead, parent_of: torch.Tensor) -> None:
        """Start every node from its parent's weights (the paper's ``inherit`` bootstrap)."""
        self.weight.copy_(parent.weight[parent_of])
        self.bias.copy_(parent.bias[parent_of])


def save_heads(path: Path, heads: list[ShortlistHead]) -> None:
    """Every level's head in one safetensors file (``"<level>.weight"``, ``"<level>.bias"``)."""
    tensors = {}
    for t, head in enumerate(heads):
        tensors[f"{t}.weight"] = head.weight.detach().cpu().contiguous()
        tensors[f"{t}.bias"] = head.bias.detach().cpu().contiguous()
    save_file(tensors, str(path))


def load_heads(path: Path, n_levels: int, device: torch.device | str = "cpu") -> list[ShortlistHead]:
    tensors = load_file(str(path), device=str(device))
    heads = []
    for t in range(n_levels):
        head = ShortlistHead(*tensors[f"{t}.weight"].shape).to(device)
        with torch.no_grad():
            head.weight.copy_(tensors[f"{t}.weight"])
            head.bias.copy_(tensors[f"{t}.bias"])
        heads.append(head)
    return heads


def shortlist_loss(scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, loss: str,
                   pos_weight: float = 1.0) -> torch.Tensor:
    """Mean loss over the shortlisted (document, node) pairs; ``targets`` in {0, 1}."""
    scores = scores.float()
    weights = mask * (1.0 + (pos_weight - 1.0) * targets)
    if loss == "squared_hinge":
        signs = 2.0 * targets - 1.0
        per_pair = F.relu(1.0 - signs * scores).pow(2)
    elif loss == "bce":
        per_pair = F.binary_cross_entropy_with_logits(scores, targets, reduction="none")
    else:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    return (per_pair * weights).sum() / mask.sum().clamp_min(1.0)
