"""HTTP/2 at parity with HTTP/1.1 in the front: the response cache serves and stores h2 streams
(one entry for both versions: the key has the scheme, not the version), and the bandwidth buckets
and the minimum send rate apply to h2 DATA as to HTTP/1.1 writes. Over fake transports, the `h2`
library as the client."""

from __future__ import annotations

import h2.events
import h2.settings
import pytest

from front_fakes import FrontRig, make_config, split_responses
from test_front_h2 import GET, Client, body_of, ended, gone, status_of
from test_front_qos import windows
from wasp.config import model
from wasp.front.qos import MIN_RATE_GRACE
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


# ---- bandwidth and the minimum send rate ----

BIG_WINDOW = 2 ** 30


def open_client(rig) -> Client:
    """A client whose windows never limit the test: only the front's rules do."""
    client = Client(rig, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: BIG_WINDOW})
    client.h2.increment_flow_control_window(BIG_WINDOW)
    client.send()
    client.events()
    return client


def delivered(client, sid) -> int:
    return len(body_of(client.events(), sid))


def limited_rig(tmp_path, where, rate):
    if where == "site":
        sites = [model.Site(name="S", id=1, bindings=["http/*:8080:"],
                            limits=model.SiteLimits(max_bandwidth=model.Size(rate)),
                            applications=[model.Application(path="/", pool="P")])]
        return FrontRig(tmp_path, config=make_config(tmp_path, sites=sites))
    return FrontRig(tmp_path, limits=model.Limits(max_global_bandwidth=model.Size(rate)))


@pytest.mark.parametrize("where", ["site", "global"])
def test_h2_data_pays_the_bandwidth_buckets_and_acks_wait_for_the_debt(tmp_path, where):
    rate = 10_000
    rig = limited_rig(tmp_path, where, rate)
    worker = rig.worker()
    client = open_client(rig)
    sid = client.request(GET)
    [(stream, _, _)] = worker.requests()
    worker.feed(fr.pack_response(stream, b"200 OK\r\n", 100_000))
    worker.frames()
    start = rig.loop.now
    acked = got = 0
    for _ in range(20):
        worker.feed(fr.pack_body(stream, b"y" * 5000))
        rig.loop.now += 0.05
        rig.loop.run_due()
        acked += windows(worker)
        got += delivered(client, sid)
        # Never more than the burst (1/8 s of the rate, at least 1 KiB), one piece of that size
        # taken in debt, and the rate over the time.
        bound = 2 * max(1024, rate / 8) + rate * (rig.loop.now - start)
        assert got <= bound and acked <= bound + 5000, (got, acked, rig.loop.now - start)
    for _ in range(400):
        rig.loop.now += 0.05
        rig.loop.run_due()
        acked += windows(worker)
        got += delivered(client, sid)
    assert acked == 100_000 and got == 100_000     # everything goes in the end


def test_an_h2_file_under_a_bandwidth_limit_goes_in_paid_chunks(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"z" * 200_000)
    rate = 40_000
    rig = limited_rig(tmp_path, "site", rate)
    worker = rig.worker()
    client = open_client(rig)
    sid = client.request(GET)
    [(stream, _, _)] = worker.requests()
    worker.feed(fr.pack_file(stream, fr.FileSpan(b"200 OK\r\n", str(path), 0, 200_000)))
    start = rig.loop.now
    got = 0
    for _ in range(400):
        got += delivered(client, sid)
        assert got <= 2 * rate / 8 + rate * (rig.loop.now - start), rig.loop.now - start
        if got == 200_000:
            break
        rig.loop.now += 0.05
        rig.loop.run_due()
    assert got == 200_000


def test_h2_without_a_limit_has_no_buckets(tmp_path):
    rig = FrontRig(tmp_path)
    worker = rig.worker()
    client = open_client(rig)
    sid = client.request(GET)
    [(stream, _, _)] = worker.requests()
    worker.feed(fr.pack_response(stream, b"200 OK\r\n", 20_000))
    for _ in range(4):
        worker.feed(fr.pack_body(stream, b"y" * 5000))
    assert windows(worker) == 20_000 and delivered(client, sid) == 20_000
    assert client.proto._buckets is None


def _slow_h2_download(rig, worker, client):
    sid = client.request(GET)
    [(stream, _, _)] = worker.requests()
    worker.feed(fr.pack_response(stream, b"200 OK\r\n", 1_000_000), fr.pack_body(stream, b"x" * 48000))
    client.proto.pause_writing()                    # the client does not read
    return sid


def test_a_slow_h2_reader_is_cut_once_the_bytes_should_have_gone_at_240(tmp_path):
    rig = FrontRig(tmp_path)
    worker = rig.worker()
    client = open_client(rig)
    start = rig.loop.now
    _slow_h2_download(rig, worker, client)
    proto = client.proto
    sent = proto._sent
    assert sent > 48000
    due = start + MIN_RATE_GRACE + sent / 240
    assert due > start + rig.server.idle_timeout     # the rule, not the idle timer, decides
    while rig.loop.now + 1 < due:
        rig.advance(1.0)
        assert not gone(client.transport), rig.loop.now - start
    rig.advance(2.0)
    assert gone(client.transport)
    rig.server.flush_logs()
    log = (tmp_path / "logs" / "httperr" / "httperr1.log").read_text()
    assert "Timer_MinBytesPerSecond" in log


def test_an_h2_reader_that_drains_is_not_cut(tmp_path):
    rig = FrontRig(tmp_path, limits=model.Limits(connection_timeout=model.Duration(1000)))
    worker = rig.worker()
    client = open_client(rig)
    _slow_h2_download(rig, worker, client)
    rig.advance(100.0)
    client.proto.resume_writing()                   # it caught up
    rig.advance(200.0)
    rig.advance(200.0)
    assert not gone(client.transport)


