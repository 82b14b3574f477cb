from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="session")
def eurlex_docs(eurlex_slice):
    """A few hundred real EURLEX57K documents: (train texts, train labels, dev texts, dev labels)."""
    from xmc.data import resolve

    data = resolve(eurlex_slice)
    train, dev = data.load("train"), data.load("dev")
    return train.texts[:400], train.labels[:400], dev.texts[:100], dev.labels[:100]


@pytest.fixture(scope="session")
def tiny_bert(eurlex_docs, tmp_path_factory) -> Path:
    """A random 2-layer BERT (hidden 64) with its own WordPiece vocabulary, saved as a Hugging Face
    folder so the real ``from_pretrained`` path is exercised. Built once per test run."""
    from xmc.nn.tiny import build_tiny_bert

    return build_tiny_bert(eurlex_docs[0], tmp_path_factory.mktemp("tiny_bert"))


def tiny_config(encoder: Path, **finetune):
    """An XR-Transformer config small enough for unit tests (a few seconds on 2 cores)."""
    from xmc.features.tfidf import TfidfConfig
    from xmc.models.xr_linear import XRLinearConfig
    from xmc.models.xr_transformer import XRTransformerConfig
    from xmc.nn.encoders import EncoderConfig
    from xmc.search.beam import BeamConfig
    from xmc.training.finetune import FinetuneConfig
    from xmc.tree.label_tree import TreeConfig

    tune = dict(steps=(8, 8, 16), batch_size=16, lr=1e-3, head_lr=1e-2, warmup=2, eval_docs=50, device="cpu")
    tune.update(finetune)
    return XRTransformerConfig(
        tfidf=TfidfConfig(min_df=1), encoder=EncoderConfig(name=str(encoder), max_seq_len=32),
        matcher_tree=TreeConfig(n_splits=4, max_leaf_size=16, min_codes=4), finetune=FinetuneConfig(**tune),
        ranker=XRLinearConfig(tree=TreeConfig(n_splits=4, max_leaf_size=16), beam=BeamConfig(beam_size=5, top_k=10)))


@pytest.fixture(scope="session")
def encoded_docs(eurlex_docs):
    """Label matrices of the slice: (train texts, Y, dev texts, Y_dev, vocab)."""
    from xmc.data.vocab import LabelVocab

    texts, labels, dev_texts, dev_labels = eurlex_docs
    vocab = LabelVocab.build(labels)
    return texts, vocab.encode(labels).Y, dev_texts, vocab.encode(dev_labels).Y, vocab


@pytest.fixture(scope="session")
def fitted_tiny(tiny_bert, encoded_docs):
    from xmc.models.xr_transformer import XRTransformer

    texts, Y, dev_texts, Y_dev, _ = encoded_docs
    return XRTransformer(tiny_config(tiny_bert)).fit(texts, Y, eval_set=(dev_texts, Y_dev))


@pytest.fixture(scope="session")
def keyword_task():
    """40 labels, each with two keywords; a document holds the keywords of its 1-2 labels among filler
    words: (train texts, Y, test texts, Y_test). A model that reads text learns it to P@1 near 1."""
    rng = np.random.default_rng(0)
    syllables = ["ka", "lo", "mi", "ne", "pu", "ro", "si", "ta", "vu", "ze"]
    words = sorted({"".join(rng.choice(syllables, 3)) for _ in range(400)})
    keywords, filler = np.array(words[:80]).reshape(40, 2), words[80:]

    def make(n):
        texts, rows = [], []
        for _ in range(n):
            labels = rng.choice(40, size=int(rng.integers(1, 3)), replace=False)
            tokens = [w for j in labels for w in keywords[j]] + list(rng.choice(filler, 3))
            texts.append(" ".join(rng.permutation(tokens)))
            rows.append(sorted(labels))
        ptr = np.cumsum([0] + [len(r) for r in rows])
        Y = sp.csr_matrix((np.ones(ptr[-1], np.float32), np.concatenate(rows), ptr), shape=(n, 40))
        return texts, Y

    return (*make(600), *make(150))


@pytest.fixture(scope="session")
def keyword_bert(keyword_task, tmp_path_factory) -> Path:
    from xmc.nn.tiny import build_tiny_bert

    return build_tiny_bert(keyword_task[0], tmp_path_factory.mktemp("keyword_bert"), vocab_size=600)


def cascade_config(method: str, encoder, **train):
    """A LightXML or CascadeXML config for the keyword task (seconds on 2 cores)."""
    from xmc.models.cascadexml import CascadeXMLConfig
    from xmc.models.lightxml import LightXMLConfig
    from xmc.nn.encoders import EncoderConfig
    from xmc.training.trainer import OptimConfig, TrainConfig
    from xmc.tree.label_tree import TreeConfig

    options = dict(epochs=8, batch_size=16, device="cpu", eval_docs=0,
                   optim=OptimConfig(lr=5e-3, head_lr=2e-2, warmup=0.05))
    options.update(train)
    common = dict(encoder=EncoderConfig(name=str(encoder), max_seq_len=24), train=TrainConfig(**options))
    if method == "lightxml":
        return LightXMLConfig(tree=TreeConfig(max_leaf_size=8), top_k=3, hidden_dim=32, dropout=0.1, **common)
    return CascadeXMLConfig(tree=TreeConfig(n_splits=2, max_leaf_size=4, min_codes=4), min_level_size=4,
                            top_k=(3, 4), level_dropout=(0.1,), **common)
