"""A dual encoder that knows labels by their text (NGAME, Dahiya et al. WSDM 2023; DEXA, Dahiya et
al. KDD 2023), with ALC's auxiliary losses for coverage as an option.

One transformer embeds documents and label texts (mean-pooled, unit length); a document's score for
a label is their cosine, shown as ``(1 + cos) / 2``. Two stages on the shared trainer:

1. **Encoder** (``train.epochs``): each document is paired with one of its labels drawn at random;
   its negatives are the batch's other labels (in-batch) plus ``hard_negatives`` mined per document
   from a nearest-neighbour index (:class:`xmc.nn.ann.LabelIndex`) over every label text's
   embedding, rebuilt every ``refresh_steps`` steps as the encoder learns. Multi-positive InfoNCE.
2. **Label vectors** (``label_epochs``, cheap): the encoder is fixed and every training document's
   embedding cached; each label gets a free vector ``normalise(text embedding + delta)`` that starts
   at its text embedding, and ``delta`` is learned (sparse Adam) against the label's positives and
   the ``label_negatives`` labels the current vectors rank highest. Labels without training documents
   keep their text embedding: they are scored from their text alone (zero-shot).

``alc=True`` adds ALC's two auxiliary objectives and the threshold-consistent margin loss
(:mod:`xmc.nn.contrastive`) to both stages. Prediction: one encoder pass, then the index over the
label vectors (exact up to 100k labels, HNSW above).

The model needs every label's text at ``fit`` (``label_texts``); ``xmc train`` passes the dataset's
label texts (:mod:`xmc.data.label_texts`), or the label names where a label has none.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from xmc._config import Config, Interval, Options, option
from xmc.exceptions import ModelFormatError, XMCError
from xmc.models.base import XMCModel, manifest_field
from xmc.nn.ann import INDEX_KINDS, LabelIndex
from xmc.nn.cascade import topk_to_csr
from xmc.nn.device import resolve_device
from xmc.nn.dual import DualEncoderNet, LossWeights
from xmc.nn.embed import embed
from xmc.nn.encoders import EncoderConfig, TextEncoder, load_pretrained, resolve_encoder, save_encoder
from xmc.nn.heads import load_tensors
from xmc.nn.tokens import ReadsTexts
from xmc.training.checkpoints import save_state_dict
from xmc.training.dual import DualStages
from xmc.training.fit import run_stages
from xmc.training.trainer import OptimConfig, TrainConfig
from xmc.utils.fingerprint import digest_folder, digest_matrix, digest_texts
from xmc.utils.validation import check_is_fitted, check_k, check_labels, check_texts

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class DualEncoderConfig(Config):
    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(max_seq_len=64, dropout=0.0))
    label_max_seq_len: int = option(32, "tokens kept per label text", Interval(int, 4, 4096))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=1, batch_size=64, optim=OptimConfig(lr=5e-5, head_lr=1e-3, warmup=0.1)))
    freeze_embeddings: bool = option(False, "keep the word-embedding table fixed")
    freeze_layers: int = option(0, "also keep the first n transformer layers fixed", Interval(int, 0, None))
    cache_frozen: bool = option(True, "with freeze_layers, compute the frozen layers once (xmc.nn.prefix)")
    temperature: float = option(0.05, "softmax temperature of the contrastive loss",
                                Interval(float, 0, None, "neither"))
    hard_negatives: int = option(2, "labels mined per document from the label-text index (stage 1)",
                                 Interval(int, 0, None))
    refresh_steps: int = option(500, "stage-1 steps between two rebuilds of the label-text index (and as each "
                                     "epoch starts)",
                                Interval(int, 1, None))
    label_epochs: int = option(10, "epochs of the label vectors over cached document embeddings (0 = the label "
                                   "texts' embeddings are the vectors)", Interval(int, 0, None))
    label_lr: float = option(2e-3, "learning rate of the label vectors", Interval(float, 0, None))
    label_negatives: int = option(32, "labels mined per document by the current label vectors (stage 2)",
                                  Interval(int, 0, None))
    label_batch_size: int = option(256, "documents per step of stage 2", Interval(int, 2, None))
    alc: bool = option(False, "add ALC's auxiliary losses and the threshold-consistent margin loss")
    alc_weight: float = option(0.5, "weight of ALC's two objectives", Interval(float, 0, None))
    alc_margin: float = option(0.1, "margin of the weakest positive over the hardest negative", Interval(float, 0, 2))
    alc_pair_negatives: int = option(4, "hardest negatives per document for the pair classifier",
                                     Interval(int, 1, None))
    tcm_weight: float = option(1.0, "weight of the threshold-consistent margin loss", Interval(float, 0, None))
    tcm_pos: float = option(0.9, "positives' cosine margin m+", Interval(float, -1, 1))
    tcm_neg: float = option(0.5, "negatives' cosine margin m-", Interval(float, -1, 1))
    index: str = option("auto", "label index at prediction: exact, hnsw (faiss), or auto (exact up to 100k "
                                "labels)", Options(INDEX_KINDS))
    top_k: int = option(20, "labels returned per document", Interval(int, 1, None))
    predict_batch_size: int = option(64, "documents per prediction batch", Interval(int, 1, None))

    @classmethod
    def for_cpu(cls) -> DualEncoderConfig:
        """Sized for EURLEX57K on 2 cores (about 85 GFLOP/s: one forward pass of all six MiniLM layers
        over its 45k training documents at 64 tokens alone takes 12 minutes): all-MiniLM-L6-v2 (a
        sentence encoder, so its pretrained similarity is the start), 32 tokens, the bottom 5 layers
        frozen and cached, one epoch of the top layer with one mined hard negative per document, then 10
        cheap epochs of label vectors. Depth of fine-tuning, context and epochs are what it gives up."""
        return cls(encoder=EncoderConfig(max_seq_len=32, dropout=0.0), freeze_layers=5, hard_negatives=1,
                   train=TrainConfig(epochs=1, batch_size=64, eval_docs=1000,
                                     optim=OptimConfig(lr=1e-4, head_lr=1e-3, warmup=0.1)))

    @classmethod
    def for_gpu(cls) -> DualEncoderConfig:
        """NGAME's shape on one GPU: every layer fine-tuned, 128 tokens, 5 epochs of 128 documents with
        4 mined hard negatives each, the label-text index rebuilt every 200 steps, 20 label epochs."""
        return cls(encoder=EncoderConfig(max_seq_len=128, dropout=0.0), hard_negatives=4, refresh_steps=200,
                   label_epochs=20,
                   train=TrainConfig(epochs=5, batch_size=128, optim=OptimConfig(lr=5e-5, head_lr=1e-3, warmup=0.1)))

    def loss_weights(self) -> LossWeights:
        return LossWeights(temperature=self.temperature, alc=self.alc_weight if self.alc else 0.0,
                           alc_margin=self.alc_margin, alc_pair_negatives=self.alc_pair_negatives,
                           tcm=self.tcm_weight if self.alc else 0.0, tcm_pos=self.tcm_pos, tcm_neg=self.tcm_neg)


class DualEncoder(ReadsTexts, XMCModel):
    """Documents and label texts in one embedding space; see the module docstring.

    Examples
    --------
    >>> model = DualEncoder().fit(texts, Y, label_texts=["import of bananas", ...])   # doctest: +SKIP
    >>> model.predict(["Council Regulation on the import of bananas"], top_k=5)       # doctest: +SKIP
    """

    method = "dual-encoder"
    config_class = DualEncoderConfig
    input_kind = "texts"
    reads_label_texts = True  # xmc train passes label_texts to fit

    def __init__(self, config: DualEncoderConfig | None = None):
        super().__init__(config)
        self.tokenizer_ = None
        self.net_: DualEncoderNet | None = None
        self.fit_seconds_: dict[str, float] = {}
        self.epoch_logs_: list[dict[str, Any]] = []
        self._index: LabelIndex | None = None

    @classmethod
    def default_config(cls) -> DualEncoderConfig:
        return DualEncoderConfig.for_gpu() if torch.cuda.is_available() else DualEncoderConfig.for_cpu()

    @property
    def device(self) -> torch.device:
        return resolve_device(self.config.train.device)

    @property
    def n_labels_(self) -> int | None:
        return None if self.net_ is None else self.net_.n_labels

    def fit(self, texts: list[str], Y, *, label_texts: list[str] | None = None,
            eval_set: tuple[list[str], sp.csr_matrix] | None = None, checkpoint_dir: str | Path | None = None,
            resume: bool = False) -> DualEncoder:
        """Train on ``texts`` and ``Y`` with ``label_texts[j]`` the text of label j (a column of
        ``Y`` may be empty: that label is known by its text alone)."""
        texts = check_texts(texts, self.method)
        Y = check_labels(Y, len(texts))
        label_texts = _check_label_texts(label_texts, Y.shape[1])
        cfg = self.config
        torch.manual_seed(cfg.train.seed)
        folder = resolve_encoder(cfg.encoder.name)
        self.tokenizer_, transformer = load_pretrained(folder, cfg.encoder.n_layers)
        self.net_ = DualEncoderNet(TextEncoder(transformer, "mean"), Y.shape[1], cfg.loss_weights())
        self.net_.learnable.copy_(torch.from_numpy(np.diff(sp.csc_matrix(Y).indptr) > 0))
        inputs = {"texts": digest_texts(texts), "labels": digest_matrix(Y), "label_texts": digest_texts(label_texts),
                  "encoder": digest_folder(folder)}
        self.learn_skip_rule(texts)
        stages = DualStages(self, texts, Y, label_texts, inputs, checkpoint_dir, resume, eval_set)
        self.epoch_logs_, train_seconds = run_stages(self.net_, cfg.train, stages.build(), checkpoint_dir,
                                                     {**inputs, "config": _fingerprint_config(cfg)}, resume)
        stages.finish()
        self.fit_seconds_ = {**stages.seconds, "train": train_seconds}
        self.net_.eval()
        self._index = None
        return self

    # -- prediction --------------------------------------------------------------------------------
    def predict(self, texts, *, top_k: int | None = None, beam_size: int | None = None) -> sp.csr_matrix:
        """``(n_docs, n_labels)`` CSR of each row's ``top_k`` scores ``(1 + cos) / 2``
        (``beam_size`` is accepted for the common interface and unused: the search is one step)."""
        check_is_fitted(self, "net_")
        texts = check_texts(texts, self.method)
        top_k = check_k(top_k, "top_k", self.config.top_k)
        if self.config.train.threads:
            torch.set_num_threads(self.config.train.threads)
        docs = self.embed_tokens(self.text_tokenizer()(texts))
        return self.search(docs, top_k)

    def embed_tokens(self, tokens, desc: str = "embed") -> np.ndarray:
        """Unit embeddings of tokenised texts with the current encoder."""
        device = self.device
        encoder = self.net_.encoder.to(device)
        vectors = embed(encoder, tokens, self.config.predict_batch_size, device, amp=self.config.train.amp,
                        desc=desc)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def search(self, docs: np.ndarray, top_k: int, index: LabelIndex | None = None) -> sp.csr_matrix:
        if index is None:
            if self._index is None:
                with torch.no_grad():
                    vectors = self.net_.label_vectors().float().cpu().numpy()
                self._index = LabelIndex(vectors, self.config.index)
            index = self._index
        idx, sims = index.search(docs, top_k)
        return topk_to_csr(idx, (1.0 + sims) / 2.0, self.n_labels_)

    def _check_fitted(self) -> None:
        check_is_fitted(self, "net_")

    # -- model folders -----------------------------------------------------------------------------
    def _save_arrays(self, folder: Path) -> dict[str, Any]:
        save_encoder(folder / "encoder", self.tokenizer_, self.net_.encoder.transformer)
        self.save_skip_rule(folder)
        save_state_dict(folder / "labels.safetensors", self._label_state())
        return {"n_labels": self.n_labels_, "dim": self.net_.encoder.dim, "fit_seconds": self.fit_seconds_,
                "epoch_logs": self.epoch_logs_}

    def _label_state(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.net_.state_dict().items() if not k.startswith("encoder.")}

    def _load_arrays(self, folder: Path, shapes: dict[str, Any]) -> None:
        where = folder / "xmc.json"
        n_labels = manifest_field(shapes, "n_labels", int, where, low=1)
        self.tokenizer_, transformer = load_pretrained(folder / "encoder")
        self.load_skip_rule(folder)
        encoder = TextEncoder(transformer, "mean")
        if manifest_field(shapes, "dim", int, where, low=1) != encoder.dim:
            raise ModelFormatError(f"{where}: dim {shapes['dim']} but the encoder gives {encoder.dim}")
        self.net_ = DualEncoderNet(encoder, n_labels, self.config.loss_weights())
        expected = {k: tuple(v.shape) for k, v in self._label_state().items()}
        self.net_.load_state_dict(load_tensors(folder / "labels.safetensors", expected), strict=False)
        self.net_.eval()
        self.fit_seconds_ = self.saved_record(shapes, "fit_seconds", dict)
        self.epoch_logs_ = self.saved_record(shapes, "epoch_logs", list)


def _check_label_texts(label_texts: list[str] | None, n_labels: int) -> list[str]:
    if label_texts is None:
        raise XMCError("the dual encoder needs label_texts: one text per label (column of Y)")
    if len(label_texts) != n_labels or not all(isinstance(t, str) for t in label_texts):
        raise XMCError(f"label_texts must be {n_labels} strings (one per column of Y), got {len(label_texts)}")
    empty = sum(not t.strip() for t in label_texts)
    if empty == n_labels:
        raise XMCError("every label text is empty; the dual encoder matches documents with label texts")
    if empty:
        log.warning("%d of %d labels have an empty text: they start from an uninformative vector", empty, n_labels)
    return label_texts


def _fingerprint_config(cfg: DualEncoderConfig) -> dict[str, Any]:
    return cfg.to_dict_without("encoder.name", "train.device", "train.threads", "train.eval_docs", "index", "top_k",
                               "predict_batch_size")
