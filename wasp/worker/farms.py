"""ARR's server farms in a worker: backends, load balancing, health, keep-alive connection pools.

Each worker process keeps its own view of every farm (as each w3wp running ARR does): its own
round-robin position, in-flight counts, connection pools and health probes (one task per farm
with a health check `url`). A server is taken out when a probe fails or when connecting to it
fails in-band, and comes back after a passing probe (with a probe configured) or after the
probe `interval` (without one: it is tried again then).

`Upstream` is one connection to a backend: an asyncio Protocol feeding the sans-I/O
ResponseReader (wasp/wire/backend.py), that stops reading from the backend while more than
`response_buffer_limit` bytes wait for the client (back-pressure) and lets the writer wait for
the socket to drain.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import socket
import ssl
import time
import zlib

from wasp.wire.backend import BackendError, ResponseReader, request_head

log = logging.getLogger("wasp.worker.proxy")

#: A probe reads at most this much of a health check's body for `response_match`.
PROBE_BODY_LIMIT = 64 * 1024


def _expire(waiter) -> None:
    if not waiter.done():
        waiter.set_result(False)


class Upstream(asyncio.Protocol):
    """One connection to a backend server."""

    def __init__(self, loop, server: "Server | None" = None):
        self.loop = loop
        self.server = server
        self.transport = None
        self.reader: ResponseReader | None = None
        self.error: BaseException | None = None
        self.closed = False
        self.waiter = None
        self.writable = True
        self.limit = 4 * 1024 * 1024
        self.paused = False
        self.idle_since = 0.0
        self.used = 0           # requests sent on it
        self.raw: list[bytes] | None = None  # a tunnel's bytes (after a 101)

    # ---- asyncio.Protocol ----
    def connection_made(self, transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def data_received(self, data: bytes) -> None:
        if self.raw is not None:
            self.raw.append(data)
            self._pause_if_full(sum(map(len, self.raw)))
            self._wake()
            return
        reader = self.reader
        if reader is None or reader.done:
            # Bytes nobody asked for (an idle connection, or past a response): unusable.
            self.error = BackendError("unexpected bytes from the backend")
            self.transport.close()
            return
        try:
            reader.feed(data)
        except BackendError as exc:
            self.error = exc
            self.transport.close()
        else:
            if reader.upgraded is not None and reader.done:
                self.raw = [reader.upgraded] if reader.upgraded else []
            self._pause_if_full(reader.buffered)
        self._wake()

    def eof_received(self):
        if self.reader is not None and self.raw is None and self.error is None:
            try:
                self.reader.eof()
            except BackendError as exc:
                self.error = exc
        self.closed = True
        self._wake()
        return False

    def connection_lost(self, exc) -> None:
        if not self.closed and self.reader is not None and self.raw is None and self.error is None:
            try:
                self.reader.eof()
            except BackendError as err:
                self.error = err
        self.closed = True
        self.writable = True
        self._wake()

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        self._wake()

    # ---- the handler's side ----
    def _pause_if_full(self, buffered: int) -> None:
        if buffered >= self.limit and not self.paused and not self.closed:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and not self.closed:
            self.paused = False
            self.transport.resume_reading()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    async def wait(self, timeout: float) -> bool:
        """Sleep until something happens on the connection; False when `timeout` passed.
        (A future and a timer handle: asyncio.wait_for costs a task per wait on 3.11.)"""
        waiter = self.waiter = self.loop.create_future()
        timer = self.loop.call_later(timeout, _expire, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            self.waiter = None

    async def drain(self, timeout: float) -> None:
        while not self.writable and not self.closed:
            if not await self.wait(timeout):
                raise TimeoutError("the backend stopped reading")

    def write(self, data) -> None:
        if self.closed:
            raise ConnectionResetError("the backend closed the connection")
        self.transport.write(data)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Server:
    """One backend of a farm (or the one server of a plain proxy URL), with its pool."""

    __slots__ = ("farm", "address", "port", "scheme", "weight", "enabled", "healthy", "down_until",
                 "active", "served", "idle", "avg_ms", "current", "cookie", "host_header")

    def __init__(self, farm: "Farm | None", address: str, port: int, scheme: str, weight: int = 100,
                 enabled: bool = True):
        self.farm = farm
        self.address = address
        self.port = port
        self.scheme = scheme
        self.weight = weight
        self.enabled = enabled
        self.healthy = True
        self.down_until = 0.0   # > now: out after an in-band failure, no probe configured
        self.active = 0         # requests in flight (LeastRequests)
        self.served = 0
        self.avg_ms = 0.0       # moving average of response head time (LeastResponseTime)
        self.current = 0        # smooth weighted round robin state
        self.idle: collections.deque[Upstream] = collections.deque()
        name = (farm.name if farm is not None else "") + f"/{address}:{port}"
        self.cookie = hashlib.sha256(name.encode()).hexdigest()[:32]
        default = 443 if scheme == "https" else 80
        host = f"[{address}]" if ":" in address else address
        self.host_header = (host if port == default else f"{host}:{port}").encode("ascii")

    @property
    def key(self) -> str:
        return f"{self.address}:{self.port}"

    def available(self, now: float) -> bool:
        return self.enabled and self.healthy and self.down_until <= now

    def mark_down(self, reason: str) -> None:
        farm = self.farm
        if self.healthy and self.down_until <= time.monotonic():
            log.warning("backend %s%s taken out: %s", f"{farm.name}/" if farm else "", self.key, reason)
        if farm is not None and farm.probing:
            self.healthy = False
        else:
            interval = farm.interval if farm is not None else 30.0
            self.down_until = time.monotonic() + interval
        self.close_idle()

    def mark_up(self) -> None:
        if not self.healthy or self.down_until:
            log.warning("backend %s%s back in", f"{self.farm.name}/" if self.farm else "", self.key)
        self.healthy = True
        self.down_until = 0.0

    def close_idle(self) -> None:
        idle, self.idle = self.idle, collections.deque()
        for conn in idle:
            conn.close()

    # ---- the keep-alive pool ----
    def take_idle(self, now: float, idle_timeout: float) -> Upstream | None:
        idle = self.idle
        while idle:
            # Oldest first: requests spread over every kept connection (so over every process
            # of a pre-fork backend that accepted one), instead of a few hot ones.
            conn = idle.popleft()
            if conn.closed or conn.error is not None or now - conn.idle_since > idle_timeout:
                conn.close()
                continue
            return conn
        return None

    def give_back(self, conn: Upstream, keep: int) -> None:
        if conn.closed or conn.error is not None or len(self.idle) >= keep or not self.available(time.monotonic()):
            conn.close()
            return
        conn.reader = None
        conn.idle_since = time.monotonic()
        self.idle.append(conn)

    async def connect(self, loop, timeout: float, ssl_context=None) -> Upstream:
        conn_ssl = None
        if self.scheme == "https":
            conn_ssl = ssl_context or ssl.create_default_context()
        _transport, conn = await asyncio.wait_for(
            loop.create_connection(lambda: Upstream(loop, self), self.address, self.port, ssl=conn_ssl,
                                   server_hostname=self.address if conn_ssl else None),
            timeout)
        return conn


class Farm:
    """A web farm as one worker sees it."""

    def __init__(self, settings):
        self.name = settings.name
        self.enabled = settings.enabled
        routing = settings.application_request_routing
        self.algorithm = routing.load_balancing.algorithm
        self.use_cookie = routing.affinity.use_cookie
        self.cookie_name = routing.affinity.cookie_name.encode("ascii")
        check = routing.health_check
        self.check_url = check.url
        self.probing = bool(check.url)
        self.interval = float(check.interval) or 30.0
        self.check_timeout = float(check.timeout) or 30.0
        self.status_match = parse_status_match(check.status_code_match)
        self.response_match = check.response_match.encode("utf-8")
        self.settings = settings
        self._servers: dict[str, list[Server]] = {}
        self.task: asyncio.Task | None = None
        self.rr = 0

    def servers(self, scheme: str) -> list[Server]:
        found = self._servers.get(scheme)
        if found is None:
            found = self._servers[scheme] = [
                Server(self, s.address, s.https_port if scheme == "https" else s.http_port, scheme,
                       s.weight, s.enabled) for s in self.settings.servers]
        return found

    def pick(self, scheme: str, path: bytes, cookie: bytes | None, exclude=()) -> Server | None:
        """A server for a request: the affinity cookie's when it is available, else by algorithm."""
        if not self.enabled:
            return None
        now = time.monotonic()
        every = self.servers(scheme)
        if len(every) == 1 and cookie is None:  # a farm of one: nothing to balance
            only = every[0]
            return only if only.available(now) and only not in exclude and only.weight > 0 else None
        servers = [s for s in every if s.available(now) and s not in exclude]
        if not servers:
            return None
        if cookie is not None:
            for server in servers:
                if server.cookie.encode() == cookie:
                    return server
        algorithm = self.algorithm
        if algorithm == "LeastRequests":
            return min(servers, key=lambda s: (s.active, s.served))
        if algorithm == "LeastResponseTime":
            return min(servers, key=lambda s: (s.avg_ms, s.active))
        if algorithm == "RequestHash":
            return servers[zlib.crc32(path) % len(servers)]
        weighted = [s for s in servers if s.weight > 0]
        if not weighted:
            return None
        # nginx's smooth weighted round robin: equal weights rotate in order.
        total = 0
        best = None
        for server in weighted:
            server.current += server.weight
            total += server.weight
            if best is None or server.current > best.current:
                best = server
        best.current -= total
        return best

    # ---- health checks ----
    def start(self, loop) -> None:
        if self.probing and self.task is None:
            self.task = loop.create_task(self._probe_loop(loop))

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None
        for servers in self._servers.values():
            for server in servers:
                server.close_idle()

    async def _probe_loop(self, loop) -> None:
        scheme, _host, target = split_url(self.check_url)
        while True:
            servers = [s for s in self.servers(scheme) if s.enabled]
            results = await asyncio.gather(*(self.probe(loop, s, target) for s in servers),
                                           return_exceptions=True)
            for server, result in zip(servers, results):
                if result is True:
                    server.mark_up()
                else:
                    server.mark_down(f"health check {self.check_url}: {result}")
            await asyncio.sleep(self.interval)

    async def probe(self, loop, server: Server, target: bytes):
        """True when `server` passes the check, else a reason (str)."""
        try:
            conn = await server.connect(loop, self.check_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            return f"connect: {exc or 'timeout'}"
        try:
            reader = conn.reader = ResponseReader(max_header=65536)
            head = request_head("GET", target, [(b"User-Agent", b"wasp ARR health check")],
                                server.host_header, keep_alive=False)
            conn.write(head)
            deadline = loop.time() + self.check_timeout
            body = bytearray()
            while not (reader.done or conn.closed or conn.error is not None):
                left = deadline - loop.time()
                if left <= 0 or not await conn.wait(left):
                    return "timeout"
                body += reader.take()
                if len(body) > PROBE_BODY_LIMIT:
                    break
            body += reader.take()
            if conn.error is not None or not reader.head_done:
                return f"bad response: {conn.error}"
            if not any(lo <= reader.status <= hi for lo, hi in self.status_match):
                return f"status {reader.status}"
            if self.response_match and self.response_match not in body[:PROBE_BODY_LIMIT]:
                return "response_match not found"
            return True
        except OSError as exc:
            return str(exc)
        finally:
            conn.close()


def parse_status_match(text: str) -> list[tuple[int, int]]:
    ranges = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        ranges.append((int(lo), int(hi or lo)))
    return ranges


def split_url(url: str) -> tuple[str, str, bytes]:
    """"http://host:port/p?q" -> ("http", "host:port", b"/p?q")."""
    scheme, _, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return scheme.lower(), host, ("/" + path if slash else "/").encode("utf-8")


def split_host(host: str, scheme: str) -> tuple[str, int]:
    if host.startswith("["):
        address, _, port = host[1:].partition("]")
        port = port.lstrip(":")
    else:
        address, _, port = host.partition(":")
    return address, int(port) if port else (443 if scheme == "https" else 80)


class Farms:
    """Every farm of the server config, and the servers of plain proxy URLs, for one worker."""

    def __init__(self, settings=()):
        self.farms = {f.name.lower(): Farm(f) for f in settings}
        self.direct: dict[tuple, Server] = {}
        self.started = False

    def start(self, loop) -> None:
        if not self.started:
            self.started = True
            for farm in self.farms.values():
                farm.start(loop)

    def stop(self) -> None:
        for farm in self.farms.values():
            farm.stop()
        for server in self.direct.values():
            server.close_idle()

    def direct_server(self, scheme: str, host: str) -> Server:
        address, port = split_host(host, scheme)
        key = (scheme, address.lower(), port)
        server = self.direct.get(key)
        if server is None:
            if len(self.direct) > 1024:   # rewrite targets are config, but bound the table anyway
                for old in self.direct.values():
                    old.close_idle()
                self.direct.clear()
            server = self.direct[key] = Server(None, address, port, scheme)
        return server
