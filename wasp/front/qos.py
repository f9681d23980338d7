"""HTTP.sys's quality of service on a client connection, and who the client is behind a proxy.

`QosMixin` is mixed into `HttpConnection` (connection.py), which owns the state it uses:

* **Site connections** (`limits.max_connections` of a site): a connection belongs to a site once a
  request of it is routed there, or at accept when every host of its listening address leads to
  one site. Over the site's limit the request gets 503 `ConnLimit` and the connection closes.
  The counts are the Server's, by site id, so a reload keeps them; each front publishes its
  count in the shared scoreboard and the limit is on the sum (reserve, then check).
* **Bandwidth** (`sites.limits.max_bandwidth`, `limits.max_global_bandwidth`): a token bucket per
  site and one for the server. A limited connection writes its response bytes a piece at a time
  (`CHUNK_SECONDS` of the rate), each only when `_clear()` says it may: its buckets are out of
  debt and no other connection waits for them. Else it joins the FIFO of the bucket that holds it
  up, and the bucket's one timer (`loop.call_at`, never a sleep) gives the next waiter its turn
  when the debt is paid: the connections take turns, one piece each, so none starves. Until its
  turn an HTTP/1.1 connection holds the bytes itself (`_held`, at most the worker's window) and
  does not acknowledge them to the worker; an HTTP/2 stream keeps them in its queue; a file waits
  unread. With no limit configured a connection has no buckets and pays one `is None` per write.
* **A client gone while throttled**: an HTTP/1.1 client that shuts down its side (FIN) with its
  response in progress may have half-closed or closed; the front stops reading then, and a
  throttled connection may write nothing for a while, so nothing would tell. It writes one byte at
  once (a closed peer answers it with a reset) and polls the socket for hang-up (`check_hangup`,
  at once and on each sweep); a hang-up drops the connection, which cancels the worker's stream.
* **Minimum send rate** (`limits.min_bytes_per_second`, 240): while the client's transport is over
  its high-water mark, the bytes of the current response written so far must have been taken by
  `start + MIN_RATE_GRACE + bytes / rate`; past that the connection is cut, HTTPERR
  `Timer_MinBytesPerSecond`.
* **PROXY protocol** on a `proxy_protocol` site's port: from a trusted peer the v1/v2 header is read
  (within `header_wait_timeout`) and names the client; an untrusted peer is closed at once
  (HTTPERR `Forbidden`), a malformed header closes the connection (HTTPERR `BadRequest`).
* **Forwarding headers** from a trusted peer set the request's client address and scheme
  (wire/forwarded.py); from any other peer they are passed on to the app and ignored.
"""

from __future__ import annotations

import select
from collections import deque

from wasp.config.model import UNIX_PREFIX
from wasp.front.request import ConnState, Request
from wasp.wire.forwarded import resolve
from wasp.wire.http import AppPoolUnavailable
from wasp.wire.proxy_protocol import ProxyError, parse as parse_proxy

#: How long a response may fall behind min_bytes_per_second before the rate is enforced: a
#: stalled TCP peer retransmits for seconds before it reads again.
MIN_RATE_GRACE = 5.0
MIN_RATE_TIMER = "Timer_MinBytesPerSecond"
#: With a bandwidth limit, a file goes out in chunks of at most this many seconds of the rate.
CHUNK_SECONDS = 0.125
#: After the one-byte probe of a client that sent FIN: when to look for its reset first (then
#: every sweep), time enough for a round trip on a LAN.
HANGUP_CHECK = 0.1
_HUNG_UP = select.POLLHUP | select.POLLERR

_OPEN = ConnState.OPEN


