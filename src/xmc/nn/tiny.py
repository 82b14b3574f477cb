"""A tiny random BERT with its own WordPiece vocabulary, saved as a Hugging Face folder: the
encoder of the test suite and of the robustness benchmark (no download, built in a second)."""

from __future__ import annotations

import os
from pathlib import Path


def build_tiny_bert(texts: list[str], folder: str | os.PathLike, *, hidden: int = 64, layers: int = 2,
                    heads: int = 2, vocab_size: int = 2000, seed: int = 0) -> Path:
    """Train a WordPiece vocabulary on ``texts`` and save a randomly initialised BERT beside it.

    transformers 5 ignores ``BertTokenizerFast(vocab_file=...)``, so the tokenizer is built from the
    vocabulary itself (see ../shared/docs/models.md)."""
    import torch
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel, BertTokenizer

    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, show_progress=False)
    tokenizer = BertTokenizer(vocab=wordpiece.get_vocab())
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=2 * hidden, max_position_embeddings=128)
    folder = Path(folder)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
