"""FastCgiModule: runs a request through a FastCGI application (Responder role).

A handler entry maps URLs to it with the application in `script_processor`:
`{ name = "PHP_via_FastCGI", path = "*.php", verb = "GET,HEAD,POST", modules = "fast_cgi",
script_processor = "/usr/bin/php-cgi", resource_type = "Either" }`. An executable must have an
entry in the `fast_cgi` section (IIS refuses a scriptProcessor with no `<fastCgi><application>`:
500); the worker runs its processes (wasp/worker/fastcgi_pool.py). An address ("unix:/run/php/
fpm.sock", "127.0.0.1:9000") is an external server such as php-fpm, with an optional entry for its
timeouts and stderr_mode.

The script must exist under physical_path (404 otherwise, never passed on); the request goes as
BEGIN_REQUEST, PARAMS (wasp/worker/gateway.py's meta-variables) and STDIN (the body streamed as
it arrives, a chunked one read whole first); STDOUT is relayed with back-pressure. Errors are
IIS's: 500 when the process exits unexpectedly, sends nothing for `activity_timeout`, or the
request runs past `request_timeout` (the process is killed), 503.4 when `queue_length` requests
already wait, 503 while rapid-fail protection holds. STDERR follows `stderr_mode`.
"""

from __future__ import annotations

import asyncio
import logging
import os

from wasp.config.sections.fast_cgi import FastCgiApplication
from wasp.errors import HttpError
from wasp.wire import fastcgi as fcgi
from wasp.worker import gateway
from wasp.worker.context import Cancelled
from wasp.worker.flow import to_async
from wasp.worker.fastcgi_pool import External, FastCgiFailure, is_address, pool_for, shutdown_all
from wasp.worker.registry import FINISH, Module, Phase, register

log = logging.getLogger("wasp.worker.fastcgi")

STDERR_KEEP = 64 * 1024
#: A body up to this size to a server with kept connections is read whole before it is sent,
#: so that the request can go again on a new connection (a larger one streams: no retry).
RETRY_BODY = 64 * 1024
_GENERIC = b"The FastCGI application wrote to its error stream.\r\n"


def settings_for(section, path: str, arguments: str):
    """The `fast_cgi` application entry for full_path|arguments (IIS compares them ignoring case)."""
    key = (path.lower(), arguments.lower())
    for entry in section.applications:
        if (entry.full_path.lower(), entry.arguments.lower()) == key:
            return entry
    return None


class _Exchange:
    __slots__ = ("stderr", "ended", "protocol_status", "clean")

    def __init__(self):
        self.stderr = bytearray()
        self.ended = False
        self.protocol_status = 0
        self.clean = False     # nothing after END_REQUEST: the connection can serve another


class _Gone(Exception):
    """A kept connection was closed by the server before it answered anything."""


