"""IIS Application Request Routing's proxy handler: forward a request to a web farm or a URL.

The handler runs on the worker's event loop (as ARR runs inside w3wp): a keep-alive connection
pool per backend server (wasp/worker/farms.py), the HTTP/1.1 client codec of wasp/wire/backend.py,
streaming both ways with back-pressure: request BODY frames go to the backend as the front sends
them (the front's window is acknowledged only as the backend takes the bytes), the backend's body
goes to `ctx.send_body_async`, which waits for the front's WINDOW credit; while it waits the
backend connection stops being read past `response_buffer_limit`. An Upgrade: websocket request
is tunnelled: the backend's 101 goes to the client, then raw bytes both ways.

Errors, as ARR reports them (learn.microsoft.com, "Troubleshooting 502 errors in ARR"):
502.3 "Bad Gateway: forwarder connection error": the backend could not be connected to, did
not answer in `timeout`, or broke HTTP; 502.4 "no server is available": every server of the
farm is disabled or out after failed health checks. Once the response has started, a failure
can only cut it (the client sees a short body or a broken chunked stream, never a hang).
Retries: a connect failure takes the server out and an idempotent request (GET, HEAD, OPTIONS,
PUT, DELETE, TRACE: nothing was sent yet) goes to the next server; others get 502.3.
"""

from __future__ import annotations

import asyncio
import logging
import time

from wasp.errors import BadRequest, HttpError, NotFound
from wasp.wire.backend import (IDEMPOTENT, LAST_CHUNK, BackendError, BadRequestHeader,
                               ResponseReader, chunk, request_head, response_block)
from wasp.worker.context import Cancelled
from wasp.worker.farms import Farms, split_url
from wasp.worker.flow import to_async
from wasp.worker.registry import CONTINUE, FINISH, Module, Phase, register

log = logging.getLogger("wasp.worker.proxy")

#: The forwarding headers wasp writes itself; a client's copies never reach the backend unless
#: the front took the request from a trusted proxy (`server.trusted_proxies`).
_FORWARDING = frozenset((b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host",
                         b"forwarded", b"x-original-url", b"x-arr-ssl", b"x-arr-log-id"))


class GatewayError(HttpError):
    """ARR's 502.3: forwarder connection error (connect failure, timeout, a broken response)."""

    status = 502
    substatus = 3
    reason = "BadGateway"


class _Stale(Exception):
    """A reused connection failed before the backend answered: retry on a new one."""


class _Failed(Exception):
    """The connection died before the backend answered an idempotent request: next server."""


class NoServerAvailable(HttpError):
    """ARR's 502.4: no server of the farm is available."""

    status = 502
    substatus = 4
    reason = "BadGateway"


#: One Farms per worker process, shared by its applications (built from the server's web_farms).
_shared: tuple | None = None


def shared_farms(settings) -> Farms:
    global _shared
    key = tuple(settings)
    if _shared is None or _shared[0] != key:
        if _shared is not None:
            _shared[1].stop()
        _shared = (key, Farms(settings))
    return _shared[1]


def _mentions(tables, name: str) -> bool:
    if isinstance(tables, dict):
        return name in tables or any(_mentions(v, name) for v in tables.values())
    if isinstance(tables, list):
        return any(_mentions(v, name) for v in tables)
    return False


