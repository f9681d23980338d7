"""What the supervisor asks the manager's I/O side to do. Plain values; no I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SpawnFront:
    """Start front `index`, then send it `config` with the listening sockets."""

    index: int = 0


@dataclass(frozen=True, slots=True)
class StopFront:
    """Send front `index` `stop` (`handover`: another generation takes the traffic, `wasp
    upgrade`: idle keep-alive connections are left to their own idle timeout)."""

    index: int = 0
    handover: bool = False


@dataclass(frozen=True, slots=True)
class KillFront:
    index: int = 0


@dataclass(frozen=True, slots=True)
class PingFront:
    ping_id: int
    index: int = 0


@dataclass(frozen=True, slots=True)
class SpawnWorker:
    """Start a worker of `pool` and send it `init` with the current config."""

    worker_id: int
    pool: str


@dataclass(frozen=True, slots=True)
class AttachWorker:
    """A data socketpair per front (`front` None: every running front; else that index):
    `attach` to the worker, `worker_add` to the front."""

    worker_id: int
    front: int | None = None


@dataclass(frozen=True, slots=True)
class StopWorker:
    """Graceful stop: `worker_drain` to the front (when `drain`), then `stop` to the worker."""

    worker_id: int
    drain: bool = True


@dataclass(frozen=True, slots=True)
class KillWorker:
    worker_id: int


@dataclass(frozen=True, slots=True)
class OrphanWorker:
    """Leave a failed worker running for debugging: the front stops using it, the manager forgets
    it (reaping it whenever it exits) and runs `command` (\"\" = none)."""

    worker_id: int
    command: str = ""


@dataclass(frozen=True, slots=True)
class RunCommand:
    """Run an admin's command line (IIS orphanActionExe, autoShutdownExe); its exit is ignored."""

    command: str


@dataclass(frozen=True, slots=True)
class PingWorker:
    worker_id: int
    ping_id: int


@dataclass(frozen=True, slots=True)
class SetPoolState:
    """`pool_state` to the fronts (`front` None: every running one): "Started", or
    "Stopped"/"Disabled" with the 503 reason."""

    pool: str
    state: str
    reason: str = ""
    front: int | None = None


@dataclass(frozen=True, slots=True)
class PoolUnhosted:
    """`pool_unhosted` to every front: a replacement worker failed to start while others of
    the pool serve; requests for applications no serving worker hosts (a reload added them)
    get 503 `reason` instead of waiting for it."""

    pool: str
    reason: str = "AppOffline"


@dataclass(frozen=True, slots=True)
class Event:
    """An entry for the event log (and a line on stderr); ids in `wasp.manager.events`."""

    event_id: int
    pool: str = ""
    pid: int = 0
    data: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Exit:
    """Shutting down and every child is gone: the manager may clean up and exit."""


Action = (SpawnFront | StopFront | KillFront | PingFront | SpawnWorker | AttachWorker | StopWorker
          | KillWorker | OrphanWorker | RunCommand | PingWorker | SetPoolState | Event | Exit)
