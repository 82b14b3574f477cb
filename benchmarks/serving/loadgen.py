"""The load generator of benchmarks/serving/serve.py, run as a process of its own:

    python benchmarks/serving/loadgen.py URL TEXTS.json OUT.json CONCURRENCY N_REQUESTS SECONDS RATE [KEY]

Single-text ``POST /predict`` requests (``Authorization: Bearer KEY`` when a key is given) over
keep-alive HTTP/1.1 connections on raw asyncio streams: ``CONCURRENCY`` workers until
``N_REQUESTS`` or ``SECONDS``, or with ``RATE`` > 0 one request every 1/RATE seconds (a soak).
Writes throughput, latency percentiles, errors and the count of each status to OUT.json.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np


class _Connection:
    """One keep-alive HTTP/1.1 connection on raw asyncio streams: a load generator that costs a
    fraction of httpx's CPU per request, which matters when it shares the 2 cores with the server."""

    def __init__(self, host: str, port: int, key: str | None = None):
        self.host, self.port, self.reader, self.writer = host, port, None, None
        self.auth = f"Authorization: Bearer {key}\r\n" if key else ""

    async def post_json(self, path: str, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(body)}\r\n{self.auth}\r\n".encode() + body)
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
                rate: float = 0.0, key: str | None = None) -> dict:
    """Send single-text requests: ``concurrency`` workers until ``n_requests`` or ``seconds``; with
    ``rate``, one request every 1/rate seconds instead (a soak)."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    bodies = [json.dumps({"texts": [t], "top_k": 5}).encode() for t in texts]
    idle: list[_Connection] = []
    latencies, errors, sent, resent, statuses = [], 0, 0, 0, {}
    started = time.perf_counter()

    async def send(conn: _Connection, body: bytes) -> bool:
        try:
            status = await asyncio.wait_for(conn.post_json("/predict", body), 30)
            statuses[status] = statuses.get(status, 0) + 1
            ok = status == 200
            idle.append(conn)
            return ok
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError, StopIteration):
            await conn.close()
            raise

    async def one(i: int):
        nonlocal errors, resent
        reused = bool(idle)
        conn = idle.pop() if reused else _Connection(host, int(port), key)
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
                ok = await send(_Connection(host, int(port), key), body)
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
            "p95": float(np.percentile(lat, 95)), "p99": float(np.percentile(lat, 99)),
            "statuses": {str(k): v for k, v in statuses.items()}}


def main() -> None:
    url, texts_file, out, concurrency, n, seconds, rate, *key = sys.argv[1:]
    texts = json.loads(Path(texts_file).read_text())
    result = asyncio.run(_load(url, texts, int(concurrency), int(n), float(seconds), float(rate),
                               key[0] if key else None))
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
