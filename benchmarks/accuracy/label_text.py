"""Labels known by their text on EURLEX57K (train -> dev), under the EURLEX57K papers' protocol
(``xmc evaluate --groups``): models with and without label-text scoring, and the plain TF-IDF cosine
between a document and the label texts (the floor a zero-shot scorer must beat).

    python benchmarks/accuracy/label_text.py [--data EURLEX57K] [--models xr-linear,dual-encoder] [--reuse]

A model that reads label texts itself (``dual-encoder``) is trained twice with ``--zero-shot splits``,
without and with ALC's losses (``--set alc=true``); any other model is trained once and its
``--zero-shot`` variants are trained with ``--zero-shot`` (XR-Linear: its TF-IDF, fitted on the training
and label texts, is shared with the label-text scorer) or, for XR-Transformer, made from the trained
model by ``with_label_texts`` (what ``xmc train --zero-shot`` adds after fitting; its training time
is then the plain model's plus that step). The feature cache is off: every run pays for its TF-IDF.

Per system, each trained in its own process: P@1/5, RP@5 and nDCG@5 overall and for frequent,
few-shot and zero-shot labels, AR@P90 (the share of documents accepted automatically at 90%
precision, two-fold on dev), training time, prediction ms per document. Zero-shot candidates:
the labels any split uses (``--zero-shot splits``, the papers' protocol) and every EUROVOC concept
without a training document (``--zero-shot all``). Results: benchmarks/results/label_text.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for its lib
from lib import common, runs  # noqa: E402
from lib.label_text_report import report  # noqa: E402

NAME = "label_text"


def run_child(method: str, data: str, zero_shot: str, out: Path, overrides: list[str], base: Path | None) -> None:
    """Child process: train (with ``--zero-shot`` unless ``none``; from the trained ``base`` model
    when given), evaluate dev with groups, time."""
    from xmc import api

    t0 = time.perf_counter()
    zero_shot = None if zero_shot == "none" else zero_shot
    if base is None:
        result = api.train(method, data, out / "model", overwrite=True, zero_shot=zero_shot, overrides=overrides)
        wall, seconds = time.perf_counter() - t0, dict(result.seconds)
        blend = result.pipeline.label_text
        if blend is not None:  # trained with --zero-shot: the plain model's run is beside it
            plain = json.load(open(out.parent / f"{method}-none" / "result.json"))["seconds"]
            seconds.update({f"label_text_{k}": v for k, v in blend.fit_seconds.items()},
                           base_fit=plain["fit"], base_features=plain["features"])
    else:
        from xmc.api.prediction import predict_split
        from xmc.api.training import _calibrate, with_label_texts
        from xmc.metrics.report import RECALL_K

        dataset = api.resolve(data)
        t_text = time.perf_counter()
        pipeline = with_label_texts(api.load(base / "model"), dataset, dataset.load("train"), dataset.load("dev"),
                                    zero_shot, None)
        text_step = time.perf_counter() - t_text
        dev = dataset.load("dev")
        _calibrate(pipeline, dev, predict_split(pipeline, dev, top_k=RECALL_K), f"{dataset.name}/dev")
        pipeline.save(out / "model", overwrite=True)
        before = json.load(open(base / "result.json"))
        seconds = {**before["seconds"], "label_text": time.perf_counter() - t0, "label_text_step": text_step,
                   "base_wall": before["wall_s"], "base_fit": before["seconds"]["fit"],
                   **{f"label_text_{k}": v for k, v in pipeline.label_text.fit_seconds.items()}}
        wall = before["wall_s"] + seconds["label_text"]
    metrics = api.evaluate(out / "model", data, "dev", groups=True, record=False)
    dev = api.resolve(data).load("dev")
    pipeline = api.load(out / "model")
    pipeline.predict(texts=dev.texts[:20], top_k=10)
    t0 = time.perf_counter()
    scores = pipeline.predict(texts=dev.texts, top_k=10)
    batch_ms = 1000 * (time.perf_counter() - t0) / len(dev.texts)
    json.dump({"metrics": metrics, "halves": half_groups(pipeline, dev, scores), "wall_s": wall, "seconds": seconds,
               "batch_ms_per_doc": batch_ms, "peak_rss_mb": common.peak_rss_mb()}, open(out / "result.json", "w"),
              indent=1, default=str)


def half_groups(pipeline, dev, scores) -> dict[str, dict]:
    """RP@5 and nDCG@5 of the frequent, few-shot and zero-shot groups on each seeded half of dev
    (``common.halves``): the selection half and the report half."""
    from xmc.metrics.groups import group_metrics

    truth = pipeline.vocab.encode(dev.labels).Y
    freq = np.concatenate([pipeline.label_freq, np.zeros(truth.shape[1] - pipeline.label_freq.size, np.int64)])
    out = {}
    for half, rows in zip(("selection", "report"), common.halves(truth.shape[0]), strict=True):
        groups = group_metrics(truth[rows], sp.csr_matrix(scores)[rows], freq, (5,))
        out[half] = {g: {"RP@5": m.get("RP@5", 0.0), "nDCG@5": m.get("nDCG@5", 0.0), "n_docs": m.get("n_docs", 0)}
                     for g, m in groups.items()}
    return out


BM25_K1, BM25_B = 1.2, 0.75  # the usual Okapi settings, not tuned
FLOOR_FIELDS = {"descriptor": (False, False), "descriptor + alternatives": (True, False),
                "descriptor + alternatives + parents": (True, True)}


def floor_child(data: str, out: Path) -> None:
    """Child process: the plain TF-IDF cosine of dev documents and label texts (nothing trained),
    zero-shot labels only, for both candidate sets, over a grid of settings (n-grams, descriptor
    fields, TF-IDF fitted on the training texts alone or with the label texts; BM25 on the terms of
    each featuriser fitted with the label texts), each on the seeded
    selection half, the report half and all of dev. The floor is the setting best on the selection
    half (mean RP@5 of the two candidate sets)."""
    import gzip

    from xmc import api
    from xmc.features.tfidf import TfidfConfig, TfidfFeaturizer
    from xmc.utils.sparse import l2_normalize_rows

    dataset = api.resolve(data)
    train, dev = dataset.load("train"), dataset.load("dev")
    descriptors = json.load(gzip.open(next(dataset.path.glob("*.json.gz"))))
    seen = {label for labels in train.labels for label in labels}
    used = {label for split in dataset.splits for labels in dataset.load(split).labels for label in labels}
    sets = {"splits": sorted((used - seen) & set(descriptors)), "all": sorted(set(descriptors) - seen)}
    rows = {}
    for ngram in (1, 2):
        for fields, (alt, parents) in FLOOR_FIELDS.items():
            def text(c, alt=alt, parents=parents):
                d = descriptors[c]
                return "; ".join([d["label"]] + (list(d.get("alt_labels") or []) if alt else [])
                                 + ([descriptors[p]["label"] for p in d.get("parents") or [] if p in descriptors]
                                    if parents else []))
            for with_labels in (False, True):
                corpus = list(train.texts) + ([text(c) for c in descriptors] if with_labels else [])
                featurizer = TfidfFeaturizer(TfidfConfig(ngram_max=ngram)).fit(corpus)
                X = l2_normalize_rows(featurizer.transform(dev.texts))
                name = (f"{'1-2' if ngram == 2 else '1'}-grams, {fields}, fitted on train"
                        + (" + label texts" if with_labels else ""))
                rows[name] = {}
                for which, candidates in sets.items():
                    T = l2_normalize_rows(featurizer.transform([text(c) for c in candidates]))
                    rows[name][which] = zero_shot_halves(sp.csr_matrix(X @ T.T), dev.labels, candidates)
                if with_labels:  # BM25 on the same terms (its term statistics need the label texts less)
                    W = bm25_rows(featurizer, dev.texts, train.texts, len(corpus))
                    rows["BM25, " + name] = {which: zero_shot_halves(bm25_scores(W, featurizer, [text(c) for c in c_]),
                                                                     dev.labels, c_) for which, c_ in sets.items()}
    chosen = max(rows, key=lambda n: np.mean([rows[n][w]["selection"]["RP@5"] for w in sets]))
    json.dump({"rows": rows, "chosen": chosen, "candidates": {w: len(c) for w, c in sets.items()}},
              open(out, "w"), indent=1)


def bm25_rows(featurizer, texts: list[str], train_texts: list[str], n_fitted: int, k1: float = BM25_K1,
              b: float = BM25_B) -> sp.csr_matrix:
    """Okapi BM25's document side over ``featurizer``'s terms: each term's saturated count times its
    BM25 idf (from the document frequencies ``featurizer`` was fitted with, over ``n_fitted`` texts),
    lengths against the mean of 5,000 seeded training documents."""
    def counts(part):
        ptr, cols, tf = featurizer.count_rows(part)
        return sp.csr_matrix((tf.astype(np.float32), cols, ptr), shape=(len(part), featurizer.n_features_))

    rng = np.random.default_rng(common.SELECTION_SEED)
    sample = [train_texts[i] for i in rng.choice(len(train_texts), min(5000, len(train_texts)), replace=False)]
    avgdl = float(counts(sample).sum(1).mean())
    C = counts(texts)
    length = np.repeat(np.asarray(C.sum(1)).ravel() / avgdl, np.diff(C.indptr))
    df = (1.0 + n_fitted) / np.exp(featurizer.idf_.astype(np.float64) - 1.0) - 1.0  # inverts the smoothed idf
    idf = np.log1p((n_fitted - df + 0.5) / (df + 0.5))
    C.data = (idf[C.indices] * C.data * (k1 + 1) / (C.data + k1 * (1 - b + b * length))).astype(np.float32)
    return C


def bm25_scores(W: sp.csr_matrix, featurizer, label_texts: list[str]) -> sp.csr_matrix:
    """BM25 of each document (``bm25_rows``) for each label text as the query (its distinct terms)."""
    ptr, cols, _ = featurizer.count_rows(label_texts)
    Q = sp.csr_matrix((np.ones(cols.size, np.float32), cols, ptr), shape=(len(label_texts), featurizer.n_features_))
    return sp.csr_matrix(W @ Q.T)


def zero_shot_halves(scores: sp.csr_matrix, labels: list[list[str]], candidates: list[str]) -> dict:
    """RP@5 / nDCG@5 of a ranking of the ``candidates`` on the dev documents with one of them, on each
    seeded half of dev and on all of it."""
    from xmc.data.vocab import LabelVocab
    from xmc.metrics.groups import rank_metrics
    from xmc.utils.sparse import topk_per_row

    truth = LabelVocab(candidates).encode(labels).Y  # a document's candidates among its labels
    top = topk_per_row(sp.csr_matrix(scores, dtype=np.float32), 10)
    out = {}
    n = truth.shape[0]
    for half, part in zip(("selection", "report", "dev"), (*common.halves(n), np.arange(n)), strict=True):
        m = rank_metrics(truth[part], top[part], (5,))
        out[half] = {"RP@5": m["RP@5"], "nDCG@5": m["nDCG@5"], "docs": int((np.diff(truth[part].indptr) > 0).sum())}
    return out


def systems(method: str) -> list[tuple[str, str, str, list[str], str | None]]:
    """(name, work folder, --zero-shot, --set overrides, folder of the model it is made from) per system."""
    if method == "dual-encoder":
        return [("dual-encoder --zero-shot splits", "dual-encoder-splits", "splits", [], None),
                ("dual-encoder + ALC --zero-shot splits", "dual-encoder-alc-splits", "splits", ["alc=true"], None)]
    # XR-Linear trains with --zero-shot as a user would (its TF-IDF is then fitted on the training and
    # label texts and shared with the scorer); a model that reads texts gets the label texts added
    # to its trained copy, which costs minutes less and gives the same model
    base = f"{method}-none" if method == "xr-transformer" else None
    return [(f"{method} (no label text)", f"{method}-none", "none", [], None),
            (f"{method} --zero-shot splits", f"{method}-splits", "splits", [], base),
            (f"{method} --zero-shot all", f"{method}-all", "all", [], base)]


def scorers_child(data: str, out: Path) -> None:
    """Child process: unsupervised zero-shot scorers on dev's documents with a zero-shot label (the
    papers' candidates): what the label text, the document's extent and a sentence encoder bring."""
    import gzip

    from xmc import api
    from xmc.data.vocab import LabelVocab
    from xmc.features.tfidf import TfidfFeaturizer
    from xmc.metrics.groups import rank_metrics
    from xmc.nn.sentence import sentence_embeddings
    from xmc.utils.sparse import l2_normalize_rows, topk_per_row

    dataset = api.resolve(data)
    train, dev = dataset.load("train"), dataset.load("dev")
    texts = dataset.label_texts()
    seen = {label for labels in train.labels for label in labels}
    used = {label for split in dataset.splits for labels in dataset.load(split).labels for label in labels}
    candidates = sorted((used - seen) & set(texts))
    truth = LabelVocab(candidates).encode(dev.labels).Y
    docs = np.flatnonzero(np.diff(truth.indptr) > 0)  # the documents with a zero-shot label
    truth = truth[docs]
    featurizer = TfidfFeaturizer().fit(train.texts)
    doc_texts = [dev.texts[i] for i in docs]

    def tfidf(doc_list, label_list):
        D, T = l2_normalize_rows(featurizer.transform(doc_list)), l2_normalize_rows(featurizer.transform(label_list))
        return (D @ T.T).toarray()

    def minilm(doc_list, label_list, tokens):
        D = sentence_embeddings(doc_list, "minilm-l6", tokens)
        T = sentence_embeddings(label_list, "minilm-l6", 64)
        return (D / np.linalg.norm(D, axis=1, keepdims=True)) @ (T / np.linalg.norm(T, axis=1, keepdims=True)).T

    descriptors = json.load(gzip.open(next(dataset.path.glob("*.json.gz"))))

    def text_of(c, alt, parents):
        d = descriptors[c]
        return "; ".join([d["label"]] + (d["alt_labels"] if alt else [])
                         + ([descriptors[p]["label"] for p in d["parents"] if p in descriptors] if parents else []))

    full = [texts[c] for c in candidates]
    base = tfidf(doc_texts, full)
    chunks, owner = [], []
    for i, t in enumerate(doc_texts):
        words = t.split()
        for start in range(0, max(len(words), 1), 100):
            chunks.append(" ".join(words[start:start + 100]))
            owner.append(i)
    owner = np.array(owner)
    per_chunk = minilm(chunks, full, 160)
    chunk_max = np.stack([per_chunk[owner == i].max(0) for i in range(len(docs))])
    scorers = {
        "TF-IDF, full text, descriptor + alternatives + parents (xmc's label text)": base,
        "TF-IDF, descriptor alone": tfidf(doc_texts, [text_of(c, False, False) for c in candidates]),
        "TF-IDF, descriptor + parents": tfidf(doc_texts, [text_of(c, False, True) for c in candidates]),
        "TF-IDF, first 80 words of the document": tfidf([" ".join(t.split()[:80]) for t in doc_texts], full),
        "TF-IDF, first 200 words": tfidf([" ".join(t.split()[:200]) for t in doc_texts], full),
        "MiniLM, first 64 tokens": minilm(doc_texts, full, 64),
        "MiniLM, first 256 tokens": minilm(doc_texts, full, 256),
        "MiniLM, best 100-word passage": chunk_max,
        "TF-IDF + 0.2 x MiniLM best passage": base + 0.2 * chunk_max,
        "TF-IDF + 0.5 x MiniLM best passage": base + 0.5 * chunk_max,
    }
    result = {"docs": len(docs), "candidates": len(candidates), "scorers": {}}
    for name, S in scorers.items():
        m = rank_metrics(truth, topk_per_row(sp.csr_matrix(S), 10), (5,))
        result["scorers"][name] = {"RP@5": m["RP@5"], "nDCG@5": m["nDCG@5"]}
    json.dump(result, open(out, "w"), indent=1)


PSEUDO_LABELS, PSEUDO_SEEDS = 300, (0, 1, 2)


def pseudo_child(data: str, model: Path, out: Path) -> None:
    """Child process: the ranker and the floor on known labels made unseen (``lib.pseudo_unseen``),
    with the featuriser and label texts of the ``--zero-shot splits`` XR-Linear model in ``model``."""
    from lib.pseudo_unseen import pseudo_unseen

    from xmc import api
    from xmc.utils.sparse import l2_normalize_rows

    dataset = api.resolve(data)
    train, dev = dataset.load("train"), dataset.load("dev")
    pipeline = api.load(model)
    scorer, n_known = pipeline.label_text.scorer, pipeline.label_text.n_known
    X, X_dev = (sp.csr_matrix(l2_normalize_rows(scorer.featurizer.transform(s.texts)), dtype=np.float32)
                for s in (train, dev))
    Y, truth = (pipeline.vocab.encode(s.labels).Y[:, :n_known] for s in (train, dev))
    n_dev = X_dev.shape[0]
    parts = dict(zip(("selection", "report", "dev"), (*common.halves(n_dev), np.arange(n_dev)), strict=True))
    rows = [pseudo_unseen(scorer, X, Y, X_dev, truth, parts, PSEUDO_LABELS, seed) for seed in PSEUDO_SEEDS]
    json.dump(rows, open(out, "w"), indent=1)


def accept_child(data: str, folder: Path) -> None:
    """Child process: what a global threshold has to work with (why AR@P90 moves or not). For one
    model on dev: P@1 (from which the table derives the ceiling, min(100, P@1 / 0.9): the accept
    rate of a perfect ordering of the top scores at 90% precision); the rate of one threshold chosen on all of dev (no
    folds); and the AUROC of the raw top score as a predictor of a right top label. Calibration is
    monotone, so only this ordering of documents by their top score decides AR@P90."""
    from sklearn.metrics import roc_auc_score

    from xmc import api
    from xmc.metrics.calibration import ACCEPT_PRECISION, accept_threshold, top_predictions

    dev = api.resolve(data).load("dev")
    pipeline = api.load(folder / "model")
    top, hit = top_predictions(pipeline.predict(dev.texts, dev.features, top_k=1), pipeline.vocab.encode(dev.labels).Y)
    threshold = accept_threshold(top, hit, ACCEPT_PRECISION)
    json.dump({"P@1": 100 * hit.mean(), "one_threshold": 100 * float((top >= threshold).mean()),
               "auroc": 100 * roc_auc_score(hit, np.where(np.isfinite(top), top, -1e9))},
              open(folder / "accept.json", "w"), indent=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="EURLEX57K")
    ap.add_argument("--models", default="xr-linear")
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        if args.child[0] == "floor":
            floor_child(args.child[1], Path(args.child[2]))
        elif args.child[0] == "scorers":
            scorers_child(args.child[1], Path(args.child[2]))
        elif args.child[0] == "pseudo":
            pseudo_child(args.child[1], Path(args.child[2]), Path(args.child[3]))
        elif args.child[0] == "accept":
            accept_child(args.child[1], Path(args.child[2]))
        else:
            base = None if args.child[6] == "-" else Path(args.child[6])
            run_child(*args.child[1:4], Path(args.child[4]), json.loads(args.child[5]), base)
        return
    start = time.perf_counter()
    os.environ["XMC_FEATURE_CACHE"] = "off"  # every run pays for its TF-IDF: the time shares compare whole fits
    for method in args.models.split(","):
        for name, folder, zs, overrides, base in systems(method):
            out = common.WORK / NAME / folder
            out.mkdir(parents=True, exist_ok=True)
            if not runs.reused(out, args.reuse):
                print(f"{name}", flush=True)
                runs.child_of(__file__, ["--child", "train", method, args.data, zs, str(out), json.dumps(overrides),
                                           str(common.WORK / NAME / base) if base else "-"])
            if not (args.reuse and (out / "accept.json").exists()):
                runs.child_of(__file__, ["--child", "accept", args.data, str(out)])
            result = json.load(open(out / "result.json"))
            result["accept"] = json.load(open(out / "accept.json"))
            ran = time.gmtime((out / "result.json").stat().st_mtime)
            result.setdefault("ran_at", time.strftime("%Y-%m-%d %H:%M", ran))  # a reused row keeps its date
            common.record(NAME, name, result)
    floor_path = common.WORK / NAME / "floor.json"
    if not (args.reuse and floor_path.exists()):
        runs.child_of(__file__, ["--child", "floor", args.data, str(floor_path)])
    scorers_path = common.WORK / NAME / "scorers.json"
    if not (args.reuse and scorers_path.exists()):
        runs.child_of(__file__, ["--child", "scorers", args.data, str(scorers_path)])
    pseudo_path = common.WORK / NAME / "pseudo.json"
    splits_model = common.WORK / NAME / "xr-linear-splits" / "model"
    if not (args.reuse and pseudo_path.exists()) and splits_model.exists():
        runs.child_of(__file__, ["--child", "pseudo", args.data, str(splits_model), str(pseudo_path)])
    pseudo = json.load(open(pseudo_path)) if pseudo_path.exists() else []
    results = dict(sorted(common.ledger(NAME).items(), key=lambda kv: SYSTEM_ORDER.index(kv[0].split(" ")[0])))
    body = report(results, json.load(open(floor_path)), json.load(open(scorers_path)), pseudo,
                  time.perf_counter() - start)
    print(common.write_result(NAME, "python benchmarks/accuracy/label_text.py " + " ".join(sys.argv[1:]), body))


SYSTEM_ORDER = ["xr-linear", "dual-encoder", "xr-transformer"]


if __name__ == "__main__":
    main()
