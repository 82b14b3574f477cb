"""``xmc data import``: a JSONL, CSV/TSV or Parquet file of labelled texts into a dataset folder.

Files are read by Apache Arrow's readers (``pyarrow``: C++, multi-threaded), only the columns
asked for. Each row gives a text (one field, or several joined by a space), labels (a list, or a
string cut at ``label_sep``) and optionally an id and a split name. Labels become tokens without
spaces (``fishery product`` -> ``fishery_product``), and the original names go to
``label_names.tsv``. A row that breaks a rule (no text, no labels field, labels of the wrong type,
an unknown split) is an error naming its line and field; with ``skip_bad`` such rows are counted,
the first few reported, and left out. The folder is written whole or not at all
(:func:`xmc.utils.folders.atomic_folder`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xmc.data.formats import write_text_split
from xmc.data.label_names import TSV_NAME, read_label_tsv
from xmc.exceptions import DataFormatError, XMCError
from xmc.utils.folders import atomic_folder, check_target

FORMATS = ("jsonl", "csv", "tsv", "parquet")
SPLIT_NAME = re.compile(r"^[A-Za-z0-9]+$")
DEFAULT_SPLITS = ("train", "dev", "test")
SHOWN_BAD_ROWS = 5


@dataclass(frozen=True)
class ImportSpec:
    text_fields: tuple[str, ...] = ("text",)
    labels_field: str = "labels"
    label_sep: str | None = None  # labels given as one string: cut here (None: a list is expected)
    id_field: str | None = None
    split_field: str | None = None  # the file's own split column; else a seeded random split
    fractions: tuple[float, ...] = (0.8, 0.1, 0.1)  # train, dev, test
    seed: int = 0
    skip_bad: bool = False
    file_format: str | None = None  # by the file's suffix when None


@dataclass
class ImportReport:
    out: Path
    rows: int = 0
    kept: int = 0
    bad: int = 0
    bad_examples: list[str] = field(default_factory=list)
    split_sizes: dict[str, int] = field(default_factory=dict)
    n_labels: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        sizes = ", ".join(f"{k} {v:,}" for k, v in self.split_sizes.items())
        lines = [f"wrote {self.out}: {self.kept:,} of {self.rows:,} rows ({sizes}), {self.n_labels:,} labels"]
        if self.bad:
            lines.append(f"skipped {self.bad:,} bad rows, e.g.:")
            lines += [f"  {e}" for e in self.bad_examples]
        return "\n".join(lines)


def import_file(path: str | os.PathLike, out: str | os.PathLike, spec: ImportSpec,
                label_names: str | os.PathLike | None = None, overwrite: bool = False) -> ImportReport:
    """Read ``path``, check every row, split, and write the text layout (and ``label_names.tsv``)."""
    import time

    started = time.perf_counter()
    path, out = Path(path), Path(out)
    if not path.is_file():
        raise XMCError(f"{path} does not exist or is not a file")
    _check_spec(spec)
    check_target(out, overwrite, owned=_is_dataset)
    kind = _format_of(path, spec)
    columns = _read_columns(path, kind, _wanted(spec))
    report = ImportReport(out, rows=len(columns[spec.labels_field]))
    try:
        rows = _rows(columns, spec, report)
    except DataFormatError:
        if kind != "jsonl" or "__line__" in columns:
            raise
        rows = None
    if kind == "jsonl" and "__line__" not in columns and (rows is None or report.bad):
        # Arrow counts records, not lines: read again line by line to name the lines of the bad rows
        columns = _read_jsonl_by_line(path, _wanted(spec))
        report = ImportReport(out, rows=len(columns[spec.labels_field]))
        rows = _rows(columns, spec, report)
    splits = _assign_splits(rows, spec)
    names = read_label_tsv(label_names) if label_names is not None else {}
    names = {**{r_tok: r_name for row in rows for r_tok, r_name in row.label_names.items()}, **names}
    with atomic_folder(out, overwrite, owned=_is_dataset) as tmp:
        for split, members in splits.items():
            write_text_split(tmp, split, [rows[i].text for i in members], [rows[i].labels for i in members], gz=False,
                             collapse=False)  # the texts were made one line each above
            if spec.id_field:
                (tmp / f"{split}_ids.txt").write_text("".join(rows[i].id + "\n" for i in members), encoding="utf-8")
            report.split_sizes[split] = len(members)
        if names:
            (tmp / TSV_NAME).write_text("".join(f"{k}\t{v}\n" for k, v in sorted(names.items())), encoding="utf-8")
    report.kept = len(rows)
    report.n_labels = len({lab for row in rows for lab in row.labels})
    report.seconds = time.perf_counter() - started
    return report


def _check_spec(spec: ImportSpec) -> None:
    if not spec.text_fields or any(not f for f in spec.text_fields):
        raise XMCError("--text-field needs at least one field name")
    if spec.split_field is None:
        if len(spec.fractions) not in (2, 3) or any(f < 0 for f in spec.fractions) \
                or not np.isclose(sum(spec.fractions), 1.0) or spec.fractions[0] <= 0:
            raise XMCError(f"--split takes 2 or 3 fractions (train,dev[,test]) that add up to 1, got "
                           f"{','.join(map(str, spec.fractions))}")
    if spec.file_format is not None and spec.file_format not in FORMATS:
        raise XMCError(f"--format must be one of {', '.join(FORMATS)}")


def _format_of(path: Path, spec: ImportSpec) -> str:
    if spec.file_format:
        return spec.file_format
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in (".gz", ".bz2", ".zst")]
    kind = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv",
            ".parquet": "parquet", ".pq": "parquet"}.get(suffixes[-1] if suffixes else "")
    if kind is None:
        raise XMCError(f"cannot tell the format of {path.name} from its name; pass --format ({', '.join(FORMATS)})")
    return kind


def _wanted(spec: ImportSpec) -> list[str]:
    return list(dict.fromkeys([*spec.text_fields, spec.labels_field, *filter(None, (spec.id_field,
                                                                                   spec.split_field))]))


def _read_columns(path: Path, kind: str, wanted: list[str]) -> dict[str, list]:
    """``{field: values}`` for the ``wanted`` fields (None where a row lacks one)."""
    try:
        import pyarrow as pa
    except ModuleNotFoundError:
        raise XMCError("xmc data import needs pyarrow: pip install 'xmc[import]'") from None
    try:
        table = _read_table(path, kind, wanted)
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as exc:
        if kind != "jsonl":
            raise DataFormatError(f"{path}: {str(exc).splitlines()[0]}") from None
        return _read_jsonl_by_line(path, wanted)  # finds the line Arrow could not read, or reads a ragged file
    missing = [f for f in wanted if f not in table.column_names]
    if missing:
        raise DataFormatError(f"{path}: no field {', '.join(map(repr, missing))} (fields: "
                              f"{', '.join(table.column_names[:20])})")
    return {f: table.column(f).to_pylist() for f in wanted}


def _read_table(path: Path, kind: str, wanted: list[str]):
    if kind == "parquet":
        import pyarrow.parquet as pq

        present = set(pq.read_schema(path).names)
        return pq.read_table(path, columns=[f for f in wanted if f in present])
    if kind == "jsonl":
        import pyarrow.json as pj

        return pj.read_json(path, read_options=pj.ReadOptions(block_size=16 << 20))
    import pyarrow.csv as pc

    return pc.read_csv(path, parse_options=pc.ParseOptions(delimiter="\t" if kind == "tsv" else ",",
                                                           newlines_in_values=True),
                       convert_options=pc.ConvertOptions(include_columns=wanted, include_missing_columns=True,
                                                         strings_can_be_null=False,
                                                         column_types={f: "string" for f in wanted}))


def _read_jsonl_by_line(path: Path, wanted: list[str]) -> dict[str, list]:
    """The slow, exact reader: one ``json.loads`` a line, each failure named by its line."""
    import json

    from xmc.data.formats import read_lines

    columns: dict[str, list] = {f: [] for f in wanted}
    columns["__line__"] = []
    for line_no, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            record = {"__error__": f"line {line_no}: not JSON ({exc.msg})"}
        if not isinstance(record, dict):
            record = {"__error__": f"line {line_no}: not a JSON object"}
        for f in wanted:
            columns[f].append(record.get(f))
        columns["__line__"].append((line_no, record.get("__error__")))
    return columns


@dataclass
class _Row:
    text: str
    labels: list[str]
    id: str = ""
    split: str | None = None
    label_names: dict[str, str] = field(default_factory=dict)


def _rows(columns: dict[str, list], spec: ImportSpec, report: ImportReport) -> list[_Row]:
    lines = columns.get("__line__")  # (line, error) per record, from the line-by-line reader
    rows = []
    for i in range(report.rows):
        where, error = (f"line {lines[i][0]}", lines[i][1]) if lines else (f"record {i + 1}", None)
        try:
            if error:
                raise DataFormatError(error)
            rows.append(_row(columns, i, spec, where))
        except DataFormatError as exc:
            if not spec.skip_bad:
                raise DataFormatError(f"{exc} (--skip-bad leaves such rows out)") from None
            report.bad += 1
            if len(report.bad_examples) < SHOWN_BAD_ROWS:
                report.bad_examples.append(str(exc))
    if not rows:
        raise DataFormatError("no row could be imported")
    return rows


def _row(columns: dict[str, list], i: int, spec: ImportSpec, where: str) -> _Row:
    parts = []
    for f in spec.text_fields:
        value = columns[f][i]
        if value is not None and not isinstance(value, str):
            raise DataFormatError(f"{where}: field {f!r} is a {type(value).__name__}, not text")
        parts.append(value or "")
    text = one_line(" ".join(parts) if len(parts) > 1 else parts[0])
    if not text:
        raise DataFormatError(f"{where}: no text in {', '.join(map(repr, spec.text_fields))}")
    labels, names = _labels(columns[spec.labels_field][i], spec, where)
    row = _Row(text, labels, label_names=names)
    if spec.id_field:
        value = columns[spec.id_field][i]
        row.id = " ".join(str(value).split()) if value is not None else ""
    if spec.split_field:
        value = columns[spec.split_field][i]
        if not isinstance(value, str) or not SPLIT_NAME.match(value):
            raise DataFormatError(f"{where}: field {spec.split_field!r} must name a split (letters and digits), "
                                  f"got {value!r}")
        row.split = value
    return row


def one_line(text: str) -> str:
    """``text`` on one line with single spaces (``" ".join(text.split())``). Most texts already are:
    every whitespace character but the space is unprintable, so a printable text without a double,
    leading or trailing space is returned as it is, after three scans in C instead of a list of its
    words (measured: str.split beats Arrow's RE2 replace, 22 s a GB, by 3x; the check beats both)."""
    if text.isprintable() and "  " not in text and not text.startswith(" ") and not text.endswith(" "):
        return text
    return " ".join(text.split())


def _labels(value, spec: ImportSpec, where: str) -> tuple[list[str], dict[str, str]]:
    if value is None:
        raise DataFormatError(f"{where}: no field {spec.labels_field!r}")
    if isinstance(value, str):
        if spec.label_sep is None and value.startswith("["):
            raise DataFormatError(f"{where}: field {spec.labels_field!r} is a string that looks like a list; "
                                  "CSV holds text only: give --label-sep (e.g. '|') and write labels as a|b")
        items = value.split(spec.label_sep) if spec.label_sep is not None else value.split()
    elif isinstance(value, list):
        items = value
    elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        items = [value]
    else:
        raise DataFormatError(f"{where}: field {spec.labels_field!r} must be a list of labels or a string, "
                              f"got a {type(value).__name__}")
    labels, names = [], {}
    for item in items:
        if type(item) is str and item.isprintable() and item and " " not in item:
            labels.append(item)  # already a token: the common case, without the split and joins below
            continue
        if isinstance(item, bool) or not isinstance(item, (str, int, np.integer)):
            raise DataFormatError(f"{where}: a label in {spec.labels_field!r} is a {type(item).__name__}")
        name = one_line(str(item))
        if not name:
            continue
        token = name.replace(" ", "_")
        if token != name:
            names[token] = name
        labels.append(token)
    return list(dict.fromkeys(labels)), names


def _assign_splits(rows: list[_Row], spec: ImportSpec) -> dict[str, list[int]]:
    if spec.split_field:
        splits: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            splits.setdefault(row.split, []).append(i)
        if "train" not in splits:
            raise DataFormatError(f"no row has the split 'train' in {spec.split_field!r} (found: "
                                  f"{', '.join(sorted(splits))})")
        return splits
    order = np.random.default_rng(spec.seed).permutation(len(rows))
    cuts = np.round(np.cumsum(spec.fractions)[:-1] * len(rows)).astype(int)
    parts = np.split(order, cuts)
    return {name: sorted(part.tolist()) for name, part in zip(DEFAULT_SPLITS, parts, strict=False) if part.size}


def _is_dataset(folder: Path) -> bool:
    return any(folder.glob("*_texts.txt*"))
