"""IIS system.webServer/security/ipSecurity and dynamicIpSecurity: who may ask, by address.

`ip_security` (IpRestrictionModule) is an ordered list of allow/deny entries, each an address with
a subnet mask (IPv4 or IPv6), or a domain name; `allow_unlisted` decides for a client no entry
matches. `dynamic_ip_security` (DynamicIpRestrictionModule) denies a client that has too many
requests in flight or makes too many in a short time. Both are locked by default
(overrideModeDefault="Deny", iis-behaviour.md §1.6): wasp.toml sets them at every level and for
any `[[locations]]` path; a `web.toml` only where a location unlocks them.

An entry is written `{ ip_address = "10.0.0.0", subnet_mask = "255.0.0.0" }`, or with a prefix
(`ip_address = "10.0.0.0/8"`, `subnet_mask = "8"`, `"2001:db8::/32"`), or `{ domain_name =
"*.example.com", allowed = true }`. The key of an entry is (ip_address, subnet_mask,
domain_name), as in IIS.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from msgspec import Meta, Struct, field

from wasp.config.model import doc
from wasp.config.sections import Section, check, collection, section

#: IIS's denyAction values (AbortRequest=0, Unauthorized=401, Forbidden=403, NotFound=404).
DenyAction = Literal["AbortRequest", "Unauthorized", "Forbidden", "NotFound"]
DENY_STATUS = {"AbortRequest": 0, "Unauthorized": 401, "Forbidden": 403, "NotFound": 404}

#: IIS's default subnetMask: the address itself (for an IPv6 address too: /128).
HOST_MASK = "255.255.255.255"

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_DOMAIN = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*\.?$", re.IGNORECASE)


class IpRule(Struct, forbid_unknown_fields=True, kw_only=True):
    """One `<ipSecurity><add>`."""

    ip_address: Annotated[str, doc(
        "An IPv4 or IPv6 address (\"10.0.0.0\", \"2001:db8::\"), or a network with its prefix "
        "(\"10.0.0.0/8\"); \"\" for a domain entry. An IPv4-mapped IPv6 address "
        "(\"::ffff:10.0.0.1\") is the IPv4 address, in entries and clients alike."
    )] = ""
    subnet_mask: Annotated[str, doc(
        "The mask of `ip_address`: dotted (\"255.255.0.0\"), an IPv6 mask (\"ffff:ffff::\") or a "
        "prefix length (\"16\"). The default is the address alone (/32, or /128 for IPv6)."
    )] = HOST_MASK
    domain_name: Annotated[str, doc(
        "A host name (\"host.example.com\") or a wildcard (\"*.example.com\": every name below "
        "example.com) matched against the client's reverse-DNS name, forward-confirmed; only "
        "when `enable_reverse_dns` is on. \"\" for an address entry."
    )] = ""
    allowed: Annotated[bool, doc("true: an allow entry; false: a deny entry (IIS's default).")] = False


_MAPPED = 0xFFFF << 32       # ::ffff:0:0/96, IPv4-mapped IPv6 addresses
_HIGH96 = ((1 << 96) - 1) << 32


def rule_match(rule: IpRule) -> tuple[int, int, int]:
    """(IP version, address, mask) as integers: a client matches when `client & mask == address`.
    The address is masked already. A mask need not be contiguous (IIS ANDs the bits). An
    IPv4-mapped IPv6 entry (::ffff:a.b.c.d with a mask covering the ::ffff: part) is the IPv4
    entry it maps. ValueError, with a message, for a bad entry."""
    text = rule.ip_address.strip()
    prefix = None
    if "/" in text:
        text, _, prefix = text.partition("/")
        if rule.subnet_mask not in (HOST_MASK, ""):
            raise ValueError("give the prefix either in ip_address or as subnet_mask, not both")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"\"{rule.ip_address}\" is not an IPv4 or IPv6 address") from None
    width = address.max_prefixlen
    if prefix is not None:
        if not prefix.isdigit() or int(prefix) > width:
            raise ValueError(f"\"/{prefix}\" is not a prefix length for IPv{address.version} (0 to {width})")
        mask = _ones(width, int(prefix))
    else:
        mask = _mask_of(rule.subnet_mask, address.version, width)
    version, value = address.version, int(address)
    if version == 6 and mask & _HIGH96 == _HIGH96 and value & _HIGH96 == _MAPPED:
        version, value, mask = 4, value & 0xFFFFFFFF, mask & 0xFFFFFFFF
    return version, value & mask, mask


def _ones(width: int, prefix: int) -> int:
    return ((1 << width) - 1) ^ ((1 << (width - prefix)) - 1)


def _mask_of(mask: str, version: int, width: int) -> int:
    mask = mask.strip().lstrip("/")
    if mask in ("", HOST_MASK):
        return (1 << width) - 1
    if mask.isdigit():
        if int(mask) > width:
            raise ValueError(f"subnet_mask \"{mask}\" is longer than an IPv{version} address ({width})")
        return _ones(width, int(mask))
    try:
        value = ipaddress.ip_address(mask)
    except ValueError:
        raise ValueError(f"subnet_mask \"{mask}\" is not a mask (\"255.255.255.0\", \"ffff:ffff::\") "
                         "or a prefix length (\"24\")") from None
    if value.version != version:
        raise ValueError(f"subnet_mask \"{mask}\" is an IPv{value.version} mask for an IPv{version} address")
    return int(value)


@check(IpRule)
def _check_rule(rule: IpRule, path: str, add) -> None:
    if rule.domain_name and rule.ip_address:
        add(path, "an entry has either ip_address or domain_name, not both")
    elif rule.domain_name:
        if not _DOMAIN.match(rule.domain_name):
            add(f"{path}.domain_name", f"\"{rule.domain_name}\" is not a host name or \"*.\" wildcard "
                                       "(\"host.example.com\", \"*.example.com\")")
    elif not rule.ip_address:
        add(path, "an entry needs ip_address (an address or network) or domain_name")
    else:
        try:
            rule_match(rule)
        except ValueError as exc:
            at = "subnet_mask" if str(exc).startswith("subnet_mask") else "ip_address"
            add(f"{path}.{at}", str(exc))


@section("ip_security", override_mode_default="Deny", default_collection="entries")
class IpSecurity(Section):
    """IIS system.webServer/security/ipSecurity (IpRestrictionModule)."""

    allow_unlisted: Annotated[bool, doc(
        "A client that no entry matches is let through (true) or denied (false, substatus 503)."
    )] = True
    enable_reverse_dns: Annotated[bool, doc(
        "Evaluate `domain_name` entries: the client's address is looked up in reverse DNS and the "
        "name is confirmed by a forward lookup (cached). Off: domain entries are ignored."
    )] = False
    enable_proxy_mode: Annotated[bool, doc(
        "Also check every address in `X-Forwarded-For`: the request is denied if any of them is "
        "(a forged header can only deny its sender, never admit it). A malformed header: 400.10."
    )] = False
    deny_action: Annotated[DenyAction, doc(
        "How a denied request is answered: \"Forbidden\" 403.503 (403.504 by domain), "
        "\"Unauthorized\" 401.503, \"NotFound\" 404.503, \"AbortRequest\": the connection is closed "
        "without a response."
    )] = "Forbidden"
    entries: Annotated[list[IpRule], collection(key=("ip_address", "subnet_mask", "domain_name")), doc(
        "The allow and deny entries, in order: the first that matches the client decides. Written "
        "`ip_security = [ {...}, ... ]` (added after the inherited ones) or `[ip_security]` with "
        "`clear`, `remove = [[ip_address, subnet_mask, domain_name], ...]` and `add = [...]`."
    )] = field(default_factory=list)


class DenyByConcurrentRequests(Struct, forbid_unknown_fields=True, kw_only=True):
    enabled: Annotated[bool, doc("Deny a client with this many requests in flight already (x.501).")] = False
    max_concurrent_requests: Annotated[int, Meta(ge=1), doc(
        "Requests one client may have in flight at once."
    )] = 5


class DenyByRequestRate(Struct, forbid_unknown_fields=True, kw_only=True):
    enabled: Annotated[bool, doc("Deny a client that makes too many requests in a short time (x.502).")] = False
    max_requests: Annotated[int, Meta(ge=1), doc(
        "Requests one client may make within `request_interval_ms`."
    )] = 20
    request_interval_ms: Annotated[int, Meta(ge=1, le=86_400_000), doc(
        "The interval, in milliseconds (IIS's requestIntervalInMilliseconds)."
    )] = 200


@section("dynamic_ip_security", override_mode_default="Deny")
class DynamicIpSecurity(Section):
    """IIS system.webServer/security/dynamicIpSecurity (DynamicIpRestrictionModule)."""

    deny_action: Annotated[DenyAction, doc(
        "How a denied request is answered: \"Forbidden\" 403.501/403.502, \"Unauthorized\" "
        "401.50x, \"NotFound\" 404.50x, \"AbortRequest\": the connection is closed."
    )] = "Forbidden"
    enable_logging_only_mode: Annotated[bool, doc(
        "Let requests that would be denied through, and only log them (worker log, one line per "
        "client and second at most)."
    )] = False
    deny_by_concurrent_requests: Annotated[DenyByConcurrentRequests, doc(
        "Limit on one client's requests in flight."
    )] = field(default_factory=DenyByConcurrentRequests)
    deny_by_request_rate: Annotated[DenyByRequestRate, doc(
        "Limit on one client's request rate."
    )] = field(default_factory=DenyByRequestRate)
