"""The HTTP server of a trained model: FastAPI routes around :func:`xmc.api.predict_texts`.

``POST /predict`` (``{"texts": [...], "top_k": 5, "min_score": 0}``), ``GET /labels``, ``GET /healthz``,
``GET /readyz`` (the model is loaded and has answered a warm-up request), ``GET /metrics``
(Prometheus), ``GET /docs`` (OpenAPI), and a page at ``/`` to try the model. Concurrent requests are
micro-batched (:mod:`xmc.serve.batching`). Every user mistake is a 401, 413 or 422 with a JSON body
``{"error": ...}``; the server keeps serving after any bad request. With API keys
(:class:`~xmc.serve.gate.ApiKeys`), every route but the public ones needs ``Authorization: Bearer
KEY``. ``SIGHUP`` reloads the model from its folder while requests go on (:func:`watch_reloads`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from xmc import api
from xmc.exceptions import XMCError
from xmc.serve.batching import MicroBatcher
from xmc.serve.gate import ApiKeys, Gate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeSettings:
    max_texts: int = 64  # texts in one request
    max_chars: int = 20_000  # characters in one text
    max_body: int = 2_000_000  # bytes of one request body
    max_drain: int = 64 << 20  # bytes of a refused body read and thrown away so that the client sees the answer
    batch_wait_ms: float = 0.0  # extra wait for others to join a batch (0: batches form from the queue alone)
    max_batch: int = 64  # texts scored together
    threads: int = 0  # torch CPU threads of a neural model (0 = torch's default)
    quantize: bool = False  # int8 CPU inference for a transformer encoder


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[str] = Field(min_length=1, description="texts to tag")
    top_k: int = Field(5, ge=1, le=1000, description="labels per text")
    min_score: float = Field(0.0, ge=0.0, le=1.0, description="drop labels scoring below this")


class Label(BaseModel):
    label: str
    score: float
    name: str | None = None


class PredictResponse(BaseModel):
    results: list[list[Label]]


class _Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("xmc_requests", "HTTP requests", ["route", "status"], registry=self.registry)
        self.latency = Histogram("xmc_request_seconds", "request latency", ["route"], registry=self.registry,
                                 buckets=(.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5))
        self.batch = Histogram("xmc_batch_texts", "texts scored together", registry=self.registry,
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.errors = Counter("xmc_errors", "requests that failed", ["kind"], registry=self.registry)
        self.reloads = Counter("xmc_model_reloads", "model reloads on SIGHUP", ["outcome"], registry=self.registry)


def model_stamp(folder: str | Path) -> tuple[int, int, int]:
    """What changes when a model folder is replaced (``xmc train --overwrite`` swaps whole folders)."""
    st = os.stat(Path(folder) / "xmc.json")
    return st.st_ino, st.st_mtime_ns, st.st_size


def create_app(model: str | Path | api.Pipeline, settings: ServeSettings | None = None, *,
               keys: ApiKeys | None = None, folder: str | Path | None = None,
               loaded_stamp: tuple | None = None) -> FastAPI:
    """The app serving ``model``: a model folder (loaded when the app starts) or a loaded pipeline.
    ``folder`` is where the pipeline was loaded from (the folder itself when ``model`` is one): a
    ``SIGHUP`` reloads it from there, and so does the start when the folder's :func:`model_stamp`
    is no longer ``loaded_stamp`` (a worker started after the folder was replaced). ``keys``: the
    API keys every non-public route asks for."""
    settings = settings or ServeSettings()
    folder = Path(model) if not isinstance(model, api.Pipeline) else (Path(folder) if folder is not None else None)
    metrics = _Metrics()
    state: dict = {"ready": False}

    def score(texts: list[str], top_k: int):  # with the model in force when the batch is scored
        return api.predict_texts(state["pipeline"], texts, top_k=top_k)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        started = time.perf_counter()
        if isinstance(model, api.Pipeline):
            state.update(pipeline=model)
            if loaded_stamp is not None and _stamp_or_none(folder) != loaded_stamp:
                await _reload(state, folder, metrics, settings.quantize)  # replaced since it was loaded
        else:
            state.update(pipeline=api.load(model, quantize=settings.quantize))
        if settings.threads and "torch" in sys.modules:  # a neural model brought torch in; XR-Linear never does
            sys.modules["torch"].set_num_threads(settings.threads)
        batcher = MicroBatcher(score, settings.batch_wait_ms / 1000, settings.max_batch, metrics.batch.observe)
        batcher.start()
        state.update(batcher=batcher)
        await batcher.submit(["warm-up"], 1, 0.0)  # numba and torch compile on the first call, not a user's
        if folder is not None:
            watch_reloads(lambda: _reload(state, folder, metrics, settings.quantize))
        state.update(ready=True, startup_seconds=round(time.perf_counter() - started, 3))
        log.info("serving %s (%s, %d labels) after %.1fs%s", folder or "a model", state["pipeline"].method,
                 len(state["pipeline"].vocab), state["startup_seconds"], ", API keys required" if keys else "")
        yield
        state["ready"] = False
        await batcher.stop()  # requests already queued are answered first

    app = FastAPI(title="xmc", description="Extreme multi-label text classification", lifespan=lifespan)
    # Only describes the scheme in /docs (its Authorize button); the Gate enforces it.
    secured = [Depends(HTTPBearer(auto_error=False, description="an API key of the server"))] if keys else []
    app.add_middleware(Gate, keys=keys, max_body=settings.max_body, max_drain=settings.max_drain,
                       on_reject=lambda status: metrics.errors.labels(
                           "unauthorized" if status == 401 else "too_large").inc())

    app.add_middleware(_Metered, metrics=metrics)  # outermost: it counts what the gate refuses too

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        metrics.errors.labels("invalid").inc()
        problems = "; ".join(f"{'.'.join(map(str, e['loc'][1:])) or 'body'}: {e['msg']}" for e in exc.errors())
        return _error(422, f"invalid request: {problems}")

    @app.post("/predict", response_model=PredictResponse, dependencies=secured)
    async def predict(body: PredictRequest):
        """The labels of each text, best first, with calibrated scores and names where the model has them."""
        if len(body.texts) > settings.max_texts:
            metrics.errors.labels("too_large").inc()
            return _error(413, f"{len(body.texts)} texts in one request; at most {settings.max_texts}")
        longest = max(len(t) for t in body.texts)
        if longest > settings.max_chars:
            metrics.errors.labels("too_large").inc()
            return _error(413, f"a text of {longest} characters; at most {settings.max_chars}")
        if not state["ready"] and "batcher" not in state:
            return _error(503, "the model is still loading")
        try:
            rows = await state["batcher"].submit(body.texts, body.top_k, body.min_score)
        except XMCError as exc:
            metrics.errors.labels("invalid").inc()
            return _error(422, str(exc))
        return {"results": [[{"label": lab, "score": s, "name": name} for lab, s, name in row] for row in rows]}

    @app.get("/labels", dependencies=secured)
    async def labels(offset: int = 0, limit: int = 1000):
        """The model's labels (and their names), ``limit`` at a time from ``offset``."""
        if offset < 0 or not 1 <= limit <= 100_000:
            return _error(422, "offset must be >= 0 and limit in [1, 100000]")
        pipeline = state["pipeline"]
        chosen = pipeline.vocab.labels[offset:offset + limit]
        return {"total": len(pipeline.vocab), "offset": offset,
                "labels": [{"label": lab, "name": pipeline.label_names.get(lab)} for lab in chosen]}

    @app.get("/healthz")
    async def healthz():
        pipeline = state.get("pipeline")
        return {"status": "ok", "method": pipeline.method if pipeline else None, "pid": os.getpid(),
                "startup_seconds": state.get("startup_seconds"), "reloads": state.get("reloads", 0),
                "calibrated": bool(pipeline is not None and pipeline.calibration is not None)}

    @app.get("/readyz")
    async def readyz():
        if not state["ready"]:
            return _error(503, "not ready")
        return {"status": "ready"}

    @app.get("/metrics", dependencies=secured)
    async def prometheus():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return HTMLResponse(resources.files("xmc.serve").joinpath("page.html").read_text(encoding="utf-8"))

    return app


