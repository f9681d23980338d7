"""wasp.front.connection with a fake transport and a fake worker link: the front's HTTP behaviour."""

from __future__ import annotations

import pytest

from front_fakes import FrontRig, make_config, split_responses
from wasp.config import model
from wasp.front.request import Stage
from wasp.wire import frames as fr
from wasp.wire.frames import FLAG_FIN, FrameType, INITIAL_WINDOW

GET = b"GET /a/../b%20c?x=1 HTTP/1.1\r\nHost: www.example.test\r\nUser-Agent: t 1\r\n\r\n"


@pytest.fixture
def rig(tmp_path):
    return FrontRig(tmp_path)


def log_lines(tmp_path, name="W3SVC1"):
    folder = tmp_path / "logs" / name
    files = sorted(folder.glob("*.log"))
    assert len(files) == 1, files
    return [line for line in files[0].read_text().splitlines() if not line.startswith("#")]


def httperr_lines(tmp_path):
    path = tmp_path / "logs" / "httperr" / "httperr1.log"
    return [line for line in path.read_text().splitlines() if not line.startswith("#")]


# ---- the request frame and a plain response ----

def test_request_frame_carries_the_cooked_request(rig):
    worker = rig.worker()
    conn, transport = rig.connect(peername=("127.0.0.1", 50123))
    conn.data_received(GET)
    [(sid, head, fin)] = worker.requests()
    assert fin
    assert head.app == "1/"
    assert head.method == "GET"
    assert head.target == b"/a/../b%20c?x=1"
    assert head.path == b"/b c"
    assert head.query == b"x=1"
    assert head.version == "1.1"
    assert head.headers == [(b"Host", b"www.example.test"), (b"User-Agent", b"t 1")]
    assert head.client == ("127.0.0.1", 50123)
    assert head.server == ("127.0.0.1", 8080)
    assert head.content_length == -1 and not head.websocket
    assert transport.out == b""


def test_response_head_gets_length_server_and_date(rig, tmp_path):
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(GET)
    [(sid, _, _)] = worker.requests()
    worker.respond(sid, b"hello")
    head, _, body = bytes(transport.out).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert b"Content-Type: text/plain" in lines
    assert b"Content-Length: 5" in lines
    assert b"Server: wasp" in lines
    assert b"Date: " + rig.server.date in lines
    assert not any(line.startswith(b"Connection") for line in lines)
    assert body == b"hello"
    assert not transport.closed
    rig.server.flush_logs()
    [line] = log_lines(tmp_path)
    fields = line.split(" ")
    assert fields[2:11] == ["127.0.0.1", "GET", "/b+c", "x=1", "8080", "-", "127.0.0.1", "t+1", "-"]
    assert fields[11:14] == ["200", "0", "0"]


def test_app_server_header_wins_and_empty_config_sends_none(tmp_path):
    rig = FrontRig(tmp_path, server_header="")
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(GET)
    [(sid, _, _)] = worker.requests()
    worker.respond(sid, b"x")
    assert b"Server:" not in transport.take()
    conn.data_received(GET)
    [(sid, _, _)] = worker.requests()
    worker.respond(sid, b"x", block=b"200 OK\r\nserver: mine\r\n")
    out = transport.take()
    assert out.count(b"erver:") == 1 and b"server: mine" in out


def test_keep_alive_serves_requests_one_after_another(rig):
    worker = rig.worker()
    conn, transport = rig.connect()
    for i in range(3):
        conn.data_received(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
        [(sid, head, _)] = worker.requests()
        assert head.path == b"/%d" % i
        worker.respond(sid, b"r%d" % i)
    assert [r[2] for r in split_responses(bytes(transport.out))] == [b"r0", b"r1", b"r2"]
    assert not transport.closed


def test_pipelined_requests_are_answered_in_order(rig):
    worker = rig.worker(capacity=8)
    conn, transport = rig.connect()
    conn.data_received(b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(3)))
    order = []
    for i in range(3):
        [(sid, head, _)] = worker.requests()  # one at a time: the next goes after the answer
        order.append(head.path)
        worker.respond(sid, head.path)
    assert order == [b"/0", b"/1", b"/2"]
    assert [r[2] for r in split_responses(bytes(transport.out))] == [b"/0", b"/1", b"/2"]


