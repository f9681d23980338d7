"""Request bodies with flow control: BODY frames in, WINDOW frames out as the app consumes.

The front sends at most INITIAL_WINDOW body bytes of a stream beyond what the worker acknowledged,
so a worker holds about one window per request however large the upload. The worker acknowledges
what the app has read, in batches while data is buffered, and everything received before it would
block (otherwise both sides could wait on each other).
"""

from __future__ import annotations

import asyncio
import time

from wasp.errors import HttpError
from wasp.wire import frames
from wasp.worker.context import WAIT_LIMIT, Cancelled

#: Acknowledge in batches of at least this many consumed bytes while the buffer still has data.
ACK_BATCH = frames.INITIAL_WINDOW // 4


class BodyTooLarge(HttpError):
    """A body with no Content-Length (chunked) went over request filtering's
    max_allowed_content_length while it was read: 413.1."""

    status = 413
    substatus = 1
    reason = "EntityTooLarge"


def _too_large(ctx, limit: int) -> BodyTooLarge:
    """Answer 413.1 (the pipeline's one place for errors; nothing if a response started) and
    return the error for the reader to raise into the app."""
    detail = f"request body over max_allowed_content_length ({limit} bytes)"
    filtering = getattr(getattr(ctx, "config", None), "request_filtering", None)
    if filtering is not None and filtering.legacy_status_codes:  # IIS 7.0-8.5: 404.13
        exc = BodyTooLarge(detail, status=404, substatus=13, reason="NotFound")
    else:
        exc = BodyTooLarge(detail)
    pipeline = getattr(ctx.app, "pipeline", None)
    if pipeline is not None:
        pipeline.fail(ctx, exc)
    return exc


class EmptyInput:
    """wsgi.input of a request without a body. Stateless, so one instance serves every request."""

    def read(self, size: int = -1) -> bytes:
        return b""

    def readline(self, size: int = -1) -> bytes:
        return b""

    def readlines(self, hint: int = -1) -> list[bytes]:
        return []

    def __iter__(self):
        return iter(())


EMPTY_INPUT = EmptyInput()


