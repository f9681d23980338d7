"""PROXY protocol v1 and v2 parsing (wire/proxy_protocol.py): good headers, and every way a bad
or partial one must fail or wait."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from wasp.wire.proxy_protocol import MAX_V2_LENGTH, V2_SIGNATURE, ProxyError, parse


def v2(command=1, family=0x11, addresses=None, tlvs=b"", length=None):
    if addresses is None:
        addresses = (ipaddress.IPv4Address("198.51.100.7").packed + ipaddress.IPv4Address("10.0.0.1").packed
                     + struct.pack("!HH", 4711, 80))
    body = addresses + tlvs
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(body) if length is None else length) + body


def tlv(kind, value):
    return bytes([kind]) + struct.pack("!H", len(value)) + value


def test_v1_tcp4():
    data = b"PROXY TCP4 198.51.100.7 10.0.0.1 4711 80\r\nGET / HTTP/1.1\r\n"
    header = parse(data)
    assert header.source == ("198.51.100.7", 4711)
    assert data[header.consumed:] == b"GET / HTTP/1.1\r\n"


def test_v1_tcp6_and_unknown():
    assert parse(b"PROXY TCP6 2001:db8::7 2001:db8::1 4711 443\r\n").source == ("2001:db8::7", 4711)
    header = parse(b"PROXY UNKNOWN whatever\r\n")
    assert header.source is None and header.consumed == 24


@pytest.mark.parametrize("partial", [b"P", b"PROX", b"PROXY TCP4 198.51", b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\r"])
def test_v1_partial_waits(partial):
    assert parse(partial) is None


@pytest.mark.parametrize("bad", [
    b"GET / HTTP/1.1\r\n",
    b"PRoXY TCP4",
    b"PROXY TCP4 198.51.100.7 10.0.0.1 4711\r\n",
    b"PROXY TCP4 2001:db8::7 10.0.0.1 4711 80\r\n",
    b"PROXY TCP4 198.51.100.777 10.0.0.1 4711 80\r\n",
    b"PROXY TCP4 198.51.100.7 10.0.0.1 04711 80\r\n",
    b"PROXY TCP4 198.51.100.7 10.0.0.1 99999 80\r\n",
    b"PROXY UDP4 198.51.100.7 10.0.0.1 4711 80\r\n",
    b"PROXY TCP4 198.51.100.7 10.0.0.1 4711 80\n",
    b"PROXY " + b"x" * 200,
])
def test_v1_malformed_fails(bad):
    with pytest.raises(ProxyError):
        parse(bad)


def test_v2_ipv4_with_the_request_after_it():
    data = v2() + b"GET / HTTP/1.1\r\n"
    header = parse(data)
    assert header.source == ("198.51.100.7", 4711) and header.scheme is None
    assert data[header.consumed:] == b"GET / HTTP/1.1\r\n"


def test_v2_ipv6():
    addresses = (ipaddress.IPv6Address("2001:db8::7").packed + ipaddress.IPv6Address("2001:db8::1").packed
                 + struct.pack("!HH", 4711, 443))
    assert parse(v2(family=0x21, addresses=addresses)).source == ("2001:db8::7", 4711)


def test_v2_with_tlvs_and_ssl():
    ssl = tlv(0x20, bytes([0x01]) + b"\0\0\0\0" + tlv(0x21, b"TLSv1.3"))
    header = parse(v2(tlvs=tlv(0x01, b"h2") + tlv(0x04, b"") + ssl + tlv(0xE0, b"custom")))
    assert header.source == ("198.51.100.7", 4711) and header.scheme == "https"


def test_v2_local_keeps_the_peer():
    header = parse(v2(command=0, family=0x00, addresses=b""))
    assert header.source is None and header.consumed == 16


def test_v2_unix_family_is_local():
    assert parse(v2(family=0x31, addresses=b"\0" * 216)).source == ("127.0.0.1", 0)


def test_v2_partial_waits_at_every_length():
    data = v2(tlvs=tlv(0x01, b"h2"))
    for cut in range(len(data)):
        assert parse(data[:cut]) is None, cut
    assert parse(data).consumed == len(data)


@pytest.mark.parametrize("bad", [
    V2_SIGNATURE[:5] + b"X",                                        # signature broken early
    V2_SIGNATURE + bytes([0x10, 0x11]) + struct.pack("!H", 12) + b"\0" * 12,   # version 1 in a v2 header
    V2_SIGNATURE + bytes([0x22, 0x11]) + struct.pack("!H", 12) + b"\0" * 12,   # command 2
    V2_SIGNATURE + bytes([0x21, 0x41]) + struct.pack("!H", 12) + b"\0" * 12,   # family 4
    v2(addresses=b"\0" * 8),                                        # IPv4 block truncated
    v2(family=0x21, addresses=b"\0" * 20),                          # IPv6 block truncated
    v2(tlvs=b"\x01\x00"),                                           # TLV head truncated
    v2(tlvs=b"\x01\x00\x09abc"),                                    # TLV longer than the header
    v2(tlvs=tlv(0x20, b"\x01")),                                    # SSL TLV truncated
])
def test_v2_malformed_fails(bad):
    with pytest.raises(ProxyError):
        parse(bad)


def test_v2_length_is_bounded_before_the_bytes_arrive():
    with pytest.raises(ProxyError):
        parse(V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", MAX_V2_LENGTH + 1))
