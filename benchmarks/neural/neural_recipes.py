"""Recipes of the neural methods measured at the full budget: what each choice gains or costs.

    python benchmarks/neural/neural_recipes.py [--data DIR/EURLEX57K-titles] [--recipes NAME,NAME] [--list]

Each recipe is a method and ``--set`` overrides on its CPU default, trained with ``xmc train`` (the
Python API) in its own process on the whole training split, for its whole budget. Dev is cut once,
by a seeded random permutation, into a *selection* half (on which recipes are compared and chosen)
and a *report* half (which says how well the chosen one does on documents no choice looked at);
full dev is given too. The in-training check reads ``train.eval_docs`` random dev documents.
Per recipe: P@1/3/5 on each half and on all of dev, training seconds by stage, the epochs' logs.
A recipe's result is kept in ``benchmarks/results/neural_recipes.rows.json`` and not run again
(``--rerun`` to force): the table grows over sessions and machines. Results: benchmarks/results/neural_recipes.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for its lib
from lib import common  # noqa: E402

WORK = common.WORK / "recipes"
LEDGER = "neural_recipes"
SELECTION_SEED = common.SELECTION_SEED
# encoder.strip's "eurlex" preset (xmc.nn.tokens.STRIP_PRESETS) cuts EUR-Lex's act identifiers ("(EEC)",
# "No 2959/76", "90/366/EEC:", "of 22 July 1976": 16 of a median 46 MiniLM tokens on dev titles; 80% of titles
# exceed 32 tokens with them, 41% without) and the Official Journal's page header that opens 39% of full-text
# dev documents ("29.12.2005 EN Official Journal of the European Union L 346/46"; it never occurs in titles)
STRIP = "encoder.strip=eurlex"
# The general token budget (xmc.features.budget.SkipRule), chosen on the selection half by
# benchmarks/neural/token_budget.py's screening; written out so the recipes mean the same after the
# defaults change
BUDGET = ["encoder.skip_share=0.1", "encoder.skip_numbers=true"]
# Recipes trained and scored on full-text EURLEX57K whatever --data says (the full-text targets)
FULL_TEXT = "EURLEX57K"
RECIPES: dict[str, tuple[str, list[str], str]] = {
    "lightxml/clustered-cold": ("lightxml", ["clustered=true", "warm_epochs=0"],
                                "the CPU default before these measurements: 64 clusters, shortlist 10, cold heads"),
    "lightxml/dense-cold": ("lightxml", ["clustered=false", "warm_epochs=0"],
                            "one dense head over all labels (the official code below Wiki-500K)"),
    "lightxml/dense-warm10": ("lightxml", ["clustered=false", "warm_epochs=10"],
                              "dense head, warmed for 10 epochs on the frozen encoder's cached outputs"),
    "lightxml/dense-warm10-48tok": ("lightxml", ["clustered=false", "warm_epochs=10", "encoder.max_seq_len=48"],
                                    "as above with 48 tokens (the median dev title is 46)"),
    "lightxml/dense-warm10-strip": ("lightxml", ["clustered=false", "warm_epochs=10", STRIP],
                                    "the default with the act's number, date and (EEC)-style tags cut before "
                                    "tokenising (encoder.strip): the 32 tokens go to words"),
    "lightxml/clustered-warm10": ("lightxml", ["clustered=true", "warm_epochs=10"],
                                  "clusters and shortlist as the old default, heads warmed"),
    "lightxml/dense-warm10-frozen1-3ep": ("lightxml", ["clustered=false", "warm_epochs=10", "freeze_layers=1",
                                                       "train.epochs=3"],
                                          "dense, warm, the first layer frozen and cached: 3 epochs of the 2 "
                                          "layers that learn in about the time of 2 of all 3"),
    "lightxml/dense-warm10-1ep": ("lightxml", ["clustered=false", "warm_epochs=10", "train.epochs=1"],
                                  "the default recipe at half the epochs (accuracy against budget)"),
    "lightxml/dense-warm10-4ep": ("lightxml", ["clustered=false", "warm_epochs=10", "train.epochs=4"],
                                  "the default recipe at twice the epochs (accuracy against budget)"),
    "cascadexml/warm10": ("cascadexml", ["warm_epochs=10"], "CascadeXML's CPU default with warmed heads"),
    "cascadexml/warm10-parent": ("cascadexml", ["warm_epochs=10", "predict.scheme=parent",
                                                "train.optim.head_decay=0.1"],
                                 "warm heads, the official code's parent scoring and a tenth of the decay on heads"),
    "cascadexml/wide-shortlists": ("cascadexml", ["top_k=32,64"],
                                   "CascadeXML's CPU default trained (and predicting) with twice the parents "
                                   "shortlisted per level (32 and 64; shortlist_widths.md measured the widths at "
                                   "prediction only)"),
    "lightxml/full-text-strip": ("lightxml", [STRIP],
                                 "full text, with the Official Journal header and the act identifiers cut before "
                                 "tokenising"),
    "lightxml/full-text-strip-1ep": ("lightxml", [STRIP, "train.epochs=1"],
                                     "as above at half the joint epochs (accuracy against budget)"),
    "cascadexml/strip": ("cascadexml", [STRIP],
                         "CascadeXML's CPU default with the act identifiers cut before tokenising"),
    "cascadexml/full-text-strip": ("cascadexml", [STRIP],
                                   "CascadeXML's CPU default on full text, Official Journal header and act "
                                   "identifiers cut"),
    "inceptionxml/default": ("inceptionxml", [], "InceptionXML's CPU default (parameter-free enhancement, "
                                                 "hidden block of 1,024), for the rows below"),
    "inceptionxml/official": ("inceptionxml", ["learned_attention=true", "residual_head=true"],
                              "InceptionXML with the paper code's learned enhancement (gain from 0) and residual "
                              "head (BatchNorm, dropout 0.5)"),
    "inceptionxml/learned-attention": ("inceptionxml", ["learned_attention=true"],
                                       "InceptionXML with only the paper code's learned enhancement (the "
                                       "default's head)"),
    "inceptionxml/strip": ("inceptionxml", [STRIP],
                           "InceptionXML's CPU default with the act identifiers cut before its 32 words are read"),
    "syncxml/strip": ("syncxml", [STRIP], "SyncXML's CPU default with the act identifiers cut"),
    "syncxml/official": ("syncxml", ["learned_attention=true", "residual_head=true"],
                         "SyncXML with the same enhancement and head"),
    "xr-linear/default": ("xr-linear", [], "XR-Linear's default, the reference of the targets and of the ensembles"),
    "ensemble/lightxml-4ep": ("ensemble", ["xr-linear/default", "lightxml/dense-warm10-4ep"],
                              "score average of XR-Linear and LightXML at 4 joint epochs (both trained above)"),
    "ensemble/cascadexml": ("ensemble", ["xr-linear/default", "cascadexml/warm10-parent"],
                            "score average of XR-Linear and CascadeXML's new default (both trained above)"),
    "weighted/lightxml-strip": ("weighted-ensemble", ["xr-linear/default", "lightxml/dense-warm10-strip"],
                                "XR-Linear with LightXML (act identifiers cut), combiner and LightXML's weight "
                                "chosen on the selection half (the report half is the honest figure)"),
    "weighted/cascadexml-strip": ("weighted-ensemble", ["xr-linear/default", "cascadexml/strip"],
                                  "XR-Linear with CascadeXML (act identifiers cut), chosen the same way"),
    "weighted/inceptionxml-strip": ("weighted-ensemble", ["xr-linear/default", "inceptionxml/strip"],
                                    "XR-Linear with InceptionXML (act identifiers cut), chosen the same way"),
    "lightxml/budget": ("lightxml", BUDGET, "LightXML's CPU default with the general token budget (no preset): words "
                                           "in more than a share of the training documents and words with a digit "
                                           "skipped before tokenising"),
    "cascadexml/budget": ("cascadexml", BUDGET, "CascadeXML's CPU default with the general token budget"),
    "lightxml/full-text-budget": ("lightxml", BUDGET, "LightXML on full text with the general token budget"),
    "cascadexml/full-text-budget": ("cascadexml", BUDGET, "CascadeXML on full text with the general token budget"),
    "xr-transformer/full-text-budget": ("xr-transformer", BUDGET,
                                        "XR-Transformer's CPU default on full text with the general token budget"),
    "xr-transformer/full-text-budget-64tok": ("xr-transformer", [*BUDGET, "encoder.max_seq_len=64"],
                                              "as above with 64 tokens (the budget measured 9 of the 20 minutes "
                                              "with 32)"),
    "inceptionxml/budget": ("inceptionxml", BUDGET, "InceptionXML's CPU default with the general token budget "
                                                    "on its 32 words"),
    "syncxml/budget": ("syncxml", BUDGET, "SyncXML's CPU default with the general token budget"),
    "weighted/lightxml-budget": ("weighted-ensemble", ["xr-linear/default", "lightxml/budget"],
                                 "XR-Linear with LightXML (token budget), chosen on the selection half"),
    "weighted/cascadexml-budget": ("weighted-ensemble", ["xr-linear/default", "cascadexml/budget"],
                                   "XR-Linear with CascadeXML (token budget), chosen on the selection half"),
    "elias/default": ("elias", [], "ELIAS's CPU default"),
    "elias/uniform-edges": ("elias", ["edge_init=uniform"], "ELIAS with the official random start of the edges"),
}
# The second corpus: each method's CPU default with the token budget off (the default before it) and on,
# scored on Reuters-21578's test split (it has no dev split; nothing is chosen on it)
SECOND = "Reuters-21578"
OFF = ["encoder.skip_share=1.0", "encoder.skip_numbers=false"]
for _method in ("xr-transformer", "lightxml", "cascadexml", "elias", "inceptionxml", "syncxml"):
    RECIPES[f"reuters/{_method}-off"] = (_method, OFF, f"{_method} on {SECOND}, token budget off (test split)")
    RECIPES[f"reuters/{_method}-budget"] = (_method, BUDGET, f"{_method} on {SECOND}, token budget on (test split)")
RECIPE_DATA = {name: FULL_TEXT for name in RECIPES if "/full-text" in name}
RECIPE_DATA.update({name: SECOND for name in RECIPES if name.startswith("reuters/")})


def run_recipe(name: str, data: str) -> dict:
    """Child process: train, predict dev, score the halves."""
    from xmc import api
    from xmc.metrics import precision_at_k

    method, sets, _ = RECIPES[name]
    data = RECIPE_DATA.get(name, data)
    out = WORK / name.replace("/", "__")
    t0 = time.perf_counter()
    if method in ("ensemble", "weighted-ensemble"):  # the members are recipes trained earlier on this machine
        members = ensemble_members(sets, data)
        combine, weights = choose_weights(members, data) if method == "weighted-ensemble" else ("average", ())
        pipeline = api.ensemble(members, out, combine=combine, weights=weights, overwrite=True)
        seconds = {"fit": 0.0}
    else:
        result = api.train(method, data, out, overrides=sets, overwrite=True)
        pipeline, seconds = result.pipeline, result.seconds
    wall = time.perf_counter() - t0
    dataset = api.dataset(data)
    dev = dataset.load("dev" if dataset.has_split("dev") else "test")
    scores = api.predict_split(pipeline, dev, top_k=5)
    truth = pipeline.vocab.encode(dev.labels).Y
    row = {"name": name, "method": method, "sets": sets, "data": data, "date": common.today(),
           "weights": list(getattr(pipeline.model.config, "weights", ())),
           "combine": getattr(pipeline.model.config, "combine", ""),
           "machine": common.machine(),
           "wall_s": wall, "seconds": seconds, "fit_seconds": getattr(pipeline.model, "fit_seconds_", {}),
           "epochs": getattr(pipeline.model, "epoch_logs_", [])}
    parts = (*common.halves(len(dev)), np.arange(len(dev)))
    for part, rows in zip(("selection", "report", "dev"), parts, strict=True):
        row[part] = {f"P@{k}": 100 * precision_at_k(truth[rows], scores[rows], k) for k in (1, 3, 5)}
    return row


def ensemble_members(names: list[str], data: str) -> list[Path]:
    """The members' model folders; XR-Linear (seconds to train) is trained when its folder is missing,
    a neural member must have been trained by its own recipe on this machine."""
    from xmc import api

    members = [WORK / m.replace("/", "__") for m in names]
    for name, folder in zip(names, members, strict=True):
        if not folder.exists() and RECIPES[name][0] == "xr-linear":
            api.train("xr-linear", data, folder, overrides=RECIPES[name][1], overwrite=True)
    missing = [str(m) for m in members if not m.exists()]
    if missing:
        raise SystemExit(f"the ensemble needs its members trained first: {', '.join(missing)}")
    return members


def choose_weights(members: list[Path], data: str) -> tuple[str, tuple[float, float]]:
    """The combiner and the members' weights chosen on dev's selection half, as benchmarks/neural/neural.py's
    weighted ensembles."""
    from xmc import api

    dev = api.dataset(data).load("dev")
    pipelines = [api.load(m) for m in members]
    select = common.halves(len(dev))[0]
    scores = [api.predict_split(p, dev, top_k=50)[select] for p in pipelines]
    combine, w = common.best_combination(scores, pipelines[0].vocab.encode(dev.labels).Y[select])
    return combine, (1 - w, w)


def table(rows: list[dict]) -> str:
    lines = ["| recipe | what | selection P@1 / P@5 | report P@1 / P@5 | dev P@1 / P@3 / P@5 | train s (stages) "
             "| date |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        stages = " + ".join(f"{k} {v:.0f}" for k, v in r["fit_seconds"].items())
        s, p, d = r["selection"], r["report"], r["dev"]
        what = RECIPES.get(r["name"], ("", "", ""))[2]
        if r.get("weights"):
            what += f" (chosen: {r['combine']}, weight {r['weights'][-1]:.2f})"
        what += common.copied_mark(r)
        lines.append(f"| {r['name']} | {what} | {s['P@1']:.2f} / {s['P@5']:.2f} | "
                     f"{p['P@1']:.2f} / {p['P@5']:.2f} | {d['P@1']:.2f} / {d['P@3']:.2f} / {d['P@5']:.2f} | "
                     f"{r['seconds'].get('fit', 0):.0f} ({stages}) | {r['date']} |")
    return "\n".join(lines)


def epoch_lines(rows: list[dict]) -> list[str]:
    out = []
    for r in rows:
        logs = "; ".join(f"{e['stage']} {e['epoch'] + 1}: loss {e['loss']:.4f}"
                         + (f", P@1 {e['dev']['P@1']:.1f}" if e.get("dev") else "") + f" ({e['seconds']:.0f} s)"
                         for e in r["epochs"])
        out.append(f"- {r['name']}: {logs}")
    return out


CURVES = {"LightXML's CPU recipe (dense head, 10 warm epochs)": ("lightxml/dense-warm10-1ep", "lightxml/dense-warm10",
                                                                       "lightxml/dense-warm10-4ep"),
          "LightXML on full text, identifiers and header cut": ("lightxml/full-text-strip-1ep",
                                                                "lightxml/full-text-strip")}


def budget_lines(rows: list[dict]) -> list[str]:
    """Accuracy against budget: one recipe at more than one number of joint epochs, each run to its own
    end (the schedule fitted to its epochs); the in-training check after every joint epoch shows the
    shape within a run."""
    by_name = {r["name"]: r for r in rows}
    out = []
    for title, names in CURVES.items():
        runs = [by_name[n] for n in names if n in by_name]
        if len(runs) < 2:
            continue
        out += [f"{title}:", "", "| recipe | joint epochs | train s | in-training P@1 after each joint epoch | "
                "dev P@1 / P@5 |", "|---|---|---|---|---|"]
        for r in runs:
            joint = [e for e in r["epochs"] if e.get("dev")]
            checks = ", ".join(f"{e['dev']['P@1']:.1f}" for e in joint)
            out.append(f"| {r['name']} | {len(joint)} | {r['seconds'].get('fit', 0):.0f} | {checks} | "
                       f"{r['dev']['P@1']:.2f} / {r['dev']['P@5']:.2f} |")
        out.append("")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("XMC_TITLES", "EURLEX57K-titles"))
    ap.add_argument("--recipes", default=",".join(RECIPES))
    ap.add_argument("--rerun", action="store_true")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.list:
        for name, (method, sets, what) in RECIPES.items():
            print(f"{name}: {method} {' '.join(sets)}  ({what})")
        return
    WORK.mkdir(parents=True, exist_ok=True)
    if args.child:
        row = run_recipe(args.child, args.data)
        (WORK / f"{args.child.replace('/', '__')}.json").write_text(json.dumps(row, indent=1, default=float))
        return
    done = common.ledger(LEDGER)
    for name in args.recipes.split(","):
        path = WORK / f"{name.replace('/', '__')}.json"
        if name in done and not args.rerun:
            continue
        if args.rerun or not path.exists():
            print(f"{name} ...", flush=True)
            subprocess.run([sys.executable, __file__, "--data", args.data, "--child", name], check=True)
        common.record(LEDGER, name, json.loads(path.read_text()))
    rows = list(common.ledger(LEDGER).values())
    rows.sort(key=lambda r: list(RECIPES).index(r["name"]) if r["name"] in RECIPES else 99)
    budget = budget_lines(rows)
    body = "\n".join([
        f"Data: {args.data} (train -> dev), and full-text {FULL_TEXT} for the recipes named full-text. Dev cut by "
        f"a seeded random permutation (seed {SELECTION_SEED}) into a "
        "selection half and a report half; recipes are chosen on the selection half. Each recipe is a method's CPU "
        "default with the listed overrides, trained at its full budget in its own process on 2 cores.", "",
        table(rows), "", "Epochs (in-training check on random dev documents):", "", *epoch_lines(rows), "",
        *(["## Accuracy against budget", "", *budget] if budget else [])])
    path = common.write_result("neural_recipes", "python " + " ".join(sys.argv), body)
    print(path.read_text())


if __name__ == "__main__":
    main()
