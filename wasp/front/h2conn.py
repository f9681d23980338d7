"""One HTTP/2 client connection (h2 over TLS by ALPN, or h2c with prior knowledge).

`h2.connection.H2Connection` (sans-I/O) parses and frames; this asyncio.Protocol drives it. Each
stream becomes the same `Request` an HTTP/1.1 connection builds (`version = "2"`), submitted to the
same pool queue; the worker link calls the same methods on `req.conn` as for HTTP/1.1
(`dispatched`, `on_window`, `on_response`, `on_response_body`, `on_response_end`, `on_file`,
`on_abort`, `on_abandoned`, `reject`): that set of callbacks is the interface both connection
kinds implement, each framing the response its own way.

Flow control both ways: request DATA is acknowledged to the client (WINDOW_UPDATE) only once it
went to the worker within the worker's stream window, so a slow app slows the client and the front
holds at most one stream window (64 KiB) per stream; response bytes are acknowledged to the worker
only once they went out as DATA within the client's window and the transport is not over its
high-water mark (h2response.py, the response half), so a client that never opens its window pins
at most one worker window per stream, and the connection is closed after `connection_timeout`
without progress (Timer_MinBytesPerSecond).

QoS as over HTTP/1.1 (qos.py): every byte written pays the connection's bandwidth buckets (in
debt, or with other connections waiting before it, writing and acknowledging pause until its turn,
`_unthrottle`; the streams take turns, a piece each), and while the transport is over its
high-water mark the minimum send rate applies to the connection's bytes. Cacheable streams are
looked up in, and their responses stored in, the response cache under HTTP/1.1's key.

Before `h2` sees a byte, `wasp.wire.h2rules.FrameScanner` checks the frame headers against the
flood budgets documented there; rapid reset is counted here. A broken budget closes the connection
with GOAWAY ENHANCE_YOUR_CALM; a protocol error with the GOAWAY `h2` chose (PROTOCOL_ERROR, ...).
A graceful stop sends GOAWAY with the last stream id, finishes the streams in flight, then closes.
"""

from __future__ import annotations

import asyncio

from h2.config import H2Configuration
from h2.connection import ConnectionState, H2Connection
from h2.errors import ErrorCodes
from h2.events import (DataReceived, RemoteSettingsChanged, RequestReceived,
                       StreamEnded, StreamReset, WindowUpdated)
from h2.exceptions import ProtocolError, StreamClosedError
from h2.settings import SettingCodes, Settings
from hyperframe.frame import GoAwayFrame

from wasp.errors import HttpError
from wasp.front.endings import RequestEndings
from wasp.front.h2request import H2RequestReader
from wasp.front.h2response import H2ResponseWriter, H2Stream
from wasp.front.qos import MIN_RATE_GRACE, MIN_RATE_TIMER, QosMixin
from wasp.front.request import ConnState, Request, Stage
from wasp.wire import w3c
from wasp.wire.h2rules import RESET_RATE, Flood, FrameScanner, TokenBucket
from wasp.wire.http import AppPoolUnavailable

#: The connection's receive window: room for several streams' uploads at once (each stream is
#: bounded by its own 64 KiB window, SETTINGS_INITIAL_WINDOW_SIZE's default).
CONNECTION_WINDOW = 1024 * 1024
#: After a GOAWAY for an error: how long to discard what the client still sends before closing
#: (connection.py's LINGER for HTTP/1.1 error pages).
LINGER = 2.0

_H2_CLOSED = ConnectionState.CLOSED
_CONFIG = H2Configuration(client_side=False, header_encoding=None, normalize_outbound_headers=False)
_OPEN = ConnState.OPEN
_CLOSING = ConnState.CLOSING
_CLOSED = ConnState.CLOSED


