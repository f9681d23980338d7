"""The front's response cache: the store with a fake clock, and the front serving hits itself."""

from __future__ import annotations

import pytest

from front_fakes import FrontRig, make_config, split_responses
from wasp.config import model
from wasp.front import cache as cache_mod
from wasp.front.cache import ResponseCache
from wasp.wire import frames as fr
from wasp.wire.frames import CACHE_FOR_TIME_PERIOD, CACHE_UNTIL_CHANGE, CacheHint

BASE = ("1/", b"example.test", b"/a.html")
BLOCK = (b"200 OK\r\nContent-Type: text/html\r\nETag: \"abc:1\"\r\n"
         b"Last-Modified: Tue, 01 Dec 2026 10:00:00 GMT\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n")
UNTIL = CacheHint(CACHE_UNTIL_CHANGE, 0.0, [])


def settings(**kw) -> model.CacheSettings:
    return model.CacheSettings(**kw)


def store(cache, base=BASE, hint=UNTIL, body=b"<p>hi</p>", now=0.0, headers=(), deps=(), pool="P", site=1):
    return cache.store(base, list(headers), hint, BLOCK, body, now, site, pool, deps)


# ---- the store ----

def test_admission_needs_frequent_hit_threshold_within_the_period():
    cache = ResponseCache(settings(frequent_hit_threshold=2, frequent_hit_time_period=10))
    assert cache.admit(BASE, 0.0) is False
    assert cache.admit(BASE, 9.9) is True          # the 2nd request within 10 s
    other = ("1/", b"example.test", b"/b.html")
    assert cache.admit(other, 0.0) is False
    assert cache.admit(other, 10.0) is False       # the window ended: counting starts again
    assert cache.admit(other, 11.0) is True


def test_threshold_of_one_admits_the_first_request():
    cache = ResponseCache(settings(frequent_hit_threshold=1))
    assert cache.admit(BASE, 0.0) is True


def test_candidate_table_is_bounded(monkeypatch):
    monkeypatch.setattr(cache_mod, "MAX_CANDIDATES", 100)
    cache = ResponseCache(settings())
    for i in range(1000):
        cache.admit(("1/", b"h", b"/%d" % i), 0.0)
    assert len(cache.candidates) == 100


def test_hit_strips_the_apps_date_and_counts():
    cache = ResponseCache(settings())
    entry = store(cache)
    assert b"Date:" not in entry.block and entry.block.startswith(b"200 OK\r\n")
    assert cache.lookup(BASE, [], 1.0) is entry
    assert cache.lookup(BASE, [], 2.0).hits == 2
    assert cache.lookup(("1/", b"other.test", b"/a.html"), [], 2.0) is None   # another Host
    assert cache.lookup(("2/", b"example.test", b"/a.html"), [], 2.0) is None  # another site
    assert cache.lookup(("1/", b"example.test", b"/A.html"), [], 2.0) is None  # another file on Linux


def test_time_period_entry_expires_at_its_time_never_before():
    cache = ResponseCache(settings())
    store(cache, hint=CacheHint(CACHE_FOR_TIME_PERIOD, 5.0, []), now=100.0)
    assert cache.lookup(BASE, [], 104.999) is not None
    assert cache.lookup(BASE, [], 105.0) is None
    assert not cache.entries and cache.size == 0


def test_scavenger_drops_entries_unused_for_its_period():
    cache = ResponseCache(settings(scavenger_period=120))
    store(cache, now=0.0)
    other = ("1/", b"example.test", b"/b.html")
    store(cache, base=other, now=0.0)
    cache.lookup(other, [], 100.0)
    cache.sweep(119.9)
    assert len(cache.entries) == 2
    cache.sweep(120.0)
    assert list(cache.entries) == [other]
    cache.sweep(219.9)
    assert list(cache.entries) == [other]
    cache.sweep(220.0)
    assert not cache.entries and not cache.varies


