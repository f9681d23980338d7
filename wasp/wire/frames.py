"""Frames on the front <-> worker data channel. No I/O: bytes in, frames out, and back.

A frame is a 10-byte header, then `length` bytes of payload:

    length: u32 LE | type: u8 | flags: u8 | stream: u32 LE

`stream` is the request id the front picked (0 for channel-wide frames). Frames of many requests
interleave on one channel. See docs/internals.md for the full protocol and who sends what when.
"""

from __future__ import annotations

import struct
from enum import IntEnum

import msgspec

HEADER = struct.Struct("<IBBI")
HEADER_SIZE = HEADER.size
MAX_PAYLOAD = 16 * 1024 * 1024  # a larger frame is a protocol error: the channel is torn down

#: Bytes the sender of a body may have in flight for one stream before it waits for WINDOW.
INITIAL_WINDOW = 256 * 1024


class FrameType(IntEnum):
    HELLO = 1      # worker -> front, stream 0: Hello (msgpack)
    REQUEST = 2    # front -> worker: RequestHead (msgpack); FIN flag = no body follows
    BODY = 3       # both ways: raw body bytes (after a 101, raw tunnelled bytes)
    END = 4        # both ways: the body is complete
    RESPONSE = 5   # worker -> front: ResponseHead (see pack_response); FIN flag = body inline, done
    FILE = 6       # worker -> front: FileSpan (msgpack); the front sends the file; ends the stream
    CANCEL = 7     # front -> worker: the client went away; stop and send nothing more
    WINDOW = 8     # both ways: u32 increment of the peer's send window for this stream
    DRAIN = 9      # front -> worker, stream 0: no more requests will come on this channel
    ABORT = 10     # worker -> front: the request failed; u16 status for the front to answer with
                   # if no response was started (else the front resets the client connection)
    CACHE = 11     # worker -> front: CacheHint (msgpack), just before the RESPONSE (FIN) or FILE it
                   # is about: the front may cache that response (IIS HttpCacheModule -> HTTP.sys)
    USER = 12      # worker -> front: who the request ran as, just before its RESPONSE or FILE:
                   # "auth_type NUL name" in UTF-8 (cs-username in the W3C log)
    MODULES = 13   # worker -> front: the modules the request runs through, "a,b,c" in ASCII, sent
                   # at BEGIN_REQUEST only when the site logs the WASP_MODULES server variable
    TRACE = 14     # worker -> front: u32 token, just before the last frame of a request a FREB
                   # rule traces: "tell me your times for it" (docs/freb.md)
    TRACED = 15    # front -> worker, stream 0: TracedTimes, once the traced response was sent


FLAG_FIN = 0x01
FLAG_TRACE = 0x02  # REQUEST: the payload is a TracedHead


class ProtocolError(Exception):
    """The peer broke the framing; the channel cannot be trusted any more. Every `unpack_*`
    raises it (and nothing else) for a payload that does not decode."""


def pack(ftype: int, stream: int, payload: bytes = b"", flags: int = 0) -> bytes:
    return HEADER.pack(len(payload), ftype, flags, stream) + payload


def pack_header(ftype: int, stream: int, length: int, flags: int = 0) -> bytes:
    return HEADER.pack(length, ftype, flags, stream)


#: With `views`, a payload at least this large that is at least half of the read holding it comes
#: as a memoryview of that read instead of a copy.
VIEW_MIN = 16 * 1024


