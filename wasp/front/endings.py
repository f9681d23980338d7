"""What happens to a routed request, the same for an HTTP/1.1 connection and an HTTP/2 stream:
answered from the response cache or submitted to its pool, and how it ends when its worker gives
up on it. Each protocol supplies `_send_error` (the one place an HttpError becomes a response),
`_send_cached` (a cache hit in its framing) and `_cut` (end a response already under way)."""

from __future__ import annotations

from wasp.errors import HttpError
from wasp.front.cache import Entry, refuses
from wasp.front.queues import PoolState
from wasp.front.request import ConnState, Request, Stage
from wasp.wire.http import AppPoolUnavailable

_STARTED = PoolState.STARTED   # a global: an enum member lookup costs a call on Python 3.11

#: The health URL's answer while all is well, sent like a cache hit (never stored in the cache).
HEALTHY = Entry(None, None, 0, "", b"200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Cache-Control: no-store\r\n", b"OK\n", 0, 0.0, 0.0, ())


class HealthMethod(HttpError):
    status = 405
    reason = "Verb"


class RequestEndings:
    __slots__ = ()

    def _submit(self, req: Request) -> None:
        """A routed request: a cache hit is answered at once (never for a stopped pool, which
        owes its 503), a miss may be admitted for storing, then it joins its pool's queue."""
        server = self.server
        if req.app.health is not None and req.path.lower() == req.app.health:
            self._send_health(req)
            return
        now = server.loop.time()
        key = req.cache_key
        if key is not None and req.pool.state is _STARTED:
            entry = server.cache_lookup(key, req.headers, now)
            if entry is not None and entry.not_for and refuses(entry, req.version, req.headers):
                entry = None  # a compressed copy this client must not get: the worker answers
            if entry is not None:
                self._send_cached(req, entry)
                return
            req.cache_admit = server.cache.admit(key, now)
        try:
            server.dispatcher.submit(req, now)
        except AppPoolUnavailable as exc:
            self._send_error(req, exc)

    def _send_health(self, req: Request) -> None:
        """The site's health_url: 200 while the server runs and the site's pools are Started,
        else 503 with the HTTPERR reason of the first pool that is not (AppShutdown while the
        server drains). GET and HEAD only."""
        if req.method != b"GET" and req.method != b"HEAD":
            self._send_error(req, HealthMethod("the health URL answers GET and HEAD"))
            return
        server = self.server
        reason = "AppShutdown" if server.stopping or server.leaving else None
        if reason is None:
            pools = server.dispatcher.pools
            for name in req.app.health_pools:
                pool = pools.get(name)
                if pool is None or pool.state is not _STARTED:
                    reason = (pool.reason if pool is not None else "") or "AppOffline"
                    break
        if reason is None:
            self._send_cached(req, HEALTHY)
        else:
            self._send_error(req, AppPoolUnavailable(reason))

    def on_abort(self, req: Request, status: int, substatus: int = 0) -> None:
        """The worker answered ABORT: an error page if nothing was sent yet, else a cut. Status 0
        (IIS's AbortRequest) closes the connection without a response, logged as sc-status 0
        with the substatus."""
        if status == 0 and req.stage < Stage.SENDING:
            req.status, req.substatus = 0, substatus
            self._cut(req)
        elif req.stage < Stage.SENDING:
            self._send_error(req, HttpError("the application failed", status=status or 500,
                                            reason="WorkerAbort"))
        else:
            self._cut(req)

    def on_abandoned(self, req: Request) -> None:
        """The worker's channel closed with this request in flight (the worker crashed)."""
        if req.stage < Stage.SENDING:
            self._send_error(req, AppPoolUnavailable("Connection_Abandoned_By_AppPool"))
        else:
            self.server.log_error(self, req, None, "Connection_Abandoned_By_AppPool")
            self._cut(req, logged=True)

    def reject(self, req: Request, err: AppPoolUnavailable) -> None:
        """A queued request the pool will not serve (pool stopped, queue timeout, pool removed)."""
        if self.state is ConnState.CLOSED or req.stage is Stage.DONE:
            return
        self._send_error(req, err)
