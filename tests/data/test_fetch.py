from __future__ import annotations

import gzip
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
        '<REUTERS TOPICS="YES" LEWISSPLIT="TEST" NEWID="5"><TOPICS><D>grain</D></TOPICS>'
        "<TEXT><TITLE>AFTER</TITLE><BODY>A skipped document does not end the file.</BODY></TEXT></REUTERS>\n"
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
    assert test.texts == ["GRAIN Fell.", "AFTER A skipped document does not end the file."]
    assert test.labels == [["grain"], ["grain"]]


def test_fetch_without_network_fails_clearly(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    ending = "run `xmc data fetch NAME --from FILE --to DIR`$"
    with pytest.raises(NetworkUnavailableError, match="cannot download .*" + ending):
        fetch("eurlex57k", tmp_path)
    assert main(["data", "fetch", "reuters21578", "--to", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xmc: error: cannot download") and err.count("\n") == 1


def test_conversions_write_meta_and_categories(tmp_path):
    _eurlex_zip(tmp_path / "datasets.zip")
    out = fetch("EURLEX-57K", tmp_path / "data", archive=tmp_path / "datasets.zip")  # names are forgiving
    meta = [json.loads(line) for line in gzip.open(out / "train_meta.jsonl.gz", "rt", encoding="utf-8")]
    assert meta == [{"celex_id": "32010R0001", "uri": None, "type": None, "title": "A"},
                    {"celex_id": "32010R0002", "uri": None, "type": None, "title": "B"}]
    assert resolve(out).splits == ["train", "dev"]
    _reuters_tar(tmp_path / "r.tar.gz")
    out = fetch("reuters_21578", tmp_path, archive=tmp_path / "r.tar.gz")
    assert (out / "categories.txt").read_text() == "grain\n"
    meta = [json.loads(line) for line in gzip.open(out / "test_meta.jsonl.gz", "rt", encoding="utf-8")]
    assert meta == [{"newid": "2", "oldid": None}, {"newid": "5", "oldid": None}]


def test_a_document_missing_its_header_or_recitals_still_converts(tmp_path):
    with zipfile.ZipFile(tmp_path / "d.zip", "w") as zf:
        zf.writestr("x/train/1.json", json.dumps({"main_body": ["Body é"], "concepts": [3]}))
        zf.writestr("x/train/notes.txt", "ignored")
        zf.writestr("train/2.json", json.dumps({"header": "H", "concepts": []}))  # directly under a split folder
    out = fetch("eurlex57k", tmp_path / "o", archive=tmp_path / "d.zip")
    assert resolve(out).load("train").texts == ["Body é", "H"]


def test_bad_archives_are_data_format_errors(tmp_path):
    from xmc.exceptions import DataFormatError, XMCError

    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as zf:
        zf.writestr("readme.txt", "nothing")
    with pytest.raises(DataFormatError, match="empty.zip: no train/dev/test JSON documents"):
        fetch("eurlex57k", tmp_path / "o", archive=tmp_path / "empty.zip")
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as zf:
        zf.writestr("d/train/1.json", "{not json")
    with pytest.raises(DataFormatError, match=r"bad.zip:d/train/1.json: not a EURLEX57K document"):
        fetch("eurlex57k", tmp_path / "o", archive=tmp_path / "bad.zip")
    with tarfile.open(tmp_path / "none.tar.gz", "w:gz"):
        pass
    with pytest.raises(DataFormatError, match="no reut2-"):
        fetch("reuters21578", tmp_path / "o", archive=tmp_path / "none.tar.gz")
    with pytest.raises(XMCError, match="unknown dataset 'wiki' to fetch; choose from eurlex57k, reuters21578"):
        fetch("wiki", tmp_path)
    with pytest.raises(XMCError, match="archive .*missing.zip does not exist"):
        fetch("eurlex57k", tmp_path, archive=tmp_path / "missing.zip")


def test_reuters_members_are_read_in_name_order(tmp_path):
    def doc(newid, topic):
        return (f'<REUTERS TOPICS="YES" LEWISSPLIT="TRAIN" NEWID="{newid}"><TOPICS><D>{topic}</D></TOPICS>'
                f"<TEXT><TITLE>T{newid}</TITLE><BODY>b\n REUTER \x03</BODY></TEXT></REUTERS>"
                f'<REUTERS TOPICS="YES" LEWISSPLIT="TEST" NEWID="9{newid}"><TOPICS><D>{topic}</D></TOPICS>'
                f"<TEXT><TITLE>U</TITLE><BODY>c</BODY></TEXT></REUTERS>").encode("latin-1")
    with tarfile.open(tmp_path / "r.tar.gz", "w:gz") as tf:
        for name, body in (("reut2-001.sgm", doc(2, "b")), ("reut2-000.sgm", doc(1, "a"))):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tf.addfile(info, io.BytesIO(body))
    out = fetch("reuters21578", tmp_path, archive=tmp_path / "r.tar.gz")
    assert resolve(out).load("train").texts == ["T1 b", "T2 b"]  # the sign-off goes, whatever its case


def test_download_from_a_local_server(tmp_path, monkeypatch):
    """The real download path, against an HTTP server on loopback."""
    import functools
    import http.server
    import threading

    from xmc.data import fetch as fetch_module

    (tmp_path / "served").mkdir()
    _eurlex_zip(tmp_path / "served" / "datasets.zip")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "served"))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/datasets.zip"
        monkeypatch.setitem(fetch_module.SOURCES, "eurlex57k", url)
        out = fetch("eurlex57k", tmp_path / "data", timeout=5)
        assert resolve(out).load("train").labels == [["7"], ["12", "7"]]
        monkeypatch.setitem(fetch_module.SOURCES, "eurlex57k", url.replace("datasets", "missing"))
        with pytest.raises(NetworkUnavailableError, match="missing.zip"):
            fetch("eurlex57k", tmp_path / "data2", timeout=5)
    finally:
        server.shutdown()


def test_the_timeout_and_the_reason_reach_the_user(tmp_path, monkeypatch):
    seen = {}

    def refuse(url, timeout=None):
        seen.update(url=url, timeout=timeout)
        raise urllib.error.URLError("connection refused by 10.0.0.1")

    monkeypatch.setattr("urllib.request.urlopen", refuse)
    with pytest.raises(NetworkUnavailableError, match=r"datasets\.zip \(connection refused by 10\.0\.0\.1\)"):
        fetch("eurlex57k", tmp_path, timeout=7.5)
    assert seen == {"url": "http://nlp.cs.aueb.gr/software_and_datasets/EURLEX57K/datasets.zip", "timeout": 7.5}

    def broken(url, timeout=None):
        seen.update(timeout=timeout)
        raise TimeoutError("timed out")

    monkeypatch.setattr("urllib.request.urlopen", broken)
    with pytest.raises(NetworkUnavailableError, match=r"\(timed out\)"):
        fetch("reuters21578", tmp_path)
    assert seen["timeout"] == 30  # the default


def test_eurlex_test_split_titles_and_non_ascii_meta(tmp_path):
    with zipfile.ZipFile(tmp_path / "d.zip", "w") as zf:
        zf.writestr("d/test/1.json", json.dumps({"header": "H", "concepts": ["1"], "title": "Règlement"}))
        zf.writestr("d/valid/2.json", json.dumps({"header": "V", "concepts": ["2"]}))  # not a split of the set
    out = fetch("eurlex57k", tmp_path / "o", archive=tmp_path / "d.zip")
    assert resolve(out).splits == ["test"]
    raw = gzip.open(out / "test_meta.jsonl.gz", "rt", encoding="utf-8").read()
    assert '"title": "Règlement"' in raw  # written as UTF-8, not \\u escapes


def test_reuters_titles_control_characters_ids_and_categories(tmp_path):
    sgm = ('<REUTERS TOPICS="YES" LEWISSPLIT="TRAIN" NEWID="1" OLDID="501"><TOPICS><D>b</D><D>a</D></TOPICS>'
           "<TEXT><BODY>one\x03two</BODY></TEXT></REUTERS>"
           '<REUTERS TOPICS="YES" LEWISSPLIT="TEST" NEWID="2" OLDID="502"><TOPICS><D>a</D><D>b</D></TOPICS>'
           "<TEXT><TITLE>T</TITLE><BODY>three</BODY></TEXT></REUTERS>").encode("latin-1")
    with tarfile.open(tmp_path / "r.tar.gz", "w:gz") as tf:
        info = tarfile.TarInfo("reut2-000.sgm")
        info.size = len(sgm)
        tf.addfile(info, io.BytesIO(sgm))
    out = fetch("reuters21578", tmp_path, archive=tmp_path / "r.tar.gz")
    assert resolve(out).load("train").texts == ["onetwo"]  # no title: the body alone
    assert (out / "categories.txt").read_text() == "a\nb\n"
    meta = [json.loads(line) for line in gzip.open(out / "train_meta.jsonl.gz", "rt", encoding="utf-8")]
    assert meta == [{"newid": "1", "oldid": "501"}]
