"""XR-Transformer (Zhang et al., "Fast Multi-Resolution Transformer Fine-tuning for Extreme
Multi-label Text Classification", NeurIPS 2021): a transformer fine-tuned coarse to fine over a
PIFA label tree, then an XR-Linear ranker on [TF-IDF, normalised fine-tuned embeddings].

Stages of ``fit`` (their seconds land in ``fit_seconds_``):

1. ``tfidf``: word n-gram TF-IDF of the texts (the sparse half of the ranker's input).
2. ``tokenise``: token ids, once, truncated to ``encoder.max_seq_len``.
3. ``matcher_tree``: PIFA on TF-IDF, balanced hierarchical 2-means; its levels are the
   fine-tuning resolutions (coarse to fine, the labels last).
4. ``finetune``: :class:`xmc.training.finetune.Finetuner` over those levels.
5. ``embed``: the fine-tuned encoder embeds every training document.
6. ``ranker``: PIFA on [TF-IDF, embeddings] re-clusters the labels, and XR-Linear is trained on
   [TF-IDF, L2-normalised embeddings]. Prediction is beam search in that ranker, as in the paper.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from xmc._config import Config, Interval, option
from xmc.exceptions import ModelFormatError, XMCError
from xmc.features.cache import cached_fit_transform, cached_transform
from xmc.features.join import join_embedding
from xmc.features.tfidf import TfidfConfig, TfidfFeaturizer
from xmc.linear.ranker import LinearConfig
from xmc.models.base import XMCModel, int_list, manifest_field
from xmc.models.xr_linear import XRLinear, XRLinearConfig
from xmc.nn.device import place, resolve_device
from xmc.nn.embed import embed
from xmc.nn.encoders import EncoderConfig, TextEncoder, load_pretrained, resolve_encoder, save_encoder
from xmc.nn.fast_cpu import is_quantized, onnx_int8_encoder, refuse_quantized
from xmc.nn.heads import ShortlistHead, load_heads, save_heads
from xmc.nn.tokens import ReadsTexts
from xmc.training.checkpoints import RunCheckpoints
from xmc.training.finetune import FinetuneConfig, Finetuner
from xmc.tree.label_tree import LabelTree, TreeConfig
from xmc.tree.pifa import pifa
from xmc.utils.fingerprint import digest_folder, digest_matrix, digest_texts
from xmc.utils.rng import random_subset
from xmc.utils.validation import check_is_fitted, check_labels, check_texts

log = logging.getLogger(__name__)


# The paper's Eurlex ranker costs negatives twice as much as positives (Cp/Cn 1/2) and prunes
# weights below 1e-3; 0.01 keeps most of that gain at 54M weights on EURLEX57K instead of PECOS's
# default 0.1 (4.6M): dev P@1 +0.6, P@5 +0.7, prediction about 2 ms/doc more (see
# benchmarks/results/xr_transformer.md).
PAPER_RANKER = LinearConfig(Cn=2.0, threshold=0.01)


@dataclass(frozen=True, kw_only=True)
class XRTransformerConfig(Config):
    tfidf: TfidfConfig = field(default_factory=TfidfConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    matcher_tree: TreeConfig = field(default_factory=lambda: TreeConfig(n_splits=16, max_leaf_size=16, min_codes=32))
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    ranker: XRLinearConfig = field(default_factory=lambda: XRLinearConfig(ranker=PAPER_RANKER))
    recluster: bool = option(True, "re-cluster the ranker's labels on [TF-IDF, embeddings] (else on TF-IDF)")
    embedding_scale: float = option(1.0, "norm of the embedding block in the ranker's input (TF-IDF rows have norm 1)",
                                    Interval(float, 0, None, "neither"))

    @classmethod
    def for_cpu(cls) -> XRTransformerConfig:
        """Sized to train on all of EURLEX57K (45k documents) within 20 minutes on 2 cores (13-15 measured):
        the first 3 of MiniLM's 6 layers, 32 tokens (usually part of a title), word embeddings frozen
        and 900 steps of 32 documents in all (under one epoch). It gives up depth and context for time."""
        return cls(encoder=EncoderConfig(max_seq_len=32, n_layers=3),
                   finetune=FinetuneConfig(steps=(150, 250, 500), freeze_embeddings=True, lr=1e-4))

    @classmethod
    def for_gpu(cls) -> XRTransformerConfig:
        """The paper's Eurlex-4K schedule: the whole encoder, 128 tokens, 600/800/1,200 steps of 32."""
        return cls(encoder=EncoderConfig(max_seq_len=128), finetune=FinetuneConfig(steps=(600, 800, 1200), lr=5e-5))


