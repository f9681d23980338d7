"""Who the client is behind trusted reverse proxies: X-Forwarded-For, X-Forwarded-Proto and
RFC 7239 Forwarded. No I/O: header values in, an address and a scheme out.

Only a peer in the trusted set may speak for a client. The chain of addresses is walked from the
right (the hop nearest to us) leftwards, skipping trusted proxies, as nginx's
`real_ip_recursive on` does: the first untrusted address is the client. When every address is
trusted, the left-most is. An entry that is not an address (`unknown`, an obfuscated `_node`,
garbage) ends the walk: the client is then the last address walked, a proxy we trust, so nothing
an untrusted party wrote is ever taken as the client.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_CACHE_LIMIT = 4096


class TrustedProxies:
    """A set of addresses and networks; `in` takes an address string."""

    __slots__ = ("networks", "_cache")

    def __init__(self, entries: Iterable[str] = ()):
        self.networks: tuple[Network, ...] = tuple(ipaddress.ip_network(e, strict=False) for e in entries)
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, address: str) -> bool:
        cache = self._cache
        hit = cache.get(address)
        if hit is not None:
            return hit
        ip = parse_ip(address)
        found = ip is not None and any(ip.version == n.version and ip in n for n in self.networks)
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[address] = found
        return found


def parse_ip(text: str):
    """An address (IPv4-mapped IPv6 as IPv4, zone dropped), or None."""
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped if mapped is not None else ip


def node_address(text: str) -> tuple[str, int] | None:
    """An X-Forwarded-For entry or a Forwarded `for=` node: "1.2.3.4", "1.2.3.4:80",
    "[2001:db8::1]", "[2001:db8::1]:443", "2001:db8::1" -> (address, port); None for anything
    else (unknown, obfuscated identifiers, garbage)."""
    text = text.strip().strip('"').strip()
    port = 0
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        host, rest = text[1:end], text[end + 1:]
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit() or len(rest) > 6:
                return None
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        if not p.isdigit() or len(p) > 5:
            return None
        port = int(p)
    else:
        host = text
    if port > 65535:
        return None
    ip = parse_ip(host)
    if ip is None:
        return None
    return (str(ip), port)


def _walk(nodes: list[str], peer: str, trusted: TrustedProxies) -> tuple[tuple[str, int], int] | None:
    """(client, index into nodes) by the right-to-left walk; index -1 = the peer itself; None
    when the chain names nobody usable."""
    client: tuple[str, int] = (peer, 0)
    index = -1
    for i in range(len(nodes) - 1, -1, -1):
        if client[0] not in trusted:
            break
        node = node_address(nodes[i])
        if node is None:
            break
        client, index = node, i
    return client, index


def _split_list(values: list[bytes]) -> list[str]:
    out: list[str] = []
    for value in values:
        out.extend(part.strip() for part in value.decode("latin-1").split(","))
    return [p for p in out if p]


def _scheme(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip().strip('"').strip().lower()
    return text if text in ("http", "https") else None


def parse_forwarded(values: list[bytes]) -> list[dict[str, str]] | None:
    """RFC 7239 elements as dicts of lower-case parameter names; None when malformed."""
    elements: list[dict[str, str]] = []
    for value in values:
        text = value.decode("latin-1")
        for element in _split_quoted(text, ","):
            params: dict[str, str] = {}
            for pair in _split_quoted(element, ";"):
                pair = pair.strip()
                if not pair:
                    continue
                name, eq, val = pair.partition("=")
                if not eq or not name.strip():
                    return None
                params[name.strip().lower()] = val.strip()
            if params:
                elements.append(params)
    return elements


def _split_quoted(text: str, sep: str) -> list[str]:
    parts, buf, quoted, escaped = [], [], False, False
    for ch in text:
        if escaped:
            buf.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            buf.append(ch)
            escaped = True
        elif ch == '"':
            quoted = not quoted
            buf.append(ch)
        elif ch == sep and not quoted:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return parts


def resolve(peer: str, trusted: TrustedProxies, forwarded: list[bytes] | None,
            xff: list[bytes] | None, xfp: list[bytes] | None) -> tuple[tuple[str, int], str | None] | None:
    """((client address, port), scheme or None) that a trusted `peer` forwards for, or None when
    the peer is not trusted or says nothing usable. `Forwarded` wins over the X- headers."""
    if not trusted or peer not in trusted:
        return None
    if forwarded:
        elements = parse_forwarded(forwarded)
        if not elements:
            return None
        nodes = [e.get("for", "") for e in elements]
        client, index = _walk(nodes, peer, trusted)
        if index < 0:
            return None
        return client, _scheme(elements[index].get("proto"))
    if xff:
        nodes = _split_list(xff)
        client, index = _walk(nodes, peer, trusted)
        scheme = None
        if xfp:
            protos = _split_list(xfp)
            if protos:
                # One value per hop when the proxies append; else the one nearest to us.
                scheme = _scheme(protos[index] if len(protos) == len(nodes) and index >= 0 else protos[-1])
        if index < 0 and scheme is None:
            return None
        return client, scheme
    if xfp:
        protos = _split_list(xfp)
        scheme = _scheme(protos[-1]) if protos else None
        return ((peer, 0), scheme) if scheme else None
    return None
