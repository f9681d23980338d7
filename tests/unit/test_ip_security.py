"""ip_security / dynamic_ip_security: decoding, matching (v4, v6, mapped, masks, domains), proxy
mode, the per-client counters and their bounds. Table-driven, attacker's inputs included."""

from __future__ import annotations

import asyncio
import threading

import pytest

from wasp.config import sections
from wasp.config.sections.ip_security import IpRule, rule_match
from wasp.worker.clients import CONCURRENCY, RATE, ClientTable
from wasp.worker.iprules import (DENIED_BY_ADDRESS, DENIED_BY_NAME, MalformedForwardedFor, RuleSet,
                                 client_ip, domain_matches, forwarded_for)
from wasp.worker.rdns import Resolver


def resolve(table):
    problems = []
    value, _ = sections.resolve([("", table)], lambda p, m: problems.append((p, m)))
    return value, problems


def ruleset(entries, **keys):
    value, problems = resolve({"ip_security": {"entries": entries, **keys}})
    assert problems == []
    return RuleSet(value.ip_security)


# ---- decoding ----

@pytest.mark.parametrize("entry, path, words", [
    ({"ip_address": "10.0.0.300"}, "ip_security.entries[0].ip_address", "not an IPv4 or IPv6"),
    ({"ip_address": "10.0.0.0", "subnet_mask": "255.0.0.0.0"}, "ip_security.entries[0].subnet_mask", "not a mask"),
    ({"ip_address": "10.0.0.0", "subnet_mask": "33"}, "ip_security.entries[0].subnet_mask", "longer"),
    ({"ip_address": "10.0.0.0/33"}, "ip_security.entries[0].ip_address", "prefix length"),
    ({"ip_address": "10.0.0.0/8", "subnet_mask": "16"}, "ip_security.entries[0].ip_address", "not both"),
    ({"ip_address": "10.0.0.0", "subnet_mask": "ffff::"}, "ip_security.entries[0].subnet_mask", "IPv6 mask"),
    ({"ip_address": "1.2.3.4", "domain_name": "a.example"}, "ip_security.entries[0]", "not both"),
    ({}, "ip_security.entries[0]", "needs ip_address"),
    ({"domain_name": "bad name"}, "ip_security.entries[0].domain_name", "not a host name"),
    ({"domain_name": "*"}, "ip_security.entries[0].domain_name", "not a host name"),
    ({"ip_address": "1.2.3.4", "allowd": True}, "ip_security.entries[0].allowd", "unknown key"),
])
def test_bad_entries_name_their_key(entry, path, words):
    _value, problems = resolve({"ip_security": [entry]})
    assert len(problems) == 1 and problems[0][0] == path and words in problems[0][1], problems


def test_defaults_are_iis():
    value, _ = resolve({})
    ip, dyn = value.ip_security, value.dynamic_ip_security
    assert (ip.allow_unlisted, ip.enable_reverse_dns, ip.enable_proxy_mode, ip.deny_action, ip.entries) == \
        (True, False, False, "Forbidden", [])
    assert (dyn.deny_action, dyn.enable_logging_only_mode) == ("Forbidden", False)
    assert (dyn.deny_by_concurrent_requests.enabled, dyn.deny_by_concurrent_requests.max_concurrent_requests) == (False, 5)
    r = dyn.deny_by_request_rate
    assert (r.enabled, r.max_requests, r.request_interval_ms) == (False, 20, 200)
    assert sections.info("ip_security").override_mode_default == "Deny"
    assert sections.info("dynamic_ip_security").override_mode_default == "Deny"


def test_entries_merge_by_key_down_the_levels():
    problems = []
    levels = [("", {"ip_security": [{"ip_address": "10.0.0.0/8"}, {"ip_address": "192.0.2.1"}]}),
              ("sites.1", {"ip_security": {"remove": [["192.0.2.1", "255.255.255.255", ""]],
                                            "add": [{"ip_address": "10.1.0.0/16", "allowed": True}]}})]
    value, _ = sections.resolve(levels, lambda p, m: problems.append((p, m)))
    assert problems == []
    assert [e.ip_address for e in value.ip_security.entries] == ["10.0.0.0/8", "10.1.0.0/16"]


# ---- matching ----

