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

import socket

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

    def line(self, conn, req, when: bytes, taken_ms: int) -> bytes:
        parts = [g(conn, req, when, taken_ms) for g in self._getters]
        room = w3c.MAX_CUSTOM_TOTAL
        for source in self._custom:
            value = w3c.custom_field(source(conn, req), room)
            if value != _DASH:
                room -= len(value)
            parts.append(value)
        return b" ".join(parts) + b"\r\n"


def compile_format(log: SiteLog, site_id: int, computer: str | None = None) -> LogFormat | None:
    """The site's format, or None for IIS's default fields without custom fields (the fast path)."""
    flags = set(log.log_ext_file_flags)
    if flags == set(DEFAULT_LOG_FLAGS) and not log.custom_fields:
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
    custom = []
    for entry in log.custom_fields:
        name = entry.source_name
        if entry.source_type == "server_variable":
            custom.append(_SERVER_VARIABLES[name.upper()])
        elif entry.source_type == "request_header":
            lower = name.lower().encode("ascii")
            custom.append(lambda c, r, n=lower: _request_header(r, n))
        else:
            lower = name.lower().encode("ascii")
            custom.append(lambda c, r, n=lower: _response_header(r, n))
    fields = w3c.fields_of(flags, [entry.log_field_name for entry in log.custom_fields])
    return LogFormat(fields, "_x" if log.custom_fields else "", chosen, tuple(custom))
