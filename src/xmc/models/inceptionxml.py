"""InceptionXML and SyncXML (Kharbanda et al., "InceptionXML: A Lightweight Framework with
Synchronized Negative Sampling for Short Text Extreme Classification", SIGIR 2023).

A light CNN over word embeddings (:class:`xmc.nn.inception.InceptionEncoder`) for short texts.
``inceptionxml`` puts one linear head over every label on it; ``syncxml`` puts a *meta* head over
label clusters and an *extreme* head over the labels of the top-K clusters, both behind the same
hidden block, so the shortlist and the extreme head learn from one forward pass (the
"synchronised" negatives). Loss: BCE on the candidates + ``meta_scale`` x BCE on the clusters;
for the first ``meta_epochs`` epochs the extreme head reads the features detached, so only the
meta task shapes the encoder. Adam and SparseAdam (word and label tables) on one-cycle schedules.

Word embeddings: InceptionXML fine-tunes 300-d GloVe, which is not available offline here;
``embeddings`` offers word2vec trained on the training texts (gensim), all-MiniLM-L6-v2's
WordPiece table (``wordpiece``, 384-d) or a random table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from xmc._config import Interval, Options, option
from xmc.exceptions import ModelFormatError
from xmc.models.base import manifest_field
from xmc.models.neural import CascadeModel, NeuralConfig, pifa_tree
from xmc.nn.cascade import CascadeNet, FeatureSpec, LevelSpec
from xmc.nn.encoders import EncoderConfig, Tap, load_pretrained, resolve_encoder, save_encoder
from xmc.nn.inception import InceptionEncoder
from xmc.nn.tokens import TextTokenizer, TokenizedTexts, strip_texts
from xmc.nn.words import WordVocab, random_table, word2vec_table
from xmc.training.trainer import OptimConfig, Stage, TrainConfig
from xmc.tree.label_tree import TreeConfig
from xmc.utils.fingerprint import digest_folder

EMBEDDINGS = ("word2vec", "wordpiece", "random")


def _train_config(epochs: int) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=128, eval_docs=2000,
                       optim=OptimConfig(lr=5e-3, head_lr=5e-3, weight_decay=0.0, schedule="one_cycle", warmup=0.33,
                                         clip=0.0))


@dataclass(frozen=True, kw_only=True)
class InceptionConfig(NeuralConfig):
    # The token budget's skip rule is off: on EURLEX57K titles at the full budget it measured no gain for the
    # CNN (selection half 85.60 / 59.14 against 86.17 / 58.95 without it; neural_recipes.md), unlike the
    # transformers; encoder.skip_share / skip_numbers turn it on.
    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(max_seq_len=32, skip_share=1.0,
                                                                         skip_numbers=False))
    tree: TreeConfig = field(default_factory=lambda: TreeConfig(max_leaf_size=8))
    train: TrainConfig = field(default_factory=lambda: _train_config(epochs=12))
    embeddings: str = option("word2vec", "word2vec (trained on the training texts), wordpiece (all-MiniLM-L6-v2's "
                             "table and tokenizer) or random", Options(EMBEDDINGS))
    # 128, not the paper's 300, and 12-13 epochs, not 45: the CPU defaults are sized to 10 minutes on
    # 2 cores (benchmarks/results/short_text.md); the model learns per step, so the steps are made
    # cheap (the D x D attention across dimensions costs D^2) rather than few (bigger batches)
    embedding_dim: int = option(128, "width of word2vec and random tables", Interval(int, 8, None))
    min_count: int = option(2, "words seen fewer times in training are unknown", Interval(int, 1, None))
    channels: int = option(32, "channels of every convolution", Interval(int, 4, None))
    dropout: float = option(0.2, "dropout in the encoder's blocks", Interval(float, 0, 1, "left"))
    attention: bool = option(True, "the embedding enhancement (attention across tokens and dimensions)")
    learned_attention: bool = option(False, "that enhancement as the official code's: learned, no softmax, its weight "
                                            "starting at 0 (False: parameter-free softmax at full weight)")
    hidden: int = option(1024, "width of the heads' hidden block (0 = none)", Interval(int, 0, None))
    head_dropout: float = option(0.3, "dropout of the hidden block", Interval(float, 0, 1, "left"))
    residual_head: bool = option(False, "the official code's head: a residual block as wide as the CNN's output "
                                        "(hidden is ignored), BatchNorm, then out_dropout")
    out_dropout: float = option(0.5, "dropout in front of the classifier of a residual head (the code: 0.4-0.5)",
                                Interval(float, 0, 1, "left"))
    sparse: bool = option(True, "sparse gradients for the word and label tables (SparseAdam)")


@dataclass(frozen=True, kw_only=True)
class SyncXMLConfig(InceptionConfig):
    train: TrainConfig = field(default_factory=lambda: _train_config(epochs=13))  # its steps cost less
    top_k: int = option(32, "clusters shortlisted per document", Interval(int, 1, None))
    meta_scale: float = option(1.0, "weight of the cluster loss", Interval(float, 0, None))
    meta_epochs: int = option(3, "epochs in which the extreme head reads detached features", Interval(int, 0, None))


class InceptionXML(CascadeModel):
    """InceptionXML: the CNN and one linear head over every label (no clusters).

    Examples
    --------
    >>> model = InceptionXML().fit(titles, Y)                      # doctest: +SKIP
    >>> model.predict(["Council Regulation on bananas"], top_k=5)  # doctest: +SKIP
    """

    method = "inceptionxml"
    config_class = InceptionConfig

    def __init__(self, config: InceptionConfig | None = None):
        super().__init__(config)
        self.vocab_: WordVocab | None = None

    # -- the encoder and its inputs ------------------------------------------------------------------
    def _prepare_encoder(self, texts: list[str]) -> tuple[torch.nn.Module, str]:
        cfg = self.config
        if cfg.embeddings == "wordpiece":
            folder = resolve_encoder(cfg.encoder.name)
            self.tokenizer_, transformer = load_pretrained(folder, 1)
            table = transformer.get_input_embeddings().weight.detach().clone()
            origin = digest_folder(folder)
        else:
            texts = strip_texts(texts, cfg.encoder.strip)  # the table's words are those the CNN reads
            self.vocab_ = WordVocab.build(texts, cfg.min_count)
            if cfg.embeddings == "word2vec":
                table = torch.from_numpy(word2vec_table(texts, self.vocab_, cfg.embedding_dim, seed=cfg.train.seed))
            else:
                table = torch.from_numpy(random_table(len(self.vocab_), cfg.embedding_dim, cfg.train.seed))
            origin = f"{cfg.embeddings}:{len(self.vocab_)}"
        return self._encoder(table), origin

    def _encoder(self, table: torch.Tensor) -> InceptionEncoder:
        cfg = self.config
        return InceptionEncoder(table, cfg.encoder.max_seq_len, cfg.channels, dropout=cfg.dropout,
                                sparse=cfg.sparse, attention=cfg.attention, learned=cfg.learned_attention)

    def _train_tokens(self, texts, inputs, cache, resume) -> TokenizedTexts:
        return self._tokenize(texts)

    def text_tokenizer(self) -> TextTokenizer:
        """WordPiece through MiniLM's tokenizer, or the word vocabulary built on the training texts."""
        return TextTokenizer.of(self.tokenizer_ if self.config.embeddings == "wordpiece" else self.vocab_,
                                self.config.encoder, self.skip_rule_)

    def _save_encoder(self, folder: Path) -> None:
        if self.config.embeddings == "wordpiece":
            (folder / "tokenizer").mkdir()
            save_encoder(folder / "tokenizer", self.tokenizer_, None)
        else:
            self.vocab_.save(folder / "words.txt")

    def _encoder_shapes(self) -> dict[str, Any]:
        weight = self.net_.encoder.embedding.weight
        return {"vocab_size": int(weight.shape[0]), "embedding_dim": int(weight.shape[1])}

    def _load_encoder(self, folder: Path, shapes: dict[str, Any]) -> torch.nn.Module:
        where = folder / "xmc.json"
        vocab_size = manifest_field(shapes, "vocab_size", int, where, low=2)
        dim = manifest_field(shapes, "embedding_dim", int, where, low=1)
        if self.config.embeddings == "wordpiece":
            from transformers import AutoTokenizer

            self.tokenizer_ = AutoTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
        else:
            self.vocab_ = WordVocab.load(folder / "words.txt")
            if len(self.vocab_) != vocab_size:
                raise ModelFormatError(f"{folder / 'words.txt'}: {len(self.vocab_)} words, xmc.json says {vocab_size}")
        return self._encoder(torch.zeros(vocab_size, dim))

    def _head_state(self) -> dict[str, torch.Tensor]:
        return dict(self.net_.state_dict())  # the CNN and its word table are part of the saved state

    # -- the network -------------------------------------------------------------------------------
    def _label_tree(self, texts: list[str], Y: sp.csr_matrix) -> list[sp.csr_matrix]:
        return [sp.csr_matrix(np.ones((Y.shape[1], 1), np.float32))]

    def _head(self, encoder: InceptionEncoder) -> dict[str, Any]:
        """The hidden block of every head: the plain one, or the official residual one."""
        cfg = self.config
        if cfg.residual_head:
            return {"hidden": encoder.dim, "dropout": cfg.head_dropout, "residual": True,
                    "out_dropout": cfg.out_dropout}
        return {"hidden": cfg.hidden, "dropout": cfg.head_dropout}

    def _network(self, encoder: InceptionEncoder, chains: list[sp.csr_matrix]) -> CascadeNet:
        levels = [LevelSpec(chains[0].shape[0], **self._head(encoder))]
        return CascadeNet(encoder, (Tap("mean", -1),), encoder.dim, [FeatureSpec((0,))], levels, chains)


