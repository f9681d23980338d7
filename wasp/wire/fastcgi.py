"""FastCGI 1.0 records, sans-I/O (the Open Market specification, 1996).

A record is an 8-byte header (version 1, type, request id, content length, padding length,
reserved) followed by its content and padding. The web server speaks the Responder role: it sends
BEGIN_REQUEST, the PARAMS stream (name-value pairs, ended by an empty PARAMS record) and the STDIN
stream (ended by an empty STDIN record); the application answers with STDOUT and STDERR streams
and one END_REQUEST. `pack_*` build records; `Reader` turns the application's bytes into events,
whatever way they were split, and refuses what a correct application never sends (a version
other than 1, a record of a web-server type) with FastCgiError. Records of another request id
are skipped: wasp never multiplexes a connection, so they can only be stale.
"""

from __future__ import annotations

import struct

VERSION = 1

BEGIN_REQUEST = 1
ABORT_REQUEST = 2
END_REQUEST = 3
PARAMS = 4
STDIN = 5
STDOUT = 6
STDERR = 7
DATA = 8
GET_VALUES = 9
GET_VALUES_RESULT = 10
UNKNOWN_TYPE = 11

RESPONDER = 1
AUTHORIZER = 2
FILTER = 3

KEEP_CONN = 1

#: END_REQUEST protocolStatus values.
REQUEST_COMPLETE = 0
CANT_MPX_CONN = 1
OVERLOADED = 2
UNKNOWN_ROLE = 3

HEADER = struct.Struct(">BBHHBx")
_BEGIN_BODY = struct.Struct(">HB5x")
_END_BODY = struct.Struct(">IB3x")
MAX_CONTENT = 0xFFFF
#: Most bytes one name or value may have when decoding (a 4-byte length allows 2 GiB).
MAX_PAIR = 1 << 20


class FastCgiError(ValueError):
    """The application sent bytes that are not FastCGI (or not what a Responder may send)."""


def record(rtype: int, request_id: int, content: bytes = b"") -> bytes:
    """One record, padded to a multiple of 8 bytes as the specification recommends."""
    length = len(content)
    if length > MAX_CONTENT:
        raise ValueError("a record holds at most 65535 bytes")
    padding = -length & 7
    return HEADER.pack(VERSION, rtype, request_id, length, padding) + content + b"\x00" * padding


def stream(rtype: int, request_id: int, data) -> bytes:
    """`data` as records of `rtype`, each at most 65535 bytes (nothing for empty data: the
    empty record that ends a stream is `record(rtype, request_id)`)."""
    if len(data) <= MAX_CONTENT - 7:
        return record(rtype, request_id, bytes(data)) if data else b""
    view = memoryview(data)
    parts = []
    for start in range(0, len(view), MAX_CONTENT - 7):  # 65528: padding stays 0
        parts.append(record(rtype, request_id, bytes(view[start:start + MAX_CONTENT - 7])))
    return b"".join(parts)


def pack_begin(request_id: int, role: int = RESPONDER, keep_conn: bool = True) -> bytes:
    return record(BEGIN_REQUEST, request_id, _BEGIN_BODY.pack(role, KEEP_CONN if keep_conn else 0))


def pack_abort(request_id: int) -> bytes:
    return record(ABORT_REQUEST, request_id)


def pack_end_request(request_id: int, app_status: int = 0, protocol_status: int = REQUEST_COMPLETE) -> bytes:
    """The application side's END_REQUEST (tests and fakes)."""
    return record(END_REQUEST, request_id, _END_BODY.pack(app_status, protocol_status))


def _length(n: int) -> bytes:
    if n < 128:
        return bytes((n,))
    if n > 0x7FFFFFFF:
        raise ValueError("a name or value over 2 GiB")
    return struct.pack(">I", n | 0x80000000)


def encode_pairs(pairs) -> bytes:
    """Name-value pairs in FastCGI's length-prefixed form. A str is encoded as UTF-8 with
    surrogateescape, so a value decoded from raw bytes that way goes out as the same bytes."""
    out = bytearray()
    for name, value in pairs:
        if name.__class__ is str:
            name = name.encode("utf-8", "surrogateescape")
        if value.__class__ is str:
            value = value.encode("utf-8", "surrogateescape")
        n = len(name)
        v = len(value)
        if n < 128:
            out.append(n)
        else:
            out += _length(n)
        if v < 128:
            out.append(v)
        else:
            out += _length(v)
        out += name
        out += value
    return bytes(out)