class FrameReader:
    """Accumulates bytes and yields complete frames as (type, flags, stream, payload) tuples.

    `views` (the front's worker links): a large payload (VIEW_MIN, and at least half of the bytes
    it was read with, so a view never keeps more than twice its size alive) is a memoryview of the
    read, not a copy; a 100 KiB response body then reaches the client socket without being copied
    in Python. Every other payload is bytes.

    A frame cut across reads waits in a bytearray that only grows by what arrives: nothing is
    parsed (or copied) again until the bytes it still needs are there, so such a frame costs each
    of its bytes one copy into the buffer and one into its payload, however many reads it takes
    (re-joining the whole buffer on every read made a 16 MiB frame in 64 KiB reads cost
    gigabytes of copying)."""

    __slots__ = ("_buf", "_views", "_need")

    def __init__(self, views: bool = False) -> None:
        self._buf = bytearray()
        self._views = views
        self._need = 0  # bytes the partial frame in _buf still lacks (at least)

    def feed(self, data) -> list[tuple[int, int, int, bytes]]:
        buf = self._buf
        if buf:
            buf += data
            if len(data) < self._need:
                self._need -= len(data)
                return []
            return self._parse(buf, memoryview(buf))
        frames = []
        pos = 0
        end = len(data)
        unpack = HEADER.unpack_from
        views = self._views
        while end - pos >= HEADER_SIZE:
            length, ftype, flags, stream = unpack(data, pos)
            if length > MAX_PAYLOAD:
                raise ProtocolError(f"frame of {length} bytes exceeds {MAX_PAYLOAD}")
            start = pos + HEADER_SIZE
            stop = start + length
            if stop > end:
                break
            if views and length >= VIEW_MIN and length * 2 >= end:
                frames.append((ftype, flags, stream, memoryview(data)[start:stop]))
            else:
                frames.append((ftype, flags, stream, data[start:stop]))
            pos = stop
        if pos < end:
            buf += memoryview(data)[pos:]
            self._set_need(buf)
        return frames

    def _parse(self, buf: bytearray, view: memoryview) -> list:
        """Frames from the buffer (payloads copied out as bytes: the buffer is reused, so no view
        of it may escape), which keeps what is left."""
        frames = []
        pos = 0
        end = len(buf)
        unpack = HEADER.unpack_from
        try:
            while end - pos >= HEADER_SIZE:
                length, ftype, flags, stream = unpack(buf, pos)
                if length > MAX_PAYLOAD:
                    raise ProtocolError(f"frame of {length} bytes exceeds {MAX_PAYLOAD}")
                start = pos + HEADER_SIZE
                stop = start + length
                if stop > end:
                    break
                frames.append((ftype, flags, stream, view[start:stop].tobytes()))
                pos = stop
        finally:
            view.release()  # a bytearray with an export cannot be resized
        if pos:
            del buf[:pos]
        self._set_need(buf)
        return frames

    def _set_need(self, buf: bytearray) -> None:
        left = len(buf)
        if left >= HEADER_SIZE:
            length = HEADER.unpack_from(buf)[0]
            if length > MAX_PAYLOAD:
                raise ProtocolError(f"frame of {length} bytes exceeds {MAX_PAYLOAD}")
            self._need = HEADER_SIZE + length - left
        else:
            self._need = HEADER_SIZE - left if left else 0

    @property
    def buffered(self) -> int:
        return len(self._buf)


# ---- payloads -------------------------------------------------------------------------------


class Hello(msgspec.Struct, array_like=True):
    worker_id: int
    pid: int
    capacity: int  # requests the worker takes at once; the front never dispatches more
    #: the application keys ("<site id><app path>") the worker loaded; the front dispatches to it
    #: only requests for these (a reload can give the pool apps its old worker does not host).
    #: None: not said (every application of the pool); [] hosts none (a pool with no apps yet).
    apps: list[str] | None = None


class TlsInfo(msgspec.Struct, array_like=True):
    """What the front knows of a request's TLS connection (it terminates TLS; the worker never
    sees the handshake)."""

    version: str              # "TLSv1.3", "TLSv1.2"
    cipher: str               # OpenSSL's suite name, e.g. "TLS_AES_256_GCM_SHA384"
    cipher_id: int            # the suite's IANA number (ASGI's cipher_suite)
    sni: str = ""             # the server name the client asked for, "" = none
    client_cert: str = ""     # the verified client certificate, PEM; "" = none sent
    client_subject: str = ""  # its subject DN (RFC 4514, as mod_ssl's SSL_CLIENT_S_DN)
    client_issuer: str = ""   # its issuer DN
    client_serial: str = ""   # its serial number, upper-case hex


