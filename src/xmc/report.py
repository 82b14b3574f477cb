"""``xmc report``: one self-contained HTML page (inline PNG plots, no external assets), the PNGs and a
``metrics.json``, for one model or several side by side, on one dataset split.

It shows the metric table overall and per label group (frequent / few-shot / zero-shot), precision
and recall by label-frequency decile, PSP@k, how many labels each document gets right, the
calibration of the scores (a reliability curve, for models with a calibration), the 20 frequent
labels with the worst F1, and each model's settings and training times.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xmc.evaluation import Scored, accept_metrics, metrics_of, scored
from xmc.metrics.groups import FREQUENT_MIN, decile_metrics, kept_labels, per_label_f1
from xmc.models.pipeline import Pipeline
from xmc.utils.folders import atomic_folder, check_target

KS = (1, 3, 5, 10)
PNGS = ("groups", "deciles", "psp", "correct", "calibration")


@dataclass
class ModelReport:
    name: str
    pipeline: Pipeline
    scored: Scored
    metrics: dict[str, Any]
    deciles: list[dict]
    correct: np.ndarray  # labels right in each document's top 5
    worst: list[dict]
    reliability: list[dict] | None


def _is_report(folder: Path) -> bool:
    return (folder / "index.html").is_file() and (folder / "metrics.json").is_file()


def build(models: list[tuple[str, Pipeline]], split, data_name: str, split_name: str, out: str | os.PathLike,
          overwrite: bool = False) -> Path:
    """Write the report of ``models`` (``(name, pipeline)`` pairs) on ``split`` to the folder ``out``."""
    check_target(out, overwrite, owned=_is_report)
    reports = [_model_report(name, p, split, f"{data_name}/{split_name}") for name, p in models]
    figures = _figures(reports)
    with atomic_folder(out, overwrite, owned=_is_report) as tmp:
        for key, png in figures.items():
            (tmp / f"{key}.png").write_bytes(png)
        (tmp / "metrics.json").write_text(json.dumps(_summary(reports, data_name, split_name), indent=1),
                                          encoding="utf-8")
        (tmp / "index.html").write_text(_page(reports, figures, data_name, split_name), encoding="utf-8")
    return Path(out)


def _model_report(name: str, pipeline: Pipeline, split, where: str) -> ModelReport:
    raw = pipeline.predict(split.texts, split.features, top_k=max(KS))
    s = scored(raw, pipeline.vocab.labels, split, pipeline.label_freq, pipeline.n_train, pipeline.propensity)
    metrics = {**metrics_of(s, KS, groups=True), **accept_metrics(pipeline, split, raw, where)}
    top5 = kept_labels(s.scores, top_k=5)
    correct = np.asarray(top5.multiply(s.truth).sum(axis=1)).ravel().astype(np.int64)
    f1 = per_label_f1(s.truth, top5)
    freq = np.concatenate([s.train_freq, np.zeros(s.truth.shape[1] - s.train_freq.size, np.int64)])
    frequent = np.flatnonzero(freq >= FREQUENT_MIN)
    worst = []
    for j in frequent[np.argsort(f1[frequent], kind="stable")][:20]:
        label = s.labels[j]
        worst.append({"label": label, "name": pipeline.label_names.get(label), "f1": round(100 * float(f1[j]), 2),
                      "train_docs": int(freq[j]), "dev_docs": int(s.truth[:, j].sum())})
    reliability = _reliability(pipeline, s) if pipeline.calibration is not None else None
    return ModelReport(name, pipeline, s, metrics, decile_metrics(s.truth, s.scores, s.train_freq, 5), correct, worst,
                       reliability)


def _reliability(pipeline: Pipeline, s: Scored, n_bins: int = 10) -> list[dict]:
    from xmc.metrics.calibration import prediction_hits

    raw, hit = prediction_hits(s.scores, s.truth)
    prob = pipeline.calibration(raw)
    bins = np.minimum((prob * n_bins).astype(np.int64), n_bins - 1)
    rows = []
    for b in range(n_bins):
        inside = bins == b
        if inside.any():
            rows.append({"bin": b, "confidence": float(prob[inside].mean()), "accuracy": float(hit[inside].mean()),
                         "count": int(inside.sum())})
    return rows


def _figures(reports: list[ModelReport]) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}

    def save(fig, key):
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        out[key] = buffer.getvalue()

    width = 0.8 / len(reports)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, metric in zip(axes, ("P@5", "RP@5", "nDCG@5"), strict=True):
        for i, r in enumerate(reports):
            values = [r.metrics.get(metric, 0.0)] + [r.metrics["groups"][g].get(metric, 0.0)
                                                    for g in ("frequent", "few", "zero")]
            ax.bar(np.arange(4) + i * width, values, width, label=r.name)
        ax.set_xticks(np.arange(4) + width * (len(reports) - 1) / 2, ["all", "frequent", "few", "zero"])
        ax.set_title(metric)
    axes[0].legend(fontsize=8)
    save(fig, "groups")
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
    for r in reports:
        x = [d["decile"] for d in r.deciles]
        axes[0].plot(x, [d["precision"] for d in r.deciles], marker="o", label=r.name)
        axes[1].plot(x, [d["recall"] for d in r.deciles], marker="o", label=r.name)
    for ax, title in zip(axes, ("precision of the top 5 by label-frequency decile (1 = rarest)",
                                "recall in the top 5 by label-frequency decile"), strict=True):
        ax.set_title(title, fontsize=9)
        ax.set_xticks(range(1, 11))
    axes[0].legend(fontsize=8)
    save(fig, "deciles")
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for r in reports:
        ax.plot(KS, [r.metrics[f"PSP@{k}"] for k in KS], marker="o", label=r.name)
    ax.set_title("PSP@k")
    ax.set_xticks(KS)
    ax.legend(fontsize=8)
    save(fig, "psp")
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for i, r in enumerate(reports):
        counts = np.bincount(r.correct, minlength=6)[:6]
        ax.bar(np.arange(6) + i * width, 100 * counts / max(1, r.correct.size), width, label=r.name)
    ax.set_title("labels right in a document's top 5 (% of documents)", fontsize=9)
    ax.legend(fontsize=8)
    save(fig, "correct")
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    for r in reports:
        if r.reliability:
            ax.plot([b["confidence"] for b in r.reliability], [b["accuracy"] for b in r.reliability], marker="o",
                    label=r.name)
    ax.set_title("calibration: share right vs calibrated score", fontsize=9)
    ax.set_xlabel("score")
    ax.set_ylabel("right")
    if any(r.reliability for r in reports):
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no model here has a calibration", ha="center", va="center", fontsize=9)
    save(fig, "calibration")
    return out


def _summary(reports: list[ModelReport], data: str, split: str) -> dict[str, Any]:
    return {"dataset": data, "split": split, "models": {
        r.name: {"method": r.pipeline.method, "metrics": r.metrics, "deciles": r.deciles, "worst_frequent": r.worst,
                 "calibration": r.pipeline.calibration_info or None, "reliability": r.reliability,
                 "fit_seconds": getattr(r.pipeline.model, "fit_seconds_", None) or {}} for r in reports}}


def _table(rows: list[list[str]], head: list[str]) -> str:
    def cell(tag, text):
        return f"<{tag}>{html.escape(str(text))}</{tag}>"

    return ("<table><tr>" + "".join(cell("th", h) for h in head) + "</tr>"
            + "".join("<tr>" + "".join(cell("td", c) for c in row) + "</tr>" for row in rows) + "</table>")


def _page(reports: list[ModelReport], figures: dict[str, bytes], data: str, split: str) -> str:
    metric_keys = [f"{m}@{k}" for m in ("P", "RP", "nDCG", "PSP", "R") for k in KS]
    rows = []
    for r in reports:
        rows.append([r.name, "all", r.metrics["n_docs"]] + [f"{r.metrics.get(k, 0):.2f}" for k in metric_keys])
        for g in ("frequent", "few", "zero"):
            grp = r.metrics["groups"][g]
            rows.append([r.name, f"{g} ({grp['n_labels']} labels)", grp["n_docs"]]
                        + [f"{grp[k]:.2f}" if k in grp else "-" for k in metric_keys])
    img = {k: f'<img alt="{k}" src="data:image/png;base64,{base64.b64encode(v).decode()}">'
           for k, v in figures.items()}
    parts = [f"<h1>xmc report: {html.escape(data)} / {html.escape(split)}</h1>",
             "<h2>Metrics overall and per label group</h2>",
             "<p>Groups as in the EURLEX57K papers: frequent (more than 50 training documents), few-shot (1 to 50), "
             "zero-shot (never in training); a group's metrics use its labels' columns and its documents.</p>",
             _table(rows, ["model", "labels", "documents", *metric_keys]), img["groups"],
             "<h2>By label frequency</h2>", img["deciles"], "<h2>Propensity-scored precision</h2>", img["psp"],
             "<h2>Labels right per document</h2>", img["correct"], "<h2>Calibration of the scores</h2>",
             img["calibration"] if any(r.reliability for r in reports) else "<p>No model here has a calibration.</p>"]
    for r in reports:
        info = r.pipeline.calibration_info
        if info:
            where = html.escape(str(info.get("fitted_on")))
            parts.append(f"<p>{html.escape(r.name)}: ECE {info.get('ECE', float('nan')):.2f}% calibrated, "
                         f"{info.get('ECE_raw', float('nan')):.2f}% raw (two-fold on {where}).{_accepted(r)}</p>")
    for r in reports:
        parts += [f"<h2>{html.escape(r.name)}: the 20 frequent labels with the worst F1 (top 5)</h2>",
                  _table([[w["label"], w["name"] or "", w["f1"], w["train_docs"], w["dev_docs"]] for w in r.worst],
                         ["label", "name", "F1", "training documents", "documents here"]),
                  f"<h2>{html.escape(r.name)}: settings and training times</h2>",
                  f"<pre>{html.escape(json.dumps(_settings(r.pipeline), indent=1))}</pre>"]
    style = ("body{font:14px/1.4 system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse;"
             "margin:.5rem 0 1rem}td,th{border:1px solid #ccc;padding:.2rem .45rem;text-align:right}"
             "img{max-width:100%;display:block;margin:.5rem 0}pre{background:#f6f6f6;padding:.6rem;overflow:auto}")
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>xmc report</title><style>{style}</style>"
            f"</head><body>{''.join(parts)}</body></html>")


def _settings(pipeline: Pipeline) -> dict[str, Any]:
    model = pipeline.model
    return {"method": pipeline.method, "config": model.config.to_dict() if getattr(model, "config", None) else None,
            "fit_seconds": getattr(model, "fit_seconds_", None) or {}, "dataset": pipeline.dataset,
            "training_documents": pipeline.n_train, "labels": len(pipeline.vocab)}


def _accepted(r: ModelReport) -> str:
    """The accept rate at 90% precision, when the model has one."""
    rate, precision = r.metrics.get("AR@P90"), r.metrics.get("AR@P90_precision")
    if rate is None:
        return ""
    right = f"{precision:.2f}% of them right" if precision is not None else "none accepted"
    return (f" Accepted automatically at 90% precision (threshold chosen on the calibration split): "
            f"{rate:.2f}% of the documents, {right}.")
