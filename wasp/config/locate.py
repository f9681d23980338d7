"""Map a dotted key path ("pools[1].process_model.idle_timeout") to its line in a TOML text.

tomllib reports no positions, so this scans the text itself: table headers ("[a.b]", "[[pools]]",
counting each array-of-tables per parent), "key = value" lines (dotted keys too) and the elements
of arrays written over several lines. Strings, comments and multi-line values are skipped so that
their contents are never taken for keys. It is best effort: `line_of` falls back to the nearest
enclosing key or table that it did find.
"""

from __future__ import annotations

import re

_BARE_KEY = r"[A-Za-z0-9_-]+"
_KEY_PART = rf"(?:{_BARE_KEY}|\"(?:[^\"\\]|\\.)*\"|'[^']*')"
_DOTTED_KEY = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER = re.compile(rf"\s*(\[\[?)\s*({_DOTTED_KEY})\s*\]\]?")
_KEY_LINE = re.compile(rf"\s*({_DOTTED_KEY})\s*=")
_KEY_SPLIT = re.compile(_KEY_PART)


class LineLocator:
    """Built once per text; `line_of(path)` is then a dictionary lookup plus fallbacks."""

    def __init__(self, text: str):
        self.lines: dict[str, int] = {}
        self._scan(text)

    def line_of(self, path: str) -> int | None:
        while path:
            line = self.lines.get(path)
            if line is not None:
                return line
            path = parent_path(path)
        return None

    def _record(self, path: str, line: int) -> None:
        self.lines.setdefault(path, line)

    def _scan(self, text: str) -> None:
        table = ""                       # resolved path of the current table
        aot_counts: dict[str, int] = {}  # resolved array-of-tables path -> tables seen
        value = _ValueScanner()
        for number, line in enumerate(text.splitlines(), start=1):
            if value.busy:
                value.feed(line, number, self)
                continue
            header = _HEADER.match(line)
            if header and not _KEY_LINE.match(line):
                parts = _split_key(header.group(2))
                table = _resolve(parts, header.group(1) == "[[", aot_counts)
                self._record(table, number)
                if table.endswith("]"):
                    self._record(parent_path(table), number)  # the array itself: its first entry
                continue
            key = _KEY_LINE.match(line)
            if key:
                parts = _split_key(key.group(1))
                for end in range(1, len(parts) + 1):  # "a.b.c = 1" also defines tables a and a.b here
                    self._record(_join(table, parts[:end]), number)
                path = _join(table, parts)
                value.start(path, line[key.end():], number, self)


def parent_path(path: str) -> str:
    """"a.b[2].c" -> "a.b[2]" -> "a.b" -> "a" -> ""."""
    if path.endswith("]"):
        return path[:path.rindex("[")]
    dot = path.rfind(".")
    return path[:dot] if dot >= 0 else ""


def _split_key(dotted: str) -> list[str]:
    parts = []
    for match in _KEY_SPLIT.finditer(dotted):
        part = match.group(0)
        if part[0] in "\"'":
            part = part[1:-1]
        parts.append(part)
    return parts


def _join(base: str, parts: list[str]) -> str:
    return ".".join([base, *parts]) if base else ".".join(parts)


def _resolve(parts: list[str], array: bool, aot_counts: dict[str, int]) -> str:
    """A header's keys as a path with indexes: [[sites.applications]] -> "sites[0].applications[1]"."""
    path = ""
    for i, part in enumerate(parts):
        path = _join(path, [part])
        if array and i == len(parts) - 1:
            index = aot_counts.get(path, 0)
            aot_counts[path] = index + 1
            path = f"{path}[{index}]"
        elif path in aot_counts:
            path = f"{path}[{aot_counts[path] - 1}]"
    return path


class _ValueScanner:
    """Follows one value across lines: strings, brackets and comments; records array elements."""

    def __init__(self):
        self.busy = False

    def start(self, path: str, rest: str, number: int, locator: LineLocator) -> None:
        self.path = path
        self.depth = 0
        self.quote = ""          # open string delimiter: ", ', \"\"\" or '''
        self.index = 0           # element of the top-level array being read
        self.element_seen = False
        self.array = rest.lstrip().startswith("[")
        self.busy = True
        self.feed(rest, number, locator)

    def feed(self, text: str, number: int, locator: LineLocator) -> None:
        i, n = 0, len(text)
        while i < n:
            ch = text[i]
            if self.quote:
                if self.quote in ('"', '"""') and ch == "\\":
                    i += 2
                    continue
                if text.startswith(self.quote, i):
                    i += len(self.quote)
                    self.quote = ""
                    continue
                i += 1
                continue
            if ch == "#":
                break
            if ch in "\"'":
                triple = ch * 3
                self.quote = triple if text.startswith(triple, i) else ch
                self._element(number, locator)
                i += len(self.quote)
                continue
            if ch in "[{":
                if self.depth >= 1:
                    self._element(number, locator)
                self.depth += 1
            elif ch in "]}":
                self.depth -= 1
            elif ch == "," and self.depth == 1:
                self.index += 1
                self.element_seen = False
            elif not ch.isspace():
                self._element(number, locator)
            i += 1
        # A single-line string or a bare value ends with its line; only brackets and """ carry on.
        if self.quote in ('"', "'"):
            self.quote = ""
        self.busy = self.depth > 0 or bool(self.quote)

    def _element(self, number: int, locator: LineLocator) -> None:
        if self.array and self.depth == 1 and not self.element_seen:
            self.element_seen = True
            locator._record(f"{self.path}[{self.index}]", number)
