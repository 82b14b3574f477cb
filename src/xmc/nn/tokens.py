"""Tokenise once, keep the ids as a ragged int32 array, and cut length-bucketed batches with
dynamic padding (a batch is only as wide as its longest document)."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xmc.exceptions import ModelFormatError
from xmc.features.budget import SkipRule
from xmc.utils.fingerprint import differences
from xmc.utils.io import load_arrays, save_arrays
from xmc.utils.progress import progress

log = logging.getLogger(__name__)

# Named patterns for ``EncoderConfig.strip``. "eurlex": EUR-Lex boilerplate, the act's identifiers
# ("(EEC)", "No 2959/76", "90/366/EEC:", "of 22 July 1976") and the Official Journal's page header
# ("29.12.2005 EN Official Journal of the European Union L 346/46"). On EURLEX57K they take 16 of a
# median 46 MiniLM tokens of a title, and with the header most of the first 32 of a full text; cut
# before tokenising, LightXML's dev P@1 on titles at the CPU budget went from 79.1 to 89.0
# (benchmarks/results/neural_recipes.md).
STRIP_PRESETS = {
    "eurlex": r"(?i)\((?:EEC|EC|EU|Euratom|ECSC|CFSP)\)|\bNo\s*\d+/\d+(?:/\w+)?"
              r"|\b\d+/\d+/(?:EEC|EC|EU|Euratom|ECSC|CFSP|JHA)\b:?|\bof \d{1,2} [a-z]+ \d{4}"
              r"|\b\d{1,2}\.\d{1,2}\.\d{4}\s+EN\s+(?:[A-Z]{2}\s+)?Official Journal of the European \w+"
              r"\s+[LC]\s*\d+/\d+",
}


def strip_regex(strip: str) -> str:
    """The regular expression of ``EncoderConfig.strip``: a preset's pattern for a preset's name
    (:data:`STRIP_PRESETS`), the value itself otherwise."""
    return STRIP_PRESETS.get(strip, strip)


# A word-piece is rarely shorter than two characters of English text plus a space, so cutting a
# text to this many characters per kept token loses nothing and spares the tokenizer the (often
# very long) remainder it would throw away.
CHARS_PER_TOKEN = 12


@dataclass
class TokenizedTexts:
    """Token ids of every document, concatenated: document i is ``ids[offsets[i]:offsets[i+1]]``."""

    ids: np.ndarray
    offsets: np.ndarray
    pad_id: int

    def __len__(self) -> int:
        return self.offsets.size - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``(input_ids, attention_mask)`` for ``rows``, padded to the longest of them."""
        lengths = self.lengths[rows]
        width = int(lengths.max()) if rows.size else 0
        ids = np.full((rows.size, width), self.pad_id, dtype=np.int64)
        mask = np.zeros((rows.size, width), dtype=np.int64)
        for j, (i, n) in enumerate(zip(rows, lengths, strict=True)):
            ids[j, :n] = self.ids[self.offsets[i]:self.offsets[i] + n]
            mask[j, :n] = 1
        return torch.from_numpy(ids), torch.from_numpy(mask)

    def save(self, path: Path, key: dict | None = None) -> None:
        """Write the ids atomically, with the ``key`` (a JSON object) that says what they belong to."""
        save_arrays(path, ids=self.ids, offsets=self.offsets, pad_id=np.array(self.pad_id),
                    key=np.array(json.dumps(key or {}, sort_keys=True)))

    @classmethod
    def load_cache(cls, path: Path) -> tuple[TokenizedTexts | None, dict | None]:
        """``(tokens, key)`` from :meth:`save`; ``(None, None)`` when the file is damaged in any way
        (a cache is rebuilt, never trusted)."""
        try:
            arrays = load_arrays(path, {"ids": ("i", (None,)), "offsets": ("i", (None,)), "pad_id": ("i", ()),
                                        "key": ("U", ())})
            key = json.loads(str(arrays["key"]))
        except (ModelFormatError, ValueError):
            return None, None
        ids, offsets = arrays["ids"], arrays["offsets"].astype(np.int64)
        if (offsets.size == 0 or offsets[0] != 0 or offsets[-1] != ids.size or np.any(np.diff(offsets) < 0)
                or (ids.size and ids.min() < 0)):
            return None, None
        return cls(ids.astype(np.int32), offsets, int(arrays["pad_id"])), key


