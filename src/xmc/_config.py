"""Frozen, keyword-only configuration dataclasses with a constraint table.

Each building block declares its config as a subclass of :class:`Config`. Every field carries
its help text and constraint in ``field(metadata=...)`` (use :func:`option`), so validation,
error messages, CLI help and JSON round trips all come from one place.
"""

from __future__ import annotations

import dataclasses
import json
import math
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
    """Base of every config: validated on creation, JSON round trip, dotted overrides."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            check = f.metadata.get("check")
            if isinstance(value, list):  # JSON gives lists; configs hold tuples
                object.__setattr__(self, f.name, tuple(value))
                value = tuple(value)
            values = value if isinstance(value, tuple) and isinstance(check, Interval) else (value,)
            # a numeric sequence needs at least one value (e.g. one per tree level, the last repeating)
            if check is not None and not (values and all(check.ok(v) for v in values)):
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
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise InvalidConfigError(
                f"{cls.__name__} has no parameter {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(sorted(known))}"
            )
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for name, value in data.items():
            sub = _config_class(hints.get(name))
            kwargs[name] = sub.from_dict(value) if sub is not None and isinstance(value, dict) else value
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    def with_overrides(self, assignments: list[str] | tuple[str, ...]) -> Config:
        """Apply ``a.b=value`` strings (values parsed as JSON, else kept as strings)."""
        data = self.to_dict()
        for item in assignments:
            if "=" not in item:
                raise InvalidConfigError(f"--set expects key=value, got {item!r}")
            key, raw = item.split("=", 1)
            node = data
            parts = key.strip().split(".")
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    raise InvalidConfigError(f"unknown config section {part!r} in {key!r}")
                node = node[part]
            if parts[-1] not in node:
                raise InvalidConfigError(f"unknown config key {key!r}; see `xmc config` for the keys")
            node[parts[-1]] = _parse_value(raw)
        return type(self).from_dict(data)

    @classmethod
    def help_rows(cls, prefix: str = "") -> list[tuple[str, Any, str]]:
        """(dotted name, default, help) for every field, nested configs expanded."""
        rows = []
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            sub = _config_class(hints.get(f.name))
            if sub is not None:
                rows += sub.help_rows(prefix + f.name + ".")
            else:
                default = f.default if f.default is not dataclasses.MISSING else None
                rows.append((prefix + f.name, default, f.metadata.get("help", "")))
        return rows


def _config_class(hint: Any) -> type[Config] | None:
    candidates = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for c in candidates:
        if isinstance(c, type) and issubclass(c, Config):
            return c
    return None


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw
