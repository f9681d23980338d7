"""HTTP/2 at parity with HTTP/1.1 in the front: the response cache serves and stores h2 streams
(one entry for both versions: the key has the scheme, not the version), and the bandwidth buckets
and the minimum send rate apply to h2 DATA as to HTTP/1.1 writes. Over fake transports, the `h2`
library as the client."""

from __future__ import annotations

import h2.events
import pytest

from front_fakes import FrontRig, split_responses
from test_front_h2 import GET, Client, body_of, ended, status_of
from wasp.wire import frames as fr
from wasp.wire.frames import CACHE_UNTIL_CHANGE, CacheHint

UNTIL = CacheHint(CACHE_UNTIL_CHANGE, 0.0, [], 0)
PAGE = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"example.test"), (b":path", b"/page")]
BLOCK = b"200 OK\r\nContent-Type: text/html\r\nETag: \"e1\"\r\n"
BODY = b"<p>page</p>"


def hinted(worker, sid, body=BODY, block=BLOCK, hint=UNTIL):
    worker.feed(fr.pack_cache(sid, hint) + fr.pack_response(sid, block, len(body), body=body))


def ask_h2(rig, worker, headers=PAGE):
    """One h2 stream on a new connection; answered as a cacheable page when it reaches the worker.
    -> (status, fields, body, reached the worker, events)."""
    client = Client(rig)
    sid = client.request(headers)
    reached = worker.requests()
    for stream, _head, _fin in reached:
        hinted(worker, stream)
    events = client.events()
    assert ended(events, sid)
    fields = next(dict(e.headers) for e in events if isinstance(e, h2.events.ResponseReceived))
    return status_of(events, sid), fields, body_of(events, sid), bool(reached), events


def ask_h1(rig, worker, request=b"GET /page HTTP/1.1\r\nHost: example.test\r\n\r\n"):
    conn, transport = rig.connect()
    conn.data_received(request)
    reached = worker.requests()
    for sid, _head, _fin in reached:
        hinted(worker, sid)
    [(status, headers, body)] = split_responses(transport.take())
    return status, headers, body, bool(reached)


@pytest.fixture
def rig(tmp_path):
    return FrontRig(tmp_path)


# ---- the response cache ----

def test_an_entry_stored_over_http11_answers_an_h2_stream(rig):
    worker = rig.worker()
    assert ask_h1(rig, worker)[3] and ask_h1(rig, worker)[3]
    assert rig.server.cache.entries
    status, fields, body, reached, _ = ask_h2(rig, worker)
    assert (status, body, reached) == (200, BODY, False)
    assert fields[b"content-length"] == b"%d" % len(BODY) and fields[b"etag"] == b'"e1"'
    assert fields[b"content-type"] == b"text/html" and fields[b"date"] == rig.server.date
    assert fields[b"server"] == b"wasp"
    assert rig.server.dispatcher.pools["P"].served == 2


def test_h2_responses_are_stored_under_the_same_key_as_http11(rig):
    worker = rig.worker()
    assert ask_h2(rig, worker)[3] is True        # counted
    assert not rig.server.cache.entries
    assert ask_h2(rig, worker)[3] is True        # stored
    assert len(rig.server.cache.entries) == 1
    status, headers, body, reached = ask_h1(rig, worker)
    assert (status, body, reached) == (200, BODY, False)
    status, _f, body, reached, _ = ask_h2(rig, worker)
    assert (status, body, reached) == (200, BODY, False)
    assert rig.server.dispatcher.pools["P"].served == 2


def test_head_on_h2_gets_the_head_of_a_cached_get(rig):
    worker = rig.worker()
    ask_h2(rig, worker)
    ask_h2(rig, worker)
    head = [(b":method", b"HEAD")] + PAGE[1:]
    status, fields, body, reached, events = ask_h2(rig, worker, head)
    assert (status, body, reached) == (200, b"", False)
    assert fields[b"content-length"] == b"%d" % len(BODY)
    # The head alone, with END_STREAM on the HEADERS frame.
    assert not any(isinstance(e, h2.events.DataReceived) for e in events)


def test_conditional_h2_request_gets_304_from_the_cache(rig):
    worker = rig.worker()
    ask_h2(rig, worker)
    ask_h2(rig, worker)
    status, fields, body, reached, _ = ask_h2(rig, worker, PAGE + [(b"if-none-match", b'"e1"')])
    assert (status, body, reached) == (304, b"", False)
    assert fields[b"etag"] == b'"e1"' and b"content-type" not in fields
    status, _f, body, reached, _ = ask_h2(rig, worker, PAGE + [(b"if-none-match", b'"old"')])
    assert (status, body, reached) == (200, BODY, False)


@pytest.mark.parametrize("extra", [
    [(b"authorization", b"Basic dTpw")], [(b"range", b"bytes=0-1")], [(b"if-range", b'"e1"')],
    [(b"translate", b"f")],
], ids=["authorization", "range", "if-range", "translate"])
def test_h2_requests_http_sys_never_caches_reach_the_worker(rig, extra):
    worker = rig.worker()
    for _ in range(4):
        assert ask_h2(rig, worker, PAGE + extra)[3] is True
    assert not rig.server.cache.entries


def test_h2_query_and_post_are_never_cached(rig):
    worker = rig.worker()
    query = PAGE[:3] + [(b":path", b"/page?x=1")]
    post = [(b":method", b"POST")] + PAGE[1:]
    for _ in range(4):
        assert ask_h2(rig, worker, query)[3] is True
        assert ask_h2(rig, worker, post)[3] is True
    assert not rig.server.cache.entries


def test_an_h2_hit_is_logged(rig, tmp_path):
    worker = rig.worker()
    for _ in range(3):
        ask_h2(rig, worker)
    rig.server.close_logs()
    lines = [l for l in next((tmp_path / "logs" / "W3SVC1").glob("*.log")).read_text().splitlines()
             if not l.startswith("#")]
    assert len(lines) == 3 and all(" GET /page - 8080 " in l and " 200 0 0 " in l for l in lines)


def test_an_h2_file_response_is_cached(rig, tmp_path):
    page = tmp_path / "a.css"
    page.write_bytes(b"body{}")

    class Watcher:
        def watch_file(self, path):
            return [(1, b"a.css")]

        def release(self, token):
            pass

        def poll(self):
            pass

    rig.server.watcher = Watcher()
    worker = rig.worker()
    hint = CacheHint(CACHE_UNTIL_CHANGE, 0.0, [], page.stat().st_mtime_ns)
    css = PAGE[:3] + [(b":path", b"/a.css")]
    for _ in range(2):
        client = Client(rig)
        sid = client.request(css)
        [(stream, _h, _f)] = worker.requests()
        worker.feed(fr.pack_cache(stream, hint)
                    + fr.pack_file(stream, fr.FileSpan(b"200 OK\r\nContent-Type: text/css\r\n", str(page), 0, 6)))
        events = client.events()
        assert body_of(events, sid) == b"body{}" and ended(events, sid)
    assert len(rig.server.cache.entries) == 1
    client = Client(rig)
    sid = client.request(css)
    assert worker.requests() == []
    events = client.events()
    assert body_of(events, sid) == b"body{}" and status_of(events, sid) == 200
