"""XR-Linear against PECOS, omikuji and napkinXC on the same TF-IDF features, in one run.

    python benchmarks/xr_linear.py [--data EURLEX57K] [--peers pecos,omikuji,napkinxc]

Each system runs in its own process (peers in their own venv) so peak RSS is its own. Training
time excludes TF-IDF and includes label clustering. Results: benchmarks/results/xr_linear.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

N_LATENCY = 1000
TOP_K = 10


def run_xmc(work: Path, out: Path) -> None:
    """Child process: train and time xmc's XR-Linear with its defaults."""
    from xmc.models.xr_linear import XRLinear

    X, Y, Xt = (sp.load_npz(work / f).tocsr() for f in ("X.trn.npz", "Y.trn.npz", "X.dev.npz"))
    t0 = time.perf_counter()
    model = XRLinear().fit(X, Y)
    train_s = time.perf_counter() - t0
    model.predict(Xt[:50], top_k=TOP_K)  # warm-up (numba kernels are cached after the first run)
    t0 = time.perf_counter()
    P = model.predict(Xt, top_k=TOP_K)
    batch_ms = 1000 * (time.perf_counter() - t0) / Xt.shape[0]
    latency = common.median_latency_ms(lambda i: model.predict(Xt[i], top_k=TOP_K), N_LATENCY, Xt.shape[0])
    sp.save_npz(out / "xmc.npz", P)
    json.dump({"train_s": train_s, "batch_ms_per_doc": batch_ms, "latency_ms_median": latency,
               "peak_rss_mb": common.peak_rss_mb(), "stages": model.fit_seconds_,
               "level_sizes": model.tree_.level_sizes, "nnz": [int(W.nnz) for W in model.weights_]},
              open(out / "xmc.json", "w"))


def _row(name, r, m, base):
    def ratio(key):
        return f" ({r[key] / base[key]:.2f}x)" if base and base is not r else ""
    return (f"| {name} | {m['P@1']:.2f} | {m['P@3']:.2f} | {m['P@5']:.2f} | {m['nDCG@5']:.2f} | {m['PSP@5']:.2f} | "
            f"{r['train_s']:.1f}{ratio('train_s')} | {r['batch_ms_per_doc']:.3f}{ratio('batch_ms_per_doc')} | "
            f"{r['latency_ms_median']:.3f} | {r['peak_rss_mb']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="EURLEX57K")
    parser.add_argument("--peers", default="pecos,omikuji,napkinxc")
    parser.add_argument("--run-xmc", nargs=2, metavar=("WORK", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_xmc:
        return run_xmc(Path(args.run_xmc[0]), Path(args.run_xmc[1]))
    work = common.WORK / "xr_linear"
    out = work / "out"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    vocab, train, dev = common.eurlex_features(args.data, work)
    print(f"features ready ({time.perf_counter() - t0:.0f}s)", flush=True)
    peers = [p for p in args.peers.split(",") if p]
    runs = {}
    print("running xmc ...", flush=True)
    subprocess.run([sys.executable, __file__, "--run-xmc", str(work), str(out)], check=True)
    runs["xmc XR-Linear"] = ("xmc", json.load(open(out / "xmc.json")))
    if peers:
        py = common.peers_python()
        for peer in peers:
            print(f"running {peer} ...", flush=True)
            with open(out / f"{peer}.log", "w") as log:  # peers print progress bars by the thousand
                subprocess.run([str(py), str(common.HERE / "peers_runner.py"), peer, str(work), str(out)],
                               check=True, stdout=log, stderr=subprocess.STDOUT)
            runs[{"pecos": "PECOS XLinearModel", "omikuji": "omikuji", "napkinxc": "napkinXC PLT"}[peer]] = (
                peer, json.load(open(out / f"{peer}.json")))
    metrics = {name: common.score_predictions(sp.load_npz(out / f"{key}.npz"), vocab, train.labels, dev.labels)
               for name, (key, _) in runs.items()}
    base = runs.get("PECOS XLinearModel", (None, None))[1]
    lines = [
        f"EURLEX57K train ({len(train):,} docs) -> dev ({len(dev):,} docs), {len(vocab):,} training labels; "
        "unseen dev labels kept as misses; PSP with A=0.55, B=1.5. TF-IDF: word 1-2 grams, sublinear tf, "
        "min_df 2, at most 500k terms (xmc's featuriser), the same matrix for every system. "
        f"Top-{TOP_K} predictions; training includes label clustering; batch = all dev docs in one call; "
        f"latency = median of {N_LATENCY} one-document calls; ratios in brackets are against PECOS.",
        "",
        "| system | P@1 | P@3 | P@5 | nDCG@5 | PSP@5 | train s | batch ms/doc | 1-doc ms | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row(name, r, metrics[name], base) for name, (_, r) in runs.items()]
    x = runs["xmc XR-Linear"][1]
    lines += ["", f"xmc stages: {json.dumps({k: round(v, 1) for k, v in x['stages'].items()})}; "
              f"tree levels {x['level_sizes']}; weights nnz per level {x['nnz']}"]
    if base:
        mx, mp = metrics["xmc XR-Linear"], metrics["PECOS XLinearModel"]
        checks = [
            ("P@1 >= PECOS - 0.3", mx["P@1"] >= mp["P@1"] - 0.3),
            ("P@5 >= PECOS - 0.3", mx["P@5"] >= mp["P@5"] - 0.3),
            ("PSP@5 >= PECOS - 0.3", mx["PSP@5"] >= mp["PSP@5"] - 0.3),
            ("training time <= 1.0x PECOS", x["train_s"] <= base["train_s"]),
            ("batch prediction <= 1.0x PECOS", x["batch_ms_per_doc"] <= base["batch_ms_per_doc"]),
            ("single-document latency < 2 ms", x["latency_ms_median"] < 2.0),
        ]
        lines += ["", "Targets:", ""] + [f"- {'met' if ok else 'MISSED'}: {name}" for name, ok in checks]
    path = common.write_result("xr_linear", "python benchmarks/xr_linear.py " + " ".join(sys.argv[1:]), "\n".join(lines))
    print(path.read_text())


if __name__ == "__main__":
    main()
