"""The head of a CGI response (RFC 3875 §6), sans-I/O: shared by the CGI and FastCGI handlers.

A script writes header lines (ended by LF or CRLF), an empty line, then the body. `HeadParser`
takes the script's output in whatever pieces it came and, once the empty line arrived, gives a
`CgiHead`: the status (from `Status:`, 302 for a `Location:` without one, else 200), the header
lines to send, the Content-Length if the script gave one, and the body bytes that came with the
head. What a script cannot be allowed to send the client is a CgiHeadError (the handler answers
502): a head over the size limit, a line that is not `name: value`, a name that is not a token, a
value with a control character (a CR inside a line would let it split the response), an obsolete
folded line, a bad Status or Content-Length. Hop-by-hop headers are dropped: the front frames the
response itself.
"""

from __future__ import annotations

import re

#: Most bytes of response head a script may send (the handler answers 502 past it).
MAX_HEAD = 64 * 1024

_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_STATUS = re.compile(rb"([1-9][0-9][0-9])(?:[ \t]+([^\x00-\x08\x0a-\x1f\x7f]*))?\Z")

#: Headers the front owns (or that make no sense from a script behind a gateway).
HOP_BY_HOP = frozenset((b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"te",
                        b"trailer", b"proxy-connection", b"proxy-authenticate"))

REASONS = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 206: "Partial Content",
    301: "Moved Permanently", 302: "Found", 303: "See Other", 304: "Not Modified",
    307: "Temporary Redirect", 308: "Permanent Redirect", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    409: "Conflict", 410: "Gone", 412: "Precondition Failed", 413: "Payload Too Large",
    415: "Unsupported Media Type", 422: "Unprocessable Content", 429: "Too Many Requests",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}


class CgiHeadError(ValueError):
    """The script's response head cannot be passed on (the handler answers 502)."""


class CgiHead:
    __slots__ = ("status", "reason", "headers", "content_length", "body", "location")

    def __init__(self, status, reason, headers, content_length, body, location):
        self.status = status
        self.reason = reason
        self.headers = headers              # [(name, value)] as the script wrote them
        self.content_length = content_length  # -1: none given
        self.body = body                    # body bytes that arrived with the head
        self.location = location

    def block(self) -> bytes:
        """The response block for a RESPONSE frame: b"200 OK\\r\\n" and the header lines."""
        parts = [b"%d %s\r\n" % (self.status, self.reason)]
        for name, value in self.headers:
            parts.append(name + b": " + value + b"\r\n")
        return b"".join(parts)


class HeadParser:
    __slots__ = ("_buf", "limit", "head")

    def __init__(self, limit: int = MAX_HEAD):
        self._buf = bytearray()
        self.limit = limit
        self.head = None

    def feed(self, data) -> CgiHead | None:
        """The head once complete (body bytes after it in `head.body`), else None."""
        buf = self._buf
        start = max(0, len(buf) - 3)
        buf += data
        end, sep = _find_end(buf, start)
        if end < 0:
            if len(buf) > self.limit:
                raise CgiHeadError(f"response head over {self.limit} bytes")
            return None
        if end > self.limit:
            raise CgiHeadError(f"response head over {self.limit} bytes")
        self.head = parse(bytes(buf[:end]), bytes(buf[end + sep:]))
        buf.clear()
        return self.head

    def finish(self) -> CgiHead:
        """The script's output ended: its head must be complete (RFC 3875 needs the blank line;
        a head ended by EOF, with no body, is taken as PHP and Apache do)."""
        if self.head is not None:
            return self.head
        data = bytes(self._buf)
        if not data.strip():
            raise CgiHeadError("the script wrote no response head")
        self.head = parse(data.rstrip(b"\r\n"), b"")
        return self.head


def _find_end(buf, start: int) -> tuple[int, int]:
    """Offset of the blank line ending the head and its length, or (-1, 0)."""
    if start == 0:  # a head that starts with its blank line: no headers at all
        if buf[:1] == b"\n":
            return 0, 1
        if buf[:2] == b"\r\n":
            return 0, 2
    pos = buf.find(b"\n", start)
    while pos >= 0:
        nxt = pos + 1
        if buf[nxt:nxt + 1] == b"\n":
            return pos, 2
        if buf[nxt:nxt + 2] == b"\r\n":
            return pos, 3
        pos = buf.find(b"\n", nxt)
    return -1, 0


def parse(raw: bytes, body: bytes) -> CgiHead:
    status = None
    reason = b""
    location = None
    length = -1
    headers = []
    for line in raw.split(b"\n"):
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            continue
        if line[0] in b" \t":
            raise CgiHeadError("a folded header line")
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.match(name):
            raise CgiHeadError(f"not a header line: {line[:80]!r}")
        value = value.strip(b" \t")
        if _BAD_VALUE.search(value):
            raise CgiHeadError(f"a control character in header {name[:80]!r}")
        lower = name.lower()
        if lower == b"status":
            if status is not None:
                raise CgiHeadError("two Status headers")
            match = _STATUS.match(value)
            if match is None:
                raise CgiHeadError(f"bad Status {value[:80]!r}")
            status = int(match.group(1))
            reason = (match.group(2) or b"").strip()
            continue
        if lower in HOP_BY_HOP:
            continue
        if lower == b"content-length":
            if not value.isdigit() or len(value) > 18 or (length >= 0 and int(value) != length):
                raise CgiHeadError(f"bad Content-Length {value[:80]!r}")
            if length >= 0:
                continue
            length = int(value)
        elif lower == b"location":
            if location is not None:
                raise CgiHeadError("two Location headers")
            if not value:
                raise CgiHeadError("an empty Location")
            location = value
        headers.append((name, value))
    if status is None:
        status = 302 if location is not None else 200
    if not reason:
        reason = REASONS.get(status, "Unknown").encode("ascii")
    return CgiHead(status, reason, headers, length, body, location)
