"""Sans-I/O rules for HTTP/2 in the front: a frame pre-scan that bounds what the `h2` library
would otherwise buffer or answer without limit, token buckets for the per-connection flood
budgets, and the conversion of a worker's response block into an HTTP/2 header list.

The front feeds every byte a client sends to `FrameScanner.feed` before `h2` sees it. The scanner
reads only frame headers (9 bytes; payloads are skipped, never copied), so it costs a few
operations per frame, and it stops a connection as soon as a frame breaks a budget, before `h2`
buffers (CONTINUATION) or answers (PING, SETTINGS) it. The numbers, and where they come from:

* CONTINUATION flood (CVE-2024-27316 and kin): a header block may span at most
  `MAX_CONTINUATIONS` = 8 CONTINUATION frames (nghttp2's `nghttp2_option_set_max_continuations`
  default) and at most `header_block_limit` raw bytes (the front passes `max_request_bytes +
  max_field_length`, the raw bound of an HTTP/1.1 head). Checked on the frame headers, before
  HPACK decoding: `h2` itself buffers up to 64 frames of up to 16 MiB each before it decodes.
* Empty frames: more than `MAX_EMPTY_FRAMES` = 10 frames in a row with an empty payload and no
  END_STREAM (DATA, HEADERS, CONTINUATION) -- Helidon's `max-empty-frames` default (Envoy's
  `max_consecutive_inbound_frames_with_empty_payload` is 1).
* SETTINGS and PING floods (CVE-2019-9512/9515): each such frame (not an ACK) takes a token from
  a bucket of `CONTROL_BURST` = 1000 (Envoy's `max_outbound_control_frames` default: the acks these
  frames force) refilled at `CONTROL_RATE` = 100 per second.
* WINDOW_UPDATE flood: at most `WINDOW_UPDATE_FLOOR` = 100 plus 10 per DATA frame the server sent
  (Envoy's `max_inbound_window_update_frames_per_data_frame_sent` = 10).
* PRIORITY flood (CVE-2019-9513): at most 100 PRIORITY frames per stream opened, plus 100 (Envoy's
  `max_inbound_priority_frames_per_stream` = 100).
* Rapid reset (CVE-2023-44487) is counted by the connection, which knows which streams were still
  in flight: `TokenBucket(2 * max_concurrent_streams, RESET_RATE)`; 33 per second is nghttp2's
  stream reset rate limit (its burst is 1000; nginx's fix allows 2 x concurrent streams per read).
"""

from __future__ import annotations

import struct

#: The client connection preface (RFC 9113 §3.4); h2c with prior knowledge starts with it.
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

MAX_CONTINUATIONS = 8
MAX_EMPTY_FRAMES = 10
CONTROL_BURST = 1000
CONTROL_RATE = 100.0
WINDOW_UPDATE_FLOOR = 100
WINDOW_UPDATES_PER_DATA = 10
PRIORITY_PER_STREAM = 100
RESET_RATE = 33.0

# RFC 9113 error codes
NO_ERROR, PROTOCOL_ERROR, ENHANCE_YOUR_CALM = 0x0, 0x1, 0xB

_DATA, _HEADERS, _PRIORITY, _RST, _SETTINGS, _PUSH, _PING, _GOAWAY, _WINDOW, _CONTINUATION = range(10)
_END_STREAM, _ACK, _END_HEADERS = 0x1, 0x1, 0x4
_HEAD = struct.Struct(">I")   # the first 4 bytes: 24-bit length and the type
_SID = struct.Struct(">I")


