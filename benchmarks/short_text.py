"""Short text: EURLEX57K-titles (each document's title as its text) train -> dev, in one run, each
system in its own process: XR-Linear on title TF-IDF, InceptionXML, SyncXML (with word2vec and with
MiniLM's WordPiece table, to pick the default), XR-Transformer on titles (its CPU default), and the
score ensemble of each with XR-Linear.

    python benchmarks/short_text.py [--data EURLEX57K] [--systems ...] [--dry-run]

Per system: P@1/3/5, PSP@5, nDCG@5 on dev, training time, prediction ms per document (a batch of
1,000, and one text at a time), FLOPs per document and parameters of the encoder and heads (against
all-MiniLM-L6-v2 at 32 tokens), peak RSS. Results: benchmarks/results/short_text.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import neural  # noqa: E402

SYSTEMS = {
    "xr-linear": ("xr-linear", []),
    "inceptionxml": ("inceptionxml", []),
    "syncxml": ("syncxml", []),
    "syncxml (5 epochs)": ("syncxml", ["train.epochs=5"]),
    "syncxml (wordpiece)": ("syncxml", ["embeddings=wordpiece"]),
    "inceptionxml (wordpiece)": ("inceptionxml", ["embeddings=wordpiece"]),
    "xr-transformer": ("xr-transformer", []),
}
DRY = {"inceptionxml": ["train.epochs=1"], "syncxml": ["train.epochs=1", "meta_epochs=0"]}


def cost(folder: Path, out: Path) -> None:
    """Child process: FLOPs of one document's forward pass and the parameter count of a saved model
    (its encoder and heads), and the same for all-MiniLM-L6-v2 at 32 tokens."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from xmc import api
    from xmc.nn.encoders import load_pretrained, resolve_encoder

    def flops(fn) -> int:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            fn()
        return int(counter.get_total_flops())

    model = api.load(folder).model
    tokens = model._tokenize(["council regulation on the common organisation of the market in bananas and "
                              "the import of fresh fruit from third countries"])
    ids, mask = tokens.batch(np.array([0]))
    net = model.net_.eval()
    ours = flops(lambda: net.predict(ids, mask, top_k=10))
    params = sum(p.numel() for p in net.parameters())
    _, minilm = load_pretrained(resolve_encoder("minilm-l6"))
    minilm.eval()
    ids32 = torch.ones((1, 32), dtype=torch.long)
    theirs = flops(lambda: minilm(input_ids=ids32, attention_mask=torch.ones_like(ids32)))
    json.dump({"flops": ours, "params": params, "minilm_flops": theirs,
               "minilm_params": sum(p.numel() for p in minilm.parameters())}, open(out / "cost.json", "w"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="EURLEX57K")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="keep a system's result from an earlier run (dated)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        cost(Path(args.child[0]), Path(args.child[1]))
        return
    start = time.perf_counter()
    data = neural.prepare_titles(args.data, args.dry_run)
    if args.dry_run:
        data = neural.slice_dataset(data, "titles")
    results = {}
    root = common.WORK / ("short_text-dry-run" if args.dry_run else "short_text")
    for name in args.systems.split(","):
        method, sets = SYSTEMS[name]
        sets = sets + (DRY.get(method, []) + neural.DRY_RUN_SETS.get(method, []) if args.dry_run else [])
        out = root / name.replace(" ", "_").replace("(", "").replace(")", "")
        out.mkdir(parents=True, exist_ok=True)
        if not neural.reused(out, args.reuse):
            print(f"training {name}", flush=True)
            neural.child(["--child", "train", method, data, str(out), json.dumps(sets), "1000"])
        results[name] = json.load(open(out / "result.json"))
        if method in ("inceptionxml", "syncxml"):
            if not (args.reuse and (out / "cost.json").exists()):
                common_run(["--child", str(out / "model"), str(out)])
            results[name]["cost"] = json.load(open(out / "cost.json"))
    linear = root / "xr-linear" / "model"
    for name in [n for n in results if n != "xr-linear"]:
        out = root / f"ensemble-{name}".replace(" ", "_").replace("(", "").replace(")", "")
        out.mkdir(parents=True, exist_ok=True)
        member = root / name.replace(" ", "_").replace("(", "").replace(")", "") / "model"
        if neural.reused(out, args.reuse):
            results[f"ensemble {name} + xr-linear"] = json.load(open(out / "result.json"))
            continue
        print(f"ensemble {name} + xr-linear", flush=True)
        neural.child(["--child", "ensemble", str(linear), str(member), data, str(out), "average"])
        results[f"ensemble {name} + xr-linear"] = json.load(open(out / "result.json"))
    body = report(results, time.perf_counter() - start, args.dry_run)
    command = "python benchmarks/short_text.py " + " ".join(sys.argv[1:])
    print(common.write_result("short_text", command.strip(), body, folder=common.WORK if args.dry_run else None))


def common_run(args: list[str]) -> None:
    import subprocess

    subprocess.run([sys.executable, __file__, *args], check=True)


def report(results: dict, seconds: float, dry_run: bool) -> str:
    lines = ["| system | " + " | ".join(neural.METRICS) + " | train s | predict ms/doc (batch of 1,000) | "
             "predict ms (one text) | peak RSS MB |", "|---|" + "---|" * (len(neural.METRICS) + 4)]
    for name, r in results.items():
        m = r["metrics"]
        lines.append(f"| {name} | " + " | ".join(f"{m[k]:.2f}" for k in neural.METRICS)
                     + f" | {r.get('wall_s', float('nan')):.0f} | {r.get('batch_ms_per_doc', float('nan')):.2f} | "
                       f"{r.get('single_ms', float('nan')):.2f} | {r['peak_rss_mb']:,.0f} |")
    lines += ["", "Cost of one document (forward pass of encoder and heads, torch's FLOP counter):", "",
              "| model | FLOPs per document | parameters | vs all-MiniLM-L6-v2 at 32 tokens (FLOPs) |",
              "|---|---|---|---|"]
    for name, r in results.items():
        c = r.get("cost")
        if c:
            lines.append(f"| {name} | {c['flops'] / 1e6:,.1f} M | {c['params'] / 1e6:,.2f} M | "
                         f"{100 * c['flops'] / c['minilm_flops']:.1f}% of {c['minilm_flops'] / 1e6:,.0f} M |")
    lines += ["", "## Targets", ""] + targets(results) + ["", f"Total {seconds / 60:.0f} minutes"
                                                          + (" (DRY RUN: tiny slice; figures mean nothing)."
                                                             if dry_run else ".")]
    return "\n".join(lines)


def targets(results: dict) -> list[str]:
    out = []
    linear = results.get("xr-linear")
    for name in ("inceptionxml", "syncxml", "syncxml (5 epochs)"):
        r = results.get(name)
        if r is None or linear is None:
            continue
        m, lm = r["metrics"], linear["metrics"]
        out.append(f"- {name} trains in at most 10 minutes: {'met' if r['wall_s'] <= 600 else 'MISSED'} "
                   f"({r['wall_s']:.0f} s)")
        ok = m["P@1"] >= lm["P@1"] and m["P@5"] >= lm["P@5"]
        out.append(f"- {name} reaches XR-Linear's P@1 and P@5: {'met' if ok else 'MISSED'} (P@1 {m['P@1']:.2f} vs "
                   f"{lm['P@1']:.2f}, P@5 {m['P@5']:.2f} vs {lm['P@5']:.2f})")
        e = results.get(f"ensemble {name} + xr-linear")
        if e:
            d1, d5 = e["metrics"]["P@1"] - lm["P@1"], e["metrics"]["P@5"] - lm["P@5"]
            out.append(f"- ensemble of {name} with XR-Linear beats XR-Linear by 1 P@1 and 1 P@5: "
                       f"{'met' if d1 >= 1 and d5 >= 1 else 'MISSED'} ({d1:+.2f}, {d5:+.2f})")
        out.append(f"- {name} predicts one text in under 2 ms: {'met' if r['single_ms'] < 2 else 'MISSED'} "
                   f"({r['single_ms']:.2f} ms)")
    inc, syn = results.get("inceptionxml"), results.get("syncxml", results.get("syncxml (5 epochs)"))
    if inc and syn:
        speed = inc["batch_ms_per_doc"] / syn["batch_ms_per_doc"]
        loss = inc["metrics"]["P@5"] - syn["metrics"]["P@5"]
        out.append(f"- SyncXML predicts at least 2x as fast as InceptionXML at no more than 0.5 P@5 loss: "
                   f"{'met' if speed >= 2 and loss <= 0.5 else 'MISSED'} ({speed:.2f}x, P@5 {-loss:+.2f})")
    return out


if __name__ == "__main__":
    main()
