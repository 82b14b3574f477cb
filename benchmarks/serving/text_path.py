"""xmc's text path beside PECOS with its own C++ TF-IDF, in one run, from raw text.

    python benchmarks/serving/text_path.py [--datasets full,titles] [--latency 1000] [--skip-sklearn]

For EURLEX57K (full text) and EURLEX57K-titles, each step in a process of its own:
- featurising the training texts (fit + transform): xmc's parallel TF-IDF, scikit-learn's
  ``TfidfVectorizer`` (the reference whose features xmc reproduces) and PECOS's C++ ``Tfidf``, all
  with xmc's defaults (word 1-2 grams, min_df 2, at most 500k terms, sublinear tf, l2 rows);
- XR-Linear end to end from text: ``xmc train --eval-split none`` (start-up, reading, featurising,
  tree, rankers, saving), timed from start to exit, against PECOS's read + TF-IDF + PIFA tree +
  ``XLinearModel.train`` + save in one process;
- batch prediction of dev (featurise + beam 10 + top 10) per document, on both cores, with P@1/P@5;
- one text at a time on one thread (``api.predict_texts``, what ``xmc serve`` runs; PECOS's
  ``predict(threads=1)``): median and p99 over ``--latency`` dev texts, and each stage's median.

Results: benchmarks/results/text_path.md (generated; the analysis written by hand is
text_path.notes.md, which a rerun leaves alone).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for its lib
from lib import common  # noqa: E402

WORK = common.WORK / "text_path"
HERE = Path(__file__).resolve().parent
XMC = [sys.executable, "-m", "xmc.cli.main"]
TOP_K, BEAM = 10, 10
NO_CACHE = {**os.environ, "XMC_FEATURE_CACHE": "off"}  # every run featurises: a cached split would flatter xmc


# ---- children (each step in a fresh process) -----------------------------------------------------

def child_featurize(data: str, out: Path, which: str) -> None:
    from xmc import api
    from xmc.features import TfidfConfig, TfidfFeaturizer

    texts = api.resolve(data).load("train").texts
    if which == "xmc":
        TfidfFeaturizer(TfidfConfig(min_df=1)).fit_transform(texts[:50])  # numba's kernels load from its cache
        t0 = time.perf_counter()
        X = TfidfFeaturizer().fit_transform(texts)
    else:
        from sklearn.feature_extraction.text import TfidfVectorizer

        c = TfidfConfig()
        t0 = time.perf_counter()
        X = TfidfVectorizer(ngram_range=(1, c.ngram_max), min_df=c.min_df, max_features=c.max_features,
                            sublinear_tf=c.sublinear_tf, dtype=np.float32).fit_transform(texts)
    seconds = time.perf_counter() - t0
    out.write_text(json.dumps({"seconds": seconds, "n_features": X.shape[1], "nnz": int(X.nnz),
                               "peak_rss_mb": common.peak_rss_mb()}))


def child_predict(data: str, model: str, out: Path, n_latency: int) -> None:
    import numba

    from xmc import api

    pipeline = api.load(model)
    dataset = api.resolve(data)
    dev, train = dataset.load("dev"), dataset.load("train")
    texts = dev.texts
    pipeline.predict(texts[:500], top_k=TOP_K, beam_size=BEAM)  # warm-up: kernels, hash tables
    t0 = time.perf_counter()
    P = pipeline.predict(texts, top_k=TOP_K, beam_size=BEAM)
    batch_ms = 1000 * (time.perf_counter() - t0) / len(texts)
    scores = common.score_predictions(P, pipeline.vocab, train.labels, dev.labels)
    numba.set_num_threads(1)
    featurizer, model_ = pipeline.featurizer, pipeline.model
    for text in texts[:50]:
        api.predict_texts(pipeline, [text], top_k=5)
    # the whole request, then (in a pass of its own, so no stage reads caches the request warmed)
    # each stage alone; "the rest" is the request's median less the stages' medians
    total = []
    for i in range(n_latency):
        text = [texts[i % len(texts)]]
        a = time.perf_counter()
        api.predict_texts(pipeline, text, top_k=5)
        total.append(1000 * (time.perf_counter() - a))
    stages = {"featurise": [], "beam search + top k": []}
    for i in range(n_latency):
        text = [texts[i % len(texts)]]
        b = time.perf_counter()
        ptr, idx, counts = featurizer.count_rows(text)
        val = featurizer.values(ptr, idx, counts)
        c = time.perf_counter()
        model_.predict_arrays(ptr, idx, val, top_k=5, beam_size=BEAM)
        d = time.perf_counter()
        stages["featurise"].append(1000 * (c - b))
        stages["beam search + top k"].append(1000 * (d - c))
    medians = {k: float(np.median(v)) for k, v in stages.items()}
    medians["labels, calibration, Python"] = max(0.0, float(np.median(total)) - sum(medians.values()))
    out.write_text(json.dumps({
        "batch_ms_per_doc": batch_ms, "P@1": scores["P@1"], "P@5": scores["P@5"],
        "one_median_ms": float(np.median(total)), "one_p99_ms": float(np.percentile(total, 99)),
        "one_stages_ms": medians}))


# ---- the run ---------------------------------------------------------------------------------------

def _child(args: list[str], log: Path) -> dict:
    return common.run_command([sys.executable, str(Path(__file__).resolve()), "--child", *args], log, env=NO_CACHE)


def _pecos(args: list[str], log: Path) -> dict:
    return common.run_command([str(common.peers_python()), str(HERE / "text_path_pecos.py"), *args], log)


def run_dataset(name: str, data: str, args) -> dict:
    work = WORK / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    r: dict = {}
    print(f"[{name}] featurising", flush=True)
    _child(["featurize", data, str(work / "xmc_feat.json"), "xmc"], work / "xmc_feat.log")
    r["feat_xmc"] = json.loads((work / "xmc_feat.json").read_text())
    if not args.skip_sklearn:
        _child(["featurize", data, str(work / "sk_feat.json"), "sklearn"], work / "sk_feat.log")
        r["feat_sklearn"] = json.loads((work / "sk_feat.json").read_text())
    _pecos(["featurize", data, str(work / "pecos_feat.json")], work / "pecos_feat.log")
    r["feat_pecos"] = json.loads((work / "pecos_feat.json").read_text())

    print(f"[{name}] training from text", flush=True)
    run = common.run_command([*XMC, "train", "--method", "xr-linear", "--data", data, "--out", str(work / "xmc"),
                              "--eval-split", "none"], work / "xmc_train.log", env=NO_CACHE)
    fit = json.loads((work / "xmc" / "model" / "xmc.json").read_text())["shapes"]["fit_seconds"]
    r["train_xmc"] = {"seconds": run["seconds"], "peak_rss_mb": run["peak_mb"],
                      "stages": {**common.stage_seconds(run["stdout"]), **fit}}
    run = _pecos(["train", data, str(work / "pecos"), str(work / "pecos_train.json")], work / "pecos_train.log")
    r["train_pecos"] = {"seconds": run["seconds"], "peak_rss_mb": run["peak_mb"],
                        **json.loads((work / "pecos_train.json").read_text())}

    print(f"[{name}] predicting", flush=True)
    _child(["predict", data, str(work / "xmc"), str(work / "xmc_pred.json"), str(args.latency)], work / "xmc_pred.log")
    r["pred_xmc"] = json.loads((work / "xmc_pred.json").read_text())
    _pecos(["predict", data, str(work / "pecos"), str(work / "pecos_pred"), str(args.latency)],
           work / "pecos_pred.log")
    pecos = json.loads((work / "pecos_pred.json").read_text())
    from scipy import sparse as sps

    from xmc import api
    from xmc.data import LabelVocab

    dataset = api.resolve(data)
    scores = common.score_predictions(sps.load_npz(work / "pecos_pred.npz"), LabelVocab(pecos.pop("labels")),
                                      dataset.load("train").labels, dataset.load("dev").labels)
    r["pred_pecos"] = {**pecos, "P@1": scores["P@1"], "P@5": scores["P@5"]}
    return r


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x"


def report(results: dict) -> str:
    out = []
    for name, r in results.items():
        fx, fp, tx, tp, px, pp = (r["feat_xmc"], r["feat_pecos"], r["train_xmc"], r["train_pecos"], r["pred_xmc"],
                                  r["pred_pecos"])
        out += [f"## {name}", "", "| step | xmc | PECOS (C++ TF-IDF) | xmc / PECOS | scikit-learn |",
                "|---|---|---|---|---|"]
        sk = r.get("feat_sklearn")
        out.append(f"| featurise train (fit + transform), s | {fx['seconds']:.1f} | {fp['seconds']:.1f} | "
                   f"{_ratio(fx['seconds'], fp['seconds'])} | {sk['seconds']:.1f} |" if sk else
                   f"| featurise train (fit + transform), s | {fx['seconds']:.1f} | {fp['seconds']:.1f} | "
                   f"{_ratio(fx['seconds'], fp['seconds'])} | - |")
        out.append(f"| featurise: peak RSS of the process, MB | {fx['peak_rss_mb']:.0f} | {fp['peak_rss_mb']:.0f} | "
                   f"| {sk['peak_rss_mb']:.0f} |" if sk else "| featurise: peak RSS, MB | - | - | | - |")
        out.append(f"| featurise: terms, nonzeros | {fx['n_features']:,}, {fx['nnz']:,} | {fp['n_features']:,}, "
                   f"{fp['nnz']:,} | | {sk['n_features']:,}, {sk['nnz']:,} |" if sk else "")
        out.append(f"| XR-Linear end to end from text, s | {tx['seconds']:.1f} | {tp['seconds']:.1f} | "
                   f"{_ratio(tx['seconds'], tp['seconds'])} | |")
        out.append(f"| end to end: peak RSS, MB | {tx['peak_rss_mb']:.0f} | {tp['peak_rss_mb']:.0f} | | |")
        out.append(f"| batch prediction of dev (featurise + beam {BEAM} + top {TOP_K}), ms/doc | "
                   f"{px['batch_ms_per_doc']:.3f} | {pp['batch_ms_per_doc']:.3f} | "
                   f"{_ratio(px['batch_ms_per_doc'], pp['batch_ms_per_doc'])} | |")
        out.append(f"| one text, one thread, median ms | {px['one_median_ms']:.3f} | {pp['one_median_ms']:.3f} | "
                   f"{_ratio(px['one_median_ms'], pp['one_median_ms'])} | |")
        out.append(f"| one text, one thread, p99 ms | {px['one_p99_ms']:.3f} | {pp['one_p99_ms']:.3f} | "
                   f"{_ratio(px['one_p99_ms'], pp['one_p99_ms'])} | |")
        out.append(f"| dev P@1 / P@5 | {px['P@1']:.2f} / {px['P@5']:.2f} | {pp['P@1']:.2f} / {pp['P@5']:.2f} | | |")
        xs = " · ".join(f"{k} {v:.1f}" for k, v in tx["stages"].items())
        ps = " · ".join(f"{k} {v:.1f}" for k, v in tp["stages"].items())
        out += ["", f"- training stages, s: xmc {xs} (the process's other time is start-up and saving); "
                f"PECOS {ps}"]
        for who, p in (("xmc", px), ("PECOS", pp)):
            total = sum(p["one_stages_ms"].values())
            shares = " · ".join(f"{k} {v:.3f} ms ({100 * v / total:.0f}%)" for k, v in p["one_stages_ms"].items())
            out.append(f"- one text, stage medians, {who}: {shares}")
        out.append("")
    return "\n".join(line for line in out if line is not None)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        mode, *rest = sys.argv[2:]
        if mode == "featurize":
            child_featurize(rest[0], Path(rest[1]), rest[2])
        else:
            child_predict(rest[0], rest[1], Path(rest[2]), int(rest[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="EURLEX57K")
    parser.add_argument("--datasets", default="full,titles")
    parser.add_argument("--latency", type=int, default=1000, help="single-text requests timed per system")
    parser.add_argument("--skip-sklearn", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    from xmc import api

    paths = {"full": str(api.resolve(args.data).path)}
    if "titles" in args.datasets:
        paths["titles"] = common.titles_dataset(args.data)
    results = {f"EURLEX57K{'' if k == 'full' else '-titles'}": run_dataset(k, paths[k], args)
               for k in args.datasets.split(",")}
    (WORK / "results.json").write_text(json.dumps(results, indent=1))
    command = "python benchmarks/serving/text_path.py " + " ".join(sys.argv[1:])
    body = ("Each step in its own process, xmc and PECOS one after the other on the same machine. "
            "PECOS 1.2.8 in its own venv (numpy<2).\n\n" + report(results))
    print(common.write_result("text_path", command.strip(), body))


if __name__ == "__main__":
    main()
