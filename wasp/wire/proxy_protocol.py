"""HAProxy's PROXY protocol, versions 1 (text) and 2 (binary), receiving side. No I/O.

`parse(data)` takes the bytes a connection sent so far and returns None (need more), or a
`ProxyHeader` (how many bytes the header took, the client it names), or raises ProxyError. The
first bytes decide: anything that cannot begin a v1 or v2 header fails at once, a v1 line is at
most 107 bytes (the spec's limit), a v2 header at most 16 + MAX_V2_LENGTH bytes. A LOCAL (v2) or
UNKNOWN (v1) header names nobody: the connection's own peer stands. v2 TLVs are walked and checked
for framing; PP2_TYPE_SSL with its client-SSL bit makes the scheme https.
"""

from __future__ import annotations

import ipaddress
import struct

V1_PREFIX = b"PROXY "
V1_MAX = 107
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: Longest v2 address block plus TLVs accepted (HAProxy's own buffer is a few KB).
MAX_V2_LENGTH = 4096

_PP2_TYPE_SSL = 0x20
_PP2_CLIENT_SSL = 0x01


class ProxyError(ValueError):
    """A malformed PROXY header: the connection is closed."""


class ProxyHeader:
    __slots__ = ("consumed", "source", "scheme")

    def __init__(self, consumed: int, source: tuple[str, int] | None, scheme: str | None = None):
        self.consumed = consumed
        self.source = source      # None: LOCAL / UNKNOWN, keep the real peer
        self.scheme = scheme

    def __repr__(self) -> str:
        return f"ProxyHeader({self.consumed}, {self.source!r}, {self.scheme!r})"


def parse(data: bytes) -> ProxyHeader | None:
    n = len(data)
    if not n:
        return None
    if data[:1] == b"P":
        if data[:len(V1_PREFIX)] != V1_PREFIX[:min(n, len(V1_PREFIX))]:
            raise ProxyError("not a PROXY protocol header")
        return _v1(data)
    if data[:len(V2_SIGNATURE)] != V2_SIGNATURE[:min(n, len(V2_SIGNATURE))]:
        raise ProxyError("not a PROXY protocol header")
    if n < 16:
        return None
    return _v2(data)


def _v1(data: bytes) -> ProxyHeader | None:
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX or b"\n" in data[:V1_MAX]:
            raise ProxyError("PROXY v1 line too long or without CRLF")
        return None
    parts = data[:end].split(b" ")
    if len(parts) < 2:
        raise ProxyError("PROXY v1 line without a protocol")
    proto = parts[1]
    if proto == b"UNKNOWN":
        return ProxyHeader(end + 2, None)
    if proto not in (b"TCP4", b"TCP6") or len(parts) != 6:
        raise ProxyError("PROXY v1 line malformed")
    version = 4 if proto == b"TCP4" else 6
    src = _address(parts[2], version)
    _address(parts[3], version)
    sport = _port(parts[4])
    _port(parts[5])
    return ProxyHeader(end + 2, (src, sport))


def _address(raw: bytes, version: int) -> str:
    try:
        ip = ipaddress.ip_address(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ProxyError("PROXY v1 address malformed") from None
    if ip.version != version:
        raise ProxyError("PROXY v1 address of the wrong family")
    return str(ip)


def _port(raw: bytes) -> int:
    # The spec: a decimal number 0..65535 without leading zeros.
    if not raw.isdigit() or len(raw) > 5 or (len(raw) > 1 and raw[:1] == b"0"):
        raise ProxyError("PROXY v1 port malformed")
    port = int(raw)
    if port > 65535:
        raise ProxyError("PROXY v1 port out of range")
    return port


def _v2(data: bytes) -> ProxyHeader | None:
    ver_cmd, fam, length = data[12], data[13], struct.unpack_from("!H", data, 14)[0]
    if ver_cmd >> 4 != 2:
        raise ProxyError("PROXY v2 header of an unknown version")
    command = ver_cmd & 0x0F
    if command > 1:
        raise ProxyError("PROXY v2 header with an unknown command")
    if length > MAX_V2_LENGTH:
        raise ProxyError("PROXY v2 header too long")
    total = 16 + length
    if len(data) < total:
        return None
    body = data[16:total]
    family, transport = fam >> 4, fam & 0x0F
    if family > 3 or transport > 2:
        raise ProxyError("PROXY v2 header with an unknown family")
    source = None
    if family == 1:
        need = 12
        if length < need:
            raise ProxyError("PROXY v2 IPv4 block truncated")
        source = (str(ipaddress.IPv4Address(body[0:4])), struct.unpack_from("!H", body, 8)[0])
    elif family == 2:
        need = 36
        if length < need:
            raise ProxyError("PROXY v2 IPv6 block truncated")
        ip = ipaddress.IPv6Address(body[0:16])
        mapped = ip.ipv4_mapped
        source = (str(mapped if mapped is not None else ip), struct.unpack_from("!H", body, 32)[0])
    elif family == 3:
        need = 216
        if length < need:
            raise ProxyError("PROXY v2 Unix block truncated")
        source = ("127.0.0.1", 0)  # a client on the proxy's machine: no address, as for unix: bindings
    else:
        need = 0
    scheme = _tlvs(body, need)
    if command == 0:  # LOCAL: the proxy's own connection (health checks): the peer stands
        return ProxyHeader(total, None)
    if family == 0:
        return ProxyHeader(total, None, scheme)
    return ProxyHeader(total, source, scheme)


def _tlvs(body: bytes, pos: int) -> str | None:
    scheme = None
    n = len(body)
    while pos < n:
        if pos + 3 > n:
            raise ProxyError("PROXY v2 TLV truncated")
        kind = body[pos]
        size = struct.unpack_from("!H", body, pos + 1)[0]
        pos += 3
        if pos + size > n:
            raise ProxyError("PROXY v2 TLV longer than the header")
        if kind == _PP2_TYPE_SSL:
            if size < 5:
                raise ProxyError("PROXY v2 SSL TLV truncated")
            if body[pos] & _PP2_CLIENT_SSL:
                scheme = "https"
        pos += size
    return scheme
