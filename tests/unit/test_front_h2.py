"""HTTP/2 in the front (wasp/front/h2conn.py) driven by the `h2` library as the client, over fake
transports: requests reach the same pool queues as HTTP/1.1, flow control both ways, limits, the
flood defences, GOAWAY on stop."""

from __future__ import annotations

import struct

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
import pytest

from front_fakes import FrontRig, make_config
from wasp.config import model
from wasp.front.h2conn import Http2Connection
from wasp.wire import frames as fr
from wasp.wire.frames import FrameType
from wasp.wire.h2rules import PREFACE

GET = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"localhost"), (b":path", b"/")]


class Client:
    """An h2 client on one fake connection of the rig."""

    def __init__(self, rig: FrontRig, settings: dict | None = None):
        self.rig = rig
        self.conn, self.transport = rig.connect()
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        if settings:
            self.h2.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.h2.initiate_connection()
        self.send()
        assert isinstance(self.proto, Http2Connection)
        self.events()

    @property
    def proto(self):
        return self.transport.protocol or self.conn

    def send(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.proto.data_received(data)

    def raw(self, data: bytes) -> None:
        self.proto.data_received(data)

    def events(self) -> list:
        out = self.transport.take()
        events = self.h2.receive_data(out) if out else []
        self.send()   # acks, window updates
        return events

    def request(self, headers=GET, end=True) -> int:
        sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(sid, headers, end_stream=end)
        self.send()
        return sid

    def goaway(self) -> h2.events.ConnectionTerminated | None:
        for event in self.events():
            if isinstance(event, h2.events.ConnectionTerminated):
                return event
        return None


def gone(transport) -> bool:
    """Closed, or write side shut (GOAWAY sent, discarding input until it closes)."""
    return transport.closed or transport.eof


def frame(ftype: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def body_of(events, sid) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived) and e.stream_id == sid)


def ended(events, sid) -> bool:
    return any(isinstance(e, h2.events.StreamEnded) and e.stream_id == sid for e in events)


def status_of(events, sid) -> int:
    for e in events:
        if isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid:
            return int(dict(e.headers)[b":status"])
    return 0


def test_get_goes_to_the_pool_as_http2_and_the_answer_comes_back(tmp_path):
    rig = FrontRig(tmp_path)
    worker = rig.worker()
    client = Client(rig)
    sid = client.request(GET[:3] + [(b":path", b"/a%20b?q=1"), (b"user-agent", b"t/1")])
    [(stream, head, fin)] = worker.requests()
    assert (head.method, head.path, head.query, head.version, fin) == ("GET", b"/a b", b"q=1", "2", True)
    assert (b"host", b"localhost") in head.headers
    worker.respond(stream, b"hello h2")
    events = client.events()
    response = next(e for e in events if isinstance(e, h2.events.ResponseReceived))
    fields = dict(response.headers)
    assert fields[b":status"] == b"200" and fields[b"content-length"] == b"8"
    assert fields[b"server"] == b"wasp" and b"date" in fields
    assert body_of(events, sid) == b"hello h2" and ended(events, sid)
    rig.server.flush_logs()
    log = next((tmp_path / "logs" / "W3SVC1").iterdir()).read_text()
    assert "/a+b q=1 8080 - 127.0.0.1 t/1 - 200 0 0" in log


def test_settings_advertise_100_streams_and_a_config_changes_it(tmp_path):
    client = Client(FrontRig(tmp_path))
    assert client.h2.remote_settings.max_concurrent_streams == 100
    rig = FrontRig(tmp_path, limits=model.Limits(http2_max_concurrent_streams=7))
    assert Client(rig).h2.remote_settings.max_concurrent_streams == 7


def test_many_streams_at_once_each_its_own_request(tmp_path):
    rig = FrontRig(tmp_path)
    worker = rig.worker(capacity=200)
    client = Client(rig)
    sids = [client.request() for _ in range(100)]
    requests = worker.requests()
    assert len(requests) == 100
    for stream, _, _ in requests:
        worker.respond(stream, b"x%d" % stream)
    events = client.events()
    assert all(ended(events, sid) for sid in sids)