@register("fast_cgi", phases=(Phase.EXECUTE_REQUEST_HANDLER,))
class FastCgiModule(Module):
    def setup(self, app) -> None:
        physical = app.config.physical_path
        self.root = os.path.realpath(physical) if physical else None
        self.threaded = app.threaded
        self.externals: dict = {}

    def wants(self, phase) -> bool:
        return self.root is not None

    def cleanup(self) -> None:
        for external in self.externals.values():
            external.shutdown()
        shutdown_all()

    def execute_request_handler(self, ctx):
        # In a threaded application (a WSGI app, or web_dav) this handler is not blocking, so
        # it runs on the loop: its body is read there (flow.to_async).
        to_async(ctx)
        return self.run(ctx)

    def target_for(self, ctx):
        processor = ctx.mapping.script_processor if ctx.mapping is not None else ""
        if not processor:
            raise FastCgiFailure(f"handler {getattr(ctx.mapping, 'name', '')} has no script_processor")
        path, arguments = gateway.split_processor(processor)
        settings = settings_for(ctx.config.fast_cgi, path, arguments)
        if is_address(path):
            external = self.externals.get((path, id(settings)))
            if external is None:
                external = External(path, settings or FastCgiApplication(full_path=path))
                if len(self.externals) < 256:
                    self.externals[(path, id(settings))] = external
                else:
                    external.keep = 0  # not kept itself: its connections could not be either
            return external
        if settings is None:
            raise FastCgiFailure(f"no fast_cgi application is configured for {processor}")
        return pool_for(settings)

    async def run(self, ctx):
        target = self.target_for(ctx)
        script = gateway.find_script(ctx, self.root)
        env = gateway.environ(ctx, script)
        body = None
        if ctx.head.content_length < 0:
            body = await gateway.read_unsized(ctx) if ctx.body is not None else b""
            env["CONTENT_LENGTH"] = str(len(body))
        elif ctx.body is None:
            body = b""
        elif ctx.head.content_length <= RETRY_BODY and target.__class__ is External and target.keep:
            body = await gateway.read_unsized(ctx)  # at hand for a retry on a new connection
        settings = target.settings
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(settings.request_timeout)
        external = isinstance(target, External)
        # A kept connection the server closed just as it was taken (php-fpm's child reached
        # pm.max_requests) is retried once on a new one, when nothing came back on it and the
        # whole request is still at hand (a streamed body is not).
        retry = external and body is not None
        inst = None
        conn = None
        reused = False
        fresh = False
        healthy = False
        feeder = None
        try:
            while True:
                if external:
                    conn = None if fresh else target.take_idle()  # the common case: no timer, no await
                    reused = conn is not None
                    try:
                        if conn is None:
                            async with asyncio.timeout(deadline - loop.time()):
                                conn, reused = await target.acquire(deadline, fresh)
                    except (OSError, asyncio.TimeoutError) as exc:
                        raise FastCgiFailure(f"cannot connect to the FastCGI server {target.name}: {exc}") from None
                    rid = 1
                    keep = target.keep > 0
                else:
                    inst = await target.acquire(deadline)
                    conn = inst.conn
                    rid = inst.next_id()
                    keep = True
                first = fcgi.pack_begin(rid, keep_conn=keep) + fcgi.pack_params(rid, env.items())
                try:
                    if body is not None:
                        conn.write(first + fcgi.pack_stdin(rid, body) + fcgi.pack_stdin(rid, b"") if body
                                   else first + fcgi.pack_stdin(rid, b""))
                    else:
                        conn.write(first)
                        feeder = asyncio.ensure_future(_feed(ctx, conn, rid))
                except OSError:
                    pass  # it went away: the read below says so
                try:
                    exchange = await self._read(ctx, target, inst, conn, rid, deadline, retry and reused)
                except _Gone:
                    log.debug("%s closed a kept connection: the request goes on a new one", target.name)
                    target.release(conn, False)
                    conn = None
                    retry = False
                    fresh = True
                    continue
                break
            healthy = exchange.protocol_status == fcgi.REQUEST_COMPLETE and exchange.clean \
                and (feeder is None or (feeder.done() and not feeder.cancelled() and feeder.result()))
        except HttpError as exc:
            # IIS writes its FastCGI failures to the event log; the error page carries no detail
            log.warning("%s %s: %s", ctx.head.method, ctx.head.path.decode("utf-8", "replace"), exc.detail)
            raise
        finally:
            if feeder is not None:
                feeder.cancel()
            if inst is not None:
                target.release(inst, healthy)
            elif conn is not None:
                try:
                    target.release(conn, healthy and conn.size == 0)
                except Exception:
                    pass
        return FINISH

    async def _read(self, ctx, target, inst, conn, rid: int, deadline: float,
                    retryable: bool = False) -> _Exchange:
        settings = target.settings
        mode = settings.stderr_mode
        activity = float(settings.activity_timeout)
        loop = asyncio.get_running_loop()
        parser = fcgi.Reader(rid)
        relay = gateway.Relay(ctx, FastCgiFailure(f"{target.name} sent a malformed response head"))
        exchange = _Exchange()
        received = False
        while not exchange.ended:
            left = deadline - loop.time()
            wait = min(activity, left)
            if left <= 0:
                raise FastCgiFailure(f"{target.name} exceeded the configured request_timeout")
            try:
                data = await conn.read(wait)
            except asyncio.TimeoutError:
                which = "request_timeout" if wait >= left else "activity_timeout"
                raise FastCgiFailure(f"{target.name} exceeded the configured {which}") from None
            except OSError as exc:
                if retryable and not received:
                    raise _Gone() from None
                if inst is not None:
                    inst.fail()
                raise FastCgiFailure(f"the FastCGI process {target.name} exited unexpectedly ({exc})") from None
            if not data:
                if retryable and not received:
                    raise _Gone()
                if inst is not None:
                    inst.fail()
                raise FastCgiFailure(f"the FastCGI process {target.name} exited unexpectedly")
            received = True
            try:
                events = parser.feed(data)
            except fcgi.FastCgiError as exc:
                raise FastCgiFailure(f"{target.name} broke the FastCGI protocol: {exc}") from None
            for event in events:
                cls = event.__class__
                if cls is fcgi.Stdout:
                    if not ctx.cancelled:
                        await relay.feed(event.data)
                elif cls is fcgi.Stderr:
                    if len(exchange.stderr) < STDERR_KEEP:
                        exchange.stderr += event.data[:STDERR_KEEP - len(exchange.stderr)]
                    if mode == "TerminateProcess":
                        log.warning("%s wrote to stderr (TerminateProcess): %s", target.name,
                                    event.data.decode("utf-8", "replace").rstrip())
                        raise FastCgiFailure(f"{target.name} wrote to stderr (stderr_mode TerminateProcess)")
                elif cls is fcgi.EndRequest:
                    exchange.ended = True
                    exchange.protocol_status = event.protocol_status
        exchange.clean = parser.buffered == 0
        if exchange.protocol_status != fcgi.REQUEST_COMPLETE:
            if exchange.protocol_status == fcgi.OVERLOADED:
                raise FastCgiFailure(f"{target.name} is overloaded", status=503)
            raise FastCgiFailure(f"{target.name} refused the request (protocol status "
                                 f"{exchange.protocol_status})")
        if exchange.stderr:
            text = bytes(exchange.stderr)
            log.warning("%s wrote to stderr for %s: %s", target.name,
                        ctx.head.path.decode("utf-8", "replace"), text.decode("utf-8", "replace").rstrip())
            if mode != "IgnoreAndReturn200" and not relay.started:
                body = text if mode == "ReturnStdErrIn500" else _GENERIC
                ctx.respond(b"500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\n"
                            b"X-Content-Type-Options: nosniff\r\nContent-Length: %d\r\n" % len(body), body)
                return exchange
        if not ctx.cancelled:
            await relay.finish()
        return exchange


async def _feed(ctx, conn, rid: int) -> bool:
    """The request body as STDIN records, at the pace the application reads it; True once all
    of it went (a connection with a STDIN stream cut short cannot serve another request)."""
    try:
        while True:
            data, more = await ctx.body.take()
            if data:
                conn.write(fcgi.pack_stdin(rid, data))
                await conn.drain()
            if not more:
                break
        conn.write(fcgi.pack_stdin(rid, b""))
        await conn.drain()
        return True
    except (Cancelled, OSError):
        pass
    except Exception:
        log.debug("request body to FastCGI stopped", exc_info=True)
    return False
