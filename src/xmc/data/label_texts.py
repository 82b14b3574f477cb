"""Labels known by their text: what a label means, for scoring labels without (or with few)
training documents.

Two sources, looked up in this order in a dataset folder:

- ``label_texts.txt``: ``label<TAB>text`` per line (UTF-8), for any dataset;
- ``<Name>.json[.gz]``: EURLEX57K's EUROVOC descriptor map
  (``{"1519": {"label": "...", "alt_labels": [...], "parents": [...]}}``); a label's text is its
  descriptor, its alternative labels and its parents' descriptors, in that order
  ("school legislation; education law; ..."). The map holds every EUROVOC concept (7,201), more
  than the dataset's labels: concepts without documents are the candidates of zero-shot labels.

A file that exists but cannot be read is a :class:`DataFormatError` naming it.
"""

from __future__ import annotations

from pathlib import Path

from xmc.data.label_names import MAX_NAME, _decode, read_json_object
from xmc.exceptions import DataFormatError

TEXTS_NAME = "label_texts.txt"
SEPARATOR = "; "


def find_label_texts(folder: str | Path, dataset_name: str | None = None) -> dict[str, str]:
    """``{label: text}`` from the first label-text file found in ``folder``; ``{}`` when none."""
    folder = Path(folder)
    if (folder / TEXTS_NAME).is_file():
        return read_label_texts(folder / TEXTS_NAME)
    name = dataset_name or folder.name
    for suffix in (".json.gz", ".json"):
        path = folder / f"{name}{suffix}"
        if path.is_file():
            return read_descriptor_json(path)
    return {}


def read_label_texts(path: str | Path) -> dict[str, str]:
    path = Path(path)
    texts: dict[str, str] = {}
    for line_no, line in enumerate(_decode(path).splitlines(), 1):
        if not line.strip():
            continue
        label, tab, text = line.partition("\t")
        label = label.strip()
        if not tab or not label or any(c.isspace() for c in label) or not text.strip():
            raise DataFormatError(f"{path}:{line_no}: expected 'label<TAB>text', got {line[:80]!r}")
        texts[label] = " ".join(text.split())[: 4 * MAX_NAME]
    return texts


def read_descriptor_json(path: str | Path) -> dict[str, str]:
    """EUROVOC-style descriptors: descriptor; alternative labels; parents' descriptors."""
    path = Path(path)
    raw = read_json_object(path, "descriptors")
    names = {label: _field(path, label, value) for label, value in raw.items()}
    texts = {}
    for label, value in raw.items():
        parts = [names[label]]
        if isinstance(value, dict):
            parts += [str(a) for a in value.get("alt_labels") or [] if isinstance(a, (str, int))]
            parts += [names[str(p)] for p in value.get("parents") or [] if str(p) in names]
        texts[label] = SEPARATOR.join(p for p in parts if p)[: 4 * MAX_NAME]
    return texts


def _field(path: Path, label: str, value) -> str:
    name = value.get("label") if isinstance(value, dict) else value
    if not isinstance(name, (str, int, float)) or isinstance(name, bool):
        raise DataFormatError(f"{path}: label {label[:40]!r} has no readable descriptor")
    return " ".join(str(name).split())
