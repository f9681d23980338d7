"""X-Forwarded-For / X-Forwarded-Proto / Forwarded from trusted proxies only (wire/forwarded.py)."""

from __future__ import annotations

import pytest

from wasp.wire.forwarded import TrustedProxies, node_address, parse_forwarded, resolve

TRUSTED = TrustedProxies(["127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"])


def xff(peer, *values, proto=None):
    return resolve(peer, TRUSTED, None, [v.encode() for v in values] or None,
                   [proto.encode()] if proto else None)


def test_nobody_is_trusted_by_default():
    assert resolve("127.0.0.1", TrustedProxies(), None, [b"1.2.3.4"], [b"https"]) is None


def test_spoofed_headers_from_an_untrusted_peer_are_ignored():
    assert xff("203.0.113.9", "1.2.3.4", proto="https") is None
    assert resolve("203.0.113.9", TRUSTED, [b"for=1.2.3.4;proto=https"], None, None) is None


def test_one_hop_from_a_trusted_proxy():
    assert xff("127.0.0.1", "198.51.100.7", proto="https") == (("198.51.100.7", 0), "https")


def test_chain_takes_the_right_most_untrusted_address():
    # The client claims to be 6.6.6.6 (forged), its real address 198.51.100.7 was appended by the
    # first trusted proxy 10.1.1.1, which the second (the peer) appended.
    assert xff("10.9.9.9", "6.6.6.6, 198.51.100.7", "10.1.1.1") == (("198.51.100.7", 0), None)


def test_chain_of_only_trusted_addresses_takes_the_left_most():
    assert xff("127.0.0.1", "10.0.0.5, 10.0.0.6") == (("10.0.0.5", 0), None)


def test_garbage_ends_the_walk_at_the_last_trusted_hop():
    assert xff("127.0.0.1", "not-an-ip, 10.0.0.6") == (("10.0.0.6", 0), None)
    assert xff("127.0.0.1", "<script>") is None
    assert xff("127.0.0.1", "1.2.3.4.5") is None
    assert xff("127.0.0.1", "") is None


def test_ipv6_addresses_and_ports():
    assert xff("::1", "2001:db8::7") == (("2001:db8::7", 0), None)
    assert xff("::1", "[2001:db8::7]:4711") == (("2001:db8::7", 4711), None)
    assert xff("fd00::1", "198.51.100.7:8080") == (("198.51.100.7", 8080), None)
    assert xff("::ffff:127.0.0.1", "198.51.100.7") == (("198.51.100.7", 0), None)  # mapped peer
    assert xff("127.0.0.1", "::ffff:198.51.100.7") == (("198.51.100.7", 0), None)


@pytest.mark.parametrize("node", ["[2001:db8::1", "1.2.3.4:99999", "1.2.3.4:x", "[::1]x", "unknown", "_hidden"])
def test_bad_nodes(node):
    assert node_address(node) is None


def test_forwarded_header_with_proto_of_the_client_hop():
    got = resolve("10.0.0.2", TRUSTED, [b'for=192.0.2.60;proto=https;by=203.0.113.43, for="10.0.0.3"'], None, None)
    assert got == (("192.0.2.60", 0), "https")


def test_forwarded_ipv6_quoted_with_port():
    got = resolve("127.0.0.1", TRUSTED, [b'For="[2001:db8:cafe::17]:4711"'], None, None)
    assert got == (("2001:db8:cafe::17", 4711), None)


def test_forwarded_wins_over_x_forwarded_for():
    got = resolve("127.0.0.1", TRUSTED, [b"for=192.0.2.60"], [b"198.51.100.7"], [b"https"])
    assert got == (("192.0.2.60", 0), None)


def test_forwarded_unknown_or_malformed_is_ignored():
    assert resolve("127.0.0.1", TRUSTED, [b"for=unknown"], None, None) is None
    assert resolve("127.0.0.1", TRUSTED, [b"garbage"], None, None) is None
    assert parse_forwarded([b'for="a,b";proto=http']) == [{"for": '"a,b"', "proto": "http"}]


def test_proto_only_from_a_trusted_peer():
    assert resolve("127.0.0.1", TRUSTED, None, None, [b"https"]) == (("127.0.0.1", 0), "https")
    assert resolve("127.0.0.1", TRUSTED, None, None, [b"gopher"]) is None


def test_proto_list_aligned_with_the_chain():
    assert xff("10.9.9.9", "198.51.100.7, 10.1.1.1", proto="https, http") == (("198.51.100.7", 0), "https")
    # Not aligned: the value nearest to us.
    assert xff("10.9.9.9", "198.51.100.7, 10.1.1.1", proto="http") == (("198.51.100.7", 0), "http")


def test_several_header_lines_make_one_list():
    got = resolve("127.0.0.1", TRUSTED, None, [b"6.6.6.6", b"198.51.100.7"], None)
    assert got == (("198.51.100.7", 0), None)


def test_trust_cache_is_bounded():
    trusted = TrustedProxies(["10.0.0.0/8"])
    for i in range(5000):
        assert (f"11.0.{i // 256}.{i % 256}" in trusted) is False
    assert len(trusted._cache) <= 4096