def test_sweep_forgets_stale_frequent_hit_counts():
    cache = ResponseCache(settings(frequent_hit_time_period=10))
    cache.admit(BASE, 0.0)
    cache.sweep(9.0)
    assert BASE in cache.candidates
    cache.sweep(10.0)
    assert not cache.candidates


def test_total_size_cap_evicts_least_recently_used():
    body = b"x" * 1000
    one = 2 * (len(BLOCK) + len(body)) + cache_mod.ENTRY_OVERHEAD + 200
    cache = ResponseCache(settings(max_cache_size=3 * one))
    bases = [("1/", b"h", b"/%d" % i) for i in range(3)]
    for base in bases:
        store(cache, base=base, body=body)
    cache.lookup(bases[0], [], 1.0)       # /0 used: /1 is now the least recently used
    store(cache, base=("1/", b"h", b"/3"), body=body)
    assert bases[1] not in cache.entries and bases[0] in cache.entries
    assert cache.size <= cache.max_size


def test_a_flood_of_distinct_urls_stays_under_the_cap():
    cache = ResponseCache(settings(max_cache_size=100_000))
    for i in range(5000):
        store(cache, base=("1/", b"h", b"/%d" % i), body=b"y" * 100)
    assert cache.size <= 100_000
    assert len(cache.entries) < 5000
    assert len(cache.varies) == len(cache.entries)


def test_response_over_max_response_size_is_not_kept():
    cache = ResponseCache(settings(max_response_size=10))
    assert store(cache, body=b"x" * 11) is None
    assert store(cache, body=b"x" * 10) is not None
    assert store(cache, base=("1/", b"h", b"/e"), body=b"") is None  # HTTP.sys: never zero-length


def test_vary_by_headers_keeps_a_copy_per_value_and_nothing_else_varies():
    cache = ResponseCache(settings())
    hint = CacheHint(CACHE_UNTIL_CHANGE, 0.0, ["accept-language"])
    store(cache, hint=hint, body=b"english", headers=[(b"Accept-Language", b"en")])
    store(cache, hint=hint, body=b"deutsch", headers=[(b"accept-language", b"de")])
    assert cache.lookup(BASE, [(b"ACCEPT-LANGUAGE", b"de"), (b"X-Other", b"1")], 1.0).body == b"deutsch"
    assert cache.lookup(BASE, [(b"Accept-Language", b"en"), (b"Cookie", b"a=b")], 1.0).body == b"english"
    assert cache.lookup(BASE, [(b"Accept-Language", b"fr")], 1.0) is None
    assert cache.lookup(BASE, [], 1.0) is None


def test_unkeyed_request_headers_do_not_vary():
    cache = ResponseCache(settings())
    store(cache, body=b"one")
    assert cache.lookup(BASE, [(b"Accept-Language", b"fr"), (b"X-Forwarded-Host", b"evil")], 1.0).body == b"one"


def test_new_vary_names_drop_the_old_copies():
    cache = ResponseCache(settings())
    store(cache, body=b"plain")
    store(cache, hint=CacheHint(CACHE_UNTIL_CHANGE, 0.0, ["accept"]), body=b"json",
          headers=[(b"Accept", b"application/json")])
    assert len(cache.entries) == 1
    assert cache.lookup(BASE, [], 1.0) is None


def test_not_modified_by_etag_then_by_date():
    cache = ResponseCache(settings())
    entry = store(cache)
    assert entry.not_modified(b'"abc:1"', None)
    assert entry.not_modified(b'W/"zzz", "abc:1"', None)
    assert entry.not_modified(b"*", None)
    assert not entry.not_modified(b'"other"', b"Tue, 01 Dec 2026 10:00:00 GMT")  # If-None-Match wins
    assert entry.not_modified(None, b"Tue, 01 Dec 2026 10:00:00 GMT")
    assert entry.not_modified(None, b"Wed, 02 Dec 2026 10:00:00 GMT")
    assert not entry.not_modified(None, b"Tue, 01 Dec 2026 09:59:59 GMT")
    assert not entry.not_modified(None, b"not a date")
    assert entry.block_304.startswith(b"304 Not Modified\r\n")
    assert b'ETag: "abc:1"' in entry.block_304 and b"Content-Type" not in entry.block_304


