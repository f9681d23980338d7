"""Strict decoding of TOML data against the Structs of model.py, collecting every problem.

msgspec's own decoder stops at the first error; an admin fixing a config wants them all at once,
each with its dotted path. So this walks the field types itself (the annotations msgspec keeps in
`msgspec.structs.fields`), and on a bad value records a problem and carries on: an optional field
falls back to its default, a struct missing a required key becomes None in its list (so the
indexes of its siblings, and the paths that name them, stay right). A Config with such holes never
leaves the loader: any problem raises ConfigError.
"""

from __future__ import annotations

import datetime
import difflib
import math
import re
import types
import typing
from typing import Any, Callable, Literal

import msgspec
from msgspec import Meta

from wasp.config.model import Duration, Size
from wasp.config.units import parse_duration, parse_size


class _Invalid:
    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()

# (struct class, field name) -> check(value, path, add) run on a decoded value; see validate.py.
FieldCheck = Callable[[Any, str, Callable[[str, str], None]], None]


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def kind(value: Any) -> str:
    """The TOML name of a decoded value's type, for messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime.datetime):
        return "a date-time"
    if isinstance(value, datetime.date):
        return "a date"
    if isinstance(value, datetime.time):
        return "a time"
    return type(value).__name__


def describe(tp: Any) -> str:
    """A type as the docs and messages name it."""
    base, meta = unwrap(tp)
    origin = typing.get_origin(base)
    if origin is Literal:
        return "one of " + ", ".join(_show(v) for v in typing.get_args(base))
    if isinstance(base, type) and issubclass(base, Duration):
        return "a duration (\"90s\", \"20m\", \"29h\", \"250ms\" or seconds)"
    if isinstance(base, type) and issubclass(base, Size):
        return "a size (\"512MB\", \"64KiB\" or bytes)"
    if base is bool:
        return "a boolean"
    if base is int:
        return "an integer"
    if base is float:
        return "a number"
    if base is str:
        return "a string"
    if origin is list or base is list:
        args = typing.get_args(base)
        return f"an array of {_plural(args[0])}" if args else "an array"
    if origin is dict or base is dict:
        args = typing.get_args(base)
        return f"a table of {_plural(args[1])}" if args else "a table"
    if isinstance(base, type) and issubclass(base, msgspec.Struct):
        return "a table"
    return str(base)


def _plural(tp: Any) -> str:
    text = describe(tp)
    for article in ("an ", "a "):
        if text.startswith(article):
            text = text[len(article):]
            break
    return text if text.endswith("s") or "(" in text else text + "s"


def _show(value: Any) -> str:
    return f"\"{value}\"" if isinstance(value, str) else repr(value)


def unwrap(tp: Any) -> tuple[Any, list[Meta]]:
    """Annotated[T, Meta(...)] -> (T, [Meta...]); any other type -> (tp, [])."""
    metas: list[Meta] = []
    while typing.get_origin(tp) is typing.Annotated:
        metas.extend(m for m in tp.__metadata__ if isinstance(m, Meta))
        tp = tp.__origin__
    return tp, metas


class Decoder:
    """One decoding run: `problems` collects (path, message) in the order found."""

    def __init__(self, checks: dict[tuple[type, str], FieldCheck] | None = None):
        self.problems: list[tuple[str, str]] = []
        self.checks = checks or {}

    def add(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def struct(self, raw: Any, cls: type, path: str, *, exclude: dict[str, str | None] | None = None,
               partial: bool = False) -> Any:
        """Decode a table into `cls`. `exclude` names fields the file may not set (with a reason);
        `partial` checks what is there without requiring anything and returns the decoded dict."""
        if not isinstance(raw, dict):
            self.add(path, f"expected a table, got {kind(raw)}")
            return INVALID
        exclude = exclude or {}
        fields = {f.encode_name: f for f in msgspec.structs.fields(cls) if f.name not in exclude}
        for key in raw:
            if key in fields:
                continue
            if key in exclude and exclude[key]:
                self.add(join(path, key), exclude[key])
                continue
            hint = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.7)
            self.add(join(path, key), "unknown key" + (f"; did you mean \"{hint[0]}\"?" if hint else ""))
        values: dict[str, Any] = {}
        complete = True
        for name, info in fields.items():
            key_path = join(path, name)
            if name not in raw:
                if info.required and not partial:
                    self.add(key_path, f"required key is missing ({describe(info.type)})")
                    complete = False
                continue
            value = self.value(raw[name], info.type, key_path)
            if value is INVALID:
                complete = complete and not info.required
                continue
            check = self.checks.get((cls, info.name))
            if check is not None:
                check(value, key_path, self.add)
            values[info.name] = value
        if partial:
            return values
        if not complete:
            return INVALID
        value = cls(**values)
        whole = self.checks.get((cls, None))  # keys that go together
        if whole is not None:
            whole(value, path, self.add)
        return value

    def value(self, raw: Any, tp: Any, path: str) -> Any:
        base, metas = unwrap(tp)
        value = self._typed(raw, base, path)
        if value is not INVALID and metas and not self._within(value, raw, metas, path):
            return INVALID
        return value

    def _typed(self, raw: Any, tp: Any, path: str) -> Any:
        origin = typing.get_origin(tp)
        if tp is Any or tp is object:
            return raw
        if origin is Literal:
            allowed = typing.get_args(tp)
            if any(type(raw) is type(a) and raw == a for a in allowed):
                return raw
            self.add(path, f"{_show(raw)} is not allowed; expected one of {', '.join(_show(a) for a in allowed)}")
            return INVALID
        if origin is typing.Union or origin is types.UnionType:
            return self._union(raw, typing.get_args(tp), path)
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            return self.struct(raw, tp, path)
        if tp is list or origin is list:
            if not isinstance(raw, list):
                return self._wrong(raw, tp, path)
            (item_tp,) = typing.get_args(tp) or (Any,)
            items = [self.value(item, item_tp, join(path, i)) for i, item in enumerate(raw)]
            if any(item is INVALID for item in items):
                # A struct item stays in place as None so the validator can skip it by index.
                if isinstance(item_tp, type) and issubclass(item_tp, msgspec.Struct):
                    return [None if item is INVALID else item for item in items]
                return INVALID
            return items
        if tp is dict or origin is dict:
            if not isinstance(raw, dict):
                return self._wrong(raw, tp, path)
            key_tp, item_tp = typing.get_args(tp) or (Any, Any)
            items = {key: self.value(item, item_tp, join(path, key)) for key, item in raw.items()}
            return INVALID if any(item is INVALID for item in items.values()) else items
        if isinstance(tp, type) and issubclass(tp, Duration):
            if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
                return self._wrong(raw, tp, path)
            try:
                return tp(parse_duration(raw))
            except ValueError as exc:
                self.add(path, str(exc))
                return INVALID
        if isinstance(tp, type) and issubclass(tp, Size):
            if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
                return self._wrong(raw, tp, path)
            try:
                return tp(parse_size(raw))
            except ValueError as exc:
                self.add(path, str(exc))
                return INVALID
        if tp is bool:
            return raw if isinstance(raw, bool) else self._wrong(raw, tp, path)
        if tp is int:
            return raw if isinstance(raw, int) and not isinstance(raw, bool) else self._wrong(raw, tp, path)
        if tp is float:
            if isinstance(raw, (int, float)) and not isinstance(raw, bool) and math.isfinite(raw):
                return float(raw)
            return self._wrong(raw, tp, path)
        if tp is str:
            return raw if isinstance(raw, str) else self._wrong(raw, tp, path)
        # A type model.py gains later that this walker does not know: let msgspec judge it.
        try:
            return msgspec.convert(raw, tp, strict=True)
        except msgspec.ValidationError as exc:
            self.add(path, str(exc))
            return INVALID

    def _union(self, raw: Any, members: tuple, path: str) -> Any:
        choices = [m for m in members if m is not type(None)]
        for member in choices:
            trial = Decoder(self.checks)
            value = trial.value(raw, member, path)
            if value is not INVALID and not trial.problems:
                return value
        if len(choices) == 1:
            return self.value(raw, choices[0], path)
        tables = [m for m in choices if isinstance(unwrap(m)[0], type) and issubclass(unwrap(m)[0], msgspec.Struct)]
        if isinstance(raw, dict) and len(tables) == 1:
            return self.value(raw, tables[0], path)  # a table can only be that one: say what is wrong in it
        self.add(path, f"expected {' or '.join(describe(m) for m in choices)}, got {kind(raw)}")
        return INVALID

    def _wrong(self, raw: Any, tp: Any, path: str) -> Any:
        hint = ""
        if isinstance(raw, datetime.time):
            hint = "; write it in quotes"
        self.add(path, f"expected {describe(tp)}, got {kind(raw)}{hint}")
        return INVALID

    def _within(self, value: Any, raw: Any, metas: list[Meta], path: str) -> bool:
        shown = raw if isinstance(raw, str) else value
        for meta in metas:
            low = meta.ge if meta.ge is not None else meta.gt
            high = meta.le if meta.le is not None else meta.lt
            too_low = (meta.ge is not None and value < meta.ge) or (meta.gt is not None and value <= meta.gt)
            too_high = (meta.le is not None and value > meta.le) or (meta.lt is not None and value >= meta.lt)
            if too_low or too_high:
                self.add(path, f"{_show(shown)} is out of range; {_range_text(meta, low, high)}")
                return False
            if meta.min_length is not None and len(value) < meta.min_length:
                self.add(path, f"must have at least {meta.min_length} item(s) or character(s)")
                return False
            if meta.max_length is not None and len(value) > meta.max_length:
                self.add(path, f"must have at most {meta.max_length} item(s) or character(s)")
                return False
            if meta.pattern is not None and not re.search(meta.pattern, value):
                self.add(path, f"{_show(value)} does not match {meta.pattern!r}")
                return False
        return True


def _range_text(meta: Meta, low: Any, high: Any) -> str:
    if meta.ge is not None and meta.le is not None:
        return f"allowed: {meta.ge} to {meta.le}"
    parts = []
    if low is not None:
        parts.append(f"{'at least' if meta.ge is not None else 'more than'} {low}")
    if high is not None:
        parts.append(f"{'at most' if meta.le is not None else 'less than'} {high}")
    return "must be " + " and ".join(parts)