class Bucket:
    """A token bucket that may go into debt, with the connections waiting for it in turn.

    `take(n, now)` spends (into debt, possibly); `ready(now)`: no debt and nobody waiting;
    `wait(conn, loop)` queues a connection, and one timer wakes the queue's head (`conn.
    _unthrottle(bucket)`) each time the debt is paid: that connection sends one piece, which puts
    the bucket into debt again, and (if it has more) queues at the back."""

    __slots__ = ("rate", "burst", "tokens", "stamp", "full", "waiters", "armed")

    def __init__(self, rate: int, now: float):
        self.full = int(rate)   # the configured rate; `rate` is this front's share of it
        self.rate = float(rate)
        self.burst = max(1024.0, self.rate * CHUNK_SECONDS)
        self.tokens = self.burst
        self.stamp = now
        self.waiters: deque = deque()
        self.armed = False      # its timer is set

    def share(self, own: int, total: int) -> None:
        """Several fronts: take the part of the configured rate that this front's connections
        are of all the fronts' (`own` of `total`); alone, or with no connections, all of it."""
        rate = float(self.full) * own / total if 0 < own < total else float(self.full)
        self.rate = max(1.0, rate)
        self.burst = max(1024.0, self.rate * CHUNK_SECONDS)

    def _refill(self, now: float) -> float:
        tokens = self.tokens + (now - self.stamp) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        self.tokens = tokens
        self.stamp = now
        return tokens

    def take(self, n: int, now: float) -> float:
        """Spend n bytes; -> how long until the debt (if any) is paid."""
        tokens = self._refill(now) - n
        self.tokens = tokens
        return -tokens / self.rate if tokens < 0 else 0.0

    def ready(self, now: float) -> bool:
        return not self.waiters and self._refill(now) >= 0

    def in_debt(self, now: float) -> bool:
        return self._refill(now) < 0

    def wait(self, conn, loop) -> None:
        self.waiters.append(conn)
        if not self.armed:
            self._arm(loop)

    def _arm(self, loop) -> None:
        now = loop.time()
        tokens = self._refill(now)
        self.armed = True
        loop.call_at(now + (-tokens / self.rate if tokens < 0 else 0.0), self._wake, loop)

    def _wake(self, loop) -> None:
        self.armed = False
        waiters = self.waiters
        now = loop.time()
        # Each turn that sends puts the bucket in debt again, which ends this loop; connections
        # gone or with nothing left to send just leave the queue.
        while waiters and self._refill(now) >= 0:
            waiters.popleft()._unthrottle(self)
        if waiters and not self.armed:   # (a turn that queued again armed it already)
            self._arm(loop)


def proxy_key(local: tuple[str, int]):
    """What names a listener for proxy_protocol: the Unix socket path, else the port."""
    return local[0] if local[0].startswith(UNIX_PREFIX) else local[1]


