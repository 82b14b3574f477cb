"""Screening of token-budget rules: what the first tokens of a document tell a frozen encoder.

    python benchmarks/neural/token_budget.py [--data EURLEX57K] [--titles] [--index-docs 15000] [--rules a,b]

For each rule (``xmc.features.budget.SkipRule`` settings, learned on the training texts, and the EUR-Lex
strip preset for reference), every text is cut by the rule and tokenised to the CPU configs' budget
(32 tokens), embedded by the pretrained MiniLM's first 3 layers (frozen, mean-pooled, as LightXML's and
XR-Transformer's CPU configs start), and each dev document is scored by its 20 nearest training documents
(cosine, votes weighted by similarity). The kNN P@1/P@5 is a cheap measure of what the budget's tokens
carry; it screens rules for the full-budget runs of neural_recipes.py and does not replace them. Dev is
cut into the seeded selection and report halves (rules are chosen on the selection half). The kNN index
is a seeded random subset of the training split (``--index-docs``) to keep a rule to about a minute.
Windows (``WINDOWS``): on top of the default rule, which tokens of the whole text the 32 are (the first
and last, or two windows embedded apart and averaged). Results: benchmarks/results/token_budget.md (one
table per corpus, rows kept in token_budget.rows.json).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for its lib
from lib import common  # noqa: E402

LEDGER = "token_budget"
BUDGET, LAYERS, NEIGHBOURS = 32, 3, 20
RULES = {  # name: (max share, numbers, strip, what)
    "none": (1.0, False, "", "the texts as they are (the CPU default before 2026-12-07)"),
    "numbers": (1.0, True, "", "words with a digit cut (numbers, dates, identifiers)"),
    "share0.5": (0.5, False, "", "words in more than half of the training documents cut"),
    "numbers+share0.5": (0.5, True, "", "both"),
    "numbers+share0.25": (0.25, True, "", "words with a digit, and words in more than a quarter of the documents"),
    "numbers+share0.1": (0.1, True, "", "words with a digit, and words in more than a tenth of the documents"),
    "numbers+share0.05": (0.05, True, "", "words with a digit, and words in more than a twentieth of the documents"),
    "eurlex-strip": (1.0, False, "eurlex", "EUR-Lex's strip preset (the dataset-specific reference)"),
}
# Which tokens of the rule's text the encoder reads (issue #40's other candidates), on top of the chosen
# default rule: name -> (windows, what). A window is a slice of the text's tokens, special tokens aside;
# two windows are embedded apart and their unit embeddings averaged (twice the encoder's work).
DEFAULT_RULE = "numbers+share0.1"
WINDOWS = {
    "head+tail": ("head+tail", "the default rule, then the first 15 and the last 15 tokens in one window of 32"),
    "first+last pooled": ("first|last", "the default rule, then the first 30 and the last 30 tokens as two "
                                        "windows, embeddings averaged"),
    "two windows pooled": ("first|second", "the default rule, then tokens 1-30 and 31-60 as two windows, "
                                           "embeddings averaged"),
}
LONG = 4096  # tokens read before the windows are cut (EURLEX57K's texts: a few hundred to a few thousand)


def window_tokens(texts: list[str], rule, tokenizer, window: str):
    """The tokens of one window per text: ``head+tail``, ``first``, ``last`` or ``second``, each
    30 tokens of the rule's whole text between the special tokens (a shorter text: what there is)."""
    from xmc.nn.tokens import TokenizedTexts

    encoded = tokenizer(rule.apply(texts, 10 ** 6), truncation=True, max_length=LONG, padding=False,
                        return_attention_mask=False, return_token_type_ids=False)["input_ids"]
    pieces = [np.asarray([row[0], *_window(row[1:-1], window), row[-1]], dtype=np.int32) for row in encoded]
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum([p.size for p in pieces], out=offsets[1:])
    return TokenizedTexts(np.concatenate(pieces), offsets, int(tokenizer.pad_token_id or 0))


