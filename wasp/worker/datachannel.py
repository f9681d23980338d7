"""The worker's end of a front <-> worker data channel: frames in on the loop, frames out from
any thread.

Reading is the loop's job (add_reader on the socket, no transport). Writing is everyone's: a WSGI
thread that has finished a response takes the channel lock and sends straight into the
non-blocking socket; only when the kernel buffer is full does the rest wait in a backlog that the
loop's writer drains. Taking a stream out of the table and writing its last frame happen under
that one lock, and so does marking a stream cancelled: a stream id the front reuses after our last
frame (or after its CANCEL) never reaches the old request.
"""

from __future__ import annotations

import logging
import socket
import threading

from wasp.wire import frames
from wasp.wire.frames import FrameType

log = logging.getLogger("wasp.worker")

RECV_SIZE = 256 * 1024

_REQUEST = FrameType.REQUEST
_BODY = FrameType.BODY
_END = FrameType.END
_WINDOW = FrameType.WINDOW
_CANCEL = FrameType.CANCEL
_DRAIN = FrameType.DRAIN


class DataChannel:
    initial_window = frames.INITIAL_WINDOW

    def __init__(self, sock: socket.socket, loop, *, on_request, on_drain, on_close, on_done):
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()
        self.loop = loop
        self.lock = threading.Lock()        # every write, and stream-table changes racing them
        self.cond = threading.Condition()   # WSGI threads waiting for body bytes or WINDOW
        self.streams: dict = {}
        self.closed = False
        self.drained = False
        self._reader = frames.FrameReader()
        self._rbuf = bytearray(RECV_SIZE)
        self._rview = memoryview(self._rbuf)
        self._cork: list = []
        self._backlog = bytearray()
        self._writing = False
        self._loop_thread = threading.get_ident()
        self._on_request = on_request
        self._on_drain = on_drain
        self._on_close = on_close
        self._on_done = on_done
        loop.add_reader(self.fd, self._readable)

    # ---- writing (any thread) ----
    def send_frame(self, ctx, data) -> bool:
        """A frame of a stream that is still open; False when the stream or channel is gone."""
        with self.lock:
            if ctx.cancelled or ctx.finished or self.closed:
                return False
            self._write(data)
        return True

    def send_final(self, ctx, data) -> bool:
        """The last frame of a stream: the stream leaves the table before its id can be reused."""
        with self.lock:
            if ctx.cancelled or ctx.finished or self.closed:
                return False
            ctx.finished = True
            streams = self.streams
            if streams.get(ctx.sid) is ctx:
                del streams[ctx.sid]
            self._write(data)
        return True

    def send_raw(self, data: bytes) -> None:
        with self.lock:
            if not self.closed:
                self._write(data)

    def done(self, ctx) -> None:
        """The pipeline of `ctx` finished (LOG_REQUEST and END_REQUEST included)."""
        if not ctx.finished:
            with self.lock:
                if self.streams.get(ctx.sid) is ctx:
                    del self.streams[ctx.sid]
        self._on_done(ctx)

    def _write(self, data) -> None:
        # Caller holds self.lock. Frames written on the loop thread (ASGI responses, WINDOWs,
        # HELLO) wait in the cork until the loop has handled everything it read this turn, then
        # go out in one send; WSGI threads send at once, since no loop turn batches for them.
        if threading.get_ident() == self._loop_thread:
            cork = self._cork
            if not cork:
                self.loop.call_soon(self._uncork)
            cork.append(data)
            return
        self._send(data)

    def _uncork(self) -> None:
        with self.lock:
            cork = self._cork
            if cork and not self.closed:
                self._send(cork[0] if len(cork) == 1 else b"".join(cork))
            cork.clear()

    def _send(self, data) -> None:
        # Caller holds self.lock.
        if self._backlog:
            self._backlog += data
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            # The peer is gone; reading will see EOF and close the channel on the loop.
            return
        if sent < len(data):
            self._backlog += memoryview(data)[sent:]
            if not self._writing:
                self._writing = True
                if threading.get_ident() == self._loop_thread:
                    self.loop.add_writer(self.fd, self._writable)
                else:
                    self.loop.call_soon_threadsafe(self._start_writer)

    def _start_writer(self) -> None:
        with self.lock:
            if not self.closed and self._writing:
                self.loop.add_writer(self.fd, self._writable)

    def _writable(self) -> None:
        with self.lock:
            backlog = self._backlog
            try:
                sent = self.sock.send(backlog)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                backlog.clear()
                sent = 0
            del backlog[:sent]
            if not backlog:
                self._writing = False
                self.loop.remove_writer(self.fd)

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    # ---- reading (loop) ----
    def _readable(self) -> None:
        # recv_into a buffer kept for the channel's life: a fresh 256 KiB bytes object per read
        # costs glibc an mmap, an mremap and a munmap each time.
        try:
            n = self.sock.recv_into(self._rbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            n = 0
        data = self._rview[:n].tobytes()
        if not data:
            self.close()
            return
        try:
            batch = self._reader.feed(data)
        except frames.ProtocolError as exc:
            log.error("data channel: %s; closing it", exc)
            self.close()
            return
        try:
            self._frames(batch)
        except frames.ProtocolError as exc:
            log.error("data channel: %s; closing it", exc)
            self.close()

    def _frames(self, batch) -> None:
        streams = self.streams
        for ftype, flags, sid, payload in batch:
            if ftype == _REQUEST:
                self._on_request(self, sid, flags, payload)
            elif ftype == _BODY:
                ctx = streams.get(sid)
                if ctx is not None:
                    ctx.feed(payload)
            elif ftype == _WINDOW:
                ctx = streams.get(sid)
                if ctx is not None:
                    ctx.on_window(frames.unpack_window(payload))
            elif ftype == _END:
                ctx = streams.get(sid)
                if ctx is not None:
                    ctx.feed_end()
            elif ftype == _CANCEL:
                with self.lock:
                    ctx = streams.pop(sid, None)
                    if ctx is not None:
                        ctx.cancelled = True
                if ctx is not None:
                    ctx.cancel()
            elif ftype == _DRAIN:
                self.drained = True
                self._on_drain(self)
            else:
                log.warning("data channel: unexpected frame type %d on stream %d", ftype, sid)
            if self.closed:
                return

    def close(self) -> None:
        """Stop reading and writing; every request still in flight on this channel is cancelled."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            pending = list(self.streams.values())
            self.streams.clear()
            for ctx in pending:
                ctx.cancelled = True
            self._backlog.clear()
        try:
            self.loop.remove_reader(self.fd)
            if self._writing:
                self.loop.remove_writer(self.fd)
        except (OSError, ValueError):
            pass
        for ctx in pending:
            ctx.cancel()
        self.sock.close()
        self._on_close(self)
