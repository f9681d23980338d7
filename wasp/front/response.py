"""The response half of a client connection: heads, streamed bodies, files, WebSocket tunnels.

`ResponseWriter` is mixed into `HttpConnection` (connection.py), which owns the state it uses.
The front writes `HTTP/1.1 ` + the worker's block + its own Content-Length or chunked framing,
Server (unless the app named one), Date (cached once a second) and Connection, then the body.
Response bytes are acknowledged to the worker (WINDOW) only while the client transport is under its
high-water mark, else at `resume_writing`, so a slow client slows the app, not the front's memory.
Files go out with os.sendfile when the transport has nothing buffered.

On a connection with a bandwidth limit (qos.py) every byte goes through `_put`: held in `_held`
in order, written a piece of the rate at a time when the connection's turn comes (`_release`),
and a body's bytes are acknowledged to the worker only once written; a file is read only once
what precedes it is written. So nothing passes the buckets, whatever the worker sends ahead
within its window or inline.
"""

from __future__ import annotations

import os
import re

from collections import deque

from wasp.errors import HttpError
from wasp.front.request import ConnState, Request, Stage
from wasp.wire.frames import unpack_response

#: Files up to this size are read and written with the head in one write; larger ones use sendfile.
SMALL_FILE = 64 * 1024
FILE_CHUNK = 256 * 1024
#: When the socket is full, this much goes through the transport while sendfile waits.
FILE_PRIMER = 64 * 1024
SENDFILE_MAX = 8 * 1024 * 1024
#: Bytes one connection may sendfile before the loop serves others.
SENDFILE_TURN = 32 * 1024 * 1024
#: An inline body this large goes out with the head in one writev rather than joined to it.
LARGE_BODY = 16 * 1024
#: Tunnel bytes from the client held for the worker before the front stops reading.
TUNNEL_BUFFER_LIMIT = 64 * 1024

_LAST_CHUNK = b"0\r\n\r\n"
_NAMED = re.compile(rb"\n(content-length|server|date):", re.IGNORECASE).findall
_HAS_LENGTH, _HAS_SERVER, _HAS_DATE = 1, 2, 4
_NAME_BIT = {ord("c"): _HAS_LENGTH, ord("s"): _HAS_SERVER, ord("d"): _HAS_DATE}
_OPEN = ConnState.OPEN
#: Lines the worker writes for the URL's http_protocol (wasp/worker/modules/protocol_support.py):
#: no Server header, and close the connection after this response.
_NO_SERVER = b"\r\nServer: \r\n"
_WORKER_CLOSE = b"\r\nConnection: close\r\n"
_TUNNEL = ConnState.TUNNEL
_CLOSED = ConnState.CLOSED


#: Every block start status_of accepts: three digits, 100-999, then a space or the line's end.
_STATUS = {b"%d%s" % (code, end): code for code in range(100, 1000) for end in (b" ", b"\r")}


def status_of(block: bytes) -> int:
    """The status code a worker's block starts with, or -1 unless it is three digits (100-999)
    and then a space or the line's end: the client gets "HTTP/1.1 " + the block as is."""
    return _STATUS.get(block[:4], -1)   # one lookup: a third less than testing and int()


