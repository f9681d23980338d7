"""The front's own accept loop on one listening socket.

Under uvloop's `create_server`, libuv answers EMFILE/ENFILE from accept with its "EMFILE trick":
it closes a spare descriptor, accepts every waiting connection and closes each at once, so a burst
of clients over the descriptor limit is reset (25 of 30 in tests/integration/test_server_qos.py);
should the error reach uvloop's listen callback instead, uvloop closes the server for good. Here
the listening socket is watched with `add_reader`; on EMFILE/ENFILE/ENOBUFS/ENOMEM the listener
stops watching for a back-off (100 ms doubling to 1 s, reset by the next accept that works) and
then tries again, without spinning and without dropping the connections waiting in the backlog.
Each accepted socket becomes a transport with `loop.connect_accepted_socket` (with the port's TLS
context, if any).

When other fronts accept on the same socket (`front_processes > 1`) the kernel wakes every front
waiting on it and the first to call accept wins, so a front that is running takes a burst's
connections while the others are still waking up. Two rules spread them (as nginx's
`accept_mutex`/`accept_disabled` do): a small batch per wake-up, and a front that holds well over
its share of all the fronts' connections (the scoreboard's counts, `over_share`) stops watching
the socket for 1 ms, leaving the queue to the others; the next wake-up after such a pause always
accepts a batch, so a front whose peers are stalled or dead still serves the queue, 1 ms later.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Callable

#: Connections taken per readiness callback before the loop serves others.
ACCEPT_BATCH = 64
#: ... when other fronts accept on the same socket (front_processes > 1): every front waiting in
#: epoll is woken for a new connection and the first to call accept takes it, so a small batch
#: leaves the rest of a burst to the fronts the kernel woke with it, instead of one front
#: draining the whole backlog on one wake-up.
SHARED_ACCEPT_BATCH = 4
#: How long a front over its share of the connections leaves the accept queue to the others.
DEFER = 0.001
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 1.0
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Acceptor:
    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 factory: Callable[[], asyncio.Protocol], on_pause: Callable[[OSError, float], None] | None = None,
                 tls: dict | None = None, batch: int = ACCEPT_BATCH,
                 defer: Callable[[int], bool] | None = None):
        self.loop = loop
        self.batch = batch
        #: `defer(starting)`: True when this front should leave the next connections to the
        #: other fronts (`starting`: sockets accepted whose connection is not made yet).
        self.defer = defer
        self.starting = 0
        self._deferred = False
        self.sock = sock
        self.factory = factory
        self.tls = tls or {}   # ssl= and ssl_handshake_timeout= for connect_accepted_socket
        self.on_pause = on_pause or (lambda exc, delay: None)
        self.backoff = 0.0
        self.pauses = 0
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._ready)

    def _ready(self) -> None:
        sock = self.sock
        if self.defer is not None:
            if not self._deferred and self.defer(self.starting):
                self._deferred = True
                self.loop.remove_reader(sock.fileno())
                self._timer = self.loop.call_later(DEFER, self._resume)
                return
            self._deferred = False
        for _ in range(self.batch):
            try:
                conn, _address = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    self._pause(exc)
                    return
                # ECONNABORTED, EPROTO, EPERM (a firewall): that one connection is gone.
                continue
            self.backoff = 0.0
            self.starting += 1
            self.loop.create_task(self._start(conn))

    def _pause(self, exc: OSError) -> None:
        self.backoff = min(BACKOFF_MAX, self.backoff * 2 if self.backoff else BACKOFF_FIRST)
        self.pauses += 1
        self.loop.remove_reader(self.sock.fileno())
        self._timer = self.loop.call_later(self.backoff, self._resume)
        self.on_pause(exc, self.backoff)

    def _resume(self) -> None:
        self._timer = None
        if not self._closed:
            self.loop.add_reader(self.sock.fileno(), self._ready)

    async def _start(self, conn: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(self.factory, conn, **self.tls)
        except Exception:
            # A socket uvloop would not take, or a TLS handshake that failed or timed out (the
            # transport closed it already: closing the same socket object again is a no-op).
            conn.close()
        finally:
            self.starting -= 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        else:
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
