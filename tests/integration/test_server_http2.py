"""HTTP/2 end to end on a real server: h2c with prior knowledge (curl, h2load, the h2 client), h2
over TLS by ALPN, request bodies and streaming responses under flow control, 100 concurrent
streams, sslFlags disable_http2, every flood of the issue (each closes its connection with
GOAWAY while another client is served), and GOAWAY on a graceful stop."""

from __future__ import annotations

import hashlib
import json
import random
import re
import socket
import struct
import subprocess
import threading
import time

import h2.errors
import h2.settings
import hpack
import pytest

from conftest import RawConnection, free_port, wait_until
from h2_support import (H2Client, frame, frames_of, get_headers, goaway_code, raw_connection,
                        read_until_closed, send_all_until_closed)
from tls_support import CA, client_context

CONNECTION_TIMEOUT = 3.0

CONFIG = """\
{pool_timing}
[limits]
connection_timeout = "3s"
header_wait_timeout = "3s"

[[pools]]
name = "W"
threads = 16

[[pools]]
name = "A"

[[sites]]
name = "h2"
id = 1
bindings = [
  "http/127.0.0.1:{port}:",
  { binding = "https/*:@TLS_PORT@:", certificate = "@CERTS@/h2.test.pem", key = "@CERTS@/h2.test.key" },
  { binding = "https/*:@TLS_PORT@:old.test", certificate = "@CERTS@/old.test.pem", key = "@CERTS@/old.test.key", ssl_flags = ["sni", "disable_http2"] },
]
[[sites.applications]]
path = "/"
pool = "W"
app = "h2_apps:wsgi"
python_path = ["{apps}"]
[[sites.applications]]
path = "/events"
pool = "A"
app = "h2_apps:events"
interface = "asgi"
python_path = ["{apps}"]

[[sites]]
name = "no h2"
id = 2
bindings = [{ binding = "http/127.0.0.1:@PLAIN_PORT@:", ssl_flags = ["disable_http2"] }]
[[sites.applications]]
path = "/"
pool = "W"
app = "h2_apps:wsgi"
python_path = ["{apps}"]
"""


@pytest.fixture(scope="module")
def h2_site(wasp_module_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("certs")
    ca = CA(folder)
    ca.issue("h2.test")
    ca.issue("old.test")
    tls_port, plain_port = free_port(), free_port()
    text = (CONFIG.replace("@CERTS@", str(folder)).replace("@TLS_PORT@", str(tls_port))
            .replace("@PLAIN_PORT@", str(plain_port)))
    server = wasp_module_server(text)
    server.ca, server.tls_port, server.plain_port = ca, tls_port, plain_port
    return server


def served(port: int) -> None:
    """Another client gets its answer (the check after each flood)."""
    with H2Client(port) as client:
        response = client.get("/info")
    assert response["headers"][b":status"] == b"200"
    assert json.loads(response["body"])["protocol"] == "HTTP/2"


# ---- clients ------------------------------------------------------------------------------------

def test_curl_http2_prior_knowledge(h2_site):
    out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-w", "\n%{http_version}",
                          f"{h2_site.url}/info"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    body, version = out.stdout.rsplit("\n", 1)
    assert version == "2"
    assert json.loads(body) == {"protocol": "HTTP/2", "path": "/info", "host": f"127.0.0.1:{h2_site.port}"}


def test_h2load_every_request_succeeds(h2_site):
    out = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "10", f"{h2_site.url}/info"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    line = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                     r"(\d+) errored", out.stdout)
    assert line is not None, out.stdout
    assert line.groups() == ("2000", "2000", "2000", "2000", "0", "0"), out.stdout
    assert "status codes: 2000 2xx" in out.stdout


def test_http11_still_served_on_the_same_port(h2_site):
    with RawConnection(h2_site.port) as conn:
        response = conn.request("GET", "/info")
    assert response.status == 200 and json.loads(response.body)["protocol"] == "HTTP/1.1"


