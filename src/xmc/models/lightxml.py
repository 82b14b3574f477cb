"""LightXML (Jiang et al., "LightXML: Transformer with Dynamic Negative Sampling for
High-Performance Extreme Multi-label Text Classification", AAAI 2021).

One transformer; its last ``n_taps`` [CLS] vectors, concatenated, feed a dense *recall* head over
label clusters and a *rank* head (a bottleneck and a label-embedding table) over the labels of the
clusters the recall head ranks highest, true clusters first while training. The negatives of the
rank head therefore come from the recall head as it learns ("dynamic negative sampling"). Loss:
BCE on clusters plus BCE on the candidate labels; score: sigmoid(label) x sigmoid(cluster).

Clusters are the leaves of the PIFA tree (balanced 2-means on TF-IDF label centroids, at most
``tree.max_leaf_size`` labels each). ``clustered=False`` is the paper's variant for small label sets:
one dense head over every label, plain BCE.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from xmc._config import Interval, Options, option
from xmc.models.neural import CascadeModel, NeuralConfig, cpu_recipe, pifa_tree
from xmc.nn.cascade import CascadeNet, FeatureSpec, LevelSpec
from xmc.nn.encoders import POOLINGS, EncoderConfig, Tap, TextEncoder
from xmc.training.trainer import OptimConfig, TrainConfig
from xmc.tree.label_tree import TreeConfig

DENSE_UP_TO = 50_000  # labels below which both configs train one dense head (the official code's choice)


@dataclass(frozen=True, kw_only=True)
class LightXMLConfig(NeuralConfig):
    tree: TreeConfig = field(default_factory=lambda: TreeConfig(max_leaf_size=100))
    clustered: bool = option(True, "recall head over label clusters + rank head (False: one head over all labels)")
    dense_up_to: int = option(0, "label sets of at most this many labels get one dense head even when clustered "
                                 "(the official code: dense up to AmazonCat-13K, clusters from Wiki-500K)",
                              Interval(int, 0, None))
    n_taps: int = option(5, "last layers whose pooled vectors are concatenated", Interval(int, 1, None))
    pooling: str = option("cls", "cls (the paper's [CLS]) or mean (the native pooling of sentence encoders)",
                          Options(POOLINGS))
    dropout: float = option(0.5, "dropout on the concatenated feature", Interval(float, 0, 1, "left"))
    hidden_dim: int = option(300, "bottleneck width of the rank head", Interval(int, 1, None))
    top_k: int = option(10, "clusters shortlisted per document", Interval(int, 1, None))
    sparse: bool = option(False, "sparse gradients for the label table (SparseAdam; for very many labels)")

    @classmethod
    def for_cpu(cls) -> LightXMLConfig:
        """Sized for EURLEX57K on 2 cores (about 85 documents a second): MiniLM's first 3 layers, 32
        tokens, word embeddings frozen, 2 epochs of 32 documents. Depth, context and epochs are what it
        gives up; in return for so few steps the heads learn at 3e-2, dropout is 0.1, and the 3 taps are
        mean-pooled (MiniLM is a mean-pooling sentence encoder: its [CLS] starts uninformative, and on
        EURLEX57K 10k documents reach dev P@1 48 mean-pooled against 6 with [CLS]). One dense head, as
        the official code uses below Wiki-500K, warmed for 10 epochs on the pretrained encoder's cached
        outputs: on EURLEX57K-titles at this budget the clustered, cold recipe reached dev P@1 73.6, the
        dense one 76.4 and the dense, warm one 79.1 (benchmarks/results/neural_recipes.md). What the
        32 tokens read matters more still: with the token budget (the encoder config's default: frequent
        words and words with a digit skipped) the same recipe reached 89.7, past the 89.0 of EUR-Lex's
        own preset (``encoder.strip="eurlex"``). Above ``dense_up_to``
        labels (as on the GPU) the labels are clustered: one dense head over 670k labels would hold
        some 257M weights."""
        return cls(**cpu_recipe(dense_up_to=DENSE_UP_TO))

    @classmethod
    def for_gpu(cls) -> LightXMLConfig:
        """The paper's recipe on all-MiniLM-L6-v2 (5 taps, 128 tokens, lr 1e-4, constant rate, SWA in
        the second half), on a budget of minutes: 6 epochs of 32 where the paper runs 20 of 16. The taps
        are mean-pooled: MiniLM's [CLS] is uninformative (measured on the CPU, see for_cpu). Label sets
        of up to 50,000 get one dense head, as in the official code and as measured better on the CPU
        (see for_cpu); larger ones are clustered."""
        return cls(encoder=EncoderConfig(max_seq_len=128), pooling="mean", dense_up_to=DENSE_UP_TO,
                   train=TrainConfig(epochs=6, batch_size=32, swa_start=4, swa_every=100,
                                     optim=OptimConfig(lr=1e-4, head_lr=1e-3, warmup=0.0, schedule="constant")))


class LightXML(CascadeModel):
    """LightXML on raw texts.

    Examples
    --------
    >>> model = LightXML(LightXMLConfig.for_cpu()).fit(texts, Y)          # doctest: +SKIP
    >>> model.predict(["Council Regulation on the import of bananas"], top_k=5)   # doctest: +SKIP
    """

    method = "lightxml"
    config_class = LightXMLConfig

    @classmethod
    def default_config(cls) -> LightXMLConfig:
        return LightXMLConfig.for_gpu() if torch.cuda.is_available() else LightXMLConfig.for_cpu()

    def _label_tree(self, texts: list[str], Y: sp.csr_matrix) -> list[sp.csr_matrix]:
        n_labels = Y.shape[1]
        if not self.config.clustered or n_labels <= self.config.dense_up_to:
            return [sp.csr_matrix(np.ones((n_labels, 1), np.float32))]
        leaves = pifa_tree(texts, Y, self.config.tfidf, self.config.tree).chain[-1]  # labels -> leaf clusters
        return [sp.csr_matrix(np.ones((leaves.shape[1], 1), np.float32)), leaves]

    def _network(self, encoder: TextEncoder, chains: list[sp.csr_matrix]) -> CascadeNet:
        cfg = self.config
        n_taps = min(cfg.n_taps, encoder.n_layers)
        taps = tuple(Tap(cfg.pooling, -1 - i) for i in range(n_taps))
        levels = [LevelSpec(chains[0].shape[0])]
        if len(chains) > 1:
            levels.append(LevelSpec(chains[1].shape[0], dim=cfg.hidden_dim, top_k=cfg.top_k, sparse=cfg.sparse))
        return CascadeNet(encoder, taps, encoder.dim, [FeatureSpec(tuple(range(n_taps)), 0, cfg.dropout)], levels,
                          chains)