@pytest.mark.parametrize("rule, client, hit", [
    ({"ip_address": "10.0.0.0", "subnet_mask": "255.0.0.0"}, "10.200.3.4", True),
    ({"ip_address": "10.0.0.0", "subnet_mask": "255.0.0.0"}, "11.0.0.1", False),
    ({"ip_address": "10.0.0.0/8"}, "10.0.0.1", True),
    ({"ip_address": "10.0.0.0", "subnet_mask": "8"}, "10.9.9.9", True),
    ({"ip_address": "10.9.9.9"}, "10.9.9.9", True),                     # default mask: the address
    ({"ip_address": "10.9.9.9"}, "10.9.9.8", False),
    ({"ip_address": "10.0.0.0", "subnet_mask": "255.0.255.0"}, "10.7.0.9", True),   # IIS ANDs the bits
    ({"ip_address": "10.0.0.0", "subnet_mask": "255.0.255.0"}, "10.7.1.9", False),
    # attacker: an IPv4 peer seen by a dual-stack socket, and other spellings
    ({"ip_address": "10.0.0.0/8"}, "::ffff:10.0.0.1", True),
    ({"ip_address": "10.0.0.0/8"}, "::FFFF:10.0.0.1", True),
    ({"ip_address": "10.0.0.0/8"}, "::ffff:a00:1", True),
    ({"ip_address": "::ffff:10.0.0.0", "subnet_mask": "104"}, "10.3.3.3", True),     # mapped entry
    ({"ip_address": "::ffff:10.0.0.1"}, "10.0.0.1", True),
    ({"ip_address": "127.0.0.1"}, "::ffff:127.0.0.1", True),
    ({"ip_address": "10.0.0.0/8"}, "10.0.0.1%eth0", True),
    ({"ip_address": "10.0.0.0/8"}, "010.0.0.1", False),                  # not an address: no match
    ({"ip_address": "10.0.0.0/8"}, "10.0.0.1 ", False),
    ({"ip_address": "10.0.0.0/8"}, "", False),
    # IPv6
    ({"ip_address": "2001:db8::", "subnet_mask": "32"}, "2001:db8:1::5", True),
    ({"ip_address": "2001:db8::/32"}, "2001:db9::5", False),
    ({"ip_address": "2001:db8::", "subnet_mask": "ffff:ffff::"}, "2001:DB8::1", True),
    ({"ip_address": "::1"}, "::1", True),
    ({"ip_address": "::1"}, "127.0.0.1", False),
    ({"ip_address": "fe80::/10"}, "fe80::1%eth0", True),
    ({"ip_address": "0.0.0.0/0"}, "203.0.113.9", True),
    ({"ip_address": "0.0.0.0/0"}, "2001:db8::1", False),                 # v4 entry, v6 client
    ({"ip_address": "::/0"}, "2001:db8::1", True),
    ({"ip_address": "::/0"}, "::ffff:10.0.0.1", False),                  # a mapped client is IPv4
])
def test_address_entries(rule, client, hit):
    rules = ruleset([rule])
    assert rules.check(client) == (DENIED_BY_ADDRESS if hit else None)


def test_first_match_in_order_decides():
    deny_then_allow = ruleset([{"ip_address": "10.0.0.0/8"}, {"ip_address": "10.1.2.3", "allowed": True}])
    assert deny_then_allow.check("10.1.2.3") == DENIED_BY_ADDRESS
    allow_then_deny = ruleset([{"ip_address": "10.1.2.3", "allowed": True}, {"ip_address": "10.0.0.0/8"}])
    assert allow_then_deny.check("10.1.2.3") is None
    assert allow_then_deny.check("10.1.2.4") == DENIED_BY_ADDRESS


def test_allow_unlisted_false():
    rules = ruleset([{"ip_address": "192.0.2.0/24", "allowed": True}], allow_unlisted=False)
    assert rules.active
    assert rules.check("192.0.2.7") is None
    assert rules.check("198.51.100.1") == DENIED_BY_ADDRESS
    assert rules.check("garbage") == DENIED_BY_ADDRESS
    assert ruleset([], allow_unlisted=False).check("127.0.0.1") == DENIED_BY_ADDRESS
    assert not ruleset([]).active


def test_results_cache_is_bounded():
    rules = ruleset([{"ip_address": "10.0.0.0/8"}])
    for i in range(10_000):
        rules.check(f"192.0.{i // 256 % 256}.{i % 256}")
    assert len(rules._results) <= 4096