def test_too_deep_a_pipeline_pauses_reading(rig):
    rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 40)
    assert transport.paused


def test_http10_closes_unless_keep_alive_is_asked(rig):
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"GET / HTTP/1.0\r\n\r\n")
    [(sid, head, _)] = worker.requests()
    assert head.version == "1.0"
    worker.respond(sid)
    assert b"Connection: close" in transport.out and transport.closed
    conn, transport = rig.connect()
    conn.data_received(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    [(sid, _, _)] = worker.requests()
    worker.respond(sid)
    assert b"Connection: keep-alive\r\n" in transport.out and not transport.closed


def test_connection_close_is_honoured(rig):
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    [(sid, _, _)] = worker.requests()
    worker.respond(sid)
    assert b"Connection: close\r\n" in transport.out
    assert transport.closed


def test_head_never_writes_a_body(rig):
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, head, _)] = worker.requests()
    assert head.method == "HEAD"
    worker.respond(sid, b"should not appear", length=17)
    out = bytes(transport.out)
    assert out.endswith(b"\r\n\r\n") and b"Content-Length: 17" in out
    conn.data_received(b"HEAD /s HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, _, _)] = worker.requests()
    transport.take()
    worker.feed(fr.pack_response(sid, b"200 OK\r\n", -1), fr.pack_body(sid, b"zzz"), fr.pack_end(sid))
    out = transport.take()
    assert out.endswith(b"\r\n\r\n") and b"zzz" not in out and b"chunked" not in out


# ---- request bodies ----

def test_content_length_body_streams_to_the_worker(rig):
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234")
    conn.data_received(b"56789")
    frames = worker.frames()
    assert [f[0] for f in frames] == [FrameType.REQUEST, FrameType.BODY, FrameType.BODY, FrameType.END]
    assert not frames[0][1] & FLAG_FIN
    assert fr.unpack_request(frames[0][3]).content_length == 10
    assert frames[1][3] + frames[2][3] == b"0123456789"


def test_chunked_body_is_dechunked(rig):
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"POST /f HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n")
    frames = worker.frames()
    head = fr.unpack_request(frames[0][3])
    assert head.content_length == -1
    assert b"".join(f[3] for f in frames if f[0] == FrameType.BODY) == b"hello world"
    assert frames[-1][0] == FrameType.END
    assert (b"X-T", b"1") not in head.headers


