"""A site's W3C line format when it is not IIS's default: the fields its `log_ext_file_flags`
choose, in IIS's order, then its custom fields (IIS 8.5 enhanced logging).

`compile_format` runs once per config (routing.py builds each SiteEntry with it) and returns None
for IIS's default set without custom fields, which keeps the front's fast path
(`wasp.wire.w3c.access_line`); otherwise a `LogFormat` whose `line` calls one small getter per
field, chosen at compile time, not per request. Values are escaped as every W3C field is (spaces
and control characters as `+`, `-` for empty).

Byte counts, as the front knows them: `sc-bytes` is what the front wrote for the response (over
HTTP/1.1 the status line, header lines and body, chunk framing included; over HTTP/2 the stream's
HEADERS and DATA frames, frame headers and HPACK-compressed header blocks included), interim
100 Continue responses not counted; `cs-bytes` is the request head (over HTTP/1.1 the request
line and header lines; over HTTP/2 the header list as HTTP.sys sizes it, name + value + 4 per
field) plus the body bytes received (chunk framing not counted).
"""

from __future__ import annotations

import json
import socket
import time

from wasp.config.model import DEFAULT_LOG_FLAGS, SiteLog
from wasp.wire import w3c

_ESC = bytes(0x2B if (c <= 0x20 or c == 0x7F) else c for c in range(256))
_DASH = b"-"


def _e(value: bytes | None) -> bytes:
    return value.translate(_ESC) if value else _DASH


def _version(req) -> bytes:
    return b"HTTP/" + req.version.encode() if req.version else _DASH


def _sent(conn, req) -> int:
    st = req.h2
    return st.sent if st is not None else conn._sent


def _received(req) -> int:
    if req.h2 is not None:
        return req.head_bytes + req.received
    if not req.method:
        return req.received
    # "METHOD SP target SP HTTP/1.1 CRLF", the header lines (head_bytes), the empty line
    return len(req.method) + len(req.target) + 12 + req.head_bytes + 2 + req.received


def _request_header(req, name: bytes) -> bytes | None:
    values = [v for k, v in req.headers if k.lower() == name]
    return b",".join(values) if values else None


def _response_header(req, name: bytes) -> bytes | None:
    block = req.resp_headers
    if block is None:
        return None
    if isinstance(block, list):   # HTTP/2: the header list sent (names lower-case)
        values = [v for k, v in block if k == name]
    else:                         # HTTP/1.1: the worker's block, b"200 OK\r\nName: v\r\n..."
        values = []
        for line in block.split(b"\r\n")[1:]:
            k, colon, v = line.partition(b":")
            if colon and k.strip().lower() == name:
                values.append(v.strip())
    return b",".join(values) if values else None


def _port_of(conn, req) -> bytes:
    if req.client is not None:
        return b"%d" % req.client[1]
    return b"%d" % conn.peer[1]


_SERVER_VARIABLES = {
    "HTTPS": lambda c, r: b"off" if c.tls is None else b"on",
    "SERVER_PROTOCOL": lambda c, r: _version(r),
    "SERVER_PORT": lambda c, r: c.s_port,
    "SERVER_PORT_SECURE": lambda c, r: b"0" if c.tls is None else b"1",
    "CRYPT_PROTOCOL": lambda c, r: c.tls.version.encode() if c.tls is not None else None,
    "CRYPT_CIPHER_ALG_ID": lambda c, r: c.tls.cipher.encode() if c.tls is not None else None,
    "REMOTE_ADDR": lambda c, r: r.c_ip or c.c_ip,
    "REMOTE_PORT": _port_of,
    "HTTP_HOST": lambda c, r: r.host,
    "REQUEST_METHOD": lambda c, r: r.method,
    "URL": lambda c, r: r.path,
    "QUERY_STRING": lambda c, r: r.query,
    "LOCAL_ADDR": lambda c, r: c.s_ip,
    "WASP_MODULES": lambda c, r: r.modules,
}
assert set(_SERVER_VARIABLES) == w3c.SERVER_VARIABLES


class LogFormat:
    """One site's compiled line format: `fields` for the header, `suffix` for the file name."""

    __slots__ = ("fields", "suffix", "_getters", "_custom")

    def __init__(self, fields: str, suffix: str, getters: tuple, custom: tuple):
        self.fields = fields
        self.suffix = suffix
        self._getters = getters
        self._custom = custom

    def line(self, conn, req, when: bytes, taken_ms: int, wall: float = 0.0) -> bytes:
        parts = [g(conn, req, when, taken_ms) for g in self._getters]
        room = w3c.MAX_CUSTOM_TOTAL
        for source in self._custom:
            value = w3c.custom_field(source(conn, req), room)
            if value != _DASH:
                room -= len(value)
            parts.append(value)
        return b" ".join(parts) + b"\r\n"


def compile_format(log: SiteLog, site_id: int, computer: str | None = None):
    """The site's format, or None for IIS's default W3C fields without custom fields (the fast
    path). `log` is a SiteLog or the central log's settings (no custom fields)."""
    kind = getattr(log, "log_format", "w3c")
    if kind == "ncsa":
        return NcsaFormat()
    if kind == "iis":
        return IisFormat(site_id, computer)
    custom_fields = getattr(log, "custom_fields", [])
    if kind == "json":
        return JsonFormat(log.log_ext_file_flags, custom_fields, site_id, computer)
    flags = set(log.log_ext_file_flags)
    if flags == set(DEFAULT_LOG_FLAGS) and not custom_fields:
        return None
    sitename = b"W3SVC%d" % site_id           # logSiteId = true, IIS's default
    host = _e((computer if computer is not None else socket.gethostname()).encode("utf-8", "replace"))
    getters = {
        "Date": lambda c, r, w, t: w[:10],
        "Time": lambda c, r, w, t: w[11:],
        "SiteName": lambda c, r, w, t: sitename,
        "ComputerName": lambda c, r, w, t: host,
        "ServerIP": lambda c, r, w, t: c.s_ip,
        "Method": lambda c, r, w, t: _e(r.method),
        "UriStem": lambda c, r, w, t: _e(r.path),
        "UriQuery": lambda c, r, w, t: _e(r.query),
        "ServerPort": lambda c, r, w, t: c.s_port,
        "UserName": lambda c, r, w, t: _e(r.user),
        "ClientIP": lambda c, r, w, t: r.c_ip or c.c_ip,
        "ProtocolVersion": lambda c, r, w, t: _version(r),
        "UserAgent": lambda c, r, w, t: _e(r.user_agent),
        "Cookie": lambda c, r, w, t: _e(_request_header(r, b"cookie")),
        "Referer": lambda c, r, w, t: _e(r.referer),
        "Host": lambda c, r, w, t: _e(r.host),
        "HttpStatus": lambda c, r, w, t: b"%d" % r.status,
        "HttpSubStatus": lambda c, r, w, t: b"%d" % r.substatus,
        "Win32Status": lambda c, r, w, t: b"%d" % r.win32,
        "BytesSent": lambda c, r, w, t: b"%d" % _sent(c, r),
        "BytesRecv": lambda c, r, w, t: b"%d" % _received(r),
        "TimeTaken": lambda c, r, w, t: b"%d" % t,
    }
    assert set(getters) == {flag for flag, _ in w3c.FLAG_FIELDS}
    chosen = tuple(getters[flag] for flag, _ in w3c.FLAG_FIELDS if flag in flags)
    custom = _custom_getters(custom_fields)
    fields = w3c.fields_of(flags, [entry.log_field_name for entry in custom_fields])
    return LogFormat(fields, "_x" if custom_fields else "", chosen, tuple(custom))


def _custom_getters(custom_fields) -> list:
    custom = []
    for entry in custom_fields:
        name = entry.source_name
        if entry.source_type == "server_variable":
            custom.append(_SERVER_VARIABLES[name.upper()])
        elif entry.source_type == "request_header":
            lower = name.lower().encode("ascii")
            custom.append(lambda c, r, n=lower: _request_header(r, n))
        else:
            lower = name.lower().encode("ascii")
            custom.append(lambda c, r, n=lower: _response_header(r, n))
    return custom


# ---------------------------------------------------------------------- NCSA, IIS, JSON lines

_MONTHS = (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec")


class _LocalClock:
    """The local time of the current second, formatted once a second."""

    __slots__ = ("_second", "value", "_fmt")

    def __init__(self, fmt) -> None:
        self._second = -1
        self.value = b""
        self._fmt = fmt

    def at(self, wall: float) -> bytes:
        second = int(wall)
        if second != self._second:
            self._second = second
            self.value = self._fmt(time.localtime(second))
        return self.value


def _ncsa_time(t: time.struct_time) -> bytes:
    off = t.tm_gmtoff // 60
    sign = b"+" if off >= 0 else b"-"
    off = abs(off)
    return b"[%02d/%s/%04d:%02d:%02d:%02d %s%02d%02d]" % (
        t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec, sign, off // 60, off % 60)


def _uri(req) -> bytes:
    path = req.path or req.target or b""
    return path + (b"?" + req.query if req.query else b"")


def _q(value: bytes | None) -> bytes:
    """A field inside NCSA's quoted request: a `"` would end the quotes early, so it is %22."""
    return _e(value).replace(b'"', b"%22")


class NcsaFormat:
    """NCSA Common Log Format, as IIS writes it: `c-ip - user [local time] "request" status bytes`.
    The request line's parts are escaped as W3C fields are (spaces as `+`), so a line always has
    its seven fields; bytes is sc-bytes. No header block (NCSA has none)."""

    fields = None
    suffix = ""

    def __init__(self) -> None:
        self._clock = _LocalClock(_ncsa_time)

    def line(self, conn, req, when: bytes, taken_ms: int, wall: float = 0.0) -> bytes:
        return b'%s - %s %s "%s %s %s" %d %d\r\n' % (
            req.c_ip or conn.c_ip, _e(req.user), self._clock.at(wall or time.time()), _e(req.method),
            _q(_uri(req)), _version(req), req.status, _sent(conn, req))


_IIS_ESC = bytes(0x2B if (c <= 0x20 or c == 0x7F) else c for c in range(256))


def _i(value: bytes | None) -> bytes:
    """An IIS-format field: `-` when empty, a comma (the separator) as %2C."""
    if not value:
        return _DASH
    return value.translate(_IIS_ESC).replace(b",", b"%2C")


class IisFormat:
    """IIS's native log format: comma-separated, local time. Fields: client IP, user name, date
    (MM/DD/YY), time (H:MM:SS), service and instance (W3SVC<id>), server name, server IP, time
    taken, client bytes sent, server bytes sent, status, Windows status, request type, target,
    parameters; each followed by ", " and the line by "," as IIS writes it."""

    fields = None
    suffix = ""

    def __init__(self, site_id: int, computer: str | None = None) -> None:
        self._service = b"W3SVC%d" % site_id
        self._host = _i((computer if computer is not None else socket.gethostname()).encode("utf-8", "replace"))
        self._clock = _LocalClock(lambda t: b"%02d/%02d/%02d, %d:%02d:%02d" % (
            t.tm_mon, t.tm_mday, t.tm_year % 100, t.tm_hour, t.tm_min, t.tm_sec))

    def line(self, conn, req, when: bytes, taken_ms: int, wall: float = 0.0) -> bytes:
        return b"%s, %s, %s, %s, %s, %s, %d, %d, %d, %d, %d, %s, %s, %s,\r\n" % (
            req.c_ip or conn.c_ip, _i(req.user), self._clock.at(wall or time.time()), self._service,
            self._host, conn.s_ip, taken_ms, _received(req), _sent(conn, req), req.status, req.win32,
            _i(req.method), _i(req.path), _i(req.query))


def _text(value) -> str | None:
    if value is None or value == b"":
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class JsonFormat:
    """One JSON object a line (wasp's own format): the W3C field names chosen by
    log_ext_file_flags, in IIS's order, then the custom fields; numbers as numbers, values
    unescaped (JSON escapes them), null for empty. `date` and `time` are UTC."""

    fields = None

    def __init__(self, flags, custom_fields, site_id: int, computer: str | None = None) -> None:
        chosen = set(flags)
        host = computer if computer is not None else socket.gethostname()
        sitename = f"W3SVC{site_id}"
        raw = {
            "Date": lambda c, r, w, t: w[:10].decode(),
            "Time": lambda c, r, w, t: w[11:].decode(),
            "SiteName": lambda c, r, w, t: sitename,
            "ComputerName": lambda c, r, w, t: host,
            "ServerIP": lambda c, r, w, t: _text(c.s_ip),
            "Method": lambda c, r, w, t: _text(r.method),
            "UriStem": lambda c, r, w, t: _text(r.path),
            "UriQuery": lambda c, r, w, t: _text(r.query),
            "ServerPort": lambda c, r, w, t: int(c.s_port) if c.s_port.isdigit() else None,
            "UserName": lambda c, r, w, t: _text(r.user),
            "ClientIP": lambda c, r, w, t: _text(r.c_ip or c.c_ip),
            "ProtocolVersion": lambda c, r, w, t: _text(_version(r)) if r.version else None,
            "UserAgent": lambda c, r, w, t: _text(r.user_agent),
            "Cookie": lambda c, r, w, t: _text(_request_header(r, b"cookie")),
            "Referer": lambda c, r, w, t: _text(r.referer),
            "Host": lambda c, r, w, t: _text(r.host),
            "HttpStatus": lambda c, r, w, t: r.status,
            "HttpSubStatus": lambda c, r, w, t: r.substatus,
            "Win32Status": lambda c, r, w, t: r.win32,
            "BytesSent": lambda c, r, w, t: _sent(c, r),
            "BytesRecv": lambda c, r, w, t: _received(r),
            "TimeTaken": lambda c, r, w, t: t,
        }
        self._getters = tuple((name, raw[flag]) for flag, name in w3c.FLAG_FIELDS if flag in chosen)
        self._custom = tuple(zip([e.log_field_name for e in custom_fields], _custom_getters(custom_fields)))
        self.suffix = "_x" if custom_fields else ""

    def line(self, conn, req, when: bytes, taken_ms: int, wall: float = 0.0) -> bytes:
        record = {name: g(conn, req, when, taken_ms) for name, g in self._getters}
        for name, source in self._custom:
            value = source(conn, req)
            record[name] = _text(value[:w3c.MAX_CUSTOM_FIELD]) if value else None
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
