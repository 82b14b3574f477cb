"""Download public originals and convert them to the text layout (``xmc data fetch``).

Each source is one archive; conversion is separate from download so it can run offline on an
archive fetched elsewhere (``--from FILE``) and be tested on small fixture archives.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from xmc.data.formats import write_text_split
from xmc.exceptions import DataFormatError, NetworkUnavailableError, XMCError
from xmc.utils.io import open_text

SOURCES = {
    "eurlex57k": "http://nlp.cs.aueb.gr/software_and_datasets/EURLEX57K/datasets.zip",
    "reuters21578": "https://kdd.ics.uci.edu/databases/reuters21578/reuters21578.tar.gz",
}
FOLDER_NAMES = {"eurlex57k": "EURLEX57K", "reuters21578": "Reuters-21578"}


def fetch(name: str, to: str | os.PathLike, archive: str | os.PathLike | None = None, timeout: float = 30) -> Path:
    """Download (unless ``archive`` is given) and convert dataset ``name`` into ``to/<Folder>``."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in SOURCES:
        raise XMCError(f"unknown dataset {name!r} to fetch; choose from {', '.join(SOURCES)}")
    out = Path(to) / FOLDER_NAMES[key]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(archive) if archive else _download(SOURCES[key], Path(tmp), timeout)
        if not path.is_file():
            raise XMCError(f"archive {path} does not exist")
        (convert_eurlex57k if key == "eurlex57k" else convert_reuters21578)(path, out)
    return out


def _download(url: str, folder: Path, timeout: float) -> Path:
    target = folder / url.rsplit("/", 1)[-1]
    try:
        # url is always one of SOURCES (http/https), never user input
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(target, "wb") as f:  # noqa: S310
            shutil.copyfileobj(resp, f)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NetworkUnavailableError(
            f"cannot download {url} ({reason}); without a network, fetch the file elsewhere and run "
            "`xmc data fetch NAME --from FILE --to DIR`"
        ) from None
    return target


def convert_eurlex57k(archive: str | os.PathLike, out: str | os.PathLike) -> None:
    """EURLEX57K ``datasets.zip`` (one JSON per document) to the text layout.

    Text is header + recitals + main body joined with spaces; labels are the EUROVOC concept ids;
    documents are ordered by file name (the CELEX id), as in ``../shared/data``.
    """
    out = Path(out)
    with zipfile.ZipFile(archive) as zf:
        by_split: dict[str, list[str]] = {}
        for name in zf.namelist():
            parts = name.split("/")
            if len(parts) >= 2 and parts[-2] in ("train", "dev", "test") and parts[-1].endswith(".json"):
                by_split.setdefault(parts[-2], []).append(name)
        if not by_split:
            raise DataFormatError(f"{archive}: no train/dev/test JSON documents found")
        for split, names in by_split.items():
            texts, labels, meta = [], [], []
            for name in sorted(names, key=lambda n: n.rsplit("/", 1)[-1]):
                try:
                    doc = json.loads(zf.read(name).decode("utf-8"))
                    body = doc.get("main_body") or []
                    text = " ".join([doc.get("header", ""), doc.get("recitals", ""), *body])
                    texts.append(" ".join(text.split()))
                    labels.append([str(c) for c in doc["concepts"]])
                except (KeyError, ValueError) as exc:
                    raise DataFormatError(f"{archive}:{name}: not a EURLEX57K document ({exc})") from None
                meta.append({k: doc.get(k) for k in ("celex_id", "uri", "type", "title")})
            write_text_split(out, split, texts, labels)
            _write_meta(out / f"{split}_meta.jsonl.gz", meta)


_REUTERS_DOC = re.compile(r"<REUTERS([^>]*)>(.*?)</REUTERS>", re.S)
_ATTR = re.compile(r'(\w+)="([^"]*)"')


def _tag(body: str, tag: str) -> str:
    m = re.search(rf"<{tag}[^>]*>(.*?)</{tag}>", body, re.S)
    return m.group(1) if m else ""


def convert_reuters21578(archive: str | os.PathLike, out: str | os.PathLike) -> None:
    """Reuters-21578 SGML to the ModApte split with the 90 categories seen in train and test."""
    docs = []
    with tarfile.open(archive) as tf:
        members = sorted((m for m in tf.getmembers() if m.name.endswith(".sgm")), key=lambda m: m.name)
        if not members:
            raise DataFormatError(f"{archive}: no reut2-*.sgm files found")
        for member in members:
            raw = tf.extractfile(member).read().decode("latin-1")
            for attrs, body in _REUTERS_DOC.findall(raw):
                a = dict(_ATTR.findall(attrs))
                if a.get("TOPICS") != "YES" or a.get("LEWISSPLIT") not in ("TRAIN", "TEST"):
                    continue
                topics = re.findall(r"<D>(.*?)</D>", _tag(body, "TOPICS"))
                title = html.unescape(_tag(body, "TITLE"))
                text = html.unescape(_tag(body, "BODY"))
                text = re.sub(r"\s*reuter\s*\x03?\s*$", "", text.replace("\x03", ""), flags=re.I)
                split = "train" if a["LEWISSPLIT"] == "TRAIN" else "test"
                docs.append((split, " ".join(f"{title} {text}".split()), topics, a))
    in_train = {t for s, _, ts, _ in docs if s == "train" for t in ts}
    in_test = {t for s, _, ts, _ in docs if s == "test" for t in ts}
    keep = in_train & in_test
    out = Path(out)
    for split in ("train", "test"):
        rows = [(t, [x for x in ts if x in keep], a) for s, t, ts, a in docs if s == split]
        rows = [r for r in rows if r[1]]
        write_text_split(out, split, [r[0] for r in rows], [r[1] for r in rows])
        _write_meta(out / f"{split}_meta.jsonl.gz",
                    [{"newid": r[2].get("NEWID"), "oldid": r[2].get("OLDID")} for r in rows])
    (out / "categories.txt").write_text("".join(c + "\n" for c in sorted(keep)), encoding="utf-8")


def _write_meta(path: Path, rows: list[dict]) -> None:
    with open_text(path, "wt") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
