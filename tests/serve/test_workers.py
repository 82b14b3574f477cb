"""How ``xmc serve --workers`` prepares the parent before it forks, and what ``workers.run`` hands to
each part it wires together (model loader, app, uvicorn, the supervisor and its workers): recorded in
this process with every part replaced by a recorder (nothing forks)."""

from __future__ import annotations

import gc
import logging
import os

import pytest

pytest.importorskip("fastapi")

from xmc.serve import workers  # noqa: E402
from xmc.serve.app import ServeSettings, model_stamp  # noqa: E402


@pytest.fixture
def wired(monkeypatch):
    """Every call ``run`` makes, by part; the supervisor's target is called once, as a worker would."""
    calls = {}
    pipeline, app, sock = object(), object(), object()

    class Supervisor:
        def __init__(self, target, n):
            calls["supervisor"] = n
            calls["frozen"] = gc.get_freeze_count() > 0
            self.target = target

        def run(self):
            self.target()

    def config(app_, **kw):
        calls["config"] = (app_, kw)
        return type("Bound", (), {"bind_socket": lambda self: sock})()

    def load(model, quantize=False):
        calls["load"] = (model, quantize)
        calls["env"] = (os.environ.get("OMP_NUM_THREADS"), os.environ.get("OMP_WAIT_POLICY"))
        return pipeline

    monkeypatch.setattr(workers, "Supervisor", Supervisor)
    monkeypatch.setattr(workers.api, "load", load)
    monkeypatch.setattr(workers.api, "predict_texts", lambda *a, **k: calls.setdefault("warm", (a, k)))
    monkeypatch.setattr(workers, "create_app", lambda *a, **k: calls.setdefault("app", (a, k)) and app)
    monkeypatch.setattr(workers, "_worker", lambda *a: calls.setdefault("worker", a))
    monkeypatch.setattr("uvicorn.Config", config)
    monkeypatch.setattr("uvicorn.run", lambda app_, **kw: calls.setdefault("uvicorn", (app_, kw)))
    for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY"):
        monkeypatch.setenv(name, "recorded")  # so that teardown restores what was there before run() set it
        monkeypatch.delenv(name)
    yield calls, pipeline, app, sock
    gc.unfreeze()


def test_the_parent_loads_with_one_openmp_thread_and_warms_up_before_forking(wired, tmp_path):
    """OpenMP's pool does not survive a fork: a worker of a parent that had started it hangs."""
    calls, *_ = wired
    workers.run(tmp_path, settings=ServeSettings(threads=6, quantize=True), workers=3)
    assert calls["env"] == ("1", "PASSIVE") and calls["load"][1]
    assert "warm" in calls and calls["frozen"] and calls["supervisor"] == 3
    assert calls["app"][0][1].threads == 2  # six threads shared out among three workers


def test_a_single_process_keeps_every_thread(wired, tmp_path):
    calls, *_ = wired
    workers.run(tmp_path, settings=ServeSettings(), workers=1)
    assert calls["env"] == (None, "PASSIVE") and calls["uvicorn"][1]["workers"] == 1
    assert "warm" not in calls  # the app warms itself up when it starts


SERVER = {"host": "127.0.0.1", "port": 8000, "log_level": "info", "timeout_graceful_shutdown": 30}


def test_one_process_serves_the_loaded_model_on_the_default_address(wired, tmp_path, caplog):
    calls, pipeline, app, _ = wired
    (tmp_path / "xmc.json").write_text("{}")
    keys = object()
    with caplog.at_level(logging.INFO, logger="xmc.serve.workers"):
        workers.run(tmp_path, keys=keys)
    assert calls["load"] == (tmp_path, False)
    args, kw = calls["app"]
    assert args[0] is pipeline and args[1] == ServeSettings()
    assert kw == {"keys": keys, "folder": tmp_path, "loaded_stamp": model_stamp(tmp_path)}
    assert calls["uvicorn"][0] is app and calls["uvicorn"][1] == {"workers": 1, **SERVER}
    assert "warm" not in calls and "supervisor" not in calls
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE" and "OMP_NUM_THREADS" not in os.environ
    message = [r.getMessage() for r in caplog.records if r.getMessage().startswith("loaded ")]
    assert len(message) == 1 and message[0].startswith(f"loaded {tmp_path} in ") and message[0].endswith("s")
    assert 0 <= float(message[0].rsplit(" in ", 1)[1][:-1]) < 5


