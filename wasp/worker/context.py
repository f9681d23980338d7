"""One request in the worker: what the front sent, where the pipeline is, and how to answer.

A RequestContext lives from the REQUEST frame to the end of END_REQUEST. The event loop feeds it
(body bytes, WINDOW credit, CANCEL); the pipeline, running on a WSGI thread or on the loop, answers
through it. Every frame for the stream goes out through `channel`, whose lock makes a frame written
by a thread and one written by the loop never interleave.
"""

from __future__ import annotations

import asyncio
import time

from wasp.wire import frames
from wasp.wire.frames import INITIAL_WINDOW

#: A body wait (request bytes or response credit) longer than this ends the request.
WAIT_LIMIT = 300.0

#: A `bytes` body at least this large is not copied into its frame: the data channel sends the
#: frame's head and the app's own bytes object with one sendmsg. Below it a copy is cheaper than
#: a second buffer. (Only `bytes`: an app may reuse a bytearray once `write` returns.)
ZERO_COPY_MIN = 16 * 1024


class Cancelled(OSError):
    """The client went away (CANCEL) or the data channel closed: stop and send nothing more.

    An OSError because ASGI 2.4 asks servers to raise an IOError subclass from `send` on a closed
    connection; WSGI apps see it raised out of `write` or their iteration.
    """


