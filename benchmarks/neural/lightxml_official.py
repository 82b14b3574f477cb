"""The official LightXML (kongds/LightXML) beside xmc's LightXML at the same budget, on EURLEX57K-titles.

    python benchmarks/neural/lightxml_official.py [--data DIR/EURLEX57K-titles] [--seeds 0,1] [--epochs 2]
                                           [--max-len 32] [--layers 3] [--skip-xmc] [--skip-official] [--reuse]
                                           [--xmc-recipes xmc,xmc-official]

The official code is read from a snapshot of its repository (``fetch github:kongds/LightXML``, found
under ``/work/.mirror`` or ``$LIGHTXML_REPO``; it also needs pandas), copied to
``benchmarks/.work/lightxml_official/`` and patched there by :data:`PATCHES`, a list of exact
replacements (each must match, so a changed source fails loudly). The patch changes only what a CPU
and this budget need: no apex/CUDA, the packaged all-MiniLM-L6-v2 cut to ``--layers`` layers (its
tokenizer and vocabulary), ``--layers`` [CLS] taps instead of 5, exactly ``--epochs`` epochs, the
dev split as its test split, no data-loader workers, and the final weights' dev scores saved.
Its recipe stays its own: dense head (no label
clusters below Wiki-500K), [CLS] pooling, dropout 0.5, one AdamW learning rate of 1e-4, batch 16.
xmc's LightXML runs with its CPU default and ``encoder.n_layers``, ``encoder.max_seq_len`` and
``train.epochs`` set to the same budget (``--xmc-recipes xmc``, the default), or set to the official
recipe as well (``xmc-official``: :data:`OFFICIAL_RECIPE`), which tells the code from the recipe. Each
run is a process of its own; scores are xmc's P@k on all of dev (dev labels unseen in training kept as
misses). Where the snapshot is absent, the script says so and runs xmc alone. Results:
benchmarks/results/lightxml_official.md.
"""

from __future__ import annotations

import argparse
import importlib.util
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