class QosMixin:
    __slots__ = ()

    # ---- sites ----
    def _join_site(self, site) -> None:
        """Count this connection for `site`; 503 ConnLimit when the site is full."""
        server = self.server
        counts = server.site_connections
        n = counts.get(site.id, 0)
        cell = server.site_cells.get(site.id)
        if cell is not None:
            # Every front's connections count (wasp/common/scoreboard.py: reserve, then check).
            if site.max_connections > 0:
                if not server.board.reserve(cell, n + 1, site.max_connections, exact=True):
                    raise AppPoolUnavailable("ConnLimit")
            else:
                server.board.set(cell, n + 1)
        elif 0 < site.max_connections <= n:
            raise AppPoolUnavailable("ConnLimit")
        counts[site.id] = n + 1
        self.site_id = site.id
        if site.connection_timeout:
            self._idle = site.connection_timeout
        self._buckets = server.buckets_for(site.id)
        if self._buckets is not None:
            self._chunk = server.chunk_for(self._buckets)

    def _leave_site(self) -> None:
        site_id = self.site_id
        if site_id:
            self.site_id = 0
            server = self.server
            counts = server.site_connections
            n = counts.get(site_id, 0) - 1
            if n > 0:
                counts[site_id] = n
            else:
                counts.pop(site_id, None)
            cell = server.site_cells.get(site_id)
            if cell is not None:
                server.board.set(cell, n)

    # ---- bandwidth ----
    def _spend(self, n: int) -> None:
        now = self.server.loop.time()
        for bucket in self._buckets:
            bucket.take(n, now)

    def _clear(self) -> bool:
        """May this limited connection write its next piece now? Else it waits its turn in the
        queue of the bucket that holds it up (writing paused until `_unthrottle`)."""
        if self._throttled:
            return False
        if self._turn:
            self._turn = False   # woken by a bucket: this piece is the turn it waited for
            return True
        now = self.server.loop.time()
        for bucket in self._buckets:
            if not bucket.ready(now):
                self._throttled = True
                self._write_paused = True
                bucket.wait(self, self.server.loop)
                return False
        return True

    def _unthrottle(self, granted: Bucket) -> None:
        """`granted` gave this connection its turn: one piece, once its other buckets agree."""
        if not self._throttled:
            return
        self._throttled = False
        if self.state is not _OPEN and self.state is not ConnState.TUNNEL:
            return
        server = self.server
        now = server.loop.time()
        for bucket in self._buckets or ():   # (None: a reload removed the limit)
            if bucket is not granted and (bucket.waiters or bucket.in_debt(now)):
                self._throttled = True
                bucket.wait(self, server.loop)
                return
        if self._tpaused:
            return   # resume_writing goes on (behind the others, if some wait by then)
        self._write_paused = False
        self._turn = True
        self._writable()
        self._turn = False

    # ---- a client gone while throttled ----
    def _watch_hangup(self) -> None:
        """The client sent FIN while its response is under way on a limited connection: one byte
        now (before its turn: a closed peer answers data with a reset), then poll for hang-up."""
        self._probe()
        server = self.server
        server.hangup_watch.add(self)
        server.loop.call_at(server.loop.time() + HANGUP_CHECK, self.check_hangup)

    def check_hangup(self) -> None:
        """Drop the connection if the client is gone (reset or hung up); forget it once closed."""
        if self.state is not _OPEN and self.state is not ConnState.TUNNEL:
            self.server.hangup_watch.discard(self)
            return
        fd = self._sockfd
        if fd < 0:
            sock = self.transport.get_extra_info("socket")
            try:
                fd = sock.fileno() if sock is not None else -1
            except (OSError, AttributeError):
                fd = -1
            if fd < 0:
                return
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        try:
            events = poller.poll(0)
        except OSError:
            return
        if events and events[0][1] & _HUNG_UP:
            self.server.hangup_watch.discard(self)
            self.abort()

    # ---- minimum send rate ----
    def _arm_min_rate(self) -> None:
        rate = self.server.min_rate
        if not rate or self.state is not _OPEN or not self._pending:
            return
        due = self._send_t0 + MIN_RATE_GRACE + self._sent / rate
        if not self.deadline or due < self.deadline or self.timer == "Timer_ConnectionIdle":
            self.deadline = due
            self.timer = MIN_RATE_TIMER

    def _min_rate_timer(self, now: float) -> bool:
        """The min-rate deadline passed: True when the client is still that slow (cut it)."""
        if not self._tpaused:
            return False
        rate = self.server.min_rate
        due = self._send_t0 + MIN_RATE_GRACE + self._sent / rate if rate else 0.0
        if not rate or now < due:
            self.deadline = due
            return False
        return True

    # ---- PROXY protocol ----
    def _start_proxy(self) -> bool:
        """At accept on a proxy_protocol listener: False when the peer may not send one."""
        server = self.server
        if self.peer[0] not in server.trusted:
            server.log_error(self, None, None, "Forbidden")
            self._abort_connection()
            return False
        self._proxy = b""
        self.deadline = server.loop.time() + server.header_wait
        self.timer = "Timer_HeaderWait"
        return True

    def _proxy_in(self, data: bytes) -> bytes | None:
        """Bytes before and in the PROXY header; the bytes after it once it is complete."""
        buf = self._proxy + data if self._proxy else data
        try:
            header = parse_proxy(buf)
        except ProxyError:
            self._proxy = None
            self.server.log_error(self, None, None, "BadRequest")
            self._abort_connection()
            return None
        if header is None:
            self._proxy = buf
            return None
        self._proxy = None
        if header.source is not None:
            self.peer = header.source
            self.c_ip = header.source[0].encode()
            self.proxied = True
        if header.scheme:
            self.scheme = header.scheme
            self.proxied = True
        server = self.server
        self.deadline = server.loop.time() + self._idle
        self.timer = "Timer_ConnectionIdle"
        return buf[header.consumed:]

    # ---- forwarding headers ----
    def _forwarded(self, req: Request) -> None:
        forwarded, xff, xfp = req.forwarded
        found = resolve(self.peer[0], self.server.trusted, forwarded, xff, xfp)
        if found is None:
            return
        client, scheme = found
        req.client = client
        req.c_ip = client[0].encode()
        if scheme:
            req.scheme = scheme
