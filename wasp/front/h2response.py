"""The response half of an HTTP/2 connection: a worker's RESPONSE/BODY/END/FILE frames as
HEADERS and DATA on the request's stream, within the client's flow-control windows.

`H2ResponseWriter` is mixed into `Http2Connection` (h2conn.py), which owns the state it uses, as
`ResponseWriter` is for HTTP/1.1. Response bytes wait in the stream's `out` until the client's
stream and connection windows take them, a frame at a time; they are acknowledged to the worker
(`WINDOW`) only once sent and while the transport is under its high-water mark, so what waits is
bounded by the worker's window per stream. Files are read in frame-sized chunks as the windows
allow.
"""

from __future__ import annotations

import os
from collections import deque

from h2.errors import ErrorCodes
from h2.exceptions import ProtocolError, StreamClosedError

from wasp.errors import HttpError
from wasp.front import rewriting
from wasp.front.request import ConnState, Request, Stage
from wasp.front.response import FileSpanSender
from wasp.wire.frames import unpack_response
from wasp.wire.h2rules import response_fields, websocket_accepted
from wasp.wire.http import AppPoolUnavailable, error_body

#: Response bytes handed to the transport before the pump checks its high-water mark again.
PUMP_BATCH = 64 * 1024
#: Largest DATA frame sent (and file read), whatever SETTINGS_MAX_FRAME_SIZE (up to 16 MiB) allows.
MAX_DATA_FRAME = 64 * 1024
#: Errors IIS logs in the site's W3C log (as connection.py's); the others go to HTTPERR.
W3C_REASONS = frozenset({"EntityTooLarge", "Internal", "WorkerAbort", "SslRequired", "CertRequired"})
_OPEN = ConnState.OPEN


class H2Stream:
    """The HTTP/2 side of one request: response bytes waiting for the client's window."""

    __slots__ = ("sid", "req", "out", "end", "unacked", "file", "log", "reset_after", "sent")

    def __init__(self, sid: int, req: Request):
        self.sid = sid
        self.req = req
        self.out: deque[bytes] = deque()   # response DATA not sent yet (bounded by the worker window)
        self.end = False         # END_STREAM once `out` (and `file`) are sent
        self.unacked = 0         # bytes sent to the client, not yet acknowledged to the worker
        self.file: FileSpanSender | None = None
        self.log = True          # W3C line at the end (False: the HTTPERR line is written)
        self.reset_after = False  # answered before the body ended: RST_STREAM NO_ERROR after
        self.sent = 0            # bytes of the stream's HEADERS and DATA frames (the W3C sc-bytes)


