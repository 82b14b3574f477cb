"""``xmc serve`` under load: the server on loopback, the load from a second process.

    python benchmarks/serving/serve.py [--xr-linear PATH] [--xr-transformer PATH] [--requests 3000]
                               [--seconds 20] [--soak 30] [--rate 40]

Runs, each a server of its own with API keys on: XR-Linear (EURLEX57K) with 1 and 2 workers,
XR-Transformer (EURLEX57K-titles) float and ``--quantize``. For each: single-text requests at
concurrency 1, 8 and 32 (each level bounded by a number of requests and of seconds): throughput,
p50/p95/p99 latency, errors; the memory of each worker (RSS, and the PSS and private memory that
show what the workers share); a soak at a fixed rate (RSS sampled every 5 s); requests without a
key and with a wrong one, counted by the status they get. In-process: one text through
``api.predict_texts``, ms per text at batches of 1, 8 and 32, XR-Transformer's one text split into
its stages, and its dev P@1/P@5 float and quantised. CPU per request of the server and of the load
generator (they share the 2 cores) and, where py-spy is installed, where the server's time goes.
Models missing from ``benchmarks/.work/serve`` are trained first (``xmc train``). The load
generator is benchmarks/serving/loadgen.py. Results: benchmarks/results/serve.md.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for its lib
from lib import common  # noqa: E402
from lib.procstats import child_pids, children_cpu_seconds, memory_mb, rss_mb, tree_cpu_seconds  # noqa: E402
from lib.serve_report import BATCHES, LEVELS, report  # noqa: E402

# where a server's samples go: the first bucket whose pattern matches a frame, innermost frame first
BUCKETS = (("beam search and ranking", ("xmc/search/", "xmc/linear/", "numba")),
           ("encoder (torch)", ("torch/", "transformers/", "xmc/nn/")),
           ("text to features (tokenise, TF-IDF)", ("xmc/features/", "sklearn/", "scipy/", "tokenizers", " re.py",
                                                    "xmc/data/")),
           ("HTTP, validation, JSON (uvicorn, starlette, FastAPI, pydantic)",
            ("uvicorn/", "starlette/", "fastapi/", "pydantic", "h11/", "httptools", "json/", "anyio/")),
           ("micro-batching and the event loop", ("xmc/serve/", "asyncio/", "concurrent/", "threading.py")))


def profile_buckets(raw: Path) -> dict[str, float]:
    """Shares (percent) of py-spy's samples of the server by :data:`BUCKETS`."""
    counts: dict[str, int] = {}
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")[::-1]
        bucket = next((name for f in frames for name, patterns in BUCKETS if any(p in f for p in patterns)), "other")
        counts[bucket] = counts.get(bucket, 0) + int(n)
    total = sum(counts.values()) or 1
    return {k: 100 * v / total for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}


