"""In-memory stand-ins for driving the front's protocols without sockets (tests/unit/test_front_*).

`FrontRig` builds a real `Server` on a fake loop, opens `HttpConnection`s on fake transports and
attaches `WorkerLink`s whose transport captures the frames the front sends; the test plays the
worker by feeding frames back with `worker.feed(...)`.
"""

from __future__ import annotations

from wasp.config import model
from wasp.front.connection import HttpConnection
from wasp.front.server import Server
from wasp.front.workers import WorkerLink
from wasp.wire import frames as fr
from wasp.wire.frames import FLAG_FIN, FrameType


class FakeLoop:
    def __init__(self, now: float = 1000.0):
        self.now = now
        self.soon: list = []
        self.timers: list = []

    def time(self) -> float:
        return self.now

    def call_soon(self, callback, *args) -> None:
        self.soon.append((callback, args))

    def call_at(self, when: float, callback, *args) -> None:
        self.timers.append((when, callback, args))

    def run_due(self) -> None:
        """Run the call_at callbacks whose time has come (in time order)."""
        while True:
            due = sorted((t for t in self.timers if t[0] <= self.now), key=lambda t: t[0])
            if not due:
                return
            entry = due[0]
            self.timers.remove(entry)
            entry[1](*entry[2])

    def run_soon(self) -> None:
        """End the loop turn: run what was scheduled with call_soon (e.g. corked writes)."""
        while self.soon:
            callback, args = self.soon.pop(0)
            callback(*args)


class FakeTransport:
    def __init__(self, sockname=("127.0.0.1", 8080), peername=("127.0.0.1", 50000), buffer_size=0):
        self.out = bytearray()
        self.closed = False
        self.eof = False
        self.paused = False
        self.buffer_size = buffer_size
        self.protocol = None
        self.extra = {"sockname": sockname, "peername": peername}

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.out += data

    def writelines(self, parts) -> None:
        for part in parts:
            self.write(part)

    def get_extra_info(self, name, default=None):
        return self.extra.get(name, default)

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        self.limits = (high, low)

    def get_write_buffer_size(self) -> int:
        return self.buffer_size

    def set_protocol(self, protocol) -> None:
        self.protocol = protocol

    def take(self) -> bytes:
        data = bytes(self.out)
        self.out.clear()
        return data


def make_config(tmp_path, pools=None, sites=None, limits=None, server_header="wasp",
                trusted_proxies=()) -> model.Config:
    pools = pools or [model.Pool(name="P")]
    sites = sites or [model.Site(name="S", id=1, bindings=["http/*:8080:"],
                                 applications=[model.Application(path="/", pool=pools[0].name)])]
    return model.Config(server=model.ServerSettings(log_dir=str(tmp_path / "logs"), server_header=server_header,
                                                    trusted_proxies=list(trusted_proxies)),
                        limits=limits or model.Limits(), pools=pools, sites=sites)


class FakeWorker:
    """The worker side of one WorkerLink."""

    def __init__(self, rig: "FrontRig", pool: str, worker_id: int):
        self.link = WorkerLink(rig.server, pool, worker_id, 1000 + worker_id)
        self.transport = FakeTransport()
        self.link.connection_made(self.transport)
        rig.server.links[worker_id] = self.link
        self._reader = fr.FrameReader()

    def hello(self, capacity: int = 4) -> None:
        self.feed(fr.pack_hello(fr.Hello(self.link.worker_id, 1000 + self.link.worker_id, capacity)))

    def feed(self, *frames: bytes) -> None:
        self.link.data_received(b"".join(frames))

    def frames(self) -> list[tuple[int, int, int, bytes]]:
        """Frames the front wrote since the last call."""
        self.link.server.loop.run_soon()
        return self._reader.feed(self.transport.take())

    def requests(self) -> list[tuple[int, fr.RequestHead, bool]]:
        """(stream, head, fin) of the REQUEST frames written since the last call (others dropped)."""
        return [(sid, fr.unpack_request(p), bool(flags & FLAG_FIN))
                for t, flags, sid, p in self.frames() if t == FrameType.REQUEST]

    def respond(self, stream: int, body: bytes = b"hello", block: bytes = b"200 OK\r\nContent-Type: text/plain\r\n",
                length: int | None = None) -> None:
        self.feed(fr.pack_response(stream, block, len(body) if length is None else length, body=body))

    def crash(self) -> None:
        self.link.connection_lost(None)


class FrontRig:
    def __init__(self, tmp_path, config: model.Config | None = None, **config_kwargs):
        self.loop = FakeLoop()
        self.tmp = tmp_path
        self.sent: list[dict] = []
        self.config = config or make_config(tmp_path, **config_kwargs)
        self.server = Server(self.loop, self.config, self.sent.append)

    def connect(self, sockname=("127.0.0.1", 8080), peername=("127.0.0.1", 50000)):
        conn = HttpConnection(self.server)
        transport = FakeTransport(sockname, peername)
        conn.connection_made(transport)
        return conn, transport

    def worker(self, pool: str = "P", worker_id: int = 1, capacity: int = 4) -> FakeWorker:
        worker = FakeWorker(self, pool, worker_id)
        worker.hello(capacity)
        return worker

    def advance(self, seconds: float) -> None:
        self.loop.now += seconds
        self.server.tick()


def split_responses(data: bytes) -> list[tuple[int, dict, bytes]]:
    """Parse concatenated HTTP/1.1 responses with Content-Length (or none for 1xx/HEAD-less
    bodies) into (status, headers lower-cased, body)."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, data
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower().decode()] = v.strip().decode()
        n = int(headers.get("content-length", "0")) if status >= 200 else 0
        out.append((status, headers, rest[:n]))
        data = rest[n:]
    return out
