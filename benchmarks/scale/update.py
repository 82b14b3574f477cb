"""``xmc update`` against a full retrain, and ``xmc train --dry-run``'s estimates against measured runs.

    python benchmarks/scale/update.py [--data EURLEX57K] [--fractions 0.1,0.01] [--synth 100k,amazon-670k]
                                [--skip-update] [--skip-dry-run]

Update: 10% (and 1%) of EURLEX57K's training labels (seeded, uniform over labels) are taken out of the
training split (removed from every document; documents left without labels dropped), XR-Linear is
trained on the rest, and ``xmc update`` adds them back from the full training split. Against it,
XR-Linear trained from scratch on the full split. Each command runs in its own process and is
timed from start to exit. Scores on dev: P@1/P@5 over all labels, and RP@5 on the added labels
(over the dev documents with an added label: added labels in the model's top 5, over min(5, the
document's added labels)).

Dry run: ``xmc train --dry-run`` and then the same ``xmc train`` on EURLEX57K and on synthetic sets
(``xmc data synth --preset``); the estimate of time against the run's featurise + fit seconds, the
estimated peak memory against the training process's peak RSS (``ru_maxrss``).
Results: benchmarks/results/update.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for its lib
from lib import common  # noqa: E402
from lib.common import run_command as run  # noqa: E402
from lib.common import stage_seconds  # noqa: E402

WORK = common.WORK / "update"
XMC = [sys.executable, "-m", "xmc.cli.main"]


def held_out_dataset(data: str, out: Path, fraction: float, seed: int) -> list[str]:
    """``data`` without a seeded ``fraction`` of its training labels (dev untouched); the held-out labels."""
    from xmc.data import LabelVocab, resolve
    from xmc.data.formats import write_text_split

    dataset = resolve(data)
    train = dataset.load("train")
    labels = LabelVocab.build(train.labels).labels
    rng = np.random.default_rng(seed)
    held = sorted(rng.choice(labels, int(round(fraction * len(labels))), replace=False).tolist())
    if not (out / "train_labels.txt.gz").exists():
        drop = set(held)
        kept = [(t, [x for x in ls if x not in drop]) for t, ls in zip(train.texts, train.labels, strict=True)]
        kept = [(t, ls) for t, ls in kept if ls]
        write_text_split(out, "train", [t for t, _ in kept], [ls for _, ls in kept], collapse=False)
        for f in dataset.path.glob("dev_*"):
            shutil.copy(f, out / f.name)
    return held


def dev_scores(model: Path, data: str, held: list[str]) -> dict[str, float]:
    from xmc import api

    return dev_scores_of(api.load(model), data, held)


def dev_scores_of(pipeline, data: str, held: list[str]) -> dict[str, float]:
    from xmc import api

    dev = api.dataset(data).load("dev")
    scores = api.predict_split(pipeline, dev, top_k=5)
    metrics = api.evaluate_split(pipeline, dev, scores)
    held_set = set(held)
    top = [[pipeline.vocab.labels[j] for j in row[np.argsort(-vals)][:5]] for row, vals in
           ((scores.indices[a:b], scores.data[a:b]) for a, b in zip(scores.indptr[:-1], scores.indptr[1:],
                                                                     strict=True))]
    rp = [len(set(t) & (set(ls) & held_set)) / min(5, len(set(ls) & held_set))
          for t, ls in zip(top, dev.labels, strict=True) if set(ls) & held_set]
    return {"P@1": metrics["P@1"], "P@5": metrics["P@5"], "RP@5 added": 100 * float(np.mean(rp)) if rp else 0.0,
            "n_added_docs": len(rp)}


def update_part(data: str, fractions: list[float], seed: int) -> str:
    work = WORK / data
    work.mkdir(parents=True, exist_ok=True)
    print("full retrain ...", flush=True)
    full = run([*XMC, "train", "--method", "xr-linear", "--data", data, "--out", str(work / "full"), "--overwrite",
                "--eval-split", "none"], work / "full.log")
    lines = ["| labels held out | run | wall s | stages (s) | peak RSS MB | dev P@1 | dev P@5 | RP@5 added labels |",
             "|---|---|---|---|---|---|---|---|"]
    targets, notes = [], []
    for fraction in fractions:
        tag = f"{round(100 * fraction)}pct"
        held_data = work / f"{data}-held-{tag}"
        held = held_out_dataset(data, held_data, fraction, seed)
        m0, m1 = work / f"m0-{tag}", work / f"m1-{tag}"
        print(f"first model without {len(held)} labels ...", flush=True)
        first = run([*XMC, "train", "--method", "xr-linear", "--data", str(held_data), "--out", str(m0),
                     "--overwrite", "--eval-split", "none"], work / f"{m0.name}.log")
        print("xmc update ...", flush=True)
        upd = run([*XMC, "update", "--model", str(m0), "--data", data, "--out", str(m1), "--overwrite",
                   "--eval-split", "none"], work / f"{m1.name}.log")
        rows = {"first model": (first, m0), "xmc update": (upd, m1), "full retrain": (full, work / "full")}
        scores = {name: dev_scores(model, data, held) for name, (_, model) in rows.items()}
        for name, (r, _) in rows.items():
            sc = scores[name]
            stages = ", ".join(f"{k} {v:.1f}" for k, v in stage_seconds(r["stdout"]).items())
            lines.append(f"| {len(held):,} ({100 * fraction:g}%) | {name} | {r['seconds']:.1f} | {stages} | "
                         f"{r['peak_mb']:,.0f} | {sc['P@1']:.2f} | {sc['P@5']:.2f} | {sc['RP@5 added']:.2f} |")
        notes += [f"- {100 * fraction:g}%: `{line}`; {scores['xmc update']['n_added_docs']:,} dev documents carry an "
                  "added label" for line in upd["stdout"].splitlines() if line.startswith("added")]
        us, fs = stage_seconds(upd["stdout"]), stage_seconds(full["stdout"])
        notes.append(f"  Where the update's {upd['seconds']:.0f} s go: featurising all {data}'s training documents "
                     f"with the model's TF-IDF {us.get('features', 0):.0f} s (the retrain's fit + transform: "
                     f"{fs.get('features', 0):.0f} s), rankers {us.get('rankers', 0):.0f} s (the retrain's fit: "
                     f"{fs.get('fit', 0):.0f} s), placing {us.get('place', 0):.1f} s, the rest loading and saving.")
        u, f = scores["xmc update"], scores["full retrain"]
        ratio = upd["seconds"] / full["seconds"]
        targets += [
            f"- {100 * fraction:g}% held out: update time at most 10% of a full retrain: "
            f"{'met' if ratio <= 0.1 else 'MISSED'} ({100 * ratio:.0f}%)",
            f"- {100 * fraction:g}% held out: overall P@5 within 0.3 of the full retrain: "
            f"{'met' if f['P@5'] - u['P@5'] <= 0.3 else 'MISSED'} ({u['P@5']:.2f} vs {f['P@5']:.2f})",
            f"- {100 * fraction:g}% held out: RP@5 on the added labels within 2 of the full retrain: "
            f"{'met' if f['RP@5 added'] - u['RP@5 added'] <= 2 else 'MISSED'} "
            f"({u['RP@5 added']:.2f} vs {f['RP@5 added']:.2f})"]
    ablation = known_label_ablation(data, work / f"m0-{round(100 * fractions[0])}pct", fractions[0], seed)
    return "\n".join([f"## xmc update on {data}", "", f"Held-out labels drawn with seed {seed}.", "", *lines, "",
                      *notes, "", *ablation, "", *targets, ""])


def known_label_ablation(data: str, m0: Path, fraction: float, seed: int) -> list[str]:
    """Where the update's P@5 goes: the same update, then every label's ranker trained again on the
    full split (in this process, on the first model's TF-IDF), and a full fit on those features."""
    from xmc import api
    from xmc.data import LabelVocab
    from xmc.models.label_update import _retrain_nodes, add_labels
    from xmc.models.xr_linear import XRLinear

    held = held_out_dataset(data, WORK / data / f"{data}-held-{round(100 * fraction)}pct", fraction, seed)
    train = api.dataset(data).load("train")
    pipeline = api.load(m0)
    new = [label for label in LabelVocab.build(train.labels).labels if label not in pipeline.vocab.index]
    vocab = LabelVocab(pipeline.vocab.labels + new)
    Y = vocab.encode(train.labels).Y
    X = pipeline.featurizer.transform(train.texts)
    add_labels(pipeline.model, X, Y, len(pipeline.vocab))
    t0 = time.perf_counter()
    last = pipeline.model.tree_.depth - 1
    pipeline.model._levels[last] = _retrain_nodes(pipeline.model, pipeline.model.tree_, X, Y, last,
                                                  np.arange(Y.shape[1]))
    retrain_s = time.perf_counter() - t0
    pipeline.vocab = vocab
    every = dev_scores_of(pipeline, data, held)
    t0 = time.perf_counter()
    pipeline.model = XRLinear(pipeline.model.config).fit(X, Y)
    fit_s = time.perf_counter() - t0
    refit = dev_scores_of(pipeline, data, held)
    return [f"Ablation ({100 * fraction:g}% held out, in one process on the first model's TF-IDF): the update, then "
            f"every label's ranker trained again ({retrain_s:.0f} s): P@1 / P@5 / RP@5 added {every['P@1']:.2f} / "
            f"{every['P@5']:.2f} / {every['RP@5 added']:.2f}; a full fit on the same features ({fit_s:.0f} s): "
            f"{refit['P@1']:.2f} / {refit['P@5']:.2f} / {refit['RP@5 added']:.2f}."]


def dry_run_part(data: str, synth: list[str]) -> str:
    sets = [(data, data)]
    for preset in synth:
        folder = WORK / f"synth-{preset}"
        if not (folder / "train_data.txt").exists() and not any(folder.glob("train*")):
            print(f"synth {preset} ...", flush=True)
            subprocess.run([*XMC, "data", "synth", "--preset", preset, "--out", str(folder), "--overwrite"],
                           check=True)
        sets.append((f"synthetic {preset}", str(folder)))
    lines = ["| data | dry run s | estimated peak MB | measured peak MB | error | estimated s | measured s "
             "(featurise + fit) | error |", "|---|---|---|---|---|---|---|---|"]
    targets = []
    for name, path in sets:
        print(f"dry run on {name} ...", flush=True)
        tag = Path(path).name
        est = run([sys.executable, "-c", "import json, sys; from xmc import api; r = api.preflight('xr-linear', "
                   "sys.argv[1]); print(r.summary()); print(json.dumps({'peak': r.peak_bytes, 's': r.seconds}))",
                   path], WORK / f"dry-{tag}.log")
        guess = json.loads(est["stdout"].strip().splitlines()[-1])
        real = run([*XMC, "train", "--method", "xr-linear", "--data", path, "--out", str(WORK / f"dry-model-{tag}"),
                    "--overwrite", "--eval-split", "none"], WORK / f"train-{tag}.log")
        st = stage_seconds(real["stdout"])
        real_s = st.get("features", 0.0) + st.get("fit", 0.0)
        mem_err = guess["peak"] / 2**20 / real["peak_mb"] - 1
        time_err = guess["s"] / real_s - 1
        lines.append(f"| {name} | {est['seconds']:.0f} | {guess['peak'] / 2**20:,.0f} | {real['peak_mb']:,.0f} | "
                     f"{100 * mem_err:+.0f}% | {guess['s']:.0f} | {real_s:.0f} | {100 * time_err:+.0f}% |")
        targets.append(f"- {name}: memory within 25% {'met' if abs(mem_err) <= 0.25 else 'MISSED'}, "
                       f"time within 50% {'met' if abs(time_err) <= 0.5 else 'MISSED'}")
        shutil.rmtree(WORK / f"dry-model-{tag}", ignore_errors=True)
    return "\n".join(["## xmc train --dry-run (xr-linear)", "", *lines, "", *targets, ""])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="EURLEX57K")
    ap.add_argument("--synth", default="100k,amazon-670k", help="synthetic presets for the dry run ('' for none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fractions", default="0.1,0.01", help="shares of the labels held out, one update each")
    ap.add_argument("--skip-update", action="store_true")
    ap.add_argument("--skip-dry-run", action="store_true")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    os.environ["XMC_FEATURE_CACHE"] = "off"  # every command featurises: a cached split would flatter the update
    parts = []
    if not args.skip_update:
        parts.append(update_part(args.data, [float(f) for f in args.fractions.split(",")], args.seed))
    if not args.skip_dry_run:
        parts.append(dry_run_part(args.data, [s for s in args.synth.split(",") if s]))
    path = common.write_result("update", "python " + " ".join(sys.argv), "\n".join(parts))
    print(path.read_text())


if __name__ == "__main__":
    main()