def test_invalidation_by_token_and_release_of_unused_tokens():
    released = []
    cache = ResponseCache(settings(), on_release=released.append)
    store(cache, deps=[(1, b"a.html"), (2, b"www")])
    other = ("1/", b"example.test", b"/b.html")
    store(cache, base=other, deps=[(1, b"b.html"), (2, b"www")])
    assert cache.invalidate((1, b"a.html")) == 1
    assert released == [(1, b"a.html")]            # (2, b"www") is still needed by /b.html
    assert cache.invalidate((2, b"www")) == 1
    assert sorted(released) == [(1, b"a.html"), (1, b"b.html"), (2, b"www")]
    assert not cache.entries and not cache.dependents
    cache.release_unused([(3, b"x")])
    assert released[-1] == (3, b"x")


def test_flush_all_a_site_or_one_url_and_drop_a_pool():
    cache = ResponseCache(settings())
    store(cache, base=("1/", b"h", b"/a"), site=1, pool="P")
    store(cache, base=("1/", b"h2", b"/a"), site=1, pool="P")
    store(cache, base=("1/", b"h", b"/b"), site=1, pool="P")
    store(cache, base=("2/", b"h", b"/a"), site=2, pool="Q")
    assert cache.flush(1, b"/a") == 2
    assert cache.drop_pool("Q") == 1
    assert cache.flush(1) == 1
    assert cache.flush() == 0 and cache.size == 0


def test_rows_for_list_cache():
    cache = ResponseCache(settings())
    store(cache, hint=CacheHint(CACHE_FOR_TIME_PERIOD, 30.0, []), now=10.0)
    cache.lookup(BASE, [], 11.0)
    [row] = cache.rows(20.0, {1: "Default Web Site"})
    assert row["url"] == "http://example.test/a.html"
    assert row["site"] == "Default Web Site" and row["site_id"] == 1
    assert row["size"] == len(b"<p>hi</p>") and row["hits"] == 1
    assert row["policy"] == "CacheForTimePeriod" and row["expires_in"] == 20.0


# ---- the front serving from the cache ----

@pytest.fixture
def rig(tmp_path):
    return FrontRig(tmp_path)


def hinted(worker, sid, body=b"<p>page</p>", block=b"200 OK\r\nContent-Type: text/html\r\nETag: \"e1\"\r\n",
           hint=UNTIL):
    worker.feed(fr.pack_cache(sid, hint) + fr.pack_response(sid, block, len(body), body=body))


def ask(rig, worker, request=b"GET /page HTTP/1.1\r\nHost: example.test\r\n\r\n", conn=None):
    """Send one request; answer it as a cacheable page when it reaches the worker. -> (status,
    headers, body, reached the worker)."""
    if conn is None:
        conn, transport = rig.connect()
    transport = conn.transport
    conn.data_received(request)
    reached = worker.requests()
    for sid, _head, _fin in reached:
        hinted(worker, sid)
    [(status, headers, body)] = split_responses(transport.take())
    return status, headers, body, bool(reached)


def test_third_request_is_a_hit_the_worker_never_sees(rig):
    worker = rig.worker()
    assert ask(rig, worker)[3] is True            # 1st: counted, not stored
    assert not rig.server.cache.entries
    assert ask(rig, worker)[3] is True            # 2nd: frequently hit, stored
    status, headers, body, reached = ask(rig, worker)
    assert (status, body, reached) == (200, b"<p>page</p>", False)
    assert headers["content-length"] == str(len(body)) and "date" in headers
    assert rig.server.dispatcher.pools["P"].served == 2


