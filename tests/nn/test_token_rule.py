"""Tokenisation is owned by one object (``xmc.nn.tokens.TextTokenizer``): every transformer and CNN
method trains and predicts on the tokens its rule gives (the token budget, the strip pattern), and no
call site tokenises a document any other way."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from tests.nn.conftest import cascade_config, tiny_config
from tests.nn.test_dual_encoder import dual_config
from tests.nn.test_elias import elias_config
from tests.nn.test_inceptionxml import _config as inception_config

from xmc.models import model_class
from xmc.nn.tokens import TextTokenizer, strip_texts, tokenize

SRC = Path(__file__).resolve().parents[2] / "src" / "xmc"
# The label-text scorer's sentence encoder embeds texts with a packaged model of its own, outside any
# method's encoder config; the rest goes through TextTokenizer.
RAW_TOKENISERS = {"nn/tokens.py", "nn/sentence.py"}


def test_no_call_site_tokenises_a_text_outside_the_rule():
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        if rel in RAW_TOKENISERS:
            continue
        calls = re.findall(r"(?<![\w.])(tokenize|cached_tokens)\(", path.read_text(encoding="utf-8"))
        assert not calls, f"{rel} tokenises texts itself ({calls}): use the model's text_tokenizer()"


def test_the_rule_cuts_the_pattern_then_spends_the_budget(keyword_bert):
    from xmc.nn.encoders import load_pretrained

    tokenizer, _ = load_pretrained(keyword_bert)
    texts = ["alpha beta gamma delta", "beta beta", "nothing"]
    rule = TextTokenizer(tokenizer, max_len=4, strip=r"\bbeta\b")
    got = rule(texts)
    want = tokenize(tokenizer, strip_texts(texts, r"\bbeta\b"), 4)
    assert np.array_equal(got.ids, want.ids) and np.array_equal(got.offsets, want.offsets)
    assert got.lengths.max() <= 4
    assert strip_texts(["beta beta"], r"\bbeta\b") == ["beta beta"]  # a text left empty is kept whole


def _methods(keyword_bert):
    return {
        "xr-transformer": tiny_config(keyword_bert, steps=(4, 4, 4), eval_docs=0),
        "lightxml": cascade_config("lightxml", keyword_bert, epochs=1),
        "cascadexml": cascade_config("cascadexml", keyword_bert, epochs=1),
        "elias": elias_config("elias", keyword_bert, epochs=1).replace(stage1_epochs=1),
        "dual-encoder": dual_config(keyword_bert).replace(label_epochs=1),
        "inceptionxml": inception_config("inceptionxml", embeddings="random"),
        "syncxml": inception_config("syncxml", embeddings="random"),
    }


@pytest.mark.parametrize("method", ["xr-transformer", "lightxml", "cascadexml", "elias", "dual-encoder",
                                    "inceptionxml", "syncxml"])
def test_every_method_trains_and_predicts_on_the_tokens_of_its_rule(method, keyword_task, keyword_bert, monkeypatch):
    texts, Y, test_texts, _ = keyword_task
    df = {w: sum(w in t.lower().split() for t in texts) for t in texts for w in t.lower().split()}
    word, common = sorted(df, key=lambda w: (-df[w], w))[:2]
    pattern = rf"\b{word}\b"  # the commonest word of the training texts, cut from every document
    share = (df[common] - 0.5) / len(texts)  # the next commonest word is skipped, and any as common
    config = _methods(keyword_bert)[method]
    config = config.replace(encoder=config.encoder.replace(strip=pattern, skip_share=share))
    seen: list[tuple[TextTokenizer, object]] = []
    call, cached = TextTokenizer.__call__, TextTokenizer.cached

    def spy_call(self, texts, desc="tokenise"):
        tokens = call(self, texts, desc)
        seen.append((self, tokens))
        return tokens

    def spy_cached(self, texts, inputs, cache, resume, desc="tokenise"):
        tokens = cached(self, texts, inputs, cache, resume, desc)
        seen.append((self, tokens))
        return tokens

    monkeypatch.setattr(TextTokenizer, "__call__", spy_call)
    monkeypatch.setattr(TextTokenizer, "cached", spy_cached)
    fit = {"label_texts": [f"label {j}" for j in range(Y.shape[1])]} if method == "dual-encoder" else {}
    model = model_class(method)(config).fit(texts, Y, **fit)
    n_fit = len(seen)
    model.predict(test_texts[:5], top_k=3)
    assert n_fit >= 1 and len(seen) > n_fit, "training and prediction both read tokens through the rule"
    documents = [(rule, tokens) for rule, tokens in seen if rule.max_len == config.encoder.max_seq_len]
    assert documents and all(rule.strip == pattern for rule, _ in documents)
    rule = documents[0][0]
    assert common in rule.skip.words and word not in rule.skip.words  # learned after the pattern's cut
    assert rule.skip.words == {w for w, n in df.items() if n > share * len(texts) and w != word}
    if getattr(rule.tokenizer, "word_level", False):
        assert word not in rule.tokenizer.index  # the vocabulary was built on the stripped texts
        assert all(rule.tokenizer.index[common] not in set(tokens.ids.tolist()) for _, tokens in documents)
    else:
        banned = set(rule.tokenizer(f"{word} {common}", add_special_tokens=False)["input_ids"])
        assert banned and all(not banned & set(tokens.ids.tolist()) for _, tokens in documents)


def test_the_learned_skip_rule_travels_with_the_model_folder(keyword_task, keyword_bert, tmp_path):
    from xmc.nn.tokens import SKIP_RULE_FILE

    texts, Y, test_texts, _ = keyword_task
    # a year in every text; share 0.03 skips the commonest keywords
    numbered = [f"{t} 19{i % 10}0" for i, t in enumerate(texts)]
    config = cascade_config("lightxml", keyword_bert, epochs=1)
    config = config.replace(encoder=config.encoder.replace(skip_share=0.03, skip_numbers=True))
    model = model_class("lightxml")(config).fit(numbered, Y)
    assert model.skip_rule_.words and model.skip_rule_.numbers
    model.save(tmp_path / "m")
    loaded = model_class("lightxml").load(tmp_path / "m")
    assert loaded.skip_rule_ == model.skip_rule_
    assert (loaded.predict(test_texts, top_k=5) != model.predict(test_texts, top_k=5)).nnz == 0
    (tmp_path / "m" / SKIP_RULE_FILE).unlink()  # a folder saved before the rule existed: it skips nothing
    older = model_class("lightxml").load(tmp_path / "m")
    assert older.skip_rule_.empty
    assert older.text_tokenizer()(["alpha 1990"]).lengths[0] > model.text_tokenizer()(["alpha 1990"]).lengths[0]
