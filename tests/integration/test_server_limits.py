"""HTTP.sys limits and timers, clients that go away, and framing an attacker would abuse."""

from __future__ import annotations

import re
import select
import socket
import time

import pytest
import requests

CONFIG = """
{pool_timing}
[limits]
connection_timeout = "2s"
header_wait_timeout = "2s"
max_allowed_content_length = 100000
max_url = 4096

[[pools]]
name = "One"
threads = 1

[[sites]]
name = "Limits Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "One"
app = "flask_app:app"
python_path = ["{apps}"]
"""


@pytest.fixture(scope="module")
def server(wasp_module_server):
    server = wasp_module_server(CONFIG)
    assert requests.get(server.url + "/", timeout=30).status_code == 200, server.diagnostics()
    return server


def httperr_has(server, reason: str) -> bool:
    folder = server.logs / "httperr"
    return folder.is_dir() and any(reason in p.read_text(errors="replace") for p in folder.glob("*.log"))


def test_client_gone_mid_download_frees_the_only_thread(server):
    # threads = 1: if the cancelled 20 GiB response kept the thread busy, the next request would wait.
    with server.connect() as conn:
        conn.send(server.build_request("GET", "/download?mb=20480"))
        head = conn.read_head()
        assert head[1] == 200
        conn.sock.recv(1024 * 1024)
    r = requests.get(server.url + "/echo?after=cancel", timeout=20)
    assert r.text == "|/echo|after=cancel"


def test_client_gone_mid_upload_frees_the_only_thread(server):
    with server.connect() as conn:
        conn.send(server.build_request("POST", "/upload-raw", {"Transfer-Encoding": "chunked"}))
        conn.send(b"100000\r\n" + b"x" * 0x100000 + b"\r\n")
    r = requests.get(server.url + "/echo?after=upload-cancel", timeout=20)
    assert r.text == "|/echo|after=upload-cancel"


def test_idle_keep_alive_connection_is_closed_after_connection_timeout(server):
    with server.connect(timeout=20) as conn:
        assert conn.request("GET", "/").status == 200
        started = time.monotonic()
        try:
            rest = conn.read_until_close()
        except socket.timeout:
            pytest.fail("idle connection still open 20 s after a 2 s connection_timeout")
        assert rest == b""
    print(f"idle connection closed after {time.monotonic() - started:.1f}s")


def test_slow_header_is_dropped_after_header_wait_timeout(server):
    with server.connect(timeout=20) as conn:
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        try:
            rest = conn.read_until_close()
        except socket.timeout:
            pytest.fail("a half-sent head was still waited for 20 s after a 2 s header_wait_timeout")
        except ConnectionResetError:
            rest = b""
    assert not rest.startswith(b"HTTP/1.1 200"), rest[:200]
    server.wait_until(lambda: httperr_has(server, "Timer_HeaderWait"), 15,
                      what=lambda: f"Timer_HeaderWait in HTTPERR\n{server.diagnostics()}")


def test_body_over_max_allowed_content_length_is_413(server):
    with server.connect() as conn:
        r = conn.request("POST", "/upload-raw", body=b"x" * 100_001)
    assert r.status == 413, (r.status, r.raw_head)


def test_body_at_max_allowed_content_length_is_accepted(server):
    with server.connect() as conn:
        r = conn.request("POST", "/upload-raw", body=b"x" * 100_000)
    assert r.status == 200 and b'"bytes":100000' in r.body.replace(b" ", b""), (r.status, r.body[:200])


def test_chunked_body_over_max_allowed_content_length_is_refused(server):
    with server.connect() as conn:
        conn.send(server.build_request("POST", "/upload-raw", {"Transfer-Encoding": "chunked"}))
        body = b"x" * 60_000
        try:
            for _ in range(3):
                conn.send(b"%x\r\n%s\r\n" % (len(body), body))
            conn.send(b"0\r\n\r\n")
            r = conn.read_response()
        except (ConnectionResetError, BrokenPipeError, ConnectionError):
            return  # refused by closing: acceptable
    assert r.status == 413, (r.status, r.body[:200])


