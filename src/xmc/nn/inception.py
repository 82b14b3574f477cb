"""The InceptionXML encoder (Kharbanda et al., SIGIR 2023): a CNN over word embeddings that
convolves along the *embedding* axis, not along the words, so it does not depend on word order.

``(B, T)`` word ids, padded or cut to ``T`` (32), become:

1. word embeddings ``(B, T, D)``, *enhanced* by two cheap self-attention passes, one across the
   tokens and one across the embedding dimensions (added back residually): parameter-free softmax
   attention at full weight, or (``learned``) the official code's learned attention whose weight
   starts at 0 (:class:`LearnedEnhancement`);
2. a 1x1 convolution mapping the ``T`` positions to ``channels`` (32) channels, ``(B, 32, D)``;
3. parallel 1-D convolutions along the embedding axis with kernels 4, 8 and 16, stride 4 and
   circular padding, concatenated to 96 channels;
4. a final convolution (kernel 16, stride 4), flattened.

Every block ends in GELU, BatchNorm and dropout. It implements the encoder interface of the cascade
(``forward(ids, mask, taps)`` returns one feature per tap), so SyncXML and InceptionXML reuse the
cascade network and the one training loop unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class _Block(nn.Module):
    """Conv1d -> GELU -> BatchNorm -> dropout."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, circular: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        padding = kernel // 2 if circular else 0
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=padding,
                              padding_mode="circular" if circular else "zeros")
        self.norm = nn.BatchNorm1d(c_out)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.norm(nn.functional.gelu(self.conv(x))))


class SimpleSelfAttention(nn.Module):
    """``x + gamma (x y^T)(W x)`` over ``(B, C, N)``: the official code's enhancement (fastai's
    SimpleSelfAttention): ``W`` a spectral-normalised 1x1 convolution, no softmax, and ``gamma``
    starting at 0, so training starts from the plain embeddings and learns how much to add."""

    def __init__(self, channels: int):
        super().__init__()
        conv = nn.Conv1d(channels, channels, 1, bias=False)
        nn.init.xavier_normal_(conv.weight)
        self.conv = nn.utils.parametrizations.spectral_norm(conv)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        y = x if y is None else y
        return x + self.gamma * torch.bmm(torch.bmm(x, y.transpose(1, 2)), self.conv(x))  # (C,C)(C,N): O(N C^2)


class LearnedEnhancement(nn.Module):
    """Embedding dropout, then a learned attention across the tokens and one across the embedding
    dimensions (the second reading the first's output against the dropped-out embeddings), as the
    official ``SelfAttentionModule``."""

    def __init__(self, seq_len: int, dim: int, dropout: float = 0.25):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.over_tokens = SimpleSelfAttention(seq_len)
        self.over_dims = SimpleSelfAttention(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D)
        x = self.dropout(x)
        h = self.over_tokens(x).transpose(1, 2)  # (B, D, T)
        return self.over_dims(h, x.transpose(1, 2)).transpose(1, 2)


class InceptionEncoder(nn.Module):
    def __init__(self, table: torch.Tensor, seq_len: int = 32, channels: int = 32, kernels=(4, 8, 16),
                 dropout: float = 0.2, sparse: bool = False, attention: bool = True, learned: bool = False):
        super().__init__()
        vocab, dim = table.shape
        self.seq_len, self.emb_dim, self.attention = seq_len, dim, attention
        self.learned = LearnedEnhancement(seq_len, dim) if attention and learned else None
        self.embedding = nn.Embedding(vocab, dim, padding_idx=0, sparse=sparse)
        with torch.no_grad():
            self.embedding.weight.copy_(torch.as_tensor(table))
        self.positions = _Block(seq_len, channels, 1, dropout=dropout)
        self.parallel = nn.ModuleList(_Block(channels, channels, k, stride=4, circular=True, dropout=dropout)
                                      for k in kernels)
        self.final = _Block(channels * len(kernels), channels, 16, stride=4, dropout=dropout)
        with torch.no_grad():
            self.dim = int(self._trunk(torch.zeros(2, seq_len, dim)).shape[1])

    @property
    def n_layers(self) -> int:
        return 1

    def _trunk(self, x: torch.Tensor) -> torch.Tensor:
        x = self.positions(x)  # (B, T, D): the T positions are the input channels -> (B, C, D)
        widths = [block(x) for block in self.parallel]
        width = min(w.shape[2] for w in widths)
        x = torch.cat([w[:, :, :width] for w in widths], dim=1)
        return self.final(x).flatten(1)

    def enhance(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x + attention across tokens + attention across embedding dimensions."""
        m = mask.unsqueeze(-1).to(x.dtype)
        x = x * m
        # the scales go on the (B, T, D) operands: dividing the (B, D, D) product cost a tenth of a step
        scores = x @ (x / math.sqrt(self.emb_dim)).transpose(1, 2)  # (B, T, T)
        scores = scores.masked_fill(mask.unsqueeze(1) == 0, -1e4)
        over_tokens = torch.softmax(scores, dim=-1) @ x
        over_dims = x @ torch.softmax(x.transpose(1, 2) @ (x / math.sqrt(self.seq_len)), dim=-1)  # (B, T, D)
        return (x + over_tokens + over_dims) * m

    def pad(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """Ids and mask cut or zero-padded to exactly ``seq_len`` positions (the 1x1 convolution's channels)."""
        n = input_ids.shape[1]
        if n >= self.seq_len:
            return input_ids[:, : self.seq_len], attention_mask[:, : self.seq_len]
        pad = self.seq_len - n
        return (nn.functional.pad(input_ids, (0, pad), value=0), nn.functional.pad(attention_mask, (0, pad), value=0))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, taps=None) -> list[torch.Tensor]:
        ids, mask = self.pad(input_ids, attention_mask)
        x = self.embedding(ids)
        if self.learned is not None:
            x = self.learned(x * mask.unsqueeze(-1).to(x.dtype))
        elif self.attention:
            x = self.enhance(x, mask)
        feature = self._trunk(x)
        return [feature] * (len(taps) if taps else 1)