def test_upload_beyond_the_window_pauses_the_client_until_window(rig):
    worker = rig.worker()
    conn, transport = rig.connect()
    size = INITIAL_WINDOW + 200_000
    conn.data_received(b"POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
    chunk = b"x" * 65536
    sent = 0
    while sent < size and not transport.paused:
        n = min(len(chunk), size - sent)
        conn.data_received(chunk[:n])
        sent += n
    assert transport.paused
    frames = worker.frames()
    [sid] = {f[2] for f in frames}
    assert sum(len(f[3]) for f in frames if f[0] == FrameType.BODY) == INITIAL_WINDOW
    worker.feed(fr.pack_window(sid, INITIAL_WINDOW))
    assert not transport.paused
    while sent < size:
        n = min(len(chunk), size - sent)
        conn.data_received(chunk[:n])
        sent += n
    frames = worker.frames()
    assert sum(len(f[3]) for f in frames if f[0] == FrameType.BODY) == size - INITIAL_WINDOW
    assert frames[-1][0] == FrameType.END


def test_expect_100_continue_is_sent_when_dispatched_not_while_queued(rig):
    conn, transport = rig.connect()
    conn.data_received(b"POST /f HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    assert transport.out == b""                      # queued: no worker yet
    assert rig.sent == [{"op": "demand", "pool": "P"}]
    worker = rig.worker()
    assert transport.take() == b"HTTP/1.1 100 Continue\r\n\r\n"
    conn.data_received(b"ok")
    sid = worker.frames()[0][2]
    worker.respond(sid, b"done")
    assert split_responses(transport.take())[0][2] == b"done"


def test_demand_is_sent_once_until_hello(rig):
    conn1, _ = rig.connect()
    conn2, _ = rig.connect()
    conn1.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    conn2.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert rig.sent == [{"op": "demand", "pool": "P"}]


def test_too_large_content_length_is_413_1(tmp_path):
    rig = FrontRig(tmp_path, limits=model.Limits(max_allowed_content_length=100))
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n")
    [(status, headers, body)] = split_responses(bytes(transport.out))
    assert status == 413 and headers["connection"] == "close"
    assert b"HTTP Error 413.1" in body
    assert worker.frames() == []
    rig.server.flush_logs()
    [line] = log_lines(tmp_path)
    assert line.split(" ")[11:13] == ["413", "1"]


# ---- streamed responses and back-pressure ----

def test_unknown_length_is_chunked_for_http11(rig):
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, _, _)] = worker.requests()
    worker.feed(fr.pack_response(sid, b"200 OK\r\n", -1), fr.pack_body(sid, b"abc"),
                fr.pack_body(sid, b"0123456789abcdefXYZ"), fr.pack_end(sid))
    out = bytes(transport.out)
    assert b"Transfer-Encoding: chunked\r\n" in out
    assert out.endswith(b"\r\n\r\n3\r\nabc\r\n13\r\n0123456789abcdefXYZ\r\n0\r\n\r\n")
    acks = [fr.unpack_window(f[3]) for f in worker.frames() if f[0] == FrameType.WINDOW]
    assert acks == [3, 19]


def test_unknown_length_is_close_delimited_for_http10(rig):
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"GET /s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    [(sid, _, _)] = worker.requests()
    worker.feed(fr.pack_response(sid, b"200 OK\r\n", -1), fr.pack_body(sid, b"abc"), fr.pack_end(sid))
    out = bytes(transport.out)
    assert b"chunked" not in out and b"Connection: close\r\n" in out
    assert out.endswith(b"\r\n\r\nabc")
    assert transport.closed


def test_response_bytes_are_acknowledged_only_as_the_client_drains(rig):
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, _, _)] = worker.requests()
    worker.feed(fr.pack_response(sid, b"200 OK\r\n", 300))
    conn.pause_writing()
    worker.feed(fr.pack_body(sid, b"a" * 100), fr.pack_body(sid, b"b" * 100))
    assert [f for f in worker.frames() if f[0] == FrameType.WINDOW] == []
    conn.resume_writing()
    assert [fr.unpack_window(f[3]) for f in worker.frames() if f[0] == FrameType.WINDOW] == [200]
    worker.feed(fr.pack_body(sid, b"c" * 100))
    assert [fr.unpack_window(f[3]) for f in worker.frames() if f[0] == FrameType.WINDOW] == [100]
    worker.feed(fr.pack_end(sid))
    assert bytes(transport.out).endswith(b"a" * 100 + b"b" * 100 + b"c" * 100)