def cached_tokens(tokenizer, texts: list[str], max_len: int, inputs: dict[str, str], cache: Path | None,
                  resume: bool, desc: str = "tokenise", strip: str = "",
                  skip: SkipRule | None = None) -> TokenizedTexts:
    """Token ids of ``texts``, cached at ``cache`` so a resumed run skips tokenisation. The cache is
    reused only for the same texts, tokenizer files and length (``inputs`` holds the digests of the
    texts and the encoder folder); otherwise it is rebuilt, never trusted."""
    key = {"texts": inputs["texts"], "encoder": inputs["encoder"], "max_seq_len": max_len,
           "chars_per_token": CHARS_PER_TOKEN, **({"strip": strip_regex(strip)} if strip else {}),
           **(skip.key() if skip is not None and not skip.empty else {})}
    if cache is not None and resume and cache.is_file():
        cached, cached_key = TokenizedTexts.load_cache(cache)
        if cached is not None and cached_key == key:
            return cached
        changed = "; ".join(differences(cached_key or {}, key)) or "unreadable"
        log.info("rebuilding the token cache %s (%s)", cache, changed)
    tokens = tokenize(tokenizer, texts, max_len, desc=desc, strip=strip, skip=skip)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tokens.save(cache, key)
    return tokens


def strip_texts(texts: list[str], pattern: str) -> list[str]:
    """``texts`` with every match of ``pattern`` removed (whitespace collapsed); a text left empty
    is kept whole, so no document reaches the encoder blank. An empty ``pattern`` strips nothing."""
    if not pattern:
        return texts
    rx = re.compile(strip_regex(pattern))
    out = []
    for t in texts:
        kept = " ".join(rx.sub(" ", t).split())
        out.append(kept or t)
    return out


def prepare_texts(texts: list[str], strip: str, skip: SkipRule | None, max_words: int) -> list[str]:
    """``texts`` as a tokenizer gets them: the matches of ``strip`` cut, then the words ``skip`` skips
    (at most ``max_words`` kept words: each is one token or more)."""
    stripped = strip_texts(texts, strip)
    return stripped if skip is None else skip.apply(stripped, max_words)