class _Metered:
    """Pure ASGI middleware: each request counted by route and status and timed; an exception is a
    500 with a JSON body (a bug, logged), and the server keeps serving. (Starlette's
    ``BaseHTTPMiddleware`` does the same at about a millisecond more per request.)"""

    def __init__(self, app, metrics: _Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route, started, status = scope["path"], time.perf_counter(), [0]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except Exception:  # noqa: BLE001  a bug: reported as one, and the server keeps serving
            log.exception("request to %s failed", route)
            self.metrics.errors.labels("internal").inc()
            if status[0]:  # the answer had begun: nothing more can be said on this connection
                raise
            status[0] = 500
            await _error(500, "internal error (a bug in xmc; see the server log)")(scope, receive, send)
        self.metrics.requests.labels(route, str(status[0])).inc()
        self.metrics.latency.labels(route).observe(time.perf_counter() - started)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _stamp_or_none(folder: Path | None):
    try:
        return model_stamp(folder) if folder is not None else None
    except OSError:
        return None


async def _reload(state: dict, folder: Path, metrics: _Metrics, quantize: bool = False) -> None:
    """Load the model again from ``folder`` and put it in force for the next batch; the batch being
    scored finishes on the old one, and no request waits for the load. A folder that no longer loads
    leaves the old model serving (and says why in the log)."""
    if state.get("reloading"):
        state["reload_again"] = True  # a second SIGHUP during a load: load once more after it
        return
    state["reloading"] = True
    try:
        while True:
            state["reload_again"] = False
            started = time.perf_counter()
            try:
                pipeline = await asyncio.to_thread(api.load, folder, quantize=quantize)
                await asyncio.to_thread(api.predict_texts, pipeline, ["warm-up"], top_k=1)
            except Exception as exc:  # noqa: BLE001  a bad folder must not take the server down
                metrics.reloads.labels("failed").inc()
                log.error("reloading %s failed, still serving the previous model: %s", folder, exc)
            else:
                state.update(pipeline=pipeline, reloads=state.get("reloads", 0) + 1)
                metrics.reloads.labels("done").inc()
                log.info("reloaded %s (%s, %d labels) in %.1fs", folder, pipeline.method, len(pipeline.vocab),
                         time.perf_counter() - started)
            if not state["reload_again"]:
                break
    finally:
        state["reloading"] = False


def watch_reloads(reload) -> None:
    """Run ``reload()`` (a coroutine function) on the event loop at every SIGHUP (POSIX only, and
    only where the loop runs in the main thread, as under ``xmc serve``: signals reach no other)."""
    if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reload()))
