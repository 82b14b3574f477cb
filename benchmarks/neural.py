"""XR-Linear, XR-Transformer, LightXML and CascadeXML side by side, in one run, on EURLEX57K and its
short-text variant EURLEX57K-titles (train -> dev), each in its own process; then the score-level
ensemble of each neural model with XR-Linear (``xmc ensemble``).

    python benchmarks/neural.py [--data EURLEX57K] [--methods xr-linear,xr-transformer,lightxml,cascadexml]
                                [--datasets full,titles] [--config cpu|gpu] [--name neural] [--dry-run]

Every method runs with the config ``xmc train`` picks on this machine (``--config gpu`` forces the
GPU configs, which benchmarks/gpu.sh uses). Per system: P@1/3/5, PSP@5, nDCG@5 on dev (unseen dev
labels kept as misses), training wall time by stage, prediction ms per document (a batch of all
dev documents, and one text at a time), peak RSS. ``--dry-run`` runs every step on a tiny slice
with tiny budgets, to check the script (and gpu.sh) end to end on a CPU. Results:
benchmarks/results/<name>.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

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
    t0 = time.perf_counter()
    result = api.train(method, data, out / "model", overrides=sets, config=config, overwrite=True)
    wall = time.perf_counter() - t0
    model = result.pipeline.model
    stages = dict(getattr(model, "fit_seconds_", {}) or {})
    dev = api.resolve(data).load("dev")
    pipeline = api.load(out / "model")
    pipeline.predict(texts=dev.texts[:20], top_k=10)  # warm-up: numba caches, torch threads
    batch = dev.texts[:batch_docs] if batch_docs else dev.texts
    t0 = time.perf_counter()
    pipeline.predict(texts=batch, top_k=10)
    batch_ms = 1000 * (time.perf_counter() - t0) / len(batch)
    single_ms = common.median_latency_ms(lambda i: pipeline.predict(texts=[dev.texts[i]], top_k=10), N_SINGLE,
                                         len(dev.texts))
    json.dump({"method": method, "metrics": result.metrics, "wall_s": wall, "seconds": result.seconds,
               "stages": stages, "batch_ms_per_doc": batch_ms, "single_ms": single_ms,
               "peak_rss_mb": common.peak_rss_mb(), "config": model.config.to_dict()},
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


def row(name: str, r: dict) -> str:
    m = r["metrics"]
    stages = " + ".join(f"{k} {v:.0f}" for k, v in r.get("stages", {}).items()) or "-"
    if "weight" in r:
        name = name.replace("(weighted)", f"(weighted: {r['combine']}, neural weight {r['weight']:.2f}, "
                                          "chosen on the selection half)")
    name += f" (run {r['ran_at']} UTC)" if "ran_at" in r else ""
    name += common.copied_mark(r)
    return (f"| {name} | " + " | ".join(f"{m[k]:.2f}" for k in METRICS)
            + f" | {r.get('wall_s', float('nan')):.0f} ({stages}) | {r.get('batch_ms_per_doc', float('nan')):.2f} "
              f"| {r.get('single_ms', float('nan')):.1f} | {r['peak_rss_mb']:,.0f} |")


def report(results: dict, args, seconds: float) -> str:
    lines = []
    targets = []
    for ds, systems in results.items():
        lines += [f"## {ds}", "", "| system | " + " | ".join(METRICS) + " | train s (stages) | predict ms/doc "
                  "(batch) | predict ms (one text) | peak RSS MB |", "|---|" + "---|" * (len(METRICS) + 4)]
        for name, r in systems.items():
            lines.append(row(name, r))
        lines.append("")
        linear = systems.get("xr-linear")
        for method in NEURAL:
            r = systems.get(method)
            if r is None:
                continue
            under = r["wall_s"] <= 20 * 60
            targets.append(f"- {ds}, {method} trains within 20 minutes: {'met' if under else 'MISSED'} "
                           f"({r['wall_s']:.0f} s)")
            if linear is not None and "titles" in ds:
                gap = linear["metrics"]["P@1"] - r["metrics"]["P@1"]
                targets.append(f"- {ds}, {method} within 3 P@1 of XR-Linear: {'met' if gap <= 3 else 'MISSED'} "
                               f"({r['metrics']['P@1']:.2f} vs {linear['metrics']['P@1']:.2f}, gap {gap:.2f})")
            weighted = systems.get(f"ensemble {method} + xr-linear (weighted)")
            if weighted is not None:
                (e1, e5), (l1, l5) = weighted["report_half"]["ensemble"], weighted["report_half"]["xr-linear"]
                ok = e1 - l1 >= 1 and e5 - l5 >= 1
                targets.append(f"- {ds}, weighted ensemble of {method} with XR-Linear beats XR-Linear by 1 P@1 and "
                               f"1 P@5 on the report half: {'met' if ok else 'MISSED'} (P@1 {e1:.2f} vs {l1:.2f}, "
                               f"P@5 {e5:.2f} vs {l5:.2f})")
            best = max((v for k, v in systems.items() if k.startswith(f"ensemble {method} +") and "weight" not in v),
                       key=lambda v: v["metrics"]["P@5"], default=None)
            if linear is not None and best is not None:
                d1 = best["metrics"]["P@1"] - linear["metrics"]["P@1"]
                d5 = best["metrics"]["P@5"] - linear["metrics"]["P@5"]
                ok = d1 >= 1 and d5 >= 1
                targets.append(f"- {ds}, ensemble of {method} with XR-Linear beats XR-Linear by 1 P@1 and 1 P@5: "
                               f"{'met' if ok else 'MISSED'} (P@1 {d1:+.2f}, P@5 {d5:+.2f})")
    lines += ["## Targets", "", *targets, "", f"Total {seconds / 60:.0f} minutes; config {args.config}"
              + (" (DRY RUN: a tiny slice and tiny budgets; the figures mean nothing)" if args.dry_run else "") + "."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="EURLEX57K")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--datasets", default="full,titles")
    parser.add_argument("--config", default="auto", choices=["auto", "cpu", "gpu"])
    parser.add_argument("--name", default="neural", help="results file name (benchmarks/results/NAME.md)")
    parser.add_argument("--combine", default="average,softmax_average,weighted",
                        help="ensemble combiners; weighted: combiner and weight chosen on dev's selection half")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--reuse", action="store_true",
                        help="keep a system's result.json from an earlier run of the same --name (dated in the table)")
    parser.add_argument("--skip", default="",
                        help="DATASET/METHOD pairs not to run, e.g. EURLEX57K-titles/xr-transformer")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "train":
            method, data, out, sets = rest[0], rest[1], Path(rest[2]), json.loads(rest[3])
            train_one(method, data, out, sets, int(rest[4]) if len(rest) > 4 else 0)
        else:
            ensemble_one(Path(rest[0]), Path(rest[1]), rest[2], Path(rest[3]), rest[4])
        return
    start = time.perf_counter()
    methods = args.methods.split(",")
    datasets = {}
    for ds in args.datasets.split(","):
        data = args.data if ds == "full" else prepare_titles(args.data, args.dry_run)
        if args.dry_run:
            data = slice_dataset(data, f"{ds}")
        datasets[f"EURLEX57K{'' if ds == 'full' else '-titles'}"] = data
    results: dict[str, dict] = {}
    for name, data in datasets.items():
        results[name] = {}
        for method in methods:
            out = common.WORK / args.name / name / method
            out.mkdir(parents=True, exist_ok=True)
            sets = config_overrides(method, args.config, args.dry_run)
            if f"{name}/{method}" in args.skip.split(","):
                continue
            if not reused(out, args.reuse):
                print(f"{name}: training {method}", flush=True)
                child(["--child", "train", method, data, str(out), json.dumps(sets)])
            keep(out, args.dry_run)
            results[name][method] = json.load(open(out / "result.json"))
        linear = common.WORK / args.name / name / "xr-linear" / "model"
        for method in [m for m in results[name] if m in NEURAL] if "xr-linear" in results[name] else []:
            for combine in args.combine.split(","):
                out = common.WORK / args.name / name / f"ensemble-{method}-{combine}"
                out.mkdir(parents=True, exist_ok=True)
                if reused(out, args.reuse):
                    keep(out, args.dry_run)
                    results[name][f"ensemble {method} + xr-linear ({combine})"] = json.load(open(out / "result.json"))
                    continue
                member = common.WORK / args.name / name / method / "model"
                if not (linear.exists() and member.exists()):  # a ledger row: its model stayed on another machine
                    print(f"{name}: ensemble {method} + xr-linear ({combine}) skipped: no models here", flush=True)
                    continue
                print(f"{name}: ensemble {method} + xr-linear ({combine})", flush=True)
                child(["--child", "ensemble", str(linear), str(common.WORK / args.name / name / method / "model"),
                       data, str(out), combine])
                keep(out, args.dry_run)
                results[name][f"ensemble {method} + xr-linear ({combine})"] = json.load(open(out / "result.json"))
    body = report(results, args, time.perf_counter() - start)
    command = "python benchmarks/neural.py " + " ".join(sys.argv[1:])
    # a dry run checks the script; its figures mean nothing and stay out of benchmarks/results
    print(common.write_result(args.name, command.strip(), body, folder=common.WORK if args.dry_run else None))
    json.dump(results, open(common.WORK / args.name / "results.json", "w"), indent=1, default=str)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
