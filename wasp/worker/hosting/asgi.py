"""ASGI 3 hosting on the worker's event loop: http and websocket scopes, and lifespan.

No thread hand-off: the pipeline runs as a task on the loop and awaits the app. `receive` hands out
the request body as it arrives (acknowledging it with WINDOW frames), then `http.disconnect` once
the client is gone or the response is complete; `send` waits for WINDOW credit when the front is
behind. A start followed by one final body leaves as a single RESPONSE frame.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat as stat_mod

from wasp.errors import AppLoadError
from wasp.wire.frames import INITIAL_WINDOW
from wasp.wire.http import reason_phrase
from wasp.worker.context import Cancelled
from wasp.worker.registry import FINISH

log = logging.getLogger("wasp.worker")

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding"})
_NO_BODY = (204, 304)
_SMALL = INITIAL_WINDOW
_DISCONNECT = {"type": "http.disconnect"}
_STATUS_LINES: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = f"{status} {reason_phrase(status)}\r\n".encode("latin-1")
        if len(_STATUS_LINES) < 1024:
            _STATUS_LINES[status] = line
    return line


def response_block(status: int, headers) -> tuple[bytes, int]:
    """-> (block, Content-Length or -1) from an ASGI status and header list."""
    parts = [status_line(status)]
    length = -1
    for name, value in headers:
        lower = name.lower()
        if lower in HOP_BY_HOP:
            continue
        if lower == b"content-length":
            length = int(value)
        parts.append(b"%s: %s\r\n" % (name, value))
    block = b"".join(parts)
    # One line end per line we wrote and no NUL: a CR or LF in a name or value would end the
    # head or add a header of the client's choosing (response splitting).
    lines = len(parts)
    if block.count(b"\n") != lines or block.count(b"\r") != lines or b"\x00" in block:
        raise ValueError("a response header contains CR, LF or NUL")
    return block, length


def raw_path_of(target: bytes) -> bytes:
    if not target.startswith(b"/"):
        # absolute-form target: drop "scheme://authority"
        scheme_end = target.find(b"://")
        slash = target.find(b"/", scheme_end + 3 if scheme_end >= 0 else 0)
        target = target[slash:] if slash >= 0 else b"/"
    end = target.find(b"?")
    return target if end < 0 else target[:end]


def build_scope(ctx, state: dict, kind: str = "http") -> dict:
    head = ctx.head
    app = ctx.app
    scope = {
        "type": kind,
        "asgi": ASGI_VERSION,
        "http_version": head.version,
        "scheme": head.scheme if kind == "http" else ("wss" if head.scheme == "https" else "ws"),
        # `path` carries root_path in front, as uvicorn sends it and Starlette builds URLs from it.
        "path": head.path.decode("utf-8", "replace"),
        "raw_path": raw_path_of(head.target),
        "root_path": app.script_name,
        "query_string": head.query,
        "headers": [(name.lower(), value) for name, value in head.headers],
        "client": tuple(head.client),
        "server": tuple(head.server),
        "state": state.copy(),
    }
    if kind == "http":
        scope["method"] = head.method
        scope["extensions"] = {"http.response.pathsend": {}}
    if head.warmup:
        scope["app_warming_up"] = True
    if ctx.user:  # set by an authentication module
        scope.setdefault("extensions", {})["user"] = {"name": ctx.user, "auth_type": ctx.auth_type}
    tls = head.tls
    if tls is not None:
        scope.setdefault("extensions", {})["tls"] = tls_extension(tls)
    return scope


_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def tls_extension(tls) -> dict:
    """The ASGI TLS extension (asgiref's "tls" scope extension) from the front's TlsInfo."""
    return {
        "server_cert": None,
        "client_cert_chain": [tls.client_cert] if tls.client_cert else [],
        "client_cert_name": tls.client_subject or None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(tls.version),
        "cipher_suite": tls.cipher_id or None,
    }


class HTTPCycle:
    """receive/send of one http request."""

    __slots__ = ("ctx", "status", "headers", "request_done", "started", "complete")

    def __init__(self, ctx):
        self.ctx = ctx
        self.status = None
        self.headers = None
        self.request_done = False
        self.started = False
        self.complete = False

    async def receive(self) -> dict:
        ctx = self.ctx
        body = ctx.body
        if not self.request_done and not ctx.cancelled:
            if body.done:
                self.request_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            try:
                data, more = await body.take()
            except Cancelled:
                return _DISCONNECT
            self.request_done = not more
            return {"type": "http.request", "body": data, "more_body": more}
        while not ctx.cancelled and not self.complete:
            await body.wait()
        return _DISCONNECT

    async def send(self, message: dict) -> None:
        ctx = self.ctx
        kind = message["type"]
        if ctx.cancelled:
            raise Cancelled("client went away")
        if kind == "http.response.body":
            if self.status is None:
                raise RuntimeError("http.response.body sent before http.response.start")
            if self.complete:
                raise RuntimeError("http.response.body sent after the response completed")
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if not self.started:
                block, length = response_block(self.status, self.headers)
                if not more and len(body) <= _SMALL:
                    if self.status in _NO_BODY or self.status < 200:
                        body, length = b"", 0
                    elif length < 0:
                        length = len(body)
                        block += b"Content-Length: %d\r\n" % length
                    self.started = self.complete = True
                    ctx.respond(block, body, content_length=length)
                    ctx.body.wake()
                    return
                self.started = True
                ctx.start_response(block, length)
            if body:
                await ctx.send_body_async(body)
            if not more:
                self.complete = True
                ctx.end()
                ctx.body.wake()
        elif kind == "http.response.start":
            if self.status is not None:
                raise RuntimeError("http.response.start sent twice")
            self.status = int(message["status"])
            self.headers = message.get("headers") or ()
        elif kind == "http.response.pathsend":
            self._pathsend(message["path"])
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} in an http scope")

    def _pathsend(self, path: str) -> None:
        if self.status is None or self.started:
            raise RuntimeError("http.response.pathsend needs http.response.start and no body")
        st = os.stat(path)
        if not os.path.isabs(path) or not stat_mod.S_ISREG(st.st_mode):
            raise RuntimeError(f"http.response.pathsend: {path!r} is not an absolute regular file")
        block, length = response_block(self.status, self.headers)
        if length < 0:
            length = st.st_size
            block += b"Content-Length: %d\r\n" % length
        self.started = self.complete = True
        if self.ctx.head_only or length == 0:
            self.ctx.respond(block, content_length=length)
        else:
            self.ctx.send_file(block, path, 0, min(length, st.st_size))
        self.ctx.body.wake()


class ASGIHost:
    def __init__(self, app, callable_):
        self.app = app
        self.callable = callable_

    def execute(self, ctx):
        if ctx.head.websocket:
            from wasp.worker.hosting.websocket import run_websocket

            return run_websocket(self.callable, ctx, build_scope(ctx, self.app.state, "websocket"))
        return self._http(ctx)

    async def _http(self, ctx):
        cycle = HTTPCycle(ctx)
        try:
            await self.callable(build_scope(ctx, self.app.state), cycle.receive, cycle.send)
        finally:
            cycle.complete = cycle.complete or ctx.finished
            ctx.body.wake()
        if not cycle.complete and not ctx.cancelled:
            if cycle.status is None:
                raise RuntimeError("the ASGI app returned without starting a response")
            raise RuntimeError("the ASGI app returned without completing its response")
        return FINISH


class Lifespan:
    """The lifespan scope of one ASGI app. An app that raises or never answers `startup` does not
    speak lifespan, which is fine (uvicorn's "auto"); `startup.failed` fails the worker."""

    def __init__(self, callable_, name: str, state: dict):
        self.callable = callable_
        self.name = name
        self.state = state
        self.supported = False
        self._queue: asyncio.Queue = asyncio.Queue()
        self._startup: asyncio.Future | None = None
        self._shutdown: asyncio.Future | None = None
        self._task: asyncio.Task | None = None

    async def startup(self) -> None:
        loop = asyncio.get_running_loop()
        self._startup = loop.create_future()
        self._shutdown = loop.create_future()
        self._task = loop.create_task(self._main())
        await self._queue.put({"type": "lifespan.startup"})
        await asyncio.wait([self._startup, self._task], return_when=asyncio.FIRST_COMPLETED)
        if not self._startup.done():
            log.info("%s: ASGI 'lifespan' protocol appears unsupported", self.name)
            return
        failed = self._startup.result()
        if failed is not None:
            raise AppLoadError(f"application {self.name}: lifespan startup failed: {failed}".strip())
        self.supported = True

    async def shutdown(self, timeout: float) -> None:
        if not self.supported or self._task is None or self._task.done():
            return
        await self._queue.put({"type": "lifespan.shutdown"})
        done, _ = await asyncio.wait([self._shutdown, self._task], timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if self._shutdown.done() and self._shutdown.result() is not None:
            log.error("%s: lifespan shutdown failed: %s", self.name, self._shutdown.result())
        if not done:
            log.error("%s: lifespan shutdown did not finish in %.0fs", self.name, timeout)
        if not self._task.done():
            self._task.cancel()
            await asyncio.wait([self._task], timeout=1.0)

    async def _main(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                 "state": self.state}
        try:
            await self.callable(scope, self._receive, self._send)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if self.supported or (self._startup.done() and self._startup.result() is None):
                log.error("%s: lifespan task failed: %r", self.name, exc, exc_info=exc)
            else:
                log.debug("%s: lifespan raised %r (treated as unsupported)", self.name, exc)

    async def _receive(self) -> dict:
        return await self._queue.get()

    async def _send(self, message: dict) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete" and not self._startup.done():
            self._startup.set_result(None)
        elif kind == "lifespan.startup.failed" and not self._startup.done():
            self._startup.set_result(message.get("message", "") or "(no message)")
        elif kind == "lifespan.shutdown.complete" and not self._shutdown.done():
            self._shutdown.set_result(None)
        elif kind == "lifespan.shutdown.failed" and not self._shutdown.done():
            self._shutdown.set_result(message.get("message", "") or "(no message)")