WORK = common.WORK / "lightxml_official"
LEDGER = "lightxml_official"
GIT = shutil.which("git") or "git"
MIRROR = Path(os.environ.get("LIGHTXML_REPO", "/work/.mirror/kongds+LightXML/repo"))
FILES = ("main.py", "model.py", "dataset.py", "log.py")
ENCODER = "os.environ['PEER_ENCODER']"
PATCHES = [
    ("main.py", "from apex import amp\n", ""),
    ("main.py", "from transformers import AdamW\n", "from torch.optim import AdamW\nimport os\n"),
    ("main.py", "    model.cuda()\n", "    model.to(DEVICE)\n"),
    ("main.py", "    model, optimizer = amp.initialize(model, optimizer, opt_level=\"O1\")\n", ""),
    ("main.py", "num_workers=2,", "num_workers=0,"),
    ("main.py", "num_workers=1,", "num_workers=0,"),
    ("main.py", "    for epoch in range(0, args.epoch+5):", "    for epoch in range(0, args.epoch):"),
    ("main.py", "        if epoch >= args.epoch + 5 and max_only_p5 != p5:\n            break\n",
     "    scores, _ = model.one_epoch(0, testloader, None, mode='test')\n"
     "    np.save(os.environ['PEER_OUT'], scores.astype(np.float16))\n"),
    ("main.py", "            model.save_model(f'models/model-{get_exp_name()}.bin')\n", "            pass\n"),
    ("main.py", "use_swa=args.swa, swa_warmup_epoch=args.swa_warmup, swa_update_step=args.swa_step)\n\n",
     "use_swa=args.swa, swa_warmup_epoch=args.swa_warmup, swa_update_step=args.swa_step,\n"
     "                         feature_layers=int(os.environ['PEER_LAYERS']))\n\n"),
    ("main.py", "if __name__ == '__main__':\n", "DEVICE = torch.device('cpu')\nif __name__ == '__main__':\n"),
    ("model.py", "from apex import amp\n", "import os\n"),
    ("model.py", "        model_config = BertConfig.from_pretrained('bert-base-uncased')\n",
     f"        model_config = BertConfig.from_pretrained({ENCODER}, local_files_only=True)\n"
     "        model_config.num_hidden_layers = int(os.environ['PEER_LAYERS'])\n"),
    ("model.py", "        bert = BertModel.from_pretrained('bert-base-uncased', config=model_config)",
     f"        bert = BertModel.from_pretrained({ENCODER}, config=model_config, local_files_only=True)"),
    ("model.py", "            tokenizer = BertTokenizer.from_pretrained('bert-base-uncased', do_lower_case=True)",
     f"            tokenizer = BertTokenizer.from_pretrained({ENCODER}, do_lower_case=True, local_files_only=True)"),
    ("model.py", "                    with amp.scale_loss(loss, optimizer) as scaled_loss:\n"
                 "                        scaled_loss.backward()\n", "                    loss.backward()\n"),
    ("model.py", "labels = torch.stack(new_labels).cuda()", "labels = torch.stack(new_labels)"),
    ("model.py", "torch.LongTensor(candidates).cuda(), torch.Tensor(group_candidates_scores).cuda()",
     "torch.LongTensor(candidates), torch.Tensor(group_candidates_scores)"),
    ("model.py", "                inputs = {'input_ids':      batch[0].cuda(),\n"
                 "                          'attention_mask': batch[1].cuda(),\n"
                 "                          'token_type_ids': batch[2].cuda()}",
     "                inputs = {'input_ids':      batch[0],\n"
                 "                          'attention_mask': batch[1],\n"
                 "                          'token_type_ids': batch[2]}"),
    ("model.py", "inputs['labels'] = batch[3].cuda()", "inputs['labels'] = batch[3]"),
    ("dataset.py", "    fext = '_texts.txt' if dataset == 'Eurlex-4K' else '_raw_texts.txt'\n",
     "    fext = '_texts.txt' if dataset == 'Eurlex-4K' else '_raw_texts.txt'\n"
     "    dataset = os.environ['PEER_DATA']\n"),
    ("dataset.py", "open(f'./data/{dataset}/", "open(f'{dataset}/"),
    ("dataset.py", "np.long", "np.int64"),
    # transformers 5's BertTokenizer has no encode_plus: tell it from a tokenizers.Tokenizer another way
    ("dataset.py", "        elif hasattr(self.tokenizer, 'encode_plus'):",
     "        elif not hasattr(self.tokenizer, 'no_truncation'):"),
]