@pytest.mark.parametrize("pattern, name, hit", [
    ("example.com", "example.com", True),
    ("Example.COM.", "example.com", True),
    ("example.com", "www.example.com", False),
    ("*.example.com", "www.example.com", True),
    ("*.example.com", "a.b.example.com", True),
    ("*.example.com", "example.com", False),
    ("*.example.com", "evilexample.com", False),
    ("*.example.com", "example.com.evil.net", False),
])
def test_domain_matching(pattern, name, hit):
    assert domain_matches(pattern, name) is hit


def test_domain_entries_only_with_reverse_dns_and_only_confirmed_names():
    asked = []

    def names(address):
        asked.append(address)
        return {"10.0.0.1": ["host.example.com"], "10.0.0.2": []}.get(address, [])

    entries = [{"domain_name": "*.example.com"}, {"ip_address": "10.0.0.0/8", "allowed": True}]
    off = ruleset(entries, allow_unlisted=False)
    assert off.check("10.0.0.1", names) is None and asked == []     # ignored: the IP entry allows
    on = ruleset(entries, allow_unlisted=False, enable_reverse_dns=True)
    assert on.check("10.0.0.1", names) == DENIED_BY_NAME
    assert on.check("10.0.0.2", names) is None                       # no confirmed name
    assert on.check("10.0.0.1", names) == DENIED_BY_NAME and asked.count("10.0.0.1") == 2  # not memoised
    first_ip = ruleset([{"ip_address": "10.0.0.1", "allowed": True}, {"domain_name": "*.example.com"}],
                       enable_reverse_dns=True)
    asked.clear()
    assert first_ip.check("10.0.0.1", names) is None and asked == []  # decided before a lookup


def test_resolver_caches_never_blocks_the_loop_and_never_waits_behind_a_flood():
    release = threading.Event()
    calls = []

    def lookup(address):
        calls.append(address)
        if address.startswith("10."):
            release.wait(5)
        return ["host.example.com"] if address == "192.0.2.1" else []

    now = [0.0]
    resolver = Resolver(lookup, wait=0.05, ttl=10, negative_ttl=1, max_pending=2, backoff=5,
                        clock=lambda: now[0])

    async def main():
        assert resolver.cached("192.0.2.1") is None
        assert await resolver.resolve("192.0.2.1") == ["host.example.com"]
        assert resolver.cached("192.0.2.1") == ["host.example.com"]
        assert await resolver.resolve("192.0.2.1") == ["host.example.com"] and calls.count("192.0.2.1") == 1
        now[0] = 11.0
        assert resolver.cached("192.0.2.1") is None  # expired
        assert await resolver.resolve("192.0.2.1") == ["host.example.com"] and calls.count("192.0.2.1") == 2
        # A slow lookup: the loop keeps running while a request waits for it.
        ticks = []

        async def ticker():
            while not release.is_set() and len(ticks) < 10000:
                ticks.append(1)
                await asyncio.sleep(0)
        tick = asyncio.ensure_future(ticker())
        first, second = await asyncio.gather(resolver.resolve("10.0.0.1"), resolver.resolve("10.0.0.1"))
        assert first == second == [] and calls.count("10.0.0.1") == 1   # one shared lookup
        assert ticks  # other work ran on the loop while both waited
        assert await resolver.resolve("10.0.0.2") == []                   # backing off: no wait
        assert await resolver.resolve("10.0.0.3") == [] and "10.0.0.3" not in calls  # saturated
        release.set()
        await tick
        now[0] = 30.0
        resolver._pool.shutdown(wait=True)
        resolver._pool = None
        assert "10.0.0.1" not in resolver._pending   # the lookup a waiter gave up on finished
        assert resolver.cached("10.0.0.1") == []     # and its failure is cached
        assert await resolver.resolve("192.0.2.9") == [] and "192.0.2.9" in calls  # backoff over

    try:
        asyncio.run(main())
    finally:
        release.set()
        resolver.close()


def test_confirmed_names_of_loopback():
    from wasp.worker.rdns import confirmed_names
    names = confirmed_names("127.0.0.1")
    assert "localhost" in names