@register("reverse_proxy", phases=(Phase.MAP_REQUEST_HANDLER, Phase.EXECUTE_REQUEST_HANDLER))
class ReverseProxyModule(Module):
    #: Its execute returns a coroutine: the pipeline runs the handler on the loop and awaits it.
    awaits = True

    def setup(self, app) -> None:
        settings = getattr(app, "web_farms", ()) or ()
        self.farms = shared_farms(settings)
        self.on = bool(settings) or app.sections.proxy.enabled or _mentions(
            getattr(app, "tables", {}), "proxy") or "reverse_proxy" in str(app.sections.handlers.entries)
        # The health probes start with the first proxied request of this worker: a worker (or a
        # pool) that never proxies never probes.

    def wants(self, phase) -> bool:
        return self.on

    def cleanup(self) -> None:
        self.farms.stop()

    def map_request_handler(self, ctx):
        if ctx.proxy_url is None:
            section = ctx.config.proxy
            if section.enabled and section.url:
                ctx.proxy_url = section.url.rstrip("/") + origin_form(ctx.head.target).decode("latin-1")
        return CONTINUE

    def execute_request_handler(self, ctx):
        return self.forward(ctx)

    # ---- the proxy ----
    async def forward(self, ctx):
        section = ctx.config.proxy
        if not section.enabled:
            raise NotFound("the reverse proxy (proxy.enabled) is off here", substatus=4)
        loop = asyncio.get_running_loop()
        self.farms.start(loop)
        head = ctx.head
        url = ctx.proxy_url
        if url is None:
            if not section.url:
                raise NotFound("no proxy URL for this request (proxy.url)", substatus=4)
            url = section.url.rstrip("/") + origin_form(head.target).decode("latin-1")
        scheme, host, target = split_url(url)
        if scheme not in ("http", "https") or not host:
            raise NotFound(f"not an http(s) URL to proxy to: {url!r}", substatus=4)
        if ctx.threaded:
            to_async(ctx)
        farm = self.farms.farms.get(host.partition(":")[0].lower())
        cookie = _cookie(head.headers, farm.cookie_name) if farm is not None and farm.use_cookie else None
        if head.websocket:
            body_mode, length = "none", -1
        elif ctx.body is None:
            body_mode, length = "none", -1
        elif head.content_length >= 0:
            body_mode, length = "length", head.content_length
        else:
            body_mode, length = "chunked", -1
        timeout = float(section.timeout) or 30.0
        idempotent = head.method in IDEMPOTENT
        retry = idempotent and body_mode == "none"
        tried = []
        attempts = 0
        while True:
            attempts += 1
            if farm is not None:
                server = farm.pick(scheme, head.path, cookie, tried)
                if server is None:
                    if tried:
                        raise GatewayError(f"could not connect to any server of farm {farm.name}")
                    raise NoServerAvailable(f"no server of farm {farm.name} is available")
            else:
                server = self.farms.direct_server(scheme, host)
            conn = None
            if section.keep_alive and not head.websocket and attempts < 8:
                conn = server.take_idle(time.monotonic(), float(section.idle_timeout))
            reused = conn is not None
            if conn is None:
                try:
                    conn = await server.connect(loop, timeout)
                except (OSError, asyncio.TimeoutError) as exc:
                    if farm is not None:
                        server.mark_down(f"connect: {exc or 'timeout'}")
                        tried.append(server)
                        if idempotent:
                            continue
                    raise GatewayError(f"cannot connect to {server.key}: {exc or 'timeout'}") from None
            try:
                request = self._head(ctx, section, server, host, target, body_mode, length, head.websocket)
            except BadRequestHeader as exc:
                server.give_back(conn, section.max_idle_connections)
                raise BadRequest(str(exc)) from None
            server.active += 1
            try:
                return await self._exchange(ctx, section, farm, server, conn, request, body_mode,
                                            timeout, cookie, host, loop, reused and retry, retry)
            except _Failed as exc:
                if farm is None:
                    raise GatewayError(str(exc)) from None
                server.mark_down(str(exc))
                tried.append(server)
                continue
            except _Stale:
                # A kept-alive connection the backend had closed (or a backend that died with
                # it): nothing of the request was taken; try again on a new connection.
                server.close_idle()
                continue
            finally:
                server.active -= 1
                server.served += 1

    def _head(self, ctx, section, server, host, target, body_mode, length, websocket) -> bytes:
        head = ctx.head
        client_host = b""
        for name, value in head.headers:
            if name.lower() == b"host":
                client_host = value
                break
        if not client_host:
            client_host = f"{head.server[0]}:{head.server[1]}".encode("latin-1")
        send_host = client_host if section.preserve_host_header else (
            server.host_header if server.farm is not None else host.encode("ascii", "replace"))
        address, port = head.client
        xff_name = section.x_forwarded_for_header_name.encode("ascii")
        client = address.encode("ascii", "replace")
        shown = (b"[" + client + b"]" if b":" in client else client)
        if section.include_port_in_x_forwarded_for and port:
            shown += b":%d" % port
        extra = []
        drop = set(_FORWARDING)
        drop.add(xff_name.lower())
        if head.proxied:
            # The front took client and scheme from a trusted proxy: its chain is kept (the
            # client it names is already the last untrusted hop), not extended with itself.
            chain = b", ".join(v for n, v in head.headers if n.lower() == xff_name.lower())
            extra.append((xff_name, chain or shown))
            forwarded = b", ".join(v for n, v in head.headers if n.lower() == b"forwarded")
        else:
            extra.append((xff_name, shown))
            forwarded = b""
        extra.append((b"X-Forwarded-Proto", head.scheme.encode("ascii")))
        extra.append((b"X-Forwarded-Host", client_host))
        if section.forwarded:
            node = b'"' + shown + b'"' if b":" in shown else shown
            mine = b"for=" + node + b";proto=" + head.scheme.encode("ascii") + b";host=\"" + \
                client_host.replace(b"\\", b"").replace(b'"', b"") + b"\""
            extra.append((b"Forwarded", forwarded + b", " + mine if forwarded else mine))
        extra.append((b"X-Original-URL", origin_form(head.target)))
        return request_head(head.method, target, head.headers, send_host, body=body_mode, length=length,
                            extra=extra, websocket=websocket, drop=frozenset(drop),
                            keep_alive=section.keep_alive)

    async def _exchange(self, ctx, section, farm, server, conn, request, body_mode, timeout,
                        cookie, host, loop, stale_retry, retry):
        head = ctx.head
        started = time.monotonic()
        conn.reader = reader = ResponseReader(head_only=ctx.head_only,
                                              max_header=int(section.max_response_header_size))
        conn.limit = int(section.response_buffer_limit)
        conn.used += 1
        try:
            conn.write(request)
            if body_mode != "none":
                await _send_body(ctx, conn, body_mode == "chunked", timeout)
            deadline = loop.time() + timeout
            while not reader.head_done and conn.error is None and not conn.closed:
                left = deadline - loop.time()
                if left <= 0 or not await conn.wait(left):
                    conn.close()
                    raise GatewayError(f"{server.key} sent no response in {timeout:g}s "
                                       "(ERROR_WINHTTP_TIMEOUT)")
        except Cancelled:
            conn.close()
            raise
        except (OSError, TimeoutError) as exc:
            conn.close()
            if stale_retry:
                raise _Stale() from None
            if retry and not isinstance(exc, TimeoutError):
                raise _Failed(f"sending to {server.key}: {exc}") from None
            raise GatewayError(f"sending to {server.key}: {exc}") from None
        except BaseException:
            conn.close()
            raise
        if not reader.head_done:
            conn.close()
            if stale_retry and not reader.status:
                raise _Stale()
            if retry and not reader.status:
                # Closed or reset before a byte of response (a backend that died with the
                # request): an idempotent request without a body goes to the next server.
                raise _Failed(f"{server.key}: {conn.error or 'closed the connection without a response'}")
            raise GatewayError(f"{server.key}: {conn.error or 'closed the connection without a response'}")
        elapsed = (time.monotonic() - started) * 1000.0
        server.avg_ms = elapsed if not server.avg_ms else server.avg_ms * 0.8 + elapsed * 0.2
        add = ()
        if farm is not None and farm.use_cookie and cookie != server.cookie.encode():
            add = ((b"Set-Cookie", farm.cookie_name + b"=" + server.cookie.encode() + b"; Path=/; HttpOnly"),)
        rewrite = None
        if section.reverse_rewrite_host_in_response_headers:
            rewrite = _rewriter(ctx, server, host)
        try:
            block = response_block(reader, rewrite, add)
        except BackendError as exc:
            conn.close()
            raise GatewayError(str(exc)) from None
        if reader.status == 101:
            if not head.websocket:
                conn.close()
                raise GatewayError("the backend switched protocols unasked")
            return await _tunnel(ctx, conn, block, timeout)
        length = reader.content_length if not any(
            n.lower() == b"transfer-encoding" for n, _ in reader.headers) else -1
        if reader.done and conn.error is None:
            body = reader.take()
            ctx.respond(block, body, content_length=length if ctx.head_only and length >= 0 else len(body))
            _release(server, conn, reader, section)
            return FINISH
        ctx.start_response(block, length)
        try:
            while True:
                data = reader.take()
                if data:
                    conn.resume()
                    await ctx.send_body_async(data)  # waits for the front's WINDOW credit
                    continue
                if reader.done:
                    break
                if conn.error is not None or conn.closed:
                    raise BackendError(str(conn.error or "the backend closed mid-response"))
                conn.resume()
                if not await conn.wait(timeout):
                    raise BackendError(f"no body bytes from {server.key} in {timeout:g}s")
        except BackendError as exc:
            log.warning("proxy to %s cut: %s", server.key, exc)
            conn.close()
            ctx.abort(502, 3)
            return FINISH
        except BaseException:
            conn.close()
            raise
        ctx.end()
        _release(server, conn, reader, section)
        return FINISH


