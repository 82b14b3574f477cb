"""The HTTP server of a trained model: FastAPI routes around :func:`xmc.api.predict_texts`.

``POST /predict`` (``{"texts": [...], "top_k": 5, "min_score": 0}``), ``GET /labels``, ``GET /healthz``,
``GET /readyz`` (the model is loaded and has answered a warm-up request), ``GET /metrics``
(Prometheus), ``GET /docs`` (OpenAPI), and a page at ``/`` to try the model. Concurrent requests are
micro-batched (:mod:`xmc.serve.batching`). Every user mistake is a 413 or 422 with a JSON body
``{"error": ...}``; the server keeps serving after any bad request.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from xmc import api
from xmc.exceptions import XMCError
from xmc.serve.batching import MicroBatcher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeSettings:
    max_texts: int = 64  # texts in one request
    max_chars: int = 20_000  # characters in one text
    max_body: int = 2_000_000  # bytes of one request body
    batch_wait_ms: float = 0.0  # extra wait for others to join a batch (0: batches form from the queue alone)
    max_batch: int = 64  # texts scored together
    threads: int = 0  # torch CPU threads of a neural model (0 = torch's default)


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


def create_app(model: str | Path | api.Pipeline, settings: ServeSettings | None = None) -> FastAPI:
    """The app serving ``model``: a model folder (loaded when the app starts) or a loaded pipeline."""
    settings = settings or ServeSettings()
    metrics = _Metrics()
    state: dict = {"ready": False}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        started = time.perf_counter()
        pipeline = model if isinstance(model, api.Pipeline) else api.load(model)
        if settings.threads and "torch" in sys.modules:  # a neural model brought torch in; XR-Linear never does
            sys.modules["torch"].set_num_threads(settings.threads)

        def predict(texts: list[str], top_k: int):
            return api.predict_texts(pipeline, texts, top_k=top_k)

        batcher = MicroBatcher(predict, settings.batch_wait_ms / 1000, settings.max_batch, metrics.batch.observe)
        batcher.start()
        state.update(pipeline=pipeline, batcher=batcher)
        await batcher.submit(["warm-up"], 1, 0.0)  # numba and torch compile on the first call, not a user's
        state.update(ready=True, startup_seconds=round(time.perf_counter() - started, 3))
        log.info("serving %s (%s, %d labels) after %.1fs", model, pipeline.method, len(pipeline.vocab),
                 state["startup_seconds"])
        yield
        state["ready"] = False
        await batcher.stop()  # requests already queued are answered first

    app = FastAPI(title="xmc", description="Extreme multi-label text classification", lifespan=lifespan)

    @app.middleware("http")
    async def limits_and_metrics(request: Request, call_next):
        route = request.url.path
        started = time.perf_counter()
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > settings.max_body):
            response = _error(413, f"the request body is larger than {settings.max_body} bytes")
        else:
            try:
                response = await call_next(request)
            except Exception:  # noqa: BLE001  a bug: reported as one, and the server keeps serving
                log.exception("request to %s failed", route)
                metrics.errors.labels("internal").inc()
                response = _error(500, "internal error (a bug in xmc; see the server log)")
        metrics.requests.labels(route, str(response.status_code)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        metrics.errors.labels("invalid").inc()
        problems = "; ".join(f"{'.'.join(map(str, e['loc'][1:])) or 'body'}: {e['msg']}" for e in exc.errors())
        return _error(422, f"invalid request: {problems}")

    @app.post("/predict", response_model=PredictResponse)
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

    @app.get("/labels")
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
        return {"status": "ok", "method": pipeline.method if pipeline else None,
                "startup_seconds": state.get("startup_seconds"),
                "calibrated": bool(pipeline is not None and pipeline.calibration is not None)}

    @app.get("/readyz")
    async def readyz():
        if not state["ready"]:
            return _error(503, "not ready")
        return {"status": "ready"}

    @app.get("/metrics")
    async def prometheus():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return HTMLResponse(resources.files("xmc.serve").joinpath("page.html").read_text(encoding="utf-8"))

    return app


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def run(model: str | Path, host: str = "127.0.0.1", port: int = 8000, settings: ServeSettings | None = None) -> None:
    """Serve ``model`` until interrupted (SIGINT / SIGTERM let the requests under way finish)."""
    import uvicorn

    started = time.perf_counter()
    pipeline = api.load(model)  # a broken model folder is one clear error line, before the server starts
    log.info("loaded %s in %.1fs", model, time.perf_counter() - started)
    uvicorn.run(create_app(pipeline, settings), host=host, port=port, workers=1, log_level="info",
                timeout_graceful_shutdown=30)
