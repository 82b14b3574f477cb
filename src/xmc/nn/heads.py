"""Heads: a dense head over every output, a level head scored on the union of a batch's shortlists
(XR-Transformer), a candidate head scored on each document's own candidates (LightXML, CascadeXML,
SyncXML: an embedding table with a padding row, an optional bottleneck or hidden block, and sparse
gradients for SparseAdam at large label counts), and the losses they are trained with."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from xmc.exceptions import ModelFormatError

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


class DenseHead(nn.Module):
    """A linear layer over every output (the clusters of a meta level, or all labels of a small set),
    with an optional hidden block in front (SyncXML's meta head)."""

    def __init__(self, in_dim: int, n_out: int, hidden: int = 0, dropout: float = 0.0, residual: bool = False,
                 out_dropout: float = 0.0):
        super().__init__()
        self.block = HiddenBlock(in_dim, hidden, dropout, residual, out_dropout) if hidden else None
        self.linear = nn.Linear(hidden or in_dim, n_out)

    @property
    def n_out(self) -> int:
        return self.linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.block(x) if self.block is not None else x)


class HiddenBlock(nn.Module):
    """Dropout, a linear layer and GELU: the block SyncXML puts in front of both of its heads.
    ``residual``: the official InceptionXML's block instead, ``x + BatchNorm(GELU(linear(dropout(x))))``
    (so ``dim`` must be ``in_dim``), then ``out_dropout`` in front of the classifier."""

    def __init__(self, in_dim: int, dim: int, dropout: float = 0.0, residual: bool = False, out_dropout: float = 0.0):
        super().__init__()
        if residual and dim != in_dim:
            raise ValueError(f"a residual block keeps the width: {in_dim} in, {dim} out")
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_dim, dim)
        self.norm = nn.BatchNorm1d(dim) if residual else None
        self.out_dropout = nn.Dropout(out_dropout) if residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.gelu(self.linear(self.dropout(x)))
        if self.norm is None:
            return h
        return self.out_dropout(x + self.norm(h))


class CandidateHead(nn.Module):
    """Scores each document's own candidates ``(B, K)`` with a row of an embedding table per output.

    ``in_dim != dim`` puts a linear bottleneck in front (LightXML's ``hidden_dim``), ``hidden`` a
    :class:`HiddenBlock` (SyncXML). Row ``n_out`` is a padding row that scores 0 and never learns, so
    candidate lists of different lengths share one padded tensor. ``sparse`` makes the table's
    gradients sparse (only the rows a batch touched), for ``torch.optim.SparseAdam``.
    """

    def __init__(self, n_out: int, dim: int, in_dim: int | None = None, hidden: int = 0, dropout: float = 0.0,
                 sparse: bool = False, residual: bool = False, out_dropout: float = 0.0):
        super().__init__()
        in_dim = in_dim or dim
        self.block = HiddenBlock(in_dim, hidden, dropout, residual, out_dropout) if hidden else None
        width = hidden or in_dim
        self.bottleneck = nn.Linear(width, dim) if width != dim else None
        self.table = nn.Embedding(n_out + 1, dim, padding_idx=n_out, sparse=sparse)
        self.bias = nn.Embedding(n_out + 1, 1, padding_idx=n_out, sparse=sparse)
        with torch.no_grad():
            nn.init.normal_(self.table.weight, std=dim**-0.5)
            self.table.weight[n_out].zero_()
            self.bias.weight.zero_()

    @property
    def n_out(self) -> int:
        return self.table.num_embeddings - 1

    def project(self, x: torch.Tensor) -> torch.Tensor:
        if self.block is not None:
            x = self.block(x)
        return self.bottleneck(x) if self.bottleneck is not None else x

    def score_all(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, n_out + 1)`` scores of every output (the last column, the padding row, scores 0): one
        matrix product, cheaper than :meth:`forward`'s gathers when the candidates are many."""
        return self.project(x) @ self.table.weight.T + self.bias.weight.T

    def forward(self, x: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """``(B, K)`` scores of ``candidates`` (indices, ``n_out`` for padding) for the rows of ``x``."""
        z = self.project(x)
        rows = self.table(candidates)  # (B, K, dim)
        return torch.bmm(rows, z.unsqueeze(-1)).squeeze(-1) + self.bias(candidates).squeeze(-1)


def masked_bce(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean binary cross-entropy over the entries where ``mask`` is set (all when it is None)."""
    per = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")
    if mask is None:
        return per.mean()
    mask = mask.to(per.dtype)
    return (per * mask).sum() / mask.sum().clamp_min(1.0)


def save_heads(path: Path, heads: list[ShortlistHead]) -> None:
    """Every level's head in one safetensors file (``"<level>.weight"``, ``"<level>.bias"``)."""
    tensors = {}
    for t, head in enumerate(heads):
        tensors[f"{t}.weight"] = head.weight.detach().cpu().contiguous()
        tensors[f"{t}.bias"] = head.bias.detach().cpu().contiguous()
    save_file(tensors, str(path))


def load_heads(path: Path, shapes: list[tuple[int, int]], device: torch.device | str = "cpu") -> list[ShortlistHead]:
    """Heads saved by :func:`save_heads`, checked against the expected ``(n_nodes, dim)`` per level."""
    tensors = load_tensors(path, {f"{t}.{part}": (n, dim) if part == "weight" else (n,)
                                  for t, (n, dim) in enumerate(shapes) for part in ("weight", "bias")}, device)
    heads = []
    for t in range(len(shapes)):
        head = ShortlistHead(*tensors[f"{t}.weight"].shape).to(device)
        with torch.no_grad():
            head.weight.copy_(tensors[f"{t}.weight"])
            head.bias.copy_(tensors[f"{t}.bias"])
        heads.append(head)
    return heads


def load_tensors(path: Path, expect: dict[str, tuple[int, ...]], device: torch.device | str = "cpu",
                 exact: bool = True) -> dict[str, torch.Tensor]:
    """A safetensors file whose tensors have the expected names and shapes, finite floats; anything
    else is a :class:`ModelFormatError` naming the file (``exact``: no other tensors either)."""
    from safetensors import SafetensorError

    try:
        tensors = load_file(str(path), device=str(device))
    except FileNotFoundError:
        raise ModelFormatError(f"missing file {path}") from None
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelFormatError(f"cannot read tensors {path}: {exc}") from None
    missing = sorted(set(expect) - set(tensors))
    extra = sorted(set(tensors) - set(expect)) if exact else []
    if missing or extra:
        raise ModelFormatError(f"{path}: missing tensors {missing}, unexpected tensors {extra[:5]}")
    for name, shape in expect.items():
        t = tensors[name]
        if tuple(t.shape) != tuple(shape) or (t.is_floating_point() and not bool(torch.isfinite(t).all())):
            raise ModelFormatError(f"{path}: tensor {name!r} is {t.dtype} {tuple(t.shape)}, expected finite values "
                                   f"of shape {tuple(shape)}")
    return tensors


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
