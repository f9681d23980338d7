"""Server-side include directives: the parser and the formatting rules, with no I/O.

`parse(data)` splits a document into literal bytes and `Directive`s
(`<!--#include file="x.inc" -->`, a space after `<!--` allowed as IIS allows it). A comment that
starts like a directive but does not parse stays literal text (it is an HTML comment either way).
The module that reads files and runs commands is wasp/worker/modules/server_side_include.py.
"""

from __future__ import annotations

import re
import time
from typing import NamedTuple

_WS = rb"[ \t\r\n]"
_DIRECTIVE = re.compile(
    rb"<!--" + _WS + rb"*#([A-Za-z]+)((?:" + _WS + rb"+[A-Za-z_]+" + _WS + rb"*=" + _WS +
    rb"*(?:\"[^\"]*\"|'[^']*'))*)" + _WS + rb"*-->")
_ATTRIBUTE = re.compile(rb"([A-Za-z_]+)" + _WS + rb"*=" + _WS + rb"*(?:\"([^\"]*)\"|'([^']*)')")

#: Apache's and IIS's wording differ; this is the message most SSI authors know.
DEFAULT_ERRMSG = "[an error occurred while processing this directive]"
#: strftime format of dates until `#config timefmt` changes it.
DEFAULT_TIMEFMT = "%A, %B %d, %Y %H:%M:%S"
DEFAULT_SIZEFMT = "abbrev"
#: A `#config timefmt` longer than this is refused (strftime's output grows with its input).
MAX_TIMEFMT = 256


class Directive(NamedTuple):
    name: str                          # lower case: "include", "echo", ...
    attributes: list[tuple[str, str]]  # (lower-case name, value) in order
    raw: bytes                         # the directive as written


def parse(data: bytes) -> list[bytes | Directive]:
    out: list[bytes | Directive] = []
    pos = 0
    for match in _DIRECTIVE.finditer(data):
        if match.start() > pos:
            out.append(data[pos:match.start()])
        attributes = [(m.group(1).decode("ascii").lower(),
                       (m.group(2) if m.group(2) is not None else m.group(3))
                       .decode("utf-8", "surrogateescape"))
                      for m in _ATTRIBUTE.finditer(match.group(2))]
        out.append(Directive(match.group(1).decode("ascii").lower(), attributes, match.group(0)))
        pos = match.end()
    if pos < len(data):
        out.append(data[pos:])
    return out


class Settings:
    """What `#config` changes, for the rest of the document (and the files it includes)."""

    __slots__ = ("errmsg", "timefmt", "sizefmt")

    def __init__(self):
        self.errmsg = DEFAULT_ERRMSG
        self.timefmt = DEFAULT_TIMEFMT
        self.sizefmt = DEFAULT_SIZEFMT


def format_size(size: int, sizefmt: str) -> str:
    """`#fsize` output: "bytes" gives "1,234"; "abbrev" gives "1K", "2.5M" (Apache's style)."""
    if sizefmt == "bytes":
        return f"{size:,}"
    if size < 1024:
        return str(size)
    if size < 1024 * 1024:
        return f"{(size + 1023) // 1024}K"
    if size < 1024 ** 3:
        return f"{size / (1024 * 1024):.1f}M"
    return f"{size / 1024 ** 3:.1f}G"


def format_time(seconds: float, timefmt: str, utc: bool = False) -> str:
    tm = time.gmtime(seconds) if utc else time.localtime(seconds)
    try:
        return time.strftime(timefmt, tm)
    except (ValueError, OverflowError):
        return time.strftime(DEFAULT_TIMEFMT, tm)


def header_split(output: bytes) -> bytes:
    """The body of a CGI program's output (`#exec cgi`): what follows the header block, when the
    output starts with one; else all of it."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        head, found, body = output.partition(sep)
        if found and head and all(b":" in line for line in head.splitlines() if line):
            return body
    return output


__all__ = ["Directive", "parse", "Settings", "format_size", "format_time", "header_split",
           "DEFAULT_ERRMSG", "DEFAULT_TIMEFMT", "MAX_TIMEFMT"]