class RequestContext:
    __slots__ = (
        "channel", "sid", "head", "app", "threaded", "head_only",
        "phase", "module", "handler",
        "cancelled", "started", "finished", "status", "substatus",
        "window", "body", "waiter", "start_time",
        "located", "file_path", "file_stat", "is_dir",
        "items", "thread", "task", "coro", "expired_at", "stuck", "cache", "config",
        "user", "auth_type", "private", "challenges", "extra_headers",
        "compression", "filters", "swallow",
    )

    def __init__(self, channel, sid: int, head: frames.RequestHead, app, threaded: bool):
        self.channel = channel
        self.sid = sid
        self.head = head
        self.app = app
        self.threaded = threaded
        self.head_only = head.method == "HEAD"
        self.phase = None        # the Phase running now, for `wasp list requests`
        self.module = ""         # the module running now
        self.handler = None      # chosen in MAP_REQUEST_HANDLER
        self.cancelled = False
        self.started = False     # a RESPONSE / FILE went out: errors now become ABORT
        self.finished = False    # the last frame of the stream went out
        self.status = 0
        self.substatus = 0
        self.window = channel.initial_window  # response bytes we may still send unacknowledged
        self.body = None         # request body reader (flow.py), None when the REQUEST had FIN
        self.waiter = None       # asyncio future a loop-run request sleeps on
        self.start_time = time.monotonic()
        self.located = False     # static lookup done (file_path / file_stat / is_dir valid)
        self.file_path = None
        self.file_stat = None
        self.is_dir = False
        self.items = None        # per-request scratch space for modules
        self.thread = 0          # ident of the WSGI thread running it (0: the loop / not yet)
        self.task = None         # the asyncio Task of a request run on the loop (ASGI), once
        self.coro = None         # it suspends; `coro` is its pipeline coroutine (for its stack)
        self.expired_at = 0.0    # when execution_timeout cut it (answered ABORT 503); 0 = not
        self.stuck = False       # still running a grace period after that: reported to the manager
        self.cache = None        # http_cache's Rule when the front may cache the response
        # Who the request runs as (AUTHENTICATE_REQUEST): None = no authentication module
        # produced a user (401.2 if one was configured), "" = anonymous, else the user's name.
        self.user = None
        self.auth_type = ""      # "Basic", "Digest", "Negotiate", ...; "" for anonymous
        # The response depends on who asked (an IP rule, a user): never stored by the front.
        self.private = False
        self.challenges = None   # WWW-Authenticate values collected by authentication modules
        self.extra_headers = None  # header lines a module adds to whatever response goes out
        # dynamic_compression's offer until the response starts, then the body's encoder (or
        # None): respond / start_response / send_body* / end pass the response through it.
        self.compression = None
        # IIS's RQ_SEND_RESPONSE: callables a module adds (`add_filter`) that see each response
        # head before it goes out; `swallow` once one of them answered instead (the rest of the
        # handler's response is dropped).
        self.filters = None
        self.swallow = False
        # The effective configuration of this request's URL: one attribute per section
        # (wasp/config/sections), merged server -> site -> application. Read-only.
        urls = app.urls
        self.config = app.sections if urls is None else urls.lookup(head.path)

    @property
    def stage(self) -> str:
        """"ExecuteRequestHandler (python_app)", the way appcmd shows a request's state."""
        if self.phase is None:
            return "BeginRequest"
        return f"{self.phase.title} ({self.module})" if self.module else self.phase.title

    # ---- called on the loop by the data channel ----
    def feed(self, data: bytes) -> None:
        if self.body is not None:
            self.body.feed(data)

    def feed_end(self) -> None:
        if self.body is not None:
            self.body.end()

    def on_window(self, increment: int) -> None:
        if self.threaded:
            cond = self.channel.cond
            with cond:
                self.window += increment
                cond.notify_all()
        else:
            self.window += increment
            self.wake()

    def cancel(self) -> None:
        """The stream is gone; the data channel already took it out of its table."""
        self.cancelled = True
        if self.body is not None:
            self.body.cancel()
        if self.threaded:
            cond = self.channel.cond
            with cond:
                cond.notify_all()
        else:
            self.wake()

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def set_user(self, name: str, auth_type: str) -> None:
        """The request runs as `name` ("" = anonymous), authenticated by `auth_type`. A named
        user makes the response private (the front never caches it) and reaches the front with
        the response (cs-username), the apps (REMOTE_USER, AUTH_TYPE, the ASGI `user` extension)
        and `wasp list requests`."""
        if not isinstance(name, str) or not isinstance(auth_type, str):
            raise TypeError("set_user(name, auth_type) takes two str")
        if any(ord(c) < 0x20 or c == "\x7f" for c in name + auth_type):
            raise ValueError(f"a user name or auth type with a control character: {name!r}")
        self.user = name
        self.auth_type = auth_type if name else ""
        if name:
            self.private = True

    def add_header(self, name: str, value: str) -> None:
        """Send `name: value` with this request's response, whoever produces it (the handler,
        an error page): Negotiate's mutual-authentication token on a 200, say."""
        line = f"{name}: {value}"
        if not name or any(ord(c) < 0x20 or c == "\x7f" for c in line) or ":" in name \
                or " " in name:
            raise ValueError(f"not a header line: {line!r}")
        encoded = line.encode("latin-1") + b"\r\n"
        if self.extra_headers is None:
            self.extra_headers = [encoded]
        else:
            self.extra_headers.append(encoded)

    def add_filter(self, send_filter) -> None:
        """`send_filter(ctx, block, body, length)` runs when this request's response head goes
        out (RQ_SEND_RESPONSE), in the order filters were added. `body` is the whole body of a
        response sent in one piece, else None (streamed, or a file); `length` its Content-Length
        (-1 unknown). It returns the block to send (changed or not), or None when it answered
        the request itself (with `respond`, which runs the filters after it): the handler's
        response is then dropped."""
        if self.filters is None:
            self.filters = [send_filter]
        else:
            self.filters.append(send_filter)

    def _outgoing(self, block: bytes, body, length: int):
        filters = self.filters
        for index, send_filter in enumerate(filters):
            # A filter that answers instead sends its response through the filters after it.
            self.filters = filters[index + 1:] or None
            block = send_filter(self, block, body, length)
            if block is None:
                self.swallow = True
                return None
        self.filters = None
        return block

    # ---- answering (any thread) ----
    def respond(self, block: bytes, body: bytes = b"", content_length: int | None = None,
                substatus: int = 0) -> None:
        """The whole response in one RESPONSE frame with FIN."""
        if self.filters is not None:
            block = self._outgoing(block, body, len(body) if content_length is None else content_length)
            if block is None:
                return
        if self.extra_headers:
            block = block + b"".join(self.extra_headers)
        offer = self.compression
        if offer is not None:
            self.compression = None
            block, body, content_length = offer.whole(self, block, body, content_length)
        if content_length is None:
            content_length = len(body)
        if self.head_only:
            body = b""
        self._mark(block, substatus)
        if len(body) >= ZERO_COPY_MIN and body.__class__ is bytes:
            head, _ = data = frames.pack_response_parts(self.sid, block, content_length, substatus,
                                                        body)
        else:
            head = data = frames.pack_response(self.sid, block, content_length, substatus, body)
        if self.cache is not None and not self.private:
            hint = self.cache.response_hint(self, block, len(body))
            if hint is not None and content_length == len(body):
                cache = frames.pack_cache(self.sid, hint)
                data = (cache + head, body) if data is not head else cache + data
        if self.user:
            data = self._with_user(data)
        self.channel.send_final(self, data)

    def start_response(self, block: bytes, content_length: int = -1, substatus: int = 0) -> None:
        """A RESPONSE without FIN: BODY frames and END follow."""
        if self.filters is not None:
            block = self._outgoing(block, None, content_length)
            if block is None:
                self.compression = None  # what the handler sends next goes nowhere
                return
        if self.extra_headers:
            block = block + b"".join(self.extra_headers)
        offer = self.compression
        if offer is not None:
            block, content_length, self.compression = offer.begin(self, block, content_length)
        self._mark(block, substatus)
        data = frames.pack_response(self.sid, block, content_length, substatus)
        self._send(self._with_user(data) if self.user else data)

    def send_file(self, block: bytes, path: str, offset: int, length: int) -> None:
        self.compression = None  # a file goes as it is (a static copy is compressed already)
        if self.filters is not None:
            block = self._outgoing(block, None, length)
            if block is None:
                return
        if self.extra_headers:
            block = block + b"".join(self.extra_headers)
        self._mark(block, 0)
        data = frames.pack_file(self.sid, frames.FileSpan(block, path, offset, length))
        if self.cache is not None and not self.private:
            hint = self.cache.file_hint(self, block, path, offset, length)
            if hint is not None:
                data = frames.pack_cache(self.sid, hint) + data
        if self.user:
            data = self._with_user(data)
        self.channel.send_final(self, data)

    def end(self) -> None:
        if self.swallow:
            return
        encoder = self.compression
        if encoder is not None:
            self.compression = None
            tail = encoder.finish()
            if tail and not self.cancelled and not self.head_only:
                # The coding's trailer, a few bytes: sent past the credit rather than waiting
                # for it here (END may come from the loop, which cannot wait).
                self.window -= len(tail)
                self._send(frames.pack_body(self.sid, tail))
        self.channel.send_final(self, frames.pack_end(self.sid))

    def abort(self, status: int = 500, substatus: int = 0) -> None:
        """End the stream: the front answers `status` if nothing was sent yet (0: it closes the
        connection without a response, IIS's AbortRequest), else cuts the response."""
        if self.swallow and self.finished:
            return
        if not self.started:
            self.status, self.substatus = status, substatus
        self.channel.send_final(self, frames.pack_abort(self.sid, status, substatus))

    def send_body(self, data) -> None:
        """Body bytes from a thread, waiting for WINDOW credit when the front is behind."""
        encoder = self.compression
        if encoder is not None and data and not self.head_only:
            for piece in encoder.feed(data):
                self._send_body(piece)
            return
        self._send_body(data)

    def _send_body(self, data) -> None:
        if self.head_only or not data or self.swallow:
            if self.cancelled:
                raise Cancelled("client went away")
            return
        view = memoryview(data)
        whole = data.__class__ is bytes  # immutable: its slices may wait in the channel's queue
        while view:
            n = self._reserve(len(view))
            if whole and n >= ZERO_COPY_MIN:
                self._send((frames.pack_body_header(self.sid, n), view[:n]))
            else:
                self._send(frames.pack_body(self.sid, view[:n]))
            view = view[n:]

    async def send_body_async(self, data) -> None:
        """Body bytes from the loop, awaiting WINDOW credit."""
        encoder = self.compression
        if encoder is not None and data and not self.head_only:
            for piece in encoder.feed(data):
                await self._send_body_async(piece)
            return
        await self._send_body_async(data)

    async def _send_body_async(self, data) -> None:
        if self.head_only or not data or self.swallow:
            if self.cancelled:
                raise Cancelled("client went away")
            return
        view = memoryview(data)
        whole = data.__class__ is bytes
        loop = self.channel.loop
        while view:
            deadline = None
            while self.window <= 0 and not self.cancelled:
                if deadline is None:
                    deadline = loop.time() + WAIT_LIMIT
                elif loop.time() >= deadline:
                    raise Cancelled("no WINDOW credit from the front in time")
                self.waiter = loop.create_future()
                try:
                    await asyncio.wait_for(self.waiter, WAIT_LIMIT)
                except asyncio.TimeoutError:
                    pass
                finally:
                    self.waiter = None
            if self.cancelled:
                raise Cancelled("client went away")
            n = min(self.window, len(view), frames.MAX_PAYLOAD)
            self.window -= n
            if whole and n >= ZERO_COPY_MIN:
                self._send((frames.pack_body_header(self.sid, n), view[:n]))
            else:
                self._send(frames.pack_body(self.sid, view[:n]))
            view = view[n:]

    # ---- internals ----
    def _with_user(self, data):
        """`data` (bytes, or a tuple of parts) with the USER frame in front of it."""
        user = frames.pack_user(self.sid, self.user, self.auth_type)
        if data.__class__ is tuple:
            return (user + data[0],) + data[1:]
        return user + data

    def _mark(self, block: bytes, substatus: int) -> None:
        self.started = True
        self.status = frames.status_of(block)
        self.substatus = substatus

    def _send(self, data) -> None:
        if not self.channel.send_frame(self, data):
            raise Cancelled("client went away")

    def _reserve(self, wanted: int) -> int:
        cond = self.channel.cond
        with cond:
            if self.window <= 0 and not self.cancelled:
                deadline = time.monotonic() + WAIT_LIMIT
                while self.window <= 0 and not self.cancelled:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise Cancelled("no WINDOW credit from the front in time")
                    cond.wait(left)
            if self.cancelled:
                raise Cancelled("client went away")
            n = min(self.window, wanted, frames.MAX_PAYLOAD)
            self.window -= n
            return n


__all__ = ["RequestContext", "Cancelled", "INITIAL_WINDOW", "WAIT_LIMIT", "ZERO_COPY_MIN"]