def test_file_frame_small_and_large(rig, tmp_path):
    small = tmp_path / "small.bin"
    small.write_bytes(b"0123456789")
    large = tmp_path / "large.bin"
    data = bytes(range(256)) * 4000
    large.write_bytes(data)
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, _, _)] = worker.requests()
    worker.feed(fr.pack_file(sid, fr.FileSpan(b"206 Partial Content\r\n", str(small), 2, 5)))
    [(status, headers, body)] = split_responses(transport.take())
    assert (status, headers["content-length"], body) == (206, "5", b"23456")
    conn.data_received(b"GET /large HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, _, _)] = worker.requests()
    worker.feed(fr.pack_file(sid, fr.FileSpan(b"200 OK\r\n", str(large), 0, len(data))))
    # Without a real socket the front falls back to chunks through the transport; with
    # pause_writing it waits for resume_writing between chunks.
    out = transport.take()
    [(status, headers, body)] = split_responses(out)
    assert status == 200 and body == data
    conn.data_received(b"GET /large HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, _, _)] = worker.requests()
    conn.pause_writing()
    worker.feed(fr.pack_file(sid, fr.FileSpan(b"200 OK\r\n", str(large), 0, len(data))))
    first = transport.take()
    assert 0 < len(first) < len(data)
    for _ in range(100):
        if conn.pending_requests() == []:
            break
        conn.resume_writing()
    assert split_responses(first + transport.take())[0][2] == data


def test_missing_file_is_500(rig):
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, _, _)] = worker.requests()
    worker.feed(fr.pack_file(sid, fr.FileSpan(b"200 OK\r\n", "/nonexistent/file", 0, 100)))
    assert split_responses(bytes(transport.out))[0][0] == 500


def test_a_file_the_front_cannot_open_is_500_without_its_path(rig):
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, _, _)] = worker.requests()
    worker.feed(fr.pack_file(sid, fr.FileSpan(b"200 OK\r\n", "/srv/secret-7f3a/file.bin", 0, 100)))
    [(status, _headers, body)] = split_responses(bytes(transport.out))
    assert status == 500 and b"secret-7f3a" not in body and b"file.bin" not in body
    assert b"HTTP Error 500. The server encountered an internal error." in body


# ---- failures ----

def test_abort_before_response_is_500_after_is_a_cut(rig):
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, _, _)] = worker.requests()
    worker.feed(fr.pack_abort(sid, 500))
    [(status, headers, body)] = split_responses(transport.take())
    assert status == 500 and b"HTTP Error 500" in body
    conn2, transport2 = rig.connect()
    conn2.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, _, _)] = worker.requests()
    worker.feed(fr.pack_response(sid, b"200 OK\r\n", 100), fr.pack_body(sid, b"partial"), fr.pack_abort(sid))
    assert transport2.closed


def test_abort_with_status_0_closes_without_a_response(rig):
    # IIS's denyAction AbortRequest: nothing is written, the connection closes, the log says 0.503
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"GET /denied HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, _, _)] = worker.requests()
    worker.feed(fr.pack_abort(sid, 0, 503))
    assert transport.take() == b"" and transport.closed


def test_worker_crash_abandons_in_flight_and_keeps_the_queue(rig, tmp_path):
    worker = rig.worker(capacity=1)
    c1, t1 = rig.connect()
    c2, t2 = rig.connect()
    c1.data_received(b"GET /running HTTP/1.1\r\nHost: x\r\n\r\n")
    c2.data_received(b"GET /queued HTTP/1.1\r\nHost: x\r\n\r\n")
    worker.crash()
    [(status, _, _)] = split_responses(bytes(t1.out))
    assert status == 503
    assert t2.out == b""                                  # still queued
    replacement = rig.worker(worker_id=2)
    [(sid, head, _)] = replacement.requests()
    assert head.path == b"/queued"
    replacement.respond(sid)
    assert split_responses(bytes(t2.out))[0][0] == 200
    rig.server.flush_logs()
    [line] = httperr_lines(tmp_path)
    assert line.split(" ")[-4:] == ["503", "1", "Connection_Abandoned_By_AppPool", "P"]


def test_worker_crash_after_the_response_started_closes(rig):
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, _, _)] = worker.requests()
    worker.feed(fr.pack_response(sid, b"200 OK\r\n", 100), fr.pack_body(sid, b"partial"))
    worker.crash()
    assert transport.closed


