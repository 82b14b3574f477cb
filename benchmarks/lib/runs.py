"""Running one system of a benchmark in a process of its own: training (``xmc train``'s Python API)
with prediction timings, score ensembles, the dated ledger of finished rows, and the datasets the
neural benchmarks share. ``python benchmarks/lib/runs.py --child train|adopt|ensemble ...`` is the
child process that :func:`child` starts."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for its lib
from lib import common  # noqa: E402

METHODS = ("xr-linear", "xr-transformer", "lightxml", "cascadexml")
NEURAL = ("xr-transformer", "lightxml", "cascadexml", "elias++", "dual-encoder")
METRICS = ("P@1", "P@3", "P@5", "PSP@5", "nDCG@5")
N_SINGLE = 200
DRY_RUN_SETS = {"xr-transformer": ["finetune.steps=[2]", "finetune.eval_docs=20", "encoder.max_seq_len=16"],
                "lightxml": ["train.epochs=1", "train.eval_docs=20", "encoder.max_seq_len=16"],
                "cascadexml": ["train.epochs=1", "train.eval_docs=20", "encoder.max_seq_len=16"],
                "elias++": ["train.epochs=1", "stage1_epochs=1", "warm_epochs=1", "train.eval_docs=20",
                            "encoder.max_seq_len=16"],
                "dual-encoder": ["train.epochs=1", "label_epochs=1", "train.eval_docs=20", "encoder.max_seq_len=16",
                                 "label_max_seq_len=8", "freeze_layers=0"],
                "xr-linear": []}


def config_overrides(method: str, config: str, dry_run: bool) -> list[str]:
    """``--set`` strings that turn the machine's default config into the asked one."""
    sets = list(DRY_RUN_SETS[method]) if dry_run else []
    if config == "gpu" and method in NEURAL:
        sets.insert(0, f"__gpu__={method}")
    return sets


def train_one(method: str, data: str, out: Path, sets: list[str], batch_docs: int = 0) -> None:
    """Child process: ``xmc train`` (the Python API it calls), then prediction timings."""
    from xmc import api
    from xmc.models import model_class

    gpu = [s for s in sets if s.startswith("__gpu__=")]
    sets = [s for s in sets if not s.startswith("__gpu__=")]
    config = None
    if gpu:
        cls = model_class(method)
        config = cls.config_class.for_gpu().with_overrides(sets)
    if (out / "model").is_symlink():  # left by adopt_one: train into a folder of our own, never through the link
        (out / "model").unlink()
    t0 = time.perf_counter()
    result = api.train(method, data, out / "model", overrides=sets, config=config, overwrite=True)
    wall = time.perf_counter() - t0
    model = result.pipeline.model
    stages = dict(getattr(model, "fit_seconds_", {}) or {})
    dev = api.resolve(data).load("dev")
    pipeline = api.load(out / "model")
    batch_ms, single_ms = prediction_timings(pipeline, dev.texts, batch_docs)
    json.dump({"method": method, "metrics": result.metrics, "wall_s": wall, "seconds": result.seconds,
               "stages": stages, "batch_ms_per_doc": batch_ms, "single_ms": single_ms,
               "peak_rss_mb": common.peak_rss_mb(), "config": model.config.to_dict()},
              open(out / "result.json", "w"), indent=1, default=str)


def prediction_timings(pipeline, texts: list[str], batch_docs: int = 0) -> tuple[float, float]:
    """Milliseconds a document in one batch (of ``batch_docs`` texts, default all) and the median of
    one text at a time, after a warm-up (numba caches, torch threads)."""
    pipeline.predict(texts=texts[:20], top_k=10)
    batch = texts[:batch_docs] if batch_docs else texts
    t0 = time.perf_counter()
    pipeline.predict(texts=batch, top_k=10)
    batch_ms = 1000 * (time.perf_counter() - t0) / len(batch)
    return batch_ms, common.median_latency_ms(lambda i: pipeline.predict(texts=[texts[i]], top_k=10), N_SINGLE,
                                              len(texts))


def adopt_one(method: str, data: str, folder: Path, out: Path) -> None:
    """Child process: :func:`train_one`'s measurements of a model trained earlier with the method's
    CPU default (a ``neural_recipes.py`` run) instead of training it again; the training time is the
    one recorded in the folder, and ``out/model`` links to it (for ensembles)."""
    from xmc import api
    from xmc.api.evaluation import evaluate_split
    from xmc.models import model_class

    pipeline = api.load(folder)
    model = pipeline.model
    default = model_class(method).default_config()
    if model.method != method or model.config.to_dict() != default.to_dict():
        raise SystemExit(f"{folder} is not {method} with its CPU default config")
    dev = api.resolve(data).load("dev")
    batch_ms, single_ms = prediction_timings(pipeline, dev.texts)
    scores = pipeline.predict(texts=dev.texts, top_k=100)
    stages = dict(model.fit_seconds_)
    link = out / "model"  # an earlier run's model here is stale: the ensembles must read the adopted one
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        shutil.rmtree(link)
    link.symlink_to(Path(folder).resolve(), target_is_directory=True)
    json.dump({"method": method, "metrics": evaluate_split(pipeline, dev, scores, ks=(1, 3, 5, 100)),
               "wall_s": sum(stages.values()), "stages": stages, "batch_ms_per_doc": batch_ms, "single_ms": single_ms,
               "peak_rss_mb": common.peak_rss_mb(), "adopted_from": str(folder)},
              open(out / "result.json", "w"), indent=1, default=str)