class FileSpanSender:
    __slots__ = ("fd", "offset", "remaining", "sendfile", "primed")

    def __init__(self, fd: int, offset: int, length: int, sendfile: bool):
        self.fd = fd
        self.offset = offset
        self.remaining = length
        self.sendfile = sendfile
        self.primed = False    # transport low-water mark set to 0 while this file is sent

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class ResponseWriter:
    """Mixin: the worker link calls on_response / on_response_body / on_response_end / on_file."""

    __slots__ = ()

    def _head(self, req: Request, block: bytes, length: int) -> list:
        """Response head parts: status line and the app's headers, then what the front adds."""
        server = self.server
        status = req.status
        req.resp_headers = block
        self._sent = 0
        self._send_t0 = server.loop.time()
        # Which of Content-Length, Server and Date the app sent, by first letter: one regex
        # scan costs a third of lower() and three `in` searches.
        named = 0
        for name in _NAMED(block):
            named |= _NAME_BIT[name[0] | 0x20]
        if named & _HAS_SERVER and _NO_SERVER in block:
            # http_protocol.remove_server_header: the worker's empty Server line means none at all.
            block = req.resp_headers = block.replace(_NO_SERVER, b"\r\n")
        parts = [b"HTTP/1.1 ", block]
        if status < 200 or status == 204 or status == 304:
            req.no_body = True
        elif named & _HAS_LENGTH:
            pass
        elif length >= 0:
            parts.append(b"Content-Length: %d\r\n" % length)
        elif req.is_head:
            pass
        elif req.version == "1.1":
            parts.append(b"Transfer-Encoding: chunked\r\n")
            req.chunked_out = True
        else:
            req.close_after = True  # HTTP/1.0 and no length: the end of the body is the close
        if server.server_line and not named & _HAS_SERVER:
            parts.append(server.server_line)
        if not named & _HAS_DATE:
            parts.append(server.date_line)
        if _WORKER_CLOSE in block:
            # http_protocol.allow_keep_alive = false for this URL: the block has the line.
            req.close_after = True
            parts.append(b"\r\n")
        elif req.close_after or not req.keep_alive or not req.body_done or server.stopping \
                or (self._upgrading and req.websocket):
            req.close_after = True
            parts.append(b"Connection: close\r\n\r\n")
        elif req.version == "1.0":
            parts.append(b"Connection: keep-alive\r\n\r\n")
        else:
            parts.append(b"\r\n")
        return parts

    def on_response(self, req: Request, payload: bytes, fin: bool) -> None:
        substatus, length, block, body = unpack_response(payload)
        status = status_of(block)
        if status < 0:
            self.on_abort(req, 502)
            return
        req.status = status
        req.substatus = substatus
        if status == 101:
            if req.websocket and not fin and self._upgrading:
                self._start_tunnel(req, block)
                return
            req.close_after = True
        if fin:
            if length < 0 and not req.is_head:
                length = len(body)
            if req.cache_hint is not None and req.cache_admit and status == 200 and not req.is_head \
                    and length == len(body):
                self.server.cache_response(req, block, body)
            parts = self._head(req, block, length)
            if body and not req.is_head and not req.no_body:
                if len(body) >= LARGE_BODY and self._buckets is None:
                    # One writev of the head and the body as it came (a view of the worker's read):
                    # no copy of the body in Python.
                    head = b"".join(parts)
                    self._sent = len(head) + len(body)
                    self.transport.writelines((head, body))
                    self._finish(req)
                    return
                parts.append(body)
            data = b"".join(parts)
            self._sent = len(data)
            if self._buckets is None:
                self.transport.write(data)
            else:
                self._put(data)
            self._finish(req)
        else:
            data = b"".join(self._head(req, block, length))
            self._sent = len(data)
            if self._buckets is None:
                self.transport.write(data)
            else:
                self._put(data)
            req.move(Stage.SENDING)

    def on_response_body(self, req: Request, data: bytes) -> None:
        n = len(data)
        if self._buckets is not None:
            if req.is_head or req.no_body:
                req.link.send_window(req, n)
                return
            self._sent += n
            if req.chunked_out and self.state is not _TUNNEL:
                self._put(b"".join((b"%x\r\n" % n, data, b"\r\n")), n, req)
            else:
                self._put(data if type(data) is bytes else bytes(data), n, req)  # (a view: copied)
            return
        if self.state is _TUNNEL:
            self.transport.write(data)
        elif req.is_head or req.no_body:
            req.link.send_window(req, n)
            return
        elif req.chunked_out:
            self.transport.writelines((b"%x\r\n" % n, data, b"\r\n"))
        else:
            self.transport.write(data)
        self._sent += n
        if self._write_paused:
            req.unacked += n
        else:
            req.link.send_window(req, n)

    def on_response_end(self, req: Request) -> None:
        if self.state is _TUNNEL:
            req.close_after = True
            self._finish(req)
            return
        if req.stage is not Stage.SENDING:
            self.on_abort(req, 502)  # END without a RESPONSE: the worker broke the protocol
            return
        if req.chunked_out:
            if self._buckets is None:
                self.transport.write(_LAST_CHUNK)
            else:
                self._put(_LAST_CHUNK)
        req.unacked = 0
        self._finish(req)

    def on_file(self, req: Request, span) -> None:
        block = span.status_and_headers
        req.status = status_of(block)
        if req.status < 0:
            self.on_abort(req, 502)
            return
        length = span.length
        if req.cache_hint is not None and req.cache_admit and req.status == 200 and not req.is_head:
            data = self.server.cache_file(req, block, span)
            if data is not None:
                parts = self._head(req, block, length)
                parts.append(data)
                data = b"".join(parts)
                self._sent = len(data)
                if self._buckets is None:
                    self.transport.write(data)
                else:
                    self._put(data)
                self._finish(req)
                return
        parts = self._head(req, block, length)
        limited = self._buckets is not None
        if req.is_head or req.no_body or length <= 0:
            data = b"".join(parts)
            self._sent = len(data)
            if limited:
                self._put(data)
            else:
                self.transport.write(data)
            self._finish(req)
            return
        try:
            fd = os.open(span.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self._send_error(req, HttpError("cannot open the file to send", status=500, reason="Internal"))
            return
        if length <= SMALL_FILE and not (limited and length > self._chunk):
            try:
                data = os.pread(fd, length, span.offset)
            except OSError:
                data = b""
            finally:
                os.close(fd)
            parts.append(data)
            data = b"".join(parts)
            self._sent = len(data)
            if limited:
                self._put(data)
            else:
                self.transport.write(data)
            if len(parts[-1]) != length:
                self._cut(req)  # the file shrank: the promised length cannot be sent
                return
            self._finish(req)
            return
        req.move(Stage.SENDING)
        head = b"".join(parts)
        self._sent = len(head)
        sockfd = self._sockfd
        sendfile = False
        if limited:
            # The head in turn; the file once it is written (_pump_file waits for _held).
            self._put(head)
            sendfile = sockfd >= 0
        elif sockfd >= 0 and self.transport.get_write_buffer_size() == 0:
            try:
                written = os.write(sockfd, head)
            except (BlockingIOError, InterruptedError):
                written = 0
            except OSError:
                os.close(fd)
                self._cut(req)
                return
            if written < len(head):
                self.transport.write(head[written:])
            else:
                sendfile = True
        else:
            self.transport.write(head)
        req.file = FileSpanSender(fd, span.offset, length, sendfile)
        self._pump_file(req)

    def _send_cached(self, req: Request, entry) -> None:
        """Answer from the response cache (no worker): the whole response, or 304 when the
        request's validators match the entry's ETag / Last-Modified. HEAD gets the head only."""
        if (req.inm is not None or req.ims is not None) and entry.not_modified(req.inm, req.ims):
            req.status = 304
            data = b"".join(self._head(req, entry.block_304, -1))
        elif req.keep_alive and req.version == "1.1" and not req.is_head and not req.close_after \
                and req.body_done and not self.server.stopping and _WORKER_CLOSE not in entry.block:
            # The common hit: the whole response as bytes built once per Date second.
            req.status = 200
            date_line = self.server.date_line
            if entry.wire_date is not date_line:
                entry.wire = b"".join(self._head(req, entry.block, len(entry.body)) + [entry.body])
                entry.wire_date = date_line
            data = entry.wire
            req.resp_headers = entry.block
            self._send_t0 = self.server.loop.time()  # (_head, which sets it, did not run)
        else:
            req.status = 200
            parts = self._head(req, entry.block, len(entry.body))
            if not req.is_head:
                parts.append(entry.body)
            data = b"".join(parts)
        self._sent = len(data)
        if self._buckets is None:
            self.transport.write(data)
        else:
            self._put(data)
        self._finish(req)

    # ---- a limited connection's output (qos.py) ----
    def _put(self, data: bytes, acked: int = 0, req: Request | None = None) -> None:
        """Response bytes of a connection with a bandwidth limit: out in order, in turn. `acked`
        body bytes of `req` are acknowledged to its worker once written."""
        held = self._held
        if held is None:
            held = self._held = deque()
        held.append((data, acked, req))
        if len(held) == 1:
            self._release()

    def _release(self) -> None:
        """Write what is held, a piece (`_chunk`) per turn, while the transport takes it; then
        the file that follows, or the close that waited for it."""
        held = self._held
        transport = self.transport
        if self._buckets is None:
            # A reload removed the limit: what waited goes now, in order.
            while held:
                data, acked, req = held.popleft()
                transport.write(data)
                if acked and req.link is not None and req.link.owns(req):
                    req.link.send_window(req, acked)
        chunk = self._chunk
        while held and not self._tpaused and self._clear():
            data, acked, req = held[0]
            if len(data) > chunk:
                piece = data[:chunk]
                held[0] = (data[chunk:], acked, req)
                acked = 0
            else:
                piece = data
                held.popleft()
            transport.write(piece)
            self._spend(len(piece))
            if acked and req.link is not None and req.link.owns(req):
                if self._write_paused:
                    req.unacked += acked
                else:
                    req.link.send_window(req, acked)
        if (self._drain_close or self.timer == "Timer_ConnectionIdle") and not self._pending:
            # The last response's bytes still going out: the connection is not idle yet.
            self.deadline = self.server.loop.time() + self._idle
        if held:
            return
        if self._drain_close:
            self._drain_close = False
            self._close()
            return
        if self.server.stopping and self.idle:
            self._close()   # (stop skipped it while its last bytes were held)
            return
        pending = self._pending
        if pending and pending[0].file is not None and not self._write_paused:
            self._pump_file(pending[0])

    def _probe(self) -> None:
        """One byte of the response now, out of turn (qos.py `_watch_hangup`)."""
        held = self._held
        if held:
            data, acked, req = held[0]
            self.transport.write(data[:1])
            if len(data) > 1:
                held[0] = (data[1:], acked, req)
            else:
                held.popleft()
            self._spend(1)
            return
        req = self._pending[0] if self._pending else None
        sender = req.file if req is not None else None
        if sender is None or sender.remaining <= 0 or self.transport.get_write_buffer_size():
            return
        try:
            byte = os.pread(sender.fd, 1, sender.offset)
        except OSError:
            return
        if byte:
            self.transport.write(byte)
            sender.offset += 1
            sender.remaining -= 1
            self._sent += 1
            self._spend(1)

    def _pump_file(self, req: Request) -> None:
        """Send the rest of a file: sendfile while the socket takes it; when it is full, one
        chunk through the transport, whose drain (resume_writing, low-water mark 0) says when
        sendfile can go on. Without a socket (or after a partial head write), chunks only."""
        sender = req.file
        transport = self.transport
        budget = SENDFILE_TURN
        # With a bandwidth limit, pieces of the rate's size, each paid for before the next.
        limited = self._buckets is not None
        cap = self._chunk if limited else SENDFILE_MAX
        if limited and self._held:
            return   # what comes before the file goes first (_release pumps on)
        while sender.remaining > 0:
            if self._write_paused or (limited and not self._clear()):
                return
            if sender.sendfile and transport.get_write_buffer_size() == 0:
                if budget <= 0:
                    # Let other connections run; carry on in the next loop iteration.
                    self.server.loop.call_soon(self._resume_file, req, sender)
                    return
                try:
                    n = os.sendfile(self._sockfd, sender.fd, sender.offset, min(sender.remaining, cap))
                except (BlockingIOError, InterruptedError):
                    n = -1
                except OSError:
                    self._cut(req)
                    return
                if n == 0:
                    self._cut(req)  # the file shrank under us
                    return
                if n > 0:
                    sender.offset += n
                    sender.remaining -= n
                    budget -= n
                    self._sent += n
                    if limited:
                        self._spend(n)
                    continue
                if not sender.primed:
                    sender.primed = True
                    transport.set_write_buffer_limits(high=FILE_PRIMER // 4, low=0)
                size = FILE_PRIMER
            else:
                size = FILE_CHUNK
            try:
                chunk = os.pread(sender.fd, min(sender.remaining, size, cap), sender.offset)
            except OSError:
                chunk = b""
            if not chunk:
                self._cut(req)
                return
            transport.write(chunk)
            sender.offset += len(chunk)
            sender.remaining -= len(chunk)
            self._sent += len(chunk)
            if limited:
                self._spend(len(chunk))
        if sender.primed:
            transport.set_write_buffer_limits()
        sender.close()
        req.file = None
        self._finish(req)

    def _resume_file(self, req: Request, sender: "FileSpanSender") -> None:
        if req.file is sender and self.state is not _CLOSED:
            self._pump_file(req)

    def _start_tunnel(self, req: Request, block: bytes) -> None:
        server = self.server
        lower = block.lower()
        parts = [b"HTTP/1.1 ", block]
        if b"\nupgrade:" not in lower:
            parts.append(b"Upgrade: websocket\r\n")
        if b"\nconnection:" not in lower:
            parts.append(b"Connection: Upgrade\r\n")
        if server.server_line and b"\nserver:" not in lower:
            parts.append(server.server_line)
        parts.append(server.date_line)
        parts.append(b"\r\n")
        if self._buckets is None:
            self.transport.write(b"".join(parts))
        else:
            self._put(b"".join(parts))
        req.move(Stage.SENDING)
        self.move(_TUNNEL)
        self._upgrading = False
        self.deadline = 0.0
        early = self._early
        self._early = None
        self._buffered = 0
        if early:
            req.body_buf = early
            req.body_buffered = sum(len(b) for b in early)
            self._push_tunnel(req)
        if self._read_paused:
            self._read_paused = False
            self.transport.resume_reading()

    def _tunnel_in(self, data: bytes) -> None:
        req = self._pending[0] if self._pending else None
        if req is None or req.link is None or not req.link.owns(req):
            return
        if not req.body_buf and req.window >= len(data):
            req.window -= len(data)
            req.link.send_body(req, data)
            return
        if req.body_buf is None:
            req.body_buf = [data]
        else:
            req.body_buf.append(data)
        req.body_buffered += len(data)
        self._push_tunnel(req)

    def _push_tunnel(self, req: Request) -> None:
        link = req.link
        for chunk in req.take_window():
            link.send_body(req, chunk)
        want = req.body_buffered > TUNNEL_BUFFER_LIMIT
        if want != self._read_paused and self.state is _TUNNEL:
            self._read_paused = want
            if want:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()