def test_queue_full_is_503_with_httperr_line(tmp_path):
    rig = FrontRig(tmp_path, pools=[model.Pool(name="P", queue_length=10)])
    conns = [rig.connect() for _ in range(11)]
    for conn, _ in conns:
        conn.data_received(b"GET /q HTTP/1.1\r\nHost: x\r\n\r\n")
    assert all(t.out == b"" for _, t in conns[:10])
    [(status, headers, body)] = split_responses(bytes(conns[10][1].out))
    assert status == 503 and b"Service Unavailable" in body
    assert "connection" not in headers                  # a well-formed request keeps its connection
    rig.server.flush_logs()
    [line] = httperr_lines(tmp_path)
    assert line.split(" ")[6:] == ["HTTP/1.1", "GET", "/q", "-", "503", "1", "QueueFull", "P"]
    # The management site's overview: the pool's rejections (bytes count what the access log
    # logs; a rejection is HTTPERR's alone, as in HTTP.sys).
    assert rig.server.stats()["pools"]["P"]["rejected"] == 1


def test_tcp_level_pool_closes_instead_of_503(tmp_path):
    pool = model.Pool(name="P", queue_length=10, failure=model.Failure(load_balancer_capabilities="tcp_level"))
    rig = FrontRig(tmp_path, pools=[pool])
    conns = [rig.connect() for _ in range(11)]
    for conn, _ in conns:
        conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert conns[10][1].out == b"" and conns[10][1].closed


def test_stopped_pool_answers_503_disabled_and_rejects_the_queue(rig, tmp_path):
    conn, transport = rig.connect()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    for req in rig.server.dispatcher.set_state("P", "Disabled", "AppOffline"):
        req.conn.reject(req, __import__("wasp.wire.http", fromlist=["x"]).AppPoolUnavailable("AppOffline"))
    assert split_responses(transport.take())[0][0] == 503
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert split_responses(transport.take())[0][0] == 503
    rig.server.flush_logs()
    assert [l.split(" ")[-2] for l in httperr_lines(tmp_path)] == ["AppOffline", "AppOffline"]


def test_queued_too_long_is_503_timer_apppool(rig, tmp_path):
    conn, transport = rig.connect()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    rig.advance(60)
    assert transport.out == b""
    rig.advance(61)
    assert split_responses(bytes(transport.out))[0][0] == 503
    rig.server.flush_logs()
    assert httperr_lines(tmp_path)[0].split(" ")[-2] == "Timer_AppPool"


def test_idle_and_header_wait_timeouts(rig, tmp_path):
    idle, t_idle = rig.connect()
    slow, t_slow = rig.connect()
    slow.data_received(b"GET / HTTP/1.1\r\nHo")
    rig.advance(119)
    assert not t_idle.closed and not t_slow.closed
    rig.advance(2)
    assert t_idle.closed and t_slow.closed
    assert t_idle.out == b"" and t_slow.out == b""
    rig.server.flush_logs()
    assert sorted(l.split(" ")[-2] for l in httperr_lines(tmp_path)) == ["Timer_ConnectionIdle", "Timer_HeaderWait"]


def test_client_going_away_cancels_at_the_worker(rig, tmp_path):
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, _, _)] = worker.requests()
    conn.connection_lost(None)
    [(ftype, _, fsid, _)] = worker.frames()
    assert (ftype, fsid) == (FrameType.CANCEL, sid)
    assert worker.link.inflight == 0
    worker.respond(sid)                                   # late frames are ignored
    assert transport.out == b""


def test_client_going_away_while_queued_leaves_the_queue(rig):
    conn, _ = rig.connect()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert len(rig.server.dispatcher.pools["P"].queue) == 1
    conn.connection_lost(None)
    assert len(rig.server.dispatcher.pools["P"].queue) == 0


