"""How a request ends when its worker gives up on it, the same for an HTTP/1.1 connection and an
HTTP/2 stream: each protocol supplies `_send_error` (the one place an HttpError becomes a
response) and `_cut` (end a response already under way)."""

from __future__ import annotations

from wasp.errors import HttpError
from wasp.front.request import ConnState, Request, Stage
from wasp.wire.http import AppPoolUnavailable


class RequestEndings:
    __slots__ = ()

    def on_abort(self, req: Request, status: int) -> None:
        """The worker answered ABORT: an error page if nothing was sent yet, else a cut."""
        if req.stage < Stage.SENDING:
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
