"""The reverse proxy's HTTP/1.1 client codec (ARR's forwarder): no I/O, bytes in and out.

`request_head` builds the head wasp sends to a backend: the client's end-to-end headers, never
its framing (`Content-Length` and `Transfer-Encoding` are wasp's own, from what the front
parsed), never a hop-by-hop header or one the client's `Connection` lists, never a value with
CR, LF or NUL (a request the front let through with one is refused 400 before anything reaches
the backend). So CL+TE, a duplicate Content-Length or an obs-fold from the client can never reach
the backend as something it would frame differently (request smuggling).

`ResponseReader` parses the backend's response with httptools (llhttp, strict): a response that
frames itself ambiguously (Content-Length with Transfer-Encoding, two lengths, bad chunks), a
header with CR/LF inside (response splitting) or a head over `max_header` bytes raises
BackendError; `response_block` then turns the backend's head into the worker's response block
without its hop-by-hop headers.
"""

from __future__ import annotations

import re

import httptools

#: Hop-by-hop headers (RFC 9110 §7.6.1, plus Proxy-Connection and Keep-Alive that old peers
#: send): never forwarded either way. Lower case.
HOP_BY_HOP = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
                        b"transfer-encoding", b"upgrade", b"proxy-authenticate",
                        b"proxy-authorization", b"http2-settings"))
#: Request headers wasp sets itself (framing and forwarding); the client's are dropped.
_OWN_REQUEST = frozenset((b"content-length", b"host", b"expect"))

_TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_BAD_VALUE = re.compile(rb"[\x00\r\n]")
_REASON = re.compile(rb"^[\t\x20-\x7e\x80-\xff]*\Z")

#: Request methods that may be sent again after a failure to connect (RFC 9110 §9.2.2).
IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"))


class BackendError(Exception):
    """The backend broke HTTP (or a limit): the proxy answers 502.3 or cuts the response."""


class BadRequestHeader(ValueError):
    """A client header that cannot be forwarded safely (CR, LF or NUL, or not a token)."""


def connection_listed(headers) -> frozenset:
    """The lower-case names a `Connection` header lists (they are hop-by-hop too)."""
    listed = set()
    for name, value in headers:
        if name.lower() == b"connection":
            for part in value.split(b","):
                part = part.strip().lower()
                if part:
                    listed.add(part)
    return frozenset(listed)


def end_to_end(headers, drop=frozenset()):
    """The headers without hop-by-hop ones, the ones `Connection` lists and `drop` (lower case)."""
    listed = connection_listed(headers)
    out = []
    for name, value in headers:
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in listed or lower in drop:
            continue
        out.append((name, value))
    return out


