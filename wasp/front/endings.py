"""What happens to a routed request, the same for an HTTP/1.1 connection and an HTTP/2 stream:
answered from the response cache or submitted to its pool, and how it ends when its worker gives
up on it. Each protocol supplies `_send_error` (the one place an HttpError becomes a response),
`_send_cached` (a cache hit in its framing) and `_cut` (end a response already under way)."""

from __future__ import annotations

from wasp.errors import HttpError
from wasp.front.cache import refuses
from wasp.front.queues import PoolState
from wasp.front.request import ConnState, Request, Stage
from wasp.wire.http import AppPoolUnavailable

_STARTED = PoolState.STARTED   # a global: an enum member lookup costs a call on Python 3.11


class RequestEndings:
    __slots__ = ()

    def _submit(self, req: Request) -> None:
        """A routed request: a cache hit is answered at once (never for a stopped pool, which
        owes its 503), a miss may be admitted for storing, then it joins its pool's queue."""
        server = self.server
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
