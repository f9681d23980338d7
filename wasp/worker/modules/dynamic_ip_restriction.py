"""DynamicIpRestrictionModule: deny a client with too many requests in flight (x.501) or too many
requests in a short time (x.502).

BEGIN_REQUEST counts the request for its client (wasp/worker/clients.py) under the URL's
effective `dynamic_ip_security`; END_REQUEST takes it out of the client's requests in flight.
With both limits off (the default) a request costs two attribute tests. A request counted under
an enabled limit is marked private (the front's cache must not answer a client this module would
deny). The client is `RequestHead.client` (the peer, or the client a trusted proxy forwarded
for); X-Forwarded-For itself is never used here, even in ip_security's proxy mode, because a
client could rotate a forged one to dodge its own counts.

Counts are per client and application, per *pool*: every worker of the pool counts in the pool's
shared table (wasp/common/clientboard.py, a memfd the manager passes in `init`), so a web garden
of N workers admits exactly the limits, not N times them (IIS counts per w3wp), and a recycle
does not reset a client's counts. A worker without the shared table (started without a manager)
counts on its own (wasp/worker/clients.py). `enable_logging_only_mode` lets
every request through and logs, at most once a second per client, the ones it would deny.
"""

from __future__ import annotations

import logging
import time

from wasp.common.clientboard import BoardError, SharedClientTable
from wasp.worker.clients import ClientTable
from wasp.worker.modules.ip_restriction import deny
from wasp.worker.registry import CONTINUE, Module, Phase, register
from wasp.worker.tables import mentioned

log = logging.getLogger("wasp.worker")

_KEY = "dynamic_ip_restriction"
_LOG_LIMIT = 4096


@register("dynamic_ip_restriction", phases=(Phase.BEGIN_REQUEST, Phase.END_REQUEST))
class DynamicIpRestrictionModule(Module):
    def setup(self, app) -> None:
        self.app_key = app.key
        self.logged: dict[str, float] = {}
        self.needed = mentioned(app.tables, "dynamic_ip_security")
        self.table = self.prefix = None
        if self.needed:
            self.table = _pool_table(getattr(app, "client_board_fd", None))
            # One board serves every application of the pool: a client's counts are per app.
            self.prefix = f"{app.key}\0" if isinstance(self.table, SharedClientTable) else ""

    def wants(self, phase) -> bool:
        return self.needed

    def begin_request(self, ctx):
        section = ctx.config.dynamic_ip_security
        concurrent = section.deny_by_concurrent_requests
        rate = section.deny_by_request_rate
        if not concurrent.enabled and not rate.enabled:
            return CONTINUE
        ctx.private = True
        client = ctx.head.client[0]
        verdict = self.table.admit(
            self.prefix + client, ctx,
            max_concurrent=concurrent.max_concurrent_requests if concurrent.enabled else 0,
            max_requests=rate.max_requests if rate.enabled else 0,
            interval=rate.request_interval_ms / 1000.0,
            enforce=not section.enable_logging_only_mode)
        if concurrent.enabled and (verdict == 0 or section.enable_logging_only_mode):
            items = ctx.items
            if items is None:
                items = ctx.items = {}
            items[_KEY] = client
        if ctx.freb is not None:
            ctx.freb.emit("IP_RESTRICTION_DECISION", (
                ("ModuleName", "dynamic_ip_restriction"), ("RemoteAddress", client),
                ("Allowed", "true" if verdict == 0 or section.enable_logging_only_mode else "false"),
                ("HttpSubStatus", verdict),
                ("DenyAction", "" if verdict == 0 else
                 "LoggingOnly" if section.enable_logging_only_mode else section.deny_action)))
        if verdict == 0:
            return CONTINUE
        what = "requests in flight" if verdict == 501 else "requests in the interval"
        if section.enable_logging_only_mode:
            self._log(client, verdict, what)
            return CONTINUE
        return deny(ctx, section.deny_action, verdict, f"the client {client} has too many {what}")

    def end_request(self, ctx):
        items = ctx.items
        if items is not None:
            client = items.pop(_KEY, None)
            if client is not None:
                self.table.release(self.prefix + client, ctx)
        return CONTINUE

    def _log(self, client: str, substatus: int, what: str) -> None:
        now = time.monotonic()
        logged = self.logged
        if now - logged.get(client, -2.0) < 1.0:
            return
        if len(logged) >= _LOG_LIMIT:
            logged.clear()
        logged[client] = now
        log.warning("dynamic_ip_security (logging only) would deny %s in %s: too many %s (x.%d)",
                    client, self.app_key, what, substatus)


_BOARDS: dict[int, SharedClientTable] = {}


def _pool_table(fd: int | None):
    """The worker's view of its pool's shared counters (one for all its applications), or a
    table of this worker's own when there are none (a worker started without a manager, or no
    column free)."""
    if fd is None:
        return ClientTable()
    table = _BOARDS.get(fd)
    if table is None:
        try:
            table = _BOARDS[fd] = SharedClientTable(fd)
        except (BoardError, OSError, ValueError) as exc:
            log.warning("dynamic_ip_security: the pool's shared counters are unusable (%s): "
                        "this worker counts on its own", exc)
            return ClientTable()
    return table