class RequestHead(msgspec.Struct, array_like=True):
    app: str                 # application key "<site id><app path>", e.g. "1/" or "1/api"
    method: str
    target: bytes            # raw request target as received
    path: bytes              # cooked path: percent-decoded, dot segments resolved, "\" -> "/"
    query: bytes             # raw query string, without "?"
    version: str             # "1.1", "1.0" or "2" (HTTP/2)
    headers: list[tuple[bytes, bytes]]  # as received (names as sent), in order
    client: tuple[str, int]
    server: tuple[str, int]
    scheme: str = "http"
    content_length: int = -1  # -1: unknown (chunked) or none
    websocket: bool = False   # an Upgrade: websocket request
    warmup: bool = False      # an application-initialization request (APP_WARMING_UP)
    tls: TlsInfo | None = None  # set when scheme is "https"
    proxied: bool = False     # client/scheme are what a trusted proxy said (server.trusted_proxies)
    # A global URL Rewrite rule (the front, before routing) changed path/query: `target` stays as
    # sent, the front added X-Original-URL. `proxy_url`: a global rule's rewrite to an absolute
    # URL (a reverse proxy; the worker's reverse_proxy handler serves it).
    rewritten: bool = False
    proxy_url: str = ""


class TracedHead(RequestHead):
    """A RequestHead with the front's OpenTelemetry span (docs/tracing.md): sent as a REQUEST
    frame with FLAG_TRACE, only while tracing is on, so with it off the frame is the plain
    RequestHead, not a byte longer."""

    trace: str = ""        # the front's server span as a W3C traceparent
    tracestate: str = ""   # the tracestate that goes with it


class FileSpan(msgspec.Struct, array_like=True):
    """Answer with a file: the front opens `path` and sends `length` bytes from `offset`."""

    status_and_headers: bytes  # same form as a ResponseHead's block: b"200 OK\r\nName: v\r\n..."
    path: str
    offset: int
    length: int


#: CacheHint.policy values: IIS's numbers for kernelCachePolicy.
CACHE_UNTIL_CHANGE = 1
CACHE_FOR_TIME_PERIOD = 2


class CacheHint(msgspec.Struct, array_like=True):
    """The worker's word that the front may keep the response that follows and serve it itself."""

    policy: int              # CACHE_UNTIL_CHANGE or CACHE_FOR_TIME_PERIOD
    duration: float          # seconds the front may serve it; 0 = until it changes
    vary: list[str]          # lower-case request header names whose values key separate copies
    mtime_ns: int = 0        # FILE: the mtime of the file the headers describe (the front checks)
    source: str = ""         # FILE: the file a compressed copy was made from; the entry goes
    source_mtime_ns: int = 0  # when it changes too (and is not stored if its mtime differs)
    not_for: int = 0         # a compressed response: NOT_FOR_* requests never get it from the cache


#: CacheHint.not_for bits: which requests a cached compressed response must not answer
#: (http_compression.no_compression_for_http_10 / no_compression_for_proxies).
NOT_FOR_HTTP_10 = 1
NOT_FOR_PROXIES = 2


_hello_enc = msgspec.msgpack.Encoder()
_hello_dec = msgspec.msgpack.Decoder(Hello)
_req_dec = msgspec.msgpack.Decoder(RequestHead)
_traced_dec = msgspec.msgpack.Decoder(TracedHead)
_file_dec = msgspec.msgpack.Decoder(FileSpan)
_cache_dec = msgspec.msgpack.Decoder(CacheHint)
encode_msgpack = _hello_enc.encode


def pack_hello(hello: Hello) -> bytes:
    return pack(FrameType.HELLO, 0, encode_msgpack(hello))


def _decode(decoder: msgspec.msgpack.Decoder, payload: bytes):
    try:
        return decoder.decode(payload)
    except msgspec.MsgspecError as exc:
        raise ProtocolError(f"undecodable {decoder.type.__name__}: {exc}") from None


def unpack_hello(payload: bytes) -> Hello:
    return _decode(_hello_dec, payload)


_REQUEST = int(FrameType.REQUEST)


def pack_request(stream: int, head: RequestHead, has_body: bool) -> bytes:
    # Once per request: a plain int for the type (struct takes an IntEnum member through its
    # __index__, and looking the member up on the enum class costs as much again).
    payload = encode_msgpack(head)
    return HEADER.pack(len(payload), _REQUEST, 0 if has_body else FLAG_FIN, stream) + payload


