"""Fault injection for the crash tests and the robustness benchmark.

With ``XMC_KILL_AT=<point>[@<n>]`` in the environment, the process sends itself ``SIGKILL`` (the
signal ``kill -9`` sends) the n-th time (default: the first) it passes :func:`kill_point` with that
name. It lets a test stop ``xmc train`` at a chosen instant, during fitting or in the middle of a
save, and then check what a second run makes of what was left. Without the variable a kill point
costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "XMC_KILL_AT"
_passes: dict[str, int] = {}


def kill_point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, _, nth = spec.partition("@")
    if point != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] == (int(nth) if nth.isdigit() else 1):
        os.kill(os.getpid(), signal.SIGKILL)


# --- Damage for the fuzz tests and the robustness benchmark: what a disk, a transfer or a careless
# edit does to a file. Each function is deterministic given its arguments (``rng`` included).

BYTE_DAMAGES = ("truncate", "flip", "nul", "latin1", "utf16", "bom", "crlf", "drop_line", "dup_line", "random",
                "empty", "long_line", "gzip_garbage")


def damage_bytes(data: bytes, kind: str, rng) -> bytes:
    """``data`` damaged one way (``kind`` from :data:`BYTE_DAMAGES`; ``rng`` a NumPy Generator)."""
    n = len(data)
    pos = int(rng.integers(0, n + 1))
    if kind == "truncate":
        return data[:pos]
    if kind == "flip":
        junk = rng.integers(0, 256, size=int(rng.integers(1, 5)), dtype="uint8").tobytes()
        return data[:pos] + junk + data[pos + len(junk):]
    if kind == "nul":
        return data[:pos] + b"\x00" + data[pos:]
    if kind == "latin1":
        return data.decode("utf-8", "replace").replace("\ufffd", "?").encode("latin-1", "replace") + "é\n".encode(
            "latin-1")
    if kind == "utf16":
        return data.decode("utf-8", "replace").encode("utf-16")
    if kind == "bom":
        return b"\xef\xbb\xbf" + data
    if kind == "crlf":
        return data.replace(b"\n", b"\r\n")
    lines = data.split(b"\n")
    if kind == "drop_line" and len(lines) > 1:
        del lines[int(rng.integers(0, len(lines) - 1))]
        return b"\n".join(lines)
    if kind == "dup_line" and lines:
        i = int(rng.integers(0, len(lines)))
        lines.insert(i, lines[i])
        return b"\n".join(lines)
    if kind == "random":
        return rng.integers(0, 256, size=int(rng.integers(0, 200)), dtype="uint8").tobytes()
    if kind == "empty":
        return b""
    if kind == "long_line":
        return data[:pos] + b"x" * 1_000_000 + data[pos:]
    if kind == "gzip_garbage":
        return b"\x1f\x8b\x08\x00" + data[:pos]
    return data


def damage_json(text: str, key_path: list[int], value) -> str:
    """The JSON document ``text`` with the value at a key path replaced (each step picks a key or an
    item by position, modulo their number); an unreadable document is replaced whole."""
    import json

    try:
        doc = json.loads(text)
    except ValueError:
        return json.dumps(value)
    return json.dumps(_set_path(doc, key_path, value))


def _set_path(obj, path, value):
    if not path or not isinstance(obj, (dict, list)) or not obj:
        return value
    keys = list(obj) if isinstance(obj, dict) else list(range(len(obj)))
    key = keys[path[0] % len(keys)]
    obj[key] = _set_path(obj[key], path[1:], value)
    return obj


ARRAY_DAMAGES = ("negative", "huge", "nan", "shape", "dtype", "empty")


def damage_array(a, how: str):
    """A copy of array ``a`` made wrong one way (``how`` from :data:`ARRAY_DAMAGES`)."""
    import numpy as np

    a = a.copy()
    if how == "negative" and a.size and a.dtype.kind in "if":
        a.flat[0] = -1
    elif how == "huge" and a.size and a.dtype.kind in "iuf":
        a = a.astype(np.int64) if a.dtype.kind in "iu" else a
        a.flat[-1] = 2**40 if a.dtype.kind in "iu" else 1e30
    elif how == "nan" and a.dtype.kind == "f" and a.size:
        a.flat[0] = np.nan
    elif how == "shape":
        a = np.concatenate([a.ravel(), a.ravel()[:1]]) if a.size else np.zeros(3)
    elif how == "dtype" and a.dtype.kind in "iuf":
        a = a.astype(np.float64) if a.dtype.kind in "iu" else a.astype(np.int64)
    elif how == "empty":
        a = a[:0]
    return a


def damage_array_file(path, how: str) -> None:
    """One array of an ``.npz`` file, or the array of an ``.npy`` file, made wrong in value, shape or
    type (left alone if unreadable)."""
    import numpy as np

    try:
        if str(path).endswith(".npy"):
            np.save(path, damage_array(np.load(path, allow_pickle=False), how), allow_pickle=False)
            return
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception:  # noqa: BLE001  already damaged by an earlier step: nothing to edit
        return
    if not arrays:
        return
    key = next((k for k in ("indices", "label_freq", "idf", "ids") if k in arrays), sorted(arrays)[0])
    arrays[key] = damage_array(arrays[key], how)
    np.savez(path, **arrays)