def test_protocol_error_closes_cleanly(rig):
    conn, transport = rig.connect()
    conn.data_received(b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\nmore garbage")
    [(status, headers, _)] = split_responses(bytes(transport.out))
    assert status == 400 and headers["connection"] == "close"
    # Write side shut, still reading (and discarding) so the client sees the page, not a reset.
    assert transport.eof and not transport.closed and not transport.paused
    conn.data_received(b"ignored")
    rig.advance(3)
    assert transport.closed


def test_unknown_host_is_invalid_hostname(tmp_path):
    site = model.Site(name="S", id=1, bindings=["http/*:8080:a.test"],
                      applications=[model.Application(path="/", pool="P")])
    rig = FrontRig(tmp_path, sites=[site])
    conn, transport = rig.connect()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: b.test\r\n\r\n")
    [(status, _, body)] = split_responses(bytes(transport.out))
    assert status == 400 and b"Bad Request - Invalid Hostname" in body


def test_routing_picks_the_application_and_pool(tmp_path):
    pools = [model.Pool(name="P"), model.Pool(name="API")]
    site = model.Site(name="S", id=3, bindings=["http/*:8080:"], applications=[
        model.Application(path="/", pool="P"), model.Application(path="/api", pool="API")])
    rig = FrontRig(tmp_path, config=make_config(tmp_path, pools=pools, sites=[site]))
    api = rig.worker(pool="API", worker_id=2)
    root = rig.worker(pool="P", worker_id=1)
    conn, _ = rig.connect()
    conn.data_received(b"GET /API/x HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, head, _)] = api.requests()
    assert head.app == "3/api"
    api.respond(sid)
    conn.data_received(b"GET /apix HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, head, _)] = root.requests()
    assert head.app == "3/"


# ---- WebSocket ----

def test_websocket_upgrade_becomes_a_tunnel(rig):
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       b"Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\nearly")
    [(sid, head, fin)] = worker.requests()
    assert head.websocket and fin
    worker.feed(fr.pack_response(sid, b"101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: a\r\n", -1))
    out = transport.take()
    assert out.startswith(b"HTTP/1.1 101 Switching Protocols\r\n") and out.endswith(b"\r\n\r\n")
    assert b"chunked" not in out and b"Content-Length" not in out
    assert [(f[0], f[3]) for f in worker.frames()] == [(FrameType.BODY, b"early")]
    conn.data_received(b"\x81\x02hi")
    assert [(f[0], f[3]) for f in worker.frames()] == [(FrameType.BODY, b"\x81\x02hi")]
    worker.feed(fr.pack_body(sid, b"\x81\x02yo"))
    assert transport.take() == b"\x81\x02yo"
    worker.feed(fr.pack_end(sid))
    assert transport.closed


def test_websocket_rejected_by_the_app_closes(rig):
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    [(sid, _, _)] = worker.requests()
    worker.respond(sid, b"no", block=b"403 Forbidden\r\n")
    [(status, headers, _)] = split_responses(bytes(transport.out))
    assert status == 403 and headers["connection"] == "close"


# ---- stop, limits, list_requests ----

def test_stop_closes_idle_connections_and_finishes_in_flight(rig):
    worker = rig.worker()
    idle, t_idle = rig.connect()
    idle.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, _, _)] = worker.requests()
    worker.respond(sid)
    assert not t_idle.closed  # keep-alive, idle now
    fresh, t_fresh = rig.connect()  # accepted, its request not read yet
    busy, t_busy = rig.connect()
    busy.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    rig.server.stop()
    # Idle keep-alive connections get STOP_IDLE_GRACE for one more request (Connection: close).
    assert not t_idle.closed and not t_busy.closed
    [(sid, _, _)] = worker.requests()
    worker.respond(sid)
    assert b"Connection: close" in t_busy.out and t_busy.closed
    from wasp.front.server import STOP_IDLE_GRACE
    rig.loop.now += STOP_IDLE_GRACE
    rig.loop.run_due()
    assert t_idle.closed
    # A connection that never began a request is served once rather than reset.
    assert not t_fresh.closed
    fresh.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, _, _)] = worker.requests()
    worker.respond(sid)
    assert b"Connection: close" in t_fresh.out and t_fresh.closed


def test_max_connections(tmp_path):
    rig = FrontRig(tmp_path, limits=model.Limits(max_connections=1))
    _, t1 = rig.connect()
    _, t2 = rig.connect()
    assert t1.out == b""
    assert split_responses(bytes(t2.out))[0][0] == 503


