"""Execution limits, the stuck report, pings through the WSGI thread pool and the in-flight list,
without processes: fake channels, a fake clock, a real Worker object fed control messages."""

from __future__ import annotations

import asyncio
import queue
import socket
import threading

from worker_fakes import FakeChannel, make_app, make_ctx

from wasp.config import model
from wasp.wire import frames
from wasp.wire.frames import FrameType
from wasp.worker import watchdog
from wasp.worker.registry import Phase
from wasp.worker.worker import PingJob, State, Stats, Worker


def ctx_with(limit: float, start: float = 100.0, **kw):
    ctx = make_ctx(make_app(execution_timeout=model.Duration(limit)), **kw)
    ctx.start_time = start
    return ctx


# ---- the pure parts -----------------------------------------------------------------------------

def test_limit_grace_and_interval():
    assert watchdog.limit_of(ctx_with(0)) == 0.0
    assert watchdog.limit_of(ctx_with(2.5)) == 2.5
    websocket = ctx_with(2.5)
    websocket.head.websocket = True
    assert watchdog.limit_of(websocket) == 0.0
    assert watchdog.grace(0.2) == 1.0 and watchdog.grace(30) == 30
    assert watchdog.interval([0, 0]) is None
    assert watchdog.interval([0, 2.0, 8.0]) == 0.5
    assert watchdog.interval([600.0]) == 1.0
    assert watchdog.interval([0.01]) == 0.05


def test_check_cuts_once_then_reports_stuck_once():
    stats = Stats()
    ctx = ctx_with(2.0, start=100.0)
    unlimited = ctx_with(0, start=0.0)
    stats.begin(ctx)
    stats.begin(unlimited)
    assert watchdog.check(stats.snapshot(), 101.9) == ([], [])
    expired, stuck = watchdog.check(stats.snapshot(), 102.0)
    assert expired == [ctx] and stuck == []
    assert stats.expire(ctx, 102.0) and not stats.expire(ctx, 102.1)
    assert stats.live == 1 and stats.inflight == 2
    assert watchdog.check(stats.snapshot(), 103.9) == ([], [])   # within the grace (2 s)
    assert watchdog.check(stats.snapshot(), 104.0) == ([], [ctx])
    assert watchdog.check(stats.snapshot(), 200.0) == ([], [])   # reported once
    stats.end(ctx)
    assert stats.expired == 0 and stats.live == 1 and stats.snapshot() == [unlimited]


def test_a_request_that_ends_before_it_is_marked_is_not_counted():
    stats = Stats()
    ctx = ctx_with(1.0)
    stats.begin(ctx)
    [found], _ = watchdog.check(stats.snapshot(), 200.0)
    stats.end(ctx)                       # its thread finished meanwhile
    assert not stats.expire(found, 200.0)
    assert stats.expired == 0 and stats.live == 0


def test_thread_stacks_name_every_thread_and_put_the_request_first():
    release = threading.Event()

    def parked_in_a_named_function():
        release.wait(10)

    thread = threading.Thread(target=parked_in_a_named_function, name="wsgi-7")
    thread.start()
    try:
        text = watchdog.thread_stacks(first=thread.ident)
    finally:
        release.set()
        thread.join()
    assert text.startswith(f'Thread "wsgi-7" id {thread.ident} (running the request):')
    assert "parked_in_a_named_function" in text
    assert 'Thread "MainThread"' in text


def test_rows_list_live_requests_of_the_current_channel_only():
    channel, other = FakeChannel(), FakeChannel()
    live = ctx_with(0, start=10.0, channel=channel)
    live.phase, live.module = Phase.EXECUTE_REQUEST_HANDLER, "python_app"
    waiting = ctx_with(0, start=11.0, channel=channel, path="/q", query=b"a=1")
    cut = ctx_with(1.0, channel=channel)
    cut.expired_at = 12.0
    gone = ctx_with(0, channel=other)
    rows = watchdog.rows([live, waiting, cut, gone], channel, 12.5)
    assert rows == [
        {"stream": 7, "app": "1/", "url": "GET /", "stage": "ExecuteRequestHandler",
         "module": "python_app", "elapsed_ms": 2500, "thread": "", "modules": "", "user": ""},
        {"stream": 7, "app": "1/", "url": "GET /q?a=1", "stage": "BeginRequest", "module": "",
         "elapsed_ms": 1500, "thread": "", "modules": "", "user": ""},
    ]
    # With its pipeline compiled, a row lists the application's modules in order.
    from wasp.worker import modules  # noqa: F401  (registers the built-in modules)
    from wasp.worker.pipeline import Pipeline
    live.app.pipeline = Pipeline(live.app)
    # No content, no app: request filtering, dynamic compression (of error pages) and anonymous
    # authentication run for every request.
    assert watchdog.rows([live], channel, 12.5)[0]["modules"] == \
        "protocol_support,request_filtering,dynamic_compression,anonymous_authentication,custom_error"
    live.app.host = object()
    live.app.pipeline = Pipeline(live.app)
    assert watchdog.rows([live], channel, 12.5)[0]["modules"] == \
        "protocol_support,request_filtering,dynamic_compression,anonymous_authentication," \
        "custom_error,python_app"


# ---- the worker --------------------------------------------------------------------------------

class Recorder:
    def __init__(self):
        self.sent: list[dict] = []

    def send(self, message, fds=None):
        self.sent.append(message)