def _release(server, conn, reader, section) -> None:
    if section.keep_alive and reader.keep_alive and reader.done and conn.error is None:
        server.give_back(conn, section.max_idle_connections)
    else:
        conn.close()


async def _send_body(ctx, conn, chunked: bool, timeout: float) -> None:
    """The request body to the backend as the front sends it; each piece is acknowledged to the
    front (take()) only once the backend's socket took the previous one (drain)."""
    body = ctx.body
    while True:
        data, more = await body.take()
        if data:
            conn.write(chunk(data) if chunked else data)
            await conn.drain(timeout)
        if not more:
            break
        if conn.closed or conn.error is not None or (conn.reader is not None and conn.reader.done):
            return  # the backend answered (or gave up) before the whole body: stop sending
    if chunked:
        conn.write(LAST_CHUNK)


async def _tunnel(ctx, conn, block: bytes, timeout: float):
    """A WebSocket after the backend's 101: raw bytes both ways until either side closes."""
    ctx.start_response(block, -1)
    body = ctx.body

    async def upstream():
        if body is None:
            return
        while True:
            data, more = await body.take()
            if data:
                conn.write(data)
                await conn.drain(3600.0)
            if not more or conn.closed:
                return

    pump = asyncio.ensure_future(upstream())
    try:
        while True:
            raw = conn.raw or []
            if raw:
                data = b"".join(raw)
                raw.clear()
                conn.resume()
                await ctx.send_body_async(data)
                continue
            if conn.closed or pump.done():
                break
            await conn.wait(3600.0)
    finally:
        pump.cancel()
        conn.close()
    if not ctx.finished:
        ctx.end()
    return FINISH