def tokenize(tokenizer, texts: list[str], max_len: int, chunk: int = 2048, desc: str = "tokenise",
             strip: str = "", skip: SkipRule | None = None) -> TokenizedTexts:
    """Token ids (special tokens included) of each text, truncated to ``max_len``, after removing
    the matches of the regular expression ``strip`` (when given), then the words ``skip`` skips."""
    cut = max_len * CHARS_PER_TOKEN
    pieces, lengths = [], []
    for start in progress(range(0, len(texts), chunk), desc=desc, unit="chunk"):
        batch = texts[start:start + chunk]
        batch = [t[:cut] for t in prepare_texts(batch, strip, skip, max_len)]
        encoded = tokenizer(batch, truncation=True, max_length=max_len, padding=False,
                            return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        for row in encoded:
            pieces.append(np.asarray(row, dtype=np.int32))
            lengths.append(len(row))
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.concatenate(pieces) if pieces else np.zeros(0, np.int32)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return TokenizedTexts(ids, offsets, int(pad_id))


@dataclass
class TextTokenizer:
    """The one way a model turns texts into token ids: its tokenizer (a Hugging Face tokenizer, or a
    word vocabulary with ``word_level = True``), its token budget ``max_len``, the pattern it cuts
    from every text first (``strip``: :data:`STRIP_PRESETS` or a regular expression) and the words it
    then skips (``skip``, learned on the training texts: :class:`xmc.features.budget.SkipRule`). A
    model builds it from its saved encoder config and rule (:meth:`ReadsTexts.text_tokenizer`), so
    training, evaluation and prediction read the same tokens, whichever method and call site asks."""

    tokenizer: Any
    max_len: int
    strip: str = ""
    skip: SkipRule = field(default_factory=SkipRule)

    @classmethod
    def of(cls, tokenizer, encoder_config, skip: SkipRule | None = None) -> TextTokenizer:
        """From an :class:`xmc.nn.encoders.EncoderConfig` (its ``max_seq_len`` and ``strip``)."""
        return cls(tokenizer, encoder_config.max_seq_len, encoder_config.strip, skip or SkipRule())

    def prepare(self, texts: list[str]) -> list[str]:
        """The texts as the tokenizer gets them (:func:`prepare_texts`)."""
        return prepare_texts(texts, self.strip, self.skip, self.max_len)

    def __call__(self, texts: list[str], desc: str = "tokenise") -> TokenizedTexts:
        if getattr(self.tokenizer, "word_level", False):
            return self.tokenizer.encode(self.prepare(texts), self.max_len)
        return tokenize(self.tokenizer, texts, self.max_len, desc=desc, strip=self.strip, skip=self.skip)

    def cached(self, texts: list[str], inputs: dict[str, str], cache: Path | None, resume: bool,
               desc: str = "tokenise") -> TokenizedTexts:
        """:meth:`__call__` through :func:`cached_tokens` (a word vocabulary is cheap: never cached)."""
        if getattr(self.tokenizer, "word_level", False):
            return self(texts, desc)
        return cached_tokens(self.tokenizer, texts, self.max_len, inputs, cache, resume, desc=desc, strip=self.strip,
                             skip=self.skip)


class ReadsTexts:
    """For a model with a ``tokenizer_`` and an ``EncoderConfig`` at ``config.encoder``: how it reads
    a text (a method with another tokenizer overrides :meth:`text_tokenizer`), the words it skips
    (``skip_rule_``, learned by :meth:`learn_skip_rule` when it trains) and where they are saved."""

    skip_rule_: SkipRule = SkipRule()  # a model folder saved before the rule existed skips nothing

    def text_tokenizer(self) -> TextTokenizer:
        return TextTokenizer.of(self.tokenizer_, self.config.encoder, self.skip_rule_)

    def learn_skip_rule(self, texts: list[str]) -> None:
        enc = self.config.encoder
        self.skip_rule_ = SkipRule.learn(strip_texts(texts, enc.strip), enc.skip_share, enc.skip_numbers,
                                         enc.max_seq_len)
        if not self.skip_rule_.empty:
            log.info("token budget: %d frequent words skipped%s", len(self.skip_rule_.words),
                     ", and words with a digit" if self.skip_rule_.numbers else "")

    def save_skip_rule(self, folder: Path) -> None:
        self.skip_rule_.save(folder / SKIP_RULE_FILE)

    def load_skip_rule(self, folder: Path) -> None:
        self.skip_rule_ = SkipRule.load(folder / SKIP_RULE_FILE)


SKIP_RULE_FILE = "skipped_words.json"


def bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                     bucket_batches: int = 50) -> list[np.ndarray]:
    """Shuffled batches of documents of similar length: shuffle, sort within windows of
    ``bucket_batches`` batches by length, cut, then shuffle the batches."""
    order = rng.permutation(lengths.size)
    window = batch_size * bucket_batches
    batches = []
    for start in range(0, order.size, window):
        part = order[start:start + window]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i:i + batch_size] for i in range(0, part.size, batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def length_sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Inference batches: longest first, so padding is minimal and a memory error shows at once."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, order.size, batch_size)]