def profiled_level(name: str, pid: int, url: str, texts_file: Path, args, key: str) -> dict | None:
    """An extra 10-second run at the highest concurrency with py-spy sampling the server (not one of
    the measured levels: the sampler takes CPU too)."""
    import shutil

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return None
    raw = common.WORK / "serve" / f"{name}-profile.txt"
    sampler = subprocess.Popen([spy, "record", "-p", str(pid), "-d", "10", "-r", "50", "-f", "raw", "-o", str(raw),
                                "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    load(url, texts_file, common.WORK / "serve" / "p.json", LEVELS[-1], args.requests, 10, 0, key)
    sampler.wait(timeout=60)
    return profile_buckets(raw) if raw.exists() else None


def load(url: str, texts_file: Path, out: Path, concurrency: int, n: int, seconds: float, rate: float,
         key: str | None) -> dict:
    """One run of the load generator in a process of its own; its result."""
    loadgen = Path(__file__).with_name("loadgen.py")
    subprocess.run([sys.executable, str(loadgen), url, str(texts_file), str(out), str(concurrency), str(n),
                    str(seconds), str(rate), *([key] if key else [])], check=True)
    return json.loads(out.read_text())





RUNS = (  # name, model, workers, quantize
    ("xr-linear, 1 worker", "xr-linear", 1, False),
    ("xr-linear, 2 workers", "xr-linear", 2, False),
    ("xr-transformer (titles), float", "xr-transformer", 1, False),
    ("xr-transformer (titles), int8", "xr-transformer", 1, True),
)


def in_process(model: Path, texts: list[str], quantize: bool) -> dict:
    """Median ms of one text through ``api.predict_texts``, and ms per text at the batch sizes the
    server forms: the most micro-batching can gain, with no HTTP and no load generator."""
    from xmc import api

    pipeline = api.load(model, quantize=quantize)
    api.predict_texts(pipeline, texts[:32], top_k=5)
    one = common.median_latency_ms(lambda i: api.predict_texts(pipeline, [texts[i]], top_k=5), 300, len(texts))
    per_text = {}
    for b in BATCHES:
        times = []
        for r in range(max(3, 96 // b)):
            batch = texts[r * b: (r + 1) * b]
            t0 = time.perf_counter()
            api.predict_texts(pipeline, batch, top_k=5)
            times.append(1000 * (time.perf_counter() - t0) / b)
        per_text[str(b)] = float(np.median(times))
    result = {"one_ms": one, "per_text_ms": per_text}
    if pipeline.method == "xr-transformer":
        result["stages_ms"] = xrt_stages(pipeline.model, texts)
    return result


def xrt_stages(model, texts: list[str]) -> dict[str, float]:
    """Median ms of each stage of one text through XR-Transformer: TF-IDF, the encoder (tokens
    included), the ranker's beam search."""
    import scipy.sparse as sp

    from xmc.features.join import join_embedding

    stages = {"TF-IDF": lambda t: model.tfidf_.transform([t]), "encoder": lambda t: model.embed([t])}
    out = {name: common.median_latency_ms(lambda i, f=f: f(texts[i]), 200, len(texts)) for name, f in stages.items()}
    scale = model.config.embedding_scale
    features = [sp.csr_matrix(join_embedding(model.tfidf_.transform([t]), model.embed([t]), scale))
                for t in texts[:200]]
    out["ranker"] = common.median_latency_ms(lambda i: model.ranker_.predict(features[i], top_k=5), 200, 200)
    return out


def dev_accuracy(model: Path, data: str, quantize: bool) -> dict[str, float]:
    from xmc import api

    metrics = api.evaluate(api.load(model, quantize=quantize), data, "dev", ks=(1, 5), record=False)
    return {"P@1": metrics["P@1"], "P@5": metrics["P@5"]}


def ensure_models(args, needed: set[str]) -> dict[str, tuple[Path, str]]:
    """The XR-Linear (EURLEX57K) and XR-Transformer (EURLEX57K-titles) folders, trained when missing."""
    from xmc import api

    work = common.WORK / "serve"
    titles = work / "EURLEX57K-titles"
    if not titles.exists():
        api.derive_dataset(args.data, "title", titles)
    models = {"xr-linear": (Path(args.xr_linear or work / "xr-linear"), args.data),
              "xr-transformer": (Path(args.xr_transformer or work / "xr-transformer-titles"), str(titles))}
    for method, (folder, data) in models.items():
        if method in needed and not (folder / "xmc.json").exists():
            print(f"training {method} on {data} into {folder}", flush=True)
            subprocess.run([sys.executable, "-m", "xmc.cli.main", "train", "--method", method, "--data", data,
                            "--out", str(folder)], check=True, env={**os.environ, "XMC_PROGRESS": "0"})
    return models


def wait_ready(url: str, server, limit: float = 600) -> float:
    import httpx

    started = time.perf_counter()
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        if time.perf_counter() - started > limit or server.poll() is not None:
            raise RuntimeError(f"the server at {url} did not start")
        time.sleep(0.2)


def serve_run(name: str, model: Path, workers: int, quantize: bool, texts_file: Path, args, key: str) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    work = common.WORK / "serve"
    key_file = work / "keys.txt"
    key_file.write_text(key + "\n")
    slug = name.replace(" ", "").replace(",", "-").replace("(", "").replace(")", "")
    server = subprocess.Popen([sys.executable, "-m", "xmc.cli.main", "serve", "--model", str(model), "--port",
                               str(port), "--workers", str(workers), "--api-key-file", str(key_file),
                               *(["--quantize"] if quantize else [])], stdout=subprocess.DEVNULL,
                              stderr=subprocess.STDOUT, env={**os.environ, "XMC_PROGRESS": "0"})
    try:
        result = {"startup_s": wait_ready(url, server), "levels": []}
        for c in LEVELS:
            server_cpu, load_cpu = tree_cpu_seconds(server.pid), children_cpu_seconds()
            level = load(url, texts_file, work / f"{slug}-c{c}.json", c, args.requests, args.seconds, 0, key)
            level["rss_mb"] = rss_mb(server.pid)
            done = max(level["ok"] + level["errors"], 1)
            level["server_cpu_ms"] = 1000 * (tree_cpu_seconds(server.pid) - server_cpu) / done
            level["load_cpu_ms"] = 1000 * (children_cpu_seconds() - load_cpu) / done
            result["levels"].append(level)
        result["memory"] = [memory_mb(p) for p in ([server.pid] if workers == 1 else child_pids(server.pid))]
        result["parent_memory"] = memory_mb(server.pid) if workers > 1 else None
        result["profile"] = profiled_level(slug, server.pid, url, texts_file, args, key) if workers == 1 else None
        result["no_key"] = {label: load(url, texts_file, work / f"{slug}-{label}.json", 8, 500, 30, 0, bad)
                            ["statuses"] for label, bad in (("no key", None), ("wrong key", key[::-1]))}
        soak = subprocess.Popen([sys.executable, str(Path(__file__).with_name("loadgen.py")), url, str(texts_file),
                                 str(work / f"{slug}-soak.json"), "64", "0", str(args.soak), str(args.rate), key])
        samples = []
        while soak.poll() is None:
            samples.append(rss_mb(server.pid))
            time.sleep(5)
        result["soak"] = {**json.loads((work / f"{slug}-soak.json").read_text()), "rss_samples_mb": samples}
    finally:
        server.terminate()
        server.wait(timeout=60)
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xr-linear", default=None, help="an XR-Linear model folder (EURLEX57K)")
    parser.add_argument("--xr-transformer", default=None, help="an XR-Transformer model folder (EURLEX57K-titles)")
    parser.add_argument("--data", default="EURLEX57K")
    parser.add_argument("--runs", default=None, help="comma-separated run numbers to do (1-4; default all)")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--soak", type=float, default=30)
    parser.add_argument("--rate", type=float, default=40, help="requests per second during the soak")
    parser.add_argument("--report-only", action="store_true", help="rewrite serve.md from the last run's results")
    args = parser.parse_args()
    if args.report_only:
        saved = json.loads((common.WORK / "serve" / "results.json").read_text())
        command = f"python benchmarks/serving/serve.py {saved['args']} (report rewritten by --report-only)"
        print(common.write_result("serve", command, report(saved["results"], argparse.Namespace(**saved["ns"]))))
        return
    import secrets

    from xmc import api

    (common.WORK / "serve").mkdir(parents=True, exist_ok=True)
    chosen = [int(i) for i in args.runs.split(",")] if args.runs else range(1, len(RUNS) + 1)
    models = ensure_models(args, {RUNS[i - 1][1] for i in chosen})
    key = secrets.token_urlsafe(24)
    results = {}
    for number in chosen:
        name, method, workers, quantize = RUNS[number - 1]
        folder, data = models[method]
        texts = api.resolve(data).load("dev").texts[:2000]
        texts_file = common.WORK / "serve" / f"texts-{method}.json"
        texts_file.write_text(json.dumps(texts))
        print(f"serving {name}", flush=True)
        result = serve_run(name, folder, workers, quantize, texts_file, args, key)
        inproc = in_process(folder, texts, quantize)
        result.update(in_process_ms=inproc["one_ms"], batch_ms=inproc["per_text_ms"],
                      stages_ms=inproc.get("stages_ms"))
        if method == "xr-transformer":
            result["accuracy"] = dev_accuracy(folder, data, quantize)
        results[name] = result
    (common.WORK / "serve" / "results.json").write_text(json.dumps(
        {"results": results, "args": " ".join(sys.argv[1:]), "ns": {"soak": args.soak}}, indent=1))
    command = "python benchmarks/serving/serve.py " + " ".join(sys.argv[1:])
    print(common.write_result("serve", command.strip(), report(results, args)))


if __name__ == "__main__":
    main()
