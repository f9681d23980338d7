"""Non-HTTP activation (WAS's listener adapters for net.tcp / net.pipe): the manager side.

A `protocol = "tcp"` pool's listening sockets are bound by the manager (as it binds the HTTP
ports for the front) and held for its whole life. While the pool is Started and wants no worker
(on demand, nothing running yet or stopped for idleness) the manager waits for readability on
them; the first connection is left in the kernel's backlog, the reader is dropped and the pool
gets a demand, exactly as the front's first request does for an HTTP pool. Every worker of the
pool gets the listening sockets in its `init` (SCM_RIGHTS) and accepts on them itself, so during
an overlapped recycle the new worker takes new connections once the old one is told to stop
(it then closes its copy and keeps only the connections it has). While the pool is Stopped or
Disabled (rapid-fail protection) nobody serves: the manager accepts and closes each connection,
the tcp_level answer of IIS's loadBalancerCapabilities. The decisions stay the supervisor's;
this mixin only watches sockets (docs/services.md).
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING

from wasp.config import services as service_config
from wasp.manager.pools import PoolState

if TYPE_CHECKING:
    from wasp.manager.listeners import ListenerSet

log = logging.getLogger("wasp.manager")

DEMAND = "demand"
REFUSE = "refuse"


def addresses(plan: dict[str, list[tuple[str, int]]]) -> list[tuple[str, int]]:
    return [a for pool in plan.values() for a in pool]


class ServiceActivation:
    """Mixin of `Manager`: `services` is the ListenerSet of every tcp pool's sockets,
    `service_plan` pool -> its addresses."""

    services: ListenerSet
    service_plan: dict[str, list[tuple[str, int]]]
    _service_modes: dict[str, str | None]

    def service_fds(self, pool: str) -> list[int]:
        return [self.services.sockets[a].fileno() for a in self.service_plan.get(pool, [])
                if a in self.services.sockets]

    def is_service_pool(self, pool: str) -> bool:
        return pool in self.service_plan

    def _sync_services(self) -> None:
        """Watch each tcp pool's sockets as its state asks: for a demand, to refuse, or not."""
        for pool in self.service_plan:
            rec = self.sup.pools.get(pool)
            mode = None
            if rec is not None and not self.sup.shutting_down:
                if rec.state is PoolState.STARTED and rec.wanted == 0:
                    mode = DEMAND
                elif rec.state in (PoolState.DISABLED, PoolState.STOPPED):
                    mode = REFUSE
            if self._service_modes.get(pool) == mode:
                continue
            self._unwatch_service(pool)
            self._service_modes[pool] = mode
            for fd in self.service_fds(pool):
                if mode == DEMAND:
                    self.loop.add_reader(fd, self._service_demand, pool)
                elif mode == REFUSE:
                    self.loop.add_reader(fd, self._service_refuse, fd)

    def _unwatch_service(self, pool: str) -> None:
        if self._service_modes.get(pool) is None:
            return
        for fd in self.service_fds(pool):
            self.loop.remove_reader(fd)
        self._service_modes[pool] = None

    def _service_demand(self, pool: str) -> None:
        # The connection stays in the backlog for the worker; stop watching until it is needed.
        self._unwatch_service(pool)
        self.queue.put_nowait(("service_demand", pool))

    def _service_refuse(self, fd: int) -> None:
        sock = socket.socket(fileno=fd)
        try:
            for _ in range(64):
                try:
                    conn, _ = sock.accept()
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:
                    log.warning("service socket: accept failed: %s", exc)
                    break
                conn.close()
        finally:
            sock.detach()

    def _services_reconfigure(self, config) -> dict[str, list[tuple[str, int]]]:
        """Bind what the new config's tcp pools need (BindError leaves everything as it was)."""
        new_plan = service_config.plan(config)
        for pool in list(self._service_modes):
            self._unwatch_service(pool)
        try:
            self.services.apply(addresses(new_plan))
        finally:
            self._service_modes = {}
        return new_plan

    def _services_close(self) -> None:
        for pool in list(self._service_modes):
            self._unwatch_service(pool)
        self.services.close()
