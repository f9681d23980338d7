"""Kept connections to an external FastCGI server (`keep_connections`), through a real server.

One wasp worker, three applications over php_apps/:
  /ka   the test's php-fpm over TCP (2 children, pm.max_requests = 4), keep_connections = 2
  /nk   the same php-fpm, as "127.0.0.1:PORT|nokeep" (no entry: keep_connections = 0) (a connection per request, closed after it)
  /fake a FastCGI server of the test's own that answers the first request on a connection and
        closes the connection when it reads the second (a php-fpm child recycled between the
        two), or, in refuse mode, closes every connection without answering

The php-fpm listens on TCP so the worker's connections to it can be counted and told apart
(psutil: the local port of each).
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

import psutil
import pytest
import requests

from php_support import PHP_FPM, copy_pages, start_fpm, stop_fpm

pytestmark = pytest.mark.skipif(not PHP_FPM, reason="php-fpm (Debian php-fpm) is needed")


def app(path: str, processor: str) -> str:
    return f"""
[[sites.applications]]
path = "{path}"
pool = "Php"
physical_path = "www"
[[sites.applications.handlers]]
name = "PHP_via_FastCGI"
path = "*.php"
verb = "GET,HEAD,POST"
modules = "fast_cgi"
script_processor = "{processor}"
resource_type = "Either"
"""


CONFIG = """
{pool_timing}
[http_errors]
error_mode = "Detailed"

[[fast_cgi]]
full_path = "127.0.0.1:%(fpm)d"
keep_connections = 2

[[fast_cgi]]
full_path = "127.0.0.1:%(fake)d"
keep_connections = 1

[[pools]]
name = "Php"
max_processes = 1

[[sites]]
name = "Php Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
""" + app("/", "127.0.0.1:%(fpm)d") + app("/ka", "127.0.0.1:%(fpm)d") + app("/nk", "127.0.0.1:%(fpm)d|nokeep") \
    + app("/fake", "127.0.0.1:%(fake)d")


class FakeFastCgi:
    """A Responder that keeps connections: answers the first request on each connection and
    closes it on reading the second (mode "recycle"), or closes at once ("refuse")."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.mode = "recycle"
        self.accepted = 0
        self.answered = 0
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopped:
            try:
                conn, _addr = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    @staticmethod
    def _request(conn) -> int | None:
        """Read records up to the empty STDIN one: -> its request id (None at EOF)."""
        buf = b""
        while True:
            while len(buf) >= 8:
                _v, rtype, rid, length, padding = struct.unpack(">BBHHBx", buf[:8])
                if len(buf) < 8 + length + padding:
                    break
                buf = buf[8 + length + padding:]
                if rtype == 5 and length == 0:
                    return rid
            data = conn.recv(65536)
            if not data:
                return None
            buf += data

    def _one(self, conn):
        conn.settimeout(30)
        with conn:
            try:
                if self.mode == "refuse":
                    return
                served = 0
                while True:
                    rid = self._request(conn)
                    if rid is None:
                        return
                    if served:
                        return  # "recycled": closes with the request unanswered
                    body = b"Content-Type: text/plain\r\n\r\nfake " + str(self.accepted).encode()
                    out = struct.pack(">BBHHBx", 1, 6, rid, len(body), 0) + body
                    out += struct.pack(">BBHHBx", 1, 6, rid, 0, 0)
                    out += struct.pack(">BBHHBx", 1, 3, rid, 8, 0) + struct.pack(">IB3x", 0, 0)
                    conn.sendall(out)
                    served += 1
                    self.answered += 1
            except OSError:
                return

    def close(self):
        self.stopped = True
        self.listener.close()


@pytest.fixture(scope="module")
def php(wasp_module_server):
    d = wasp_module_server.dir
    copy_pages(d / "www")
    fpm_port = wasp_module_server.free_port()
    fpm = start_fpm(d, children=2, listen=f"127.0.0.1:{fpm_port}", extra="pm.max_requests = 4")
    fake = FakeFastCgi()
    try:
        server = wasp_module_server(CONFIG % {"fpm": fpm_port, "fake": fake.port})
        yield server, fpm_port, fake
    finally:
        wasp_module_server.stop_all()
        stop_fpm(fpm)
        fake.close()


def worker(server) -> psutil.Process:
    """The Php pool's worker, started by a request if no earlier test did (it starts on demand)."""
    if not server.processes("worker", pool="Php"):
        requests.get(server.url + "/ka/pid.php", timeout=30)
    procs = server.processes("worker", pool="Php")
    assert len(procs) == 1, procs
    return procs[0]


