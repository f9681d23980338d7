"""A real worker process, with the test playing the manager (control channel) and the front
(data channel) over socketpairs."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import psutil
import pytest
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import CloseConnection, Message, TextMessage

from worker_harness import APPS, WorkerProcess, make_config
from wasp.wire import frames
from wasp.wire.frames import FLAG_FIN, FrameType

PY = [str(APPS)]


@pytest.fixture
def start_worker():
    started: list[WorkerProcess] = []

    def start(apps, pool=None, **kwargs) -> WorkerProcess:
        worker = WorkerProcess(**kwargs)
        started.append(worker)
        worker.config = make_config(apps, pool)
        return worker

    yield start
    for worker in started:
        worker.stop_process()


def served_eventually(worker, expected=1):
    """`served` counts a request once its LOG/END phases ran, just after the response left."""
    for attempt in range(100):
        served = worker.ping(attempt)["served"]
        if served >= expected:
            return served
        time.sleep(0.02)
    return served


def ready_worker(start_worker, apps, pool=None, sections=None):
    worker = start_worker(apps, pool)
    if sections is not None:
        worker.config.sections = sections  # the raw system.webServer section tables
    message = worker.init(worker.config)
    assert message["op"] == "ready", (message, worker.output())
    assert message["pid"] == worker.pid
    return worker, worker.attach()


# ---- frameworks ----

def test_flask_app(start_worker):
    worker, front = ready_worker(start_worker, [
        {"path": "/", "app": "fw_flask:app", "python_path": PY},
        {"path": "/flask", "app": "fw_flask:app", "python_path": PY}])
    # 16 threads, and as many requests again may wait for one while the loop serves static files
    assert front.hello.capacity == 32 and front.hello.worker_id == 1
    r = front.request("1/", "GET", "/")
    assert (r.status, bytes(r.body)) == (200, b"Hello from Flask")
    assert r.kind == "response" and r.frames == 1  # one RESPONSE frame with FIN
    body = json.dumps({"a": [1, 2]}).encode()
    r = front.request("1/flask", "POST", "/flask/json", body=body,
                      headers=[("Content-Type", "application/json")])
    assert r.status == 200
    assert json.loads(r.body) == {"received": {"a": [1, 2]}, "script_root": "/flask", "path": "/json"}
    r = front.request("1/flask", "GET", "/flask/url", query="x=1")
    assert bytes(r.body) == b"http://localhost:8080/flask/url?x=1"


def test_fastapi_http_and_lifespan_state(start_worker):
    worker, front = ready_worker(start_worker, [{"path": "/api", "app": "fw_fastapi:app", "python_path": PY}])
    assert front.hello.capacity == 256  # an ASGI-only pool takes max_concurrent_requests
    r = front.request("1/api", "GET", "/api/items/7", query="q=x")
    assert r.status == 200 and json.loads(r.body) == {"item_id": 7, "q": "x"}
    r = front.request("1/api", "GET", "/api/state")
    assert json.loads(r.body) == {"started": True, "url": "http://localhost:8080/api/state",
                                  "root_path": "/api"}
    r = front.request("1/api", "POST", "/api/echo", body=b"z" * 300_000)
    assert json.loads(r.body) == {"length": 300_000}
    r = front.request("1/api", "GET", "/api/nothing")
    assert r.status == 404


def _ws_open(front, path, app="1/"):
    head = front.head(app, "GET", path, headers=[
        ("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")], websocket=True)
    return front.start(head, has_body=True)


def _next_for(front, sid):
    for _ in range(100):
        frame = front.next_frame()
        if frame[2] == sid and frame[0] != FrameType.WINDOW:
            return frame
    raise AssertionError("no frame for the stream")


def test_fastapi_websocket_echo(start_worker):
    worker, front = ready_worker(start_worker, [{"path": "/", "app": "fw_fastapi:app", "python_path": PY}])
    sid = _ws_open(front, "/ws")
    ftype, flags, _, payload = _next_for(front, sid)
    assert ftype == FrameType.RESPONSE and not flags & FLAG_FIN
    _sub, _len, block, _ = frames.unpack_response(payload)
    assert block.startswith(b"101 ")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in block
    client = Connection(ConnectionType.CLIENT)
    for text in ("hello", "second"):
        front.send(frames.pack_body(sid, client.send(Message(data=text))))
        ftype, _, _, payload = _next_for(front, sid)
        assert ftype == FrameType.BODY
        client.receive_data(payload)
        events = list(client.events())
        assert isinstance(events[0], TextMessage) and events[0].data == "echo: " + text
    front.send(frames.pack_body(sid, client.send(Message(data="bye"))))
    ftype, _, _, payload = _next_for(front, sid)
    client.receive_data(payload)
    assert isinstance(next(client.events()), CloseConnection)
    assert _next_for(front, sid)[0] == FrameType.END

    sid = _ws_open(front, "/ws-deny")
    ftype, flags, _, payload = _next_for(front, sid)
    assert ftype == FrameType.RESPONSE and flags & FLAG_FIN
    assert frames.unpack_response(payload)[2].startswith(b"403 ")


# ---- WSGI conformance and failures ----

def test_wsgiref_validator(start_worker):
    worker, front = ready_worker(start_worker, [{"path": "/", "app": "hello_wsgi:validated", "python_path": PY}])
    r = front.request("1/", "GET", "/")
    assert (r.status, bytes(r.body)) == (200, b"ok")
    r = front.request("1/", "POST", "/body", body=b"payload" * 1000)
    assert bytes(r.body) == b"payload" * 1000
    r = front.request("1/", "POST", "/lines", body=b"a\nb\nc\n")
    assert bytes(r.body) == b"3"
    assert "AssertionError" not in worker.output()


def test_app_that_raises_then_next_request_works(start_worker):
    worker, front = ready_worker(start_worker, [{"path": "/", "app": "hello_wsgi:raises", "python_path": PY}])
    r = front.request("1/", "GET", "/boom", client=("10.0.0.9", 1234))
    assert r.status == 500 and b"500 - Internal server error." in r.body
    r = front.request("1/", "GET", "/boom")  # loopback: IIS's detailed error
    assert r.status == 500 and b"HTTP Error 500.0 - Internal Server Error" in r.body
    r = front.request("1/", "GET", "/late")
    assert r.kind == "abort" and r.status == 200 and r.abort_status == 500
    r = front.request("1/", "GET", "/fine")
    assert (r.status, bytes(r.body)) == (200, b"fine")
    assert "RuntimeError: boom" in worker.output()


def test_app_that_fails_to_import(start_worker):
    worker = start_worker([{"path": "/", "app": "broken_import:app", "python_path": PY}])
    message = worker.init(worker.config)
    assert message["op"] == "load_failed"
    assert "this_module_does_not_exist" in message["error"] and "\n" not in message["error"]
    assert "Traceback" in message["traceback"]
    assert worker.wait(20) == 4


def test_lifespan_startup_failed_exits_4(start_worker):
    worker = start_worker([{"path": "/", "app": "hello_asgi:failing_startup", "python_path": PY}])
    message = worker.init(worker.config)
    assert message["op"] == "load_failed" and "database unreachable" in message["error"]
    assert worker.wait(20) == 4


def test_app_without_lifespan_support_serves(start_worker):
    worker, front = ready_worker(start_worker, [{"path": "/", "app": "hello_asgi:no_lifespan", "python_path": PY}])
    assert bytes(front.request("1/", "GET", "/").body) == b"no lifespan"


def test_missing_pool_is_a_load_failure(start_worker):
    worker = start_worker([{"path": "/", "physical_path": str(APPS / "www")}])
    message = worker.init(worker.config, pool="Nope")
    assert message["op"] == "load_failed" and "Nope" in message["error"]
    assert worker.wait(20) == 4


# ---- bodies and flow control ----

def _rss_sampler(pid):
    proc = psutil.Process(pid)
    peak = [proc.memory_info().rss]
    stop = threading.Event()

    def sample():
        while not stop.wait(0.02):
            try:
                peak[0] = max(peak[0], proc.memory_info().rss)
            except psutil.Error:
                return

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    return peak, stop


@pytest.mark.parametrize("app", ["hello_wsgi:upload", "hello_asgi:stream"])
def test_50mb_upload_keeps_rss_bounded(start_worker, app):
    # Over request filtering's default max_allowed_content_length (30,000,000): lifted here.
    worker, front = ready_worker(start_worker, [{"path": "/", "app": app, "python_path": PY}],
                                 sections={"server": {"request_filtering": {
                                     "request_limits": {"max_allowed_content_length": 0}}}})
    front.request("1/", "GET", "/")  # warm
    base = psutil.Process(worker.pid).memory_info().rss
    peak, stop = _rss_sampler(worker.pid)
    size = 50 * 1024 * 1024
    chunk = bytes(range(256)) * 256

    def body():
        for _ in range(size // len(chunk)):
            yield chunk
    r = front.request("1/", "POST", "/", body=body())
    stop.set()
    assert r.status == 200
    assert bytes(r.body).split()[0] == str(size).encode()
    assert peak[0] - base < 24 * 1024 * 1024, (base, peak[0])


@pytest.mark.parametrize("app,query", [("hello_wsgi:download", "n=%d"), ("hello_asgi:stream", "n=%d")])
def test_50mb_download_keeps_rss_bounded(start_worker, app, query):
    worker, front = ready_worker(start_worker, [{"path": "/", "app": app, "python_path": PY}])
    front.request("1/", "GET", "/", query="n=10")
    base = psutil.Process(worker.pid).memory_info().rss
    peak, stop = _rss_sampler(worker.pid)
    size = 50 * 1024 * 1024
    r = front.request("1/", "GET", "/", query=query % size)
    stop.set()
    assert r.kind == "stream" and r.status == 200
    assert len(r.body) >= size
    assert peak[0] - base < 24 * 1024 * 1024, (base, peak[0])


def test_worker_never_exceeds_the_window_without_acks(start_worker):
    worker, front = ready_worker(start_worker, [{"path": "/", "app": "hello_wsgi:download", "python_path": PY}])
    sid = front.start(front.head("1/", "GET", "/", query="n=10000000"), has_body=False)
    received = 0
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            batch = front.recv_frames(0.3)
        except TimeoutError:
            break
        received += sum(len(p) for t, _f, s, p in batch if t == FrameType.BODY and s == sid)
    assert received == frames.INITIAL_WINDOW
    front.send(frames.pack_cancel(sid))
    r = front.request("1/", "GET", "/", query="n=5")
    assert bytes(r.body) == bytes(range(5))


def test_cancel_stops_an_asgi_stream(start_worker):
    worker, front = ready_worker(start_worker, [{"path": "/", "app": "hello_asgi:stream", "python_path": PY}])
    sid = front.start(front.head("1/", "GET", "/", query="n=100000000"), has_body=False)
    assert _next_for(front, sid)[0] == FrameType.RESPONSE
    front.send(frames.pack_cancel(sid))
    r = front.request("1/", "GET", "/", query="n=3")
    assert bytes(r.body) == b"0\n" + bytes(range(3))
    assert served_eventually(worker, 2) and worker.ping()["inflight"] == 0, worker.output()


# ---- static content, warm-up, stats ----

def test_static_content_through_the_worker(start_worker):
    worker, front = ready_worker(start_worker, [{"path": "/", "physical_path": str(APPS / "www")}])
    r = front.request("1/", "GET", "/hello.txt")
    assert r.kind == "file" and bytes(r.body) == b"hello file\n"
    assert r.file.path == os.path.realpath(APPS / "www" / "hello.txt")
    r = front.request("1/", "GET", "/missing.txt")
    assert (r.status, r.substatus) == (404, 0)
    r = front.request("1/", "GET", "/data.xyz")
    assert (r.status, r.substatus) == (404, 3)
    r = front.request("1/", "GET", "/empty/")
    assert (r.status, r.substatus) == (403, 14)


def test_initialization_pages_run_before_ready(start_worker):
    worker, front = ready_worker(start_worker, [{"path": "/w", "app": "warm:app", "python_path": PY,
                                                 "initialization_pages": ["/one", "/two?x=1"]}])
    r = front.request("1/w", "GET", "/w/check")
    assert bytes(r.body) == b"warmed=/one,/two"
    assert served_eventually(worker) == 1  # warm-up requests are not counted as served


def test_ping_reports_stats(start_worker):
    worker, front = ready_worker(start_worker, [{"path": "/", "app": "hello_wsgi:hello", "python_path": PY}])
    for _ in range(3):
        front.request("1/", "GET", "/")
    assert served_eventually(worker, 3) == 3
    pong = worker.ping(42)
    assert pong["op"] == "pong" and pong["id"] == 42
    assert pong["served"] == 3 and pong["inflight"] == 0 and pong["idle_s"] >= 0


def test_environ_and_worker_environment(start_worker):
    worker, front = ready_worker(start_worker, [{"path": "/env", "app": "hello_wsgi:echo_environ", "python_path": PY}],
                                 pool={"environment_variables": {"EXTRA": "1"}})
    # The path as the front cooked it (a cooked "%20" would be request filtering's 404.11).
    r = front.request("1/env", "GET", "/env/a b", query="x=1", headers=[("Cookie", "a=1"), ("Cookie", "b=2"),
                                                                      ("X-Multi", "1"), ("X-Multi", "2")])
    text = bytes(r.body).decode()
    assert "SCRIPT_NAME='/env'" in text and "PATH_INFO='/a b'" in text
    assert "HTTP_COOKIE='a=1; b=2'" in text and "HTTP_X_MULTI='1, 2'" in text
    assert "WASP_POOL=P" in text and "WASP_WORKER_ID=1" in text


# ---- stopping ----

def test_stop_finishes_in_flight_then_exits_after_drain(start_worker):
    worker, front = ready_worker(start_worker, [{"path": "/", "app": "hello_wsgi:upload", "python_path": PY}])
    sid = front.start(front.head("1/", "POST", "/", content_length=5), has_body=True)
    front.send(frames.pack_body(sid, b"ab"))
    worker.send({"op": "stop"})
    time.sleep(0.2)
    assert worker.proc.poll() is None  # waits for DRAIN, and for the request in flight
    front.send(frames.pack_drain())
    front.send(frames.pack_body(sid, b"cde") + frames.pack_end(sid))
    ftype, flags, _, payload = _next_for(front, sid)
    assert ftype == FrameType.RESPONSE and frames.unpack_response(payload)[3].startswith(b"5 ")
    assert worker.wait(20) == 0


def test_data_channel_eof_then_reattach(start_worker):
    worker, front = ready_worker(start_worker, [{"path": "/", "app": "hello_wsgi:hello", "python_path": PY}])
    front.close()
    time.sleep(0.1)
    assert worker.proc.poll() is None
    front = worker.attach()
    assert bytes(front.request("1/", "GET", "/").body) == b"Hello, world!"
    worker.send({"op": "stop"})
    front.close()  # EOF after stop = no more requests
    assert worker.wait(20) == 0


def test_sigterm_is_graceful_and_sigint_ignored(start_worker):
    worker, front = ready_worker(start_worker, [{"path": "/", "app": "hello_asgi:hello", "python_path": PY}])
    os.kill(worker.pid, signal.SIGINT)
    time.sleep(0.2)
    assert worker.proc.poll() is None
    assert bytes(front.request("1/", "GET", "/").body) == b"Hello, world!"
    os.kill(worker.pid, signal.SIGTERM)
    front.send(frames.pack_drain())
    assert worker.wait(20) == 0


@pytest.mark.parametrize("app", ["hello_wsgi:echo_environ", "hello_asgi:echo_scope"])
def test_many_interleaved_requests_keep_their_streams(start_worker, app):
    worker, front = ready_worker(start_worker, [{"path": "/", "app": app, "python_path": PY}])
    sids = {}
    batch = []
    for n in range(48):
        sid = 1000 + n
        head = front.head("1/", "GET", f"/item/{n}")
        batch.append(frames.pack_request(sid, head, False))
        sids[sid] = f"/item/{n}"
    front.send(b"".join(batch))
    seen = {}
    while len(seen) < len(sids):
        ftype, flags, sid, payload = front.next_frame()
        assert ftype == FrameType.RESPONSE and flags & FLAG_FIN
        seen[sid] = frames.unpack_response(payload)[3]
    for sid, path in sids.items():
        assert repr(path).encode() in seen[sid] or f"'{path}'".encode() in seen[sid], (sid, seen[sid])


def test_lifespan_shutdown_runs_on_stop(start_worker, tmp_path):
    marker = tmp_path / "marker"
    worker, front = ready_worker(start_worker, [{"path": "/", "app": "hello_asgi:marks_shutdown", "python_path": PY}],
                                 pool={"environment_variables": {"MARKER": str(marker)}})
    assert marker.read_text() == "startup\n"
    assert bytes(front.request("1/", "GET", "/").body) == b"up"
    worker.send({"op": "stop"})
    front.send(frames.pack_drain())
    assert worker.wait(20) == 0
    assert marker.read_text() == "startup\nshutdown\n"