def origin_form(target: bytes) -> bytes:
    """The request target as path?query: an absolute-form target ("http://host/p") loses its
    scheme and authority, which never choose where the proxy goes (SSRF)."""
    if target.startswith(b"/"):
        return target
    scheme, sep, rest = target.partition(b"://")
    if sep:
        slash = rest.find(b"/")
        query = rest.find(b"?")
        if slash < 0 or (0 <= query < slash):
            return b"/" + (rest[query:] if query >= 0 else b"")
        return rest[slash:]
    return b"/"


def _cookie(headers, name: bytes) -> bytes | None:
    prefix = name + b"="
    for key, value in headers:
        if key.lower() == b"cookie":
            for part in value.split(b";"):
                part = part.strip()
                if part.startswith(prefix):
                    return part[len(prefix):]
    return None


def _rewriter(ctx, server, host: str):
    """ARR's reverse rewrite: the backend's host in Location / Content-Location / Refresh
    becomes the one the client asked for."""
    client_host = next((v for n, v in ctx.head.headers if n.lower() == b"host"), b"")
    if not client_host:
        return None
    names = {server.host_header, host.encode("ascii", "replace")}
    if server.port in (80, 443):
        names.add(f"{server.address}:{server.port}".encode("ascii", "replace"))
    scheme = ctx.head.scheme.encode("ascii")

    def rewrite(name: bytes, value: bytes) -> bytes:
        if name not in (b"location", b"content-location", b"refresh"):
            return value
        for backend_scheme in (b"http://", b"https://"):
            for backend in names:
                old = backend_scheme + backend
                at = value.find(old)
                if at >= 0:
                    end = at + len(old)
                    if end == len(value) or value[end:end + 1] in (b"/", b"?", b"#"):
                        return value[:at] + scheme + b"://" + client_host + value[end:]
        return value
    return rewrite

