"""QoS as HTTP.sys enforces it and clients behind trusted proxies, on a real front: site connection
limits, bandwidth, the minimum send rate, accept back-off at the descriptor limit, the PROXY
protocol and X-Forwarded-For from trusted and untrusted peers."""

from __future__ import annotations

import resource
import socket
import struct
import subprocess
import time

import pytest
import requests

from conftest import free_port

RATE = 200 * 1024
FILE_SIZE = 600 * 1024

CONFIG = """
{pool_timing}
[server]
trusted_proxies = ["127.0.0.1"]

[limits]
connection_timeout = "30s"

[[pools]]
name = "Q"

[[sites]]
name = "Limited"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[sites.limits]
max_connections = 3
[[sites.applications]]
path = "/"
pool = "Q"
app = "qos_app:app"
python_path = ["{apps}"]

[[sites]]
name = "Slow"
id = 2
bindings = ["http/127.0.0.1:SLOW_PORT:"]
[sites.limits]
max_bandwidth = RATE
[[sites.applications]]
path = "/"
pool = "Q"
app = "qos_app:app"
python_path = ["{apps}"]
[[sites.applications]]
path = "/files"
pool = "Q"
physical_path = "{dir}/files"

[[sites]]
name = "Proxied"
id = 3
bindings = ["http/127.0.0.1:PROXY_PORT:"]
proxy_protocol = true
[[sites.applications]]
path = "/"
pool = "Q"
app = "qos_app:app"
python_path = ["{apps}"]
"""


@pytest.fixture(scope="module")
def server(wasp_module_server):
    ports = {"SLOW_PORT": free_port(), "PROXY_PORT": free_port()}
    text = CONFIG.replace("RATE", str(RATE))
    for name, value in ports.items():
        text = text.replace(name, str(value))
    files = wasp_module_server.dir / "files"
    files.mkdir(exist_ok=True)
    (files / "big.bin").write_bytes(b"f" * FILE_SIZE)
    server = wasp_module_server(text)
    server.slow_port = ports["SLOW_PORT"]
    server.proxy_port = ports["PROXY_PORT"]
    assert requests.get(server.url + "/who", timeout=30).status_code == 200, server.diagnostics()
    return server


def httperr_lines(server) -> list[list[str]]:
    folder = server.logs / "httperr"
    if not folder.is_dir():
        return []
    return [line.split(" ") for p in sorted(folder.glob("*.log")) for line in p.read_text().splitlines()
            if line and not line.startswith("#")]


def wait_reason(server, reason: str, fields: dict[int, str] | None = None, timeout: float = 15) -> list[str]:
    fields = fields or {}
    found = []

    def seen():
        found[:] = [f for f in httperr_lines(server) if f[12] == reason
                    and all(f[i] == v for i, v in fields.items())]
        return bool(found)
    server.wait_until(seen, timeout, what=lambda: f"{reason} in HTTPERR\n{httperr_lines(server)}\n{server.diagnostics()}")
    return found[0]


def get(port: int, target: str, extra: bytes = b"", source: str | None = None, prefix: bytes = b"",
        timeout: float = 20) -> bytes:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        if source:
            sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        sock.sendall(prefix + b"GET " + target.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     + extra + b"\r\n")
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        return data
    finally:
        sock.close()


# ---- site connection limit ----

def test_site_max_connections_answers_503_connlimit(server):
    held = [server.connect() for _ in range(3)]
    try:
        for conn in held:
            assert conn.request("GET", "/who").status == 200
        with server.connect() as extra:
            extra.send(server.build_request("GET", "/over"))
            response = extra.read_response()
        assert response.status == 503, (response.status, response.body[:200])
        line = wait_reason(server, "ConnLimit")
        assert line[10] == "503"
    finally:
        for conn in held:
            conn.close()
    # Once they are closed the site takes connections again.
    server.wait_until(lambda: requests.get(server.url + "/who", timeout=10).status_code == 200, 15)


# ---- bandwidth ----

def _timed_download(url: str) -> tuple[int, float]:
    started = time.monotonic()
    r = requests.get(url, timeout=60)
    return len(r.content), time.monotonic() - started


def test_site_max_bandwidth_paces_a_streamed_response(server):
    size, elapsed = _timed_download(f"http://127.0.0.1:{server.slow_port}/stream?kb=1024")
    assert size == 1024 * 1024
    # Never faster than the rate, less what may go ahead of it: one burst (1/8 s), and the
    # worker's unacknowledged window (256 KiB).
    floor = (size - RATE / 8 - 256 * 1024 - 16384) / RATE
    assert elapsed >= floor, (elapsed, floor)
    print(f"1 MiB at {RATE} B/s took {elapsed:.2f}s (floor {floor:.2f}s)")


def test_site_max_bandwidth_paces_a_sendfile_response(server):
    size, elapsed = _timed_download(f"http://127.0.0.1:{server.slow_port}/files/big.bin")
    assert size == FILE_SIZE
    floor = (size - 2 * RATE / 8 - 1024) / RATE
    assert elapsed >= floor, (elapsed, floor)
    print(f"{FILE_SIZE} B file at {RATE} B/s took {elapsed:.2f}s (floor {floor:.2f}s)")


def _timed_h2_download(url: str) -> tuple[int, float]:
    """curl over h2c with prior knowledge: (bytes, seconds)."""
    started = time.monotonic()
    out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w",
                          "%{size_download} %{http_version}", url], capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    assert out.returncode == 0, out.stderr
    size, version = out.stdout.split()
    assert version == "2"
    return int(size), elapsed


