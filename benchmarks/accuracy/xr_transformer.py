"""XR-Transformer (default CPU config) against XR-Linear on TF-IDF, and against PECOS's XR-Transformer.

    python benchmarks/accuracy/xr_transformer.py [--data EURLEX57K] [--pecos-docs 2000] [--pecos-steps 20]

Part 1 (full data): xmc XR-Transformer with the config `xmc train --method xr-transformer` picks on
this machine, xmc XR-Linear on TF-IDF, and a control (XR-Linear on TF-IDF with the
XR-Transformer ranker's settings, which shows what the embeddings add on their own), each in its
own process, EURLEX57K train -> dev.
Part 2 (fine-tuning throughput, a training subset): xmc and PECOS (libpecos 1.2.8 with
transformers 4.46.3, in their own venv) fine-tune the same encoder folder (the packaged
all-MiniLM-L6-v2, all 6 layers) with the same max sequence length, batch size and number of steps
per level on the same documents and the same label tree sizes; the fine-tuning documents per second are compared.
xmc runs twice there: training the same weights as PECOS (word embeddings included), and with its
CPU default (word embeddings frozen, which the default CPU config of part 1 uses).
Results: benchmarks/results/xr_transformer.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for its lib
from lib import common, xr_linear_run  # noqa: E402

TOP_K = 10
XRT_VENV = common.WORK / "peers-xrt-venv"
XRT = "xmc XR-Transformer (default CPU config)"
LINEAR = "xmc XR-Linear (TF-IDF)"
CONTROL = "xmc XR-Linear (TF-IDF, XR-Transformer's ranker settings)"
XRT_PACKAGES = [["torch==2.13.0"], ["numpy<2", "scipy<1.14", "libpecos==1.2.8", "transformers==4.46.3"]]


def run_xmc_xrt(data: str, out: Path, overrides: list[str]) -> None:
    """Child process: the default XR-Transformer, trained and evaluated like `xmc train` does."""
    from xmc.data import LabelVocab, resolve
    from xmc.models.xr_transformer import XRTransformer

    dataset = resolve(data)
    train, dev = dataset.load("train"), dataset.load("dev")
    vocab = LabelVocab.build(train.labels)
    config = XRTransformer.default_config().with_overrides(overrides)
    t0 = time.perf_counter()
    model = XRTransformer(config).fit(train.texts, vocab.encode(train.labels).Y,
                                      eval_set=(dev.texts, vocab.encode(dev.labels).Y))
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    P = model.predict(dev.texts, top_k=TOP_K)
    predict_s = time.perf_counter() - t0
    sp.save_npz(out / "xmc_xrt.npz", P)
    json.dump({"train_s": train_s, "predict_ms_per_doc": 1000 * predict_s / len(dev), "stages": model.fit_seconds_,
               "levels": model.level_logs_, "config": config.to_dict(), "peak_rss_mb": common.peak_rss_mb()},
              open(out / "xmc_xrt.json", "w"))


def run_control(out: Path, overrides: list[str]) -> None:
    """Child process: XR-Linear on TF-IDF alone with the default XR-Transformer's ranker config."""
    from xmc.models.xr_transformer import XRTransformer

    ranker_config = XRTransformer.default_config().with_overrides(overrides).ranker
    xr_linear_run.run_xmc(common.WORK / "xr_linear", out, config=ranker_config, name="xmc_control")


# The subset comparison's xmc variants: what is trained, beside the settings PECOS gets too.
FINETUNE_VARIANTS = {
    "same": ("xmc, same trainable weights as PECOS", ["finetune.freeze_embeddings=false"]),
    "cpu": ("xmc, its CPU default: word embeddings frozen", ["finetune.freeze_embeddings=true"]),
}


