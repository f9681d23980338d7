"""A connection to a FastCGI application as a bare asyncio Protocol.

asyncio's streams with `wait_for` cost a task and several futures per read; a hello page through
php-fpm is all overhead, so the worker reads with one future per wait and one timer handle:
`read(timeout)` gives whatever arrived (b"" at EOF) or raises TimeoutError. Reading stops while
more than READ_LIMIT bytes wait unread (the client is slower than the application: back-pressure
reaches the application through its socket), and `drain()` waits while the transport's write
buffer is over its high-water mark.
"""

from __future__ import annotations

import asyncio

READ_LIMIT = 256 * 1024


class Connection(asyncio.Protocol):
    __slots__ = ("loop", "transport", "chunks", "size", "eof", "error", "waiter", "paused",
                 "drain_waiter", "closed")

    def __init__(self, loop):
        self.loop = loop
        self.transport = None
        self.chunks = []
        self.size = 0
        self.eof = False
        self.error = None
        self.waiter = None
        self.paused = False
        self.drain_waiter = None
        self.closed = False

    # ---- protocol callbacks ----
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if self.size > READ_LIMIT and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self):
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc) -> None:
        self.eof = True
        self.closed = True
        self.error = exc
        self._wake()
        waiter = self.drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        if self.drain_waiter is None:
            self.drain_waiter = self.loop.create_future()

    def resume_writing(self) -> None:
        waiter, self.drain_waiter = self.drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # ---- the handler's side ----
    async def read(self, timeout: float) -> bytes:
        if not self.chunks and not self.eof:
            waiter = self.waiter = self.loop.create_future()
            timer = self.loop.call_later(timeout, _expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                if self.waiter is waiter:
                    self.waiter = None
        if self.chunks:
            chunks = self.chunks
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self.chunks = []
            self.size = 0
            if self.paused:
                self.paused = False
                self.transport.resume_reading()
            return data
        if self.error is not None:
            raise ConnectionResetError(str(self.error))
        return b""

    def write(self, data) -> None:
        if self.closed:
            raise ConnectionResetError("the FastCGI connection is closed")
        self.transport.write(data)

    async def drain(self) -> None:
        if self.closed:
            raise ConnectionResetError("the FastCGI connection is closed")
        waiter = self.drain_waiter
        if waiter is not None:
            await waiter

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()


def _expire(waiter) -> None:
    if not waiter.done():
        waiter.set_exception(asyncio.TimeoutError())


async def open_unix(path: str) -> Connection:
    loop = asyncio.get_running_loop()
    _transport, conn = await loop.create_unix_connection(lambda: Connection(loop), path)
    return conn


async def open_tcp(host: str, port: int) -> Connection:
    loop = asyncio.get_running_loop()
    _transport, conn = await loop.create_connection(lambda: Connection(loop), host, port)
    return conn