class SyncXML(InceptionXML):
    """SyncXML: the InceptionXML CNN with a meta head over label clusters and an extreme head over the
    labels of the top-K clusters, behind identical hidden blocks (see the module docstring)."""

    method = "syncxml"
    config_class = SyncXMLConfig

    def _label_tree(self, texts: list[str], Y: sp.csr_matrix) -> list[sp.csr_matrix]:
        leaves = pifa_tree(texts, Y, self.config.tfidf, self.config.tree).chain[-1]
        return [sp.csr_matrix(np.ones((leaves.shape[1], 1), np.float32)), leaves]

    def _network(self, encoder: InceptionEncoder, chains: list[sp.csr_matrix]) -> CascadeNet:
        cfg = self.config
        levels = [LevelSpec(chains[0].shape[0], loss_weight=cfg.meta_scale, **self._head(encoder)),
                  LevelSpec(chains[1].shape[0], top_k=cfg.top_k, sparse=cfg.sparse, **self._head(encoder))]
        return CascadeNet(encoder, (Tap("mean", -1),), encoder.dim, [FeatureSpec((0,))], levels, chains)

    def _stages(self, loss, batches, n_batches: int, evaluate) -> list[Stage]:
        stages = super()._stages(loss, batches, n_batches, evaluate)
        meta_epochs = self.config.meta_epochs

        def detach(epoch: int) -> None:  # the detached warm-up: the extreme head does not train the encoder
            self.net_.detached = {1} if epoch < meta_epochs else set()

        stages[0].on_epoch_start = detach
        return stages
