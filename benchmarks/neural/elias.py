"""ELIAS and ELIAS++ beside XR-Linear, LightXML and CascadeXML, on EURLEX57K and EURLEX57K-titles
(train -> dev), each system trained in its own process with its CPU default (``xmc train``).

    python benchmarks/neural/elias.py [--data EURLEX57K] [--datasets full,titles]
                               [--methods xr-linear,lightxml,cascadexml,elias++] [--reuse] [--skip-heads]
                               [--adopt titles:lightxml=FOLDER]

Per system: P@1/3/5, nDCG@5, PSP@5 and R@100 on dev (unseen dev labels kept as misses), training
time by stage, prediction ms per document (a batch of all dev documents, and one text at a time),
peak RSS; for ELIAS the recall of its label shortlist before ranking and the number of labels that
end under more than one cluster. ELIAS's row is read from the ELIAS++ run: ELIAS++ is ELIAS plus a
ranker trained afterwards, so ELIAS's scores are the same model's without the ranker and its
training time is ELIAS++'s minus the ranker stage (one training run instead of two).

``--adopt DATASET:METHOD=FOLDER`` measures a model folder trained earlier with the method's CPU
default on the same data (a ``neural_recipes.py`` run) instead of training it again: every figure
but the training time is measured here, the training time is the one recorded in the folder, and
the row says where it came from (the child refuses a folder whose config differs from the default).

Then the heads and index alone (random features, like short_text.md's heads-alone table) at 4k,
100k and 1M labels: ms per document to train a step and to predict, and bytes, to show that the
learned index stays sparse (linear in C x kappa + L). Results: benchmarks/results/elias.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for its lib
from lib import common, runs  # noqa: E402

METHODS = ("xr-linear", "lightxml", "cascadexml", "elias++")
METRICS = ("P@1", "P@3", "P@5", "nDCG@5", "PSP@5", "R@100")
HEAD_LABELS = (4_271, 100_000, 1_000_000)
NAME = "elias"


def train_child(method: str, data: str, out: Path) -> None:
    """Child process: runs.py's training and timings, then R@100 and ELIAS's own figures."""
    from xmc import api
    from xmc.api.evaluation import evaluate_split

    runs.train_one(method, data, out, [])
    result = json.load(open(out / "result.json"))
    pipeline = api.load(out / "model")
    dev = api.resolve(data).load("dev")
    scores = pipeline.predict(texts=dev.texts, top_k=100)
    result["metrics"] = evaluate_split(pipeline, dev, scores, ks=(1, 3, 5, 100))
    if method.startswith("elias"):
        from xmc.models.elias import Elias

        model = pipeline.model
        own = Elias.predict(model, dev.texts, top_k=100)  # ELIAS without the ranker
        result["elias_metrics"] = evaluate_split(pipeline, dev, own, ks=(1, 3, 5, 100))
        truth = pipeline.vocab.encode(dev.labels).Y
        result["shortlist_recall"] = 100 * model.shortlist_recall(dev.texts, truth)
        result["shortlist_size"] = model.net_.shortlist_k
        result["multi_parent_labels"] = model.multi_parent_labels()
        result["n_labels"] = model.n_labels_
    json.dump(result, open(out / "result.json", "w"), indent=1, default=str)


def heads_child(n_labels: int, out: Path) -> None:
    """Child process: ELIAS's heads and learned index alone at ``n_labels`` labels (random 384-d
    features, label classifiers projected to 64 dimensions with sparse gradients, C = 2^ceil(log2(L /
    100)) clusters, kappa = min(1000, L), a random adjacency); batches of 32 to train, 1,000 to predict."""
    import scipy.sparse as sp
    import torch

    from xmc.nn.elias import EliasNet
    from xmc.nn.encoders import Tap
    from xmc.training.trainer import standard_groups

    class Fixed(torch.nn.Module):  # stands in for the encoder: the heads and the index are what is timed
        def forward(self, ids, mask, taps=None):
            return [features[: ids.shape[0]]]

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    features = torch.randn(1000, 384)
    n_clusters = int(2 ** np.ceil(np.log2(n_labels / 100)))
    kappa = min(1000, n_labels)
    net = EliasNet(Fixed(), (Tap("mean", -1),), 384, n_clusters, n_labels, kappa=kappa, beam=20, shortlist=2000,
                   label_dim=64, sparse=True)
    rows = rng.integers(0, n_labels, size=n_clusters * kappa)
    A = sp.csr_matrix((rng.random(rows.size).astype(np.float32) + 0.01,
                       (rows, np.repeat(np.arange(n_clusters), kappa))), shape=(n_labels, n_clusters))
    net.index.set_adjacency(A)
    groups = standard_groups(None, [net.features, net.heads], 1e-3, 1e-3, 0.01)
    dense = [p for g in groups if not g.sparse for p in g.params] + [net.index.edge_logits]
    optimizers = [torch.optim.AdamW(dense), torch.optim.SparseAdam([p for g in groups if g.sparse for p in g.params])]
    Y = sp.csr_matrix((np.ones(32 * 5, np.float32), rng.integers(0, n_labels, 32 * 5), np.arange(0, 32 * 5 + 1, 5)),
                      shape=(32, n_labels))
    ids = torch.zeros((32, 1), dtype=torch.long)
    net.train()

    def step():
        loss, _ = net.loss(ids, ids, [Y])
        loss.backward()
        for o in optimizers:
            o.step()
            o.zero_grad(set_to_none=True)

    step()
    t = time.perf_counter()
    for _ in range(10):
        step()
    train_ms = 1000 * (time.perf_counter() - t) / (10 * 32)
    net.eval()
    big = torch.zeros((1000, 1), dtype=torch.long)
    net.predict(big, big, top_k=5)
    t = time.perf_counter()
    for _ in range(3):
        net.predict(big, big, top_k=5)
    predict_ms = (time.perf_counter() - t) / 3
    nbytes = sum(t.numel() * t.element_size() for t in [*net.parameters(), *net.buffers()])
    json.dump({"labels": n_labels, "clusters": n_clusters, "kappa": kappa, "train_ms": train_ms,
               "predict_ms": predict_ms, "bytes": nbytes, "peak_rss_mb": common.peak_rss_mb()}, open(out, "w"))


def fmt(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}f}" if x == x else "-"


def system_rows(name: str, r: dict) -> list[str]:
    stages = r.get("stages", {})
    rows = []
    if "elias_metrics" in r:  # ELIAS without the ranker, from the same run
        own_s = r["wall_s"] - stages.get("ranker", 0.0)
        rows.append(_row("elias (from the elias++ run)", r["elias_metrics"], own_s,
                         {k: v for k, v in stages.items() if k != "ranker"}, r, ranker=False))
    rows.append(_row(name, r["metrics"], r["wall_s"], stages, r, ranker=True))
    return rows


def _row(name, m, wall, stages, r, ranker: bool) -> str:
    stage_text = " + ".join(f"{k} {v:.0f}" for k, v in stages.items()) or "-"
    extra = (f"{fmt(r['shortlist_recall'])} of {r['shortlist_size']} | {r['multi_parent_labels']:,}"
             if "shortlist_recall" in r else "- | -")
    timing = (f"{fmt(r.get('batch_ms_per_doc', float('nan')))} | {fmt(r.get('single_ms', float('nan')), 1)}"
              if ranker or "elias_metrics" not in r else "- | -")
    ran = f" (run {r['ran_at']} UTC)" if "ran_at" in r else ""
    if "adopted_from" in r:
        ran = f" (trained by neural_recipes.py, {Path(r['adopted_from']).name})"
    return (f"| {name}{ran} | " + " | ".join(fmt(m.get(k, float("nan"))) for k in METRICS)
            + f" | {extra} | {wall:.0f} ({stage_text}) | {timing} | {r['peak_rss_mb']:,.0f} |")


def targets(results: dict) -> list[str]:
    out = []
    for ds, systems in results.items():
        r = systems.get("elias++")
        if r is None:
            continue
        elias_s = r["wall_s"] - r.get("stages", {}).get("ranker", 0.0)
        out.append(f"- {ds}: ELIAS trains within 20 minutes: {'met' if elias_s <= 1200 else 'MISSED'} "
                   f"({elias_s:.0f} s; ELIAS++ {r['wall_s']:.0f} s)")
        peers = [systems[m] for m in ("lightxml", "cascadexml") if m in systems]
        if peers:
            best = max(peers, key=lambda p: p["metrics"]["P@1"])
            d1 = r["elias_metrics"]["P@1"] - best["metrics"]["P@1"]
            best_r = max(p["metrics"]["R@100"] for p in peers)
            d100 = r["elias_metrics"]["R@100"] - best_r
            ok = d1 >= 1 and d100 >= 2
            out.append(f"- {ds}: ELIAS beats the better of LightXML and CascadeXML by 1 P@1 and 2 R@100: "
                       f"{'met' if ok else 'MISSED'} (P@1 {d1:+.2f}, R@100 {d100:+.2f})")
        linear = systems.get("xr-linear")
        if linear is not None and "titles" in ds:
            d1 = r["metrics"]["P@1"] - linear["metrics"]["P@1"]
            d5 = r["metrics"]["P@5"] - linear["metrics"]["P@5"]
            out.append(f"- {ds}: ELIAS++ beats XR-Linear by 0.5 P@1 and 0.5 P@5: "
                       f"{'met' if d1 >= 0.5 and d5 >= 0.5 else 'MISSED'} (P@1 {d1:+.2f}, P@5 {d5:+.2f})")
    return out


def report(results: dict, heads: list[dict], seconds: float) -> str:
    lines = []
    for ds, systems in results.items():
        lines += [f"## {ds}", "", "| system | " + " | ".join(METRICS) + " | shortlist recall % (size) | labels "
                  "under 2+ clusters | train s (stages) | predict ms/doc (batch) | predict ms (one text) | "
                  "peak RSS MB |", "|---|" + "---|" * (len(METRICS) + 6)]
        for name, r in systems.items():
            lines += system_rows(name, r)
        lines.append("")
    if heads:
        lines += ["Heads and learned index alone (random 384-d features, label classifiers projected to 64-d with "
                  "sparse gradients, beam 20, shortlist 2,000; train: a step of 32 documents with AdamW + "
                  "SparseAdam; predict: batches of 1,000; bytes: parameters and buffers):", "",
                  "| labels | clusters C | kappa | C x kappa | train ms/doc | predict ms/doc | MB | peak RSS MB |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {h['labels']:,} | {h['clusters']:,} | {h['kappa']:,} | {h['clusters'] * h['kappa']:,} | "
                  f"{h['train_ms']:.3f} | {h['predict_ms']:.3f} | {h['bytes'] / 2**20:,.0f} | "
                  f"{h['peak_rss_mb']:,.0f} |" for h in heads]
        lines.append("")
    lines += ["## Targets", "", *targets(results), "", f"Total {seconds / 60:.0f} minutes of this run."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="EURLEX57K")
    ap.add_argument("--datasets", default="full,titles")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--reuse", action="store_true", help="keep results of earlier runs (dated in the table)")
    ap.add_argument("--skip-heads", action="store_true")
    ap.add_argument("--adopt", action="append", default=[], help="DATASET:METHOD=FOLDER (see the docstring)")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        if args.child[0] == "train":
            train_child(args.child[1], args.child[2], Path(args.child[3]))
        elif args.child[0] == "adopt":
            runs.adopt_one(args.child[1], args.child[2], Path(args.child[3]), Path(args.child[4]))
        else:
            heads_child(int(args.child[1]), Path(args.child[2]))
        return
    start = time.perf_counter()
    adopted = dict(spec.split("=", 1) for spec in args.adopt)
    results: dict[str, dict] = {}
    for ds in args.datasets.split(","):
        data = args.data if ds == "full" else runs.prepare_titles(args.data, False)
        name = f"EURLEX57K{'' if ds == 'full' else '-titles'}"
        results[name] = {}
        for method in args.methods.split(","):
            out = common.WORK / NAME / name / method
            out.mkdir(parents=True, exist_ok=True)
            if not runs.reused(out, args.reuse):
                if f"{ds}:{method}" in adopted:
                    print(f"{name}: measuring {method} from {adopted[f'{ds}:{method}']}", flush=True)
                    runs.child_of(__file__, ["--child", "adopt", method, data, adopted[f"{ds}:{method}"], str(out)])
                else:
                    print(f"{name}: training {method}", flush=True)
                    runs.child_of(__file__, ["--child", "train", method, data, str(out)])
            results[name][method] = json.load(open(out / "result.json"))
    heads = []
    if not args.skip_heads:
        for n in HEAD_LABELS:
            out = common.WORK / NAME / f"heads-{n}.json"
            if not (args.reuse and out.exists()):
                print(f"heads alone: {n:,} labels", flush=True)
                runs.child_of(__file__, ["--child", "heads", str(n), str(out)])
            heads.append(json.load(open(out)))
    body = report(results, heads, time.perf_counter() - start)
    print(common.write_result(NAME, "python benchmarks/neural/elias.py " + " ".join(sys.argv[1:]), body))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