def test_list_requests_and_stats(rig):
    worker = rig.worker(capacity=1)
    c1, _ = rig.connect()
    c2, _ = rig.connect()
    c1.data_received(b"GET /one?a=b HTTP/1.1\r\nHost: x\r\n\r\n")
    c2.data_received(b"POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
    listed = sorted(rig.server.requests(), key=lambda r: r["url"])
    assert [(r["url"], r["stage"], r["worker_id"], r["pool"], r["site_id"], r["method"]) for r in listed] == [
        ("/one?a=b", "ExecuteRequestHandler", 1, "P", 1, "GET"),
        ("/two", "Queued", None, "P", 1, "POST"),
    ]
    stats = rig.server.stats()
    assert stats["pools"]["P"] == {"queued": 1, "inflight": 1, "served": 0, "rejected": 0}
    assert stats["connections"] == 2
    assert stats["bytes_sent"] == 0 and stats["bytes_received"] == 0  # nothing answered yet


def test_stage_moves_are_checked():
    from wasp.front.request import IllegalMove, Request
    req = Request(None, 1, 0.0)
    req.move(Stage.QUEUED)
    req.move(Stage.EXECUTING)
    with pytest.raises(IllegalMove):
        req.move(Stage.QUEUED)


def test_app_date_header_is_kept(rig):
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(GET)
    [(sid, _, _)] = worker.requests()
    worker.respond(sid, b"x", block=b"200 OK\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n")
    out = bytes(transport.out)
    assert out.count(b"Date:") == 1 and b"1970" in out


def test_a_bug_with_one_request_closes_only_its_connection(rig):
    faults = []
    rig.server.on_fault = faults.append
    worker = rig.worker()
    bad, t_bad = rig.connect()
    good, t_good = rig.connect()
    bad.data_received(GET)
    good.data_received(GET)
    (s1, _, _), (s2, _, _) = worker.requests()

    def broken(*args):
        raise RuntimeError("bug")
    t_bad.write = broken
    worker.feed(fr.pack_response(s1, b"200 OK\r\n", 1, body=b"a"), fr.pack_response(s2, b"200 OK\r\n", 1, body=b"b"))
    assert t_bad.closed and [type(f) for f in faults] == [RuntimeError]
    assert split_responses(bytes(t_good.out))[0][2] == b"b"
    assert worker.link.inflight == 0


def test_chunked_body_over_the_limit_is_413_1_and_cancelled(tmp_path):
    rig = FrontRig(tmp_path, limits=model.Limits(max_allowed_content_length=100))
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"POST /f HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"50\r\n" + b"a" * 80 + b"\r\n")
    sid = worker.frames()[0][2]
    conn.data_received(b"50\r\n" + b"b" * 80 + b"\r\n")
    assert [f[0] for f in worker.frames()][-1] == FrameType.CANCEL
    [(status, headers, _)] = split_responses(bytes(transport.out))
    assert status == 413 and headers["connection"] == "close"
    worker.respond(sid)                       # too late: ignored
    assert split_responses(bytes(transport.out))[0][0] == 413


# ---- what a connection costs the cyclic GC ----

def test_parser_holds_no_bound_method_of_its_connection(rig):
    """httptools keeps its protocol's callbacks: on the connection itself they would be six bound
    methods, a cycle per connection for the cyclic GC. The parser's protocol is one shared object."""
    import gc
    import types

    from wasp.front import connection as connection_module

    conn, transport = rig.connect()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n")   # a head in progress
    assert not [r for r in gc.get_referrers(conn) if isinstance(r, types.MethodType)]
    assert connection_module._FEED.conn is None   # set only while llhttp is being fed
    conn.data_received(b"\x01bad\r\n\r\n")        # a parse error on the way out of feed_data
    assert connection_module._FEED.conn is None
    assert transport.out.startswith(b"HTTP/1.1 400")


def test_two_connections_interleaved_keep_their_own_heads(rig):
    worker = rig.worker()
    a, ta = rig.connect(peername=("127.0.0.1", 50001))
    b, tb = rig.connect(peername=("127.0.0.1", 50002))
    a.data_received(b"GET /a HTTP/1.1\r\nHo")
    b.data_received(b"GET /b HTTP/1.1\r\nHost: b\r\nX-B: 1")
    a.data_received(b"st: a\r\nX-A: 1\r\n\r\n")
    b.data_received(b"\r\n\r\n")
    heads = {head.path: head.headers for _, head, _ in worker.requests()}
    assert heads == {b"/a": [(b"Host", b"a"), (b"X-A", b"1")], b"/b": [(b"Host", b"b"), (b"X-B", b"1")]}


def test_a_large_inline_body_goes_out_whole_and_a_cached_copy_is_its_own(rig):
    """A body over LARGE_BODY arrives as a view of the link's read and leaves in one writev with
    the head; the response cache keeps bytes, not a view that pins the read."""
    from wasp.front.cache import CacheHint
    from wasp.wire.frames import CACHE_UNTIL_CHANGE

    worker = rig.worker()
    body = bytes(range(256)) * 400                  # 100 KiB
    conn, transport = rig.connect()
    for _ in range(3):                              # the 2nd is stored, the 3rd a hit
        conn.data_received(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        for sid, _head, _fin in worker.requests():
            worker.feed(fr.pack_cache(sid, CacheHint(CACHE_UNTIL_CHANGE, 0.0, []))
                        + fr.pack_response(sid, b"200 OK\r\nContent-Type: text/plain\r\n", len(body), body=body))
        [(status, headers, got)] = split_responses(transport.take())
        assert status == 200 and got == body and headers["content-length"] == str(len(body))
    [entry] = rig.server.cache.entries.values()
    assert type(entry.body) is bytes and entry.body == body


# ---- header names in any spelling ----

def test_the_header_kind_table_agrees_with_the_lower_case_one():
    from wasp.front.connection import _KIND, _SPECIAL
    assert all(_SPECIAL.get(name.lower(), 0) == kind for name, kind in _KIND.items())
    assert all(name in _KIND for name in _SPECIAL)


@pytest.mark.parametrize("spelling", [b"Content-Length", b"content-length", b"CONTENT-LENGTH",
                                      b"cOnTeNt-LeNgTh"])
def test_a_special_header_is_seen_in_any_spelling(rig, spelling):
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"POST /f HTTP/1.1\r\nHost: x\r\n" + spelling + b": 3\r\n\r\nabc")
    [(_sid, head, fin)] = worker.requests()
    assert head.content_length == 3 and not fin


@pytest.mark.parametrize("second", [b"Host", b"host", b"HOST", b"hoST"])
def test_a_second_host_header_in_any_spelling_is_refused(rig, second):
    rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n" + second + b": y\r\n\r\n")
    assert transport.take().startswith(b"HTTP/1.1 400 ")


# ---- the status a worker's block starts with ----

def _status_by_rule(block: bytes) -> int:
    """status_of's rule spelled out: three digits, 100-999, then a space or CR."""
    code = block[:3]
    if len(code) == 3 and code.isdigit() and code[0] != 48 and block[3:4] in (b" ", b"\r"):
        return int(code)
    return -1


def test_status_of_follows_its_rule_for_every_short_block():
    from wasp.front.response import status_of
    alphabet = b"0159 \r\nx+-\x00\xff"
    blocks = [b""] + [bytes([a]) for a in alphabet]
    blocks += [bytes([a, b, c]) + tail for a in alphabet for b in alphabet for c in alphabet
               for tail in (b"", b" ", b"\r", b"\n", b"0", b" OK\r\n", b"\rX")]
    blocks += [b"%d OK\r\n" % n for n in range(0, 1100)] + [b"\xd9\xa0\xd9\xa1\xd9\xa2 x", b"\xb2\xb2\xb2 "]
    for block in blocks:
        assert status_of(block) == _status_by_rule(block), block