def test_large_post_body_through_flow_control(h2_site):
    body = random.Random(7).randbytes(8 * 1024 * 1024)
    with H2Client(h2_site.port) as client:
        sid = client.request(get_headers("/echo", method="POST",
                                         extra=[(b"content-length", str(len(body)).encode())]), body)
        response = client.response(sid, timeout=60)
    assert response["headers"][b":status"] == b"200"
    assert json.loads(response["body"]) == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest(),
                                            "protocol": "HTTP/2"}


def test_post_without_content_length(h2_site):
    body = b"x" * 300_000
    with H2Client(h2_site.port) as client:
        response = client.response(client.request(get_headers("/echo", method="POST"), body))
    assert json.loads(response["body"])["size"] == len(body)


def test_server_sent_events_arrive_one_by_one(h2_site):
    with H2Client(h2_site.port) as client:
        sid = client.request(get_headers("/events"))
        response = client.response(sid)
        batches = [[e for e in batch if getattr(e, "stream_id", 0) == sid] for batch in client.batches]
    assert response["headers"][b"x-http-version"] == b"2"
    assert response["body"] == b"".join(b"data: %d\n\n" % i for i in range(5))
    data_batches = [b"".join(e.data for e in batch if isinstance(e, h2.events.DataReceived))
                    for batch in batches]
    data_batches = [d for d in data_batches if d]
    # The app sleeps between events: they come in separate reads, the first long before the end.
    assert len(data_batches) >= 3 and data_batches[0] == b"data: 0\n\n"
    first = next(i for i, batch in enumerate(batches) if any(isinstance(e, h2.events.DataReceived) and e.data
                                                             for e in batch))
    assert not any(isinstance(e, h2.events.StreamEnded) for e in batches[first])


def test_a_hundred_concurrent_streams(h2_site):
    with H2Client(h2_site.port) as client:
        client.read()   # the server's SETTINGS
        assert client.h2.remote_settings.max_concurrent_streams == 100
        sids = [client.request(get_headers("/hold")) for _ in range(100)]
        listed = wait_until(lambda: [r for r in h2_site.list_json("requests") if r.get("url") == "/hold"],
                            what="the held requests in `wasp list requests`")
        assert {r.get("protocol") for r in listed} == {"HTTP/2"}
        responses = [client.response(sid, timeout=60) for sid in sids]
    assert all(r["headers"][b":status"] == b"200" and r["body"] == b"held" for r in responses)