def test_a_stream_over_the_limit_is_refused_and_the_others_go_on(tmp_path):
    rig = FrontRig(tmp_path, limits=model.Limits(http2_max_concurrent_streams=2))
    worker = rig.worker(capacity=10)
    client = Client(rig)
    first = client.request()
    client.request()
    # A client that ignores the advertised limit: a third HEADERS, hand-made.
    client.raw(frame(1, 0x5, 5, hpack.Encoder().encode(GET)))
    out = client.transport.take()
    resets = [(s, struct.unpack(">I", p)[0]) for t, _, s, p in raw_frames(out) if t == 3]
    assert resets == [(5, h2.errors.ErrorCodes.REFUSED_STREAM)]
    requests = worker.requests()
    assert len(requests) == 2 and not gone(client.transport)
    worker.respond(requests[0][0])
    assert status_of(client.events(), first) == 200


def test_request_body_flows_within_both_windows(tmp_path):
    rig = FrontRig(tmp_path)
    worker = rig.worker()
    client = Client(rig)
    sid = client.request([(b":method", b"POST")] + GET[1:3] + [(b":path", b"/up")], end=False)
    [(stream, head, fin)] = worker.requests()
    assert not fin and head.content_length == -1
    sent = 0
    total = 600 * 1024
    # The client sends whatever its windows allow; the front forwards within the worker's window
    # (fr.INITIAL_WINDOW) and gives the client window back only for what it forwarded.
    for _ in range(200):
        room = min(client.h2.local_flow_control_window(sid), total - sent, 16384)
        if room <= 0:
            break
        client.h2.send_data(sid, b"b" * room)
        sent += room
        client.send()
        client.events()
    body = [p for t, _, s, p in worker.frames() if t == FrameType.BODY]
    forwarded = sum(map(len, body))
    assert forwarded == fr.INITIAL_WINDOW          # not a byte past the worker's window
    assert sent - forwarded <= 65535               # the rest waits within the client's stream window
    assert client.h2.local_flow_control_window(sid) == 0
    worker.feed(fr.pack_window(stream, fr.INITIAL_WINDOW))
    client.events()
    assert sum(len(p) for t, _, s, p in worker.frames() if t == FrameType.BODY) == sent - forwarded
    assert client.h2.local_flow_control_window(sid) > 0


def test_body_end_reaches_the_worker(tmp_path):
    rig = FrontRig(tmp_path)
    worker = rig.worker()
    client = Client(rig)
    headers = [(b":method", b"POST")] + GET[1:3] + [(b":path", b"/"), (b"content-length", b"5")]
    sid = client.request(headers, end=False)
    client.h2.send_data(sid, b"hello", end_stream=True)
    client.send()
    frames = worker.frames()
    assert [t for t, *_ in frames] == [FrameType.REQUEST, FrameType.BODY, FrameType.END]
    assert frames[1][3] == b"hello" and fr.unpack_request(frames[0][3]).content_length == 5


def test_streaming_response_arrives_as_it_is_sent_and_is_acknowledged_to_the_worker(tmp_path):
    rig = FrontRig(tmp_path)
    worker = rig.worker()
    client = Client(rig)
    sid = client.request()
    [(stream, _, _)] = worker.requests()
    worker.feed(fr.pack_response(stream, b"200 OK\r\nContent-Type: text/event-stream\r\n", -1))
    events = client.events()
    assert status_of(events, sid) == 200
    assert b"content-length" not in dict(events[0].headers)
    worker.feed(fr.pack_body(stream, b"data: 1\n\n"))
    assert body_of(client.events(), sid) == b"data: 1\n\n"
    windows = [fr.unpack_window(p) for t, _, s, p in worker.frames() if t == FrameType.WINDOW]
    assert windows == [9]
    worker.feed(fr.pack_body(stream, b"data: 2\n\n"), fr.pack_end(stream))
    events = client.events()
    assert body_of(events, sid) == b"data: 2\n\n" and ended(events, sid)