def to_port(proc: psutil.Process, port: int) -> list:
    """The worker's established TCP connections to `port`."""
    return [c for c in proc.net_connections("tcp") if c.raddr and c.raddr.port == port
            and c.status == psutil.CONN_ESTABLISHED]


def get(server, path: str) -> requests.Response:
    return requests.get(server.url + path, timeout=30)


def test_a_kept_connection_serves_the_next_requests(php):
    server, fpm_port, _fake = php
    r = get(server, "/ka/hello.php")
    assert r.status_code == 200, r.text
    proc = worker(server)
    first = {c.laddr.port for c in to_port(proc, fpm_port)}
    assert len(first) == 1
    for _ in range(2):  # 3 in all, within pm.max_requests = 4: the same child and connection
        r = get(server, "/ka/hello.php")
        assert r.status_code == 200
    assert {c.laddr.port for c in to_port(proc, fpm_port)} == first


def test_without_keep_connections_each_request_closes_its_connection(php):
    server, fpm_port, _fake = php
    proc = worker(server)
    before = {c.laddr.port for c in to_port(proc, fpm_port)}
    for _ in range(3):
        r = get(server, "/nk/hello.php")
        assert r.status_code == 200, r.text
    # the /ka connections may be there (kept); none of /nk's stays
    server.wait_until(lambda: {c.laddr.port for c in to_port(proc, fpm_port)} <= before, timeout=10)


def test_recycled_php_fpm_children_cause_no_errors_and_the_bound_holds(php):
    """pm.max_requests = 4 with 2 children: php-fpm closes a kept connection every 4 requests
    while 4 clients keep the worker's 2 connections busy."""
    server, fpm_port, _fake = php
    proc = worker(server)
    results = []
    most = [0]
    lock = threading.Lock()
    done = threading.Event()

    def look():
        try:
            seen = len(to_port(proc, fpm_port))
        except psutil.Error:
            return
        with lock:
            most[0] = max(most[0], seen)

    def sample():
        while not done.is_set():
            look()
            time.sleep(0.005)

    def client():
        with requests.Session() as s:
            for _ in range(15):
                r = s.get(server.url + "/ka/pid.php", timeout=30)
                results.append((r.status_code, r.text))
                # Also right after an answer, while its connection is kept: on a loaded machine
                # the sampler thread alone may never run while one is open.
                look()

    sampler = threading.Thread(target=sample)
    sampler.start()
    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    done.set()
    sampler.join(10)
    assert len(results) == 60
    bad = [r for r in results if r[0] != 200 or not r[1].isdigit()]
    assert not bad, bad[:5]
    assert len({text for _status, text in results}) > 2  # children were recycled meanwhile
    assert 1 <= most[0] <= 2


def test_the_bound_makes_requests_wait_rather_than_open_more(php):
    """6 requests of 1 s at once through keep_connections = 2: never more than 2 connections."""
    server, fpm_port, _fake = php
    proc = worker(server)
    results = []
    most = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            try:
                most[0] = max(most[0], len(to_port(proc, fpm_port)))
            except psutil.Error:
                pass
            time.sleep(0.01)

    def one():
        r = requests.get(server.url + "/ka/sleep.php?s=1", timeout=60)
        results.append(r.status_code)

    sampler = threading.Thread(target=sample)
    sampler.start()
    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    done.set()
    sampler.join(10)
    assert results == [200] * 6
    assert most[0] == 2


def test_a_kept_connection_closed_unanswered_is_retried_once_on_a_new_one(php):
    server, _fpm_port, fake = php
    fake.mode = "recycle"
    r = get(server, "/fake/hello.php")
    assert r.status_code == 200 and r.text.startswith("fake"), r.text
    accepted = fake.accepted
    # The kept connection is taken again; the server closes it on reading the request; wasp
    # sends the request again on a new connection, which answers.
    r = get(server, "/fake/hello.php")
    assert r.status_code == 200 and r.text.startswith("fake"), r.text
    assert fake.accepted == accepted + 1
    # a POST with its body at hand is retried the same way
    r = requests.post(server.url + "/fake/hello.php", data=b"x=1", timeout=30)
    assert r.status_code == 200, r.text
    assert fake.accepted == accepted + 2


def test_a_new_connection_closed_unanswered_is_not_retried(php):
    server, _fpm_port, fake = php
    fake.mode = "refuse"
    try:
        accepted = fake.accepted
        r = get(server, "/fake/hello.php")
        assert r.status_code == 500
        # the kept connection from before (closed now or at once) and one new one at most
        assert fake.accepted - accepted <= 2
        r = get(server, "/fake/hello.php")
        assert r.status_code == 500
        assert fake.accepted - accepted <= 3
    finally:
        fake.mode = "recycle"
    r = get(server, "/fake/hello.php")
    assert r.status_code == 200