def run_xmc_finetune(work: Path, out: Path, steps: int, max_len: int, variant: str) -> None:
    """Child process: only xmc's fine-tuning, on the subset PECOS gets, with PECOS's settings."""
    from xmc.models.xr_transformer import XRTransformer, XRTransformerConfig

    texts = (work / "X.sub.txt").read_text(encoding="utf-8").splitlines()
    Y = sp.load_npz(work / "Y.sub.npz").tocsr()
    config = XRTransformerConfig().with_overrides([
        f"encoder.max_seq_len={max_len}", "encoder.n_layers=0", f"finetune.steps=[{steps}]", "finetune.batch_size=32",
        "finetune.eval_docs=0", "finetune.lr=0.0001", "finetune.warmup=0", "finetune.device=cpu",
        "matcher_tree.max_leaf_size=16", "matcher_tree.min_codes=16", *FINETUNE_VARIANTS[variant][1]])
    t0 = time.perf_counter()
    model = XRTransformer(config).fit(texts, Y)
    train_s = time.perf_counter() - t0
    dev_texts = (work / "X.dev.txt").read_text(encoding="utf-8").splitlines()
    t0 = time.perf_counter()
    sp.save_npz(out / f"xmc_sub_{variant}.npz", model.predict(dev_texts, top_k=TOP_K), compressed=False)
    predict_s = time.perf_counter() - t0
    json.dump({"levels": model.level_logs_, "stages": model.fit_seconds_, "peak_rss_mb": common.peak_rss_mb(),
               "train_s": train_s, "predict_ms_per_doc": 1000 * predict_s / len(dev_texts)},
              open(out / f"xmc_finetune_{variant}.json", "w"))


def xrt_python() -> Path:
    py = XRT_VENV / "bin" / "python"
    if not py.exists():
        print(f"creating PECOS XR-Transformer's venv in {XRT_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(XRT_VENV)], check=True)
        for packages in XRT_PACKAGES:  # torch first: the CPU build where one is on disk
            subprocess.run([str(py), "-m", "pip", "install", "-q", *packages], check=True)
    return py


def _one_line(texts):
    return [t.replace("\t", " ").replace("\n", " ") for t in texts]


def _subset(train, dev, vocab, n: int, work: Path) -> None:
    """The first ``n`` training texts with the labels they use, their TF-IDF, and all dev texts."""
    from xmc.features import TfidfFeaturizer

    work.mkdir(parents=True, exist_ok=True)
    texts = _one_line(train.texts[:n])
    (work / "X.sub.txt").write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    (work / "X.dev.txt").write_text("".join(t + "\n" for t in _one_line(dev.texts)), encoding="utf-8")
    Y = vocab.encode(train.labels[:n]).Y
    keep = np.flatnonzero(np.diff(sp.csc_matrix(Y).indptr))  # labels present in the subset
    np.save(work / "keep.npy", keep)
    sp.save_npz(work / "Y.sub.npz", sp.csr_matrix(Y[:, keep]), compressed=False)
    featurizer = TfidfFeaturizer()
    sp.save_npz(work / "X.sub.npz", featurizer.fit_transform(texts), compressed=False)
    sp.save_npz(work / "X.dev.npz", featurizer.transform(dev.texts), compressed=False)


def _full_columns(P: sp.csr_matrix, keep: np.ndarray, n_labels: int) -> sp.csr_matrix:
    P = sp.csr_matrix(P)
    return sp.csr_matrix((P.data, keep[P.indices], P.indptr), shape=(P.shape[0], n_labels))


def _pct(m, k):
    return f"{m[k]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="EURLEX57K")
    parser.add_argument("--pecos-docs", type=int, default=2000, help="training documents of the throughput comparison")
    parser.add_argument("--pecos-steps", type=int, default=20, help="fine-tuning steps per level in that comparison")
    parser.add_argument("--pecos-max-len", type=int, default=32)
    parser.add_argument("--skip", default="", help="comma list of parts to skip: xrt, linear, control, pecos")
    parser.add_argument("--set", action="append", default=[], help="override of the xmc XR-Transformer config")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work, out = common.WORK / "xr_transformer", common.WORK / "xr_transformer" / "out"
    if args.child:
        kind = args.child[0]
        if kind == "xrt":
            return run_xmc_xrt(args.data, out, args.set)
        if kind == "linear":
            return xr_linear_run.run_xmc(common.WORK / "xr_linear", out)
        if kind == "control":
            return run_control(out, args.set)
        return run_xmc_finetune(work, out, args.pecos_steps, args.pecos_max_len, args.child[1])
    out.mkdir(parents=True, exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))
    vocab, train, dev = common.eurlex_features(args.data, common.WORK / "xr_linear")
    me = [sys.executable, __file__, "--data", args.data, "--pecos-steps", str(args.pecos_steps),
          "--pecos-max-len", str(args.pecos_max_len)] + [f"--set={s}" for s in args.set]
    if "xrt" not in skip:
        print("running xmc XR-Transformer (default config) ...", flush=True)
        subprocess.run([*me, "--child", "xrt"], check=True)
    if "linear" not in skip:
        print("running xmc XR-Linear on TF-IDF ...", flush=True)
        subprocess.run([*me, "--child", "linear"], check=True)
    if "control" not in skip:
        print("running xmc XR-Linear on TF-IDF with the XR-Transformer ranker's settings ...", flush=True)
        subprocess.run([*me, "--child", "control"], check=True)
    if "pecos" not in skip:
        _subset(train, dev, vocab, args.pecos_docs, work)
        for variant, (title, _) in FINETUNE_VARIANTS.items():
            print(f"running xmc fine-tuning on the subset ({title}) ...", flush=True)
            subprocess.run([*me, "--child", "finetune", variant], check=True)
        py = xrt_python()
        print("running PECOS XR-Transformer on the subset ...", flush=True)
        with open(out / "pecos_xrt.log", "w") as log:
            runner = [str(py), str(Path(__file__).with_name("peers_xrt_runner.py")), str(work), str(out),
                      str(args.pecos_steps), str(args.pecos_max_len), _encoder_folder()]
            subprocess.run(runner, check=True, stdout=log, stderr=subprocess.STDOUT)
    report(args, vocab, train, dev, out)