def test_a_client_that_never_opens_its_window_pins_one_worker_window_and_times_out(tmp_path):
    rig = FrontRig(tmp_path)
    worker = rig.worker()
    client = Client(rig, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    sid = client.request()
    [(stream, _, _)] = worker.requests()
    worker.feed(fr.pack_response(stream, b"200 OK\r\n", -1))
    for _ in range(8):
        worker.feed(fr.pack_body(stream, b"z" * 32768))
    events = client.events()
    assert body_of(events, sid) == b""
    # Nothing was acknowledged: the worker stops at its window; the front holds what it sent.
    assert not [p for t, _, s, p in worker.frames() if t == FrameType.WINDOW]
    proto = client.proto
    assert proto.deadline and proto.timer == "Timer_MinBytesPerSecond"
    rig.advance(rig.server.idle_timeout - 1)
    rig.server.tick()
    assert not gone(client.transport)
    rig.advance(2)
    rig.server.tick()
    assert client.transport.eof
    assert [t for t, *_ in worker.frames()] == [FrameType.CANCEL]
    rig.advance(3)
    rig.server.tick()   # the linger after the GOAWAY is over
    assert client.transport.closed


def test_header_list_over_max_request_bytes_is_431_on_its_stream(tmp_path):
    rig = FrontRig(tmp_path, limits=model.Limits(max_request_bytes=4096, max_field_length=2048))
    worker = rig.worker()
    client = Client(rig)
    big = [(b"x-%d" % i, b"v" * 1000) for i in range(5)]
    sid = client.request(GET + big)
    assert status_of(client.events(), sid) == 431
    long = client.request(GET + [(b"x-long", b"v" * 2100)])
    assert status_of(client.events(), long) == 431
    ok = client.request()
    [(stream, _, _)] = worker.requests()
    worker.respond(stream)
    assert status_of(client.events(), ok) == 200


def test_content_length_over_the_limit_is_413_and_the_body_is_refused(tmp_path):
    rig = FrontRig(tmp_path, limits=model.Limits(max_allowed_content_length=1000))
    rig.worker()
    client = Client(rig)
    headers = [(b":method", b"POST")] + GET[1:] + [(b"content-length", b"5000")]
    sid = client.request(headers, end=False)
    events = client.events()
    assert status_of(events, sid) == 413
    assert any(isinstance(e, h2.events.StreamReset) and e.stream_id == sid for e in events) or ended(events, sid)


def test_unknown_length_body_over_the_limit_is_413(tmp_path):
    rig = FrontRig(tmp_path, limits=model.Limits(max_allowed_content_length=1000))
    worker = rig.worker()
    client = Client(rig)
    sid = client.request([(b":method", b"POST")] + GET[1:], end=False)
    client.h2.send_data(sid, b"a" * 1500)
    client.send()
    assert status_of(client.events(), sid) == 413
    assert FrameType.CANCEL in [t for t, *_ in worker.frames()]


def raw_frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(type, flags, stream, payload) of the frames in `data` (h2's client refuses any frame
    after a GOAWAY, so the frames that follow one are read by hand)."""
    out = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        out.append((data[3], data[4], int.from_bytes(data[5:9], "big") & 0x7FFFFFFF, data[9:9 + length]))
        data = data[9 + length:]
    return out


def test_stop_sends_goaway_finishes_the_stream_in_flight_then_closes(tmp_path):
    rig = FrontRig(tmp_path)
    worker = rig.worker()
    client = Client(rig)
    sid = client.request()
    [(stream, _, _)] = worker.requests()
    rig.server.stop()
    [(ftype, _, _, payload)] = raw_frames(client.transport.take())
    assert ftype == 7 and struct.unpack(">II", payload[:8]) == (sid, 0)   # GOAWAY NO_ERROR, last = sid
    assert not gone(client.transport)
    later = client.h2.get_next_available_stream_id()
    client.raw(frame(1, 0x5, later, hpack.Encoder().encode(GET)))
    worker.respond(stream, b"last")
    frames = raw_frames(client.transport.take())
    assert (3, later) in [(t, s) for t, _, s, _ in frames]   # a stream opened after GOAWAY: RST_STREAM
    assert (0, 1, sid, b"last") in frames                     # DATA with END_STREAM
    assert client.transport.closed
    assert len(worker.requests()) == 0


def test_stop_closes_an_idle_connection_at_once(tmp_path):
    rig = FrontRig(tmp_path)
    client = Client(rig)
    rig.server.stop()
    assert client.goaway() is not None and client.transport.closed


def test_idle_connection_times_out(tmp_path):
    rig = FrontRig(tmp_path)
    client = Client(rig)
    rig.advance(rig.server.idle_timeout + 1)
    rig.server.tick()
    assert gone(client.transport)


def test_a_header_block_left_open_times_out_at_header_wait(tmp_path):
    rig = FrontRig(tmp_path, limits=model.Limits(header_wait_timeout=5, connection_timeout=100))
    client = Client(rig)
    client.raw(frame(1, 0x0, 1, hpack.Encoder().encode(GET[:2])))   # HEADERS without END_HEADERS
    rig.advance(4)
    rig.server.tick()
    assert not gone(client.transport)
    rig.advance(2)
    rig.server.tick()
    assert gone(client.transport)


def test_h2c_refused_where_http2_is_disabled(tmp_path):
    rig = FrontRig(tmp_path)
    conn, transport = rig.connect()
    conn.table.http2 = False
    conn.data_received(PREFACE)
    assert transport.protocol is None
    # As HTTP/1.1 answers a "PRI * HTTP/2.0" request: 400, connection closed.
    assert transport.take().startswith(b"HTTP/1.1 400 ")


def test_http11_is_untouched_by_a_request_that_merely_starts_with_p(tmp_path):
    rig = FrontRig(tmp_path)
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    assert transport.protocol is None
    assert [h.version for _, h, _ in worker.requests()] == ["1.1"]


# ---- floods: each closes the connection with GOAWAY -------------------------------------------

def assert_calm(client: Client, reason: str) -> None:
    goaway = client.goaway()
    assert goaway is not None and goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    assert gone(client.transport)
    server = client.rig.server
    server.flush_logs()
    log = next((client.rig.tmp / "logs" / "httperr").iterdir()).read_text()
    assert f" H2_{reason} " in log


def test_rapid_reset_closes_the_connection(tmp_path):
    rig = FrontRig(tmp_path)
    worker = rig.worker(capacity=1000)
    client = Client(rig)
    for _ in range(300):
        sid = client.request()
        client.h2.reset_stream(sid)
        client.send()
        if gone(client.transport):
            break
    assert_calm(client, "RapidReset")
    worker.frames()
    assert rig.server.dispatcher.pools["P"].queue == type(rig.server.dispatcher.pools["P"].queue)()


def test_resets_after_answers_are_not_a_flood(tmp_path):
    rig = FrontRig(tmp_path)
    worker = rig.worker(capacity=1000)
    client = Client(rig)
    for _ in range(300):
        sid = client.request()
        [(stream, _, _)] = worker.requests()
        worker.respond(stream)
        client.events()
    assert not gone(client.transport)


def test_continuation_flood_is_cut_before_decoding(tmp_path):
    client = Client(FrontRig(tmp_path))
    client.raw(frame(1, 0x0, 1, hpack.Encoder().encode(GET)))
    for _ in range(20):
        client.raw(frame(9, 0x0, 1, b"\x40\x01a\x01b"))
        if gone(client.transport):
            break
    assert_calm(client, "Continuation")


def test_continuation_bytes_over_the_head_limit_are_cut(tmp_path):
    rig = FrontRig(tmp_path, limits=model.Limits(max_request_bytes=4096, max_field_length=4096))
    client = Client(rig)
    client.raw(frame(1, 0x0, 1, hpack.Encoder().encode(GET)))
    client.raw(frame(9, 0x0, 1, b"\x00" * 9000))
    assert_calm(client, "HeaderBlock")


def test_hpack_bomb_is_cut(tmp_path):
    client = Client(FrontRig(tmp_path))
    encoder = hpack.Encoder()
    # One big field into the dynamic table, then referenced again and again: a few bytes on the
    # wire decode to far more than the header list limit.
    first = encoder.encode(GET + [(b"x-bomb", b"b" * 4000)])
    client.raw(frame(1, 0x5, 1, first))
    client.events()
    refs = encoder.encode(GET + [(b"x-bomb", b"b" * 4000)] * 60)
    assert len(refs) < 200
    client.raw(frame(1, 0x5, 3, refs))
    assert_calm(client, "DenialOfServiceError")


@pytest.mark.parametrize("kind", ["ping", "settings"])
def test_ping_and_settings_floods(tmp_path, kind):
    client = Client(FrontRig(tmp_path))
    one = frame(6, 0, 0, b"12345678") if kind == "ping" else frame(4, 0, 0, b"")
    client.raw(one * 1100)
    assert_calm(client, "ControlFlood")


def test_a_few_pings_are_answered(tmp_path):
    client = Client(FrontRig(tmp_path))
    client.raw(frame(6, 0, 0, b"12345678") * 50)
    events = client.events()
    assert sum(isinstance(e, h2.events.PingAckReceived) for e in events) == 50
    assert not gone(client.transport)


def test_empty_data_flood(tmp_path):
    rig = FrontRig(tmp_path)
    rig.worker()
    client = Client(rig)
    sid = client.request([(b":method", b"POST")] + GET[1:], end=False)
    client.raw(frame(0, 0, sid) * 20)
    assert_calm(client, "EmptyFrames")


def test_window_update_flood(tmp_path):
    client = Client(FrontRig(tmp_path))
    client.raw(frame(8, 0, 0, struct.pack(">I", 1)) * 200)
    assert_calm(client, "WindowUpdateFlood")


def test_priority_flood(tmp_path):
    client = Client(FrontRig(tmp_path))
    client.raw(frame(2, 0, 3, struct.pack(">IB", 1, 16)) * 200)
    assert_calm(client, "PriorityFlood")


def test_garbage_after_the_preface_is_a_protocol_error(tmp_path):
    client = Client(FrontRig(tmp_path))
    client.raw(frame(0, 0, 0, b"data on stream 0"))
    goaway = client.goaway()
    assert goaway is not None and goaway.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    assert gone(client.transport)


def test_a_flood_on_one_connection_leaves_the_others_served(tmp_path):
    rig = FrontRig(tmp_path, config=make_config(tmp_path))
    worker = rig.worker()
    bad = Client(rig)
    bad.raw(frame(6, 0, 0, b"12345678") * 1100)
    assert gone(bad.transport)
    good = Client(rig)
    sid = good.request()
    [(stream, _, _)] = worker.requests()
    worker.respond(stream, b"fine")
    assert body_of(good.events(), sid) == b"fine"


# ---- sslFlags 4: disable_http2 per binding -------------------------------------------------------

def _load(bindings: str):
    from wasp.config.load import load_text
    return load_text('[[pools]]\nname = "DefaultAppPool"\n[[sites]]\nname = "s"\nid = 1\n'
                     f'bindings = {bindings}\n[[sites.applications]]\npath = "/"\napp = "m:app"\n')


def test_disable_http2_on_an_http_binding_refuses_h2c_on_its_address_only(tmp_path):
    from wasp.front.routing import Router
    config = _load('[{ binding = "http/127.0.0.1:8080:", ssl_flags = ["disable_http2"] }, "http/*:8081:"]')
    router = Router(config)
    assert router.table("127.0.0.1", 8080).http2 is False
    assert router.table("127.0.0.1", 8081).http2 is True
    rig = FrontRig(tmp_path, config=config)
    conn, transport = rig.connect(sockname=("127.0.0.1", 8080))
    conn.data_received(PREFACE)
    assert transport.protocol is None and transport.take().startswith(b"HTTP/1.1 400 ")


def test_an_http_binding_takes_no_other_ssl_flag():
    from wasp.errors import ConfigError
    with pytest.raises(ConfigError) as info:
        _load('[{ binding = "http/*:80:a.test", ssl_flags = ["sni"] }]')
    assert "only ssl_flags = [\"disable_http2\"]" in str(info.value.problems[0].message)


def test_disable_http2_on_an_https_binding_takes_h2_out_of_its_certificate_alpn():
    from wasp.front.tls import plan, select
    config = _load('[{ binding = "https/*:443:", certificate = "d.pem" }, '
                   '{ binding = "https/*:443:old.test", certificate = "o.pem", ssl_flags = ["sni", "disable_http2"] }]')
    port = plan(config)[443]
    assert select(port, "old.test").http2 is False
    assert select(port, "new.test").http2 is True


def test_streams_opened_past_the_limit_again_and_again_are_a_flood(tmp_path):
    rig = FrontRig(tmp_path, limits=model.Limits(http2_max_concurrent_streams=1))
    rig.worker(capacity=10)
    client = Client(rig)
    client.request()
    encoder = hpack.Encoder()
    for sid in range(3, 1000, 2):
        client.raw(frame(1, 0x5, sid, encoder.encode(GET)))
        if gone(client.transport):
            break
    assert gone(client.transport) and sid > 3
    rig.server.flush_logs()
    assert " H2_RapidReset " in next((tmp_path / "logs" / "httperr").iterdir()).read_text()


# ---- site connection counts and trusted proxies (qos.py) hold for HTTP/2 too ---------------------

def _site(name, id, bindings, max_connections=0):
    return model.Site(name=name, id=id, bindings=list(bindings), limits=model.SiteLimits(max_connections=max_connections),
                      applications=[model.Application(path="/", pool="P")])


def test_an_h2c_connection_keeps_its_site_count_and_frees_it_at_the_end(tmp_path):
    rig = FrontRig(tmp_path, config=make_config(tmp_path, sites=[_site("S", 1, ["http/*:8080:"], 1)]))
    client = Client(rig)                       # counted at accept (the port is one site's)
    assert rig.server.site_connections == {1: 1}
    _, refused = rig.connect()
    assert refused.take().startswith(b"HTTP/1.1 503 ")
    client.proto.connection_lost(None)
    assert rig.server.site_connections == {}


def test_an_h2_stream_joins_its_site_when_sites_share_the_port(tmp_path):
    sites = [_site("A", 1, ["http/*:8080:a.test"], 1), _site("B", 2, ["http/*:8080:b.test"])]
    rig = FrontRig(tmp_path, config=make_config(tmp_path, sites=sites))
    worker = rig.worker(capacity=8)
    first = Client(rig)
    first.request(GET[:2] + [(b":authority", b"a.test"), (b":path", b"/")])
    assert rig.server.site_connections == {1: 1}
    second = Client(rig)
    sid = second.request(GET[:2] + [(b":authority", b"a.test"), (b":path", b"/full")])
    assert status_of(second.events(), sid) == 503       # site A is full
    assert len(worker.requests()) == 1
    first.proto.connection_lost(None)
    second.proto.connection_lost(None)
    assert rig.server.site_connections == {}


def test_x_forwarded_for_from_a_trusted_proxy_names_the_client_of_a_stream(tmp_path):
    rig = FrontRig(tmp_path, config=make_config(tmp_path, trusted_proxies=["127.0.0.0/8"]))
    worker = rig.worker()
    client = Client(rig)
    client.request(GET + [(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"https")])
    [(_, head, _)] = worker.requests()
    assert head.client[0] == "203.0.113.7" and head.scheme == "https" and head.proxied


def test_an_error_page_for_a_stream_whose_body_ended_in_the_same_read_is_sent_whole(tmp_path):
    # Found by fuzz/http2.py: HEADERS (a host no binding takes) and DATA with END_STREAM in one
    # read. h2 had closed the stream's remote side before the front answered the HEADERS, so the
    # RST_STREAM meant to stop the body raised StreamClosedError out of data_received.
    rig = FrontRig(tmp_path, sites=[model.Site(name="S", id=1, bindings=["http/*:8080:only.example"],
                                               applications=[model.Application(path="/", pool="P")])])
    rig.worker()
    client = Client(rig)
    sid = client.h2.get_next_available_stream_id()
    client.h2.send_headers(sid, [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"other"),
                                 (b":path", b"/")])
    client.h2.send_data(sid, b"abc", end_stream=True)
    client.send()
    events = client.events()
    assert status_of(events, sid) == 400 and ended(events, sid)
    assert not gone(client.transport)
    assert client.proto.streams == {}


@pytest.mark.parametrize("host, streams", [
    (b"localhost", 1),   # a stream refused over the limit
    (b"other", 100),     # a stream answered 400 (no binding takes the host)
])
def test_a_stream_h2_resets_later_in_the_same_read_is_not_answered_again(tmp_path, host, streams):
    # Found by fuzz/http2.py: a HEADERS frame repeated on a stream the client already ended, in
    # the read that opens it. h2 resets the stream itself (STREAM_CLOSED) while it parses the
    # read; the front then handles the RequestReceived and its RST_STREAM (refusal) or error page
    # raised StreamClosedError out of data_received.
    rig = FrontRig(tmp_path, limits=model.Limits(http2_max_concurrent_streams=streams),
                   sites=[model.Site(name="S", id=1, bindings=["http/*:8080:localhost"],
                                     applications=[model.Application(path="/", pool="P")])])
    worker = rig.worker()
    client = Client(rig)
    encoder = hpack.Encoder()
    first = frame(1, 0x5, 1, encoder.encode(GET))
    again = GET[:2] + [(b":authority", host), (b":path", b"/")]
    twice = frame(1, 0x5, 3, encoder.encode(again)) + frame(1, 0x5, 3, encoder.encode(again))
    client.raw(first + twice if streams == 1 else twice)
    frames = raw_frames(client.transport.take())
    resets = [struct.unpack(">I", p)[0] for t, _, s, p in frames if t == 3 and s == 3]
    assert resets and all(code in (5, 7) for code in resets)   # STREAM_CLOSED / REFUSED_STREAM
    assert not [t for t, _, s, _ in frames if s == 3 and t in (0, 1)]   # no HEADERS or DATA on it
    assert not gone(client.transport) and 3 not in client.proto.streams
    assert [h.path for _, h, _ in worker.requests()] == ([b"/"] if streams == 1 else [])


def test_a_client_goaway_ends_the_connection_and_cancels_the_streams_in_flight(tmp_path):
    # Found by fuzz/http2.py: h2 takes a GOAWAY as the end of the connection and frames nothing
    # more, so a worker's answer to a stream in flight raised ProtocolError (a fault) and a
    # stream refused in the read that held the GOAWAY raised it out of data_received.
    rig = FrontRig(tmp_path)
    faults = []
    rig.server.on_fault = faults.append
    worker = rig.worker()
    client = Client(rig)
    sid = client.request()
    [(stream, _, _)] = worker.requests()
    client.raw(frame(7, 0, 0, struct.pack(">II", 0, 0)))   # GOAWAY NO_ERROR
    assert client.transport.closed and client.proto.streams == {}
    assert [t for t, _, s, _ in worker.frames() if s == stream] == [FrameType.CANCEL]
    worker.respond(stream, b"late")   # a worker that answers anyway: dropped, no fault
    assert faults == [] and sid == 1


def test_requests_before_a_goaway_in_the_same_read_are_not_answered(tmp_path):
    rig = FrontRig(tmp_path, limits=model.Limits(http2_max_concurrent_streams=1))
    faults = []
    rig.server.on_fault = faults.append
    worker = rig.worker()
    client = Client(rig)
    encoder = hpack.Encoder()
    heads = frame(1, 0x5, 1, encoder.encode(GET)) + frame(1, 0x5, 3, encoder.encode(GET))   # 3 over the limit
    client.raw(heads + frame(7, 0, 0, struct.pack(">II", 0, 0)))
    assert client.transport.closed and worker.requests() == [] and faults == []
