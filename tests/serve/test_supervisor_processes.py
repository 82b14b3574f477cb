"""The worker supervisor with real processes: a worker that dies right after it starts stops the
server after the set number of quick deaths, and a worker that ignores SIGTERM is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.serve.conftest import wait_until

from xmc.serve import workers


def _supervisor(script: str, tmp_path: Path) -> subprocess.Popen:
    code = textwrap.dedent(f"""
        import logging, os, signal, sys, time
        from pathlib import Path
        from xmc.serve import workers
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        out = Path({str(tmp_path)!r})
    """) + textwrap.dedent(script)
    return subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)


def test_workers_that_die_at_once_stop_the_server_after_the_set_number_of_quick_deaths(tmp_path):
    proc = _supervisor("""
        def target():
            (out / f"started-{os.getpid()}").touch()
            os._exit(3)
        workers.Supervisor(target, 2).run()
        print("supervisor returned", file=sys.stderr)
    """, tmp_path)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "supervisor returned" in err
    assert err.count("died (exit code 3)") == workers.MAX_QUICK_DEATHS
    assert "workers keep dying right after they start; stopping the server" in err
    # the first two workers, then one replacement per death until the limit stops the replacing
    assert len(list(tmp_path.glob("started-*"))) == 2 + workers.MAX_QUICK_DEATHS - 1


def test_a_worker_that_ignores_sigterm_is_killed(tmp_path):
    proc = _supervisor("""
        workers.GRACE_SECONDS = 0.5
        def target():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            (out / f"worker-{os.getpid()}").touch()
            while True:
                time.sleep(1)
        workers.Supervisor(target, 1).run()
        print("supervisor returned", file=sys.stderr)
    """, tmp_path)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("worker-*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    (marker,) = tmp_path.glob("worker-*")
    pid = int(marker.name.split("-")[1])
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "supervisor returned" in err
    assert time.monotonic() - started >= 0.5  # the grace period was given first
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive  # killed (SIGKILL) and reaped by the supervisor


def test_the_supervisor_passes_sighup_on_and_stops_on_sigterm(tmp_path, monkeypatch):
    monkeypatch.setattr(workers, "GRACE_SECONDS", 0.2)

    def target():
        signal.signal(signal.SIGHUP, lambda *_: (tmp_path / f"hup-{os.getpid()}").touch())
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL ends it
        (tmp_path / f"up-{os.getpid()}").touch()
        while True:
            time.sleep(0.05)

    sup = workers.Supervisor(target, 2)
    sup._fork()
    sup._fork()
    wait_until(lambda: len(list(tmp_path.glob("up-*"))) == 2)
    sup.pending.append(signal.SIGHUP)
    assert sup._step() and sup.pending == []
    wait_until(lambda: len(list(tmp_path.glob("hup-*"))) == 2)
    assert {int(p.name.split("-")[1]) for p in tmp_path.glob("hup-*")} == set(sup.children)
    sup.pending.append(signal.SIGTERM)
    assert not sup._step()
    pids, started = set(sup.children), time.monotonic()
    sup._stop_all()
    assert sup.children == {} and time.monotonic() - started >= 0.2  # the grace, then SIGKILL
    for pid in pids:  # killed and reaped
        try:
            os.kill(pid, 0)
            raise AssertionError(f"worker {pid} still exists")
        except ProcessLookupError:
            pass


def test_a_worker_s_end_is_described_by_its_signal_or_exit_code():
    assert workers._describe(signal.SIGKILL) == "signal SIGKILL"
    assert workers._describe(3 << 8) == "exit code 3"