class BlockingBody:
    """wsgi.input: read by a WSGI thread, fed by the event loop."""

    __slots__ = ("_ctx", "_cond", "_buf", "_eof", "_cancelled", "_received", "_consumed", "_acked",
                 "limit", "_over")

    def __init__(self, ctx, eof: bool = False):
        self._ctx = ctx
        self._cond = ctx.channel.cond
        self.limit = 0            # > 0: most body bytes the app may get (request filtering)
        self._over = None         # the BodyTooLarge once the body went over `limit`
        self._buf = bytearray()   # deleting from the front of a bytearray is amortised O(1)
        self._eof = eof
        self._cancelled = False
        self._received = 0        # byte counts since the start of the body
        self._consumed = 0
        self._acked = 0

    # ---- loop side ----
    def feed(self, data: bytes) -> None:
        with self._cond:
            self._buf += data
            self._received += len(data)
            self._cond.notify_all()

    def end(self) -> None:
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

    # ---- app side (the condition is held) ----
    def _fill(self, predicate) -> None:
        """Wait until predicate() or EOF.

        Before blocking, everything received is acknowledged, consumed or not: a reader waiting for
        more than a window (read(1 MiB)) must let the front send it. The buffer is then bounded
        by what the app asked for plus one window.
        """
        deadline = None
        while not predicate() and not self._eof:
            if self._cancelled:
                raise Cancelled("client went away")
            if self.limit and self._received > self.limit:
                self._refuse()
            self._ack_to(self._received)
            if deadline is None:
                deadline = time.monotonic() + WAIT_LIMIT
            left = deadline - time.monotonic()
            if left <= 0:
                raise Cancelled("request body did not arrive in time")
            self._cond.wait(left)
        if self._cancelled:
            raise Cancelled("client went away")
        if self.limit and self._received > self.limit:
            self._refuse()

    def _refuse(self) -> None:
        """Over the limit: nothing more is acknowledged or handed to the app. The condition is
        released while the pipeline answers (it writes through the channel's lock)."""
        if self._over is None:
            self._buf.clear()
            self._cond.release()
            try:
                self._over = _too_large(self._ctx, self.limit)
            finally:
                self._cond.acquire()
        raise self._over

    def _take(self, n: int) -> bytes:
        buf = self._buf
        data = bytes(buf[:n])
        del buf[:n]
        self._consumed += len(data)
        if self._consumed - self._acked >= ACK_BATCH or (not buf and not self._eof):
            self._ack_to(self._consumed)
        return data

    def _ack_to(self, total: int) -> None:
        n = total - self._acked
        if n > 0 and not self._eof:
            self._acked = total
            self._ctx.channel.send_frame(self._ctx, frames.pack_window(self._ctx.sid, n))

    # ---- the wsgi.input API ----
    def read(self, size: int | None = -1) -> bytes:
        with self._cond:
            if size is None or size < 0:
                self._fill(lambda: False)
                return self._take(len(self._buf))
            if size == 0:
                return b""
            self._fill(lambda: len(self._buf) >= size)
            return self._take(min(size, len(self._buf)))

    def read1(self, size: int = -1) -> bytes:
        with self._cond:
            self._fill(lambda: len(self._buf) > 0)
            n = len(self._buf) if size is None or size < 0 else min(size, len(self._buf))
            return self._take(n)

    def readline(self, size: int | None = -1) -> bytes:
        limit = None if size is None or size < 0 else size
        with self._cond:
            if limit == 0:
                return b""
            buf = self._buf
            checked = 0

            def have_line() -> bool:
                nonlocal checked
                if limit is not None and len(buf) >= limit:
                    return True
                if buf.find(b"\n", checked) >= 0:
                    return True
                checked = len(buf)
                return False

            self._fill(have_line)
            end = buf.find(b"\n")
            n = len(buf) if end < 0 else end + 1
            if limit is not None:
                n = min(n, limit)
            return self._take(n)

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                break
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class AsyncBody:
    """The source of an ASGI app's `http.request` messages (or a WebSocket's tunnel bytes), fed
    on the same loop that reads them."""

    __slots__ = ("_ctx", "_chunks", "_eof", "_cancelled", "waiter", "limit", "_received", "_over")

    def __init__(self, ctx, eof: bool = False):
        self._ctx = ctx
        self._chunks: list[bytes] = []
        self._eof = eof
        self._cancelled = False
        self.waiter = None
        self.limit = 0            # > 0: most body bytes the app may get (request filtering)
        self._received = 0
        self._over = None

    @property
    def done(self) -> bool:
        return self._eof and not self._chunks

    @property
    def buffered(self) -> bool:
        return bool(self._chunks)

    def feed(self, data: bytes) -> None:
        self._received += len(data)
        self._chunks.append(data)
        self.wake()

    def end(self) -> None:
        self._eof = True
        self.wake()

    def cancel(self) -> None:
        self._cancelled = True
        self.wake()

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self, timeout: float | None = None) -> None:
        """Sleep until fed, ended, cancelled or woken (e.g. the response completed)."""
        waiter = self.waiter = self._ctx.channel.loop.create_future()
        try:
            if timeout is None:
                await waiter
            else:
                await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            if self.waiter is waiter:
                self.waiter = None

    def drain(self) -> bytes:
        """Everything buffered, unacknowledged (the WebSocket acknowledges per message)."""
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        return data

    async def take(self) -> tuple[bytes, bool]:
        """-> (bytes, more_body), acknowledged; raises Cancelled when the client went away."""
        deadline = None
        loop = self._ctx.channel.loop
        while not self._chunks and not self._eof and not self._cancelled:
            now = loop.time()
            if deadline is None:
                deadline = now + WAIT_LIMIT
            elif now >= deadline:
                raise Cancelled("request body did not arrive in time")
            await self.wait(deadline - now)
        if self._cancelled:
            raise Cancelled("client went away")
        if self.limit and self._received > self.limit:
            if self._over is None:
                self._chunks.clear()
                self._over = _too_large(self._ctx, self.limit)
            raise self._over
        data = self.drain() if self._chunks else b""
        if data and not self._eof:
            ctx = self._ctx
            ctx.channel.send_frame(ctx, frames.pack_window(ctx.sid, len(data)))
        return data, not self._eof


def to_async(ctx) -> None:
    """A request of a threaded application (a WSGI app, or web_dav) whose handler runs on the
    loop instead (the reverse proxy, cgi, fast_cgi): its body reader was made for a thread. Called
    on the loop before anything read the body, so its bytes move over as they are and what the
    front sends next is fed to the new reader."""
    if not ctx.threaded:
        return
    body = ctx.body
    ctx.threaded = False
    if isinstance(body, BlockingBody):
        new = AsyncBody(ctx, eof=body._eof)
        if body._buf:
            new.feed(bytes(body._buf))
            body._buf.clear()
        new.limit = body.limit
        ctx.body = new