def test_a_finished_h2_response_the_client_does_not_take_is_cut_by_the_min_rate(tmp_path):
    rig = FrontRig(tmp_path, limits=model.Limits(connection_timeout=model.Duration(10_000)))
    worker = rig.worker()
    client = open_client(rig)
    client.request(GET)
    [(stream, _, _)] = worker.requests()
    worker.feed(fr.pack_response(stream, b"200 OK\r\n", 24_000), fr.pack_body(stream, b"x" * 24_000))
    client.proto.pause_writing()
    worker.feed(fr.pack_end(stream))                # complete, not delivered
    assert not client.proto.streams
    rig.advance(MIN_RATE_GRACE + 24_000 / 240 - 1)
    assert not gone(client.transport)
    rig.advance(3)
    assert gone(client.transport)


# ---- WebSocket over HTTP/2 (RFC 8441 extended CONNECT) ----

WS = [(b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":scheme", b"http"),
      (b":authority", b"example.test"), (b":path", b"/chat?room=1"), (b"sec-websocket-version", b"13"),
      (b"sec-websocket-protocol", b"chat")]
ACCEPTED = (b"101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: x\r\nSec-WebSocket-Protocol: chat\r\n")


def test_settings_enable_connect_protocol(tmp_path):
    client = Client(FrontRig(tmp_path))
    assert client.h2.remote_settings.enable_connect_protocol == 1


def test_extended_connect_reaches_the_worker_as_an_http11_upgrade_and_tunnels_data(tmp_path):
    rig = FrontRig(tmp_path)
    worker = rig.worker()
    client = Client(rig)
    sid = client.request(WS, end=False)
    [(stream, head, fin)] = worker.requests()
    assert (head.method, head.path, head.query, head.version, head.websocket, fin) == \
        ("GET", b"/chat", b"room=1", "2", True, False)
    fields = dict(head.headers)
    assert fields[b"upgrade"] == b"websocket" and fields[b"connection"] == b"upgrade"
    assert len(fields[b"sec-websocket-key"]) == 24 and fields[b"sec-websocket-version"] == b"13"
    assert fields[b"sec-websocket-protocol"] == b"chat" and fields[b"host"] == b"example.test"
    worker.feed(fr.pack_response(stream, ACCEPTED, -1))
    events = client.events()
    response = next(e for e in events if isinstance(e, h2.events.ResponseReceived))
    got = dict(response.headers)
    assert got[b":status"] == b"200" and got[b"sec-websocket-protocol"] == b"chat"
    assert b"sec-websocket-accept" not in got and b"upgrade" not in got and b"content-length" not in got
    assert not ended(events, sid)
    # Client bytes reach the worker as BODY; the worker's BODY reaches the client as DATA.
    client.h2.send_data(sid, b"\x81\x02hi")
    client.send()
    assert [p for t, _, s, p in worker.frames() if t == fr.FrameType.BODY] == [b"\x81\x02hi"]
    worker.feed(fr.pack_body(stream, b"\x81\x03you"))
    assert body_of(client.events(), sid) == b"\x81\x03you"
    assert [fr.unpack_window(p) for t, _, s, p in worker.frames() if t == fr.FrameType.WINDOW] == [5]
    # A quiet tunnel is not a stalled request body: no timer cuts it (as over HTTP/1.1).
    for _ in range(3):
        rig.advance(rig.server.idle_timeout)
    assert not gone(client.transport)
    # The client's END_STREAM is the worker's END; the worker's END ends the stream.
    client.h2.end_stream(sid)
    client.send()
    assert [t for t, *_ in worker.frames()] == [fr.FrameType.END]
    worker.feed(fr.pack_end(stream))
    assert ended(client.events(), sid)
    rig.server.flush_logs()
    log = next((tmp_path / "logs" / "W3SVC1").iterdir()).read_text()
    assert " GET /chat room=1 8080 " in log and " 200 0 0 " in log


def test_a_refused_websocket_is_an_ordinary_answer(tmp_path):
    rig = FrontRig(tmp_path)
    worker = rig.worker()
    client = Client(rig)
    sid = client.request(WS, end=False)
    [(stream, _head, _fin)] = worker.requests()
    worker.feed(fr.pack_response(stream, b"403 Forbidden\r\nContent-Length: 0\r\n", 0, body=b""))
    events = client.events()
    assert status_of(events, sid) == 403 and ended(events, sid)


@pytest.mark.parametrize("headers", [
    [(b":method", b"CONNECT"), (b":protocol", b"h2c"), *WS[2:5]],
], ids=["other-protocol"])
def test_extended_connect_for_another_protocol_is_400(tmp_path, headers):
    rig = FrontRig(tmp_path)
    worker = rig.worker()
    client = Client(rig)
    sid = client.request(headers, end=False)
    assert worker.requests() == []
    assert status_of(client.events(), sid) == 400


def test_tunnel_bytes_are_not_a_request_body_over_the_limit(tmp_path):
    rig = FrontRig(tmp_path, limits=model.Limits(max_allowed_content_length=10))
    worker = rig.worker()
    client = Client(rig)
    sid = client.request(WS, end=False)
    [(stream, _head, _fin)] = worker.requests()
    worker.feed(fr.pack_response(stream, ACCEPTED, -1))
    client.events()
    client.h2.send_data(sid, b"x" * 100)
    client.send()
    assert [p for t, _, s, p in worker.frames() if t == fr.FrameType.BODY] == [b"x" * 100]
