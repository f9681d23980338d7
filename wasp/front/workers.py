"""The front's end of one worker's data channel (docs/internals.md, "Data channel frames").

A WorkerLink multiplexes the requests dispatched to one worker over one Unix socket: it numbers
streams, writes REQUEST/BODY/END/WINDOW/CANCEL/DRAIN frames, and hands the worker's frames to the
connection that owns each stream. Frames are parsed in bulk (one `FrameReader.feed` per read) and
gathered per loop turn and written with one `transport.write` (uvloop writes at once on every
call, so without the cork each request would cost the front a syscall and the worker a wake-up).
"""

from __future__ import annotations

import asyncio
from enum import Enum

from wasp.common.scoreboard import INFLIGHT, WORKER_SLOTS
from wasp.front.request import Stage
from wasp.wire import frames as fr
from wasp.wire.frames import FLAG_FIN, FrameType, RequestHead

_RESPONSE = int(FrameType.RESPONSE)
_BODY = int(FrameType.BODY)
_END = int(FrameType.END)
_WINDOW = int(FrameType.WINDOW)
_FILE = int(FrameType.FILE)
_ABORT = int(FrameType.ABORT)
_HELLO = int(FrameType.HELLO)
_CACHE = int(FrameType.CACHE)
_USER = int(FrameType.USER)
_MODULES = int(FrameType.MODULES)
_TRACE = int(FrameType.TRACE)

_STREAM_LIMIT = 2 ** 32
_EXECUTING = Stage.EXECUTING   # globals: an enum member lookup costs a call on Python 3.11

