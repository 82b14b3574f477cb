from __future__ import annotations

import io
import json
import tarfile
import urllib.error
import zipfile

import pytest

from xmc.cli.main import main
from xmc.data import resolve
from xmc.data.fetch import fetch
from xmc.exceptions import NetworkUnavailableError


def _eurlex_zip(path):
    docs = {
        "dataset/train/32010R0002.json": {"celex_id": "32010R0002", "header": "REGULATION B", "recitals": "Whereas b",
                                          "main_body": ["Art 1", "Art 2"], "concepts": ["12", "7"], "title": "B"},
        "dataset/train/32010R0001.json": {"celex_id": "32010R0001", "header": "REGULATION A", "recitals": "Whereas\na",
                                          "main_body": ["Body"], "concepts": ["7"], "title": "A"},
        "dataset/dev/32011R0001.json": {"celex_id": "32011R0001", "header": "DECISION", "recitals": "",
                                        "main_body": [], "concepts": ["99"], "title": "C"},
    }
    with zipfile.ZipFile(path, "w") as zf:
        for name, doc in docs.items():
            zf.writestr(name, json.dumps(doc))


def test_eurlex57k_conversion_from_local_archive(tmp_path):
    _eurlex_zip(tmp_path / "datasets.zip")
    out = fetch("eurlex57k", tmp_path / "data", archive=tmp_path / "datasets.zip")
    train = resolve(out).load("train")
    # sorted by file name (CELEX id); header + recitals + body, whitespace collapsed
    assert train.texts == ["REGULATION A Whereas a Body", "REGULATION B Whereas b Art 1 Art 2"]
    assert train.labels == [["7"], ["12", "7"]]
    assert resolve(out).load("dev").labels == [["99"]]


def _reuters_tar(path):
    sgm = (
        '<REUTERS TOPICS="YES" LEWISSPLIT="TRAIN" NEWID="1"><TOPICS><D>grain</D><D>rare</D></TOPICS>'
        "<TEXT><TITLE>WHEAT &amp; CORN</TITLE><BODY>Prices rose.\n Reuter\n\x03</BODY></TEXT></REUTERS>\n"
        '<REUTERS TOPICS="YES" LEWISSPLIT="TEST" NEWID="2"><TOPICS><D>grain</D></TOPICS>'
        "<TEXT><TITLE>GRAIN</TITLE><BODY>Fell.\n Reuter\n\x03</BODY></TEXT></REUTERS>\n"
        '<REUTERS TOPICS="NO" LEWISSPLIT="TRAIN" NEWID="3"><TOPICS><D>grain</D></TOPICS>'
        "<TEXT><TITLE>SKIP</TITLE><BODY>x</BODY></TEXT></REUTERS>\n"
        '<REUTERS TOPICS="YES" LEWISSPLIT="TEST" NEWID="4"><TOPICS><D>rare2</D></TOPICS>'
        "<TEXT><TITLE>DROP</TITLE><BODY>y</BODY></TEXT></REUTERS>\n"
    ).encode("latin-1")
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("reut2-000.sgm")
        info.size = len(sgm)
        tf.addfile(info, io.BytesIO(sgm))


def test_reuters_conversion_applies_modapte_and_category_filter(tmp_path):
    _reuters_tar(tmp_path / "r.tar.gz")
    out = fetch("reuters21578", tmp_path, archive=tmp_path / "r.tar.gz")
    train, test = resolve(out).load("train"), resolve(out).load("test")
    assert train.texts == ["WHEAT & CORN Prices rose."] and train.labels == [["grain"]]
    assert test.texts == ["GRAIN Fell."] and test.labels == [["grain"]]


def test_fetch_without_network_fails_clearly(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(NetworkUnavailableError, match="cannot download .*--from FILE"):
        fetch("eurlex57k", tmp_path)
    assert main(["data", "fetch", "reuters21578", "--to", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xmc: error: cannot download") and err.count("\n") == 1
