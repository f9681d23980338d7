"""Pools and worker processes as the manager sees them: state tables and records. No I/O.

The states are IIS's (reference §6.3): a pool is Starting, Started, Stopping or Stopped, plus
Disabled when rapid-fail protection took it offline; a worker is Starting (spawned, loading its
apps), Ready (loaded and attached to the front), Draining (told to stop) and finally Gone; the
front is Running, Stopping or Down.
"""

from __future__ import annotations

import collections
from enum import Enum

from wasp.config.model import Pool


class IllegalTransition(Exception):
    """A state change the table does not allow: a bug in the caller, never a runtime condition."""


class PoolState(Enum):
    STARTING = "Starting"
    STARTED = "Started"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    DISABLED = "Disabled"


POOL_TRANSITIONS: dict[PoolState, frozenset[PoolState]] = {
    PoolState.STARTING: frozenset({PoolState.STARTED, PoolState.STOPPING, PoolState.DISABLED}),
    PoolState.STARTED: frozenset({PoolState.STOPPING, PoolState.DISABLED}),
    # A start while the old workers still drain is allowed: the new ones start beside them.
    PoolState.STOPPING: frozenset({PoolState.STOPPED, PoolState.STARTING}),
    PoolState.STOPPED: frozenset({PoolState.STARTING}),
    PoolState.DISABLED: frozenset({PoolState.STARTING, PoolState.STOPPING}),
}


class WorkerState(Enum):
    STARTING = "Starting"
    READY = "Ready"
    DRAINING = "Draining"
    GONE = "Gone"


WORKER_TRANSITIONS: dict[WorkerState, frozenset[WorkerState]] = {
    WorkerState.STARTING: frozenset({WorkerState.READY, WorkerState.DRAINING, WorkerState.GONE}),
    WorkerState.READY: frozenset({WorkerState.DRAINING, WorkerState.GONE}),
    WorkerState.DRAINING: frozenset({WorkerState.GONE}),
    WorkerState.GONE: frozenset(),
}


def check_transition(table: dict, current: Enum, new: Enum) -> None:
    if new not in table[current]:
        raise IllegalTransition(f"{current.value} -> {new.value}")


class FailureWindow:
    """Worker failures of one pool inside the rapid-fail interval (IIS rapidFailProtection)."""

    __slots__ = ("times",)

    def __init__(self) -> None:
        self.times: collections.deque[float] = collections.deque()

    def add(self, now: float, interval: float) -> int:
        """Record a failure; returns how many fall inside the window ending now."""
        self.times.append(now)
        self.trim(now, interval)
        return len(self.times)

    def trim(self, now: float, interval: float) -> None:
        while self.times and self.times[0] <= now - interval:
            self.times.popleft()

    def clear(self) -> None:
        self.times.clear()


class CpuWindow:
    """CPU seconds a pool's workers used since the window began (IIS cpu.resetInterval)."""

    __slots__ = ("start", "base", "done", "acted")

    def __init__(self) -> None:
        self.start: float | None = None
        self.base: dict[int, float] = {}   # worker id -> its CPU seconds when the window began
        self.done = 0.0                    # used in this window by workers that have exited
        self.acted = False                 # the limit's action already ran in this window

    def reset(self, now: float, workers: list["WorkerRecord"]) -> None:
        self.start = now
        self.base = {w.worker_id: w.cpu_s for w in workers}
        self.done = 0.0
        self.acted = False

    def used(self, workers: list["WorkerRecord"]) -> float:
        return self.done + sum(max(0.0, w.cpu_s - self.base.get(w.worker_id, 0.0)) for w in workers)

    def over_limit(self, now: float, workers: list["WorkerRecord"], limit_pct: float,
                   interval: float, cpu_count: int) -> float | None:
        """The percentage of the machine's CPU used so far in this window when it is over
        `limit_pct` for the first time in the window, else None. A window that has run its
        `interval` starts over (with the workers' current numbers as the base)."""
        if self.start is None or now >= self.start + interval:
            self.reset(now, workers)
            return None
        if self.acted:
            return None
        used_pct = 100 * self.used(workers) / (cpu_count * interval)
        if used_pct <= limit_pct:
            return None
        self.acted = True
        return round(used_pct, 1)

    def retire(self, w: "WorkerRecord") -> None:
        """A worker exited: keep what it used in this window."""
        self.done += max(0.0, w.cpu_s - self.base.pop(w.worker_id, 0.0))