class Http2Connection(H2RequestReader, H2ResponseWriter, RequestEndings, QosMixin, asyncio.Protocol):
    #: A stopping front sends GOAWAY at once (no race with the client's next stream: HTTP/2
    #: says which streams were taken), unlike HTTP/1.1's idle grace (server.STOP_IDLE_GRACE).
    goaway_on_stop = True

    def __init__(self, server):
        self.server = server
        self.transport = None
        self.state = _OPEN
        self.peer = ("", 0)
        self.local = ("", 0)
        self.table = None
        self.c_ip = self.s_ip = b"-"
        self.s_port = b"0"
        self.deadline = 0.0
        self.timer = ""
        self.tls = None
        # qos.py's state: the site this connection is counted for, who a PROXY header named,
        # the bandwidth buckets every byte written pays (None: no limit; `_chunk` is the largest
        # DATA frame then), and the minimum send rate's count: bytes written since `_send_t0`.
        self.scheme = "http"
        self.proxied = False
        self.site_id = 0
        self._idle = server.idle_timeout
        self._buckets = None
        self._chunk = 0
        self._throttled = False    # waiting for its turn at the bandwidth: writing paused
        self._turn = False         # a bucket gave it its turn: the next piece goes out
        self._tpaused = False      # the transport is over its high-water mark
        self._sent = 0
        self._send_t0 = 0.0
        self.streams: dict[int, H2Stream] = {}
        self.h2 = H2Connection(config=_CONFIG)
        now = server.loop.time()
        raw = server.max_request_bytes + server.max_field_length
        self.scan = FrameScanner(raw, now)
        # An HPACK bomb (a small block that decodes huge) stops at twice the raw bound; headers
        # under that but over HTTP.sys's limits get 431 on their stream.
        self.h2.decoder.max_header_list_size = 2 * raw
        self._resets = TokenBucket(2 * server.h2_max_streams, RESET_RATE, now)
        self._write_paused = False
        self._goaway = False
        self._last_sid = 0
        self._idle_at = now
        self._header_at = now
        self._body_at = now
        self._send_at = now

    # ================================================================ setup
    def adopt(self, transport, conn, data: bytes) -> None:
        """Take over the transport of the HTTP/1.1 connection `conn`: its TLS handshake chose h2
        by ALPN, or its first bytes, `data`, are the HTTP/2 preface (h2c)."""
        self.transport = transport
        for name in ("peer", "local", "table", "c_ip", "s_ip", "s_port", "tls", "scheme", "proxied",
                     "site_id", "_idle", "_buckets", "_chunk"):
            setattr(self, name, getattr(conn, name))
        conn.site_id = 0     # the site count (taken at accept) is this connection's now
        server = self.server
        server.connections.discard(conn)
        server.connections.add(self)
        h2 = self.h2
        # ENABLE_CONNECT_PROTOCOL: WebSocket over HTTP/2 (RFC 8441 extended CONNECT).
        h2.local_settings = Settings(client=False, initial_values={
            SettingCodes.MAX_CONCURRENT_STREAMS: server.h2_max_streams,
            SettingCodes.ENABLE_CONNECT_PROTOCOL: 1})
        h2.initiate_connection()
        # The advertised limit is enforced here, stream by stream (REFUSED_STREAM, RFC 9113
        # §5.1.2), not by h2, which would end the whole connection.
        h2.local_settings = Settings(client=False, initial_values={
            SettingCodes.MAX_CONCURRENT_STREAMS: 2 ** 31 - 1, SettingCodes.ENABLE_CONNECT_PROTOCOL: 1})
        h2.increment_flow_control_window(CONNECTION_WINDOW - h2.inbound_flow_control_window)
        self._flush()
        if data:
            self.data_received(data)

    # ================================================================ asyncio callbacks
    def data_received(self, data: bytes) -> None:
        if self.state is not _OPEN:
            return
        now = self.server.loop.time()
        try:
            self.scan.feed(data, now)
        except Flood as flood:
            self._fail(flood.code, "H2_" + flood.reason)
            return
        if self.scan.block_started:
            self._header_at = now
        try:
            events = self.h2.receive_data(data)
        except ProtocolError as exc:
            # h2 queued its GOAWAY (PROTOCOL_ERROR, COMPRESSION_ERROR, ENHANCE_YOUR_CALM, ...).
            self._fail(None, "H2_" + type(exc).__name__)
            return
        if self.h2.state_machine.state is _H2_CLOSED:
            self._on_goaway_received()
            return
        for event in events:
            if self.state is not _OPEN:
                return
            kind = type(event)
            if kind is RequestReceived:
                self._on_request(event.stream_id, event.headers, event.stream_ended is not None)
            elif kind is DataReceived:
                self._on_data(event.stream_id, event.data, event.flow_controlled_length, now)
            elif kind is StreamEnded:
                self._on_stream_ended(event.stream_id)
            elif kind is WindowUpdated or kind is RemoteSettingsChanged:
                sid = getattr(event, "stream_id", 0)
                if sid and sid in self.streams:
                    self._pump(self.streams[sid])
                else:
                    for st in list(self.streams.values()):
                        self._pump(st)
            elif kind is StreamReset:
                self._on_reset(event.stream_id, now)
        self._flush()

    def connection_lost(self, exc) -> None:
        if self.state is _CLOSED:
            return
        self.state = _CLOSED
        self.server.connections.discard(self)
        self.server.connection_closed()
        self._leave_site()
        for st in list(self.streams.values()):
            self._drop(st.req)
        self.streams.clear()

    def eof_received(self):
        return False

    def pause_writing(self) -> None:
        self._write_paused = True
        self._tpaused = True
        self._rearm()   # the minimum send rate applies from now

    def resume_writing(self) -> None:
        self._tpaused = False
        self._rearm()
        if self._throttled:
            return   # in bandwidth debt: qos.py's _unthrottle resumes
        self._write_paused = False
        self._writable()

    def _writable(self) -> None:
        """Writing may go on (the transport drained, or a bandwidth debt is paid): the bytes held
        back are acknowledged to the workers and the streams send on."""
        for st in list(self.streams.values()):
            req = st.req
            if st.unacked and req.link is not None:
                n, st.unacked = st.unacked, 0
                req.link.send_window(req, n)
            self._pump(st)
        self._flush()

    # ================================================================ requests
    def _on_request(self, sid: int, headers, ended: bool) -> None:
        server = self.server
        if self._goaway or len(self.streams) >= server.h2_max_streams:
            try:
                self.h2.reset_stream(sid, ErrorCodes.REFUSED_STREAM)
            except StreamClosedError:
                pass   # h2 reset it already, for a later frame of this read (_stream_closed)
            if not self._goaway and not self._resets.take(server.loop.time()):
                # Streams opened past the limit again and again: the rapid reset budget too.
                self._fail(ErrorCodes.ENHANCE_YOUR_CALM, "H2_RapidReset")
            return
        self._last_sid = sid
        self._body_at = server.loop.time()
        req = Request(self, next(server.ids), server.loop.time())
        req.version = "2"
        st = H2Stream(sid, req)
        req.h2 = st
        self.streams[sid] = st
        try:
            self._head(req, headers, ended)
        except HttpError as err:
            req.body_done = ended
            self._send_error(req, err)
            return
        if req.answer is not None:
            self._answer_rewrite(req)
            return
        if req.pool is None:
            self._send_error(req, AppPoolUnavailable("N/A"))
            return
        self._submit(req)

    def _on_reset(self, sid: int, now: float) -> None:
        st = self.streams.pop(sid, None)
        if st is None:
            return
        in_flight = st.req.stage is not Stage.DONE
        self._drop(st.req)
        if in_flight and not self._resets.take(now):
            self._fail(ErrorCodes.ENHANCE_YOUR_CALM, "H2_RapidReset")

    def _on_goaway_received(self) -> None:
        """The client sent GOAWAY (whatever its code). h2 takes it as the end of the connection:
        its state machine is CLOSED and it frames nothing more, neither the answers of streams in
        flight nor those of requests that came before the GOAWAY in the same read (found by
        fuzz/http2.py: a worker's answer raised ProtocolError). So the front ends the connection
        as for a client that went away: the streams are dropped (their workers get CANCEL)."""
        self._goaway = True
        self._abort()

    # ================================================================ endings
    def _finish(self, req: Request) -> None:
        """The stream's response is complete: log it, forget the stream."""
        st = req.h2
        req.stage = Stage.DONE
        if st.log:
            self.server.log_access(self, req)
        if self.streams.get(st.sid) is st and st.reset_after:
            # The client was still sending a body we answered without: stop it (RFC 9113 §8.1).
            try:
                self.h2.reset_stream(st.sid, ErrorCodes.NO_ERROR)
            except StreamClosedError:
                pass   # its END_STREAM came in the same read, after the HEADERS just answered
        self._forget(st)

    def _forget(self, st: H2Stream) -> None:
        req = st.req
        if self.streams.get(st.sid) is st:
            del self.streams[st.sid]
        if st.file is not None:
            st.file.close()
            st.file = None
        st.out.clear()
        req.body_buf = None
        if not self.streams and self.state is _OPEN:
            self._idle_at = self.server.loop.time()
            if self._goaway:
                self._close()

    def _stop(self, req: Request) -> Stage:
        """Take the request off its queue or worker; returns the stage it was in."""
        stage = req.stage
        if stage is Stage.QUEUED:
            self.server.dispatcher.withdraw(req)
        link = req.link
        if link is not None and link.owns(req):
            link.cancel(req)
        req.stage = Stage.DONE
        return stage

    def _drop(self, req: Request) -> None:
        """The client is gone (or reset the stream): stop the request wherever it is."""
        st = req.h2
        stage = self._stop(req)
        if stage is Stage.SENDING:
            req.win32 = w3c.ERROR_NETNAME_DELETED
            if st.log:
                self.server.log_access(self, req)
        elif stage is Stage.QUEUED or stage is Stage.EXECUTING:
            self.server.log_error(self, req, None, "Connection_Dropped")
        self._forget(st)

    def _cut(self, req: Request, logged: bool = False, code=ErrorCodes.INTERNAL_ERROR) -> None:
        """A response that cannot be completed (or a refused stream): the client sees its stream
        reset; the connection's other streams go on."""
        st = req.h2
        open_ = not self._stream_closed(st)
        stage = self._stop(req)
        if stage is not Stage.DONE and st.log and not logged:
            req.win32 = w3c.ERROR_NETNAME_DELETED
            self.server.log_access(self, req)
        self._forget(st)
        if open_:
            try:
                self.h2.reset_stream(st.sid, code)
            except (StreamClosedError, ProtocolError):
                pass
            self._flush()

    # ================================================================ connection endings
    def _flush(self) -> None:
        """Write what h2 framed; set the connection's deadline for what it waits for now."""
        data = self.h2.data_to_send()
        if data and self.state is not _CLOSED:
            self._sent += len(data)
            self.transport.write(data)
            if self._buckets is not None:
                self._spend(len(data))
        self._rearm()

    def _fail(self, code, reason: str) -> None:
        """A flood or protocol error: GOAWAY, log, close; the streams in flight are dropped."""
        if self.state is not _OPEN:
            return
        if code is not None:
            try:
                self.h2.close_connection(error_code=code, last_stream_id=self._last_sid)
            except ProtocolError:
                pass
        self.server.log_error(self, None, None, reason)
        self._flush()
        transport = self.transport
        if not transport.can_write_eof():
            self._abort()
            return
        # Shut down writing and discard input for a while, so the client reads the GOAWAY rather
        # than a reset caused by what it is still sending.
        self.state = _CLOSING
        transport.write_eof()
        for st in list(self.streams.values()):
            self._drop(st.req)
        self.deadline = self.server.loop.time() + LINGER
        self.timer = ""

    def _abort(self) -> None:
        if self.state is _OPEN:
            self.state = _CLOSING
            self.deadline = 0.0
            self.transport.close()   # what is buffered (the GOAWAY) is still flushed
            for st in list(self.streams.values()):
                self._drop(st.req)

    def abort(self) -> None:
        self._abort()

    def _close(self) -> None:
        if self.state is _OPEN:
            self._flush()
            self._abort()

    def close_if_idle(self) -> None:
        """The front is stopping: GOAWAY (NO_ERROR, the last stream taken), finish the streams
        in flight, then close. Streams the client opens later are refused."""
        if self._goaway or self.state is not _OPEN:
            return
        self._goaway = True
        self._flush()
        self.transport.write(GoAwayFrame(0, last_stream_id=self._last_sid, error_code=0).serialize())
        if not self.streams:
            self._abort()

    def _rearm(self) -> None:
        """The connection's one deadline for the sweep: header block, idle, body or send stall."""
        if self.state is not _OPEN:
            return
        server = self.server
        if self.scan.in_header_block:
            self.deadline = self._header_at + server.header_wait
            self.timer = "Timer_HeaderWait"
            return
        rate = server.min_rate
        if self._tpaused and rate:
            # The client does not take what was written: qos.py's rule, as over HTTP/1.1, for
            # the connection's bytes since it started sending (`_begin_send`).
            self.deadline = self._send_t0 + MIN_RATE_GRACE + self._sent / rate
            self.timer = MIN_RATE_TIMER
            return
        if not self.streams:
            self.deadline = self._idle_at + server.idle_timeout
            self.timer = "Timer_ConnectionIdle"
            return
        deadline = 0.0
        timer = ""
        for st in self.streams.values():
            req = st.req
            if st.out or st.file is not None:
                deadline = self._send_at + server.idle_timeout
                timer = "Timer_MinBytesPerSecond"
                break
            if not req.body_done and not req.body_buf and req.headers_done and not req.websocket:
                # (a WebSocket's stream is quiet as long as its users are: no timer, as HTTP/1.1)
                deadline = self._body_at + server.idle_timeout
                timer = "Timer_EntityBody"
        self.deadline = deadline
        self.timer = timer

    def on_timer(self, now: float) -> None:
        self.deadline = 0.0
        if self.state is _CLOSING:
            self.transport.close()
            return
        if self.state is not _OPEN:
            return
        self._rearm()
        if self.deadline > now:
            return   # progress since the deadline was set
        self._fail(ErrorCodes.NO_ERROR, self.timer or "Timer_ConnectionIdle")

    def pending_requests(self) -> list[Request]:
        return [st.req for st in self.streams.values()]

    @property
    def idle(self) -> bool:
        return self.state is _OPEN and not self.streams
