"""A streaming rewriter of the URLs in HTML tags (URL Rewrite's outbound `filterByTags`). No I/O.

Bytes in, bytes out, as the response body goes by: `feed(chunk)` returns what can be sent now,
`close()` the rest. At most TAG_LIMIT bytes are held back (a tag cut by a chunk boundary); a tag
longer than that is passed through untouched. Comments and the text of `script`, `style`,
`textarea` and `title` are never parsed as tags. The body is taken as UTF-8 or another
ASCII-compatible charset: tag and attribute names are ASCII, values are handed to `rewrite` as
str (undecodable bytes kept with surrogateescape) after HTML character references are decoded,
and a new value goes back HTML-escaped in double quotes.
"""

from __future__ import annotations

import html
import re
from typing import Callable

#: The longest tag (from "<" to ">") held back waiting for its end.
TAG_LIMIT = 8 * 1024

_TAG = re.compile(rb"<([A-Za-z][A-Za-z0-9:_-]*)((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>")
_ATTR = re.compile(rb"(\s+)([^\s=/>\"']+)(?:(\s*=\s*)(\"[^\"]*\"|'[^']*'|[^\s\"'>]+))?")
_RAW = {b"script", b"style", b"textarea", b"title"}
_TEXT, _COMMENT, _RAWTEXT = range(3)

#: rewrite(tag, attribute, value) -> the new value, or None to keep it.
Rewrite = Callable[[str, str, str], "str | None"]


class HtmlRewriter:
    __slots__ = ("rewrite", "attrs", "pending", "state", "raw_end", "limit")

    def __init__(self, rewrite: Rewrite, attrs: dict[str, tuple[str, ...]], limit: int = TAG_LIMIT):
        self.rewrite = rewrite
        self.attrs = {k.encode(): tuple(a.encode() for a in v) for k, v in attrs.items()}
        self.pending = b""
        self.state = _TEXT
        self.raw_end: re.Pattern | None = None
        self.limit = limit

    def feed(self, data: bytes) -> bytes:
        return self._run(self.pending + bytes(data) if self.pending else bytes(data), final=False)

    def close(self) -> bytes:
        data, self.pending = self.pending, b""
        return self._run(data, final=True) if data else b""

    def _run(self, buf: bytes, final: bool) -> bytes:
        out: list[bytes] = []
        i, n = 0, len(buf)
        self.pending = b""
        while i < n:
            if self.state == _COMMENT:
                j = buf.find(b"-->", i)
                if j < 0:
                    keep = 0 if final else min(2, n - i)  # may be the start of "-->"
                    out.append(buf[i:n - keep])
                    i = n - keep
                    break
                out.append(buf[i:j + 3])
                i = j + 3
                self.state = _TEXT
                continue
            if self.state == _RAWTEXT:
                m = self.raw_end.search(buf, i)
                if m is None:
                    keep = 0 if final else min(n - i, 10)
                    out.append(buf[i:n - keep])
                    i = n - keep
                    break
                out.append(buf[i:m.start()])
                i = m.start()
                self.state = _TEXT
                continue
            j = buf.find(b"<", i)
            if j < 0:
                out.append(buf[i:])
                i = n
                break
            out.append(buf[i:j])
            i = j
            if buf.startswith(b"<!--", j):
                out.append(b"<!--")
                i = j + 4
                self.state = _COMMENT
                continue
            if not final and n - j < 4 and b"<!--".startswith(buf[j:]):
                break  # may be the start of a comment
            nxt = buf[j + 1:j + 2]
            if not nxt:
                if final:
                    out.append(b"<")
                    i = n
                break
            if not nxt.isalpha():
                out.append(b"<")
                i = j + 1
                continue
            m = _TAG.match(buf, j, min(n, j + self.limit))
            if m is None:
                if not final and n - j < self.limit:
                    break  # the tag's end is in a later chunk
                out.append(b"<")   # too long (or the body ended inside it): text, untouched
                i = j + 1
                continue
            name = m.group(1).lower()
            wanted = self.attrs.get(name)
            out.append(self._tag(m, name, wanted) if wanted else m.group(0))
            i = m.end()
            if name in _RAW and not m.group(2).rstrip().endswith(b"/"):
                self.state = _RAWTEXT
                self.raw_end = re.compile(rb"</" + name + rb"[\s/>]", re.IGNORECASE)
        self.pending = buf[i:]
        return b"".join(out)

    def _tag(self, m: re.Match, name: bytes, wanted: tuple[bytes, ...]) -> bytes:
        attrs = m.group(2)
        changed = False
        parts = [b"<", m.group(1)]
        pos = 0
        for a in _ATTR.finditer(attrs):
            parts.append(attrs[pos:a.start()])
            pos = a.end()
            value = a.group(4)
            if value is None or a.group(2).lower() not in wanted:
                parts.append(a.group(0))
                continue
            if value[:1] in (b'"', b"'"):
                value = value[1:-1]
            text = html.unescape(value.decode("utf-8", "surrogateescape"))
            new = self.rewrite(name.decode("ascii"), a.group(2).lower().decode("ascii"), text)
            if new is None:
                parts.append(a.group(0))
                continue
            changed = True
            escaped = html.escape(new, quote=True).encode("utf-8", "surrogateescape")
            parts.append(a.group(1) + a.group(2) + b'="' + escaped + b'"')
        if not changed:
            return m.group(0)
        parts.append(attrs[pos:])
        parts.append(b">")
        return b"".join(parts)


__all__ = ["HtmlRewriter", "TAG_LIMIT"]
