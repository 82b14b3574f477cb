"""Word-level inputs for the CNN of InceptionXML: cleaning, a vocabulary built on the training texts,
fixed-length token ids, and the word-embedding tables to start from.

Two tokenisations, each with its own table:

- ``words``: InceptionXML's, lower-cased alphanumeric words (``clean``), a vocabulary of the
  training texts' words seen at least ``min_count`` times; the table is word2vec trained on the
  training texts themselves (gensim), or random.
- ``wordpiece``: all-MiniLM-L6-v2's WordPiece tokenizer and its 384-d input embedding table.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import numpy as np

from xmc.exceptions import ModelFormatError, XMCError
from xmc.nn.tokens import TokenizedTexts
from xmc.utils.io import read_model_text, write_text

PAD, UNK = 0, 1
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def clean(text: str) -> list[str]:
    """Lower-cased words of letters and digits (InceptionXML's ``clean_str`` in spirit)."""
    return _WORD.findall(text.lower())


class WordVocab:
    """Word -> id, with id 0 for padding and 1 for unknown words."""

    word_level = True  # read by xmc.nn.tokens.TextTokenizer: encode(texts, max_len), not a Hugging Face call

    def __init__(self, words: list[str]):
        self.words = ["<pad>", "<unk>", *words]
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise ValueError("a word vocabulary lists a word twice")

    def __len__(self) -> int:
        return len(self.words)

    @classmethod
    def build(cls, texts: list[str], min_count: int = 2, max_words: int = 200_000) -> WordVocab:
        counts = Counter(w for text in texts for w in clean(text))
        kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls(kept[:max_words])

    def encode(self, texts: list[str], length: int) -> TokenizedTexts:
        """The first ``length`` word ids of every text (at least one id: an empty text is one ``<unk>``)."""
        pieces = [[self.index.get(w, UNK) for w in clean(t)[:length]] or [UNK] for t in texts]
        lengths = np.array([len(p) for p in pieces], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        ids = np.fromiter((i for p in pieces for i in p), dtype=np.int32, count=int(offsets[-1]))
        return TokenizedTexts(ids, offsets, PAD)

    def save(self, path: str | os.PathLike) -> None:
        write_text(path, "".join(w + "\n" for w in self.words[2:]))

    @classmethod
    def load(cls, path: str | os.PathLike) -> WordVocab:
        path = Path(path)
        text = read_model_text(path, "word vocabulary ")
        words = text.split("\n")
        if words[-1] != "" or any(not w or not _WORD.fullmatch(w) for w in words[:-1]):
            raise ModelFormatError(f"{path}: a word vocabulary holds one cleaned word per line")
        try:
            return cls(words[:-1])
        except ValueError as exc:
            raise ModelFormatError(f"{path}: {exc}") from None


def word2vec_table(texts: list[str], vocab: WordVocab, dim: int = 300, epochs: int = 5, seed: int = 0,
                   workers: int = 2) -> np.ndarray:
    """word2vec (skip-gram) trained on the training texts, as a ``(len(vocab), dim)`` table; words
    word2vec did not keep start random, padding at zero."""
    try:
        from gensim.models import Word2Vec
    except ModuleNotFoundError:
        raise XMCError("word2vec embeddings need gensim: pip install 'xmc[transformer]' (or pip install gensim)") \
            from None
    sentences = [clean(t) for t in texts]
    model = Word2Vec(sentences, vector_size=dim, window=5, min_count=1, sg=1, epochs=epochs, seed=seed,
                     workers=workers)
    rng = np.random.default_rng(seed)
    table = rng.normal(0.0, 0.1, size=(len(vocab), dim)).astype(np.float32)
    for word, i in vocab.index.items():
        if word in model.wv.key_to_index:
            table[i] = model.wv[word]
    table[PAD] = 0.0
    return table


def random_table(vocab_size: int, dim: int, seed: int = 0) -> np.ndarray:
    table = np.random.default_rng(seed).normal(0.0, 0.1, size=(vocab_size, dim)).astype(np.float32)
    table[PAD] = 0.0
    return table
