"""What the front counts for /metrics (wasp/front/metrics.py), through a front with fake
transports and a fake worker, and its metrics.url answered with the manager's text."""

from __future__ import annotations

import msgspec
import pytest

from front_fakes import FrontRig, make_config, split_responses
from wasp.config import model
from wasp.front import metrics as fm
from wasp.front.server import MAX_SCRAPES


def rig_with(tmp_path, **metrics) -> FrontRig:
    config = msgspec.structs.replace(make_config(tmp_path), metrics=model.MetricsSettings(**metrics))
    return FrontRig(tmp_path, config)


def answer(worker, body=b"hello", block=b"200 OK\r\nContent-Type: text/plain\r\n"):
    for sid, head, fin in worker.requests():
        worker.respond(sid, body, block)


def test_requests_are_counted_per_site_method_status_and_bytes(tmp_path):
    rig = rig_with(tmp_path)
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    answer(worker)
    conn.data_received(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    answer(worker, b"nope", b"404 Not Found\r\n")
    conn.data_received(b"REPORT /a HTTP/1.1\r\nHost: x\r\n\r\n")
    answer(worker, b"", b"423 Locked\r\n")
    written = transport.take()
    assert [r[0] for r in split_responses(written)] == [200, 404, 423]
    snap = fm.snapshot(rig.server)
    site = snap["sites"]["1"]
    methods = dict(zip(fm.METHODS + ("other",), site["methods"]))
    assert (methods["GET"], methods["POST"], methods["other"]) == (1, 1, 1)
    assert dict(zip(fm.STATUS_CLASSES, site["statuses"]))["4xx"] == 2
    assert site["not_found"] == 1 and site["locked"] == 1
    assert site["sent"] == len(written)           # every byte of the three responses
    # cs-bytes: request lines, header lines, the empty lines and the 3 body bytes
    assert site["received"] == len(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n") + \
        len(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc") + \
        len(b"REPORT /a HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sum(site["buckets"]) == 3 and site["connections"] == 1
    pool = snap["pools"]["P"]
    assert pool["arrivals"] == 3 and pool["served"] == 3 and sum(pool["buckets"]) == 3
    assert snap["workers"]["1"] == {"pool": "P", "inflight": 0, "served": 3}


def test_made_up_methods_cannot_grow_the_counters(tmp_path):
    rig = rig_with(tmp_path)
    worker = rig.worker()
    conn, transport = rig.connect()
    for method in (b"PURGE", b"MKCALENDAR", b"SUBSCRIBE"):
        conn.data_received(method + b" / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer(worker)
    site = fm.snapshot(rig.server)["sites"]["1"]
    assert len(site["methods"]) == len(fm.METHODS) + 1 and site["methods"][-1] == 3


def test_site_counters_survive_a_reload_and_go_with_their_site(tmp_path):
    rig = rig_with(tmp_path)
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    answer(worker)
    rig.server.apply_config(rig.config)
    assert fm.snapshot(rig.server)["sites"]["1"]["methods"][0] == 1
    other = msgspec.structs.replace(rig.config, sites=[model.Site(
        name="T", id=2, bindings=["http/*:8080:"], applications=[model.Application(path="/", pool="P")])])
    rig.server.apply_config(other)
    assert list(fm.snapshot(rig.server)["sites"]) == ["2"]


def test_queue_rejections_are_counted_by_reason(tmp_path):
    config = make_config(tmp_path, pools=[model.Pool(name="P", queue_length=1)])
    rig = FrontRig(tmp_path, config)
    first, _ = rig.connect(peername=("127.0.0.1", 1))
    second, t2 = rig.connect(peername=("127.0.0.1", 2))
    first.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")   # queued: no worker yet
    second.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # the queue is full
    assert split_responses(t2.take())[0][0] == 503
    pool = fm.snapshot(rig.server)["pools"]["P"]
    assert pool["rejected"] == {"QueueFull": 1} and pool["queued"] == 1
    rig.advance(60)
    assert fm.snapshot(rig.server)["pools"]["P"]["oldest"] == pytest.approx(60, abs=1)
    rig.advance(61)                                             # connection_timeout: 120 s
    pool = fm.snapshot(rig.server)["pools"]["P"]
    assert pool["rejected"] == {"QueueFull": 1, "Timer_AppPool": 1} and pool["queued"] == 0
    assert pool["arrivals"] == 2


def test_counting_off_leaves_sites_out(tmp_path):
    rig = rig_with(tmp_path, enabled=False)
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    answer(worker)
    snap = fm.snapshot(rig.server)
    assert snap["sites"] == {} and snap["counting"] is False
    assert snap["pools"]["P"]["served"] == 1


def test_cache_misses_and_flushes_are_counted():
    from wasp.front.cache import ResponseCache
    from wasp.wire.frames import CACHE_UNTIL_CHANGE, CacheHint
    cache = ResponseCache(model.CacheSettings(frequent_hit_threshold=1))
    base = ("1/", b"x", b"/a")
    assert cache.lookup(base, [], 0.0) is None and cache.admit(base, 0.0)
    cache.store(base, [], CacheHint(CACHE_UNTIL_CHANGE, 0.0, []), b"200 OK\r\n", b"hi", 0.0, 1, "P")
    assert cache.lookup(base, [], 1.0) is not None
    assert cache.flush() == 1
    assert (cache.hits, cache.misses, cache.stored, cache.flushes, len(cache.entries)) == (1, 1, 1, 1, 0)


# ---- metrics.url ----

def test_metrics_url_asks_the_manager_and_answers_its_text(tmp_path):
    rig = rig_with(tmp_path, url="/metrics")
    conn, transport = rig.connect()
    conn.data_received(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    [ask] = [m for m in rig.sent if m["op"] == "metrics_scrape"]
    assert transport.take() == b""                # nothing until the manager answers
    rig.server.metrics_answered(ask["id"], "wasp_up 1\n")
    [(status, headers, body)] = split_responses(transport.take())
    assert status == 200 and body == b"wasp_up 1\n"
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert headers["cache-control"] == "no-store"
    assert rig.server.scrapes == {}
    # The connection goes on as usual; the same path with another case is not the metrics URL.
    worker = rig.worker()
    conn.data_received(b"GET /Metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert len(worker.requests()) == 1


def test_metrics_url_refuses_other_clients_and_methods(tmp_path):
    rig = rig_with(tmp_path, url="/metrics", allowed_ips=["10.0.0.0/8"])
    conn, transport = rig.connect(peername=("192.0.2.7", 5000))
    conn.data_received(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert split_responses(transport.take())[0][0] == 403
    rig2 = rig_with(tmp_path, url="/metrics")
    conn, transport = rig2.connect()
    conn.data_received(b"DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert split_responses(transport.take())[0][0] == 405
    assert not [m for m in rig.sent + rig2.sent if m["op"] == "metrics_scrape"]


def test_an_answer_for_a_client_that_left_is_dropped(tmp_path):
    rig = rig_with(tmp_path, url="/metrics")
    conn, transport = rig.connect()
    conn.data_received(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    [ask] = [m for m in rig.sent if m["op"] == "metrics_scrape"]
    conn.connection_lost(None)
    rig.server.metrics_answered(ask["id"], "wasp_up 1\n")
    rig.server.metrics_answered(12345, "unknown id\n")
    assert transport.take() == b""


def test_a_flood_of_scrapes_is_bounded(tmp_path):
    rig = rig_with(tmp_path, url="/metrics")
    transports = []
    for i in range(MAX_SCRAPES + 2):
        conn, transport = rig.connect(peername=("127.0.0.1", 1000 + i))
        conn.data_received(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        transports.append(transport)
    assert len([m for m in rig.sent if m["op"] == "metrics_scrape"]) == MAX_SCRAPES
    assert [split_responses(t.take())[0][0] for t in transports[MAX_SCRAPES:]] == [503, 503]


def test_no_manager_text_is_a_503(tmp_path):
    rig = rig_with(tmp_path, url="/metrics")
    conn, transport = rig.connect()
    conn.data_received(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    rig.server.metrics_answered(rig.sent[-1]["id"], None)
    assert split_responses(transport.take())[0][0] == 503


def test_metrics_url_over_http2_and_its_stream_counted(tmp_path):
    from test_front_h2 import GET, Client, body_of, status_of
    rig = rig_with(tmp_path, url="/metrics")
    client = Client(rig)
    sid = client.request(GET[:3] + [(b":path", b"/metrics")])
    [ask] = [m for m in rig.sent if m["op"] == "metrics_scrape"]
    rig.server.metrics_answered(ask["id"], "wasp_up 1\n")
    events = client.events()
    assert status_of(events, sid) == 200 and body_of(events, sid) == b"wasp_up 1\n"
    site = fm.snapshot(rig.server)["sites"]["1"]
    assert site["methods"][0] == 1 and site["sent"] > len(b"wasp_up 1\n") and site["received"] > 0


def test_the_written_out_bucket_search_is_bisect():
    from bisect import bisect_left
    from wasp.common.exposition import DURATION_BOUNDS

    class Req:
        h2 = None
        method = b"GET"
        target = b"/"
        head_bytes = received = 0
        status = 200

    class Conn:
        _sent = 0
    values = [0.0, 1e-9] + [b + d for b in DURATION_BOUNDS for d in (-1e-9, 0.0, 1e-9)] + [11.0, 1e9]
    for seconds in values:
        c = fm.SiteCounters()
        p = fm.PoolCounters()
        c.count(Conn(), Req(), seconds, p)
        want = bisect_left(DURATION_BOUNDS, seconds)
        assert c.buckets.index(1) == want == p.buckets.index(1), seconds