def make_worker():
    a, b = socket.socketpair()
    worker = Worker(1, "P", a)
    worker.control = Recorder()
    return worker, (a, b)


def test_cut_answers_503_once_and_drops_what_the_app_sends_later():
    worker, socks = make_worker()
    try:
        channel = FakeChannel()
        ctx = ctx_with(1.0, channel=channel)
        channel.streams[ctx.sid] = ctx
        worker.stats.begin(ctx)
        assert worker.stats.expire(ctx, 200.0)
        worker._cut(ctx)
        [(ftype, _flags, sid, payload)] = channel.frames()
        assert ftype == FrameType.ABORT and sid == ctx.sid and frames.unpack_abort(payload) == 503
        assert ctx.cancelled and ctx.sid not in channel.streams
        assert not channel.send_frame(ctx, frames.pack_body(ctx.sid, b"late"))
        assert len(channel.written) == 1
    finally:
        for s in socks:
            s.close()


def test_stuck_is_reported_once_with_the_stacks():
    worker, socks = make_worker()
    try:
        first, second = ctx_with(1.0, path="/hang"), ctx_with(1.0, path="/other")
        worker._stuck(first, 103.0)
        worker._stuck(second, 104.0)
        [report] = worker.control.sent
        assert report["op"] == "stuck" and report["url"] == "GET /hang" and report["app"] == "1/"
        assert report["elapsed_s"] == 3.0 and report["limit_s"] == 1.0
        assert 'Thread "MainThread"' in report["stacks"]
    finally:
        for s in socks:
            s.close()


def test_ping_goes_through_the_thread_queue_when_the_pool_has_threads():
    worker, socks = make_worker()
    try:
        worker.state = State.READY
        worker._pong(5)
        assert worker.control.sent.pop()["id"] == 5
        worker.threads = [object()]           # a pool with WSGI threads
        worker.jobs = queue.SimpleQueue()
        worker._on_control({"op": "ping", "id": 6}, [])
        assert worker.control.sent == []      # nothing until a thread takes the job
        job = worker.jobs.get_nowait()
        assert isinstance(job, PingJob) and job.id == 6
    finally:
        for s in socks:
            s.close()


def test_a_thread_taking_the_ping_job_has_the_loop_send_the_pong():
    worker, socks = make_worker()
    loop = asyncio.new_event_loop()
    try:
        worker.loop = loop
        worker.state = State.READY
        worker._start_threads(1)
        worker._on_control({"op": "ping", "id": 9}, [])
        for _ in range(200):
            loop.run_until_complete(asyncio.sleep(0.01))
            if worker.control.sent:
                break
        [pong] = worker.control.sent
        assert pong["op"] == "pong" and pong["id"] == 9 and pong["inflight"] == 0
    finally:
        worker.jobs.put(None)
        for thread in worker.threads:
            thread.join(5)
        loop.close()
        for s in socks:
            s.close()


def test_list_requests_answers_from_the_loop():
    worker, socks = make_worker()
    try:
        channel, other = FakeChannel(), FakeChannel()
        worker.channels = {0: channel, 2: other}   # a data channel per front index
        worker.stats.begin(ctx_with(0, channel=channel, path="/slow"))
        worker.stats.begin(ctx_with(0, channel=other, path="/other"))
        worker._on_control({"op": "list_requests", "id": 3}, [])
        [answer] = worker.control.sent
        assert answer["op"] == "requests" and answer["id"] == 3
        assert [(row["url"], row["front"]) for row in answer["requests"]] == [
            ("GET /slow", 0), ("GET /other", 2)]
    finally:
        for s in socks:
            s.close()


def test_coroutine_stack_follows_what_it_awaits():
    loop = asyncio.new_event_loop()
    try:
        async def innermost_wait():
            await asyncio.sleep(10)

        async def outer():
            await innermost_wait()

        coro = outer()
        task = loop.create_task(coro)
        loop.run_until_complete(asyncio.sleep(0.01))
        text = watchdog.coroutine_stack(coro)
        assert text.index("in outer") < text.index("in innermost_wait") < text.index("in sleep")
        assert "Coroutine of the request:" in watchdog.thread_stacks(coro=coro)
        task.cancel()
        loop.run_until_complete(asyncio.wait([task]))
    finally:
        loop.close()


def test_the_execution_limit_of_a_wsgi_request_counts_from_when_a_thread_takes_it(tmp_path):
    (tmp_path / "okapp.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Length', '2')])\n"
        "    return [b'ok']\n")
    from wasp.worker.application import load
    app = make_app("/", app="okapp:app", python_path=[str(tmp_path)], execution_timeout=30.0)
    load(app, threads=1, multiprocess=False)
    worker, socks = make_worker()
    try:
        ctx = make_ctx(app, path="/x")
        assert app.pipeline.run_front(ctx) is True
        ctx.start_time -= 25.0   # it waited 25 s of its 30 s limit for a thread
        queued_since = ctx.start_time
        worker._start_threads(1)
        worker.jobs.put(ctx)
        worker.jobs.put(None)
        worker.threads[0].join(5)
        assert ctx.channel.response()[3] == b"ok" and ctx.channel.finished == [ctx]
        assert ctx.start_time >= queued_since + 25.0  # the limit restarted when the thread took it
        assert watchdog.check([ctx], ctx.start_time + 29.0) == ([], [])
    finally:
        for s in socks:
            s.close()