class H2ResponseWriter:
    """Mixin: the worker link calls on_response / on_response_body / on_response_end / on_file."""

    def _fields(self, status: int, fields: list, named: int, length: int, req: Request) -> list:
        server = self.server
        out = [(b":status", b"%d" % status)]
        out += fields
        if server.server_header and not named & 2:
            out.append((b"server", server.server_header))
        if not named & 4:
            out.append((b"date", server.date))
        if length >= 0 and not named & 1 and not req.no_body:
            out.append((b"content-length", b"%d" % length))
        req.resp_headers = out
        return out

    def _send_headers(self, st: H2Stream, head: list, end: bool = False) -> None:
        """HEADERS on the stream; the bytes h2 framed for it count in the stream's sc-bytes."""
        h2 = self.h2
        before = len(h2._data_to_send)
        h2.send_headers(st.sid, head, end_stream=end)
        st.sent += len(h2._data_to_send) - before

    def on_response(self, req: Request, payload: bytes, fin: bool) -> None:
        substatus, length, block, body = unpack_response(payload)
        if type(body) is not bytes:
            body = bytes(body)   # a view of the worker link's read: h2 frames bytes
        try:
            status, fields, named = response_fields(block)
        except ValueError:
            status = 0
        if status == 101 and req.websocket and not fin:
            self._start_tunnel(req, fields)
            return
        if status < 200:
            self.on_abort(req, 502)   # no other 101 nor interim answers from a worker over HTTP/2
            return
        req.status = status
        req.substatus = substatus
        req.no_body = req.is_head or status == 204 or status == 304
        st = req.h2
        self._send_at = self.server.loop.time()
        self._begin_send(st)
        if fin and length < 0 and not req.is_head:
            length = len(body)
        if fin and req.cache_hint is not None and req.cache_admit and status == 200 and not req.is_head \
                and length == len(body):
            self.server.cache_response(req, block, body)
        head = self._fields(status, fields, named, length, req)
        if self._stream_closed(st):
            self._drop(req)
            return
        end = req.no_body or (fin and not body)
        self._send_headers(st, head, end)
        if end:
            self._finish(req)
        else:
            req.move(Stage.SENDING)
            if body:
                st.out.append(body)
            st.end = fin
            self._pump(st)
        self._flush()

    def _start_tunnel(self, req: Request, fields: list) -> None:
        """The worker accepted a WebSocket (RFC 8441): 200 without END_STREAM, then its BODY
        frames go out as DATA (and the client's DATA to it as BODY) until either side ends."""
        st = req.h2
        if self._stream_closed(st):
            self._drop(req)
            return
        server = self.server
        req.status = 200
        self._send_at = server.loop.time()
        self._begin_send(st)
        head = [(b":status", b"200"), *websocket_accepted(fields)]
        named = {name for name, _ in head}
        if server.server_header and b"server" not in named:
            head.append((b"server", server.server_header))
        if b"date" not in named:
            head.append((b"date", server.date))
        self._send_headers(st, head)
        req.move(Stage.SENDING)
        self._flush()

    def on_response_body(self, req: Request, data: bytes) -> None:
        if req.no_body:
            req.link.send_window(req, len(data))
            return
        if type(data) is not bytes:
            data = bytes(data)
        st = req.h2
        if not st.out:
            self._send_at = self.server.loop.time()
        st.out.append(data)
        self._pump(st)
        self._flush()

    def on_response_end(self, req: Request) -> None:
        if req.stage is not Stage.SENDING:
            self.on_abort(req, 502)
            return
        st = req.h2
        st.end = True
        self._pump(st)
        self._flush()

    def on_file(self, req: Request, span) -> None:
        block = span.status_and_headers
        try:
            status, fields, named = response_fields(block)
        except ValueError:
            self.on_abort(req, 502)
            return
        req.status = status
        req.no_body = req.is_head or status == 204 or status == 304
        st = req.h2
        self._send_at = self.server.loop.time()
        self._begin_send(st)
        length = span.length
        head = self._fields(status, fields, named, length, req)
        if self._stream_closed(st):
            self._drop(req)
            return
        if req.cache_hint is not None and req.cache_admit and status == 200 and not req.is_head:
            data = self.server.cache_file(req, block, span)
            if data is not None:   # stored: its bytes go out as DATA like a body
                self._send_headers(st, head)
                req.move(Stage.SENDING)
                st.out.append(data)
                st.end = True
                self._pump(st)
                self._flush()
                return
        if req.no_body or length <= 0:
            self._send_headers(st, head, True)
            self._finish(req)
            self._flush()
            return
        try:
            fd = os.open(span.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self._send_error(req, HttpError("cannot open the file to send", status=500, reason="Internal"))
            return
        self._send_headers(st, head)
        req.move(Stage.SENDING)
        st.file = FileSpanSender(fd, span.offset, length, False)
        st.end = True
        self._pump(st)
        self._flush()

    def _send_cached(self, req: Request, entry) -> None:
        """Answer a stream from the response cache (no worker): HEADERS + DATA, HEADERS alone for
        HEAD, or 304 when the request's validators match the entry's ETag / Last-Modified."""
        st = req.h2
        if self._stream_closed(st):
            self._drop(req)
            return
        self._send_at = self.server.loop.time()
        self._begin_send(st)
        if (req.inm is not None or req.ims is not None) and entry.not_modified(req.inm, req.ims):
            block, length = entry.block_304, -1
        else:
            block, length = entry.block, len(entry.body)
        status, fields, named = response_fields(block)
        req.status = status
        head = self._fields(status, fields, named, length, req)   # (HEAD keeps content-length)
        req.no_body = req.is_head or status == 304
        if req.no_body:
            self._send_headers(st, head, True)
            self._finish(req)
        else:
            self._send_headers(st, head)
            req.move(Stage.SENDING)
            st.out.append(entry.body)
            st.end = True
            self._pump(st)
        self._flush()

    def _begin_send(self, st: H2Stream) -> None:
        """A response starts: the minimum send rate counts from now unless the connection is
        still sending (another stream's bytes, or a transport the client has not drained)."""
        if not self.server.min_rate or self._tpaused:
            return
        for other in self.streams.values():
            if other is not st and (other.out or other.file is not None):
                return
        self._send_t0 = self.server.loop.time()
        self._sent = 0

    def _stream_closed(self, st: H2Stream) -> bool:
        """The stream takes no more frames. While the events of one read are handled, h2 may
        have closed it already for a later frame of that read (a HEADERS on a half-closed stream:
        it sent RST_STREAM itself, and the StreamReset event comes after): ask h2 too."""
        if self.state is not _OPEN or self.streams.get(st.sid) is not st:
            return True
        stream = self.h2.streams.get(st.sid)
        return stream is None or stream.closed

    def _pump(self, st: H2Stream) -> None:
        """Send what the stream has within the client's windows, a frame at a time; the bytes
        sent are acknowledged to the worker while the transport is under its high-water mark."""
        h2 = self.h2
        req = st.req
        sid = st.sid
        sent = 0
        limited = self._buckets is not None
        batch = self._chunk if limited else PUMP_BATCH
        wrote = False
        while (st.out or st.file is not None) and not self._write_paused:
            if self._stream_closed(st):
                return
            try:
                room = min(h2.local_flow_control_window(sid), h2.max_outbound_frame_size, MAX_DATA_FRAME)
            except (StreamClosedError, ProtocolError, KeyError):
                self._cut(req)
                return
            if limited and room > self._chunk:
                room = self._chunk   # pieces of 1/8 s of the rate, each paid (_flush) before the next
            if room <= 0:
                break
            if limited and not self._clear():
                if wrote:
                    # Its piece is out: the connection's next turn is the next stream's.
                    self.streams[sid] = self.streams.pop(sid)
                break
            if st.out:
                chunk = st.out[0]
                if len(chunk) > room:
                    st.out[0] = chunk[room:]
                    chunk = chunk[:room]
                else:
                    st.out.popleft()
                st.unacked += len(chunk)
            else:
                sender = st.file
                try:
                    chunk = os.pread(sender.fd, min(room, sender.remaining), sender.offset)
                except OSError:
                    chunk = b""
                if not chunk:
                    self._cut(req)   # the file shrank: the promised length cannot be sent
                    return
                sender.offset += len(chunk)
                sender.remaining -= len(chunk)
                if not sender.remaining:
                    sender.close()
                    st.file = None
            last = st.end and not st.out and st.file is None
            h2.send_data(sid, chunk, end_stream=last)
            st.sent += 9 + len(chunk)
            wrote = True
            self.scan.data_frames_sent += 1
            sent += len(chunk)
            if last:
                self._finish(req)
                return
            if sent >= batch:
                self._flush()   # (pays the buckets: a debt pauses writing, which ends the loop)
                sent = 0
        if sent or st.unacked:
            self._send_at = self.server.loop.time()
        if st.unacked and not self._write_paused and req.link is not None:
            n, st.unacked = st.unacked, 0
            req.link.send_window(req, n)
        if st.end and not st.out and st.file is None and not self._stream_closed(st):
            h2.end_stream(sid)
            self._finish(req)

    def _answer_rewrite(self, req: Request) -> None:
        """A global URL Rewrite rule's redirect or custom response on a stream; an abort resets it."""
        server = self.server
        st = req.h2
        answer = req.answer
        if answer == rewriting.ABORT:
            req.status, req.substatus, req.win32 = 0, 0, 64
            self._cut(req, code=ErrorCodes.CANCEL)
            return
        req.status, req.substatus = answer[0], answer[1]
        if self._stream_closed(st):
            self._drop(req)
            return
        body = answer[3]
        head = [(b":status", b"%d" % answer[0])]
        head += [(name.lower(), value) for name, value in answer[2]]
        if server.server_header:
            head.append((b"server", server.server_header))
        head += [(b"date", server.date), (b"content-length", b"%d" % len(body))]
        req.no_body = req.is_head or not body
        st.reset_after = not req.body_done
        self._send_headers(st, head, req.no_body)
        if req.no_body:
            self._finish(req)
        else:
            req.stage = Stage.SENDING
            st.out.append(body)
            st.end = True
            self._pump(st)
        self._flush()

    def _send_error(self, req: Request, err: HttpError) -> None:
        """The one place an HttpError becomes a response on a stream."""
        server = self.server
        req.status = err.status
        req.substatus = err.substatus
        if req.stage is Stage.QUEUED:
            server.dispatcher.withdraw(req)
        elif req.link is not None and req.link.owns(req):
            req.link.cancel(req)
        st = req.h2
        if err.reason not in W3C_REASONS:
            server.log_error(self, req, err.status, err.reason)
            st.log = False
        if self._stream_closed(st):
            self._drop(req)
            return
        if req.stage is Stage.SENDING or (isinstance(err, AppPoolUnavailable) and err.close):
            # tcp_level: the stream is refused, not answered (the other streams go on).
            self._cut(req, logged=not st.log, code=ErrorCodes.REFUSED_STREAM)
            return
        body = error_body(err.status, err.reason)
        head = [(b":status", b"%d" % err.status), (b"content-type", b"text/html; charset=us-ascii")]
        if server.server_header:
            head.append((b"server", server.server_header))
        head += [(b"date", server.date), (b"content-length", b"%d" % len(body))]
        req.no_body = req.is_head
        st.reset_after = not req.body_done
        self._send_headers(st, head, req.is_head)
        if req.is_head:
            self._finish(req)
        else:
            req.stage = Stage.SENDING
            st.out.append(body)
            st.end = True
            self._pump(st)
        self._flush()
