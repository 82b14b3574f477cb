"""``xmc serve`` under load: the server on loopback, the load from a second process.

    python benchmarks/serve.py [--models xr-linear=PATH,xr-transformer=PATH] [--data EURLEX57K]
                               [--requests 2000] [--seconds 30] [--soak 60] [--rate 40]

For each model: single-text requests at concurrency 1, 8 and 32 (each level bounded by a number of
requests and of seconds): throughput, p50/p95/p99 latency, errors, server RSS; then a soak at a
fixed rate (RSS sampled every 5 s); and the in-process ``api.predict_texts`` latency of one text,
which the HTTP latency at concurrency 1 is compared with. Then what bounds throughput: CPU per
request of the server and of the load generator (they share the 2 cores), a py-spy profile of the
server at concurrency 32 (in a run of its own), and in-process ms per text at batches of 1, 8 and 32
(the most micro-batching can gain). The load generator speaks HTTP/1.1 on raw asyncio streams, so
that it takes as little of the shared CPU as it can. Models default to the ones
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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


def profiled_level(name: str, pid: int, url: str, texts_file: Path, args) -> dict | None:
    """An extra 10-second run at the highest concurrency with py-spy sampling the server (not one of
    the measured levels: the sampler takes CPU too)."""
    import shutil

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return None
    raw = common.WORK / "serve" / f"{name}-profile.txt"
    sampler = subprocess.Popen([spy, "record", "-p", str(pid), "-d", "10", "-r", "50", "-f", "raw", "-o", str(raw),
                                "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run([sys.executable, __file__, "--child", url, str(texts_file), str(common.WORK / "serve" / "p.json"),
                    str(LEVELS[-1]), str(args.requests), "10", "0"], check=True)
    sampler.wait(timeout=60)
    return profile_buckets(raw) if raw.exists() else None


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class _Connection:
    """One keep-alive HTTP/1.1 connection on raw asyncio streams: a load generator that costs a
    fraction of httpx's CPU per request, which matters when it shares the 2 cores with the server."""

    def __init__(self, host: str, port: int):
        self.host, self.port, self.reader, self.writer = host, port, None, None

    async def post_json(self, path: str, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        await self.reader.readexactly(length)
        if b"connection: close" in head.lower():
            await self.close()
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def _load(url: str, texts: list[str], concurrency: int, n_requests: int, seconds: float,
                rate: float = 0.0) -> dict:
    """Send single-text requests: ``concurrency`` workers until ``n_requests`` or ``seconds``; with
    ``rate``, one request every 1/rate seconds instead (a soak)."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    bodies = [json.dumps({"texts": [t], "top_k": 5}).encode() for t in texts]
    idle: list[_Connection] = []
    latencies, errors, sent, resent = [], 0, 0, 0
    started = time.perf_counter()

    async def send(conn: _Connection, body: bytes) -> bool:
        try:
            ok = await asyncio.wait_for(conn.post_json("/predict", body), 30) == 200
            idle.append(conn)
            return ok
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError, StopIteration):
            await conn.close()
            raise

    async def one(i: int):
        nonlocal errors, resent
        reused = bool(idle)
        conn = idle.pop() if reused else _Connection(host, int(port))
        body = bodies[i % len(bodies)]
        t0 = time.perf_counter()
        try:
            try:
                ok = await send(conn, body)
            except (OSError, asyncio.IncompleteReadError):
                if not reused:
                    raise
                # the server closes keep-alive connections idle for 5 s; like any HTTP client, send
                # again once on a new connection (the time of both attempts counts)
                resent += 1
                ok = await send(_Connection(host, int(port)), body)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError, StopIteration):
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
    for conn in idle:
        await conn.close()
    elapsed = time.perf_counter() - started
    lat = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {"concurrency": concurrency, "requests": sent, "ok": len(latencies), "errors": errors, "resent": resent,
            "seconds": elapsed, "throughput": len(latencies) / elapsed, "p50": float(np.percentile(lat, 50)),
            "p95": float(np.percentile(lat, 95)), "p99": float(np.percentile(lat, 99))}


def load_child(url: str, texts_file: str, out: str, concurrency: int, n: int, seconds: float, rate: float) -> None:
    texts = json.loads(Path(texts_file).read_text())
    result = asyncio.run(_load(url, texts, concurrency, n, seconds, rate))
    Path(out).write_text(json.dumps(result))


BATCHES = (1, 8, 32)


def in_process(model: Path, texts: list[str]) -> dict:
    """Median ms of one text through ``api.predict_texts``, and ms per text at the batch sizes the
    server forms: the most micro-batching can gain, with no HTTP and no load generator."""
    from xmc import api

    pipeline = api.load(model)
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
    return {"one_ms": one, "per_text_ms": per_text}


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
            server_cpu, load_cpu = cpu_seconds(server.pid), children_cpu_seconds()
            subprocess.run([sys.executable, __file__, "--child", url, str(texts_file), str(out), str(c),
                            str(args.requests), str(args.seconds), "0"], check=True)
            level = json.loads(out.read_text())
            level["rss_mb"] = rss_mb(server.pid)
            done = max(level["ok"] + level["errors"], 1)
            level["server_cpu_ms"] = 1000 * (cpu_seconds(server.pid) - server_cpu) / done
            level["load_cpu_ms"] = 1000 * (children_cpu_seconds() - load_cpu) / done
            result["levels"].append(level)
        result["profile"] = profiled_level(name, server.pid, url, texts_file, args)
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
                     f"{c1['p50'] - r['in_process_ms']:.2f} | {s['requests']}, {s['errors']} "
                     f"({s.get('resent', 0)} resent on a new connection), {s['p99']:.2f} | "
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
    return "\n".join(lines + why(results) + ["", "## Targets", "", *targets])


def why(results: dict) -> list[str]:
    """What bounds throughput: CPU per request on the 2 cores the server and the load generator
    share, where the server's time goes, and how much batching gains in-process."""
    lines = ["", "## What bounds throughput", "",
             "CPU per request (the server's and the load generator's, from /proc and rusage), and the "
             "throughput that CPU alone allows on 2 cores: 2,000 / (server + load generator) req/s.", "",
             "| model | concurrency | server CPU ms/request | load generator CPU ms/request | CPU-bound ceiling req/s "
             "| measured req/s |", "|---|---|---|---|---|---|"]
    for name, r in results.items():
        for lv in r["levels"]:
            if "server_cpu_ms" in lv:
                total = lv["server_cpu_ms"] + lv["load_cpu_ms"]
                lines.append(f"| {name} | {lv['concurrency']} | {lv['server_cpu_ms']:.2f} | {lv['load_cpu_ms']:.2f} "
                             f"| {2000 / max(total, 1e-9):.0f} | {lv['throughput']:.0f} |")
    profiles = {n: r["profile"] for n, r in results.items() if r.get("profile")}
    if profiles:
        names = sorted({b for p in profiles.values() for b in p}, key=lambda b: -max(p.get(b, 0)
                                                                                      for p in profiles.values()))
        lines += ["", f"Where the server's time goes at concurrency {LEVELS[-1]} (py-spy samples of its busy "
                  "threads over 10 s, in a run of its own; percent):", "",
                  "| part | " + " | ".join(profiles) + " |", "|---|" + "---|" * len(profiles)]
        lines += [f"| {b} | " + " | ".join(f"{p.get(b, 0):.1f}" for p in profiles.values()) + " |" for b in names]
    lines += ["", "In-process ms per text at the batch sizes micro-batching forms (no HTTP, no load generator): "
              "the most batching can gain is the batch-of-1 time over the batch-of-32 time.", "",
              "| model | " + " | ".join(f"batch of {b}" for b in BATCHES) + " | batching gain ceiling |",
              "|---|" + "---|" * (len(BATCHES) + 1)]
    for name, r in results.items():
        b = r.get("batch_ms")
        if b:
            lines.append(f"| {name} | " + " | ".join(f"{b[str(k)]:.2f}" for k in BATCHES)
                         + f" | {b['1'] / b[str(BATCHES[-1])]:.2f}x |")
    return lines


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
        inproc = in_process(Path(path), texts)
        results[name]["in_process_ms"], results[name]["batch_ms"] = inproc["one_ms"], inproc["per_text_ms"]
        results[name]["calibration"] = json.loads((Path(path) / "xmc.json").read_text()).get("calibration")
    command = "python benchmarks/serve.py " + " ".join(sys.argv[1:])
    print(common.write_result("serve", command.strip(), report(results, args)))


if __name__ == "__main__":
    main()
