"""PECOS's text path, from raw text with its own multithreaded C++ TF-IDF; called by text_path.py.

    python text_path_pecos.py featurize DATA OUT_JSON
    python text_path_pecos.py train DATA MODEL_DIR OUT_JSON
    python text_path_pecos.py predict DATA MODEL_DIR OUT_PREFIX N_LATENCY

Runs inside the peers' own virtual environment (libpecos pins numpy<2 and scipy<1.14), so it must
not import xmc. The TF-IDF settings are xmc's defaults in PECOS's words (word 1-2 grams, min_df 2,
at most 500k features, sublinear tf, smoothed idf, l2 rows); the tree and rankers are PECOS's
defaults (PIFA, hierarchical k-means, 16 splits, leaves <= 100), prediction beam 10.
"""

from __future__ import annotations

import gzip
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

VECTORIZER = {"type": "tfidf", "kwargs": {"base_vect_configs": [{
    "ngram_range": [1, 2], "max_feature": 500_000, "min_df_cnt": 2, "sublinear_tf": True, "smooth_idf": True,
    "norm": "l2", "analyzer": "word", "truncate_length": -1}], "threads": -1}}
BEAM, TOP_K = 10, 10


def _lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def _split(data: Path, split: str) -> tuple[list[str], list[list[str]]]:
    def find(kind):
        return next(p for p in (data / f"{split}_{kind}.txt.gz", data / f"{split}_{kind}.txt") if p.exists())

    return _lines(find("texts")), [line.split() for line in _lines(find("labels"))]


def _label_matrix(labels: list[list[str]], names: list[str]) -> sp.csr_matrix:
    index = {name: j for j, name in enumerate(names)}
    rows, cols = [], []
    for i, labs in enumerate(labels):
        for lab in set(labs):
            if lab in index:
                rows.append(i)
                cols.append(index[lab])
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(labels), len(names)))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def featurize(data: Path, out: Path) -> None:
    from pecos.utils.featurization.text.vectorizers import Vectorizer

    texts, _ = _split(data, "train")
    t0 = time.perf_counter()
    vec = Vectorizer.train(texts, config=json.loads(json.dumps(VECTORIZER)))
    X = vec.predict(texts)
    seconds = time.perf_counter() - t0
    out.write_text(json.dumps({"seconds": seconds, "n_features": X.shape[1], "nnz": int(X.nnz),
                               "peak_rss_mb": _peak_mb()}))


def train(data: Path, model_dir: Path, out: Path) -> None:
    from pecos.utils.featurization.text.vectorizers import Vectorizer
    from pecos.xmc import Indexer, LabelEmbeddingFactory
    from pecos.xmc.xlinear.model import XLinearModel

    stages, t0 = {}, time.perf_counter()
    texts, labels = _split(data, "train")
    names = sorted({lab for labs in labels for lab in labs})
    Y = _label_matrix(labels, names)
    stages["read"], t0 = time.perf_counter() - t0, time.perf_counter()
    vec = Vectorizer.train(texts, config=json.loads(json.dumps(VECTORIZER)))
    X = vec.predict(texts)
    stages["tfidf"], t0 = time.perf_counter() - t0, time.perf_counter()
    chain = Indexer.gen(LabelEmbeddingFactory.create(Y, X, method="pifa"), indexer_type="hierarchicalkmeans")
    stages["tree"], t0 = time.perf_counter() - t0, time.perf_counter()
    model = XLinearModel.train(X, Y, C=chain)
    stages["rankers"], t0 = time.perf_counter() - t0, time.perf_counter()
    model_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(model_dir / "xlinear"))
    vec.save(str(model_dir / "vectorizer"))
    (model_dir / "labels.txt").write_text("".join(n + "\n" for n in names))
    stages["save"] = time.perf_counter() - t0
    out.write_text(json.dumps({"stages": stages, "peak_rss_mb": _peak_mb()}))


def predict(data: Path, model_dir: Path, prefix: Path, n_latency: int) -> None:
    from pecos.utils.featurization.text.vectorizers import Vectorizer
    from pecos.xmc.xlinear.model import XLinearModel

    texts, _ = _split(data, "dev")
    vec = Vectorizer.load(str(model_dir / "vectorizer"))
    model = XLinearModel.load(str(model_dir / "xlinear"), is_predict_only=True)  # PECOS's fast inference path
    model.predict(vec.predict(texts[:500]), beam_size=BEAM, only_topk=TOP_K)  # warm-up
    t0 = time.perf_counter()
    X = vec.predict(texts)
    t1 = time.perf_counter()
    P = model.predict(X, beam_size=BEAM, only_topk=TOP_K)
    t2 = time.perf_counter()
    sp.save_npz(f"{prefix}.npz", sp.csr_matrix(P, dtype=np.float32))
    featurise, search = [], []
    for i in range(n_latency):
        text = texts[i % len(texts)]
        a = time.perf_counter()
        x = vec.predict([text], threads=1)
        b = time.perf_counter()
        model.predict(x, beam_size=BEAM, only_topk=5, threads=1)
        c = time.perf_counter()
        featurise.append(1000 * (b - a))
        search.append(1000 * (c - b))
    total = np.add(featurise, search)
    Path(f"{prefix}.json").write_text(json.dumps({
        "batch_ms_per_doc": 1000 * (t2 - t0) / len(texts), "batch_featurise_ms_per_doc": 1000 * (t1 - t0) / len(texts),
        "one_median_ms": float(np.median(total)), "one_p99_ms": float(np.percentile(total, 99)),
        "one_stages_ms": {"featurise": float(np.median(featurise)), "beam search + top k": float(np.median(search))},
        "labels": (model_dir / "labels.txt").read_text().split("\n")[:-1]}))


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "featurize":
        featurize(Path(args[0]), Path(args[1]))
    elif mode == "train":
        train(Path(args[0]), Path(args[1]), Path(args[2]))
    elif mode == "predict":
        predict(Path(args[0]), Path(args[1]), Path(args[2]), int(args[3]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
