"""What a short token budget is spent on: the words that tell documents apart.

A transformer on a CPU reads 32 to 128 tokens of a document. A corpus's boilerplate (a legal act's
"Commission Regulation (EC) No 1234/2005 of 12 May 2005", a report's header, function words) can
fill most of them. :class:`SkipRule` learns, from the training texts alone, the words that occur in
more than a share of the documents within the part a model can read, and cuts them (and, when asked,
every word with a digit: numbers, dates, identifiers) before tokenising, so the budget goes to the
words that inform. It knows nothing about any one corpus; it is saved with the model, so prediction
reads texts as training did.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from xmc.exceptions import ModelFormatError
from xmc.utils.io import read_json, write_json
from xmc.utils.progress import progress

# A word, with inner hyphens, apostrophes, dots and slashes ("co-operation", "2959/76", "l.346"), or one
# mark of punctuation; the tokenizers split the same way or finer, so a kept word is never cut in two.
WORD = re.compile(r"\w+(?:[-'./]\w+)*|[^\w\s]")
DIGIT = re.compile(r"\d")
# Words per token budget over which document frequencies are counted: the part of a text a model can
# come to read once the skipped words are gone (a word is one or more tokens).
READ_WINDOW = 8


@dataclass(frozen=True)
class SkipRule:
    """Words cut from every text before tokenising: ``words`` (lower-cased) and, with ``numbers``, any
    word with a digit. The empty rule keeps texts as they are."""

    words: frozenset[str] = field(default_factory=frozenset)
    numbers: bool = False

    @property
    def empty(self) -> bool:
        return not self.words and not self.numbers

    @classmethod
    def learn(cls, texts: list[str], max_share: float, numbers: bool, budget: int) -> SkipRule:
        """The words found in more than ``max_share`` of ``texts`` among each text's first
        ``READ_WINDOW * budget`` words (``max_share >= 1``: none)."""
        if max_share >= 1 or not texts:
            return cls(frozenset(), numbers)
        window = READ_WINDOW * budget
        counts: Counter[str] = Counter()
        for text in progress(texts, desc="count words", unit="doc"):
            counts.update({m.group().lower() for m in islice(WORD.finditer(text), window)})
        limit = max_share * len(texts)
        return cls(frozenset(w for w, c in counts.items() if c > limit), numbers)

    def skips(self, word: str) -> bool:
        return word.lower() in self.words or (self.numbers and DIGIT.search(word) is not None)

    def apply(self, texts: list[str], max_words: int) -> list[str]:
        """Each text's first ``max_words`` kept words, joined by spaces; a text with no kept word is
        returned whole (no document reaches the encoder blank)."""
        if self.empty:
            return texts
        out = []
        for text in texts:
            kept = []
            for m in WORD.finditer(text):
                if not self.skips(m.group()):
                    kept.append(m.group())
                    if len(kept) == max_words:
                        break
            out.append(" ".join(kept) if kept else text)
        return out

    def key(self) -> dict:
        """What the rule is, for cache keys and fingerprints."""
        return {"skip_words": sorted(self.words), "skip_numbers": self.numbers}

    def save(self, path: Path) -> None:
        write_json(path, self.key())

    @classmethod
    def load(cls, path: Path) -> SkipRule:
        """The rule saved at ``path``; the empty rule when there is none (folders saved before it)."""
        if not path.is_file():
            return cls()
        try:
            data = read_json(path)
            words, numbers = data["skip_words"], data["skip_numbers"]
        except (ValueError, KeyError, TypeError) as e:
            raise ModelFormatError(f"{path}: not a skip rule ({e})") from None
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words) or not isinstance(numbers, bool):
            raise ModelFormatError(f"{path}: skip_words must be a list of strings and skip_numbers a boolean")
        return cls(frozenset(words), numbers)