def _window(inner: list[int], window: str) -> list[int]:
    body = BUDGET - 2
    if window == "head+tail":
        return inner if len(inner) <= body else inner[:body // 2] + inner[-(body - body // 2):]
    return {"first": inner[:body], "last": inner[-body:], "second": inner[body:2 * body] or inner[:body]}[window]


def embed_windows(texts: list[str], rule, windows: str, tokenizer, encoder) -> np.ndarray:
    import torch

    from xmc.nn.embed import embed

    total = 0.0
    for window in windows.split("|"):
        emb = embed(encoder, window_tokens(texts, rule, tokenizer, window), 256, torch.device("cpu"), amp=False)
        total = total + emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    return total / np.maximum(np.linalg.norm(total, axis=1, keepdims=True), 1e-12)


def embed_texts(texts: list[str], rule, strip: str, tokenizer, encoder) -> np.ndarray:
    import torch

    from xmc.nn.embed import embed
    from xmc.nn.tokens import TextTokenizer

    tokens = TextTokenizer(tokenizer, BUDGET, strip, rule)(texts)
    emb = embed(encoder, tokens, 256, torch.device("cpu"), amp=False)
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def knn_scores(index: np.ndarray, Y_index: sp.csr_matrix, queries: np.ndarray) -> sp.csr_matrix:
    """Each query's labels scored by the similarity-weighted votes of its nearest indexed documents."""
    sims = queries @ index.T
    top = np.argpartition(-sims, NEIGHBOURS, axis=1)[:, :NEIGHBOURS]
    weights = np.take_along_axis(sims, top, axis=1)
    rows = np.repeat(np.arange(len(queries)), NEIGHBOURS)
    votes = sp.csr_matrix((weights.ravel(), (rows, top.ravel())), shape=(len(queries), index.shape[0]))
    return sp.csr_matrix(votes @ Y_index)


@functools.lru_cache(maxsize=1)
def corpus(data: str, index_docs: int) -> tuple:
    """Read once per process, whatever the number of rules: the training texts, the seeded index
    documents and their labels, dev's texts and labels."""
    from xmc import api
    from xmc.data.vocab import LabelVocab

    dataset = api.resolve(data)
    train, dev = dataset.load("train"), dataset.load("dev")
    rows = np.sort(np.random.default_rng(common.SELECTION_SEED).permutation(len(train.texts))[:index_docs])
    vocab = LabelVocab.build(train.labels)
    return (list(train.texts), [train.texts[i] for i in rows], vocab.encode([train.labels[i] for i in rows]).Y,
            list(dev.texts), vocab.encode(dev.labels).Y)


@functools.lru_cache(maxsize=1)
def frozen_encoder() -> tuple:
    from xmc.nn.encoders import DEFAULT_ENCODER, TextEncoder, load_pretrained, resolve_encoder

    tokenizer, transformer = load_pretrained(resolve_encoder(DEFAULT_ENCODER), LAYERS)
    return tokenizer, TextEncoder(transformer, "mean").eval()


def measure(data: str, name: str, index_docs: int) -> dict:
    from xmc.features.budget import SkipRule
    from xmc.metrics import precision_at_k

    windows, what = WINDOWS.get(name, ("", ""))
    share, numbers, strip, rule_what = RULES[DEFAULT_RULE if windows else name]
    what = what or rule_what
    train_texts, index_texts, Y_index, dev_texts, Y_dev = corpus(data, index_docs)
    tokenizer, encoder = frozen_encoder()
    t0 = time.perf_counter()
    rule = SkipRule.learn(train_texts, share, numbers, BUDGET)
    learn_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    if windows:
        index, queries = (embed_windows(t, rule, windows, tokenizer, encoder) for t in (index_texts, dev_texts))
    else:
        index = embed_texts(index_texts, rule, strip, tokenizer, encoder)
        queries = embed_texts(dev_texts, rule, strip, tokenizer, encoder)
    embed_s = time.perf_counter() - t0
    scores = knn_scores(index, Y_index, queries)
    selection, report = common.halves(len(dev_texts))
    row = {"what": what, "skipped": len(rule.words), "learn_s": round(learn_s, 1), "embed_s": round(embed_s, 1),
           "date": common.today(), "machine": common.machine()}
    for part, docs in (("selection", selection), ("report", report), ("dev", np.arange(len(dev_texts)))):
        for k in (1, 5):
            row[f"{part}_p{k}"] = round(100 * precision_at_k(Y_dev[docs], scores[docs], k), 2)
    row["examples"] = sorted(rule.words)[:30]
    return row


def table(rows: dict, corpus: str) -> str:
    lines = [f"### {corpus}", "", "| rule | what | frequent words skipped | selection P@1 / P@5 | report P@1 / P@5 | "
             "dev P@1 / P@5 | learn s | embed s | date |", "|---|---|---|---|---|---|---|---|---|"]
    for name in [*RULES, *WINDOWS]:
        r = rows.get(f"{corpus}/{name}")
        if r:
            lines.append(f"| {name} | {r['what']} | {r['skipped']} "
                         f"| {r['selection_p1']:.2f} / {r['selection_p5']:.2f} "
                         f"| {r['report_p1']:.2f} / {r['report_p5']:.2f} | {r['dev_p1']:.2f} / {r['dev_p5']:.2f} "
                         f"| {r['learn_s']} | {r['embed_s']} | {r['date']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="EURLEX57K")
    ap.add_argument("--titles", action="store_true", help="EURLEX57K-titles (derived) instead of full text")
    ap.add_argument("--index-docs", type=int, default=15000)
    ap.add_argument("--rules", default=",".join([*RULES, *WINDOWS]),
                    help="rules and windows to measure ('': rewrite the table only)")
    ap.add_argument("--rerun", action="store_true")
    args = ap.parse_args()
    data = common.titles_dataset(args.data) if args.titles else args.data
    corpus = Path(data).name
    done = common.ledger(LEDGER)
    for name in filter(None, args.rules.split(",")):  # --rules '': the table again, from the ledger
        key = f"{corpus}/{name}"
        if key in done and not args.rerun:
            continue
        row = measure(data, name, args.index_docs)
        common.record(LEDGER, key, row)
        print(key, row, flush=True)
    rows = common.ledger(LEDGER)
    corpora = sorted({k.split("/")[0] for k in rows})
    body = (f"Screening: frozen MiniLM (first {LAYERS} layers, mean-pooled) on the first {BUDGET} tokens each rule "
            f"leaves, {NEIGHBOURS}-nearest-neighbour votes from {args.index_docs:,} seeded training documents; dev "
            f"cut into the seeded selection and report halves (seed {common.SELECTION_SEED}). Rules are learned on "
            "the training split only.\n\n" + "\n".join(table(rows, c) for c in corpora))
    common.write_result(LEDGER, "python benchmarks/neural/token_budget.py " + " ".join(sys.argv[1:]), body)


if __name__ == "__main__":
    main()
