"""The supervisor's loop, one step at a time in this process, with its log: quick and slow deaths,
signals, and processes that are not its workers."""

from __future__ import annotations

import logging
import os
import signal
import time

import pytest
from tests.serve.conftest import wait_until

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
    two replacements, then the loop stops with its own message (the loop the server runs, driven step
    by step from the test process so that a mutation tool tracing this process sees it)."""
    monkeypatch.setattr(workers, "MAX_QUICK_DEATHS", 3)
    sup = workers.Supervisor(lambda: os._exit(3), 2)
    forks = []
    fork = sup._fork
    monkeypatch.setattr(sup, "_fork", lambda: (forks.append(1), fork()))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        sup._fork()
        sup._fork()
        assert len(sup.children) == 2
        _run_until_stopped(sup)
    assert sup.quick_deaths == 3
    sup._stop_all()
    assert sup.children == {}
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


def test_run_forks_n_workers_steps_until_told_and_always_stops_them(monkeypatch, caplog):
    """``run`` with its parts recorded: the three signals queue themselves, n forks, a step every
    tenth of a second until one says stop, and the workers stopped even when a step fails."""
    handlers, calls = {}, []
    monkeypatch.setattr(signal, "signal", lambda sig, handler: handlers.__setitem__(sig, handler))
    monkeypatch.setattr(time, "sleep", lambda s: calls.append(("sleep", s)))
    sup = workers.Supervisor(lambda: None, 3)
    answers = iter([True, True, False])
    monkeypatch.setattr(sup, "_fork", lambda: (calls.append("fork"), sup.children.__setitem__(100 + len(sup.children),
                                                                                              0.0)))
    monkeypatch.setattr(sup, "_step", lambda: (calls.append("step"), next(answers))[1])
    monkeypatch.setattr(sup, "_stop_all", lambda: calls.append("stop"))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        sup.run()
    assert set(handlers) == {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    handlers[signal.SIGHUP](signal.SIGHUP, None)
    handlers[signal.SIGTERM](signal.SIGTERM, None)
    assert sup.pending == [signal.SIGHUP, signal.SIGTERM]
    assert calls == ["fork"] * 3 + ["step", ("sleep", 0.1), "step", ("sleep", 0.1), "step", "stop"]
    assert _messages(caplog) == ["started 3 workers: 100 101 102"]

    def failing_step():
        raise RuntimeError("step failed")

    calls.clear()
    monkeypatch.setattr(sup, "_step", failing_step)
    with pytest.raises(RuntimeError, match="step failed"):
        sup.run()
    assert calls[-1] == "stop"


@pytest.mark.parametrize("fails, code", [(False, 0), (True, 1)])
def test_a_worker_ends_with_code_0_after_its_target_returns_and_1_after_it_raises(tmp_path, monkeypatch, fails,
                                                                                    code):
    """The code each worker hands to ``os._exit``, recorded by a stand-in the forked child inherits."""
    real_exit = os._exit
    record = tmp_path / "code"

    def recording_exit(value):
        record.write_text(repr(value))
        real_exit(0)

    def target():
        if fails:
            raise RuntimeError("the worker failed")

    monkeypatch.setattr(os, "_exit", recording_exit)
    handler = logging.FileHandler(tmp_path / "log")  # the forked child writes its records here
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger(LOGGER).addHandler(handler)
    try:
        sup = workers.Supervisor(target, 1)
        sup._fork()
        (pid,) = sup.children
        os.waitpid(pid, 0)
    finally:
        logging.getLogger(LOGGER).removeHandler(handler)
        handler.close()
    assert record.read_text() == repr(code)
    lines = (tmp_path / "log").read_text().splitlines()
    if fails:  # the failure is logged with the worker's pid and its traceback
        assert lines[0] == f"worker {pid} failed" and lines[-1] == "RuntimeError: the worker failed"
    else:
        assert lines == []


def test_signalling_a_worker_that_is_gone_forgets_it():
    """A pid that no longer exists (reaped elsewhere) is dropped instead of failing the signal."""
    stranger = os.fork()
    if stranger == 0:
        os._exit(0)
    os.waitpid(stranger, 0)  # gone: signalling it raises ProcessLookupError
    sup = workers.Supervisor(lambda: None, 0)
    sup.children[stranger] = time.monotonic()
    sup._signal_all(signal.SIGHUP)
    assert sup.children == {}


def _one_worker_up(tmp_path, on_sigterm):
    """A supervisor with one forked worker that answers SIGTERM with ``on_sigterm``, once it is up."""
    def target():
        signal.signal(signal.SIGTERM, on_sigterm)
        (tmp_path / "up").touch()
        while True:
            time.sleep(0.05)

    sup = workers.Supervisor(target, 1)
    sup._fork()
    wait_until((tmp_path / "up").exists)
    return sup


def _finish_in_half_a_second(done=None):
    def finish(*_):
        time.sleep(0.5)
        if done is not None:
            done.touch()
        os._exit(0)

    return finish


def test_stopping_waits_for_a_worker_that_finishes_its_requests(tmp_path):
    """SIGTERM first: a worker that takes half a second to finish gets it (well inside the grace)."""
    done = tmp_path / "finished"
    sup = _one_worker_up(tmp_path, _finish_in_half_a_second(done))
    sup._stop_all()
    assert done.exists() and sup.children == {}


def test_stopping_reaps_a_process_that_is_not_a_worker_without_failing(tmp_path):
    """While the workers finish, ``waitpid(-1)`` may reap another child of this process: skipped."""
    sup = _one_worker_up(tmp_path, _finish_in_half_a_second())
    stranger = os.fork()
    if stranger == 0:
        time.sleep(0.1)
        os._exit(0)
    sup._stop_all()
    assert sup.children == {}
    with pytest.raises(ChildProcessError):  # already reaped
        os.waitpid(stranger, os.WNOHANG)