def pack_traced_request(stream: int, head: RequestHead, has_body: bool, traceparent: str,
                        tracestate: str) -> bytes:
    """A REQUEST frame carrying the front's trace context (FLAG_TRACE, a TracedHead)."""
    payload = encode_msgpack(TracedHead(*msgspec.structs.astuple(head), traceparent, tracestate))
    return HEADER.pack(len(payload), _REQUEST, FLAG_TRACE | (0 if has_body else FLAG_FIN),
                       stream) + payload


def unpack_request(payload: bytes, flags: int = 0) -> RequestHead:
    """The head of a REQUEST frame; a TracedHead when its flags have FLAG_TRACE."""
    return _decode(_traced_dec if flags & FLAG_TRACE else _req_dec, payload)


def pack_file(stream: int, span: FileSpan) -> bytes:
    return pack(FrameType.FILE, stream, encode_msgpack(span))


def unpack_file(payload: bytes) -> FileSpan:
    return _decode(_file_dec, payload)


def pack_cache(stream: int, hint: CacheHint) -> bytes:
    return pack(FrameType.CACHE, stream, encode_msgpack(hint))


def unpack_cache(payload: bytes) -> CacheHint:
    return _decode(_cache_dec, payload)


def pack_user(stream: int, name: str, auth_type: str) -> bytes:
    return pack(FrameType.USER, stream, auth_type.encode("utf-8") + b"\0" + name.encode("utf-8"))


def unpack_user(payload: bytes) -> tuple[str, str]:
    """-> (name, auth_type)."""
    auth_type, sep, name = bytes(payload).partition(b"\0")
    if not sep or not name:
        raise ProtocolError("USER frame without a name")
    try:
        return name.decode("utf-8"), auth_type.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("USER frame is not UTF-8") from None


def pack_modules(stream: int, names: bytes) -> bytes:
    return pack(FrameType.MODULES, stream, names)


def unpack_modules(payload) -> bytes:
    data = bytes(payload)
    if len(data) > 4096 or any(b < 0x21 or b > 0x7e for b in data):
        raise ProtocolError("MODULES frame is not a printable ASCII list")
    return data


#: TRACED payload: token, then the front's microseconds from reading the request to the worker's
#: last frame for it (`until_answer`: its time before the worker plus the worker's), from that
#: frame to the response's last byte written (`after`), and the bytes it sent for the response.
#: Durations, not timestamps: the front's and the worker's loops need not share a clock.
_TRACED = struct.Struct("<IQQQ")


def pack_trace(stream: int, token: int) -> bytes:
    return pack(FrameType.TRACE, stream, _U32.pack(token))


def unpack_trace(payload) -> int:
    if len(payload) != 4:
        raise ProtocolError("TRACE frame is not 4 bytes")
    return _U32.unpack(payload)[0]


def pack_traced(token: int, until_answer_us: int, after_us: int, sent: int) -> bytes:
    return pack(FrameType.TRACED, 0, _TRACED.pack(token, until_answer_us, after_us, sent))


def unpack_traced(payload) -> tuple[int, int, int, int]:
    """-> (token, until_answer_us, after_us, bytes sent)."""
    if len(payload) != _TRACED.size:
        raise ProtocolError("TRACED frame of the wrong size")
    return _TRACED.unpack(payload)


# RESPONSE payload: u16 substatus | i64 content_length (-1 unknown) | u32 block length | block | body
_RESP = struct.Struct("<Hqi")
_RESP_FRAME = struct.Struct("<IBBI" + "Hqi")  # HEADER then _RESP
_RESPONSE = int(FrameType.RESPONSE)


