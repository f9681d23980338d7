"""The worker's end of a front <-> worker data channel: frames in on the loop, frames out from
any thread.

Reading is the loop's job (add_reader on the socket, no transport). Writing is everyone's: a WSGI
thread that has finished a response queues its frame under the channel lock and, when no one else
is sending, sends the queue itself into the non-blocking socket (one sendmsg for every frame
queued, without the lock, so other threads queue theirs meanwhile and go back to their apps).
Only when the kernel buffer is full, or after a thread has sent 8 times in a row for others, does
the loop's writer take over the queue. Taking a stream out of the table and queueing its last
frame happen under that one lock, and so does marking a stream cancelled: a stream id the front
reuses after our last frame (or after its CANCEL) never reaches the old request.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import deque

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
_TRACED = FrameType.TRACED

#: Buffers per sendmsg: well under IOV_MAX (1024).
_IOV_BATCH = 256
#: Sends one `_flush` makes before it leaves the rest to the loop's writer (next turn).
_SEND_ROUNDS = 8
#: The loop's frames of one turn up to this many bytes are joined into one buffer.
_JOIN_MAX = 64 * 1024


def _unsent_many(batch: list, sent: int) -> list:
    """What of `batch` is left after the kernel took `sent` bytes of it, in order."""
    for i, data in enumerate(batch):
        size = len(data)
        if sent < size:
            rest = batch[i:]
            if sent:
                rest[0] = memoryview(data)[sent:]
            return rest
        sent -= size
    return []


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
        self._out: deque = deque()    # frames for the front, in order; see _write
        self._queued = 0              # their bytes
        self._sending = False         # a thread or the loop's writer is sending `_out`
        self._sender = 0              # ident of the thread inside a send, without the lock
        self._close_pending = False   # close() came meanwhile: that thread closes the socket
        self._writer_armed = False    # the loop watches for room in the kernel buffer (loop only)
        self._loop_thread = threading.get_ident()
        self._on_request = on_request
        self._on_drain = on_drain
        self._on_close = on_close
        self._on_done = on_done
        loop.add_reader(self.fd, self._readable)

    # ---- writing (any thread) ----
    def send_frame(self, ctx, data) -> bool:
        """A frame of a stream that is still open; False when the stream or channel is gone.
        `data` is bytes, or a tuple of bytes-like parts that make one frame (sent as they are)."""
        with self.lock:
            if ctx.cancelled or ctx.finished or self.closed:
                return False
            if not self._write(data):
                return True
        self._flush(data)
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
            if not self._write(data):
                return True
        self._flush(data)
        return True

    def send_raw(self, data: bytes) -> None:
        with self.lock:
            if self.closed or not self._write(data):
                return
        self._flush(data)

    def done(self, ctx) -> None:
        """The pipeline of `ctx` finished (LOG_REQUEST and END_REQUEST included)."""
        if not ctx.finished:
            with self.lock:
                if self.streams.get(ctx.sid) is ctx:
                    del self.streams[ctx.sid]
        self._on_done(ctx)

    def _write(self, data) -> bool:
        """Queue `data`, or claim the socket to send it (caller holds self.lock): True when the
        caller must now `_flush(data)` without the lock.

        Frames written on the loop thread (ASGI responses, WINDOWs, HELLO) wait in the cork until
        the loop has handled everything it read this turn. A thread's frame joins the outgoing
        queue when someone is sending; otherwise that thread becomes the sender. The lock is never
        held across a send: a thread whose frame queues behind another's send goes back to its
        app at once instead of sleeping on the lock, and the sender takes everything queued
        meanwhile in its next sendmsg (one system call for several responses, nothing joined)."""
        ident = threading.get_ident()
        if ident == self._loop_thread:
            cork = self._cork
            if not cork:
                self.loop.call_soon(self._uncork)
            if data.__class__ is tuple:
                cork.extend(data)
            else:
                cork.append(data)
            return False
        if data.__class__ is tuple:  # a frame in parts (a large body after its head): not joined
            self._queued += sum(map(len, data))
            if self._sending:
                self._out.extend(data)
                return False
        else:
            self._queued += len(data)
            if self._sending:
                self._out.append(data)
                return False
        self._sending = True
        self._sender = ident
        return True

    def _uncork(self) -> None:
        with self.lock:
            cork = self._cork
            if not cork or self.closed:
                cork.clear()
                return
            size = sum(map(len, cork))
            self._queued += size
            if size <= _JOIN_MAX:  # small frames (a turn's hello responses): one buffer
                self._out.append(cork[0] if len(cork) == 1 else b"".join(cork))
            else:
                self._out.extend(cork)
            cork.clear()
            if self._sending:
                return
            self._sending = True
        self._flush()

    def _flush(self, batch=None) -> None:
        """Send `batch` (a frame, bytes or a tuple of parts, already counted in `_queued`), then
        what is queued, until the queue is empty or the kernel buffer is full. The caller owns
        `_sending` and holds no lock. On a full buffer the loop's writer takes over, and owns
        `_sending` until the queue is empty."""
        lock = self.lock
        out = self._out
        sock = self.sock
        ident = threading.get_ident()
        single = True
        size = 0
        rounds = 0
        if batch.__class__ is tuple:
            batch = list(batch)
            single = False
            size = sum(map(len, batch))
        while True:
            if batch is None:
                with lock:
                    if self.closed or not out:
                        self._stop_sending(ident)
                        return
                    if len(out) == 1:
                        batch = out.popleft()
                        single = True
                    else:
                        batch = [out.popleft() for _ in range(min(len(out), _IOV_BATCH))]
                        single = False
                        size = sum(map(len, batch))
                    self._sender = ident
            try:
                sent = sock.send(batch) if single else sock.sendmsg(batch)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                # The peer is gone; reading will see EOF and close the channel on the loop.
                sent = -1
            with lock:
                self._sender = 0
                if self._close_pending:
                    self._close_pending = False
                    sock.close()
                if sent < 0 or self.closed:
                    out.clear()
                    self._queued = 0
                    self._stop_sending(ident)
                    return
                self._queued -= sent
                if single:
                    rest = [memoryview(batch)[sent:]] if sent < len(batch) else None
                else:
                    rest = _unsent_many(batch, sent) if sent < size else None
                if not rest:
                    if not out:
                        self._sending = False
                        if self._writer_armed and ident == self._loop_thread:
                            self._writer_armed = False
                            self.loop.remove_writer(self.fd)
                        return
                    rounds += 1
                    if rounds < _SEND_ROUNDS:
                        batch = None
                        continue
                    # Other threads keep queueing: this one has its own request to finish, and
                    # the loop must get back to reading, so the loop's writer goes on from here.
                else:
                    # The kernel buffer is full: the loop's writer goes on once the front reads.
                    out.extendleft(reversed(rest))
                if ident == self._loop_thread:
                    if not self._writer_armed:
                        self._writer_armed = True
                        self.loop.add_writer(self.fd, self._flush)
                else:
                    try:
                        self.loop.call_soon_threadsafe(self._start_writer)
                    except RuntimeError:
                        pass  # the loop is closed: the worker is leaving
                return

    def _stop_sending(self, ident: int) -> None:
        # Caller holds self.lock.
        self._sending = False
        if self._writer_armed and ident == self._loop_thread:
            self._writer_armed = False
            self.loop.remove_writer(self.fd)

    def _start_writer(self) -> None:
        with self.lock:
            if not self.closed and self._sending and not self._writer_armed:
                self._writer_armed = True
                self.loop.add_writer(self.fd, self._flush)

    @property
    def backlog(self) -> int:
        """Bytes queued for the front and not yet accepted by the kernel, the loop's cork too."""
        cork = self._cork
        return self._queued + (sum(map(len, cork)) if cork else 0)

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
            elif ftype == _TRACED:
                from wasp.worker.freb import front_times

                front_times(payload)
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
            self._out.clear()
            self._queued = 0
            # A thread in the middle of a send still uses the descriptor: it closes it when its
            # send returns, so the number cannot be reused (by the next channel) under it.
            deferred = self._close_pending = self._sender not in (0, threading.get_ident())
            armed, self._writer_armed = self._writer_armed, False
            # Still under the lock, so a thread's deferred close comes after the loop let go of
            # the descriptor.
            try:
                self.loop.remove_reader(self.fd)
                if armed:
                    self.loop.remove_writer(self.fd)
            except (OSError, ValueError):
                pass
        for ctx in pending:
            ctx.cancel()
        if not deferred:
            self.sock.close()
        self._on_close(self)
