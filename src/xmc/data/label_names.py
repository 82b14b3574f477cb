"""Human-readable label names that a dataset folder may carry.

Two sources, looked up in this order:

- ``label_names.tsv``: ``label<TAB>name[<TAB>description]`` per line (UTF-8);
- ``<Name>.json[.gz]``: a JSON object mapping label ids to a name or to an object with a ``label``
  field (EURLEX57K's EUROVOC descriptor map ``{"1519": {"label": "...", "alt_labels": [...]}}``).

A file that exists but cannot be read as one of these is a :class:`DataFormatError` naming it.
"""

from __future__ import annotations

import json
from pathlib import Path

from xmc.data.bow import read_bytes
from xmc.exceptions import DataFormatError

TSV_NAME = "label_names.tsv"
MAX_NAME = 1000  # characters kept of one name or description


def find_label_names(folder: str | Path, dataset_name: str | None = None) -> dict[str, str]:
    """``{label: name}`` from the first name file found in ``folder``; ``{}`` when there is none."""
    folder = Path(folder)
    if (folder / TSV_NAME).is_file():
        return read_label_tsv(folder / TSV_NAME)
    name = dataset_name or folder.name
    for suffix in (".json.gz", ".json"):
        path = folder / f"{name}{suffix}"
        if path.is_file():
            return read_label_json(path)
    return {}


def _decode(path: Path) -> str:
    try:
        return read_bytes(path).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path}: invalid UTF-8 ({exc.reason} at byte {exc.start})") from None


def read_label_tsv(path: str | Path) -> dict[str, str]:
    path = Path(path)
    names: dict[str, str] = {}
    for line_no, line in enumerate(_decode(path).splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        label = fields[0].strip()
        if len(fields) < 2 or not label or any(c.isspace() for c in label):
            raise DataFormatError(f"{path}:{line_no}: expected 'label<TAB>name', got {line[:80]!r}")
        names[label] = fields[1].strip()[:MAX_NAME]
    return names


def read_json_object(path: Path, what: str) -> dict:
    """A JSON file holding one object (label ids to ``what``); anything else is a DataFormatError."""
    try:
        raw = json.loads(_decode(path))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise DataFormatError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise DataFormatError(f"{path}: expected a JSON object mapping label ids to {what}")
    return raw


def read_label_json(path: str | Path) -> dict[str, str]:
    path = Path(path)
    raw = read_json_object(path, "names")
    names = {}
    for label, value in raw.items():
        name = value.get("label") if isinstance(value, dict) else value
        if not isinstance(name, (str, int, float)) or isinstance(name, bool):
            raise DataFormatError(f"{path}: label {label[:40]!r} has no readable name")
        names[label] = str(name)[:MAX_NAME]
    return names