def test_site_max_bandwidth_paces_http2_streamed_and_file_responses(server):
    size, elapsed = _timed_h2_download(f"http://127.0.0.1:{server.slow_port}/stream?kb=1024")
    assert size == 1024 * 1024
    floor = (size - 2 * RATE / 8 - 256 * 1024 - 16384) / RATE   # as over HTTP/1.1, above
    assert elapsed >= floor, (elapsed, floor)
    size, elapsed = _timed_h2_download(f"http://127.0.0.1:{server.slow_port}/files/big.bin")
    assert size == FILE_SIZE
    floor = (size - 2 * RATE / 8 - 1024) / RATE
    assert elapsed >= floor, (elapsed, floor)


def test_unlimited_site_is_not_paced(server):
    r = requests.get(server.url + "/stream?kb=1024", timeout=60)
    assert len(r.content) == 1024 * 1024


# ---- trusted proxies ----

def test_xff_from_the_trusted_proxy_is_the_client(server):
    data = get(server.port, "/who", b"X-Forwarded-For: 6.6.6.6, 198.51.100.7\r\nX-Forwarded-Proto: https\r\n")
    assert data.endswith(b"\r\n\r\n198.51.100.7|0|https"), data[-200:]


def test_xff_from_an_untrusted_peer_is_ignored(server):
    data = get(server.port, "/who", b"X-Forwarded-For: 198.51.100.7\r\nX-Forwarded-Proto: https\r\n",
               source="127.0.0.2")
    assert b"\r\n\r\n127.0.0.2|" in data and data.endswith(b"|http"), data[-200:]


def test_proxy_v1_names_the_client(server):
    data = get(server.proxy_port, "/who", prefix=b"PROXY TCP4 203.0.113.5 10.0.0.1 4711 80\r\n")
    assert data.endswith(b"\r\n\r\n203.0.113.5|4711|http"), data[-200:]


def test_proxy_v2_with_ssl_tlv_names_client_and_scheme(server):
    addresses = socket.inet_aton("203.0.113.6") + socket.inet_aton("10.0.0.1") + struct.pack("!HH", 4712, 443)
    tlvs = bytes([0x20]) + struct.pack("!H", 5) + b"\x01\0\0\0\0" + bytes([0x01]) + struct.pack("!H", 8) + b"http/1.1"
    body = addresses + tlvs
    header = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body
    data = get(server.proxy_port, "/who", prefix=header)
    assert data.endswith(b"\r\n\r\n203.0.113.6|4712|https"), data[-200:]


def test_proxy_binding_refuses_an_untrusted_peer(server):
    data = get(server.proxy_port, "/who", source="127.0.0.2",
               prefix=b"PROXY TCP4 203.0.113.5 10.0.0.1 4711 80\r\n")
    assert data == b""
    wait_reason(server, "Forbidden", {2: "127.0.0.2"})


def test_proxy_binding_closes_a_malformed_header(server):
    assert get(server.proxy_port, "/who", prefix=b"PROXY TCP4 999.1.1.1 10.0.0.1 1 2\r\n") == b""
    assert get(server.proxy_port, "/who") == b""              # no header at all
    wait_reason(server, "BadRequest", {5: str(server.proxy_port)})


# ---- minimum send rate and accept back-off: servers of their own ----

MIN_RATE_CONFIG = """
{pool_timing}
[limits]
min_bytes_per_second = 500000
connection_timeout = "120s"

[[pools]]
name = "Q"

[[sites]]
name = "S"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "Q"
app = "qos_app:app"
python_path = ["{apps}"]
"""


def test_a_reader_slower_than_min_bytes_per_second_is_cut(wasp_server):
    server = wasp_server(MIN_RATE_CONFIG)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(120)
    try:
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"GET /stream?kb=65536 HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        head = sock.recv(200)
        assert head.startswith(b"HTTP/1.1 200"), head
        # Read nothing more: the front's buffer fills, and the bytes sent never reach the client.
        line = wait_reason(server, "Timer_MinBytesPerSecond", timeout=90)
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    assert line[7:9] == ["GET", "/stream?kb=65536"]
    assert elapsed >= 5.0   # the grace, at least: never cut before it
    print(f"slow reader cut after {elapsed:.1f}s")


def test_accept_backs_off_at_the_descriptor_limit_and_loses_no_connection(wasp_server):
    server = wasp_server(MIN_RATE_CONFIG)
    assert requests.get(server.url + "/who", timeout=30).status_code == 200   # logs, worker channel open
    [front] = server.processes("front")
    limit = front.num_fds() + 5
    soft, hard = resource.prlimit(front.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(front.pid, resource.RLIMIT_NOFILE, (limit, hard))
    held = []
    try:
        try:
            for _ in range(30):
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
                sock.sendall(b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                held.append(sock)
            # The front took what it could and paused accepting: the rest wait in the backlog
            # (libuv's EMFILE trick would accept and close them; uvloop closes its server on the
            # error).
            server.wait_until(lambda: "pausing it for" in server.log_tail(200), 15,
                              what=lambda: server.log_tail(40))
            assert front.is_running() and front.num_fds() <= limit
        finally:
            resource.prlimit(front.pid, resource.RLIMIT_NOFILE, (soft, hard))
        answers = []
        for sock in held:
            data = b""
            try:
                while chunk := sock.recv(65536):
                    data += chunk
            except ConnectionResetError:
                pass
            answers.append(data[:12])
        assert answers == [b"HTTP/1.1 200"] * 30, answers
    finally:
        for sock in held:
            sock.close()
    assert requests.get(server.url + "/who", timeout=30).status_code == 200
