"""Frozen, keyword-only configuration dataclasses with a constraint table.

Each building block declares its config as a subclass of :class:`Config`. Every field carries
its help text and constraint in ``field(metadata=...)`` (use :func:`option`), so validation,
error messages, CLI help and JSON round trips all come from one place.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from xmc.exceptions import InvalidConfigError


@dataclass(frozen=True)
class Interval:
    """A numeric range; ``kind`` is int or float."""

    kind: type
    low: float | None = None
    high: float | None = None
    closed: str = "both"  # which ends are included: both, left, right, neither

    def ok(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if isinstance(value, float) and math.isnan(value):
            return False
        lo_ok = self.low is None or (value >= self.low if self.closed in ("both", "left") else value > self.low)
        hi_ok = self.high is None or (value <= self.high if self.closed in ("both", "right") else value < self.high)
        return lo_ok and hi_ok

    def describe(self) -> str:
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        lo = "-inf" if self.low is None else self.low
        hi = "inf" if self.high is None else self.high
        return f"{'an int' if self.kind is int else 'a float'} in the range {left}{lo}, {hi}{right}"


@dataclass(frozen=True)
class Options:
    """One of a fixed set of values."""

    values: tuple

    def ok(self, value: Any) -> bool:
        return value in self.values

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


def option(default: Any, help: str, check: Interval | Options | None = None) -> Any:  # noqa: A002
    """A config field with its help text and constraint."""
    meta = {"help": help, "check": check}
    if isinstance(default, (list, dict, set)):
        raise TypeError("config defaults must be immutable; use a tuple")
    return field(default=default, metadata=meta)


@dataclass(frozen=True, kw_only=True)
class Config:
    """Base of every config: typed and validated on creation, JSON round trip, dotted overrides."""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            value = _coerce(getattr(self, f.name), hints.get(f.name), f.name, type(self).__name__)
            object.__setattr__(self, f.name, value)
            check = f.metadata.get("check")
            values = value if isinstance(value, tuple) and isinstance(check, Interval) else (value,)
            # a numeric sequence needs at least one value (e.g. one per tree level, the last repeating),
            # unless its default is empty (an optional list)
            if check is not None and not ((values or f.default == ()) and all(check.ok(v) for v in values)):
                raise InvalidConfigError(
                    f"The '{f.name}' parameter of {type(self).__name__} must be {check.describe()}. "
                    f"Got {value!r} instead."
                )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if isinstance(value, Config) else _plain(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        if not isinstance(data, dict):
            raise InvalidConfigError(f"{cls.__name__} must be given as a JSON object, not {type(data).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise InvalidConfigError(
                f"{cls.__name__} has no parameter {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(sorted(known))}"
            )
        hints = _hints(cls)
        kwargs = {}
        for name, value in data.items():
            sub = _config_class(hints.get(name))
            kwargs[name] = sub.from_dict(value) if sub is not None and isinstance(value, dict) else value
        return cls(**kwargs)

    def to_dict_without(self, *paths: str) -> dict[str, Any]:
        """:meth:`to_dict` without the settings at ``paths`` (``"encoder.name"``, ``"predict"``): what
        a checkpoint's fingerprint keeps, the settings that change the weights."""
        out = self.to_dict()
        for path in paths:
            *parents, last = path.split(".")
            node = out
            for key in parents:
                node = node[key]
            del node[last]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    def with_overrides(self, assignments: list[str] | tuple[str, ...]) -> Config:
        """Apply ``a.b=value`` strings, each value parsed strictly as its field's type: booleans as
        true/false (also 1/0, yes/no, on/off), ints, floats, lists as ``[1,2]`` or ``1,2``."""
        data = self.to_dict()
        for item in assignments:
            if "=" not in item:
                raise InvalidConfigError(f"--set expects key=value, got {item!r}")
            key, raw = item.split("=", 1)
            node, cls = data, type(self)
            parts = key.strip().split(".")
            for part in parts[:-1]:
                sub = _config_class(_hints(cls).get(part))
                if sub is None or not isinstance(node.get(part), dict):
                    raise InvalidConfigError(f"unknown config section {part!r} in {key!r}")
                node, cls = node[part], sub
            name = parts[-1]
            hint = _hints(cls).get(name)
            if name not in node or hint is None:
                raise InvalidConfigError(f"unknown config key {key!r}; see `xmc config` for the keys")
            if _config_class(hint) is not None:
                raise InvalidConfigError(f"{key!r} is a section; set one of its keys, e.g. {key}.<name>=...")
            node[name] = parse_as(raw.strip(), hint, f"--set {key}")
        return type(self).from_dict(data)

    @classmethod
    def help_rows(cls, prefix: str = "") -> list[tuple[str, Any, str]]:
        """(dotted name, default, help) for every field, nested configs expanded."""
        rows = []
        hints = _hints(cls)
        for f in dataclasses.fields(cls):
            sub = _config_class(hints.get(f.name))
            if sub is not None:
                rows += sub.help_rows(prefix + f.name + ".")
            else:
                default = f.default if f.default is not dataclasses.MISSING else None
                rows.append((prefix + f.name, default, f.metadata.get("help", "")))
        return rows


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _members(hint: Any) -> tuple:
    """The alternatives of ``A | B`` (or ``Optional``), else ``(hint,)``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def _config_class(hint: Any) -> type[Config] | None:
    for c in _members(hint):
        if isinstance(c, type) and issubclass(c, Config):
            return c
    return None


def _describe(hint: Any) -> str:
    names = []
    for member in _members(hint):
        if typing.get_origin(member) is tuple:
            names.append(f"a list of {_describe(typing.get_args(member)[0])}")
        elif member is type(None):
            names.append("null")
        else:
            names.append(getattr(member, "__name__", str(member)))
    return " or ".join(names)


def _coerce(value: Any, hint: Any, name: str, owner: str) -> Any:
    """``value`` as the field's type (JSON lists become tuples, ints become floats for float
    fields); :class:`InvalidConfigError` when it is of another type (a string for a bool, ...)."""
    if hint is None or hint is Any:
        return value
    for member in _members(hint):
        ok, out = _as_type(value, member)
        if ok:
            return out
    raise InvalidConfigError(f"The '{name}' parameter of {owner} must be {_describe(hint)}. Got {value!r} instead.")


def _as_type(value: Any, member: Any) -> tuple[bool, Any]:
    if member is type(None):
        return value is None, None
    if typing.get_origin(member) is tuple:
        if not isinstance(value, (list, tuple)):
            return False, None
        inner = typing.get_args(member)[0]
        items = [_as_type(v, inner) for v in value]
        return all(ok for ok, _ in items), tuple(v for _, v in items)
    if isinstance(member, type) and issubclass(member, Config):
        return isinstance(value, member), value
    if member is bool:
        return isinstance(value, bool), value
    if isinstance(value, bool):
        return False, None
    if member is int:
        return isinstance(value, int), value
    if member is float:
        return isinstance(value, (int, float)), float(value) if isinstance(value, (int, float)) else None
    if member is str:
        return isinstance(value, str), value
    return True, value


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def parse_as(raw: str, hint: Any, what: str) -> Any:
    """``raw`` (a command-line string) parsed as a value of ``hint``; an error naming ``what``."""
    errors = []
    members = _members(hint)
    # a list-looking value goes to the sequence alternative first, a scalar one to the scalars
    listy = raw.startswith("[") or "," in raw
    ordered = sorted(members, key=lambda m: (typing.get_origin(m) is tuple) != listy)
    for member in ordered:
        try:
            return _parse_one(raw, member)
        except ValueError as exc:
            errors.append(str(exc))
    raise InvalidConfigError(f"{what}: cannot read {raw!r} as {_describe(hint)} ({'; '.join(errors)})")


def _parse_one(raw: str, member: Any) -> Any:
    if member is type(None):
        if raw.lower() in ("null", "none"):
            return None
        raise ValueError("not null")
    if typing.get_origin(member) is tuple:
        inner = typing.get_args(member)[0]
        if raw.startswith("["):
            try:
                items = json.loads(raw)
            except json.JSONDecodeError:
                raise ValueError("not a JSON list") from None
            if not isinstance(items, list):
                raise ValueError("not a list")
            return tuple(_parse_one(json.dumps(v) if not isinstance(v, str) else v, inner) for v in items)
        return tuple(_parse_one(part.strip(), inner) for part in raw.split(",") if part.strip())
    if member is bool:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ValueError("expected true or false")
    if member is int:
        if not re.fullmatch(r"[+-]?\d[\d_]*", raw):
            raise ValueError("not an int")
        return int(raw)
    if member is float:
        try:
            return float(raw)
        except ValueError:
            raise ValueError("not a number") from None
    if member is str:
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            try:
                return json.loads(raw)
            except json.JSONDecodeError:
                pass
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value
