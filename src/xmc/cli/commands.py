"""Bodies of the ``xmc`` subcommands: call :mod:`xmc.api`, print the result."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from xmc import api
from xmc.data import available, resolve
from xmc.data.fetch import fetch
from xmc.data.info import describe, format_stats
from xmc.exceptions import XMCError
from xmc.metrics.report import format_report

JSON_KEYS = ("P@1", "P@3", "P@5", "nDCG@1", "nDCG@3", "nDCG@5", "PSP@1", "PSP@3", "PSP@5", "R@10")


def run(args) -> int:
    handler = {
        "data": _data,
        "train": _train,
        "predict": _predict,
        "evaluate": _evaluate,
        "config": _config,
        "ensemble": _ensemble,
        "demo": _demo,
    }[args.command]
    return handler(args) or 0


def _data(args) -> int:
    if args.data_command == "info":
        print(format_stats(describe(resolve(args.name))))
    elif args.data_command == "derive":
        out = api.derive_dataset(args.name, args.text_field, args.out, overwrite=args.overwrite)
        print(f"wrote {out}")
    else:
        out = fetch(args.name, args.to, archive=args.archive)
        print(f"wrote {out}")
    return 0


def _eval_split(value: str) -> str | None:
    return None if value.lower() == "none" else value


def _neural_options(args) -> tuple[list[str], dict]:
    """The neural flags as config overrides and fit options (an error for methods without them)."""
    overrides = api.neural_overrides(args.method, encoder=args.encoder, max_seq_len=args.max_seq_len,
                                     device=args.device, threads=args.threads)
    fit_options = {}
    if args.checkpoint_dir:
        if args.method in ("xr-linear",):
            raise XMCError("--checkpoint-dir and --resume apply to the neural methods, not xr-linear")
        fit_options.update(checkpoint_dir=args.checkpoint_dir, resume=args.resume)
    elif args.resume:
        raise XMCError("--resume needs --checkpoint-dir")
    return overrides, fit_options


def _train(args) -> int:
    overrides, fit_options = _neural_options(args)
    result = api.train(args.method, args.data, args.out, split=args.split, overrides=overrides + args.set,
                       eval_split=_eval_split(args.eval_split), fit_options=fit_options, ensemble=args.ensemble,
                       overwrite=args.overwrite or args.resume)
    _print_train(result)
    print(f"saved {result.path}")
    return 0


def _print_train(result: api.TrainResult) -> None:
    secs = "  ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items())
    print(f"trained {result.pipeline.method}: {len(result.pipeline.vocab):,} labels, "
          f"{result.pipeline.n_train:,} documents ({secs})")
    if result.metrics:
        print()
        print(_metrics_table(result.metrics, f"{result.pipeline.dataset} / {result.eval_split}"))


def _metrics_table(metrics: dict, title: str) -> str:
    scores = {k: v for k, v in metrics.items() if "@" in k}
    table = format_report(scores, title)
    return (f"{table}\n{metrics['n_docs']:,} documents; {metrics['unseen_labels']} labels never seen in "
            f"training kept as misses ({metrics['unseen_assignments']} assignments); propensity "
            f"A={metrics['propensity_a']}, B={metrics['propensity_b']}")


def _predict(args) -> int:
    scores = api.predict(args.model, args.data, args.split, top_k=args.top_k, beam_size=args.beam_size, out=args.out,
                         overwrite=args.overwrite)
    base = Path(args.out).with_suffix("") if Path(args.out).suffix in (".npz", ".jsonl") else Path(args.out)
    print(f"wrote {scores.shape[0]:,} rows to {base}.npz and {base}.jsonl")
    return 0


def _evaluate(args) -> int:
    metrics = api.evaluate(args.model, args.data, args.split)
    if args.json:
        out = {k: metrics[k] for k in JSON_KEYS}
        out.update(n_docs=metrics["n_docs"], unseen_labels=metrics["unseen_labels"])
        print(json.dumps(out))
    else:
        print(_metrics_table(metrics, f"{args.data} / {args.split}"))
    return 0


def _ensemble(args) -> int:
    api.ensemble(args.models, args.out, args.combine, overwrite=args.overwrite)
    print(f"saved an ensemble of {len(args.models)} models to {args.out}")
    return 0


def _config(args) -> int:
    from xmc.features.tfidf import TfidfConfig
    from xmc.models.base import model_class

    cfg = model_class(args.method).default_config()
    print(json.dumps({"tfidf": TfidfConfig().to_dict(), **cfg.to_dict()}, indent=2))
    return 0


def _demo_dataset(name: str | None) -> str:
    if name:
        return name
    names = available()
    if api.DEFAULT_DATASET.lower() in (n.lower() for n in names):
        return api.DEFAULT_DATASET
    text_sets = [n for n in names if _is_text(n)]
    if not text_sets:
        raise XMCError("no dataset found: set XMC_DATA_DIR to a folder of datasets (./run does so for ../shared/data)")
    return text_sets[0]


def _is_text(name: str) -> bool:
    try:
        return resolve(name).kind == "text"
    except XMCError:
        return False


def _demo(args) -> int:
    name = _demo_dataset(args.data)
    dataset = resolve(name)
    out = args.out or os.path.join("models", f"demo-{dataset.name}")
    took = ("about 15 minutes on 2 CPU cores (XR-Linear: --method xr-linear, about 3)"
            if args.method == "xr-transformer" else "a few minutes on 2 cores")
    print(f"xmc demo: training {args.method} on {dataset.name} ({dataset.path}); this takes {took}", flush=True)
    start = time.perf_counter()
    # the demo may replace its own earlier model (never anything else: see xmc.utils.folders)
    result = api.train(args.method, name, out, overwrite=True)
    print()
    _print_train(result)
    print(f"\nmodel saved to {out} (total {time.perf_counter() - start:.0f}s)")
    if result.eval_split and args.examples > 0:
        _show_examples(result, dataset, args.examples)
    return 0


def _show_examples(result: api.TrainResult, dataset, n: int) -> None:
    split = dataset.load(result.eval_split)
    names = dataset.label_names()
    rows = range(min(n, len(split)))
    from xmc.data.datasets import Split

    subset = Split(split.name, [split.labels[i] for i in rows],
                   texts=[split.texts[i] for i in rows] if split.texts else None,
                   features=split.features[list(rows)] if split.features is not None else None)
    scores = api.predict_split(result.pipeline, subset, top_k=5)
    print(f"\nexample predictions on {result.eval_split} (top 5; * = correct):")
    for i, ranked in zip(rows, api.ranked_rows(scores, result.pipeline.vocab), strict=True):
        truth = set(split.labels[i])
        text = (split.texts[i][:110] + "...") if split.texts else f"document {i}"
        print(f"\n  [{i}] {text}")
        marked = (f"{'*' if lab in truth else ''}{names.get(lab, lab)} ({s:.2f})" for lab, s in ranked)
        print("    predicted: " + "; ".join(marked))
        print("    true:      " + "; ".join(names.get(lab, lab) for lab in split.labels[i]))
