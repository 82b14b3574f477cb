"""Bodies of the ``xmc`` subcommands: call :mod:`xmc.api`, print the result."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from xmc import api
from xmc.exceptions import XMCError


def run(args) -> int:
    handler = {
        "data": _data,
        "train": _train,
        "update": _update,
        "predict": _predict,
        "evaluate": _evaluate,
        "config": _config,
        "ensemble": _ensemble,
        "serve": _serve,
        "report": _report,
        "demo": _demo,
    }[args.command]
    return handler(args) or 0


def _data(args) -> int:
    if args.data_command == "info":
        print(api.dataset_info(args.name))
    elif args.data_command == "synth":
        sizes = {"n_train": args.docs, "n_features": args.features, "n_labels": args.labels, "n_test": args.test_docs}
        out = api.synth_dataset(args.out, preset=args.preset, seed=args.seed, overwrite=args.overwrite, **sizes)
        print(f"wrote {out}")
    elif args.data_command == "import":
        try:
            fractions = tuple(float(f) for f in args.split.split(","))
        except ValueError:
            raise XMCError(f"--split takes fractions like 0.8,0.1,0.1, got {args.split!r}") from None
        report = api.import_dataset(args.file, args.out, text_fields=tuple(args.text_field.split(",")),
                                    labels_field=args.labels_field, label_sep=args.label_sep, id_field=args.id_field,
                                    split_field=args.split_field, fractions=fractions, seed=args.seed,
                                    skip_bad=args.skip_bad, file_format=args.format, label_names=args.label_names,
                                    overwrite=args.overwrite)
        print(report.summary())
    elif args.data_command == "derive":
        out = api.derive_dataset(args.name, args.text_field, args.out, overwrite=args.overwrite)
        print(f"wrote {out}")
    else:
        out = api.fetch_dataset(args.name, args.to, archive=args.archive)
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
    if args.backend != "local" or args.address:
        if args.method != "xr-linear":
            raise XMCError(f"--backend ray trains xr-linear; {args.method} scales with torchrun (see the README)")
        if args.workers < 1:
            raise XMCError("--workers must be at least 1")
        fit_options.update(backend=args.backend, workers=args.workers, address=args.address)
    return overrides, fit_options


def _train(args) -> int:
    overrides, fit_options = _neural_options(args)
    if args.dry_run or args.max_memory:
        estimate = api.preflight(args.method, args.data, split=args.split, overrides=overrides + args.set,
                                 ensemble=args.ensemble, max_memory=args.max_memory)
        print(estimate.summary())
        estimate.check()
        if args.dry_run:
            return 0
    result = api.train(args.method, args.data, args.out, split=args.split, overrides=overrides + args.set,
                       eval_split=_eval_split(args.eval_split), fit_options=fit_options, ensemble=args.ensemble,
                       overwrite=args.overwrite or args.resume, zero_shot=args.zero_shot,
                       label_text=label_text_config(args) if args.zero_shot else None)
    if result.path is None and args.out:
        return 0  # a secondary process of a torchrun group: the first one reports and saves
    _print_train(result)
    print(f"saved {result.path}")
    return 0


def label_text_config(args) -> api.LabelTextConfig:
    """``--label-text-encoder`` and the ``--label-text-set`` assignments, checked as ``--set`` is."""
    return api.LabelTextConfig(encoder=args.label_text_encoder).with_overrides(args.label_text_set)


def _update(args) -> int:
    result = api.update(args.model, args.data, args.out, split=args.split, eval_split=_eval_split(args.eval_split),
                        retrain_known=args.retrain_known, overwrite=args.overwrite)
    print(result.update.summary())
    secs = "  ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items())
    print(f"the model now has {len(result.pipeline.vocab):,} labels ({secs})")
    _print_choices(result.pipeline.fitted_on, result.report_name)
    if result.metrics:
        print()
        print(_metrics_table(result.metrics, f"{result.pipeline.dataset} / {result.eval_split}"))
    print(f"saved {result.path}")
    return 0


def _print_train(result: api.TrainResult) -> None:
    secs = "  ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items())
    print(f"trained {result.pipeline.method}: {len(result.pipeline.vocab):,} labels, "
          f"{result.pipeline.n_train:,} documents ({secs})")
    _print_choices(result.fitted_on, result.report_name)
    if result.metrics:
        print()
        print(_metrics_table(result.metrics, f"{result.pipeline.dataset} / {result.eval_split}"))


def _print_choices(fitted_on: dict[str, str], report_name: str | None) -> None:
    """Which documents each data-driven choice saw, and which split the metrics are on."""
    by_place: dict[str, list[str]] = {}
    for choice, place in fitted_on.items():
        by_place.setdefault(place, []).append(choice.replace("_", " "))
    for place, choices in by_place.items():
        print(f"{', '.join(choices)} chosen on {place}")
    if report_name and report_name not in by_place:
        print(f"metrics reported on {report_name} (no choice was made on it)")


def _metrics_table(metrics: dict, title: str) -> str:
    scores = {k: v for k, v in metrics.items() if "@" in k}
    table = api.format_metrics(scores, title)
    return (f"{table}\n{metrics['n_docs']:,} documents; {metrics['unseen_labels']} labels never seen in "
            f"training kept as misses ({metrics['unseen_assignments']} assignments); propensity "
            f"A={metrics['propensity_a']}, B={metrics['propensity_b']}")


def _predict(args) -> int:
    if args.data is None:
        return _predict_texts(args)
    if not args.out:
        raise XMCError("--data needs --out (where OUT.npz and OUT.jsonl go)")
    if args.workers < 1:
        raise XMCError("--workers must be at least 1")
    scores = api.predict(_model(args), args.data, args.split, top_k=args.top_k, beam_size=args.beam_size, out=args.out,
                         overwrite=args.overwrite, backend=args.backend, workers=args.workers, address=args.address)
    base = Path(args.out).with_suffix("") if Path(args.out).suffix in (".npz", ".jsonl") else Path(args.out)
    print(f"wrote {scores.shape[0]:,} rows to {base}.npz and {base}.jsonl")
    return 0


CHUNK = 1000  # texts read and tagged at a time from --input: memory stays bounded on any input size


def _predict_texts(args) -> int:
    model = api.load(args.model, quantize=args.quantize)
    options = dict(top_k=args.top_k or 5, min_score=args.min_score, beam_size=args.beam_size)
    if args.features:
        _print_rows(api.predict_texts(model, features=api.load_features(args.features), **options), args.format)
        return 0
    for chunk in _text_chunks(args):
        _print_rows(api.predict_texts(model, chunk, **options), args.format, chunk)
    return 0


def _text_chunks(args):
    if args.text:
        yield args.text
        return
    stream = sys.stdin if args.input == "-" else _open_input(args.input)
    try:
        chunk = []
        for line in stream:
            chunk.append(line.rstrip("\r\n"))
            if len(chunk) == CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
    except UnicodeDecodeError as exc:
        raise XMCError(f"{args.input}: not UTF-8 text ({exc.reason})") from None
    finally:
        if stream is not sys.stdin:
            stream.close()


def _open_input(path: str):
    try:
        return open(path, encoding="utf-8-sig")
    except FileNotFoundError:
        raise XMCError(f"input file {path} does not exist") from None
    except IsADirectoryError:
        raise XMCError(f"{path} is a folder; --input takes a file with one text per line") from None


def _print_rows(rows, fmt: str, texts: list[str] | None = None) -> None:
    for i, row in enumerate(rows):
        if fmt == "jsonl":
            print(json.dumps({"labels": [[label, round(score, 6), name] for label, score, name in row]},
                             ensure_ascii=False))
            continue
        head = texts[i] if texts else f"row {i}"
        print(head if len(head) <= 100 else head[:97] + "...")
        for label, score, name in row:
            print(f"  {score:6.3f}  {label:<12} {name or ''}")


def _evaluate(args) -> int:
    ks = _ks(args.k)
    metrics = api.evaluate(_model(args) if args.model else None, args.data, args.split, ks=ks, groups=args.groups,
                           pred=args.pred)
    if args.json:
        print(json.dumps(metrics))
        return 0
    print(_metrics_table(metrics, f"{args.data} / {args.split}"))
    for name, group in metrics.get("groups", {}).items():
        print()
        scores = {k: v for k, v in group.items() if "@" in k}
        print(api.format_metrics(scores, f"{name}: {group['n_labels']:,} labels, {group['n_docs']:,} documents"))
    return 0


def _ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise XMCError(f"--k takes cut-offs like 1,3,5; got {text!r}") from None
    if not ks or min(ks) < 1:
        raise XMCError(f"--k takes positive cut-offs like 1,3,5; got {text!r}")
    return ks


def _ensemble(args) -> int:
    try:
        weights = [float(w) for w in args.weights.split(",") if w.strip()]
    except ValueError:
        raise XMCError(f"--weights takes numbers separated by commas, got {args.weights!r}") from None
    api.ensemble(args.models, args.out, args.combine, overwrite=args.overwrite, weights=weights)
    print(f"saved an ensemble of {len(args.models)} models to {args.out}")
    return 0


def _report(args) -> int:
    try:
        out = api.report(args.model, args.data, args.split, args.out, overwrite=args.overwrite)
    except ModuleNotFoundError as exc:
        raise XMCError(f"xmc report needs {exc.name}: pip install 'xmc[report]'") from None
    print(f"wrote {out / 'index.html'}")
    return 0


def _model(args):
    """The model folder, or the pipeline loaded from it with ``--quantize`` (its metrics are then
    not recorded in the folder: they are not the saved model's)."""
    return api.load(args.model, quantize=True) if args.quantize else args.model


def _serve(args) -> int:
    try:
        from xmc.serve.app import ServeSettings
        from xmc.serve.gate import ApiKeys
        from xmc.serve.workers import run
    except ModuleNotFoundError as exc:
        raise XMCError(f"xmc serve needs {exc.name}: pip install 'xmc[serve]'") from None
    for flag in ("max_batch", "max_texts", "max_chars", "max_body", "workers"):
        if getattr(args, flag) < 1:
            raise XMCError(f"--{flag.replace('_', '-')} must be at least 1")
    if args.batch_wait_ms < 0 or args.threads < 0 or args.max_drain < 0 or not 0 < args.port < 65536:
        raise XMCError("--batch-wait-ms, --threads and --max-drain must be >= 0, --port in 1..65535")
    if args.workers > 1 and not hasattr(os, "fork"):
        raise XMCError("--workers above 1 needs a system with fork (Linux, macOS)")
    settings = ServeSettings(max_texts=args.max_texts, max_chars=args.max_chars, max_body=args.max_body,
                             max_drain=args.max_drain, batch_wait_ms=args.batch_wait_ms, max_batch=args.max_batch,
                             threads=args.threads, quantize=args.quantize)
    run(args.model, args.host, args.port, settings, keys=ApiKeys.read(args.api_key_file), workers=args.workers)
    return 0


def _config(args) -> int:
    print(json.dumps(api.default_config(args.method), indent=2))
    return 0


def _demo_dataset(name: str | None) -> str:
    if name:
        return name
    names = api.datasets()
    if api.DEFAULT_DATASET.lower() in (n.lower() for n in names):
        return api.DEFAULT_DATASET
    text_sets = [n for n in names if _is_text(n)]
    if not text_sets:
        raise XMCError("no dataset found: set XMC_DATA_DIR to a folder of datasets (./run does so for ../shared/data)")
    return text_sets[0]


def _is_text(name: str) -> bool:
    try:
        return api.dataset(name).kind == "text"
    except XMCError:
        return False


def _demo(args) -> int:
    name = _demo_dataset(args.data)
    dataset = api.dataset(name)
    out = args.out or os.path.join("models", f"demo-{dataset.name}")
    took = ("about 10 minutes on 2 CPU cores (XR-Linear: --method xr-linear, about 3)"
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
    rows = range(min(n, len(split)))
    texts = [split.texts[i] for i in rows] if split.texts else None
    features = split.features[list(rows)] if split.features is not None else None
    predicted = api.predict_texts(result.pipeline, texts, features=features, top_k=5)
    names = result.pipeline.label_names
    print(f"\nexample predictions on {result.eval_split} (top 5, probability; * = correct):")
    for i, ranked in zip(rows, predicted, strict=True):
        truth = set(split.labels[i])
        text = (split.texts[i][:110] + "...") if split.texts else f"document {i}"
        print(f"\n  [{i}] {text}")
        marked = (f"{'*' if lab in truth else ''}{name or lab} ({s:.2f})" for lab, s, name in ranked)
        print("    predicted: " + "; ".join(marked))
        print("    true:      " + "; ".join(names.get(lab, lab) for lab in split.labels[i]))
