"""A transformer model served by forked workers, quantised, with threads shared out."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("fastapi")
import httpx  # noqa: E402

from xmc import api  # noqa: E402

SMALL = ["encoder.n_layers=0", "finetune.steps=[6,6,10]", "finetune.batch_size=16", "finetune.eval_docs=0",
         "ranker.tree.max_leaf_size=32", "finetune.device=cpu"]


def test_two_workers_with_two_threads_each_serve_a_quantised_xr_transformer(eurlex_slice, tiny_bert, tmp_path):
    """Both workers answer what the model answers in-process. (That the parent never starts a
    thread pool is checked in tests/serve/test_workers.py: a tiny encoder is too small for torch
    to start one anyway.)"""
    model = tmp_path / "xrt"
    api.train("xr-transformer", eurlex_slice, model, overrides=[f"encoder.name={tiny_bert}", *SMALL],
              eval_split=None)
    texts = api.resolve(eurlex_slice).load("dev").texts[:6]
    expected = [[lab for lab, _, _ in row] for row in api.predict_texts(api.load(model, quantize=True), texts)]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "xmc.cli.main", "serve", "--model", str(model), "--port", str(port),
                             "--workers", "2", "--threads", "4", "--quantize"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        pids, rows = set(), []
        for _ in range(12):  # both workers answer, each after its own first parallel operations
            pids.add(httpx.get(url + "/healthz", timeout=20).json()["pid"])
            answer = httpx.post(url + "/predict", json={"texts": texts, "top_k": 5}, timeout=20).json()
            rows = [[r["label"] for r in row] for row in answer["results"]]
            assert rows == expected
        assert len(pids) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        log, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in log