def test_h2_over_tls_by_alpn_and_disable_http2_per_binding(h2_site):
    context = client_context(h2_site.ca, alpn=("h2", "http/1.1"))
    with H2Client(h2_site.tls_port, tls=context, sni="h2.test") as client:
        assert client.sock.selected_alpn_protocol() == "h2"
        response = client.get("/info", scheme="https", authority="h2.test")
    assert json.loads(response["body"])["protocol"] == "HTTP/2"
    with socket.create_connection(("127.0.0.1", h2_site.tls_port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="old.test") as tls:
            assert tls.selected_alpn_protocol() == "http/1.1"   # sslFlags 4 on this binding


def test_h2c_refused_on_a_disable_http2_binding(h2_site):
    out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", f"http://127.0.0.1:{h2_site.plain_port}/info"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    with RawConnection(h2_site.plain_port) as conn:
        conn.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        assert conn.read_response().status == 400
    with RawConnection(h2_site.plain_port) as conn:
        assert conn.request("GET", "/info").status == 200


# ---- floods: the connection gets GOAWAY and is closed; other clients are served ------------------

GET_BLOCK = get_headers("/hold?0.2")


def rapid_reset(port):
    sock = raw_connection(port)
    encoder = hpack.Encoder()
    burst = b"".join(frame(1, 0x5, sid, encoder.encode(GET_BLOCK)) + frame(3, 0, sid, struct.pack(">I", 8))
                     for sid in range(1, 1200, 2))
    send_all_until_closed(sock, burst)
    return sock


def continuation_flood(port):
    sock = raw_connection(port)
    payload = frame(1, 0x0, 1, hpack.Encoder().encode(GET_BLOCK))
    payload += frame(9, 0x0, 1, b"\x40\x01a\x01b") * 200
    send_all_until_closed(sock, payload)
    return sock


def hpack_bomb(port):
    sock = raw_connection(port)
    encoder = hpack.Encoder()
    big = [(b"x-bomb", b"b" * 4000)]
    send_all_until_closed(sock, frame(1, 0x5, 1, encoder.encode(get_headers("/info") + big)))
    send_all_until_closed(sock, frame(1, 0x5, 3, encoder.encode(get_headers("/info") + big * 100)))
    return sock


def settings_flood(port):
    sock = raw_connection(port)
    send_all_until_closed(sock, frame(4, 0, 0, struct.pack(">HI", 4, 65535)) * 3000)
    return sock


def ping_flood(port):
    sock = raw_connection(port)
    send_all_until_closed(sock, frame(6, 0, 0, b"flooding") * 3000)
    return sock


def empty_frames_flood(port):
    sock = raw_connection(port)
    send_all_until_closed(sock, frame(1, 0x4, 1, hpack.Encoder().encode(get_headers("/echo", method="POST"))))
    send_all_until_closed(sock, frame(0, 0, 1) * 200)
    return sock


def window_update_flood(port):
    sock = raw_connection(port)
    send_all_until_closed(sock, frame(8, 0, 0, struct.pack(">I", 1)) * 3000)
    return sock


@pytest.mark.parametrize("flood, reason", [
    (rapid_reset, "H2_RapidReset"),
    (continuation_flood, "H2_Continuation"),
    (hpack_bomb, "H2_DenialOfServiceError"),
    (settings_flood, "H2_ControlFlood"),
    (ping_flood, "H2_ControlFlood"),
    (empty_frames_flood, "H2_EmptyFrames"),
    (window_update_flood, "H2_WindowUpdateFlood"),
])
def test_flood_closes_its_connection_and_others_are_served(h2_site, flood, reason):
    with H2Client(h2_site.port) as bystander:
        assert bystander.get("/info")["headers"][b":status"] == b"200"
        sock = flood(h2_site.port)
        with sock:
            data = read_until_closed(sock)
        assert goaway_code(data) == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
        # The connection that was open all along is still served, and so is a new one.
        assert bystander.get("/info")["headers"][b":status"] == b"200"
    served(h2_site.port)
    wait_until(lambda: reason in httperr(h2_site), what=lambda: f"{reason} in HTTPERR:\n{httperr(h2_site)}")


def httperr(server) -> str:
    return "".join(f.read_text() for f in sorted((server.logs / "httperr").glob("*.log")))


def test_zero_window_client_is_closed_after_connection_timeout(h2_site):
    sock = raw_connection(h2_site.port, settings=struct.pack(">HI", 4, 0))   # INITIAL_WINDOW_SIZE 0
    with sock:
        sock.sendall(frame(4, 1, 0) + frame(1, 0x5, 1, hpack.Encoder().encode(get_headers("/big"))))
        start = time.monotonic()
        data = read_until_closed(sock, limit=CONNECTION_TIMEOUT + 20)
        waited = time.monotonic() - start
    assert waited >= CONNECTION_TIMEOUT
    assert goaway_code(data) == h2.errors.ErrorCodes.NO_ERROR
    assert not [f for f in frames_of(data) if f[0] == 0 and f[3]]   # not a byte of the body
    served(h2_site.port)


# ---- WebSocket over HTTP/2 (RFC 8441) -----------------------------------------------------------

def _ws_events(client: H2Client, sid: int, ws, deadline: float) -> list:
    """Read until wsproto has events from the stream's DATA (or the stream ended)."""
    while True:
        entry = client._entry(sid)
        if entry["body"]:
            ws.receive_data(entry["body"])
            entry["body"] = b""
            events = list(ws.events())
            if events:
                return events
        if entry["ended"] or entry["reset"] is not None:
            return []
        assert time.monotonic() < deadline, "no WebSocket message in time"
        client.read()


def test_websocket_over_http2_extended_connect_echoes_through_an_asgi_app(h2_site):
    from wsproto import ConnectionType
    from wsproto.connection import Connection
    from wsproto.events import BytesMessage, CloseConnection, Message, TextMessage

    deadline = time.monotonic() + 60
    with H2Client(h2_site.port) as client:
        while not client.h2.remote_settings.enable_connect_protocol:
            assert time.monotonic() < deadline
            client.read()
        sid = client.h2.get_next_available_stream_id()
        client.h2.send_headers(sid, [
            (b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":scheme", b"http"),
            (b":authority", f"127.0.0.1:{h2_site.port}".encode()), (b":path", b"/events/ws"),
            (b"sec-websocket-version", b"13"), (b"sec-websocket-protocol", b"echo")])
        client.flush()
        while not client._entry(sid)["headers"]:
            assert time.monotonic() < deadline
            client.read()
        headers = client._entry(sid)["headers"]
        assert headers[b":status"] == b"200", headers
        assert headers[b"sec-websocket-protocol"] == b"echo"
        ws = Connection(ConnectionType.CLIENT)
        client.send_body(sid, ws.send(Message(data="hello")), end=False)
        [event] = _ws_events(client, sid, ws, deadline)
        assert isinstance(event, TextMessage) and event.data == "2 /events/ws hello"
        # One message larger than every window on the way (64 KiB stream, 256 KiB worker), both ways.
        blob = random.Random(8441).randbytes(600 * 1024)
        client.send_body(sid, ws.send(Message(data=blob)), end=False)
        got = b""
        while len(got) < len(blob):
            for event in _ws_events(client, sid, ws, deadline):
                assert isinstance(event, BytesMessage)
                got += event.data
        assert got == blob
        # The app closes: its close frame arrives, ours goes back, the stream ends.
        client.send_body(sid, ws.send(Message(data="bye")), end=False)
        [event] = _ws_events(client, sid, ws, deadline)
        assert isinstance(event, CloseConnection) and event.code == 4000
        client.send_body(sid, ws.send(event.response()), end=True)
        client.response(sid)
        assert client._entry(sid)["reset"] is None
    served(h2_site.port)


# ---- graceful stop ------------------------------------------------------------------------------

STOP_CONFIG = """\
{pool_timing}
[[pools]]
name = "W"
threads = 4
[[sites]]
name = "h2"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "W"
app = "h2_apps:wsgi"
python_path = ["{apps}"]
"""


def test_stop_sends_goaway_and_finishes_the_stream_in_flight(wasp_server):
    server = wasp_server(STOP_CONFIG)
    sock = raw_connection(server.port)
    with sock:
        sock.sendall(frame(4, 1, 0) + frame(1, 0x5, 1, hpack.Encoder().encode(get_headers("/hold?6"))))
        # In the app, not still queued for a worker that is starting (a stop would end that one).
        # The app holds it 6 s: long enough to be seen by `wasp list` under load, and within
        # the pool's 10 s shutdown_time_limit.
        wait_until(lambda: any(r.get("stage") == "ExecuteRequestHandler" for r in server.list_json("requests")),
                   what="the request running in the app")
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        data = read_until_closed(sock, limit=30)
        stopper.join(60)
    frames = frames_of(data)
    kinds = [(t, s) for t, _, s, _ in frames]
    assert (7, 0) in kinds, (kinds, server.log_tail())
    goaway = kinds.index((7, 0))
    assert struct.unpack(">II", frames[goaway][3][:8]) == (1, 0)   # last stream 1, NO_ERROR
    assert (1, 1) in kinds[goaway:], (kinds, server.log_tail())    # the response came after it
    assert any(t == 0 and s == 1 and flags & 1 and p == b"held" for t, flags, s, p in frames)