def test_a_hit_is_logged_like_any_request(rig, tmp_path):
    worker = rig.worker()
    for _ in range(3):
        ask(rig, worker)
    rig.server.close_logs()
    lines = [l for l in next((tmp_path / "logs" / "W3SVC1").glob("*.log")).read_text().splitlines()
             if not l.startswith("#")]
    assert len(lines) == 3 and all(" GET /page - 8080 " in l and " 200 0 0 " in l for l in lines)


def test_the_prebuilt_answer_follows_the_date_and_pipelined_hits_stay_in_order(rig):
    worker = rig.worker()
    ask(rig, worker)
    ask(rig, worker)
    conn, transport = rig.connect()
    conn.data_received(b"GET /page HTTP/1.1\r\nHost: example.test\r\n\r\n" * 2
                       + b"GET /other HTTP/1.1\r\nHost: example.test\r\n\r\n")
    [(sid, head, _fin)] = worker.requests()
    assert head.path == b"/other"
    worker.respond(sid, b"other")
    answers = split_responses(transport.take())
    assert [body for _s, _h, body in answers] == [b"<p>page</p>", b"<p>page</p>", b"other"]
    first_date = answers[0][1]["date"]
    rig.server.refresh_clock(rig.server.wall + 5)
    status, headers, body, reached = ask(rig, worker)
    assert (status, body, reached) == (200, b"<p>page</p>", False)
    assert headers["date"] != first_date and headers["date"] == rig.server.date.decode()
    status, headers, _b, _r = ask(rig, worker, b"GET /page HTTP/1.1\r\nHost: example.test\r\n"
                                                b"Connection: close\r\n\r\n")
    assert status == 200 and headers["connection"] == "close"


def test_head_is_served_from_a_cached_get(rig):
    worker = rig.worker()
    ask(rig, worker)
    ask(rig, worker)
    conn, transport = rig.connect()
    conn.data_received(b"HEAD /page HTTP/1.1\r\nHost: example.test\r\n\r\n")
    assert worker.requests() == []
    head = transport.take()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
    assert b"Content-Length: 11\r\n" in head and b"<p>" not in head


def test_conditional_request_gets_304_from_the_cache(rig):
    worker = rig.worker()
    ask(rig, worker)
    ask(rig, worker)
    status, headers, body, reached = ask(
        rig, worker, b'GET /page HTTP/1.1\r\nHost: example.test\r\nIf-None-Match: "e1"\r\n\r\n')
    assert (status, body, reached) == (304, b"", False)
    assert headers["etag"] == '"e1"' and "content-type" not in headers
    status, _h, body, reached = ask(
        rig, worker, b'GET /page HTTP/1.1\r\nHost: example.test\r\nIf-None-Match: "old"\r\n\r\n')
    assert (status, body, reached) == (200, b"<p>page</p>", False)


@pytest.mark.parametrize("request_bytes", [
    b"GET /page?x=1 HTTP/1.1\r\nHost: example.test\r\n\r\n",
    b"GET /page HTTP/1.1\r\nHost: example.test\r\nAuthorization: Basic dTpw\r\n\r\n",
    b"GET /page HTTP/1.1\r\nHost: example.test\r\nRange: bytes=0-1\r\n\r\n",
    b"GET /page HTTP/1.1\r\nHost: example.test\r\nIf-Range: \"e1\"\r\n\r\n",
    b"GET /page HTTP/1.1\r\nHost: example.test\r\nTranslate: f\r\n\r\n",
    b"GET /page HTTP/1.1\r\nHost: example.test\r\nContent-Length: 2\r\n\r\nab",
    b"POST /page HTTP/1.1\r\nHost: example.test\r\nContent-Length: 0\r\n\r\n",
], ids=["query", "authorization", "range", "if-range", "translate", "body", "post"])
def test_requests_http_sys_never_caches_always_reach_the_worker(rig, request_bytes):
    worker = rig.worker()
    for _ in range(4):
        assert ask(rig, worker, request_bytes)[3] is True
    assert not rig.server.cache.entries