def decode_pairs(data: bytes, limit: int = MAX_PAIR) -> list[tuple[bytes, bytes]]:
    """The inverse of encode_pairs; FastCgiError on a truncated or oversized pair."""
    pairs = []
    pos = 0
    end = len(data)
    while pos < end:
        lengths = []
        for _ in range(2):
            if pos >= end:
                raise FastCgiError("truncated name-value pair length")
            first = data[pos]
            if first < 128:
                lengths.append(first)
                pos += 1
            else:
                if pos + 4 > end:
                    raise FastCgiError("truncated 4-byte name-value pair length")
                lengths.append(struct.unpack_from(">I", data, pos)[0] & 0x7FFFFFFF)
                pos += 4
        nlen, vlen = lengths
        if nlen > limit or vlen > limit:
            raise FastCgiError("a name-value pair over the size limit")
        if pos + nlen + vlen > end:
            raise FastCgiError("truncated name-value pair")
        pairs.append((bytes(data[pos:pos + nlen]), bytes(data[pos + nlen:pos + nlen + vlen])))
        pos += nlen + vlen
    return pairs


def pack_params(request_id: int, pairs) -> bytes:
    """The whole PARAMS stream, its closing empty record included."""
    return stream(PARAMS, request_id, encode_pairs(pairs)) + record(PARAMS, request_id)


def pack_stdin(request_id: int, data) -> bytes:
    """STDIN records for `data`; `pack_stdin(id, b"")` is the empty record ending the stream."""
    if not data:
        return record(STDIN, request_id)
    return stream(STDIN, request_id, data)


def pack_get_values(names) -> bytes:
    return record(GET_VALUES, 0, encode_pairs((name, b"") for name in names))


# ---- what the application sends ----

class Stdout:
    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data

    def __repr__(self) -> str:
        return f"Stdout({self.data!r})"


class Stderr:
    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data

    def __repr__(self) -> str:
        return f"Stderr({self.data!r})"


class EndRequest:
    __slots__ = ("app_status", "protocol_status")

    def __init__(self, app_status: int, protocol_status: int):
        self.app_status = app_status
        self.protocol_status = protocol_status

    def __repr__(self) -> str:
        return f"EndRequest({self.app_status}, {self.protocol_status})"


class Values:
    """GET_VALUES_RESULT (management record, request id 0)."""

    __slots__ = ("pairs",)

    def __init__(self, pairs):
        self.pairs = pairs


_FROM_APP = {STDOUT, STDERR, END_REQUEST, GET_VALUES_RESULT, UNKNOWN_TYPE}


class Reader:
    """Feed the application's bytes; `events()` after each feed. One request id at a time."""

    __slots__ = ("request_id", "_buf", "ended", "stdout_closed", "stderr_closed")

    def __init__(self, request_id: int = 1):
        self.request_id = request_id
        self._buf = bytearray()
        self.ended = False
        self.stdout_closed = False
        self.stderr_closed = False

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data) -> list:
        """-> events (Stdout, Stderr, EndRequest, Values) complete in the bytes fed so far. A
        FastCgiError carries the events of the records before the bad one in `events`."""
        events = []
        try:
            return self._parse(data, events)
        except FastCgiError as exc:
            exc.events = events
            raise

    def _parse(self, data, events: list) -> list:
        buf = self._buf
        buf += data
        pos = 0
        size = len(buf)
        while size - pos >= 8:
            version, rtype, rid, length, padding = HEADER.unpack_from(buf, pos)
            if version != VERSION:
                raise FastCgiError(f"record version {version}, not 1")
            if rtype not in _FROM_APP:
                raise FastCgiError(f"record type {rtype} is not one an application sends")
            total = 8 + length + padding
            if size - pos < total:
                break
            content = bytes(buf[pos + 8:pos + 8 + length])
            pos += total
            if rtype == GET_VALUES_RESULT or rtype == UNKNOWN_TYPE:
                if rid != 0:
                    raise FastCgiError("a management record with a request id")
                if rtype == GET_VALUES_RESULT:
                    events.append(Values(decode_pairs(content)))
                continue
            if rid != self.request_id or self.ended:
                continue  # a stale request's record
            if rtype == STDOUT:
                if length == 0:
                    self.stdout_closed = True
                elif not self.stdout_closed:
                    events.append(Stdout(content))
            elif rtype == STDERR:
                if length == 0:
                    self.stderr_closed = True
                elif not self.stderr_closed:
                    events.append(Stderr(content))
            else:
                if length < 8:
                    raise FastCgiError("END_REQUEST shorter than 8 bytes")
                app_status, protocol_status = _END_BODY.unpack_from(content)
                self.ended = True
                events.append(EndRequest(app_status, protocol_status))
        if pos:
            del buf[:pos]
        return events

    def reset(self, request_id: int) -> None:
        """Ready for the next request on a kept connection."""
        self.request_id = request_id
        self.ended = self.stdout_closed = self.stderr_closed = False
