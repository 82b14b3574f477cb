"""The Extreme Classification Repository's bag-of-words format, read in one numba pass.

A file is a header ``N D L`` and then one line per point, ``l1,l2,... f:v f:v ...`` (0-based
label and feature indices; a point without labels starts with a space or directly with ``f:v``).
The reader parses the raw bytes with no Python work per token and checks the data against its
header: exactly ``N`` points, every label below ``L``, every feature below ``D``, finite values.
Numbers are converted exactly as ``float(text)`` would (the rare values outside the exact fast
path are handed to Python), so the result is bit-identical to a line-by-line reader's.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numba as nb
import numpy as np
import scipy.sparse as sp

from xmc.exceptions import DataFormatError

# error codes of the kernel, turned into messages by _raise
_OK, _BAD_LABEL, _BAD_FEATURE, _MALFORMED, _TOO_MANY, _TOO_FEW, _NOT_FINITE = range(7)
_POW10 = np.array([10.0**i for i in range(23)])  # exact in binary64, so one product or quotient rounds once
_MAX_INDEX = 2**31 - 1


@nb.njit(cache=True, inline="always")
def _is_space(c):
    return c == 32 or c == 9 or c == 13


@nb.njit(cache=True)
def _parse_int(buf, pos, end):
    """``(value, next position)``; value -1 when no digit starts at ``pos`` or it overflows."""
    value = 0
    start = pos
    while pos < end and 48 <= buf[pos] <= 57:
        value = value * 10 + (buf[pos] - 48)
        if value > _MAX_INDEX:
            return -1, pos
        pos += 1
    return (value if pos > start else -1), pos


@nb.njit(cache=True)
def _parse_float(buf, pos, end, pow10):
    """``(value, next position, status)``: status 0 exact, 1 valid but left to Python (too many
    digits or a large exponent), 2 malformed."""
    negative = False
    if pos < end and (buf[pos] == 45 or buf[pos] == 43):
        negative = buf[pos] == 45
        pos += 1
    mantissa = np.uint64(0)
    digits = 0  # significant digits kept in the mantissa
    seen = 0
    exp10 = 0
    while pos < end and 48 <= buf[pos] <= 57:
        seen += 1
        if digits or buf[pos] != 48:
            if digits < 19:
                mantissa = mantissa * np.uint64(10) + np.uint64(buf[pos] - 48)
            else:
                exp10 += 1
            digits += 1
        pos += 1
    if pos < end and buf[pos] == 46:
        pos += 1
        while pos < end and 48 <= buf[pos] <= 57:
            seen += 1
            if digits or buf[pos] != 48:
                if digits < 19:
                    mantissa = mantissa * np.uint64(10) + np.uint64(buf[pos] - 48)
                    exp10 -= 1
                digits += 1
            else:
                exp10 -= 1
            pos += 1
    if seen == 0:
        return 0.0, pos, 2
    if pos < end and (buf[pos] == 101 or buf[pos] == 69):
        pos += 1
        sign = 1
        if pos < end and (buf[pos] == 45 or buf[pos] == 43):
            sign = -1 if buf[pos] == 45 else 1
            pos += 1
        e, pos2 = _parse_int(buf, pos, end)
        if e < 0:
            return 0.0, pos2, 2
        pos = pos2
        exp10 += sign * e
    if digits > 15 or exp10 > 22 or exp10 < -22:
        return 0.0, pos, 1
    value = float(mantissa)
    value = value * pow10[exp10] if exp10 >= 0 else value / pow10[-exp10]
    return (-value if negative else value), pos, 0


@nb.njit(cache=True)
def _parse_body(buf, pos, n_points, n_features, n_labels, max_feats, max_labels, pow10):
    x_ptr = np.zeros(n_points + 1, np.int64)
    y_ptr = np.zeros(n_points + 1, np.int64)
    x_idx = np.empty(max_feats, np.int32)
    x_val = np.empty(max_feats, np.float64)
    y_idx = np.empty(max_labels, np.int32)
    slow = np.empty(3 * max_feats, np.int64)  # value positions left to Python: (entry, start, end) triples
    n_slow = 0
    nx = 0
    ny = 0
    end_all = buf.size
    row = 0
    while pos < end_all:
        eol = pos
        while eol < end_all and buf[eol] != 10:
            eol += 1
        if row == n_points:
            return _TOO_MANY, row, x_ptr, x_idx, x_val, y_ptr, y_idx, slow[: 3 * n_slow]
        p = pos
        # the label list: the first token, unless it already holds a feature (no ':' before a space)
        first_colon = False
        q = p
        while q < eol and not _is_space(buf[q]):
            if buf[q] == 58:
                first_colon = True
                break
            q += 1
        if not first_colon:
            while p < eol and not _is_space(buf[p]):
                if buf[p] == 44:  # empty entries of a label list (",1,,2,") are skipped
                    p += 1
                    continue
                value, p = _parse_int(buf, p, eol)
                if value < 0 or (p < eol and buf[p] != 44 and not _is_space(buf[p])):
                    return _MALFORMED, row, x_ptr, x_idx, x_val, y_ptr, y_idx, slow[: 3 * n_slow]
                if value >= n_labels:
                    return _BAD_LABEL, row, x_ptr, x_idx, x_val, y_ptr, y_idx, slow[: 3 * n_slow]
                y_idx[ny] = value
                ny += 1
        while True:
            while p < eol and _is_space(buf[p]):
                p += 1
            if p >= eol:
                break
            feature, p = _parse_int(buf, p, eol)
            if feature < 0 or p >= eol or buf[p] != 58:
                return _MALFORMED, row, x_ptr, x_idx, x_val, y_ptr, y_idx, slow[: 3 * n_slow]
            if feature >= n_features:
                return _BAD_FEATURE, row, x_ptr, x_idx, x_val, y_ptr, y_idx, slow[: 3 * n_slow]
            start = p + 1
            value, p, status = _parse_float(buf, start, eol, pow10)
            if status == 2 or (p < eol and not _is_space(buf[p])):
                return _MALFORMED, row, x_ptr, x_idx, x_val, y_ptr, y_idx, slow[: 3 * n_slow]
            if status == 1:
                slow[3 * n_slow] = nx
                slow[3 * n_slow + 1] = start
                slow[3 * n_slow + 2] = p
                n_slow += 1
            x_idx[nx] = feature
            x_val[nx] = value
            nx += 1
        row += 1
        x_ptr[row] = nx
        y_ptr[row] = ny
        pos = eol + 1
    status = _OK if row == n_points else _TOO_FEW
    return status, row, x_ptr, x_idx[:nx], x_val[:nx], y_ptr, y_idx[:ny], slow[: 3 * n_slow]


def read_bytes(path: str | os.PathLike) -> bytes:
    """A file's bytes, gunzipped when it ends in ``.gz``; damage is a :class:`DataFormatError`."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFormatError(f"{path}: cannot read ({exc})") from None


