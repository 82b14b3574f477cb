"""API keys and body limits in front of the routes (in-process, through FastAPI's TestClient)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from xmc import api  # noqa: E402
from xmc.exceptions import XMCError  # noqa: E402
from xmc.serve.app import ServeSettings, create_app  # noqa: E402
from xmc.serve.gate import KEYS_ENV, ApiKeys  # noqa: E402

KEY, OTHER = "k" * 8 + "-first-key-0123", "second-key-abcdefghij"
PROTECTED = [("post", "/predict", {"json": {"texts": ["fish"]}}), ("get", "/labels", {}), ("get", "/metrics", {})]
PUBLIC = ["/healthz", "/readyz", "/", "/docs", "/openapi.json"]


@pytest.fixture(scope="module")
def model(small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("gate") / "model"
    api.train("xr-linear", small_data, out, overrides=["tree.max_leaf_size=16"], eval_split=None)
    return out


@pytest.fixture(scope="module")
def keyed(model):
    app = create_app(model, ServeSettings(max_body=10_000), keys=ApiKeys([KEY, OTHER]))
    with TestClient(app) as c:
        yield c


def test_key_files_and_variables(tmp_path):
    path = tmp_path / "keys"
    path.write_text(f"# the team's keys\n\n  {KEY}  \n{OTHER}\n")
    keys = ApiKeys.read(path, environ={})
    assert len(keys) == 2 and keys.accepts(f"Bearer {KEY}") and keys.accepts(f"bearer {OTHER}")
    both = ApiKeys.read(path, environ={KEYS_ENV: "third-key-zzzzzzzzzz, fourth-key-yyyyyyyyyy"})
    assert len(both) == 4 and both.accepts("Bearer fourth-key-yyyyyyyyyy")
    assert ApiKeys.read(None, environ={}) is None  # no keys asked for: an open server
    assert len(ApiKeys.read(None, environ={KEYS_ENV: KEY})) == 1
    assert KEY not in repr(keys) and repr(keys) == "ApiKeys(2 keys)"


@pytest.mark.parametrize("content, message", [("# only a comment\n\n", "holds no key"), ("short\n", "shorter than 16"),
                                              ("a key with spaces inside\n", "holds a space")])
def test_bad_key_files_are_refused_with_a_reason(tmp_path, content, message):
    path = tmp_path / "keys"
    path.write_text(content)
    with pytest.raises(XMCError, match=message):
        ApiKeys.read(path, environ={})
    with pytest.raises(XMCError, match="cannot read the API key file"):
        ApiKeys.read(tmp_path / "missing", environ={})


@pytest.mark.parametrize("header", [None, "", "Bearer", f"Bearer {KEY}x", f"Bearer {KEY[:-1]}", f"Basic {KEY}",
                                    KEY, f"Token {KEY}", "Bearer " + OTHER.upper()])
def test_only_a_bearer_key_of_the_set_is_accepted(header):
    assert not ApiKeys([KEY, OTHER]).accepts(header)


def test_every_key_is_compared_whatever_matched(monkeypatch):
    """Constant time: the number of digest comparisons does not depend on which key matched."""
    import xmc.serve.gate as gate

    calls = []
    real = gate.hmac.compare_digest
    monkeypatch.setattr(gate.hmac, "compare_digest", lambda a, b: calls.append(b) or real(a, b))
    keys = ApiKeys([KEY, OTHER, "third-key-zzzzzzzzzz"])
    for header in (f"Bearer {KEY}", f"Bearer {OTHER}", "Bearer nothing-like-a-key", None):
        calls.clear()
        keys.accepts(header)
        assert calls == [hashlib.sha256(k.encode()).digest() for k in (KEY, OTHER, "third-key-zzzzzzzzzz")]


@pytest.mark.parametrize("method, path, extra", PROTECTED)
def test_protected_routes_answer_401_without_a_valid_key(keyed, method, path, extra):
    for headers in ({}, {"Authorization": "Bearer wrong-key-wrong-key-wrong"}, {"Authorization": KEY}):
        response = getattr(keyed, method)(path, headers=headers, **extra)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer realm="xmc"'
        assert "API key" in response.json()["error"]
    for key in (KEY, OTHER):
        response = getattr(keyed, method)(path, headers={"Authorization": f"Bearer {key}"}, **extra)
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", PUBLIC)
def test_public_routes_need_no_key(keyed, path):
    assert keyed.get(path).status_code == 200


def test_refusals_are_counted_and_the_docs_describe_the_scheme(keyed):
    keyed.get("/labels")
    metrics = keyed.get("/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    assert 'xmc_errors_total{kind="unauthorized"}' in metrics
    assert '"HTTPBearer"' in keyed.get("/openapi.json").text


def test_without_keys_every_route_is_open(model):
    with TestClient(create_app(model)) as c:
        assert c.post("/predict", json={"texts": ["fish"]}).status_code == 200
        assert c.get("/labels").status_code == 200
        assert "HTTPBearer" not in c.get("/openapi.json").text


def test_bodies_over_the_declared_limit(keyed):
    """(Bodies without a length, and clients that write the whole body first: test_server_process.py.)"""
    auth = {"Authorization": f"Bearer {KEY}", "content-type": "application/json"}
    assert keyed.post("/predict", content=b'{"texts": ["fish"]}', headers=auth).status_code == 200
    assert keyed.post("/predict", content=b"x" * 10_000, headers=auth).status_code == 422  # at the limit: read
    response = keyed.post("/predict", content=b"x" * 10_001, headers=auth)
    assert response.status_code == 413 and "larger than 10000 bytes" in response.json()["error"]


def test_the_page_has_a_key_field_that_it_sends():
    page = (Path(api.__file__).parents[1] / "serve" / "page.html").read_text()
    assert 'id="key"' in page and "Authorization" in page and "Bearer" in page


def test_a_bug_is_a_500_with_a_json_body_and_the_server_keeps_serving(model, monkeypatch):
    import xmc.serve.app as app_module

    with TestClient(create_app(model)) as c:
        real = app_module.api.predict_texts
        monkeypatch.setattr(app_module.api, "predict_texts", lambda *a, **k: 1 / 0)
        response = c.post("/predict", json={"texts": ["fish"]})
        assert response.status_code == 500 and "a bug in xmc" in response.json()["error"]
        monkeypatch.setattr(app_module.api, "predict_texts", real)
        assert c.post("/predict", json={"texts": ["fish"]}).status_code == 200
        metrics = c.get("/metrics").text
        assert 'xmc_errors_total{kind="internal"} 1.0' in metrics
        assert 'xmc_requests_total{route="/predict",status="500"} 1.0' in metrics
        assert 'xmc_requests_total{route="/predict",status="200"}' in metrics
