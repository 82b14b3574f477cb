"""Running the server: one process, or ``workers`` processes forked from one that loaded the model.

With several workers the model is loaded once, in the parent, and warmed up there (numba's
compiled kernels included); the workers are forked from it and share those pages copy-on-write,
and XR-Linear's memory-mapped weights through the page cache. They accept on one listening socket.
The parent only supervises: it forwards ``SIGHUP`` (each worker reloads the model in-process, see
:func:`xmc.serve.app.watch_reloads`, so no connection is closed and no request dropped), stops the
workers gracefully on ``SIGTERM``/``SIGINT``, and replaces a worker that dies (the replacement
reloads the model when the folder changed since the parent loaded it).

Forking needs care with the native thread pools, which do not survive a fork: the parent runs
torch with one thread (GNU OpenMP hangs a child whose parent used its pool) and warms the model
on one text, which takes numba's serial kernels. Each worker then sets its own thread counts:
its share of ``threads`` (all cores by default).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import time
from pathlib import Path

from xmc import api
from xmc.serve.app import ServeSettings, create_app, model_stamp
from xmc.serve.gate import ApiKeys

log = logging.getLogger(__name__)
GRACE_SECONDS = 30  # for requests under way when the server stops
RESTART_WINDOW = 10  # a worker dying sooner than this after its start counts as a crash loop
MAX_QUICK_DEATHS = 5


def run(model: str | Path, host: str = "127.0.0.1", port: int = 8000, settings: ServeSettings | None = None,
        keys: ApiKeys | None = None, workers: int = 1) -> None:
    """Serve the model folder ``model`` until interrupted (SIGINT / SIGTERM let the requests under
    way finish; SIGHUP reloads the model)."""
    import uvicorn

    settings = settings or ServeSettings()
    # Idle OpenMP threads sleep instead of spinning between requests (read when torch loads).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if workers > 1:
        os.environ.setdefault("OMP_NUM_THREADS", "1")  # the parent never starts an OpenMP pool (see above)
    started = time.perf_counter()
    stamp = model_stamp(model) if (Path(model) / "xmc.json").exists() else None
    # a broken model folder is one clear error line, before the server starts
    pipeline = api.load(model, quantize=settings.quantize)
    log.info("loaded %s in %.1fs", model, time.perf_counter() - started)
    config = dict(host=host, port=port, log_level="info", timeout_graceful_shutdown=GRACE_SECONDS)
    if workers == 1:
        app = create_app(pipeline, settings, keys=keys, folder=model, loaded_stamp=stamp)
        uvicorn.run(app, workers=1, **config)
        return
    api.predict_texts(pipeline, ["warm-up"], top_k=1)  # compiled once here, shared by every worker
    share = max(1, (settings.threads or os.cpu_count() or 1) // workers)
    worker_settings = ServeSettings(**{**settings.__dict__, "threads": share})
    app = create_app(pipeline, worker_settings, keys=keys, folder=model, loaded_stamp=stamp)
    sock = uvicorn.Config(app, **config).bind_socket()
    # Objects the parent made stay out of the collector's sight in the workers: a collection would
    # write to every object's header and turn the shared pages into private copies.
    gc.collect()
    gc.freeze()
    Supervisor(lambda: _worker(app, sock, config, share), workers).run()


def _worker(app, sock, config: dict, threads: int) -> None:
    """The body of a forked worker: its own thread counts, then uvicorn on the shared socket."""
    import uvicorn

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)  # the parent's handlers are not this process's
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the app watches for reloads
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    if "numba" in sys.modules:
        sys.modules["numba"].set_num_threads(min(threads, sys.modules["numba"].config.NUMBA_NUM_THREADS))
    uvicorn.Server(uvicorn.Config(app, **config)).run(sockets=[sock])


class Supervisor:
    """Forks ``n`` processes running ``target`` and keeps them running until SIGTERM or SIGINT;
    SIGHUP is passed on to each of them."""

    def __init__(self, target, n: int):
        self.target, self.n = target, n
        self.children: dict[int, float] = {}  # pid -> start time
        self.pending: list[int] = []
        self.quick_deaths = 0

    def run(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda s, _frame: self.pending.append(s))
        for _ in range(self.n):
            self._fork()
        log.info("started %d workers: %s", self.n, " ".join(map(str, self.children)))
        try:
            while self._step():
                time.sleep(0.1)
        finally:
            self._stop_all()

    def _step(self) -> bool:
        """Handle what happened since the last step; False once the server is to stop."""
        while self.pending:
            sig = self.pending.pop(0)
            if sig == signal.SIGHUP:
                log.info("SIGHUP: each worker reloads the model")
                self._signal_all(signal.SIGHUP)
            else:
                log.info("%s: stopping the workers", signal.Signals(sig).name)
                return False
        while True:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return True
            started = self.children.pop(pid, None)
            if started is None:
                continue
            self.quick_deaths = self.quick_deaths + 1 if time.monotonic() - started < RESTART_WINDOW else 0
            log.error("worker %d died (%s)", pid, _describe(status))
            if self.quick_deaths >= MAX_QUICK_DEATHS:
                log.error("workers keep dying right after they start; stopping the server")
                return False
            self._fork()

    def _fork(self) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                self.target()
            except BaseException:  # noqa: BLE001  anything, reported, then the worker ends
                log.exception("worker %d failed", os.getpid())
                code = 1
            finally:
                os._exit(code)
        self.children[pid] = time.monotonic()

    def _signal_all(self, sig: int) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                self.children.pop(pid, None)

    def _stop_all(self) -> None:
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS + 5
        while self.children and time.monotonic() < deadline:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid:
                self.children.pop(pid, None)
            else:
                time.sleep(0.05)
        self._signal_all(signal.SIGKILL)
        for pid in list(self.children):
            os.waitpid(pid, 0)
            del self.children[pid]  # reaped: the supervisor ends with no child it believes alive


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