def test_a_folder_without_xmc_json_has_no_stamp(wired, tmp_path):
    calls, *_ = wired
    workers.run(tmp_path, host="0.0.0.0", port=9001, settings=ServeSettings(quantize=True))
    assert calls["load"] == (tmp_path, True) and calls["app"][1]["loaded_stamp"] is None
    assert calls["uvicorn"][1] == {"workers": 1, **SERVER, "host": "0.0.0.0", "port": 9001}


@pytest.mark.parametrize("threads, cpus, n, share", [(7, 8, 3, 2), (2, 8, 3, 1), (0, 8, 2, 4), (0, None, 2, 1)])
def test_workers_share_the_threads_and_get_the_app_socket_and_server_config(wired, tmp_path, monkeypatch,
                                                                             threads, cpus, n, share):
    calls, pipeline, app, sock = wired
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    (tmp_path / "xmc.json").write_text("{}")
    keys = object()
    workers.run(tmp_path, settings=ServeSettings(threads=threads), keys=keys, workers=n)
    assert os.environ["OMP_NUM_THREADS"] == "1"  # two workers are already several
    assert calls["warm"] == ((pipeline, ["warm-up"]), {"top_k": 1})
    args, kw = calls["app"]
    assert args[0] is pipeline and args[1] == ServeSettings(threads=share)
    assert kw == {"keys": keys, "folder": tmp_path, "loaded_stamp": model_stamp(tmp_path)}
    assert calls["config"][0] is app and calls["config"][1] == SERVER
    assert calls["supervisor"] == n and "uvicorn" not in calls
    assert calls["worker"][0] is app and calls["worker"][1] is sock
    assert calls["worker"][2] == SERVER and calls["worker"][3] == share and type(calls["worker"][3]) is int


def test_a_worker_resets_its_signals_sets_its_threads_and_serves_the_shared_socket(monkeypatch):
    """The body of a forked worker, in this process with every effect recorded."""
    import signal
    import sys
    from types import SimpleNamespace

    handlers, threads, served = {}, {}, {}
    monkeypatch.setattr(signal, "signal", lambda sig, handler: handlers.__setitem__(sig, handler))
    torch = SimpleNamespace(set_num_threads=lambda n: threads.__setitem__("torch", n))
    numba = SimpleNamespace(set_num_threads=lambda n: threads.__setitem__("numba", n),
                            config=SimpleNamespace(NUMBA_NUM_THREADS=3))
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "numba", numba)

    class Server:
        def __init__(self, config):
            served["config"] = config

        def run(self, sockets):
            served["sockets"] = sockets

    monkeypatch.setattr("uvicorn.Config", lambda app, **kw: (app, kw))
    monkeypatch.setattr("uvicorn.Server", Server)
    app, sock = object(), object()
    workers._worker(app, sock, dict(SERVER), 4)
    assert handlers == {signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.SIG_DFL, signal.SIGHUP: signal.SIG_IGN}
    assert threads == {"torch": 4, "numba": 3}  # numba's share is capped at the threads it was started with
    assert served["config"][0] is app and served["config"][1] == SERVER and served["sockets"] == [sock]


def test_a_worker_leaves_thread_pools_alone_that_were_never_imported(monkeypatch):
    import sys

    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.delitem(sys.modules, "numba", raising=False)
    monkeypatch.setattr("signal.signal", lambda *a: None)
    monkeypatch.setattr("uvicorn.Config", lambda app, **kw: None)
    monkeypatch.setattr("uvicorn.Server", lambda config: type("S", (), {"run": lambda self, sockets: None})())
    workers._worker(object(), object(), dict(SERVER), 2)
    assert "torch" not in sys.modules and "numba" not in sys.modules