@pytest.mark.parametrize("values, expect", [
    ([b"203.0.113.9"], ["203.0.113.9"]),
    ([b"203.0.113.9, 10.0.0.1"], ["203.0.113.9", "10.0.0.1"]),
    ([b"203.0.113.9:4711", b"[2001:db8::1]:443"], ["203.0.113.9", "2001:db8::1"]),
    ([b"::ffff:10.0.0.1"], ["10.0.0.1"]),
    ([b" , 203.0.113.9 ,"], ["203.0.113.9"]),
])
def test_forwarded_for(values, expect):
    assert forwarded_for([(b"X-Forwarded-For", v) for v in values] + [(b"Host", b"x")]) == expect


@pytest.mark.parametrize("value", [b"unknown", b"203.0.113.9, evil", b"1.2.3.4:99999", b"[::1", b"_hidden"])
def test_malformed_forwarded_for(value):
    with pytest.raises(MalformedForwardedFor):
        forwarded_for([(b"x-forwarded-for", value)])


def test_client_ip():
    assert client_ip("::ffff:1.2.3.4") == (4, 0x01020304)
    assert client_ip("1.2.3.4") == (4, 0x01020304)
    assert client_ip("nope") is None
    assert rule_match(IpRule(ip_address="10.1.2.3", subnet_mask="255.0.0.0")) == (4, 0x0A000000, 0xFF000000)


# ---- dynamic: the per-client table ----

class Req:
    def __init__(self):
        self.finished = False
        self.cancelled = False


def test_concurrency_limit_and_release():
    table = ClientTable(clock=lambda: 0.0)
    reqs = [Req() for _ in range(3)]
    assert [table.admit("a", r, max_concurrent=2) for r in reqs] == [0, 0, CONCURRENCY]
    assert table.admit("b", Req(), max_concurrent=2) == 0          # per client
    table.release("a", reqs[0])
    assert table.admit("a", Req(), max_concurrent=2) == 0


def test_a_lost_end_request_does_not_lock_a_client_out():
    table = ClientTable(clock=lambda: 0.0)
    reqs = [Req(), Req()]
    for r in reqs:
        assert table.admit("a", r, max_concurrent=2) == 0
    reqs[0].finished = True   # never released (an ASGI task cancelled past END_REQUEST)
    reqs[1].cancelled = True
    assert table.admit("a", Req(), max_concurrent=2) == 0


def test_rate_limit_denies_then_recovers():
    now = [0.0]
    table = ClientTable(clock=lambda: now[0])
    results = []
    for i in range(25):
        now[0] = i * 0.001
        results.append(table.admit("a", Req(), max_requests=20, interval=0.2))
    assert results[:20] == [0] * 20 and set(results[20:]) == {RATE}
    assert table.admit("b", Req(), max_requests=20, interval=0.2) == 0
    now[0] = 0.45   # two intervals later
    assert table.admit("a", Req(), max_requests=20, interval=0.2) == 0


def test_sliding_window_counts_the_previous_window():
    now = [0.0]
    table = ClientTable(clock=lambda: now[0])
    for _ in range(10):
        assert table.admit("a", Req(), max_requests=10, interval=1.0) == 0
    now[0] = 1.1   # 90 % of the previous window still counts: 9 + 1 = 10 allowed, next is 11
    assert table.admit("a", Req(), max_requests=10, interval=1.0) == 0
    assert table.admit("a", Req(), max_requests=10, interval=1.0) == RATE


def test_logging_only_mode_admits_but_judges():
    table = ClientTable(clock=lambda: 0.0)
    verdicts = [table.admit("a", Req(), max_concurrent=1, enforce=False) for _ in range(3)]
    assert verdicts == [0, CONCURRENCY, CONCURRENCY]


def test_table_is_bounded_against_many_addresses():
    now = [0.0]
    table = ClientTable(limit=1000, clock=lambda: now[0])
    for i in range(100_000):
        now[0] = i * 1e-6
        table.admit(f"2001:db8::{i:x}", Req(), max_requests=20, interval=0.2)
    assert len(table) <= 1000


def test_idle_clients_expire():
    now = [0.0]
    table = ClientTable(clock=lambda: now[0])
    for i in range(100):
        table.admit(f"10.0.0.{i}", Req(), max_requests=5, interval=0.2)
    now[0] = 10.0
    table.admit("10.1.0.1", Req(), max_requests=5, interval=0.2)
    assert len(table) == 1
    busy = Req()
    table.admit("10.2.0.1", busy, max_concurrent=1)
    now[0] = 20.0
    table.admit("10.3.0.1", Req(), max_concurrent=1)
    assert len(table) == 2   # 10.2.0.1 still has a request in flight
