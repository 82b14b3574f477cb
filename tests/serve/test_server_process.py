"""`xmc serve` as a real process on loopback: oversized bodies from clients that write before they
read, bodies without a length, worker processes, reload on SIGHUP, graceful stops."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

pytest.importorskip("fastapi")
import httpx  # noqa: E402

from xmc import api  # noqa: E402

KEY = "test-key-0123456789abcdef"
TEXT = "council regulation on the common organisation of the market in fishery products"


@pytest.fixture(scope="module")
def model(small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("served") / "model"
    api.train("xr-linear", small_data, out, overrides=["tree.max_leaf_size=16"], eval_split=None)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(model, tmp_path, *extra: str):
    port = _free_port()
    keys = tmp_path / "keys.txt"
    keys.write_text(KEY + "\n")
    # The log goes to a file: a pipe nobody reads fills with access-log lines under load and then
    # blocks the server's writes (seen: every worker waiting in logging's emit).
    log = open(tmp_path / "server.log", "w")  # the server writes it; read by _stop
    proc = subprocess.Popen([sys.executable, "-m", "xmc.cli.main", "serve", "--model", str(model), "--port", str(port),
                             "--api-key-file", str(keys), "--max-body", "100000", *extra],
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    proc.log_path = tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return url, proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    pytest.fail("the server did not become ready: " + proc.log_path.read_text())


def _stop(proc) -> str:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    return proc.log_path.read_text()


def _predict(url: str, text: str = TEXT) -> tuple[int, list]:
    response = httpx.post(url + "/predict", json={"texts": [text], "top_k": 3},
                          headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    return response.status_code, response.json().get("results", [])


@pytest.fixture(scope="module")
def one_worker(model, tmp_path_factory):
    url, proc = _start(model, tmp_path_factory.mktemp("one"))
    yield url
    _stop(proc)


def _urllib_post(url: str, body: bytes, headers: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url + "/predict", data=body, headers={"Content-Type": "application/json",
                                                                           **headers})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310  loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize("client", ["urllib", "requests", "httpx"])
def test_every_client_receives_the_413_of_a_10_mb_body(one_worker, client):
    """urllib writes the whole body before it reads: the server reads and drops it, then answers."""
    body = json.dumps({"texts": ["x" * 10_000_000]}).encode()
    auth = {"Authorization": f"Bearer {KEY}"}
    if client == "urllib":
        status, answer = _urllib_post(one_worker, body, auth)
    elif client == "requests":
        requests = pytest.importorskip("requests")
        response = requests.post(one_worker + "/predict", data=body, timeout=60,
                                 headers={**auth, "Content-Type": "application/json"})
        status, answer = response.status_code, response.json()
    else:
        response = httpx.post(one_worker + "/predict", content=body, headers=auth, timeout=60)
        status, answer = response.status_code, response.json()
    assert status == 413 and "larger than 100000 bytes" in answer["error"]
    assert _predict(one_worker)[0] == 200


def test_a_big_body_without_a_key_gets_its_401(one_worker):
    status, answer = _urllib_post(one_worker, b"x" * 5_000_000, {})
    assert status == 401 and "API key" in answer["error"]


def test_bodies_without_a_length_are_read_up_to_the_limit(one_worker):
    auth = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    small = json.dumps({"texts": [TEXT]}).encode()

    def chunks(body: bytes, size: int):
        yield from (body[i:i + size] for i in range(0, len(body), size))

    ok = httpx.post(one_worker + "/predict", content=chunks(small, 7), headers=auth, timeout=30)
    assert ok.status_code == 200 and ok.json()["results"][0]
    big = json.dumps({"texts": ["y" * 300_000]}).encode()
    refused = httpx.post(one_worker + "/predict", content=chunks(big, 10_000), headers=auth, timeout=30)
    assert refused.status_code == 413 and "larger than 100000 bytes" in refused.json()["error"]


def _hammer(url: str, stop: threading.Event, outcomes: list) -> None:
    """Requests one after another until ``stop``; every outcome (status or exception) recorded."""
    with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as client:
        while not stop.is_set():
            try:
                outcomes.append(client.post(url + "/predict", json={"texts": [TEXT], "top_k": 3}).status_code)
            except httpx.HTTPError as exc:
                outcomes.append(repr(exc))


def _pids(url: str, n: int = 40) -> set[int]:
    return {httpx.get(url + "/healthz", timeout=10).json()["pid"] for _ in range(n)}


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_reloads_a_replaced_model_without_dropping_a_request(model, small_data, tmp_path, workers):
    served = tmp_path / "model"
    api.train("xr-linear", small_data, served, overrides=["tree.max_leaf_size=16"], eval_split=None)
    url, proc = _start(served, tmp_path, "--workers", str(workers))
    try:
        before = _predict(url)[1]
        stop, outcomes = threading.Event(), []
        loaders = [threading.Thread(target=_hammer, args=(url, stop, outcomes)) for _ in range(3)]
        for t in loaders:
            t.start()
        api.train("xr-linear", small_data, served, overrides=["tree.max_leaf_size=4", "ranker.Cp=0.3"],
                  eval_split=None, overwrite=True)
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _predict(url)[1] == before:
            time.sleep(0.2)
        time.sleep(0.5)
        stop.set()
        for t in loaders:
            t.join()
        after = [_predict(url)[1] for _ in range(10)]
        assert after[0] != before and all(a == after[0] for a in after)  # every worker serves the new model
        assert outcomes and set(outcomes) == {200}, [o for o in outcomes if o != 200][:3]
        if workers > 1:
            assert len(_pids(url)) == workers
    finally:
        log = _stop(proc)
    assert "reloaded" in log and "Traceback" not in log


def test_workers_share_the_load_and_a_dead_worker_is_replaced(model, tmp_path):
    url, proc = _start(model, tmp_path, "--workers", "2")
    try:
        pids = _pids(url)
        assert len(pids) == 2 and proc.pid not in pids
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (victim in (seen := _pids(url, 20)) or len(seen) < 2):
            time.sleep(0.2)
        assert victim not in seen and len(seen) == 2
        assert _predict(url)[0] == 200
    finally:
        log = _stop(proc)
    assert proc.returncode == 0 and "died" in log
    for pid in pids - {victim}:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # stopped with the server


def test_more_workers_than_allowed_and_bad_key_files_are_clear_errors(model, tmp_path):
    cmd = [sys.executable, "-m", "xmc.cli.main", "serve", "--model", str(model)]
    for extra, message in ((["--workers", "0"], "--workers must be at least 1"),
                           (["--api-key-file", str(tmp_path / "none")], "cannot read the API key file")):
        done = subprocess.run(cmd + extra, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and message in done.stderr