def official_source(work: Path) -> Path | None:
    """The official files, copied from the snapshot and patched; None when there is no snapshot."""
    if not MIRROR.exists():
        return None
    missing = [m for m in ("pandas", "tqdm", "sklearn") if importlib.util.find_spec(m) is None]
    if missing:  # the official code's own imports, beyond xmc's
        raise SystemExit(f"the official LightXML needs {', '.join(missing)}: pip install {' '.join(missing)}")
    commit = subprocess.run([GIT, "-C", str(MIRROR), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    src = work / f"src-{commit[:10]}"
    src.mkdir(parents=True, exist_ok=True)
    texts = {f: subprocess.run([GIT, "-C", str(MIRROR), "show", f"HEAD:src/{f}"], capture_output=True, text=True,
                               check=True).stdout for f in FILES}
    for name, old, new in PATCHES:
        if old not in texts[name]:
            raise SystemExit(f"a patch for {name} does not match the snapshot: {old[:70]!r}")
        texts[name] = texts[name].replace(old, new)
    for name, text in texts.items():
        (src / name).write_text(text)
    (src / "log").mkdir(exist_ok=True)
    (src / "commit.txt").write_text(commit + "\n")
    return src


def write_data(data: str, out: Path) -> tuple[list[list[str]], list[str]]:
    """The official layout: {train,test}_texts.txt and _labels.txt (dev as test); dev labels and the
    official label map (every label of both files, sorted)."""
    from xmc.data import resolve

    dataset = resolve(data)
    train, dev = dataset.load("train"), dataset.load("dev")
    out.mkdir(parents=True, exist_ok=True)
    for split, part in (("train", train), ("test", dev)):
        (out / f"{split}_texts.txt").write_text("".join(" ".join(t.split()) + "\n" for t in part.texts))
        (out / f"{split}_labels.txt").write_text("".join(" ".join(ls) + "\n" for ls in part.labels))
    label_map = sorted({x for ls in train.labels + dev.labels for x in ls})
    return dev.labels, label_map


def score(dev_labels: list[list[str]], labels: list[str], scores: np.ndarray) -> dict[str, float]:
    top = np.argsort(-scores.astype(np.float32), axis=1)[:, :5]
    out = {}
    for k in (1, 3, 5):
        hits = [len({labels[j] for j in row[:k]} & set(truth)) for row, truth in zip(top, dev_labels, strict=True)]
        out[f"P@{k}"] = 100 * float(np.mean(hits)) / k
    return out


def run_official(src: Path, data_dir: Path, seed: int, args) -> dict:
    from xmc.nn.encoders import resolve_encoder

    out = WORK / f"official-seed{seed}.npy"
    env = {**os.environ, "PEER_ENCODER": str(resolve_encoder("minilm-l6")), "PEER_LAYERS": str(args.layers),
           "PEER_DATA": str(data_dir), "PEER_OUT": str(out), "TOKENIZERS_PARALLELISM": "false"}
    t0 = time.perf_counter()
    log = WORK / f"official-seed{seed}.log"
    with log.open("w") as f:
        proc = subprocess.run([sys.executable, "main.py", "--dataset", "eurlex4k", "--epoch", str(args.epochs),
                               "--max_len", str(args.max_len), "--seed", str(seed)], cwd=src, env=env, stdout=f,
                              stderr=subprocess.STDOUT)
    if proc.returncode:
        raise SystemExit(f"the official LightXML failed ({proc.returncode}); see {log}")
    seconds = time.perf_counter() - t0
    out.with_suffix(".json").write_text(json.dumps({"seconds": seconds, "date": time.strftime("%Y-%m-%d %H:%M")}))
    return {"seconds": seconds, "scores": np.load(out)}


def earlier_official(seed: int) -> dict | None:
    """Scores and seconds a run left in ``.work`` but not yet in the ledger (``--reuse``), or None."""
    out = WORK / f"official-seed{seed}.npy"
    if not (out.exists() and out.with_suffix(".json").exists()):
        return None
    print(f"reusing {out}", flush=True)
    return {**json.loads(out.with_suffix(".json").read_text()), "scores": np.load(out)}


# xmc's LightXML set to the official code's recipe, as patched above (main.py's defaults for eurlex4k): [CLS] of
# the last --layers layers, dropout 0.5, one dense head trained cold, one constant AdamW rate of 1e-4 for the
# encoder and the head (decay 0.01 but on biases and LayerNorm, no clipping, no warm-up), batch 16, trained word
# embeddings, the raw text (no token budget), the last epoch's weights.
OFFICIAL_RECIPE = ["pooling=cls", "dropout=0.5", "clustered=false", "warm_epochs=0", "freeze_embeddings=false",
                   "train.batch_size=16", "train.optim.lr=1e-4", "train.optim.head_lr=1e-4",
                   "train.optim.schedule=constant", "train.optim.warmup=0", "train.optim.clip=0",
                   "train.optim.weight_decay=0.01", "train.optim.head_decay=1", "encoder.skip_share=1",
                   "encoder.skip_numbers=false", "train.select=", "train.eval_docs=0"]
SYSTEMS = {"xmc": "xmc LightXML (CPU default)", "xmc-official": "xmc LightXML (official recipe)"}


def run_xmc(data: str, name: str, seed: int, args) -> dict:
    from xmc import api

    sets = [f"encoder.n_layers={args.layers}", f"encoder.max_seq_len={args.max_len}", f"train.epochs={args.epochs}",
            f"train.seed={seed}"]
    if name == "xmc-official":  # the official code taps as many layers as it keeps
        sets += [f"n_taps={args.layers}", *OFFICIAL_RECIPE]
    t0 = time.perf_counter()
    result = api.train("lightxml", data, WORK / f"{name}-seed{seed}", overrides=sets, eval_split="dev",
                       overwrite=True)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "metrics": {k: result.metrics[k] for k in ("P@1", "P@3", "P@5")},
            "fit": result.seconds.get("fit", float("nan")), "sets": sets, "date": common.today()}


def run_xmc_child(args, name: str, seed: int, budget: dict) -> None:
    """One xmc arm in a process of its own (so peak memory and threads start clean); its row into the ledger."""
    child = f"{name}-seed{seed}"
    if not (args.reuse and (WORK / f"{child}.json").exists()):
        print(f"{child} ...", flush=True)
        subprocess.run([sys.executable, __file__, "--data", args.data, "--epochs", str(args.epochs), "--max-len",
                        str(args.max_len), "--layers", str(args.layers), "--child", child], check=True)
    r = json.loads((WORK / f"{child}.json").read_text())
    common.record(LEDGER, f"{name}/{seed}", {"system": SYSTEMS[name], "seed": seed, "metrics": r["metrics"],
                                             "seconds": r["seconds"], "date": r.get("date", common.today()),
                                             "budget": budget, "sets": r["sets"]})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("XMC_TITLES", "EURLEX57K-titles"))
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--max-len", type=int, default=32)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--skip-xmc", action="store_true")
    ap.add_argument("--xmc-recipes", default="xmc", help="xmc's arms: xmc (its CPU default), xmc-official (the "
                    "official recipe's settings), or both, comma-separated")
    ap.add_argument("--skip-official", action="store_true")
    ap.add_argument("--reuse", action="store_true", help="keep the seeds an earlier run finished (its ledger)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if args.child:  # xmc in a process of its own
        name, seed = args.child.rsplit("-seed", 1)
        (WORK / f"{args.child}.json").write_text(json.dumps(run_xmc(args.data, name, int(seed), args),
                                                            default=float))
        return
    notes = []
    src = None if args.skip_official else official_source(WORK)
    if src is None and not args.skip_official:
        notes.append(f"The official code is absent ({MIRROR} missing): only xmc ran.")
    dev_labels, label_map = write_data(args.data, WORK / "data") if src is not None else (None, None)
    budget = {"layers": args.layers, "max_len": args.max_len, "epochs": args.epochs}
    done = common.ledger(LEDGER)
    for seed in [int(s) for s in args.seeds.split(",")]:
        if src is not None and not (args.reuse and f"official/{seed}" in done):
            r = earlier_official(seed) if args.reuse else None
            if r is None:
                print(f"official seed {seed} ...", flush=True)
                r = run_official(src, WORK / "data", seed, args)
            common.record(LEDGER, f"official/{seed}", {
                "system": "official LightXML", "seed": seed, "metrics": score(dev_labels, label_map, r["scores"]),
                "seconds": r["seconds"], "date": r.get("date", common.today()), "budget": budget})
        for name in [] if args.skip_xmc else args.xmc_recipes.split(","):
            if not (args.reuse and f"{name}/{seed}" in done):
                run_xmc_child(args, name, seed, budget)
    rows = sorted((r for r in common.ledger(LEDGER).values() if r["budget"] == budget),
                  key=lambda r: (r["seed"], r["system"]))
    lines = ["| system | seed | dev P@1 | dev P@3 | dev P@5 | wall s (train + dev scoring) | date |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['system']} | {r['seed']} | {r['metrics']['P@1']:.2f} | {r['metrics']['P@3']:.2f} | "
              f"{r['metrics']['P@5']:.2f} | {r['seconds']:.0f}{' (' + r['note'] + ')' if r.get('note') else ''} | "
              f"{r['date']} |" for r in rows]
    commit = (src / "commit.txt").read_text().strip() if src is not None else "absent"
    body = "\n".join([f"Data: {args.data}; budget: MiniLM's first {args.layers} layers, {args.max_len} tokens, "
                      f"{args.epochs} epochs, 2 CPU cores. Official code: kongds/LightXML at {commit}, patched by "
                      "PATCHES in this script. Rows of earlier runs at the same budget come from "
                      f"results/{LEDGER}.rows.json.", "", *lines, "", *notes, ""])
    path = common.write_result("lightxml_official", "python " + " ".join(sys.argv), body)
    print(path.read_text())


if __name__ == "__main__":
    main()