def ensemble_one(linear: Path, neural: Path, data: str, out: Path, combine: str) -> None:
    """Child process: ``xmc ensemble`` of two trained models, evaluated on dev."""
    from xmc import api

    if combine == "weighted":
        weighted_one(linear, neural, data, out)
        return
    api.ensemble([linear, neural], out / "model", combine=combine, overwrite=True)
    t0 = time.perf_counter()
    metrics = api.evaluate(out / "model", data, "dev")
    json.dump({"metrics": metrics, "evaluate_s": time.perf_counter() - t0, "peak_rss_mb": common.peak_rss_mb()},
              open(out / "result.json", "w"), indent=1)


def weighted_one(linear: Path, other: Path, data: str, out: Path) -> None:
    """Child process: the combiner and the neural member's weight that do best (P@1 + P@5) on dev's
    selection half, then scored on the report half (which no choice saw) and on all of dev."""
    from xmc import api
    from xmc.metrics import precision_at_k
    from xmc.metrics.report import RECALL_K
    from xmc.models.ensemble import combine_scores

    dev = api.resolve(data).load("dev")
    pipelines = [api.load(linear), api.load(other)]
    scores = [api.predict_split(p, dev, top_k=50) for p in pipelines]
    truth = pipelines[0].vocab.encode(dev.labels).Y
    select, held = common.halves(len(dev))

    def p15(S: sp.csr_matrix, rows: np.ndarray) -> tuple[float, float]:
        return tuple(100 * precision_at_k(truth[rows], S, k) for k in (1, 5))

    combine, w = common.best_combination([S[select] for S in scores], truth[select])
    both = combine_scores(scores, combine, max(RECALL_K, 5), (1 - w, w))
    api.ensemble([linear, other], out / "model", combine=combine, weights=(1 - w, w), overwrite=True)
    report_half = {"ensemble": p15(both[held], held), "xr-linear": p15(scores[0][held], held),
                   "neural": p15(scores[1][held], held)}
    json.dump({"metrics": api.evaluate_split(pipelines[0], dev, both), "combine": combine, "weight": w,
               "report_half": report_half, "peak_rss_mb": common.peak_rss_mb()},
              open(out / "result.json", "w"), indent=1, default=float)


def reused(out: Path, reuse: bool) -> bool:
    """With ``--reuse``, an earlier run's result stands (its date goes into the result, and the table):
    from ``out`` on this machine, else from the benchmark's ledger (``results/<name>.rows.json``)."""
    path = out / "result.json"
    if reuse and not path.exists():
        book, key = ledger_key(out)
        if key in common.ledger(book):
            out.mkdir(parents=True, exist_ok=True)
            json.dump(common.ledger(book)[key], open(path, "w"), indent=1)
    if not (reuse and path.exists()):
        return False
    result = json.load(open(path))
    result.setdefault("ran_at", time.strftime("%Y-%m-%d %H:%M", time.gmtime(path.stat().st_mtime)))
    json.dump(result, open(path, "w"), indent=1, default=str)
    print(f"reusing {path} ({result['ran_at']} UTC)", flush=True)
    return True


def ledger_key(out: Path) -> tuple[str, str]:
    """``.work/<benchmark>/<dataset>/<system>`` -> (benchmark, "<dataset>/<system>")."""
    book, *rest = out.resolve().relative_to(common.WORK.resolve()).parts
    return book, "/".join(rest)


def keep(out: Path, dry_run: bool) -> None:
    """A finished system's result into the benchmark's ledger, dated (not a dry run's)."""
    if dry_run:
        return
    result = json.load(open(out / "result.json"))
    if "ran_at" not in result:
        result["ran_at"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
        json.dump(result, open(out / "result.json", "w"), indent=1, default=str)
    result.pop("config", None)  # the model folder keeps it; the ledger keeps numbers
    common.record(*ledger_key(out), result)


def child(args: list[str]) -> None:
    """This module as a child process: ``args`` as :func:`main` reads them."""
    child_of(__file__, args)


def child_of(script: str, args: list[str]) -> None:
    """``script`` with ``args`` in a process of its own (a training's peak RSS is then its own)."""
    subprocess.run([sys.executable, str(script), *args], check=True)


def prepare_titles(data: str, dry_run: bool) -> str:
    return common.titles_dataset(data)


def slice_dataset(data: str, name: str, n_train: int = 300, n_dev: int = 80) -> str:
    from xmc import api
    from xmc.data import write_text_split

    src = api.resolve(data)
    out = common.WORK / "dry-run" / name
    for split, n in (("train", n_train), ("dev", n_dev)):
        part = src.load(split)
        write_text_split(out, split, part.texts[:n], part.labels[:n])
    return str(out)


def main() -> None:
    parser = argparse.ArgumentParser(description="a child process of a benchmark")
    parser.add_argument("--child", nargs="+", required=True)
    kind, *rest = parser.parse_args().child
    if kind == "train":
        method, data, out, sets = rest[0], rest[1], Path(rest[2]), json.loads(rest[3])
        train_one(method, data, out, sets, int(rest[4]) if len(rest) > 4 else 0)
    elif kind == "adopt":
        adopt_one(rest[0], rest[1], Path(rest[2]), Path(rest[3]))
    else:
        ensemble_one(Path(rest[0]), Path(rest[1]), rest[2], Path(rest[3]), rest[4])


if __name__ == "__main__":
    main()
