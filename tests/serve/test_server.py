"""The HTTP server: routes, micro-batching, limits and errors (in-process), and the page in a real
headless Chromium against a real uvicorn on loopback."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from xmc import api  # noqa: E402
from xmc.serve.app import ServeSettings, create_app  # noqa: E402
from xmc.serve.batching import MicroBatcher  # noqa: E402

ARTIFACTS = Path(os.environ.get("XMC_TEST_ARTIFACTS",
                                Path(__file__).resolve().parents[2] / ".cache" / "test-artifacts"))


@pytest.fixture(scope="module")
def model(small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("serve") / "model"
    (Path(small_data) / "label_names.tsv").write_text("155\tinternational trade\n1519\tfishery\n")
    api.train("xr-linear", small_data, out, overrides=["tree.max_leaf_size=16"])
    return out


@pytest.fixture(scope="module")
def client(model):
    with TestClient(create_app(model, ServeSettings(max_texts=4, max_chars=100_000, max_body=500_000))) as c:
        yield c


def test_predict_gives_what_the_api_gives(client, model, small_data):
    texts = api.resolve(small_data).load("dev").texts[:3]
    response = client.post("/predict", json={"texts": texts, "top_k": 4})
    assert response.status_code == 200
    results = response.json()["results"]
    expected = api.predict_texts(model, texts, top_k=4)
    assert [[(r["label"], r["name"]) for r in row] for row in results] == [[(lab, name) for lab, _, name in row]
                                                                           for row in expected]
    for got, want in zip(results, expected, strict=True):
        assert [r["score"] for r in got] == pytest.approx([s for _, s, _ in want])
    assert all(0 <= r["score"] <= 1 for row in results for r in row)
    high = client.post("/predict", json={"texts": texts[:1], "top_k": 10, "min_score": 0.5}).json()["results"][0]
    assert all(r["score"] >= 0.5 for r in high)


def test_health_labels_metrics_and_docs(client):
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/readyz").status_code == 200
    labels = client.get("/labels", params={"limit": 5}).json()
    assert labels["total"] > 5 and len(labels["labels"]) == 5
    named = {row["label"]: row["name"] for row in client.get("/labels", params={"limit": 100000}).json()["labels"]}
    assert named.get("1519") == "fishery"
    assert "xmc_requests_total" in client.get("/metrics").text
    assert client.get("/docs").status_code == 200 and "/predict" in client.get("/openapi.json").text


@pytest.mark.parametrize("body, status, message", [
    ({"texts": []}, 422, "texts"),
    ({"texts": "one text"}, 422, "texts"),
    ({"texts": ["a"], "top_k": 0}, 422, "top_k"),
    ({"texts": ["a"], "min_score": 2}, 422, "min_score"),
    ({"texts": ["a"], "colour": "red"}, 422, "colour"),
    ({"texts": ["a"] * 5}, 413, "at most 4"),
    ({"texts": ["a" * 100_001]}, 413, "at most 100000"),
])
def test_bad_requests_are_json_errors_and_the_server_keeps_serving(client, body, status, message):
    response = client.post("/predict", json=body)
    assert response.status_code == status and message in response.json()["error"]
    assert client.post("/predict", json={"texts": ["fish"]}).status_code == 200


def test_bodies_that_are_not_json_or_too_large(client):
    assert client.post("/predict", content=b"{not json", headers={"content-type": "application/json"}).status_code \
        == 422
    assert client.post("/predict", content=b"x" * 600_000, headers={"content-type": "application/json"}).status_code \
        == 413
    assert client.post("/predict", content="\ufffe".encode("utf-16"), headers={"content-type": "application/json"}) \
        .status_code == 422


def test_micro_batching_groups_concurrent_requests_and_keeps_each_ones_settings():
    calls = []

    def predict(texts, k):
        calls.append(list(texts))
        return [[(f"{t}-{j}", 1.0 - j / 10, None) for j in range(k)] for t in texts]

    async def scenario():
        batcher = MicroBatcher(predict, max_wait=0.05, max_batch=10)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit([f"t{i}"], top_k=1 + i % 3, min_score=0.85)
                                         for i in range(6)))
        await batcher.stop()
        return results

    results = asyncio.run(scenario())
    assert len(calls) == 1 and len(calls[0]) == 6  # one batch for six concurrent requests
    for i, rows in enumerate(results):
        assert rows == [[(f"t{i}-{j}", 1.0 - j / 10, None) for j in range(1 + i % 3) if 1.0 - j / 10 >= 0.85]]


def test_without_a_wait_a_lone_request_goes_at_once_and_the_queue_forms_the_next_batch():
    """max_wait=0: the first request is scored alone and immediately; the ones that arrive while it
    is scored wait in the queue and go together in the next call, up to max_batch texts."""
    calls = []

    def predict(texts, k):
        calls.append(list(texts))
        time.sleep(0.2)
        return [[(t, 1.0, None)] for t in texts]

    async def scenario():
        batcher = MicroBatcher(predict, max_wait=0.0, max_batch=4)
        batcher.start()
        started = time.monotonic()
        first = asyncio.ensure_future(batcher.submit(["a"], 1, 0.0))
        await asyncio.sleep(0.05)  # "a" is being scored now
        rest = [asyncio.ensure_future(batcher.submit([t], 1, 0.0)) for t in "bcdef"]
        done = await asyncio.gather(first, *rest)
        await batcher.stop()
        return done, time.monotonic() - started

    done, seconds = asyncio.run(scenario())
    assert calls == [["a"], ["b", "c", "d", "e"], ["f"]]
    assert [rows[0][0][0] for rows in done] == list("abcdef")
    assert seconds < 0.2 * 3 + 0.15  # three calls of 0.2 s and no waiting besides


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(model):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "xmc.cli.main", "serve", "--model", str(model), "--port",
                             str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    import httpx

    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("the server did not become ready: " + proc.stdout.read())
    yield url, proc
    proc.terminate()
    proc.wait(timeout=30)


def test_the_page_in_a_real_browser(server, model, small_data):
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    url, _ = server
    text = api.resolve(small_data).load("dev").texts[0]
    expected = [name or lab for lab, _, name in api.predict_texts(model, [text], top_k=10)[0]]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page()
        page.goto(url + "/")
        page.fill("#text", text)
        page.click("#go")
        page.wait_for_selector("li.label")
        shown = page.locator("li.label .name").all_inner_texts()
        page.screenshot(path=str(ARTIFACTS / "serve_page.png"), full_page=True)
        browser.close()
    assert shown == expected
    assert (ARTIFACTS / "serve_page.png").stat().st_size > 5000


def test_the_server_stops_gracefully(server):
    import httpx

    url, proc = server
    assert httpx.post(url + "/predict", json={"texts": ["fish"]}).status_code == 200
    proc.terminate()
    proc.wait(timeout=30)  # uvicorn finishes the requests under way, then re-raises SIGTERM for its exit code
    log = proc.stdout.read()
    assert "Application shutdown complete" in log and "Traceback" not in log


def test_a_model_folder_missing_its_label_names_is_a_model_format_error(model, tmp_path):
    """Found by benchmarks/data/robustness.py: the manifest promised names, the file was gone."""
    import shutil

    from xmc.exceptions import ModelFormatError

    broken = tmp_path / "broken"
    shutil.copytree(model, broken)
    (broken / "label_names.tsv").unlink()
    with pytest.raises(ModelFormatError, match="label_names.tsv is missing"):
        api.load(broken)