class Flood(Exception):
    """A client broke one of the budgets: close the connection with GOAWAY `code`. `reason` is a
    token for the HTTPERR log (s-reason "H2_<reason>")."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


class TokenBucket:
    """`burst` tokens at first and at most; `rate` come back per second. `take` is False when
    none is left."""

    __slots__ = ("burst", "rate", "tokens", "at")

    def __init__(self, burst: float, rate: float, now: float):
        self.burst = burst
        self.rate = rate
        self.tokens = float(burst)
        self.at = now

    def take(self, now: float) -> bool:
        tokens = self.tokens
        if now > self.at:
            tokens = min(self.burst, tokens + (now - self.at) * self.rate)
            self.at = now
        if tokens < 1.0:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1.0
        return True


class FrameScanner:
    """Walks the frame headers of what a client sends (after the preface) and raises Flood."""

    __slots__ = ("header_block_limit", "data_frames_sent", "_skip", "_partial", "_block",
                 "_continuations", "_block_bytes", "_empty", "_control", "_window_updates",
                 "_priorities", "_streams", "block_started")

    def __init__(self, header_block_limit: int, now: float):
        self.header_block_limit = header_block_limit
        self.data_frames_sent = 0     # the connection counts the DATA frames it sends
        self._skip = len(PREFACE)     # bytes of payload (or preface) still to pass over
        self._partial = b""           # a frame header split across reads
        self._block = False           # inside a header block (HEADERS without END_HEADERS)
        self._continuations = 0
        self._block_bytes = 0
        self._empty = 0
        self._control = TokenBucket(CONTROL_BURST, CONTROL_RATE, now)
        self._window_updates = 0
        self._priorities = 0
        self._streams = 0
        self.block_started = False    # set when a header block began in the last feed (timer)

    @property
    def in_header_block(self) -> bool:
        return self._block

    def feed(self, data: bytes, now: float) -> None:
        pos = 0
        n = len(data)
        self.block_started = False
        while pos < n:
            skip = self._skip
            if skip:
                step = min(skip, n - pos)
                self._skip = skip - step
                pos += step
                continue
            partial = self._partial
            if partial or n - pos < 9:
                need = 9 - len(partial)
                partial += data[pos:pos + need]
                pos += need
                if len(partial) < 9:
                    self._partial = partial
                    return
                self._partial = b""
                head = partial
                at = 0
            else:
                head = data
                at = pos
                pos += 9
            word = _HEAD.unpack_from(head, at)[0]
            length = word >> 8
            ftype = word & 0xFF
            flags = head[at + 4]
            self._frame(ftype, flags, length, now)
            self._skip = length

    def _frame(self, ftype: int, flags: int, length: int, now: float) -> None:
        if self._block:
            if ftype != _CONTINUATION:
                return  # h2 refuses it (PROTOCOL_ERROR)
            self._continuations += 1
            self._block_bytes += length
            if self._continuations > MAX_CONTINUATIONS:
                raise Flood(ENHANCE_YOUR_CALM, "Continuation")
            if self._block_bytes > self.header_block_limit:
                raise Flood(ENHANCE_YOUR_CALM, "HeaderBlock")
            if flags & _END_HEADERS:
                self._block = False
            self._count_empty(length, 0)
            return
        if ftype == _DATA:
            self._count_empty(length, flags & _END_STREAM)
        elif ftype == _HEADERS:
            self._streams += 1
            if length > self.header_block_limit:
                raise Flood(ENHANCE_YOUR_CALM, "HeaderBlock")
            if not flags & _END_HEADERS:
                self._block = True
                self.block_started = True
                self._continuations = 0
                self._block_bytes = length
            self._count_empty(length, flags & _END_STREAM)
        elif ftype == _SETTINGS or ftype == _PING:
            if not flags & _ACK and not self._control.take(now):
                raise Flood(ENHANCE_YOUR_CALM, "ControlFlood")
        elif ftype == _WINDOW:
            self._window_updates += 1
            if self._window_updates > WINDOW_UPDATE_FLOOR + WINDOW_UPDATES_PER_DATA * self.data_frames_sent:
                raise Flood(ENHANCE_YOUR_CALM, "WindowUpdateFlood")
        elif ftype == _PRIORITY:
            self._priorities += 1
            if self._priorities > PRIORITY_PER_STREAM * (self._streams + 1):
                raise Flood(ENHANCE_YOUR_CALM, "PriorityFlood")

    def _count_empty(self, length: int, end_stream: int) -> None:
        if length or end_stream:
            self._empty = 0
            return
        self._empty += 1
        if self._empty > MAX_EMPTY_FRAMES:
            raise Flood(ENHANCE_YOUR_CALM, "EmptyFrames")


#: Response fields that are HTTP/1.1 connection details: not sent over HTTP/2 (RFC 9113 §8.2.2).
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
                         b"upgrade", b"te"})


def response_fields(block: bytes) -> tuple[int, list[tuple[bytes, bytes]], int]:
    """A worker's block (b"200 OK\\r\\nName: v\\r\\n...") -> (status, fields, named).

    Names are lower-cased and connection-specific fields dropped; `named` has bit 1 when the
    app sent Content-Length, 2 for Server, 4 for Date. ValueError for a bad status line."""
    lines = block.split(b"\r\n")
    status = int(lines[0][:3])
    if not 100 <= status <= 999:
        raise ValueError("status out of range")
    fields = []
    named = 0
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        name = name.strip().lower()
        if not name or name in _HOP_BY_HOP:
            continue
        if name == b"content-length":
            named |= 1
        elif name == b"server":
            named |= 2
            if not value.strip():
                continue  # http_protocol.remove_server_header: no Server field at all
        elif name == b"date":
            named |= 4
        fields.append((name, value.strip()))
    return status, fields, named


def request_fields(headers) -> tuple[dict[bytes, bytes], list[tuple[bytes, bytes]], int]:
    """An h2 request header list -> (pseudo-headers, regular fields as HTTP/1.1 would carry
    them, size as HTTP.sys counts a head: name + value + 4 per field). Cookie crumbs are joined
    into one field (RFC 9113 §8.2.3). ValueError for a pseudo-header after a field or twice."""
    pseudo: dict[bytes, bytes] = {}
    fields: list[tuple[bytes, bytes]] = []
    cookies: list[bytes] = []
    size = 0
    for name, value in headers:
        size += len(name) + len(value) + 4
        if name[:1] == b":":
            if fields or cookies or name in pseudo:
                raise ValueError("misplaced pseudo-header")
            pseudo[name] = value
        elif name == b"cookie":
            cookies.append(value)
        else:
            fields.append((name, value))
    if cookies:
        fields.append((b"cookie", b"; ".join(cookies)))
    return pseudo, fields, size


# ---- WebSocket over HTTP/2 (RFC 8441) ----
# The worker speaks the HTTP/1.1 handshake (RFC 6455 §4): the front turns an extended CONNECT
# (`:method CONNECT`, `:protocol websocket`) into the GET + Upgrade head it sees from an HTTP/1.1
# client, and the worker's 101 into the 200 an HTTP/2 client expects; the bytes that follow are
# WebSocket frames on both, carried as BODY frames to the worker and DATA frames to the client.

#: Fields an HTTP/1.1 handshake has and an extended CONNECT must not (or that the front sets).
_HANDSHAKE_ONLY = frozenset({b"upgrade", b"connection", b"sec-websocket-key"})
#: The 101's fields with no meaning over HTTP/2 (RFC 8441 §5: no Sec-WebSocket-Accept).
_ACCEPT_ONLY = frozenset({b"sec-websocket-accept"})


def websocket_request(fields: list[tuple[bytes, bytes]], key: bytes) -> list[tuple[bytes, bytes]]:
    """An extended CONNECT's regular fields -> those of the HTTP/1.1 upgrade the worker expects,
    with `key` (16 random bytes, base64) as its Sec-WebSocket-Key."""
    out = [(name, value) for name, value in fields if name not in _HANDSHAKE_ONLY]
    out += [(b"upgrade", b"websocket"), (b"connection", b"upgrade"), (b"sec-websocket-key", key)]
    return out


def websocket_accepted(fields: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The worker's 101 fields (response_fields: connection fields gone) -> the 200's."""
    return [(name, value) for name, value in fields if name not in _ACCEPT_ONLY]