class PoolRecord:
    """One pool: its settings, state, how many workers it wants, and its failure history."""

    def __init__(self, settings: Pool):
        self.settings = settings
        self.state = PoolState.STOPPED
        # Workers to keep. always_running pools want max_processes while Started; on_demand pools
        # want them after a `demand` and fewer as idle workers are shut down.
        self.wanted = 0
        self.failures = FailureWindow()
        self.consecutive_failures = 0
        self.spawn_not_before = 0.0  # back-off after consecutive failures
        self.next_schedule: float | None = None  # wall-clock time of the next scheduled recycle
        self.disabled_reason = ""
        self.cpu = CpuWindow()
        # A replacement that failed to start while a worker of the pool still serves (a broken
        # deploy): retried with a back-off, never counted by rapid-fail protection.
        self.recycle_attempts = 0     # failed replacements in a row; 0 = not failing
        self.recycle_error = ""
        self.recycle_retry_at: float | None = None
        # Every worker that failed before it was ready, and why the last one did: what
        # `recycle pool` waits for besides success.
        self.start_failures = 0
        self.last_start_error = ""
        # When the pool was last started (monotonic): its uptime while Started (metrics).
        self.started_at: float | None = None

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def always_running(self) -> bool:
        return self.settings.start_mode == "always_running"

    def set_state(self, new: PoolState) -> None:
        check_transition(POOL_TRANSITIONS, self.state, new)
        self.state = new

    def front_state(self) -> tuple[str, str]:
        """(state, reason) of this pool in the front's terms (control op `pool_state`)."""
        if self.state in (PoolState.STARTING, PoolState.STARTED):
            return "Started", ""
        if self.state is PoolState.DISABLED:
            return "Disabled", "AppOffline"
        return "Stopped", "Disabled"


class WorkerRecord:
    """One worker process of a pool."""

    def __init__(self, worker_id: int, pool: str, now: float):
        self.worker_id = worker_id
        self.pool = pool
        self.state = WorkerState.STARTING
        self.pid = 0
        self.started = now            # when it was spawned
        self.state_since = now
        self.ready_at: float | None = None
        self.recycle_at: float | None = None  # recycling.time deadline, with jitter
        # Overlapped rotation: still serving, but no longer counted towards the pool's workers;
        # drained as soon as a new worker of the pool is ready.
        self.retiring = False
        # Non-overlapped rotation: draining, but keeps its slot so no replacement starts before
        # it has exited.
        self.holds_slot = False
        self.stop_asked = False       # its exit is expected (drain, stop, kill we chose)
        self.serve_then_stop = False  # starting when the server began to stop: attach, then stop
        self.counts_as_failure = False  # killed for a reason rapid-fail protection counts
        self.failure_reason = ""
        self.load_error = ""
        self.load_traceback = ""
        # Health: the outstanding ping (id, sent at) and when the next one is due.
        self.ping_id = 0
        self.ping_sent: float | None = None
        self.next_ping = now
        self.last_pong: float | None = None
        self.served = 0
        self.inflight = 0
        self.idle_s = 0.0
        self.idle_check_at: float | None = None
        self.vms = 0
        self.uss = 0
        self.over_vms = 0             # memory samples in a row over recycling.memory
        self.over_uss = 0             # ... over recycling.private_memory
        self.cpu_s = 0.0              # CPU seconds (user + system) at the last pong
        self.kill_at: float | None = None  # startup or shutdown deadline
        self.killed = False

    def set_state(self, new: WorkerState, now: float) -> None:
        check_transition(WORKER_TRANSITIONS, self.state, new)
        self.state = new
        self.state_since = now

    @property
    def live(self) -> bool:
        return self.state is not WorkerState.GONE


class FrontState(Enum):
    DOWN = "Down"
    RUNNING = "Running"
    STOPPING = "Stopping"


FRONT_TRANSITIONS = {
    FrontState.DOWN: frozenset({FrontState.RUNNING}),
    FrontState.RUNNING: frozenset({FrontState.DOWN, FrontState.STOPPING}),
    FrontState.STOPPING: frozenset({FrontState.DOWN}),
}


class FrontRecord:
    """One front (by index: the supervisor has one per `server.front_processes`)."""

    def __init__(self) -> None:
        self.state = FrontState.DOWN
        self.started = 0.0
        self.quick_deaths = 0
        self.restart_at: float | None = None
        self.ping_id = 0
        self.ping_sent: float | None = None
        self.next_ping = 0.0

    def set_state(self, new: FrontState) -> None:
        check_transition(FRONT_TRANSITIONS, self.state, new)
        self.state = new
