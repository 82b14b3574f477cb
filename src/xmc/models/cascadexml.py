"""CascadeXML (Kharbanda et al., "CascadeXML: Rethinking Transformers for End-to-end Multi-resolution
Training in Extreme Multi-label Classification", NeurIPS 2022).

One transformer pass feeds every level of a label tree from a different depth: the coarsest level
reads early layers (the first two taps concatenated and projected back to the hidden size), the
labels read the last layer. Level 0 is scored densely; each later level scores the children of the
top-k nodes of the level above (true parents added while training). Loss: the sum of every level's
BCE; score: each node's probability times its parent's path score (``weighted``), its parent's
own probability (``parent``, the official code's) or its own (``level``). The heads learn ten times
as fast as the encoder with a tenth of its weight decay (GPU config), on a one-cycle schedule.

The tree is the PIFA tree (balanced 2-means on TF-IDF label centroids; the paper's ECLARE-style
graph smoothing is not built), cut to its levels with at least ``min_level_size`` nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from xmc._config import Interval, Options, option
from xmc.exceptions import InvalidConfigError
from xmc.models.neural import CascadeModel, NeuralConfig, PredictConfig, pifa_tree
from xmc.nn.cascade import CascadeNet, FeatureSpec, LevelSpec
from xmc.nn.encoders import POOLINGS, EncoderConfig, Tap, TextEncoder
from xmc.training.trainer import OptimConfig, TrainConfig
from xmc.tree.label_tree import TreeConfig


@dataclass(frozen=True, kw_only=True)
class CascadeXMLConfig(NeuralConfig):
    tree: TreeConfig = field(default_factory=lambda: TreeConfig(n_splits=8, max_leaf_size=8, min_codes=64))
    taps: tuple[str, ...] = option((), "one tap per level, coarse to fine; a+b concatenates (e.g. cls@2+cls@3,"
                                       "cls@5,cls@6); empty = spread over the layers", )
    level_dropout: tuple[float, ...] = option((0.2, 0.25, 0.4, 0.5), "dropout of each level's feature (the last "
                                              "value repeats)", Interval(float, 0, 1, "left"))
    top_k: tuple[int, ...] = option((16, 32), "parents shortlisted for each level below the first (the last "
                                    "value repeats)", Interval(int, 1, None))
    min_level_size: int = option(32, "tree levels with fewer nodes are not trained", Interval(int, 1, None))
    pooling: str = option("cls", "pooling of the spread taps: cls (the paper's) or mean (sentence encoders')",
                          Options(POOLINGS))

    @classmethod
    def for_cpu(cls) -> CascadeXMLConfig:
        """Sized for all of EURLEX57K within 20 minutes on 2 cores (about 100 documents a second): MiniLM's
        first 3 layers, 32 tokens, word embeddings frozen, 2 epochs of 32 documents, one-cycle; for so few
        steps the heads learn at 3e-2 (150x the encoder), level dropout is 0.1 and the taps are
        mean-pooled (MiniLM's native pooling). The heads are warmed for 10 epochs on the pretrained
        encoder's cached taps, a label is scored by its probability times its parent's own (the official
        code's) and the heads' weight decay is a tenth of the encoder's: on EURLEX57K-titles at this
        budget the three together reached dev P@1 76.2 against 74.4 without them, in 19 minutes; the
        token budget (the encoder config's default: frequent words and words with a digit skipped) took
        it to 89.2 in 15 minutes, past the 88.2 of EUR-Lex's own preset (``encoder.strip="eurlex"``)
        (benchmarks/results/neural_recipes.md)."""
        return cls(encoder=EncoderConfig(max_seq_len=32, n_layers=3), pooling="mean", level_dropout=(0.1,),
                   freeze_embeddings=True, warm_epochs=10, predict=PredictConfig(scheme="parent"),
                   train=TrainConfig(epochs=2, batch_size=32, eval_docs=1000,
                                     optim=OptimConfig(lr=2e-4, head_lr=3e-2, warmup=0.1, schedule="one_cycle",
                                                       weight_decay=0.05, head_decay=0.1)))

    @classmethod
    def for_gpu(cls) -> CascadeXMLConfig:
        """The paper's recipe on all-MiniLM-L6-v2 (128 tokens, batch 64, lr 1e-4, heads 1e-3 with a tenth of
        the weight decay, one-cycle; a label scored by its probability times its parent's), on a budget of
        minutes: 6 epochs where the paper runs 15. The taps are mean-pooled (MiniLM's native pooling)."""
        return cls(encoder=EncoderConfig(max_seq_len=128), pooling="mean", predict=PredictConfig(scheme="parent"),
                   train=TrainConfig(epochs=6, batch_size=64,
                                     optim=OptimConfig(lr=1e-4, head_lr=1e-3, warmup=0.1, schedule="one_cycle",
                                                       weight_decay=0.05, head_decay=0.1)))


def spread_taps(n_layers: int, n_levels: int, pooling: str = "cls") -> list[list[Tap]]:
    """The paper's layout on any depth: the labels read the last layer, each level above reads two
    layers earlier, and the first level concatenates its layer with the one below (BERT-base, four
    levels: 5+6, 8, 10, 12). A shallow encoder spreads the levels evenly over its layers instead."""
    layers = [n_layers - 2 * (n_levels - 1 - t) for t in range(n_levels)]
    if layers[0] < 1:
        layers = [max(1, round(n_layers * (t + 1) / n_levels)) for t in range(n_levels)]
    spec = [[Tap(pooling, layer)] for layer in layers]
    if layers[0] > 1:
        spec[0] = [Tap(pooling, layers[0] - 1), Tap(pooling, layers[0])]
    return spec


class CascadeXML(CascadeModel):
    """CascadeXML on raw texts.

    Examples
    --------
    >>> model = CascadeXML(CascadeXMLConfig.for_cpu()).fit(texts, Y)          # doctest: +SKIP
    """

    method = "cascadexml"
    config_class = CascadeXMLConfig

    @classmethod
    def default_config(cls) -> CascadeXMLConfig:
        return CascadeXMLConfig.for_gpu() if torch.cuda.is_available() else CascadeXMLConfig.for_cpu()

    def _label_tree(self, texts: list[str], Y: sp.csr_matrix) -> list[sp.csr_matrix]:
        tree = pifa_tree(texts, Y, self.config.tfidf, self.config.tree)
        first = next((t for t, n in enumerate(tree.level_sizes) if n >= self.config.min_level_size), tree.depth - 1)
        chains = [sp.csr_matrix(c) for c in tree.chain[first:]]
        chains[0] = sp.csr_matrix(np.ones((chains[0].shape[0], 1), np.float32))  # the first level hangs from a root
        return chains

    def _level_taps(self, encoder: TextEncoder, n_levels: int) -> list[list[Tap]]:
        if not self.config.taps:
            return spread_taps(encoder.n_layers, n_levels, self.config.pooling)
        if len(self.config.taps) != n_levels:
            raise InvalidConfigError(f"taps lists {len(self.config.taps)} levels but the tree has {n_levels}")
        return [[Tap.parse(part) for part in spec.split("+")] for spec in self.config.taps]

    def _network(self, encoder: TextEncoder, chains: list[sp.csr_matrix]) -> CascadeNet:
        cfg = self.config
        per_level = self._level_taps(encoder, len(chains))
        taps = sorted({tap for level in per_level for tap in level}, key=lambda tap: (tap.layer, tap.pooling))
        features, levels = [], []
        for t, level_taps in enumerate(per_level):
            dropout = cfg.level_dropout[min(t, len(cfg.level_dropout) - 1)]
            project = encoder.dim if len(level_taps) > 1 else 0
            features.append(FeatureSpec(tuple(taps.index(tap) for tap in level_taps), project, dropout))
            top_k = cfg.top_k[min(t - 1, len(cfg.top_k) - 1)] if t else 0
            levels.append(LevelSpec(chains[t].shape[0], feature=t, top_k=top_k))
        return CascadeNet(encoder, tuple(taps), encoder.dim, features, levels, chains)
