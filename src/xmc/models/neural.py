"""End-to-end neural text models on :class:`xmc.nn.cascade.CascadeNet` and the one training loop:
what LightXML, CascadeXML and SyncXML share (fitting, batched sparse prediction, model folders).

A subclass says how labels are clustered (:meth:`_label_tree`) and how the network is composed
(:meth:`_network`); everything else is here. ``fit`` records the seconds of each stage in
``fit_seconds_`` and the per-epoch logs in ``epoch_logs_``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from xmc._config import Config, Interval, Options, option
from xmc.exceptions import ModelFormatError
from xmc.features.cache import cached_fit_transform
from xmc.features.tfidf import TfidfConfig, TfidfFeaturizer
from xmc.metrics.ranking import precision_at_k
from xmc.models.base import XMCModel, int_list, manifest_field
from xmc.nn.cascade import SCHEMES, CascadeNet, topk_to_csr
from xmc.nn.device import autocast, resolve_device
from xmc.nn.encoders import EncoderConfig, TextEncoder, load_pretrained, resolve_encoder, save_encoder
from xmc.nn.fast_cpu import is_quantized, onnx_int8_encoder, refuse_quantized
from xmc.nn.heads import load_tensors
from xmc.nn.prefix import FrozenPrefix, freeze_encoder
from xmc.nn.tokens import ReadsTexts, TokenizedTexts, bucketed_batches, length_sorted_batches
from xmc.training.checkpoints import save_state_dict
from xmc.training.fit import run_stages
from xmc.training.trainer import OptimConfig, Stage, TrainConfig, standard_groups
from xmc.training.warm import warm_stage
from xmc.tree.label_tree import LabelTree, TreeConfig
from xmc.tree.pifa import pifa
from xmc.utils.fingerprint import digest_folder, digest_matrix, digest_texts
from xmc.utils.io import load_csr, save_csr
from xmc.utils.progress import progress
from xmc.utils.rng import random_subset
from xmc.utils.sparse import binarize
from xmc.utils.validation import check_is_fitted, check_k, check_labels, check_texts

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class PredictConfig(Config):
    top_k: int = option(20, "labels returned per document", Interval(int, 1, None))
    shortlist: tuple[int, ...] = option((), "parents kept per level at prediction (empty = the training top_k)",
                                        Interval(int, 1, None))
    scheme: str = option("weighted", "weighted: a node's probability times its parent's path score; parent: "
                         "times its parent's own probability; level: its own only", Options(SCHEMES))
    batch_size: int = option(64, "documents per prediction batch", Interval(int, 1, None))


def cpu_recipe(**changes: Any) -> dict[str, Any]:
    """The CPU recipe measured for LightXML on EURLEX57K-titles (``benchmarks/results/neural_recipes.md``;
    see ``LightXMLConfig.for_cpu``), which ELIAS's stage 1 reuses: MiniLM's first 3 layers, 32 tokens,
    frozen word embeddings, 3 mean-pooled taps, dropout 0.1, heads at 3e-2 warmed for 10 epochs on
    cached encoder outputs, then 2 joint epochs of 32 texts. ``changes`` add or replace settings."""
    return {"encoder": EncoderConfig(max_seq_len=32, n_layers=3), "n_taps": 3, "pooling": "mean", "dropout": 0.1,
            "freeze_embeddings": True, "warm_epochs": 10,
            "train": TrainConfig(epochs=2, batch_size=32, eval_docs=1000,
                                 optim=OptimConfig(lr=2e-4, head_lr=3e-2, warmup=0.05)), **changes}


@dataclass(frozen=True, kw_only=True)
class NeuralConfig(Config):
    """The parts every cascade model has; a method's config adds its own fields."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    tfidf: TfidfConfig = field(default_factory=TfidfConfig)  # only to cluster labels (PIFA)
    tree: TreeConfig = field(default_factory=TreeConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    freeze_embeddings: bool = option(False, "keep the word-embedding table fixed (much cheaper steps on a CPU)")
    freeze_layers: int = option(0, "also keep the first n transformer layers fixed", Interval(int, 0, None))
    cache_frozen: bool = option(True, "with freeze_layers, compute the frozen layers once and cache their output "
                                      "(float16, without dropout): an epoch then runs only the layers that learn")
    warm_epochs: int = option(0, "epochs of the heads alone on the pretrained encoder's cached outputs, before "
                                 "joint training (xmc.training.warm)", Interval(int, 0, None))
    warm_batch_size: int = option(256, "documents per step of those epochs", Interval(int, 2, None))


class CascadeModel(ReadsTexts, XMCModel):
    """Base of the end-to-end text models; subclasses define ``_label_tree`` and ``_network``."""

    config_class = NeuralConfig
    input_kind = "texts"

    def __init__(self, config: NeuralConfig | None = None):
        super().__init__(config)
        self.tokenizer_ = None
        self.net_: CascadeNet | None = None
        self.chains_: list[sp.csr_matrix] | None = None
        self.fit_seconds_: dict[str, float] = {}
        self.epoch_logs_: list[dict[str, Any]] = []
        self._taps_cache: dict[str, torch.Tensor] | None = None  # the pretrained encoder's taps, when kept for later
        self._prefix: FrozenPrefix | None = None  # the frozen layers' cached output (freeze_layers, cache_frozen)

    # -- what a method defines ---------------------------------------------------------------------
    def _label_tree(self, texts: list[str], Y: sp.csr_matrix) -> list[sp.csr_matrix]:
        """The level chain, coarse to fine: ``chains[0]`` is a ``(n_0, 1)`` column of ones, and
        ``chains[t]`` maps level t's nodes to level t-1's; the last level's nodes are the labels."""
        raise NotImplementedError

    def _network(self, encoder: TextEncoder, chains: list[sp.csr_matrix]) -> CascadeNet:
        raise NotImplementedError

    def _stages(self, loss, batches, n_batches: int, evaluate) -> list[Stage]:
        """One stage of ``train.epochs`` epochs (SyncXML overrides this with a detached warm-up)."""
        cfg = self.config.train
        return [Stage(name=self.method, loss=loss, batches=batches, groups=self._groups, epochs=cfg.epochs,
                      n_batches=n_batches, warmup=cfg.optim.warmup, schedule=cfg.optim.schedule,
                      clip=cfg.optim.clip, evaluate=evaluate)]

    def _groups(self):
        o = self.config.train.optim
        return standard_groups(self.net_.encoder, [self.net_.features, self.net_.heads], o.lr, o.head_lr,
                               o.weight_decay, o.weight_decay * o.head_decay)

    # -- the encoder and its inputs (a Hugging Face transformer here; InceptionXML brings a CNN) ---------
    def _prepare_encoder(self, texts: list[str]) -> tuple[torch.nn.Module, str]:
        """The encoder to train, and a digest of what it starts from (for checkpoint fingerprints)."""
        folder = resolve_encoder(self.config.encoder.name)
        self.tokenizer_, transformer = load_pretrained(folder, self.config.encoder.n_layers)
        return TextEncoder(transformer, self.config.encoder.pooling), digest_folder(folder)

    def _train_tokens(self, texts: list[str], inputs: dict[str, str], cache: Path | None,
                      resume: bool) -> TokenizedTexts:
        return self.text_tokenizer().cached(texts, inputs, cache, resume)

    def _tokenize(self, texts: list[str], desc: str = "tokenise") -> TokenizedTexts:
        return self.text_tokenizer()(texts, desc)

    def _save_encoder(self, folder: Path) -> None:
        save_encoder(folder / "encoder", self.tokenizer_, self.net_.encoder.transformer)

    def _load_encoder(self, folder: Path, shapes: dict[str, Any]) -> torch.nn.Module:
        self.tokenizer_, transformer = load_pretrained(folder / "encoder")
        return TextEncoder(transformer, self.config.encoder.pooling)

    # -- fitting -----------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return resolve_device(self.config.train.device)

    @property
    def n_labels_(self) -> int | None:
        return None if self.chains_ is None else self.chains_[-1].shape[0]

    def fit(self, texts: list[str], Y, *, eval_set: tuple[list[str], sp.csr_matrix] | None = None,
            checkpoint_dir: str | Path | None = None, resume: bool = False) -> CascadeModel:
        """Train on ``texts`` and ``Y``; ``eval_set`` (texts, labels) picks the best epoch. With
        ``checkpoint_dir`` every epoch is checkpointed, and ``resume=True`` continues a killed run."""
        texts = check_texts(texts, self.method)
        Y = check_labels(Y, len(texts))
        cfg, seconds = self.config, {}
        t0 = time.perf_counter()
        inputs = {"texts": digest_texts(texts), "labels": digest_matrix(Y)}
        torch.manual_seed(cfg.train.seed)  # an encoder built from scratch (InceptionXML's CNN) is seeded too
        encoder, inputs["encoder"] = self._prepare_encoder(texts)
        self.learn_skip_rule(texts)
        cache = Path(checkpoint_dir) / "tokens.npz" if checkpoint_dir is not None else None
        tokens = self._train_tokens(texts, inputs, cache, resume)
        seconds["tokenise"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.chains_ = self._label_tree(texts, Y)
        seconds["clusters"] = time.perf_counter() - t0
        torch.manual_seed(cfg.train.seed)  # the heads' initialisation
        self.net_ = self._network(encoder, self.chains_)
        freeze_encoder(encoder, cfg.freeze_embeddings, cfg.freeze_layers)
        Ys = self._level_labels(Y)
        n_batches = int(np.ceil(len(texts) / cfg.train.batch_size))
        evaluate = self._evaluator(eval_set) if eval_set is not None and cfg.train.eval_docs else None
        stages = self._stages(lambda batch: self._loss(tokens, Ys, batch), lambda rng: self._batches(tokens, rng),
                              n_batches, evaluate)
        if cfg.warm_epochs:
            stages.insert(0, warm_stage(self.net_, tokens, Ys, cfg.warm_epochs, cfg.warm_batch_size, cfg.train.optim,
                                        self.device, cfg.train.amp, cache=self._taps_cache))
        self.epoch_logs_, seconds["train"] = run_stages(self.net_, cfg.train, stages, checkpoint_dir,
                                                        self._fingerprint(inputs), resume)
        self.net_.eval()
        self._prefix = None
        self.fit_seconds_ = seconds
        return self

    def _level_labels(self, Y: sp.csr_matrix) -> list[sp.csr_matrix]:
        """Y at every level of the chain (a node is positive when one of its labels is)."""
        Ys = [binarize(Y)]
        for C in reversed(self.chains_[1:]):
            Ys.insert(0, binarize(Ys[0] @ C))
        return Ys

    def _batches(self, tokens: TokenizedTexts, rng: np.random.Generator):
        for rows in bucketed_batches(tokens.lengths, self.config.train.batch_size, rng):
            if rows.size > 1:  # a lone document is skipped: BatchNorm (InceptionXML's CNN) needs two
                yield {"rows": rows}

    def _loss(self, tokens: TokenizedTexts, Ys: list[sp.csr_matrix], batch):
        rows = batch["rows"]
        cfg = self.config
        if cfg.freeze_layers and cfg.cache_frozen and isinstance(self.net_.encoder, TextEncoder):
            if self._prefix is None or self._prefix.tokens is not tokens:  # made on the first step that needs it
                self._prefix = FrozenPrefix(self.net_.encoder, tokens, cfg.freeze_layers, self.device,
                                            amp=cfg.train.amp)
            pooled, _ = self._prefix.taps(rows, self.net_.taps)
            return self.net_.loss(None, None, [Y[rows] for Y in Ys], pooled=pooled)
        ids, mask = tokens.batch(rows)
        return self.net_.loss(ids.to(self.device), mask.to(self.device), [Y[rows] for Y in Ys])

    def _evaluator(self, eval_set):
        rows = random_subset(len(eval_set[0]), self.config.train.eval_docs, self.config.train.seed)
        texts, Y = [eval_set[0][i] for i in rows], sp.csr_matrix(eval_set[1])[rows]
        tokens = self._tokenize(texts, desc="tokenise dev")

        def evaluate() -> dict[str, float]:
            scores = self._predict_tokens(tokens, top_k=5)
            truth = sp.csr_matrix(Y[:, : scores.shape[1]])
            return {f"P@{k}": 100 * precision_at_k(truth, scores, k) for k in (1, 3, 5)}

        return evaluate

    def _fingerprint(self, inputs: dict[str, str]) -> dict[str, Any]:
        """What a checkpoint must match to be resumed (see XRTransformer._fingerprint)."""
        return {**inputs, "config": self.config.to_dict_without("encoder.name", "train.device", "train.threads",
                                                                 "train.eval_docs", "predict")}

    # -- prediction --------------------------------------------------------------------------------
    def predict(self, texts, *, top_k: int | None = None, beam_size: int | None = None) -> sp.csr_matrix:
        """``(n_docs, n_labels)`` CSR of each row's ``top_k`` label probabilities; ``beam_size``
        overrides the number of parents shortlisted at every level."""
        self._check_fitted()
        texts = check_texts(texts, self.method)
        top_k = check_k(top_k, "top_k", self.config.predict.top_k)
        if self.config.train.threads:
            torch.set_num_threads(self.config.train.threads)
        tokens = self._tokenize(texts)
        shortlist = None if beam_size is None else (check_k(beam_size, "beam_size"),) * (len(self.chains_) - 1)
        return self._predict_tokens(tokens, top_k, shortlist)

    def _predict_tokens(self, tokens: TokenizedTexts, top_k: int, shortlist=None) -> sp.csr_matrix:
        cfg = self.config.predict
        shortlist = shortlist or cfg.shortlist or None
        n = len(tokens)
        k = min(top_k, self.n_labels_)
        indices = np.full((n, k), -1, dtype=np.int64)
        scores = np.zeros((n, k), dtype=np.float32)
        device = self._placed_net()
        for rows in progress(length_sorted_batches(tokens.lengths, cfg.batch_size), desc="predict", unit="batch"):
            ids, mask = tokens.batch(rows)
            with torch.inference_mode(), autocast(device, self.config.train.amp):
                idx, val = self.net_.predict(ids.to(device), mask.to(device), k, shortlist, cfg.scheme)
            indices[rows, : idx.shape[1]] = idx.cpu().numpy()
            scores[rows, : val.shape[1]] = val.float().cpu().numpy()
        return topk_to_csr(indices, scores, self.n_labels_)

    def _placed_net(self) -> torch.device:
        """The network on its device in eval mode, moved only when it is not there already: walking
        every parameter cost a sixth of a one-text prediction."""
        device = self.device
        if self.net_.training or next(self.net_.parameters()).device.type != device.type:
            self.net_.to(device).eval()
        return device

    def _check_fitted(self) -> None:
        check_is_fitted(self, "net_")

    def quantize(self) -> bool:
        self._check_fitted()
        if is_quantized(self.net_.encoder):
            return True
        if not isinstance(self.net_.encoder, TextEncoder):  # InceptionXML's CNN: nothing a BERT path would speed up
            return False
        self.config = dataclasses.replace(self.config, train=dataclasses.replace(self.config.train, device="cpu"))
        self.net_.encoder = onnx_int8_encoder(self.net_.to("cpu").encoder, self.net_.taps, self.config.train.threads)
        return True

    # -- model folders -----------------------------------------------------------------------------
    def _save_arrays(self, folder: Path) -> dict[str, Any]:
        refuse_quantized(self.net_.encoder)
        self._save_encoder(folder)
        self.save_skip_rule(folder)
        save_state_dict(folder / "heads.safetensors", self._head_state())
        (folder / "levels").mkdir()
        for t, C in enumerate(self.chains_):
            save_csr(folder / "levels" / f"level_{t}.npz", C)
        return {"n_labels": self.n_labels_, "level_sizes": [C.shape[0] for C in self.chains_],
                "fit_seconds": self.fit_seconds_, "epoch_logs": self.epoch_logs_, **self._encoder_shapes()}

    def _encoder_shapes(self) -> dict[str, Any]:
        return {}

    def _head_state(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.net_.state_dict().items() if not k.startswith("encoder.")}

    def _load_arrays(self, folder: Path, shapes: dict[str, Any]) -> None:
        where = folder / "xmc.json"
        sizes = int_list(shapes, "level_sizes", where, low=1)
        if sizes[-1] != manifest_field(shapes, "n_labels", int, where, low=1):
            raise ModelFormatError(f"{where}: the last level has {sizes[-1]} nodes, not n_labels")
        self.chains_ = [load_csr(folder / "levels" / f"level_{t}.npz", (n, sizes[t - 1] if t else 1))
                        for t, n in enumerate(sizes)]
        for t, C in enumerate(self.chains_):
            if not (np.all(np.diff(C.indptr) == 1) and np.all(C.data == 1)):
                raise ModelFormatError(f"{folder / 'levels' / f'level_{t}.npz'}: every node needs one parent")
        self.net_ = self._network(self._load_encoder(folder, shapes), self.chains_)
        self.load_skip_rule(folder)
        expected = {k: tuple(v.shape) for k, v in self._head_state().items()}
        state = load_tensors(folder / "heads.safetensors", expected)
        self.net_.load_state_dict(state, strict=False)
        self.net_.eval()
        self.fit_seconds_ = self.saved_record(shapes, "fit_seconds", dict)
        self.epoch_logs_ = self.saved_record(shapes, "epoch_logs", list)


def pifa_tree(texts: list[str], Y: sp.csr_matrix, tfidf: TfidfConfig, tree: TreeConfig) -> LabelTree:
    """The PIFA label tree on TF-IDF of the training texts (the methods' clusters come from it)."""
    X = cached_fit_transform(TfidfFeaturizer(tfidf), texts)
    return LabelTree.build(pifa(X, Y), tree)