def test_url_over_max_url_is_414(server):
    with server.connect() as conn:
        r = conn.request("GET", "/echo?" + "a" * 5000)
    assert r.status == 414, (r.status, r.raw_head)


def test_content_length_with_transfer_encoding_is_not_smuggled(server):
    smuggled = server.build_request("GET", "/echo?smuggled=1")
    with server.connect() as conn:
        conn.send(b"POST /upload-raw HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n%s" % (5 + len(smuggled), smuggled))
        first = conn.read_response()
        if first.status == 400:
            return  # refusing the ambiguous framing outright is the safest answer
        try:
            rest = conn.read_until_close()
        except (socket.timeout, ConnectionResetError):
            rest = b""
    # Chunked wins (RFC 9112 6.3): the body is empty and the "smuggled" request is a real second
    # request, or the connection is closed; it must never be swallowed as body bytes.
    assert first.status == 200, first.raw_head
    assert b'"bytes":0' in first.body.replace(b" ", b"") or b"smuggled" in rest, (first.body, rest[:200])


def test_http_1_0_response_of_unknown_length_is_close_delimited(server):
    with server.connect() as conn:
        conn.send(b"GET /download?mb=1 HTTP/1.0\r\n\r\n")
        version, status, _, headers, _ = conn.read_head()
        body = conn.read_until_close()
    names = {k.lower(): v for k, v in headers}
    assert status == 200
    assert "chunked" not in names.get("transfer-encoding", "").lower(), headers
    assert len(body) == 1024 * 1024


def test_http_1_0_keep_alive_when_asked(server):
    with server.connect() as conn:
        conn.send(b"GET /echo?k=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        first = conn.read_response()
        assert first.body == b"|/echo|k=1"
        if (first.header("connection") or "").lower() == "keep-alive":
            conn.send(b"GET /echo?k=2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            assert conn.read_response().body == b"|/echo|k=2"
        else:
            assert conn.read_until_close() == b""


def test_access_log_records_the_413(server):
    server.wait_until(lambda: re.search(r" 413 ", server.output()), 15,
                      what=lambda: f"a 413 line in the logs\n{server.diagnostics()}")


def test_header_wait_never_cuts_before_its_time(server):
    # The front sweeps once a second: the cut may come up to a sweep late, never early.
    with server.connect(timeout=20) as conn:
        time.sleep(0.5)  # start the timer off the sweep's beat
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        last_byte = time.monotonic()
        try:
            conn.read_until_close()
        except ConnectionResetError:
            pass
        assert time.monotonic() - last_byte >= 2.0


def test_an_endless_trailer_is_431_and_the_front_keeps_serving(server):
    piece = b"a" * 4096
    sent = 0
    with server.connect(timeout=20) as conn:
        # /upload-raw reads the body to its end, which never comes: the app cannot answer first.
        conn.send(b"POST /upload-raw HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\nhello\r\n0\r\nX-Endless: ")
        sock = conn.sock
        deadline = time.monotonic() + 30
        # Send only what the socket takes at once and stop the moment the front answers: a
        # blocking send would sit on full buffers until the front, done lingering, resets the
        # connection and the answer is lost with it.
        sock.setblocking(False)
        try:
            while sent < 80 * 1024 * 1024 and time.monotonic() < deadline:  # at most 80 MB, as the report's attack
                readable, writable, _ = select.select([sock], [sock], [], 1.0)
                if readable:
                    break
                if writable:
                    try:
                        sent += sock.send(piece)
                    except BlockingIOError:
                        pass
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            sock.setblocking(True)
        try:
            answer = conn.read_until_close()
        except ConnectionResetError:
            answer = b""
    # The 431 goes out after max_field_length (socket buffers let the client send some more).
    assert answer.startswith(b"HTTP/1.1 431"), (sent, answer[:200])
    assert sent < 16 * 1024 * 1024, sent
    assert requests.get(server.url + "/echo?after=trailer", timeout=20).text == "|/echo|after=trailer"
