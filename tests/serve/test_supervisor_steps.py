"""The supervisor's loop, one step at a time in this process, with its log: quick and slow deaths,
signals, and processes that are not its workers."""

from __future__ import annotations

import logging
import os
import signal
import time

from xmc.serve import workers

LOGGER = "xmc.serve.workers"


def _messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def _run_until_stopped(sup) -> None:
    steps = 0
    while sup._step():
        steps += 1
        assert steps < 3000, "the loop never stopped"
        time.sleep(0.01)


def test_quick_deaths_are_counted_from_zero_and_logged(monkeypatch, caplog):
    """Two workers that die at once, a limit of 3: three deaths (each logged with its exit code),
    two replacements, then the loop stops with its own message."""
    monkeypatch.setattr(workers, "MAX_QUICK_DEATHS", 3)
    sup = workers.Supervisor(lambda: os._exit(3), 2)
    forks = []
    fork = sup._fork
    monkeypatch.setattr(sup, "_fork", lambda: (forks.append(1), fork()))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        sup._fork()
        sup._fork()
        _run_until_stopped(sup)
    sup._stop_all()
    died = [m for m in _messages(caplog) if " died " in m]
    assert len(died) == 3 and all(m.startswith("worker ") and m.endswith(" died (exit code 3)") for m in died)
    assert len(forks) == 2 + 2
    assert _messages(caplog)[-1] == "workers keep dying right after they start; stopping the server"


def test_a_worker_that_dies_after_the_restart_window_resets_the_count(tmp_path, monkeypatch):
    """A death long after the worker started is not part of a crash loop: the count starts again."""
    go = tmp_path / "go"

    def target():
        while not go.exists():
            time.sleep(0.02)
        os._exit(0)

    sup = workers.Supervisor(target, 1)
    sup._fork()
    (pid,) = sup.children
    sup.children[pid] = time.monotonic() - workers.RESTART_WINDOW - 60  # started a minute past the window
    sup.quick_deaths = 2
    go.touch()
    deadline = time.monotonic() + 30
    while pid in sup.children:
        assert sup._step() and time.monotonic() < deadline
        time.sleep(0.02)
    try:
        assert sup.quick_deaths == 0 and len(sup.children) == 1  # replaced
    finally:
        sup._stop_all()


def _idle_worker() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    while True:
        time.sleep(0.05)


def test_a_process_that_is_not_a_worker_is_reaped_and_ignored(caplog):
    """``waitpid(-1)`` also reaps children this process made otherwise: the loop goes on."""
    sup = workers.Supervisor(_idle_worker, 1)
    sup._fork()
    workers_before = dict(sup.children)
    stranger = os.fork()
    if stranger == 0:
        os._exit(0)
    time.sleep(0.2)  # a zombie now, for the next waitpid
    try:
        with caplog.at_level(logging.INFO, logger=LOGGER):
            assert sup._step() is True
        assert sup.children == workers_before and sup.quick_deaths == 0 and not _messages(caplog)
    finally:
        sup._stop_all()


def test_signals_are_logged_by_name(caplog):
    sup = workers.Supervisor(_idle_worker, 1)
    sup._fork()
    try:
        with caplog.at_level(logging.INFO, logger=LOGGER):
            sup.pending.append(signal.SIGHUP)
            assert sup._step() is True
            sup.pending.append(signal.SIGTERM)
            assert sup._step() is False
        assert _messages(caplog) == ["SIGHUP: each worker reloads the model", "SIGTERM: stopping the workers"]
    finally:
        sup._stop_all()