def test_a_cached_url_still_sends_refused_requests_to_the_worker(rig):
    worker = rig.worker()
    ask(rig, worker)
    ask(rig, worker)
    assert ask(rig, worker, b"GET /page HTTP/1.1\r\nHost: example.test\r\nAuthorization: x\r\n\r\n")[3]
    assert ask(rig, worker, b"GET /page?q HTTP/1.1\r\nHost: example.test\r\n\r\n")[3]


def test_response_without_a_hint_is_never_stored(rig):
    worker = rig.worker()
    for _ in range(3):
        conn, transport = rig.connect()
        conn.data_received(b"GET /page HTTP/1.1\r\nHost: example.test\r\n\r\n")
        [(sid, _h, _f)] = worker.requests()
        worker.respond(sid, b"private")
    assert not rig.server.cache.entries


def test_another_host_of_the_same_site_is_another_entry(rig):
    worker = rig.worker()
    ask(rig, worker)
    ask(rig, worker)
    assert ask(rig, worker, b"GET /page HTTP/1.1\r\nHost: other.test\r\n\r\n")[3] is True
    assert ask(rig, worker, b"GET /page HTTP/1.1\r\nHost: EXAMPLE.test\r\n\r\n")[3] is False


def test_dot_segments_and_escapes_hit_the_same_entry_as_routing_sees_it(rig):
    worker = rig.worker()
    ask(rig, worker)
    ask(rig, worker)
    assert ask(rig, worker, b"GET /x/../%70age HTTP/1.1\r\nHost: example.test\r\n\r\n")[3] is False
    assert ask(rig, worker, b"GET /Page HTTP/1.1\r\nHost: example.test\r\n\r\n")[3] is True


def test_a_stopped_pool_is_not_served_from_the_cache(rig):
    worker = rig.worker()
    ask(rig, worker)
    ask(rig, worker)
    rig.server.dispatcher.set_state("P", "Stopped")
    conn, transport = rig.connect()
    conn.data_received(b"GET /page HTTP/1.1\r\nHost: example.test\r\n\r\n")
    assert transport.take().startswith(b"HTTP/1.1 503 ")


def test_caching_disabled_for_the_application_skips_the_cache(tmp_path):
    app = model.Application(path="/", pool="P", caching=model.Caching(enable_kernel_cache=False))
    rig = FrontRig(tmp_path, sites=[model.Site(name="S", id=1, bindings=["http/*:8080:"], applications=[app])])
    worker = rig.worker()
    for _ in range(3):
        assert ask(rig, worker)[3] is True
    assert not rig.server.cache.entries and not rig.server.cache.candidates


def test_config_reload_flushes(rig, tmp_path):
    worker = rig.worker()
    ask(rig, worker)
    ask(rig, worker)
    assert rig.server.cache.entries
    rig.server.apply_config(make_config(tmp_path))
    assert not rig.server.cache.entries


def test_scavenger_runs_on_the_sweep(tmp_path):
    config = make_config(tmp_path)
    config.cache = model.CacheSettings(scavenger_period=5)
    rig = FrontRig(tmp_path, config=config)
    worker = rig.worker()
    ask(rig, worker)
    ask(rig, worker)
    rig.advance(4.9)
    assert rig.server.cache.entries
    rig.advance(0.1)
    assert not rig.server.cache.entries