class XRTransformer(ReadsTexts, XMCModel):
    """XR-Transformer on raw texts.

    Examples
    --------
    >>> model = XRTransformer(XRTransformerConfig.for_cpu()).fit(texts, Y)   # doctest: +SKIP
    >>> model.predict(["Council Regulation on the import of bananas"], top_k=5)   # doctest: +SKIP
    """

    method = "xr-transformer"
    config_class = XRTransformerConfig
    input_kind = "texts"

    def __init__(self, config: XRTransformerConfig | None = None):
        super().__init__(config)
        self.tfidf_: TfidfFeaturizer | None = None
        self.tokenizer_ = None
        self.encoder_: TextEncoder | None = None
        self.matcher_tree_: LabelTree | None = None
        self.heads_: list[ShortlistHead] = []
        self.ranker_: XRLinear | None = None
        self.fit_seconds_: dict[str, float] = {}
        self.level_logs_: list[dict[str, Any]] = []

    @classmethod
    def default_config(cls) -> XRTransformerConfig:
        return XRTransformerConfig.for_gpu() if torch.cuda.is_available() else XRTransformerConfig.for_cpu()

    @property
    def device(self) -> torch.device:
        return resolve_device(self.config.finetune.device)

    def fit(self, texts: list[str], Y, *, eval_set: tuple[list[str], sp.csr_matrix] | None = None,
            checkpoint_dir: str | Path | None = None, resume: bool = False,
            on_level_end: Callable[[int], None] | None = None) -> XRTransformer:
        """Train on ``texts`` and labels ``Y``; ``eval_set`` (texts, labels) only feeds the per-level log.

        With ``checkpoint_dir``, the token ids and every finished level are saved there, and
        ``resume=True`` continues from the last finished level (same result as an uninterrupted run).
        """
        texts = check_texts(texts, self.method)
        Y = check_labels(Y, len(texts))
        cfg, seconds = self.config, {}
        folder = resolve_encoder(cfg.encoder.name)
        self.tokenizer_, transformer = load_pretrained(folder, cfg.encoder.n_layers)
        self.encoder_ = TextEncoder(transformer, cfg.encoder.pooling)

        t0 = time.perf_counter()
        self.tfidf_ = TfidfFeaturizer(cfg.tfidf)
        X = cached_fit_transform(self.tfidf_, texts)
        seconds["tfidf"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        inputs = {"texts": digest_texts(texts), "labels": digest_matrix(Y), "encoder": digest_folder(folder)}
        self.learn_skip_rule(texts)
        cache = Path(checkpoint_dir) / "tokens.npz" if checkpoint_dir is not None else None
        tokens = self.text_tokenizer().cached(texts, inputs, cache, resume)
        eval_tokens = None
        if eval_set is not None and cfg.finetune.eval_docs:
            rows = random_subset(len(eval_set[0]), cfg.finetune.eval_docs, cfg.finetune.seed)
            eval_texts = [eval_set[0][i] for i in rows]
            eval_tokens = (self.text_tokenizer()(eval_texts, desc="tokenise dev"), sp.csr_matrix(eval_set[1])[rows])
        seconds["tokenise"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        self.matcher_tree_ = LabelTree.build(pifa(X, Y), cfg.matcher_tree)
        seconds["matcher_tree"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        checkpoints = None
        if checkpoint_dir is not None:
            checkpoints = RunCheckpoints(checkpoint_dir, self._fingerprint(inputs), resume)
        tuner = Finetuner(self.encoder_, self.matcher_tree_, cfg.finetune, cfg.encoder.dropout, checkpoints)
        self.heads_ = tuner.run(tokens, Y, eval_tokens, on_level_end)
        self.level_logs_ = [dataclasses.asdict(e) for e in tuner.logs]
        seconds["finetune"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        emb = embed(self.encoder_, tokens, cfg.finetune.embed_batch_size, self.device, amp=cfg.finetune.amp,
                    desc="embed training texts")
        seconds["embed"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        features = join_embedding(X, emb, cfg.embedding_scale)
        # PIFA on the ranker's own input, as PECOS does: raw pooled embeddings have norms near 5
        # against TF-IDF's 1, and would decide the clusters almost alone.
        ranker_tree = LabelTree.build(pifa(features, Y), cfg.ranker.tree) if cfg.recluster else None
        self.ranker_ = XRLinear(cfg.ranker).fit(features, Y, tree=ranker_tree)
        seconds["ranker"] = time.perf_counter() - t0
        self.fit_seconds_ = seconds
        log.info("xr-transformer fit: %s", "  ".join(f"{k} {v:.1f}s" for k, v in seconds.items()))
        return self

    def _fingerprint(self, inputs: dict[str, str]) -> dict[str, Any]:
        """What a checkpoint must match to be resumed: digests of the training texts, labels and
        encoder files, and the config minus what does not change the weights (device, threads,
        evaluation, the encoder's path: its files count, through their digest)."""
        return {**inputs, "config": self.config.to_dict_without(
            "encoder.name", "finetune.device", "finetune.threads", "finetune.eval_docs", "finetune.embed_batch_size")}

    def embed(self, texts: list[str]) -> np.ndarray:
        """Fine-tuned ``(n, dim)`` embeddings of ``texts`` (not normalised)."""
        self._check_fitted()
        texts = check_texts(texts, self.method)
        tokens = self.text_tokenizer()(texts)
        place(self.encoder_, self.device)
        finetune = self.config.finetune
        return embed(self.encoder_, tokens, finetune.embed_batch_size, self.device, amp=finetune.amp)

    def predict(self, texts, *, top_k: int | None = None, beam_size: int | None = None,
                post_processor: str | None = None) -> sp.csr_matrix:
        """``(n_docs, n_labels)`` CSR with each row's ``top_k`` label scores from the ranker."""
        self._check_fitted()
        texts = check_texts(texts, self.method)
        if self.config.finetune.threads:
            torch.set_num_threads(self.config.finetune.threads)
        return self.ranker_.predict(self.ranker_features(texts), top_k=top_k, beam_size=beam_size,
                                    post_processor=post_processor)

    def ranker_features(self, texts: list[str]) -> sp.csr_matrix:
        """What the XR-Linear ranker reads: TF-IDF joined with the fine-tuned embeddings."""
        return join_embedding(cached_transform(self.tfidf_, texts), self.embed(texts), self.config.embedding_scale)

    def _check_fitted(self) -> None:
        check_is_fitted(self, "ranker_")

    def quantize(self) -> bool:
        self._check_fitted()
        if not is_quantized(self.encoder_):
            self.config = dataclasses.replace(self.config, finetune=dataclasses.replace(self.config.finetune,
                                                                                        device="cpu"))
            self.encoder_ = onnx_int8_encoder(self.encoder_, None, self.config.finetune.threads)
        return True

    @classmethod
    def _test_config(cls) -> XRTransformerConfig:
        raise XMCError("the xr-transformer model checks need an encoder folder; tests build a tiny BERT")

    def _save_arrays(self, folder: Path) -> dict[str, Any]:
        refuse_quantized(self.encoder_)
        self.tfidf_.save(folder / "tfidf")
        save_encoder(folder / "encoder", self.tokenizer_, self.encoder_.transformer)
        self.save_skip_rule(folder)
        save_heads(folder / "heads.safetensors", self.heads_)
        self.matcher_tree_.save(folder / "matcher_tree")
        self.ranker_.save(folder / "ranker")
        # the ranker's labels: ``xmc update`` adds labels to the ranker, the matcher tree keeps those fine-tuned on
        return {"n_labels": self.ranker_.n_labels_, "matcher_levels": self.matcher_tree_.level_sizes,
                "embedding_dim": self.encoder_.dim, "fit_seconds": self.fit_seconds_, "level_logs": self.level_logs_}

    def _load_arrays(self, folder: Path, shapes: dict[str, Any]) -> None:
        where = folder / "xmc.json"
        n_labels = manifest_field(shapes, "n_labels", int, where, low=1)
        levels = int_list(shapes, "matcher_levels", where, low=1)
        dim = manifest_field(shapes, "embedding_dim", int, where, low=1)
        if levels[-1] > n_labels:
            raise ModelFormatError(f"{where}: the matcher tree ends with {levels[-1]} nodes, more than n_labels")
        self.tfidf_ = TfidfFeaturizer.load(folder / "tfidf")
        self.tokenizer_, transformer = load_pretrained(folder / "encoder")
        self.load_skip_rule(folder)
        self.encoder_ = TextEncoder(transformer, self.config.encoder.pooling)
        if self.encoder_.dim != dim:
            raise ModelFormatError(f"{folder / 'encoder'}: hidden size {self.encoder_.dim}, xmc.json says {dim}")
        self.matcher_tree_ = LabelTree.load(folder / "matcher_tree", levels)
        self.heads_ = load_heads(folder / "heads.safetensors", [(n, dim) for n in levels])
        self.ranker_ = XRLinear.load(folder / "ranker")
        if self.ranker_.n_labels_ != n_labels or self.ranker_.n_features_in_ != self.tfidf_.n_features_ + dim:
            raise ModelFormatError(f"{folder / 'ranker'}: reads {self.ranker_.n_features_in_} features for "
                                   f"{self.ranker_.n_labels_} labels; expected {self.tfidf_.n_features_ + dim} "
                                   f"(TF-IDF + embedding) for {n_labels}")
        self.fit_seconds_ = self.saved_record(shapes, "fit_seconds", dict)
        self.level_logs_ = self.saved_record(shapes, "level_logs", list)

    @property
    def n_labels_(self) -> int | None:
        return None if self.ranker_ is None else self.ranker_.n_labels_

