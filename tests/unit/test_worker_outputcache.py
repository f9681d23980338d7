"""The worker's output cache store and its keys: query-string variants, vary-by headers (the
profile's and the response's own Vary), expiry, the size bound with LRU eviction, and the
StoreFilter's refusals and location header."""

from __future__ import annotations

import types

from wasp.config.model import CacheProfile
from wasp.wire.h2rules import response_fields
from wasp.worker.modules.http_cache import Rule, StoreFilter
from wasp.worker.outputcache import ENTRY_OVERHEAD, KEY_PART_LIMIT, OutputCache, query_key


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_query_key_by_names_and_star():
    assert query_key(b"", ()) == ()
    assert query_key(b"a=1", ()) is None  # a query string and no vary_by_query_string
    assert query_key(b"b=2&A=1&c=3", ("a", "b")) == (("A", "1"), ("b", "2"))  # any case
    assert query_key(b"b=2&a=1", ("*",)) == query_key(b"a=1&b=2", ("*",))
    assert query_key(b"a=" + b"x" * KEY_PART_LIMIT, ("*",)) is None


def test_vary_by_profile_and_response_headers():
    store = OutputCache(1 << 20, 1 << 16)
    en, fr = [(b"Accept-Language", b"en")], [(b"accept-language", b"fr")]
    assert store.put("k", en, ("accept-language",), (), b"200 OK\r\n", b"en", 0)
    assert store.get("k", en, ("accept-language",)) == (b"200 OK\r\n", b"en")
    assert store.get("k", fr, ("accept-language",)) is None
    # The response's own Vary names join the key of its path.
    store.put("v", [(b"X-Mode", b"a")], (), ("x-mode",), b"200 OK\r\n", b"a", 0)
    assert store.get("v", [(b"X-Mode", b"b")], ()) is None
    assert store.get("v", [(b"x-mode", b"a")], ()) == (b"200 OK\r\n", b"a")


def test_expiry_and_lru_eviction_within_the_size_limit():
    clock = Clock()
    size = 3 * (len(b"200 OK\r\n") + 100 + ENTRY_OVERHEAD)
    store = OutputCache(size, 1000, clock)
    for name in ("a", "b", "c"):
        assert store.put(name, [], (), (), b"200 OK\r\n", b"x" * 100, 10)
    store.get("a", [], ())                      # a is now the most recently used
    store.put("d", [], (), (), b"200 OK\r\n", b"x" * 100, 10)
    assert store.get("b", [], ()) is None and store.get("a", [], ()) is not None
    assert store.size <= size and len(store) == 3
    clock.now += 11
    assert store.get("a", [], ()) is None       # expired
    assert not store.put("big", [], (), (), b"200 OK\r\n", b"x" * 1001, 0)  # max_response_size
    assert not OutputCache(0, 1000).put("z", [], (), (), b"200 OK\r\n", b"x", 0)


def ctx(headers=(), private=False):
    return types.SimpleNamespace(head=types.SimpleNamespace(headers=list(headers)), private=private,
                                 handler=None)


def rule(**kw):
    return Rule(CacheProfile(extension="*", policy="CacheForTimePeriod", duration=60, **kw))


def test_store_filter_keeps_a_plain_200_and_refuses_what_it_must():
    store = OutputCache(1 << 20, 1 << 16)
    block = b"200 OK\r\nContent-Length: 2\r\n"
    assert StoreFilter(store, rule(), "k", True)(ctx(), block, b"hi", 2) == block
    assert store.get("k", [], ()) == (block, b"hi")
    for name, extra in (("cookie", b"Set-Cookie: a=1\r\n"), ("nostore", b"Cache-Control: no-store\r\n"),
                        ("star", b"Vary: *\r\n"), ("no", b"X-Wasp-Output-Cache: no\r\n")):
        out = StoreFilter(store, rule(), name, True)(ctx(), block + extra, b"hi", 2)
        assert store.get(name, [], ()) is None, name
        assert b"X-Wasp-Output-Cache" not in out
    StoreFilter(store, rule(), "priv", True)(ctx(private=True), block, b"hi", 2)
    StoreFilter(store, rule(), "404", True)(ctx(), b"404 Not Found\r\n", b"hi", 2)
    StoreFilter(store, rule(), "stream", True)(ctx(), block, None, -1)
    assert all(store.get(k, [], ()) is None for k in ("priv", "404", "stream"))


def test_location_headers_and_the_override_lifetime():
    store = OutputCache(1 << 20, 1 << 16)
    out = StoreFilter(store, rule(location="Any"), "a", True)(ctx(), b"200 OK\r\n", b"x", 1)
    assert out.endswith(b"Cache-Control: public, max-age=60\r\n")
    # ServerAndClient: private for the client, still held here (the app said nothing of it).
    out = StoreFilter(store, rule(location="ServerAndClient"), "s", True)(ctx(), b"200 OK\r\n", b"x", 1)
    assert out.endswith(b"Cache-Control: private, max-age=60\r\n") and store.get("s", [], ())
    # The app's own Cache-Control stays alone.
    out = StoreFilter(store, rule(location="Any"), "c", True)(
        ctx(), b"200 OK\r\nCache-Control: max-age=5\r\n", b"x", 1)
    assert out.count(b"Cache-Control") == 1
    assert rule(location="Client").worker == (0, 0.0) and rule(location="None").location_line == \
        b"Cache-Control: no-cache\r\n"
    clock = Clock()
    timed = OutputCache(1 << 20, 1 << 16, clock)
    StoreFilter(timed, rule(), "t", True)(ctx(), b"200 OK\r\nX-Wasp-Output-Cache: 5s\r\n", b"x", 1)
    clock.now += 6
    assert timed.get("t", [], ()) is None


def test_an_empty_server_field_means_no_server_over_http2():
    _status, fields, named = response_fields(b"200 OK\r\nServer: \r\nX-A: 1\r\n")
    assert named & 2 and fields == [(b"x-a", b"1")]
