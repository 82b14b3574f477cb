"""ELIAS (Gupta et al., "ELIAS: End-to-end Learning to Index and Search in Large Output Spaces",
NeurIPS 2022; nilesh2797/ELIAS): a label index learned with the encoder and the classifiers.

The network is :class:`xmc.nn.elias.EliasNet` (cluster head, learned index, label head); this
module adds the recipe. The C = 2^ceil(log2(L / max_leaf)) clusters are the leaves of a PIFA tree
(balanced 2-means), built on TF-IDF joined with the pretrained encoder's embeddings
(``index_features``: the paper re-clusters on [BoW, dense] after 5 stage-1 epochs with the
fine-tuned encoder; here the embeddings exist before any fine-tuning, so the clusters are built
once, from the start). Stages:

1. ``warm_epochs`` over the pretrained encoder's cached outputs and ``stage1_epochs`` of joint
   training, with the tree's fixed 0/1 index (the paper's stage 1).
2. The index is rebuilt from the model's own top ``beam`` clusters of every training document
   (``Y^T M``, the ``kappa`` heaviest labels per cluster, plus each label's first cluster), and
   ``train.epochs`` of joint training learn the edge values with everything else, at their own
   rate ``edge_lr`` and without weight decay (the paper's stage 2). The label head carries over from
   stage 1 (the official code starts it afresh; on a budget of a few epochs it is kept).

The GPU config follows the paper's shape (stage 1 then stage 2, its rates, 20 clusters in the
beam, 2,000 labels shortlisted, kappa 1,000) without SWA, so nothing averages the edge values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from xmc._config import Interval, Options, option
from xmc.features.cache import cached_fit_transform
from xmc.features.join import join_embedding
from xmc.features.tfidf import TfidfFeaturizer
from xmc.models.neural import CascadeModel, NeuralConfig, cpu_recipe
from xmc.nn.elias import EliasNet
from xmc.nn.encoders import POOLINGS, EncoderConfig, Tap, TextEncoder
from xmc.nn.index import approx_adjacency
from xmc.nn.tokens import TokenizedTexts, length_sorted_batches
from xmc.training.trainer import OptimConfig, ParamGroup, Stage, TrainConfig
from xmc.training.warm import cache_taps
from xmc.tree.label_tree import LabelTree, TreeConfig
from xmc.tree.pifa import pifa
from xmc.utils.progress import progress

INDEX_FEATURES = ("tfidf", "tfidf+dense")
EDGE_INITS = ("uniform", "weights")


@dataclass(frozen=True, kw_only=True)
class EliasConfig(NeuralConfig):
    tree: TreeConfig = field(default_factory=lambda: TreeConfig(max_leaf_size=100))
    index_features: str = option("tfidf+dense", "what the clusters are built from: tfidf (PIFA), or tfidf+dense "
                                 "(PIFA on TF-IDF joined with the pretrained encoder's embeddings)",
                                 Options(INDEX_FEATURES))
    n_taps: int = option(1, "last layers whose pooled vectors are concatenated", Interval(int, 1, None))
    pooling: str = option("cls", "cls (the paper's) or mean (sentence encoders' native pooling)", Options(POOLINGS))
    dropout: float = option(0.5, "dropout on the embedding", Interval(float, 0, 1, "left"))
    label_dim: int = option(0, "width of the label classifiers (0 = the embedding's; else a projection)",
                            Interval(int, 0, None))
    alpha: float = option(10.0, "cluster scores are min(1, alpha x softmax)", Interval(float, 0, None, "neither"))
    beta: float = option(150.0, "edge weights are min(1, beta x softmax) over a cluster's slots",
                         Interval(float, 0, None, "neither"))
    kappa: int = option(1000, "label slots per cluster in the learned index", Interval(int, 1, None))
    beam: int = option(20, "clusters shortlisted per document", Interval(int, 1, None))
    shortlist: int = option(0, "labels scored by the label head per document (0 = beam x tree.max_leaf_size)",
                            Interval(int, 0, None))
    stage1_epochs: int = option(0, "joint epochs with the tree's fixed index before the index is learned",
                                Interval(int, 0, None))
    stage1_recall_weight: float = option(0.01, "weight of the recall term in stage 1", Interval(float, 0, None))
    recall_weight: float = option(0.05, "weight of the recall term in stage 2", Interval(float, 0, None))
    edge_lr: float = option(3e-4, "learning rate of the edge values (stage 2)", Interval(float, 0, None))
    sparse: bool = option(False, "sparse gradients for the label classifiers (SparseAdam; for very many labels)")
    edge_init: str = option("weights", "stage 2's first edge values: uniform (the official code's: random, so a "
                            "cluster's edges weigh alike) or weights (proportional to Y^T M)",
                            Options(EDGE_INITS))

    @classmethod
    def for_cpu(cls) -> EliasConfig:
        """LightXML's measured CPU recipe (MiniLM's first 3 layers, 32 tokens, frozen word embeddings,
        3 mean-pooled taps, dropout 0.1, heads at 3e-2, 10 warm epochs on cached encoder outputs) as
        stage 1, then 2 joint epochs learning the index. What it trades: stage 1 never fine-tunes the
        encoder (the paper's runs 20 epochs), and the beam, shortlist and kappa are cut to the
        label count (EURLEX57K: 64 clusters of about 67 labels, 8 shortlisted, 400 labels scored)."""
        return cls(**cpu_recipe(beam=8, shortlist=400, kappa=400, edge_lr=1e-2))

    @classmethod
    def for_gpu(cls) -> EliasConfig:
        """The paper's two stages on all-MiniLM-L6-v2 (128 tokens, [CLS], dropout 0.5, stage-1 rates
        1e-4 / 1e-2, stage-2 edges at 3e-4), on a budget of minutes: 4 + 6 epochs of 64 where the
        paper runs 20 + 30 of 256. The taps are mean-pooled (MiniLM's [CLS] is uninformative)."""
        return cls(encoder=EncoderConfig(max_seq_len=128), pooling="mean", stage1_epochs=4, shortlist=2000,
                   train=TrainConfig(epochs=6, batch_size=64,
                                     optim=OptimConfig(lr=1e-4, head_lr=1e-2, warmup=0.1)))


class Elias(CascadeModel):
    """ELIAS on raw texts.

    Examples
    --------
    >>> model = Elias(EliasConfig.for_cpu()).fit(texts, Y)                       # doctest: +SKIP
    >>> model.predict(["Council Regulation on the import of bananas"], top_k=5)   # doctest: +SKIP
    """

    method = "elias"
    config_class = EliasConfig

    def __init__(self, config: EliasConfig | None = None):
        super().__init__(config)
        self._fit_encoder: TextEncoder | None = None
        self._fit_tokens: TokenizedTexts | None = None
        self._fit_labels: sp.csr_matrix | None = None
        self._fit_tfidf: tuple[TfidfFeaturizer, sp.csr_matrix] | None = None

    @classmethod
    def default_config(cls) -> EliasConfig:
        return EliasConfig.for_gpu() if torch.cuda.is_available() else EliasConfig.for_cpu()

    # -- the parts CascadeModel asks for ---------------------------------------------------------
    def _prepare_encoder(self, texts: list[str]):
        encoder, digest = super()._prepare_encoder(texts)
        self._fit_encoder = encoder
        return encoder, digest

    def _train_tokens(self, texts, inputs, cache, resume) -> TokenizedTexts:
        self._fit_tokens = super()._train_tokens(texts, inputs, cache, resume)
        return self._fit_tokens

    def _taps(self, n_layers: int) -> tuple[Tap, ...]:
        return tuple(Tap(self.config.pooling, -1 - i) for i in range(min(self.config.n_taps, n_layers)))

    def _label_tree(self, texts: list[str], Y: sp.csr_matrix) -> list[sp.csr_matrix]:
        """``[ones(C, 1), leaves (L, C)]``: the clusters of the fixed index."""
        cfg = self.config
        self._fit_labels = sp.csr_matrix(Y)
        featurizer = TfidfFeaturizer(cfg.tfidf)
        X = cached_fit_transform(featurizer, texts)
        self._fit_tfidf = (featurizer, X)  # ELIAS++'s ranker reads it too
        if cfg.index_features == "tfidf+dense":
            X = join_embedding(X, self._pretrained_embedding())
        leaves = sp.csr_matrix(LabelTree.build(pifa(X, Y), cfg.tree).chain[-1])
        return [sp.csr_matrix(np.ones((leaves.shape[1], 1), np.float32)), leaves]

    def _pretrained_embedding(self) -> np.ndarray:
        """The training texts' embeddings from the pretrained encoder (its taps, concatenated), cached
        for the warm stage and for building the index while the encoder has not moved."""
        encoder = self._fit_encoder
        self._taps_cache = {"taps": cache_taps(encoder, self._taps(encoder.n_layers), self._fit_tokens, 128,
                                               self.device, self.config.train.amp)}
        return self._taps_cache["taps"].float().flatten(1).cpu().numpy()

    def _network(self, encoder: TextEncoder, chains: list[sp.csr_matrix]) -> EliasNet:
        cfg = self.config
        leaves = chains[-1]
        shortlist = cfg.shortlist or cfg.beam * cfg.tree.max_leaf_size
        net = EliasNet(encoder, self._taps(encoder.n_layers), encoder.dim, leaves.shape[1], leaves.shape[0],
                       kappa=min(cfg.kappa, leaves.shape[0]), beam=cfg.beam, shortlist=shortlist, alpha=cfg.alpha,
                       beta=cfg.beta, label_dim=cfg.label_dim, dropout=cfg.dropout, sparse=cfg.sparse)
        net.index.assign(leaves)
        net.recall_weight = cfg.stage1_recall_weight
        return net

    # -- the two stages ----------------------------------------------------------------------------
    def _stages(self, loss, batches, n_batches: int, evaluate) -> list[Stage]:
        cfg = self.config
        t = cfg.train

        def stage1_loss(batch):
            self.net_.recall_weight = cfg.stage1_recall_weight
            return loss(batch)

        def stage2_loss(batch):
            if not self.net_.index.is_learned:
                self._learn_index()
            self.net_.recall_weight = cfg.recall_weight
            return loss(batch)

        common = {"batches": batches, "n_batches": n_batches, "warmup": t.optim.warmup, "schedule": t.optim.schedule,
                  "clip": t.optim.clip, "evaluate": evaluate}
        stages = [Stage(name="elias-1", loss=stage1_loss, groups=self._groups, epochs=cfg.stage1_epochs, **common)]
        stages.append(Stage(name="elias-2", loss=stage2_loss, groups=self._stage2_groups, epochs=t.epochs,
                            on_epoch_start=lambda epoch: self.net_.index.refresh_parents(), **common))
        return stages if cfg.stage1_epochs else stages[1:]

    def _stage2_groups(self) -> list[ParamGroup]:
        return [*self._groups(), ParamGroup([self.net_.index.edge_logits], self.config.edge_lr, 0.0)]

    @torch.no_grad()
    def _learn_index(self) -> None:
        """Stage 2's index, from the stage-1 model's own top ``beam`` clusters of every training text."""
        net, cfg = self.net_, self.config
        was_training = net.training
        net.eval()
        cached = self._taps_cache.get("taps") if self._taps_cache and not cfg.stage1_epochs else None
        tokens, n = self._fit_tokens, len(self._fit_tokens)
        beam = min(cfg.beam, net.index.n_clusters)
        inds, vals = np.zeros((n, beam), np.int64), np.zeros((n, beam), np.float32)
        for rows in progress(length_sorted_batches(tokens.lengths, 256), desc="index: match training texts",
                             unit="batch"):
            if cached is not None:  # the encoder has not moved since these were computed
                x = net.feature(None, None, list(cached[torch.from_numpy(rows).to(cached.device)].float().unbind(1)))
            else:
                ids, mask = tokens.batch(rows)
                x = net.feature(ids.to(self.device), mask.to(self.device))
            top = torch.topk(net.cluster_scores(x), beam, dim=1)
            inds[rows], vals[rows] = top.indices.cpu().numpy(), top.values.cpu().numpy()
        M = sp.csr_matrix((vals.ravel(), inds.ravel(), np.arange(0, n * beam + 1, beam)),
                          shape=(n, net.index.n_clusters))
        A = approx_adjacency(M, self._fit_labels, net.index.kappa, keep=self.chains_[-1])
        net.index.set_adjacency(A, cfg.edge_init, torch.Generator().manual_seed(cfg.train.seed))
        self._taps_cache = None
        net.train(was_training)

    # -- what ELIAS reports beyond predictions -----------------------------------------------------
    def multi_parent_labels(self) -> int:
        """How many labels hang under more than one cluster (with a nonzero edge) in the index."""
        self._check_fitted()
        index = self.net_.index
        labels, weights = index.slot_weights(torch.arange(index.n_clusters, device=index.slots.device))
        keep = (labels != index.n_labels) & (weights > 0)
        counts = torch.bincount(labels[keep], minlength=index.n_labels + 1)[: index.n_labels]
        return int((counts > 1).sum())

    def shortlist_recall(self, texts: list[str], Y, beam: int | None = None) -> float:
        """Recall of the true labels in the label shortlist before ranking (the label head's input)."""
        self._check_fitted()
        Y = sp.csr_matrix(Y)
        tokens = self._tokenize(texts)
        device = self._placed_net()
        hits = 0
        for rows in length_sorted_batches(tokens.lengths, self.config.predict.batch_size):
            ids, mask = tokens.batch(rows)
            cand = self.net_.candidates(ids.to(device), mask.to(device), beam).cpu().numpy()
            for r, row in enumerate(rows):
                truth = Y.indices[Y.indptr[row]:Y.indptr[row + 1]]
                hits += np.isin(truth, cand[r]).sum()
        return float(hits) / max(Y.nnz, 1)

    def _load_arrays(self, folder: Path, shapes) -> None:
        super()._load_arrays(folder, shapes)
        self.net_.recall_weight = self.config.recall_weight
