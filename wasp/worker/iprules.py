"""IP and domain restrictions without I/O: compiled rules, the client's addresses, the verdict.

A `RuleSet` is compiled once per effective `ip_security` section (shared by every URL of a
directory) and answers `check(address, names)` -> None (let through) or the substatus of the
denial (503: an address entry or allow_unlisted = false; 504: a domain entry). Entries are tried
in configuration order and the first that matches decides, as IIS does (its manager's "View
Ordered List" is that order: inherited entries first, then the level's own). An address that is
not an IP address at all matches no entry (allow_unlisted decides).

Clients and entries are compared as integers: an IPv4-mapped IPv6 client (`::ffff:10.0.0.1`, a
dual-stack socket's view of an IPv4 peer) is its IPv4 address, so it cannot slip past an IPv4
deny entry; an IPv6 zone (`fe80::1%eth0`) is dropped.

Domain entries need the client's name: `names(address)` is called at most once per check, and
only when an entry that needs it is reached (wasp/worker/rdns.py does the lookups).
"""

from __future__ import annotations

import socket
from typing import Callable

from wasp.config.sections.ip_security import rule_match
from wasp.wire.forwarded import node_address

#: Substatuses (iis-behaviour.md §2.8, §9).
DENIED_BY_ADDRESS = 503
DENIED_BY_NAME = 504

_RESULTS_LIMIT = 4096


_MAPPED_PREFIX = bytes(10) + b"\xff\xff"


def client_ip(text: str) -> tuple[int, int] | None:
    """(version, integer) of an address string; IPv4-mapped IPv6 as IPv4; None if not an IP.
    inet_pton (strict: no leading zeros, no shorthand IPv4 forms) is ten times ipaddress's speed."""
    if "%" in text:
        text = text.split("%", 1)[0]
    try:
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except (OSError, ValueError):
        pass
    try:
        packed = socket.inet_pton(socket.AF_INET6, text)
    except (OSError, ValueError):
        return None
    if packed[:12] == _MAPPED_PREFIX:
        return 4, int.from_bytes(packed[12:], "big")
    return 6, int.from_bytes(packed, "big")


def domain_matches(pattern: str, name: str) -> bool:
    """`name` (lower case, no trailing dot) against an entry: exact, or `*.example.com` for every
    name below example.com (not example.com itself)."""
    pattern = pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        return name.endswith(pattern[1:]) and len(name) > len(pattern) - 1
    return name == pattern


class RuleSet:
    """The compiled entries of one effective ip_security section."""

    __slots__ = ("rules", "allow_unlisted", "has_domains", "proxy_mode", "deny_status", "_results")

    def __init__(self, section):
        rules: list[tuple] = []
        for rule in section.entries:
            if rule.domain_name:
                if section.enable_reverse_dns:  # IIS ignores domain entries without it
                    rules.append((0, rule.domain_name.lower().rstrip("."), 0, rule.allowed))
                continue
            version, value, mask = rule_match(rule)  # checked when the section was decoded
            rules.append((version, value, mask, rule.allowed))
        self.rules = tuple(rules)
        self.allow_unlisted = section.allow_unlisted
        self.has_domains = any(r[0] == 0 for r in rules)
        self.proxy_mode = section.enable_proxy_mode
        self.deny_status = section.deny_action
        self._results: dict[str, int | None] = {}

    @property
    def active(self) -> bool:
        """Whether a request can be denied at all (a section with no entries that allows the
        unlisted lets everyone through: the module then does nothing, not even `private`)."""
        return bool(self.rules) or not self.allow_unlisted

    def check(self, address: str, names: Callable[[str], list[str] | None] | None = None) -> int | None:
        """None: `address` may pass; else the substatus of its denial."""
        results = self._results
        if address in results:
            return results[address]
        ip = client_ip(address)
        looked_up = False
        verdict: int | None = None if self.allow_unlisted else DENIED_BY_ADDRESS
        for version, value, mask, allowed in self.rules:
            if version == 0:
                if ip is None or names is None:
                    continue
                found = names(address)
                looked_up = True
                if not found or not any(domain_matches(value, n) for n in found):
                    continue
                verdict = None if allowed else DENIED_BY_NAME
                break
            if ip is not None and ip[0] == version and ip[1] & mask == value:
                verdict = None if allowed else DENIED_BY_ADDRESS
                break
        if not looked_up:  # a verdict that depended on DNS may change: only address ones are kept
            if len(results) >= _RESULTS_LIMIT:
                results.clear()
            results[address] = verdict
        return verdict


class MalformedForwardedFor(ValueError):
    """An X-Forwarded-For entry that is not an address (IIS: 400.10)."""


def forwarded_for(headers: list[tuple[bytes, bytes]]) -> list[str]:
    """Every address in the request's X-Forwarded-For headers, left to right ("1.2.3.4:80",
    "[2001:db8::1]:443" and bare IPv6 taken; ports dropped). MalformedForwardedFor for an entry
    that is not an address."""
    found: list[str] = []
    for name, value in headers:
        if len(name) != 15 or name.lower() != b"x-forwarded-for":
            continue
        for part in value.decode("latin-1").split(","):
            part = part.strip()
            if not part:
                continue
            node = node_address(part)
            if node is None:
                raise MalformedForwardedFor(f"X-Forwarded-For entry {part[:64]!r} is not an address")
            found.append(node[0])
    return found
