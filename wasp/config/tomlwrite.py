"""A small, careful TOML writer for generated config (`wasp import-iis`).

Writes what tomllib reads back to the same data: tables, arrays of tables (in document order, so
`[[sites]]` then `[[sites.applications]]` nest as TOML says), strings escaped per TOML's basic
string rules (every control character escaped: no value can end its line or start a new key),
keys quoted unless bare. A table may carry comments under the key `COMMENT` (a list of lines),
written above its header; `Duration` values are written as wasp durations ("20m", "90s").
"""

from __future__ import annotations

import math
import re

COMMENT = "\x00comment"

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


class Dur(float):
    """Seconds, written as a wasp duration string."""


def _dur(seconds: float) -> str:
    if seconds == 0:
        return "0s"
    if seconds != int(seconds):
        return f"{round(seconds * 1000)}ms"
    s = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


def key(name: str) -> str:
    return name if _BARE.match(name) else string(name)


def string(value: str) -> str:
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Dur):
        return string(_dur(float(v)))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError("TOML here holds finite numbers only")
        return repr(v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, list):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, dict):
        items = [f"{key(k)} = {value(x)}" for k, x in v.items() if k != COMMENT]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _is_table_array(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _comments(table: dict, out: list[str]) -> None:
    for line in table.get(COMMENT, ()):
        out.append(f"# {line}".rstrip())


def dumps(data: dict, header: list[str] | None = None) -> str:
    out: list[str] = [f"# {line}".rstrip() for line in (header or [])]
    if header:
        out.append("")
    _table(data, [], out, top=True)
    return "\n".join(out).rstrip() + "\n"


def _table(table: dict, path: list[str], out: list[str], top: bool = False) -> None:
    # Plain values first (they belong to this table's header), then sub-tables.
    for k, v in table.items():
        if k == COMMENT or isinstance(v, dict) and v and not _inline(v) or _is_table_array(v):
            continue
        out.append(f"{key(k)} = {value(v)}")
    for k, v in table.items():
        if k == COMMENT:
            continue
        sub = path + [key(k)]
        if isinstance(v, dict) and v and not _inline(v):
            out.append("")
            _comments(v, out)
            out.append(f"[{'.'.join(sub)}]")
            _table(v, sub, out)
        elif _is_table_array(v):
            for item in v:
                out.append("")
                _comments(item, out)
                out.append(f"[[{'.'.join(sub)}]]")
                _table(item, sub, out)


def _inline(v: dict) -> bool:
    """Small leaf tables of strings (environment variables) stay inline; others get a header."""
    return False