def pack_response(stream: int, block: bytes, content_length: int, substatus: int = 0,
                  body: bytes | None = None) -> bytes:
    """`block` is b"<status> <reason>\\r\\n" followed by header lines, each ending in CRLF.

    With `body` given, the whole response travels in this one frame (FIN).
    """
    # Frame header and payload meta packed by one struct: this runs once per response.
    size = len(block)
    if body is None:
        return _RESP_FRAME.pack(_RESP.size + size, _RESPONSE, 0, stream, substatus, content_length,
                                size) + block
    return b"".join((_RESP_FRAME.pack(_RESP.size + size + len(body), _RESPONSE, FLAG_FIN, stream,
                                      substatus, content_length, size), block, body))


def pack_response_parts(stream: int, block: bytes, content_length: int, substatus: int,
                        body: bytes) -> tuple[bytes, bytes]:
    """The frame `pack_response(..., body)` makes, as (everything before the body, body): a
    sender that writes both with one sendmsg never copies a large body."""
    size = len(block)
    return _RESP_FRAME.pack(_RESP.size + size + len(body), _RESPONSE, FLAG_FIN, stream, substatus,
                            content_length, size) + block, body


def unpack_response(payload: bytes | memoryview) -> tuple[int, int, bytes, bytes | memoryview]:
    """-> (substatus, content_length, block, inline body: a memoryview when `payload` is one)."""
    start = _RESP.size
    if len(payload) < start:
        raise ProtocolError(f"RESPONSE payload of {len(payload)} bytes")
    substatus, content_length, block_len = _RESP.unpack_from(payload)
    if not 0 <= block_len <= len(payload) - start:
        raise ProtocolError(f"RESPONSE block of {block_len} bytes in a {len(payload)}-byte payload")
    block = payload[start:start + block_len]
    if type(block) is not bytes:
        block = bytes(block)   # a memoryview payload (FrameReader views): the body stays a view
    return substatus, content_length, block, payload[start + block_len:]


_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")


_WINDOW_FRAME = struct.Struct("<IBBII")  # HEADER then the u32 increment
_WINDOW = int(FrameType.WINDOW)
_BODY = int(FrameType.BODY)
_END = int(FrameType.END)
_CANCEL = int(FrameType.CANCEL)


def pack_window(stream: int, increment: int) -> bytes:
    return _WINDOW_FRAME.pack(4, _WINDOW, 0, stream, increment)


def unpack_window(payload: bytes) -> int:
    if len(payload) != 4:
        raise ProtocolError(f"WINDOW payload of {len(payload)} bytes")
    return _U32.unpack(payload)[0]


def pack_abort(stream: int, status: int = 500, substatus: int = 0) -> bytes:
    """ABORT: the front answers `status` (an error page) if nothing was sent yet, else cuts the
    response. Status 0 (IIS's denyAction AbortRequest) closes the connection without a response;
    a substatus, when given, is what the access log shows."""
    if substatus:
        return pack(FrameType.ABORT, stream, _U16.pack(status) + _U16.pack(substatus))
    return pack(FrameType.ABORT, stream, _U16.pack(status))


def unpack_abort(payload: bytes) -> int:
    """The status to answer with; an empty payload means 500."""
    if not payload:
        return 500
    if len(payload) != 2 and len(payload) != 4:
        raise ProtocolError(f"ABORT payload of {len(payload)} bytes")
    return _U16.unpack_from(payload)[0]


def abort_substatus(payload: bytes) -> int:
    """The substatus an ABORT carries (0 when it has none); the payload was unpack_abort's."""
    return _U16.unpack_from(payload, 2)[0] if len(payload) == 4 else 0


def pack_body(stream: int, data: bytes) -> bytes:
    return HEADER.pack(len(data), _BODY, 0, stream) + data


def pack_body_header(stream: int, length: int) -> bytes:
    """The header of a BODY frame of `length` bytes, for a sender that writes the bytes after it
    itself (pack_response_parts)."""
    return HEADER.pack(length, FrameType.BODY, 0, stream)


def pack_end(stream: int) -> bytes:
    return HEADER.pack(0, _END, 0, stream)


def pack_cancel(stream: int) -> bytes:
    return HEADER.pack(0, _CANCEL, 0, stream)


def pack_drain() -> bytes:
    return HEADER.pack(0, FrameType.DRAIN, 0, 0)


def status_of(block: bytes) -> int:
    """The status code at the start of a response block."""
    return int(block[:3])