def test_a_file_response_is_cached_with_watch_tokens(rig, tmp_path):
    page = tmp_path / "a.css"
    page.write_bytes(b"body{}")
    st = page.stat()

    class Watcher:
        released = []

        def watch_file(self, path):
            return [(1, b"a.css"), (2, b"dir")]

        def release(self, token):
            self.released.append(token)

        def poll(self):
            pass

    rig.server.watcher = Watcher()
    worker = rig.worker()
    hint = CacheHint(CACHE_UNTIL_CHANGE, 0.0, [], st.st_mtime_ns)
    for _ in range(2):
        conn, transport = rig.connect()
        conn.data_received(b"GET /a.css HTTP/1.1\r\nHost: h\r\n\r\n")
        [(sid, _h, _f)] = worker.requests()
        worker.feed(fr.pack_cache(sid, hint)
                    + fr.pack_file(sid, fr.FileSpan(b"200 OK\r\nContent-Type: text/css\r\n", str(page), 0, 6)))
        assert split_responses(transport.take())[0][2] == b"body{}"
    page.write_bytes(b"changed")  # not seen by a watcher here: the entry keeps the bytes it read
    conn, transport = rig.connect()
    conn.data_received(b"GET /a.css HTTP/1.1\r\nHost: h\r\n\r\n")
    assert worker.requests() == []
    assert split_responses(transport.take())[0][2] == b"body{}"
    rig.server.cache.invalidate((1, b"a.css"))
    assert sorted(Watcher.released) == [(1, b"a.css"), (2, b"dir")]
    assert not rig.server.cache.entries


def test_a_file_changed_since_the_worker_looked_is_not_cached(rig, tmp_path):
    page = tmp_path / "a.css"
    page.write_bytes(b"body{}")

    class Watcher:
        released = []

        def watch_file(self, path):
            return [(1, b"a.css")]

        def release(self, token):
            self.released.append(token)

    rig.server.watcher = Watcher()
    rig.server.cache.threshold = 1
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"GET /a.css HTTP/1.1\r\nHost: h\r\n\r\n")
    [(sid, _h, _f)] = worker.requests()
    stale = CacheHint(CACHE_UNTIL_CHANGE, 0.0, [], page.stat().st_mtime_ns - 1)
    worker.feed(fr.pack_cache(sid, stale)
                + fr.pack_file(sid, fr.FileSpan(b"200 OK\r\nContent-Type: text/css\r\n", str(page), 0, 6)))
    assert split_responses(transport.take())[0][2] == b"body{}"
    assert not rig.server.cache.entries and Watcher.released == [(1, b"a.css")]


def test_without_a_watcher_files_are_not_cached(rig, tmp_path):
    page = tmp_path / "a.css"
    page.write_bytes(b"body{}")
    rig.server.cache.threshold = 1
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"GET /a.css HTTP/1.1\r\nHost: h\r\n\r\n")
    [(sid, _h, _f)] = worker.requests()
    worker.feed(fr.pack_cache(sid, CacheHint(CACHE_UNTIL_CHANGE, 0.0, [], page.stat().st_mtime_ns))
                + fr.pack_file(sid, fr.FileSpan(b"200 OK\r\n", str(page), 0, 6)))
    assert split_responses(transport.take())[0][2] == b"body{}"
    assert not rig.server.cache.entries


def _tls(client_cert=""):
    return fr.TlsInfo("TLSv1.3", "TLS_AES_128_GCM_SHA256", 0x1301, "example.test", client_cert)


def test_https_and_http_have_their_own_entries_and_a_client_certificate_is_never_cached(rig):
    worker = rig.worker()
    ask(rig, worker)
    ask(rig, worker)
    conn, transport = rig.connect()
    conn.tls = _tls()
    assert ask(rig, worker, conn=conn)[3] is True          # https: not the http entry
    assert ask(rig, worker, conn=conn)[3] is True          # its 2nd request: stored
    assert ask(rig, worker, conn=conn)[3] is False
    assert {row["url"] for row in rig.server.cache_rows()} == {"http://example.test/page",
                                                                "https://example.test/page"}
    conn, transport = rig.connect()
    conn.tls = _tls(client_cert="-----BEGIN CERTIFICATE-----")
    for _ in range(3):
        assert ask(rig, worker, conn=conn)[3] is True
