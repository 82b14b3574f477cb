"""Shortlist widths at prediction time for a trained clustered neural model (CascadeXML, a clustered
LightXML): for each width, dev P@1/P@5, the shortlist's recall of the true labels and the time.

    python benchmarks/neural/shortlist_widths.py --model FOLDER [--data EURLEX57K-titles] [--scales 0.25,0.5,1,2,4]

A width is the number of parents each level keeps, as a multiple of the widths the model was trained
with (``top_k``, which prediction uses by default). Recall is the share of a document's true labels
that reach the last level at all (micro-averaged over dev): what no ranking can recover. P@k on all
of dev and on its report half (the selection half picks a width; ``common.halves``).
Results: benchmarks/results/shortlist_widths.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for its lib
from lib import common  # noqa: E402


def trained_widths(model) -> tuple[int, ...]:
    return tuple(level.top_k for level in model.net_.level_specs[1:])


def measure(model, dev, truth, widths: tuple[int, ...]) -> dict:
    """P@1/P@5 on each half and all of dev, recall of the shortlist, ms per document (batch)."""
    from xmc.metrics import precision_at_k

    model.config = dataclasses.replace(model.config, predict=dataclasses.replace(model.config.predict,
                                                                                 shortlist=widths))
    t0 = time.perf_counter()
    top = model.predict(dev.texts, top_k=5)
    ms = 1000 * (time.perf_counter() - t0) / len(dev)
    every = model.predict(dev.texts, top_k=model.n_labels_)  # all the candidates the shortlist let through
    reached = truth.multiply(every > 0)
    row = {"widths": widths, "ms_per_doc": ms, "recall": 100 * reached.nnz / max(truth.nnz, 1),
           "candidates": every.nnz / len(dev)}
    for part, rows in zip(("selection", "report", "dev"), (*common.halves(len(dev)), np.arange(len(dev))),
                          strict=True):
        row[part] = {f"P@{k}": 100 * precision_at_k(truth[rows], top[rows], k) for k in (1, 5)}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a trained cascade model folder (xmc train --out)")
    ap.add_argument("--data", default="EURLEX57K-titles")
    ap.add_argument("--scales", default="0.25,0.5,1,2,4")
    args = ap.parse_args()
    from xmc import api

    pipeline = api.load(args.model)
    model, dev = pipeline.model, api.resolve(args.data).load("dev")
    truth = pipeline.vocab.encode(dev.labels).Y.tocsr()
    base = trained_widths(model)
    if not base:
        raise SystemExit(f"{args.model} has a single level: no shortlist to widen")
    model.predict(dev.texts[:64], top_k=5)  # warm-up: threads, caches
    rows = []
    for scale in (float(s) for s in args.scales.split(",")):
        widths = tuple(max(1, round(w * scale)) for w in base)
        rows.append(measure(model, dev, truth, widths) | {"scale": scale})
        print(rows[-1], flush=True)
    best = max(rows, key=lambda r: r["selection"]["P@1"] + r["selection"]["P@5"])
    lines = [f"Model: {pipeline.model.method} at {args.model} (trained widths {base}); data: {args.data} dev.", "",
             "| parents kept per level | x trained | shortlist recall % | candidates per doc | selection P@1 / P@5 "
             "| report P@1 / P@5 | dev P@1 / P@5 | predict ms/doc (batch) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s, p, d = r["selection"], r["report"], r["dev"]
        lines.append(f"| {', '.join(map(str, r['widths']))} | {r['scale']:g} | {r['recall']:.2f} | "
                     f"{r['candidates']:.0f} | {s['P@1']:.2f} / {s['P@5']:.2f} | {p['P@1']:.2f} / {p['P@5']:.2f} | "
                     f"{d['P@1']:.2f} / {d['P@5']:.2f} | {r['ms_per_doc']:.2f} |")
    lines += ["", f"Chosen on the selection half (P@1 + P@5): {', '.join(map(str, best['widths']))} "
              f"({best['scale']:g}x the trained widths)."]
    print(common.write_result("shortlist_widths", "python " + " ".join(sys.argv), "\n".join(lines)))


if __name__ == "__main__":
    main()