def read_bow(path: str | os.PathLike) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Features ``X`` (N x D, float32) and labels ``Y`` (N x L, 0/1) from an XC-repository file."""
    data = read_bytes(path)
    newline = data.find(b"\n")
    header_bytes = data if newline < 0 else data[:newline]
    try:
        header = header_bytes.decode("ascii").split()
    except UnicodeDecodeError:
        header = []
    if len(header) != 3 or not all(h.isdigit() and len(h) < 12 for h in header):
        shown = header_bytes[:80].decode("utf-8", "replace")
        raise DataFormatError(f"{path}:1: header must be three integers 'N D L', got {shown!r}")
    n, d, n_labels = map(int, header)
    if max(n, d, n_labels) > _MAX_INDEX:
        raise DataFormatError(f"{path}:1: header {n} {d} {n_labels} exceeds the supported size (2^31 - 1)")
    buf = np.frombuffer(data, dtype=np.uint8)
    start = len(header_bytes) + 1 if newline >= 0 else buf.size
    max_feats = int(np.count_nonzero(buf[start:] == 58))
    max_labels = int(np.count_nonzero(buf[start:] == 44)) + n
    status, row, x_ptr, x_idx, x_val, y_ptr, y_idx, slow = _parse_body(
        buf, start, n, d, n_labels, max_feats, max_labels, _POW10)
    if status != _OK:
        _raise(path, status, row, n, d, n_labels, data, start)
    for entry, lo, hi in slow.reshape(-1, 3):
        x_val[entry] = float(data[lo:hi])
    X = sp.csr_matrix((x_val, x_idx, x_ptr), shape=(n, d))
    X.sum_duplicates()  # a feature listed twice on a line: its values add up (in float64, rounded once)
    with np.errstate(over="ignore"):  # values beyond float32 become inf and are reported just below
        X = X.astype(np.float32)
    if X.nnz and not np.all(np.isfinite(X.data)):
        bad = int(np.searchsorted(X.indptr, np.flatnonzero(~np.isfinite(X.data))[0], "right"))
        raise DataFormatError(f"{path}:{bad + 1}: a feature value is not a finite float32 number")
    Y = sp.csr_matrix((np.ones(y_idx.size, np.float32), y_idx, y_ptr), shape=(n, n_labels))
    Y.sum_duplicates()
    Y.data[:] = 1.0
    return X, Y


def _raise(path, status, row, n, d, n_labels, data, start) -> None:
    line_no = row + 2  # the header is line 1
    if status == _TOO_MANY:
        raise DataFormatError(f"{path}: header says {n} points but the file has more lines")
    if status == _TOO_FEW:
        raise DataFormatError(f"{path}: header says {n} points but the file has {row}")
    lines = data[start:].split(b"\n", row + 1)
    line = lines[row].decode("utf-8", "replace") if row < len(lines) else ""
    shown = line[:80]
    if status == _BAD_LABEL:
        bad = _first_at_least(line.split()[0].split(","), n_labels)
        raise DataFormatError(f"{path}:{line_no}: label index {bad} outside [0, {n_labels})")
    if status == _BAD_FEATURE:
        bad = _first_at_least([tok.split(":")[0] for tok in line.split() if ":" in tok], d)
        raise DataFormatError(f"{path}:{line_no}: feature index {bad} outside [0, {d})")
    raise DataFormatError(f"{path}:{line_no}: malformed line, expected 'l1,l2 f:v f:v ...': {shown!r}")


def _first_at_least(tokens: list[str], limit: int) -> str:
    """The first decimal token >= ``limit`` (for an error message; the line is already known bad)."""
    return next((t for t in tokens if t.isdigit() and int(t) >= limit), "?")


def write_bow(path: str | os.PathLike, X: sp.csr_matrix, Y: sp.csr_matrix) -> None:
    from xmc.utils.io import open_text

    X, Y = sp.csr_matrix(X), sp.csr_matrix(Y)
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but Y has {Y.shape[0]}")
    with open_text(path, "wt") as f:
        f.write(f"{X.shape[0]} {X.shape[1]} {Y.shape[1]}\n")
        for i in range(X.shape[0]):
            labs = ",".join(str(j) for j in Y.indices[Y.indptr[i] : Y.indptr[i + 1]])
            lo, hi = X.indptr[i], X.indptr[i + 1]
            feats = " ".join(f"{j}:{v:.6g}" for j, v in zip(X.indices[lo:hi], X.data[lo:hi], strict=True))
            f.write(f"{labs} {feats}".rstrip() + "\n" if feats else f"{labs}\n")
