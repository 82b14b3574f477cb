"""XR-Linear, XR-Transformer, LightXML and CascadeXML side by side, in one run, on EURLEX57K and its
short-text variant EURLEX57K-titles (train -> dev), each in its own process; then the score-level
ensemble of each neural model with XR-Linear (``xmc ensemble``).

    python benchmarks/neural/neural.py [--data EURLEX57K] [--methods xr-linear,xr-transformer,lightxml,cascadexml]
                                [--datasets full,titles] [--config cpu|gpu] [--name neural] [--dry-run]
                                [--adopt EURLEX57K/lightxml=FOLDER]

Every method runs with the config ``xmc train`` picks on this machine (``--config gpu`` forces the
GPU configs, which benchmarks/neural/gpu.sh uses). Per system: P@1/3/5, PSP@5, nDCG@5 on dev (unseen dev
labels kept as misses), training wall time by stage, prediction ms per document (a batch of all
dev documents, and one text at a time), peak RSS. ``--dry-run`` runs every step on a tiny slice
with tiny budgets, to check the script (and gpu.sh) end to end on a CPU. Results:
benchmarks/results/<name>.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for its lib
from lib import common  # noqa: E402
from lib.runs import METHODS, METRICS, NEURAL, child, config_overrides, keep, prepare_titles, reused, slice_dataset  # noqa: E402


def row(name: str, r: dict) -> str:
    m = r["metrics"]
    stages = " + ".join(f"{k} {v:.0f}" for k, v in r.get("stages", {}).items()) or "-"
    if "weight" in r:
        name = name.replace("(weighted)", f"(weighted: {r['combine']}, neural weight {r['weight']:.2f}, "
                                          "chosen on the selection half)")
    name += f" (run {r['ran_at']} UTC)" if "ran_at" in r else ""
    if "adopted_from" in r:
        name += f" (trained by neural_recipes.py, {Path(r['adopted_from']).name}; peak RSS of the measurement)"
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
    parser.add_argument("--adopt", action="append", default=[],
                        help="DATASET/METHOD=FOLDER: measure that folder, trained earlier with the method's CPU "
                             "default (a neural_recipes.py run), instead of training it again")
    args = parser.parse_args()
    adopted = dict(spec.split("=", 1) for spec in args.adopt)
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
                folder = adopted.get(f"{name}/{method}")
                if folder:
                    print(f"{name}: measuring {method} from {folder}", flush=True)
                    child(["--child", "adopt", method, data, folder, str(out)])
                else:
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
    command = "python benchmarks/neural/neural.py " + " ".join(sys.argv[1:])
    # a dry run checks the script; its figures mean nothing and stay out of benchmarks/results
    print(common.write_result(args.name, command.strip(), body, folder=common.WORK if args.dry_run else None))
    json.dump(results, open(common.WORK / args.name / "results.json", "w"), indent=1, default=str)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