def request_head(method: str, target: bytes, headers, host: bytes, *, body: str = "none",
                 length: int = -1, extra=(), websocket: bool = False, drop=frozenset(),
                 keep_alive: bool = True) -> bytes:
    """The request head for a backend.

    `headers`: the client's, as received; `host`: the Host to send; `body`: "none", "length"
    (with `length`) or "chunked"; `extra`: (name, value) pairs wasp adds (forwarding headers);
    `drop`: more lower-case names to leave out (the forwarding headers wasp replaces).
    """
    if not _TOKEN.match(method.encode("latin-1", "replace")):
        raise BadRequestHeader(f"method {method!r} is not a token")
    if not target.startswith(b"/") and target != b"*" or _BAD_VALUE.search(target) or b" " in target:
        raise BadRequestHeader("request target with a space or control character")
    if _BAD_VALUE.search(host) or not host:
        raise BadRequestHeader("bad Host")
    lines = [method.encode("latin-1"), b" ", target, b" HTTP/1.1\r\nHost: ", host, b"\r\n"]
    for name, value in end_to_end(headers, _OWN_REQUEST | drop):
        if not _TOKEN.match(name):
            raise BadRequestHeader(f"header name {name!r} is not a token")
        if _BAD_VALUE.search(value):
            raise BadRequestHeader(f"header {name.decode('latin-1')} has CR, LF or NUL")
        lines += (name, b": ", value.strip(b" \t"), b"\r\n")
    for name, value in extra:
        if _BAD_VALUE.search(value):
            raise BadRequestHeader(f"header {name.decode('latin-1')} has CR, LF or NUL")
        lines += (name, b": ", value, b"\r\n")
    if websocket:
        lines.append(b"Connection: Upgrade\r\nUpgrade: websocket\r\n")
    elif not keep_alive:
        lines.append(b"Connection: close\r\n")
    if body == "length":
        lines.append(b"Content-Length: %d\r\n" % length)
    elif body == "chunked":
        lines.append(b"Transfer-Encoding: chunked\r\n")
    elif method in ("POST", "PUT", "PATCH"):
        lines.append(b"Content-Length: 0\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


def chunk(data) -> bytes:
    """One chunk of a chunked request body (never empty: b"" would end the body)."""
    return b"%x\r\n%s\r\n" % (len(data), bytes(data))


LAST_CHUNK = b"0\r\n\r\n"


class ResponseReader:
    """One backend response, parsed as it arrives.

    After `feed`: `head_done` once the head is in (`status`, `reason`, `headers`), body bytes in
    `body` (take them with `take`), `done` once the message is complete, `upgraded` with the
    bytes after a 101's head. `keep_alive` says whether the connection may carry another
    request. 1xx interim responses (100 Continue) are skipped.
    """

    __slots__ = ("_parser", "head_only", "max_header", "max_headers", "status", "reason",
                 "headers", "head_done", "done", "body", "buffered", "upgraded", "keep_alive",
                 "_head_bytes", "_name", "_count", "content_length", "_interim")

    def __init__(self, head_only: bool = False, max_header: int = 65536, max_headers: int = 200):
        self._parser = httptools.HttpResponseParser(self)
        self.head_only = head_only
        self.max_header = max_header
        self.max_headers = max_headers
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = False
        self.done = False
        self.body: list[bytes] = []
        self.buffered = 0
        self.upgraded: bytes | None = None
        self.keep_alive = False
        self.content_length = -1
        self._head_bytes = 0
        self._name = b""
        self._count = 0
        self._interim = False

    # ---- httptools callbacks ----
    def on_message_begin(self):
        if self.head_done:
            # Bytes after the final response (after a 204's or a HEAD's head, say): not ours to
            # parse; the connection is not reused.
            self.keep_alive = False
            return
        self.headers = []
        self._count = 0
        self._interim = False

    def on_status(self, status: bytes):
        if not self.head_done:
            self.reason += status

    def on_header(self, name: bytes, value: bytes):
        if self.head_done:
            return  # a second response after the final one: ignored (and the connection dropped)
        self._count += 1
        if self._count > self.max_headers:
            raise BackendError("the backend sent too many response headers")
        self.headers.append((name, value))

    def on_headers_complete(self):
        if self.head_done:
            self.keep_alive = False
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._interim = True  # 100 Continue, 103 Early Hints: the real response follows
            self.reason = b""
            return
        self.status = status
        if sum(len(n) + len(v) + 4 for n, v in self.headers) + len(self.reason) > self.max_header:
            # (a head that came in one read was never checked against the limit on the way)
            raise BackendError(f"response head over {self.max_header} bytes")
        if not _REASON.match(self.reason):
            raise BackendError("bad reason phrase")
        self.head_done = True
        self.keep_alive = self._parser.should_keep_alive()
        for name, value in self.headers:
            if name.lower() == b"content-length":
                try:
                    self.content_length = int(value)
                except ValueError:
                    raise BackendError("bad Content-Length") from None
        if self.head_only or status == 204 or status == 304:
            self.done = True

    def on_body(self, body: bytes):
        if self.done:
            # A body after a HEAD's, a 204's or a 304's head: the backend is confused.
            self.keep_alive = False
            return
        self.body.append(body)
        self.buffered += len(body)

    def on_message_complete(self):
        if self._interim:
            self._interim = False
            self._head_bytes = 0
            return
        self.done = True

    # ---- the API ----
    def feed(self, data: bytes) -> None:
        if not self.head_done:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            if self.status == 101:
                self.upgraded = data[offset:]
                self.done = True
                self.keep_alive = False
                return
            raise BackendError("the backend upgraded a request that asked for no upgrade") from None
        except BackendError:
            raise
        except httptools.HttpParserError as exc:
            if self.done and (self.head_only or self.status in (204, 304)):
                self.keep_alive = False
                return
            raise BackendError(f"invalid response from the backend: {exc}") from None
        if not self.head_done and self._head_bytes > self.max_header:
            raise BackendError(f"response head over {self.max_header} bytes")
        if self.head_done and self.status == 101 and self.upgraded is None:
            self.upgraded = b""  # (httptools raises the upgrade once bytes follow the head)

    def eof(self) -> None:
        """The backend closed: a response delimited by the close ends here; anything else is cut."""
        if self.done:
            return
        if self.head_done:
            try:
                self._parser.feed_data(b"")
            except httptools.HttpParserError:
                pass
            for name, _value in self.headers:
                if name.lower() in (b"content-length", b"transfer-encoding"):
                    raise BackendError("the backend closed the connection mid-response")
            self.done = True  # no framing: the close is the end (HTTP/1.0 style)
            self.keep_alive = False
            return
        raise BackendError("the backend closed the connection before a response")

    def take(self) -> bytes:
        body = self.body
        if not body:
            return b""
        data = body[0] if len(body) == 1 else b"".join(body)
        body.clear()
        self.buffered = 0
        return data


def response_block(reader: ResponseReader, rewrite=None, add=()) -> bytes:
    """The worker's response block ("200 OK\\r\\nName: value\\r\\n...") from a backend response:
    hop-by-hop headers and the backend's Content-Length left out (the front frames the body),
    `rewrite(name_lower, value) -> value` applied (ARR's reverse rewrite of Location), `add`ed."""
    status = reader.status
    reason = reader.reason.strip() or b"-"
    lines = [b"%d " % status, reason, b"\r\n"]
    keep = {b"upgrade", b"connection"} if status == 101 else ()
    listed = connection_listed(reader.headers) if status != 101 else frozenset()
    for name, value in reader.headers:
        lower = name.lower()
        if lower in keep:
            lines += (name, b": ", value, b"\r\n")
            continue
        if lower in HOP_BY_HOP or lower in listed or lower == b"content-length":
            continue
        if not _TOKEN.match(name) or _BAD_VALUE.search(value):
            raise BackendError("a response header the client could not be given safely")
        if rewrite is not None:
            value = rewrite(lower, value)
        lines += (name, b": ", value, b"\r\n")
    for name, value in add:
        lines += (name, b": ", value, b"\r\n")
    return b"".join(lines)


__all__ = ["BackendError", "BadRequestHeader", "ResponseReader", "request_head", "response_block",
           "chunk", "LAST_CHUNK", "HOP_BY_HOP", "IDEMPOTENT", "end_to_end", "connection_listed"]
