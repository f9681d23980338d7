"""200 MiB uploads (chunked and with Content-Length) and a 200 MiB download stream through the
front and a Flask worker with bounded memory in both processes (flow control, not buffering)."""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import socket
import threading
import time

import psutil
import pytest
import requests

CONFIG = """
{pool_timing}
# 200 MiB is over request filtering's default max_allowed_content_length (30,000,000), as in IIS.
[request_filtering.request_limits]
max_allowed_content_length = 0

[[pools]]
name = "Stream"
threads = 4

[[sites]]
name = "Stream Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "Stream"
app = "flask_app:app"
python_path = ["{apps}"]
"""

MIB = 1024 * 1024
TOTAL_MIB = 200
RSS_BOUND = 150 * MIB
BLOCK = random.Random(20240601).randbytes(MIB)
PATTERN = bytes(range(256)) * 4096  # what flask_app's /download yields per MiB


class RssSampler:
    """Samples the RSS of the given processes every 10 ms until stopped; keeps the peaks."""

    def __init__(self, procs: dict[str, psutil.Process]):
        self.procs = procs
        self.peak = {name: 0 for name in procs}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for _ in range(100_000):
            for name, proc in self.procs.items():
                try:
                    self.peak[name] = max(self.peak[name], proc.memory_info().rss)
                except psutil.Error:
                    pass
            self.samples += 1
            if self._stop.wait(0.01):
                return

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def report(self) -> str:
        return ", ".join(f"{k}={v / MIB:.1f}MiB" for k, v in self.peak.items()) + f" ({self.samples} samples)"


@pytest.fixture(scope="module")
def server(wasp_module_server):
    server = wasp_module_server(CONFIG)
    r = requests.get(server.url + "/pid", timeout=30)
    assert r.status_code == 200, server.diagnostics()
    return server


def watched(server) -> dict[str, psutil.Process]:
    fronts = server.processes("front")
    workers = server.processes("worker", "Stream")
    assert len(fronts) == 1, f"expected one front child, found {fronts}"
    assert len(workers) == 1, f"expected one worker of pool Stream, found {workers}"
    return {"front": fronts[0], "worker": workers[0]}


def upload(server, path: str, chunked: bool) -> tuple[dict, str]:
    """POST TOTAL_MIB MiB, as fast as the server lets us; returns (the app's JSON, our sha256)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    digest = hashlib.sha256()
    try:
        conn.putrequest("POST", path)
        conn.putheader("Content-Type", "application/octet-stream")
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        else:
            conn.putheader("Content-Length", str(TOTAL_MIB * MIB))
        conn.endheaders()
        for i in range(TOTAL_MIB):
            block = BLOCK[i:] + BLOCK[:i]  # every MiB differs, so reordering would show
            digest.update(block)
            conn.send(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
        if chunked:
            conn.send(b"0\r\n\r\n")
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, (response.status, body[:500])
        return json.loads(body), digest.hexdigest()
    finally:
        conn.close()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_large_streamed_upload(server, chunked):
    procs = watched(server)
    with RssSampler(procs) as sampler:
        result, expected = upload(server, "/upload", chunked)
    assert result["bytes"] == TOTAL_MIB * MIB, (result, "request.stream")
    assert result["sha256"] == expected
    for name, peak in sampler.peak.items():
        assert peak < RSS_BOUND, f"{name} RSS peaked at {peak / MIB:.1f} MiB during the upload: {sampler.report()}"
    print("upload", "chunked" if chunked else "content-length", sampler.report())


@pytest.mark.timeout(600)
def test_large_streamed_download(server):
    procs = watched(server)
    digest = hashlib.sha256()
    count = 0
    with RssSampler(procs) as sampler:
        with requests.get(server.url + f"/download?mb={TOTAL_MIB}", stream=True, timeout=120) as r:
            assert r.status_code == 200, (r.status_code, r.text[:300])
            for chunk in r.iter_content(MIB):
                count += len(chunk)
                digest.update(chunk)
            transfer = r.headers.get("Transfer-Encoding")
    assert count == TOTAL_MIB * MIB
    expected = hashlib.sha256()
    for _ in range(TOTAL_MIB):
        expected.update(PATTERN)
    assert digest.hexdigest() == expected.hexdigest()
    assert transfer == "chunked", "a response of unknown length to HTTP/1.1 should be chunked"
    for name, peak in sampler.peak.items():
        assert peak < RSS_BOUND, f"{name} RSS peaked at {peak / MIB:.1f} MiB during the download: {sampler.report()}"
    print("download", sampler.report())


@pytest.mark.timeout(600)
def test_slow_app_upload_does_not_buffer_in_the_front(server):
    # The app sleeps 2 s before reading: the front must stop reading the client (flow control),
    # not take the whole upload into memory.
    procs = watched(server)
    with RssSampler(procs) as sampler:
        result, expected = upload(server, "/upload?pause=2", chunked=False)
    assert result["bytes"] == TOTAL_MIB * MIB and result["sha256"] == expected, result
    for name, peak in sampler.peak.items():
        assert peak < RSS_BOUND, f"{name} RSS peaked at {peak / MIB:.1f} MiB with a slow app: {sampler.report()}"
    print("slow app upload", sampler.report())


@pytest.mark.timeout(600)
def test_slow_client_download_does_not_buffer_in_the_front(server):
    # The client stops reading for 2 s: the front must stop acknowledging the worker's frames,
    # and the worker must stop producing, rather than either one buffering 200 MiB.
    procs = watched(server)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(120)
    sock.connect(("127.0.0.1", server.port))
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    conn.sock = sock
    count = 0
    try:
        with RssSampler(procs) as sampler:
            conn.request("GET", f"/download?mb={TOTAL_MIB}")
            response = conn.getresponse()
            assert response.status == 200
            count += len(response.read(MIB))
            time.sleep(2)  # not reading: the server side must hold still
            for _ in range(TOTAL_MIB * 4 + 10):
                data = response.read(MIB)
                if not data:
                    break
                count += len(data)
    finally:
        conn.close()
    assert count == TOTAL_MIB * MIB
    for name, peak in sampler.peak.items():
        assert peak < RSS_BOUND, f"{name} RSS peaked at {peak / MIB:.1f} MiB with a slow client: {sampler.report()}"
    print("slow client download", sampler.report())
