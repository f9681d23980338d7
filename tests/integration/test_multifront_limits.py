"""Server-wide QoS across several fronts: `[limits] max_connections` counts every front's
connections, and `max_global_bandwidth` is one budget that the fronts share, not one per front.

Two fronts on the same sockets. The connection cap is checked in the settled state (held requests,
as in test_multifront.py). The bandwidth is checked as an upper bound only: once the streams are
seen in flight on both fronts, the bytes all clients receive in a window may not exceed the one
rate (plus what socket buffers can hold at the window's edges), while two unshared budgets would
deliver about twice that. A slow machine only delivers less, so the bound cannot flake from load.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests

from conftest import APPS
from process_support import PROCAPPS, TIMING
from test_multifront import front_pids, hold, read_all, release, settle, status_of

RATE = 256 * 1024
CAP = 20   # enough connections for the accept balance to spread them over both fronts
#: Client receive buffer: bounds what a reader can take in at once at the window's edges.
RCVBUF = 32 * 1024
WINDOW_S = 5.0

CONFIG = TIMING + """
[server]
front_processes = 2

[limits]
max_connections = {cap}
max_global_bandwidth = {rate}

[[pools]]
name = "P"
start_mode = "always_running"

[[sites]]
name = "Site"
id = 1
bindings = ["http/127.0.0.1:{{port}}:"]
[[sites.applications]]
path = "/"
pool = "P"
app = "qos_app:app"
python_path = ["{apps}"]
[[sites.applications]]
path = "/p"
pool = "P"
app = "procapp:app"
python_path = ["{procapps}"]
"""


@pytest.fixture(scope="module")
def server(wasp_module_server):
    srv = wasp_module_server(CONFIG.format(cap=CAP, rate=RATE, apps=APPS, procapps=PROCAPPS))
    srv.fronts = 2
    srv.wait_until(lambda: len(front_pids(srv)) == 2, 20, what="both fronts")
    yield srv
    srv.stop()


def test_server_max_connections_counts_every_fronts_connections(server, tmp_path):
    name = "cap"
    socks = []
    try:
        # Held requests one at a time until both fronts hold some (the accept balance spreads a
        # burst, not a trickle), then the rest of the cap and five more at once.
        for _ in range(CAP):
            socks.append(hold(server, tmp_path, name, "/p/hold"))
            rows = server.wait_until(lambda: (lambda r: len(r) == len(socks) and r)(
                [r for r in server.list_json("requests") if f"release-{name}" in r["url"]]), 15)
            if {r["front"] for r in rows} == {0, 1}:
                break
        assert {r["front"] for r in rows} == {0, 1}, rows
        socks += [hold(server, tmp_path, name, "/p/hold") for _ in range(CAP + 5 - len(socks))]
        refused, held = settle(server, socks, f"release-{name}", 5, CAP)
        assert {status_of(r) for r in refused} == {503}
    finally:
        release(tmp_path, name)
    assert [status_of(read_all(s)) for s in held] == [200] * CAP
    server.wait_until(lambda: requests.get(server.url + "/", timeout=10).status_code == 200, 15)


class _Reader(threading.Thread):
    """One slow download on its own connection; `got` counts the bytes received so far."""

    def __init__(self, port: int, kb: int):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.sock.settimeout(60)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(f"GET /stream?kb={kb} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        self.got = 0
        self.stop = False

    def run(self) -> None:
        while not self.stop:
            try:
                data = self.sock.recv(8192)
            except OSError:
                return
            if not data:
                return
            self.got += len(data)

    def close(self) -> None:
        self.stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def test_max_global_bandwidth_is_one_budget_for_both_fronts(server):
    readers: list[_Reader] = []
    try:
        rows: list = []
        for _ in range(CAP):   # streams until both fronts have one in flight (at most the cap)
            reader = _Reader(server.port, kb=4096)
            reader.start()
            readers.append(reader)

            def listed():
                rows[:] = [r for r in server.list_json("requests") if "/stream" in r["url"]]
                return len(rows) == len(readers)
            server.wait_until(listed, 15, what=lambda: f"{len(readers)} streams listed: {rows}")
            if len(readers) >= 2 and {r["front"] for r in rows} == {0, 1}:
                break
        assert {r["front"] for r in rows} == {0, 1}, rows
        time.sleep(2.0)   # past the next sweep of each front: the shares are set from the scoreboard
        started, before = time.monotonic(), sum(r.got for r in readers)
        time.sleep(WINDOW_S)
        elapsed, after = time.monotonic() - started, sum(r.got for r in readers)
        assert all(r.is_alive() for r in readers), [r.got for r in readers]  # still streaming
        rate = (after - before) / elapsed
        # Edges: each reader may take in up to its receive buffer plus one read at once.
        slack = len(readers) * (2 * RCVBUF + 8192) / elapsed
        print(f"{len(readers)} streams on 2 fronts: {rate / 1024:.0f} KiB/s against "
              f"max_global_bandwidth {RATE / 1024:.0f} KiB/s (slack {slack / 1024:.0f})")
        assert rate <= RATE * 1.25 + slack, (rate, RATE, slack)
        assert after > before   # and it does stream
    finally:
        for reader in readers:
            reader.close()