_METHODS = {m.encode(): m for m in (
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT")}


class LinkState(Enum):
    WAITING_HELLO = "WaitingHello"
    ACTIVE = "Active"
    DRAINING = "Draining"
    CLOSED = "Closed"


_LINK_MOVES = {
    LinkState.WAITING_HELLO: {LinkState.ACTIVE, LinkState.DRAINING, LinkState.CLOSED},
    LinkState.ACTIVE: {LinkState.DRAINING, LinkState.CLOSED},
    LinkState.DRAINING: {LinkState.CLOSED},
    LinkState.CLOSED: set(),
}


_ACTIVE = LinkState.ACTIVE


class IllegalLinkMove(RuntimeError):
    pass


class WorkerLink(asyncio.Protocol):
    """One worker. `server` is the front's Server (dispatcher, links registry)."""

    def __init__(self, server, pool_name: str, worker_id: int, pid: int, slot: int | None = None):
        self.server = server
        # This worker's in-flight cell in the scoreboard: every front's requests on it count
        # against its capacity. Without a slot from the manager (a lone front), its worker id.
        self.board = board = server.dispatcher.board
        #: Other fronts read this worker's cell: publish to it and count theirs. A lone front
        #: skips both (nobody else reads its cells), so it pays one attribute test per request.
        self.shared = board.shared
        self.cell = INFLIGHT + (slot if slot is not None else worker_id % WORKER_SLOTS)
        board.set(self.cell, 0)  # the slot may have served an earlier worker: start from nothing
        self.pool_name = pool_name
        self.worker_id = worker_id
        self.pid = pid
        self.state = LinkState.WAITING_HELLO
        self.capacity = 0
        #: the applications its HELLO named (None: not said, every application of the pool)
        self.apps: frozenset[str] | None = None
        self.inflight = 0
        self.served = 0
        self.streams: dict = {}
        self.transport = None
        self._write = None
        self._cork: list = []
        self._loop = server.loop
        self._next = 1
        self._reader = fr.FrameReader(views=True)   # large bodies as views of the read, not copies
        self._ended = 0          # streams that ended in the frames being handled
        self._last = None        # the request of the frame being handled (for fault reports)

    def move(self, state: LinkState) -> None:
        if state not in _LINK_MOVES[self.state]:
            raise IllegalLinkMove(f"worker {self.worker_id}: {self.state.value} -> {state.value}")
        self.state = state

    @property
    def free(self) -> int:
        if self.state is _ACTIVE:
            if self.shared:
                return self.capacity - self.inflight - self.board.others(self.cell)
            return self.capacity - self.inflight
        return 0

    def claim(self) -> bool:
        """Reserve a place for the next `dispatch` (across every front: scoreboard.reserve)."""
        if self.shared:
            return self.board.reserve(self.cell, self.inflight + 1, self.capacity)
        return self.inflight < self.capacity

    # ---- asyncio ----
    def connection_made(self, transport) -> None:
        self.transport = transport
        self._write = self._corked_write
        if self.state is LinkState.DRAINING:
            self._write(fr.pack_drain())

    def _corked_write(self, data: bytes) -> None:
        # Requests from many client connections read in one loop turn go to the worker in one
        # write (and wake it once), not one syscall each.
        cork = self._cork
        if not cork:
            self._loop.call_soon(self._uncork)
        cork.append(data)

    def _uncork(self) -> None:
        cork = self._cork
        transport = self.transport
        if cork and transport is not None and not transport.is_closing():
            transport.write(cork[0] if len(cork) == 1 else b"".join(cork))
        cork.clear()

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._reader.feed(data)
        except fr.ProtocolError:
            self.transport.close()
            return
        self._ended = 0
        for frame in frames:
            try:
                self._frame(*frame)
            except fr.ProtocolError:
                self._broke_protocol()
                break
            except Exception as exc:
                # A bug with one request must not cost the worker's other requests.
                req = self.streams.pop(frame[2], None)
                if req is not None:
                    self._ended += 1
                else:
                    req = self._last
                self.server.fault(exc, req.conn if req is not None else None)
        if self._ended:
            self._released(self._ended)

    def _broke_protocol(self) -> None:
        """A payload that does not decode: the worker broke the protocol, so its channel cannot be
        trusted. The request of that frame is answered 502 (IIS's bad-gateway answer); the others
        in flight are abandoned (503) when the channel's close completes."""
        req = self._last
        if req is not None:
            if self.streams.get(req.stream) is req:
                del self.streams[req.stream]
                self._ended += 1
            if req.stage is not Stage.DONE:
                req.conn.on_abort(req, 502)
        self.server.dispatcher.worker_gone(self)   # as at EOF: nothing more is sent to it
        self.transport.close()

    def _frame(self, ftype: int, flags: int, sid: int, payload: bytes) -> None:
        """Hand one frame to its stream's connection; count streams that end in `_ended`."""
        streams = self.streams
        if ftype == _RESPONSE:
            req = self._last = streams.get(sid)
            if req is None:
                return
            if flags & FLAG_FIN:
                del streams[sid]
                self._ended += 1
                req.conn.on_response(req, payload, True)
            else:
                req.conn.on_response(req, payload, False)
        elif ftype == _BODY:
            req = self._last = streams.get(sid)
            if req is not None:
                req.conn.on_response_body(req, payload)
        elif ftype == _WINDOW:
            req = self._last = streams.get(sid)
            if req is not None:
                req.conn.on_window(req, fr.unpack_window(payload))
        elif ftype == _END:
            req = self._last = streams.pop(sid, None)
            if req is not None:
                self._ended += 1
                req.conn.on_response_end(req)
        elif ftype == _FILE:
            req = self._last = streams.pop(sid, None)
            if req is not None:
                self._ended += 1
                req.conn.on_file(req, fr.unpack_file(payload))
        elif ftype == _ABORT:
            req = self._last = streams.pop(sid, None)
            if req is not None:
                self._ended += 1
                req.conn.on_abort(req, fr.unpack_abort(payload), fr.abort_substatus(payload))
        elif ftype == _HELLO:
            self._last = None
            self._hello(payload)
        elif ftype == _CACHE:
            req = self._last = streams.get(sid)
            if req is not None and req.cache_key is not None:
                try:
                    req.cache_hint = fr.unpack_cache(payload)
                except Exception:
                    req.cache_hint = None  # a hint we cannot read: the response is not cached
        elif ftype == _USER:
            req = self._last = streams.get(sid)
            if req is not None:
                try:
                    name, _auth_type = fr.unpack_user(payload)
                except fr.ProtocolError:
                    self._broke_protocol()
                    return
                req.user = name.encode("utf-8")
        elif ftype == _MODULES:
            req = self._last = streams.get(sid)
            if req is not None:
                try:
                    req.modules = fr.unpack_modules(payload)
                except fr.ProtocolError:
                    self._broke_protocol()
                    return
        elif ftype == _TRACE:
            req = self._last = streams.get(sid)
            if req is not None:
                try:
                    req.freb = (fr.unpack_trace(payload), self.server.loop.time(), self)
                except fr.ProtocolError:
                    self._broke_protocol()
                    return

    def eof_received(self):
        # The worker's end closed: it exited or was killed. Nothing more goes to it from now on:
        # the transport's close runs connection_lost only on the next loop turn, and a request
        # read in this turn would otherwise be sent to a dead worker and come back 503 Abandoned
        # instead of waiting in the queue for the worker that replaces it.
        self.server.dispatcher.worker_gone(self)
        return None

    def connection_lost(self, exc) -> None:
        if self.state is not LinkState.CLOSED:
            self.move(LinkState.CLOSED)
        server = self.server
        server.dispatcher.worker_gone(self)
        current = server.links.get(self.worker_id)
        if current is self:
            del server.links[self.worker_id]
        abandoned = list(self.streams.values())
        self.streams.clear()
        self.inflight = 0
        if current is self or current is None:  # a newer link of the worker owns the cell now
            self.board.set(self.cell, 0)
        for req in abandoned:
            req.conn.on_abandoned(req)

    # ---- frames from the worker ----
    def _hello(self, payload: bytes) -> None:
        try:
            hello = fr.unpack_hello(payload)
        except Exception:
            self.transport.close()
            return
        self.capacity = max(1, hello.capacity)
        self.apps = frozenset(hello.apps) if hello.apps is not None else None
        if self.pid == 0:
            self.pid = hello.pid
        if self.state is LinkState.WAITING_HELLO:
            self.move(LinkState.ACTIVE)
            self.server.dispatcher.worker_ready(self)
        elif self.state is LinkState.ACTIVE:
            self.server.dispatcher.worker_ready(self)   # its application set may have changed

    def _released(self, count: int) -> None:
        self.inflight -= count
        if self.shared:
            self.board.set(self.cell, self.inflight)
        self.served += count
        pool = self.server.dispatcher.pools.get(self.pool_name)
        if pool is not None:
            pool.served += count
            if pool.queue and self.state is LinkState.ACTIVE:
                self.server.dispatcher.pump(pool)

    def _pump(self) -> None:
        pool = self.server.dispatcher.pools.get(self.pool_name)
        if pool is not None and pool.queue:
            self.server.dispatcher.pump(pool)

    # ---- frames to the worker ----
    def dispatch(self, req) -> None:
        """Send `req` on a place `claim()` reserved."""
        sid = self._next
        while sid in self.streams:
            sid = sid % (_STREAM_LIMIT - 1) + 1
        self._next = sid % (_STREAM_LIMIT - 1) + 1
        req.link = self
        req.stream = sid
        req.window = fr.INITIAL_WINDOW
        self.streams[sid] = req
        self.inflight += 1
        req.move(_EXECUTING)
        conn = req.conn
        method = req.method
        tls = conn.tls
        head = RequestHead(req.app.key, _METHODS.get(method) or method.decode("latin-1"), req.target,
                           req.path, req.query, req.version, req.headers, req.client or conn.peer, conn.local,
                           req.scheme or ("https" if tls is not None else conn.scheme), req.content_length,
                           req.websocket, False, tls,
                           proxied=conn.proxied or req.client is not None or req.scheme is not None,
                           rewritten=req.rewritten, proxy_url=req.proxy_url)
        has_body = req.chunked or req.content_length > 0
        if req.trace is None:
            self._write(fr.pack_request(sid, head, has_body))
        else:  # tracing: the front's span goes with the head (front/tracing.py)
            self._write(fr.pack_traced_request(sid, head, has_body, req.trace[2], req.trace[3]))
        if has_body or req.expect:
            conn.dispatched(req)

    def send_traced(self, token: int, until_answer: float, after: float, sent: int) -> None:
        """A traced request's times, once its response went out (FREB, docs/freb.md)."""
        if self.state is not LinkState.CLOSED:
            self._write(fr.pack_traced(token, max(0, int(until_answer * 1e6)),
                                       max(0, int(after * 1e6)), sent))

    def send_body(self, req, data: bytes) -> None:
        self._write(fr.pack_body(req.stream, data))

    def send_end(self, req) -> None:
        self._write(fr.pack_end(req.stream))

    def send_window(self, req, increment: int) -> None:
        if req.stream in self.streams:
            self._write(fr.pack_window(req.stream, increment))

    def cancel(self, req) -> None:
        """The client went away: tell the worker and free the slot now."""
        if self.streams.pop(req.stream, None) is None:
            return
        if self.state is not LinkState.CLOSED:
            self._write(fr.pack_cancel(req.stream))
        self._released(1)

    def drain(self) -> None:
        """`worker_drain`: nothing more is dispatched here; DRAIN goes after what already was."""
        if self.state in (LinkState.WAITING_HELLO, LinkState.ACTIVE):
            self.move(LinkState.DRAINING)
            self.server.dispatcher.worker_gone(self)
            if self.transport is not None:
                self._write(fr.pack_drain())

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def owns(self, req) -> bool:
        return self.streams.get(req.stream) is req
