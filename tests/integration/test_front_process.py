"""The real front process (`python -m wasp.front`) with the test as manager and fake workers.

Every process is stopped by PID in teardown (FrontHarness.close), even when a test fails.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
import pathlib

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from front_harness import FrontHarness, make_config  # noqa: E402
from wasp.config import model  # noqa: E402


@pytest.fixture
def front(tmp_path):
    h = FrontHarness(str(tmp_path))
    try:
        yield h
    finally:
        h.close()


def connect(h) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", h.port), timeout=10)
    return s


class Reader:
    """Responses (Content-Length or chunked framing) from a blocking socket, in order."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def _more(self) -> None:
        data = self.sock.recv(65536)
        assert data, f"connection closed after {self.buf[:200]!r}"
        self.buf += data

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._more()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._more()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def response(self, head_only: bool = False) -> tuple[int, dict, bytes]:
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if head_only or status < 200 or status in (204, 304):
            return status, headers, b""
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                body += self._take(size)
                self._take(2)
                if size == 0:
                    return status, headers, body
        return status, headers, self._take(int(headers.get("content-length", "0")))


def read_response(s, head_only: bool = False) -> tuple[int, dict, bytes]:
    reader = READERS.setdefault(s, Reader(s))
    return reader.response(head_only)


def read_responses(s, count: int) -> list:
    return [read_response(s) for _ in range(count)]


READERS: dict = {}


def log_lines(tmp_path, *parts) -> list[str]:
    path = pathlib.Path(tmp_path, *parts)
    return [line for line in path.read_text().splitlines() if not line.startswith("#")]


