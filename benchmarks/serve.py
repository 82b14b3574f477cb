"""``xmc serve`` under load: the server on loopback, the load from a second process.

    python benchmarks/serve.py [--models xr-linear=PATH,xr-transformer=PATH] [--data EURLEX57K]
                               [--requests 2000] [--seconds 30] [--soak 60] [--rate 40]

For each model: single-text requests at concurrency 1, 8 and 32 (each level bounded by a number of
requests and of seconds): throughput, p50/p95/p99 latency, errors, server RSS; then a soak at a
fixed rate (RSS sampled every 5 s); and the in-process ``api.predict_texts`` latency of one text,
which the HTTP latency at concurrency 1 is compared with. Models default to the ones
benchmarks/neural.py trained. Results: benchmarks/results/serve.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

LEVELS = (1, 8, 32)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _load(url: str, texts: list[str], concurrency: int, n_requests: int, seconds: float,
                rate: float = 0.0) -> dict:
    """Send single-text requests: ``concurrency`` workers until ``n_requests`` or ``seconds``; with
    ``rate``, one request every 1/rate seconds instead (a soak)."""
    import httpx

    latencies, errors, sent = [], 0, 0
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=concurrency + 4)) as c:
        async def one(i: int):
            nonlocal errors
            t0 = time.perf_counter()
            try:
                r = await c.post("/predict", json={"texts": [texts[i % len(texts)]], "top_k": 5})
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - t0)
            else:
                errors += 1

        if rate:
            tasks = []
            i = 0
            while time.perf_counter() - started < seconds:
                tasks.append(asyncio.create_task(one(i)))
                i += 1
                await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            await asyncio.gather(*tasks)
            sent = i
        else:
            async def worker(w: int):
                nonlocal sent
                while sent < n_requests and time.perf_counter() - started < seconds:
                    sent += 1
                    await one(sent)

            await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - started
    lat = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {"concurrency": concurrency, "requests": sent, "ok": len(latencies), "errors": errors,
            "seconds": elapsed, "throughput": len(latencies) / elapsed, "p50": float(np.percentile(lat, 50)),
            "p95": float(np.percentile(lat, 95)), "p99": float(np.percentile(lat, 99))}


def load_child(url: str, texts_file: str, out: str, concurrency: int, n: int, seconds: float, rate: float) -> None:
    texts = json.loads(Path(texts_file).read_text())
    result = asyncio.run(_load(url, texts, concurrency, n, seconds, rate))
    Path(out).write_text(json.dumps(result))


def in_process_ms(model: Path, texts: list[str]) -> float:
    from xmc import api

    pipeline = api.load(model)
    api.predict_texts(pipeline, texts[:5], top_k=5)
    return common.median_latency_ms(lambda i: api.predict_texts(pipeline, [texts[i]], top_k=5), 300, len(texts))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_model(name: str, model: Path, texts_file: Path, args) -> dict:
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "xmc.cli.main", "serve", "--model", str(model), "--port",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                              env={**os.environ, "XMC_PROGRESS": "0"})
    try:
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - started > 600 or server.poll() is not None:
                raise RuntimeError(f"{name}: the server did not start")
            time.sleep(0.2)
        result = {"startup_s": time.perf_counter() - started, "levels": [], "rss_idle_mb": rss_mb(server.pid)}
        for c in LEVELS:
            out = common.WORK / "serve" / f"{name}-c{c}.json"
            subprocess.run([sys.executable, __file__, "--child", url, str(texts_file), str(out), str(c),
                            str(args.requests), str(args.seconds), "0"], check=True)
            level = json.loads(out.read_text())
            level["rss_mb"] = rss_mb(server.pid)
            result["levels"].append(level)
        out = common.WORK / "serve" / f"{name}-soak.json"
        soak = subprocess.Popen([sys.executable, __file__, "--child", url, str(texts_file), str(out), "64", "0",
                                 str(args.soak), str(args.rate)])
        samples = []
        while soak.poll() is None:
            samples.append(rss_mb(server.pid))
            time.sleep(5)
        result["soak"] = {**json.loads(out.read_text()), "rss_samples_mb": samples}
    finally:
        server.terminate()
        server.wait(timeout=60)
    return result


def report(results: dict, args) -> str:
    lines = ["| model | concurrency | requests | throughput req/s | p50 ms | p95 ms | p99 ms | errors "
             "| server RSS MB |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        for lv in r["levels"]:
            lines.append(f"| {name} | {lv['concurrency']} | {lv['requests']} | {lv['throughput']:.1f} "
                         f"| {lv['p50']:.2f} | {lv['p95']:.2f} | {lv['p99']:.2f} | {lv['errors']} | "
                         f"{lv['rss_mb']:,.0f} |")
    lines += ["", "| model | start-up s | in-process ms (one text, median) | HTTP p50 at concurrency 1 | overhead ms |"
              " soak: requests, errors, p99 ms | soak RSS MB first -> last |", "|---|---|---|---|---|---|---|"]
    targets = []
    for name, r in results.items():
        c1 = r["levels"][0]
        s = r["soak"]
        rss = s["rss_samples_mb"] or [float("nan")]
        lines.append(f"| {name} | {r['startup_s']:.1f} | {r['in_process_ms']:.2f} | {c1['p50']:.2f} | "
                     f"{c1['p50'] - r['in_process_ms']:.2f} | {s['requests']}, {s['errors']}, {s['p99']:.2f} | "
                     f"{rss[0]:,.0f} -> {rss[-1]:,.0f} |")
        c32 = r["levels"][-1]
        if name == "xr-linear":
            targets += [f"- XR-Linear p99 under 10 ms at concurrency 1: {'met' if c1['p99'] < 10 else 'MISSED'} "
                        f"({c1['p99']:.2f} ms)",
                        f"- XR-Linear at least 300 requests/s at concurrency 32: "
                        f"{'met' if c32['throughput'] >= 300 else 'MISSED'} ({c32['throughput']:.0f})"]
        else:
            gain = c32["throughput"] / max(c1["throughput"], 1e-9)
            targets.append(f"- {name}: micro-batching gives at least 3x the throughput of concurrency 1 at 32: "
                           f"{'met' if gain >= 3 else 'MISSED'} ({gain:.2f}x)")
        flat = rss[-1] <= rss[0] * 1.05 + 20
        clean = s["errors"] == 0 and flat and all(lv["errors"] == 0 for lv in r["levels"])
        targets.append(f"- {name}: 0 errors and flat memory over the {args.soak:.0f} s soak: "
                       f"{'met' if clean else 'MISSED'} ({s['errors']} errors, "
                       f"RSS {rss[0]:,.0f} -> {rss[-1]:,.0f} MB)")
    lines += ["", "Scores the server returns are calibrated probabilities where the model has a calibration "
              "(fitted at training time on dev; ECE in percent, two-fold on dev, so each half is scored by "
              "a calibration fitted on the other):", "",
              "| model | ECE raw scores | ECE calibrated |", "|---|---|---|"]
    for name, r in results.items():
        cal = r.get("calibration") or {}
        lines.append(f"| {name} | {cal.get('ECE_raw', 'no calibration')} | {cal.get('ECE', 'no calibration')} |")
    return "\n".join(lines + ["", "## Targets", "", *targets])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=common.neural_models_spec())
    parser.add_argument("--data", default="EURLEX57K")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--soak", type=float, default=60)
    parser.add_argument("--rate", type=float, default=40, help="requests per second during the soak")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, texts, out, c, n, seconds, rate = args.child
        load_child(url, texts, out, int(c), int(n), float(seconds), float(rate))
        return
    from xmc import api

    (common.WORK / "serve").mkdir(parents=True, exist_ok=True)
    texts = api.resolve(args.data).load("dev").texts[:2000]
    texts_file = common.WORK / "serve" / "texts.json"
    texts_file.write_text(json.dumps(texts))
    results = {}
    for spec in args.models.split(","):
        name, path = spec.split("=", 1)
        print(f"serving {name}", flush=True)
        results[name] = serve_model(name, Path(path), texts_file, args)
        results[name]["in_process_ms"] = in_process_ms(Path(path), texts)
        results[name]["calibration"] = json.loads((Path(path) / "xmc.json").read_text()).get("calibration")
    command = "python benchmarks/serve.py " + " ".join(sys.argv[1:])
    print(common.write_result("serve", command.strip(), report(results, args)))


if __name__ == "__main__":
    main()