def _encoder_folder() -> str:
    from xmc.nn.encoders import packaged_encoder_dir

    return str(packaged_encoder_dir())


def report(args, vocab, train, dev, out: Path) -> None:
    lines = [f"EURLEX57K train ({len(train):,} docs) -> dev ({len(dev):,} docs); unseen dev labels kept as misses; "
             "PSP with A=0.55, B=1.5; top-10 predictions.", ""]
    stems = ((XRT, "xmc_xrt"), (LINEAR, "xmc"), (CONTROL, "xmc_control"))
    rows = {name: (json.load(open(out / f"{stem}.json")), f"{stem}.npz")
            for name, stem in stems if (out / f"{stem}.json").exists()}
    metrics = {name: common.score_predictions(sp.load_npz(out / npz), vocab, train.labels, dev.labels)
               for name, (_, npz) in rows.items()}
    lines += ["| system | P@1 | P@3 | P@5 | nDCG@5 | PSP@5 | train s | predict ms/doc | peak RSS MB |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, (r, _) in rows.items():
        m = metrics[name]
        pred = r.get("predict_ms_per_doc", r.get("batch_ms_per_doc"))
        lines.append(f"| {name} | {_pct(m, 'P@1')} | {_pct(m, 'P@3')} | {_pct(m, 'P@5')} | {_pct(m, 'nDCG@5')} | "
                     f"{_pct(m, 'PSP@5')} | {r['train_s']:.0f} | {pred:.2f} | {r['peak_rss_mb']:.0f} |")
    xrt = rows.get(XRT, (None,))[0]
    if xrt:
        lines += ["", "XR-Transformer stages (s): " + ", ".join(f"{k} {v:.0f}" for k, v in xrt["stages"].items()), "",
                  "| level | nodes | steps | seconds | docs/s | loss | dev P@1 (matcher beam) | dev P@5 |",
                  "|---|---|---|---|---|---|---|---|"]
        for e in xrt["levels"]:
            dev_p1, dev_p5 = (e["dev"].get(k, float("nan")) for k in ("P@1", "P@5"))
            lines.append(f"| {e['level'] + 1} | {e['n_nodes']:,} | {e['steps']} | {e['seconds']:.0f} | "
                         f"{e['docs_per_second']:.1f} | {e['loss']:.4f} | {dev_p1:.2f} | {dev_p5:.2f} |")
        lines += ["", "Config: `" + json.dumps({k: xrt["config"][k] for k in ("encoder", "finetune")}) + "`"]
    lines += _throughput_lines(args, out, vocab, train, dev, common.WORK / "xr_transformer")
    if CONTROL in metrics and xrt:
        x, c = metrics[XRT], metrics[CONTROL]
        lines += ["", "What the fine-tuned embeddings add (XR-Transformer minus the control, same ranker settings): "
                  + ", ".join(f"{k} {x[k] - c[k]:+.2f}" for k in ("P@1", "P@3", "P@5", "PSP@5"))]
    if LINEAR in metrics and xrt:
        x, lin = metrics[XRT], metrics[LINEAR]
        checks = [("P@1 >= XR-Linear + 1.0", x["P@1"] >= lin["P@1"] + 1.0),
                  ("P@5 >= XR-Linear + 1.5", x["P@5"] >= lin["P@5"] + 1.5),
                  ("training <= 20 minutes", xrt["train_s"] <= 1200)]
        lines += ["", "Targets:", ""] + [f"- {'met' if ok else 'MISSED'}: {name}" for name, ok in checks]
    command = "python benchmarks/accuracy/xr_transformer.py " + " ".join(a for a in sys.argv[1:])
    path = common.write_result("xr_transformer", command, "\n".join(lines))
    print(path.read_text())


def _throughput_lines(args, out: Path, vocab, train, dev, work: Path) -> list[str]:
    if not (out / "pecos_xrt.json").exists():
        return []
    keep = np.load(work / "keep.npy")
    pe = json.load(open(out / "pecos_xrt.json"))
    runs = {"PECOS": (pe, pe["docs_per_second"], pe["seconds"], pe["levels"], out / "pecos_sub.npz")}
    for variant, (title, _) in FINETUNE_VARIANTS.items():
        if (out / f"xmc_finetune_{variant}.json").exists():
            xm = json.load(open(out / f"xmc_finetune_{variant}.json"))
            secs = sum(e["seconds"] for e in xm["levels"])
            rate = sum(e["steps"] for e in xm["levels"]) * 32 / secs
            runs[title] = (xm, rate, secs, [e["n_nodes"] for e in xm["levels"]], out / f"xmc_sub_{variant}.npz")
    scored = {name: common.score_predictions(_full_columns(sp.load_npz(npz), keep, len(vocab)), vocab, train.labels,
                                             dev.labels)
              for name, (*_, npz) in runs.items() if npz.exists()}
    lines = ["", "Against PECOS's XR-Transformer: the same encoder folder (all-MiniLM-L6-v2, all 6 layers), "
             f"max length {args.pecos_max_len}, batch 32, {args.pecos_steps} steps per level, lr 1e-4, tfn+man, "
             "the same tree settings (leaves of 16, 16 top codes), "
             f"trained on the first {args.pecos_docs:,} training documents (the labels they use), "
             "evaluated on all of dev. Fine-tuning s = time in the step loop (xmc) or inside "
             "PECOS's `fine_tune_encoder`, which also saves and reloads a checkpoint per level. PECOS always trains "
             "the word-embedding table; xmc is run twice, training it too and with its CPU default (frozen).", "",
             "| system | levels (nodes) | fine-tuning s | docs/s | train s (all) | P@1 | P@3 | P@5 | PSP@5 "
             "| predict ms/doc | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, (r, rate, secs, nodes, _) in runs.items():
        m = scored.get(name)
        quality = " | ".join(f"{m[k]:.2f}" for k in ("P@1", "P@3", "P@5", "PSP@5")) if m else "- | - | - | -"
        train_s, pred, rss = (r.get(k, float("nan")) for k in ("train_s", "predict_ms_per_doc", "peak_rss_mb"))
        lines.append(f"| {name} | {nodes} | {secs:.0f} | {rate:.1f} | {train_s:.0f} | {quality} | {pred:.2f} "
                     f"| {rss:.0f} |")
    lines.append("")
    for name, (_, rate, *_) in runs.items():
        if name == "PECOS":
            continue
        ratio = rate / runs["PECOS"][1]
        verdict = "met" if ratio >= 1.5 else "MISSED"
        lines.append(f"- {verdict}: fine-tuning throughput >= 1.5x PECOS ({name}: {ratio:.2f}x)")
        if name in scored and "PECOS" in scored:
            ok = scored[name]["P@1"] >= scored["PECOS"]["P@1"]
            lines.append(f"- {'met' if ok else 'MISSED'}: P@1 >= PECOS's on the subset ({name})")
    return lines


if __name__ == "__main__":
    main()