def test_keep_alive_head_and_pipelining(front):
    front.add_worker(1)
    front.wait_ready()
    with connect(front) as s:
        s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s)[2] == b"hello"
        s.sendall(b"HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(s, head_only=True)
        assert status == 200 and headers["content-length"] == "5" and body == b""
        s.sendall(b"GET /info?n=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                  b"GET /stream?n=2 HTTP/1.1\r\nHost: x\r\n\r\n")
        r1, r2, r3 = read_responses(s, 3)
        assert b'"query":"n=1"' in r1[2]
        assert r2[2] == b"abc"
        assert r3[1]["transfer-encoding"] == "chunked" and r3[2] == b"chunk 0000\nchunk 0001\n"


def test_chunked_upload_and_100_continue(front):
    front.add_worker(1)
    front.wait_ready()
    with connect(front) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n")
        assert read_response(s)[2] == b"hello world"
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        assert read_response(s, head_only=True)[0] == 100
        s.sendall(b"body")
        status, _, body = read_response(s)
        assert (status, body) == (200, b"body")


def test_large_upload_and_download_with_flow_control(front, tmp_path):
    front.add_worker(1)
    front.wait_ready()
    payload = os.urandom(3 * 1024 * 1024)
    with connect(front) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload)
        assert read_response(s)[2] == payload
        s.sendall(b"GET /big?n=5000000 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert len(read_response(s)[2]) == 5_000_000
        big = tmp_path / "big.bin"
        big.write_bytes(payload)
        s.sendall(b"GET /file?p=%s HTTP/1.1\r\nHost: x\r\n\r\n" % str(big).encode())
        assert read_response(s)[2] == payload


def test_queue_full_503_httperr_and_demand(tmp_path):
    def config(log_dir, port):
        return make_config(log_dir, port, pools=[model.Pool(name="P", queue_length=10)])
    h = FrontHarness(str(tmp_path), config)
    try:
        h.ping()  # config applied
        socks = []
        for _ in range(10):
            s = connect(h)
            s.sendall(b"GET /waiting HTTP/1.1\r\nHost: x\r\n\r\n")
            socks.append(s)
        assert h.recv("demand") == {"op": "demand", "pool": "P"}
        for _ in range(50):
            if h.ping()["pools"]["P"]["queued"] == 10:
                break
            time.sleep(0.05)
        with connect(h) as s:
            s.sendall(b"GET /full HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, body = read_response(s)
        assert status == 503 and b"HTTP Error 503. The service is unavailable." in body
        # The queued ones are served once a worker comes.
        h.add_worker(1)
        for s in socks:
            assert read_response(s)[2] == b"hello"
            s.close()
        assert h.stop() == 0
        errors = log_lines(tmp_path, "httperr", "httperr1.log")
        assert [e.split(" ")[-6:] for e in errors] == [["/full", "-", "503", "1", "QueueFull", "P"]]
        access = log_lines(tmp_path, "W3SVC1", os.listdir(tmp_path / "W3SVC1")[0])
        assert len(access) == 10 and all(" GET /waiting - " in line for line in access)
    finally:
        h.close()


def test_access_log_line_written(front, tmp_path):
    front.add_worker(1)
    front.wait_ready()
    with connect(front) as s:
        s.sendall(b"GET /x%20y?q=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: Test Agent\r\nReferer: http://r/\r\n\r\n")
        read_response(s)
    deadline = time.monotonic() + 20
    folder = tmp_path / "W3SVC1"
    lines = []
    while time.monotonic() < deadline:  # flushed by the once-a-second tick
        names = os.listdir(folder) if folder.exists() else []  # the folder is made before the file
        if names:
            lines = [line for line in log_lines(tmp_path, "W3SVC1", names[0]) if "/x+y" in line]
            if lines:
                break
        time.sleep(0.1)
    [line] = lines
    fields = line.split(" ")
    assert fields[3:10] == ["GET", "/x+y", "q=1", str(front.port), "-", "127.0.0.1", "Test+Agent"]
    assert fields[10:14] == ["http://r/", "200", "0", "0"]
    assert time.gmtime().tm_year == int(fields[0][:4])


def test_websocket_tunnel(front):
    front.add_worker(1)
    front.wait_ready()
    with connect(front) as s:
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        status, headers, _ = read_response(s, head_only=True)
        assert status == 101 and headers["upgrade"] == "websocket"
        s.sendall(b"ping-bytes")
        got = b""
        while len(got) < 10:
            got += s.recv(100)
        assert got == b"ping-bytes"
        s.shutdown(socket.SHUT_WR)
        assert s.recv(100) == b""


def test_worker_crash_is_503_and_front_keeps_serving(front):
    front.add_worker(1)
    front.wait_ready()
    with connect(front) as s:
        s.sendall(b"GET /crash HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s)[0] == 503
        front.add_worker(2)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s)[2] == b"hello"


def test_bad_request_gets_http_sys_page(front):
    front.add_worker(1)
    front.wait_ready()
    with connect(front) as s:
        s.sendall(b"get / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(s)
        assert status == 400 and headers["content-length"] == "326" and headers["connection"] == "close"
        assert b"Bad Request - Invalid Verb" in body
        assert s.recv(10) == b""


def test_control_ping_list_requests_and_stop(front):
    front.add_worker(1)
    front.wait_ready()
    with connect(front) as s:
        s.sendall(b"GET /slow?ms=3000 HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in range(50):
            front.send({"op": "list_requests", "id": 7})
            reply = front.recv("requests")
            if reply["requests"]:
                break
            time.sleep(0.05)
        assert reply["id"] == 7
        [req] = reply["requests"]
        assert req["url"] == "/slow?ms=3000" and req["stage"] == "ExecuteRequestHandler"
        assert req["worker_id"] == 1 and req["pool"] == "P" and req["site_id"] == 1
        pong = front.ping(9)
        assert pong["id"] == 9 and pong["pools"]["P"]["inflight"] == 1
        front.send({"op": "stop"})
        status, headers, body = read_response(s)   # in-flight request finishes
        assert body == b"slow" and headers["connection"] == "close"
    assert front.front.wait(10) == 0


def test_sigterm_stops_and_sigint_is_ignored(front):
    front.ping()
    front.front.send_signal(signal.SIGINT)
    assert front.ping()["op"] == "pong"
    front.front.send_signal(signal.SIGTERM)
    assert front.front.wait(10) == 0


def test_manager_death_ends_the_front(front):
    front.ping()
    front.ours.shutdown(socket.SHUT_RDWR)
    assert front.front.wait(10) == 0


def test_new_config_adds_and_removes_listeners(front, tmp_path):
    front.add_worker(1)
    front.wait_ready()
    extra = socket.socket()
    extra.bind(("127.0.0.1", 0))
    extra.listen(16)
    port2 = extra.getsockname()[1]
    sites = [model.Site(name="S", id=1, bindings=[f"http/127.0.0.1:{front.port}:", f"http/127.0.0.1:{port2}:"],
                        applications=[model.Application(path="/", pool="P")])]
    config = make_config(str(tmp_path), front.port, sites=sites)
    front.send({"op": "config", "config": model.encode(config),
                "listeners": [["127.0.0.1", front.port], ["127.0.0.1", port2]]},
               [front.listener.fileno(), extra.fileno()])
    front.ping()
    with socket.create_connection(("127.0.0.1", port2), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s)[2] == b"hello"
    # Drop the first listener: the front stops accepting there (the kernel backlog still takes
    # the connection, since this test holds the socket open, but nobody answers).
    front.send({"op": "config", "config": model.encode(config), "listeners": [["127.0.0.1", port2]]},
               [extra.fileno()])
    front.ping()
    with socket.create_connection(("127.0.0.1", front.port), timeout=10) as s:
        s.settimeout(0.5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(socket.timeout):
            s.recv(100)
    extra.close()


def test_pool_state_stopped_answers_503(front):
    front.add_worker(1)
    front.wait_ready()
    front.send({"op": "pool_state", "pool": "P", "state": "Stopped", "reason": "Disabled"})
    front.ping()
    with connect(front) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s)[0] == 503
    front.send({"op": "pool_state", "pool": "P", "state": "Started"})
    front.ping()
    with connect(front) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s)[0] == 200


def test_worker_drain_sends_drain_and_dispatches_nothing_more(front):
    front.add_worker(1)
    front.wait_ready()
    front.send({"op": "worker_drain", "worker_id": 1})
    front.ping()
    # The fake worker exits on DRAIN with nothing in flight; requests now queue and ask for a worker.
    with connect(front) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert front.recv("demand")["pool"] == "P"
        front.add_worker(2)
        assert read_response(s)[2] == b"hello"
    assert front.workers[1].wait(10) == 0
