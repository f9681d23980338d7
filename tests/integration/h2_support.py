"""HTTP/2 clients for the integration tests: `H2Client` (the `h2` library on a blocking socket,
over TCP or TLS) and raw frame helpers for the floods, which send what no well-behaved library
would. Every socket has a timeout and every loop is bounded."""

from __future__ import annotations

import socket
import struct
import time

import h2.config
import h2.connection
import h2.events
import h2.settings

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
GOAWAY = 7


def get_headers(path: str, authority: str = "localhost", method: str = "GET", scheme: str = "http",
                extra=()) -> list[tuple[bytes, bytes]]:
    return [(b":method", method.encode()), (b":scheme", scheme.encode()),
            (b":authority", authority.encode()), (b":path", path.encode()), *extra]


class H2Client:
    def __init__(self, port: int, settings: dict | None = None, tls=None, sni: str | None = None,
                 timeout: float = 20.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=sni)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        if settings:
            self.h2.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.h2.initiate_connection()
        self.flush()
        self.responses: dict[int, dict] = {}
        self.batches: list[list] = []   # the events of each read, in order

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def read(self) -> list:
        data = self.sock.recv(262144)
        if not data:
            raise EOFError("the server closed the connection")
        events = self.h2.receive_data(data)
        for event in events:
            sid = getattr(event, "stream_id", 0)
            if isinstance(event, h2.events.ResponseReceived):
                self._entry(sid)["headers"] = dict(event.headers)
            elif isinstance(event, h2.events.DataReceived):
                self._entry(sid)["body"] += event.data
                self.h2.acknowledge_received_data(event.flow_controlled_length, sid)
            elif isinstance(event, h2.events.StreamEnded):
                self._entry(sid)["ended"] = True
            elif isinstance(event, h2.events.StreamReset):
                self._entry(sid)["reset"] = event.error_code
        self.batches.append(events)
        self.flush()
        return events

    def _entry(self, sid: int) -> dict:
        return self.responses.setdefault(sid, {"headers": {}, "body": b"", "ended": False, "reset": None})

    def request(self, headers, body: bytes | None = None) -> int:
        sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(sid, headers, end_stream=body is None)
        self.flush()
        if body is not None:
            self.send_body(sid, body)
        return sid

    def send_body(self, sid: int, body: bytes, end: bool = True) -> None:
        view = memoryview(body)
        deadline = time.monotonic() + 60
        while view:
            room = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size, len(view))
            if room <= 0:
                assert time.monotonic() < deadline, "the server never opened its window"
                self.read()   # wait for WINDOW_UPDATE
                continue
            self.h2.send_data(sid, bytes(view[:room]))
            view = view[room:]
            self.flush()
        if end:
            self.h2.end_stream(sid)
            self.flush()

    def response(self, sid: int, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while not (self._entry(sid)["ended"] or self._entry(sid)["reset"] is not None):
            assert time.monotonic() < deadline, f"stream {sid} did not end"
            self.read()
        return self._entry(sid)

    def get(self, path: str, **kwargs) -> dict:
        return self.response(self.request(get_headers(path, **kwargs)))


def frame(ftype: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def frames_of(data: bytes) -> list[tuple[int, int, int, bytes]]:
    out = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        if len(data) < 9 + length:
            break
        out.append((data[3], data[4], int.from_bytes(data[5:9], "big") & 0x7FFFFFFF, data[9:9 + length]))
        data = data[9 + length:]
    return out


def raw_connection(port: int, settings: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock.sendall(PREFACE + frame(4, 0, 0, settings))
    return sock


def send_all_until_closed(sock: socket.socket, payload: bytes) -> None:
    """Send a flood; the server may close before it has read it all."""
    try:
        sock.sendall(payload)
    except (BrokenPipeError, ConnectionResetError):
        pass


def read_until_closed(sock: socket.socket, limit: float = 30.0) -> bytes:
    """Everything the server sends until it closes the connection (at most `limit` seconds)."""
    out = bytearray()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            data = sock.recv(262144)
        except ConnectionResetError:
            break
        except socket.timeout:
            continue
        if not data:
            break
        out += data
    else:
        raise AssertionError("the server kept the connection open")
    return bytes(out)


def goaway_code(data: bytes) -> int | None:
    codes = [struct.unpack(">II", p[:8])[1] for t, _, _, p in frames_of(data) if t == GOAWAY]
    return codes[-1] if codes else None
