"""One bounded request queue per application pool, and dispatch to the pool's workers.

HTTP.sys keeps a kernel queue per pool; worker processes pull from it. Here the front holds the
queue and pushes to a worker with room: each worker said in HELLO how many requests it runs at
once, and a request goes to the worker of its pool with the most free capacity. A request that
finds no room waits in the queue (503 QueueFull when the queue holds `queue_length`); when a worker
finishes one, it takes the next. Requests survive worker crashes and recycles in the queue.

With several fronts (`front_processes`) each front holds its own queue per pool, and the bounds
hold across all of them through the shared scoreboard (wasp/common/scoreboard.py): a pool's
`queue_length` bounds the sum of every front's queued requests (reserve a place, then check), and
a worker's free capacity is its capacity less every front's requests in flight on it, claimed
before a dispatch. A front whose pool has queued requests but whose workers are full with other
fronts' requests is told (`on_starved`) to pump again shortly: another front's request ending
frees the place, and nothing tells this front.

A reload can give a pool an application its running worker did not load (`wasp add app`, an
application moved to another pool): the manager recycles the pool overlapped, and until the new
worker is up the old one keeps serving what it hosts. Each worker names its applications in
HELLO (`apps`); a request goes only to a worker that hosts its application, and one that no
worker hosts waits in the queue (same `queue_length` and timeout) for one that does. When the
replacement fails (`pool_unhosted` from the manager) those requests are answered 503 AppOffline
and new ones for those applications get it at once, until a worker's HELLO (docs/internals.md,
"Reloads that change a pool's applications").

No I/O: workers are objects with `free`, `pool_name`, `apps` (a frozenset of application keys,
or None: all), `claim()` and `dispatch(request)`.
"""

from __future__ import annotations

from collections import deque
from enum import Enum
from typing import Callable, Iterable, Protocol

from wasp.common.scoreboard import QUEUED, Scoreboard, initialize, size_for
from wasp.config.model import Config
from wasp.front.metrics import PoolCounters
from wasp.front.request import Request, Stage
from wasp.wire.http import AppPoolUnavailable


class PoolState(Enum):
    STARTED = "Started"
    STOPPED = "Stopped"
    DISABLED = "Disabled"


_STARTED = PoolState.STARTED   # a global: an enum member lookup costs a call on Python 3.11


class Worker(Protocol):
    pool_name: str
    apps: frozenset[str] | None

    @property
    def free(self) -> int: ...

    def claim(self) -> bool: ...

    def dispatch(self, request: Request) -> None: ...


def worker_hosts(worker: Worker, key: str) -> bool:
    """The worker hosts application `key` (its HELLO named no applications: it hosts them all)."""
    apps = worker.apps
    return apps is None or key in apps


def private_board() -> Scoreboard:
    """A scoreboard nobody else reads: a lone front (tests, or a front started without one)."""
    buf = bytearray(size_for(1))
    initialize(buf, 1)
    return Scoreboard(buf, 0)


class PoolQueue:
    __slots__ = ("name", "limit", "tcp_level", "state", "reason", "queue", "workers",
                 "demand_sent", "served", "cell", "counters", "common", "unhosted")

    def __init__(self, name: str, limit: int, tcp_level: bool, started: bool, cell: int = QUEUED):
        self.name = name
        self.limit = limit
        self.tcp_level = tcp_level
        self.state = PoolState.STARTED if started else PoolState.STOPPED
        self.reason = "Disabled"
        self.queue: deque[Request] = deque()
        self.workers: list[Worker] = []
        self.demand_sent = False
        self.served = 0
        self.cell = cell        # this pool's queued-count cell in the scoreboard
        self.counters = PoolCounters()   # arrivals, rejections, durations (wasp/front/metrics.py)
        #: the applications every worker hosts (None: every worker hosts every application, or
        #: none is up): a request for one of these takes the fast path, any worker will do
        self.common: frozenset[str] | None = None
        #: the reason ("AppOffline") to answer requests for applications no worker hosts, set
        #: when the manager says the worker that would host them failed to start; "" = wait
        self.unhosted = ""

    def update_common(self) -> None:
        common = None
        for worker in self.workers:
            apps = worker.apps
            if apps is not None:
                common = apps if common is None else common & apps
        self.common = common

    def hosts(self, key: str) -> bool:
        """Some worker of the pool hosts application `key` (whether or not it has room)."""
        common = self.common
        if common is None or key in common:
            return True
        return any(worker_hosts(w, key) for w in self.workers)

    def best_worker(self) -> Worker | None:
        best = None
        most = 0
        for worker in self.workers:
            free = worker.free
            if free > most:
                best, most = worker, free
        return best

    def claim_worker(self, key: str | None = None) -> Worker | None:
        """The worker with the most free capacity (among those hosting application `key`),
        with a place claimed on it; None when none has one (another front may have taken the
        last place since `free` was read)."""
        common = self.common
        if key is not None and common is not None and key not in common:
            return self._claim_hosting(key)
        best = self.best_worker()
        if best is None or best.claim():
            return best
        for worker in sorted(self.workers, key=lambda w: -w.free):
            if worker is not best and worker.free > 0 and worker.claim():
                return worker
        return None

    def _claim_hosting(self, key: str) -> Worker | None:
        """claim_worker among the workers that host `key` (some do not: a reload's window)."""
        hosting = [w for w in self.workers if worker_hosts(w, key)]
        for worker in sorted(hosting, key=lambda w: -w.free):
            if worker.free > 0 and worker.claim():
                return worker
        return None


class Dispatcher:
    """The pools of the current config. `on_demand(pool)` asks the manager for a worker."""

    def __init__(self, on_demand: Callable[[str], None], board: Scoreboard | None = None,
                 on_starved: Callable[[], None] | None = None):
        self.pools: dict[str, PoolQueue] = {}
        self._on_demand = on_demand
        self.board = board if board is not None else private_board()
        self._on_starved = on_starved if self.board.shared else None

    # ---- configuration and pool state ----
    def configure(self, config: Config, slots: dict[str, int] | None = None) -> list[Request]:
        """Take the pools of a (new) config; `slots` are the pools' scoreboard rows (the
        manager's; by default their order in the config). Returns the requests queued for pools
        that are gone: the caller answers them 503."""
        if slots is None:
            slots = {pool.name: i for i, pool in enumerate(config.pools)}
        board = self.board
        seen = set()
        orphans: list[Request] = []
        for name in [n for n in self.pools if n not in {p.name for p in config.pools}]:
            gone = self.pools.pop(name)
            orphans.extend(gone.queue)
            gone.queue.clear()
            board.set(gone.cell, 0)
        for pool in config.pools:
            seen.add(pool.name)
            tcp = pool.failure.load_balancer_capabilities == "tcp_level"
            cell = QUEUED + int(slots[pool.name])
            existing = self.pools.get(pool.name)
            if existing is None:
                self.pools[pool.name] = existing = PoolQueue(pool.name, pool.queue_length, tcp,
                                                             pool.auto_start, cell)
            else:
                existing.limit = pool.queue_length
                existing.tcp_level = tcp
                if existing.cell != cell:
                    board.set(existing.cell, 0)  # the pool's row moved: leave nothing behind
                    existing.cell = cell
            board.set(cell, len(existing.queue))
        return orphans

    def set_state(self, name: str, state: str, reason: str = "") -> list[Request]:
        """A `pool_state` message. Returns the queued requests to answer (pool not Started)."""
        pool = self.pools.get(name)
        if pool is None:
            return []
        pool.state = PoolState(state)
        # A demand sent before the pool stopped was answered with a state, not a worker: the
        # next request after a (re)start must ask again.
        pool.demand_sent = False
        if pool.state is PoolState.STARTED:
            self.pump(pool)
            if pool.queue and pool.best_worker() is None:
                pool.demand_sent = True
                self._on_demand(pool.name)
            return []
        pool.reason = reason or ("AppOffline" if pool.state is PoolState.DISABLED else "Disabled")
        rejected = list(pool.queue)
        for _ in rejected:
            pool.counters.reject(pool.reason)
        pool.queue.clear()
        self.board.set(pool.cell, 0)
        return rejected

    # ---- requests ----
    def submit(self, request: Request, now: float) -> None:
        """Dispatch now or queue. Raises AppPoolUnavailable when the pool cannot take it."""
        pool = request.pool
        counters = pool.counters
        counters.arrivals += 1
        if pool.state is not _STARTED:
            counters.reject(pool.reason)
            raise AppPoolUnavailable(pool.reason, close=pool.tcp_level)
        queue = pool.queue
        if pool.common is not None:
            key = request.app.key
            if pool.unhosted and key not in pool.common and not pool.hosts(key):
                counters.reject(pool.unhosted)
                raise AppPoolUnavailable(pool.unhosted, close=pool.tcp_level)
        else:
            key = None
        if not queue:
            worker = pool.claim_worker(key)
            if worker is not None:
                worker.dispatch(request)
                return
        # Reserve the place across every front, then check (wasp/common/scoreboard.py).
        if not self.board.reserve(pool.cell, len(queue) + 1, pool.limit, exact=True):
            counters.reject("QueueFull")
            raise AppPoolUnavailable("QueueFull", close=pool.tcp_level)
        request.move(Stage.QUEUED)
        request.queued_at = now
        queue.append(request)
        if key is not None and len(queue) > 1:
            # Requests no worker hosts wait at the head: this one may still have a place.
            self._pump_partial(pool, pool.common)
            self.board.set(pool.cell, len(queue))
            if request.stage is not Stage.QUEUED:
                return
        if not pool.demand_sent and pool.best_worker() is None:
            pool.demand_sent = True
            self._on_demand(pool.name)
        if self._on_starved is not None and pool.workers:
            self._on_starved()  # other fronts may hold the places: look again shortly

    def withdraw(self, request: Request) -> None:
        """The client went away while the request was queued."""
        pool = request.pool
        if pool is not None:
            try:
                pool.queue.remove(request)
            except ValueError:
                return
            self.board.set(pool.cell, len(pool.queue))

    def pump(self, pool: PoolQueue) -> None:
        """Hand queued requests to workers with room, oldest first."""
        queue = pool.queue
        if not queue:
            return
        common = pool.common
        if common is None:
            while queue:
                worker = pool.claim_worker()
                if worker is None:
                    break
                worker.dispatch(queue.popleft())
        else:
            self._pump_partial(pool, common)
        self.board.set(pool.cell, len(queue))
        if queue and self._on_starved is not None and pool.workers:
            self._on_starved()

    def _pump_partial(self, pool: PoolQueue, common: frozenset[str]) -> None:
        """pump when some worker does not host every application: oldest first, each request to
        a worker that hosts its application; one that none can take now keeps its place."""
        queue = pool.queue
        kept: list[Request] = []
        full: set[str] = set()     # applications whose hosting workers are full on this pass
        while queue:
            request = queue.popleft()
            key = request.app.key
            if key in full:
                kept.append(request)
                continue
            worker = pool.claim_worker(key)
            if worker is None:
                if key in common:
                    queue.appendleft(request)   # every worker is full: nothing more goes now
                    break
                full.add(key)
                kept.append(request)
                continue
            worker.dispatch(request)
        queue.extendleft(reversed(kept))

    def unhosted(self, name: str, reason: str = "AppOffline") -> list[Request]:
        """`pool_unhosted`: the worker that would host the applications the pool's workers do
        not failed to start. Returns the queued requests for those to answer 503 `reason`; new
        ones are answered so at once until a worker says HELLO."""
        pool = self.pools.get(name)
        if pool is None or pool.state is not PoolState.STARTED or not pool.workers:
            return []
        pool.unhosted = reason
        rejected = [r for r in pool.queue if not pool.hosts(r.app.key)]
        if rejected:
            drop = set(map(id, rejected))
            kept = [r for r in pool.queue if id(r) not in drop]
            pool.queue.clear()
            pool.queue.extend(kept)
            for _ in rejected:
                pool.counters.reject(reason)
            self.board.set(pool.cell, len(pool.queue))
        return rejected

    def pump_all(self) -> bool:
        """Pump every pool with queued requests (the starved retry); True while some still wait
        for a place on a worker they have."""
        waiting = False
        for pool in self.pools.values():
            if pool.queue and pool.state is PoolState.STARTED:
                self.pump(pool)
                waiting = waiting or bool(pool.queue and pool.workers)
        return waiting

    def expire(self, now: float, timeout: float) -> list[Request]:
        """Requests queued longer than `timeout` (HTTP.sys RequestQueue timer): removed and
        returned for a 503 Timer_AppPool."""
        expired: list[Request] = []
        limit = now - timeout
        for pool in self.pools.values():
            queue = pool.queue
            if queue and queue[0].queued_at <= limit:
                while queue and queue[0].queued_at <= limit:
                    expired.append(queue.popleft())
                    pool.counters.reject("Timer_AppPool")
                self.board.set(pool.cell, len(queue))
        return expired

    # ---- workers ----
    def worker_ready(self, worker: Worker) -> None:
        pool = self.pools.get(worker.pool_name)
        if pool is None:
            return
        if worker not in pool.workers:
            pool.workers.append(worker)
        pool.update_common()
        pool.unhosted = ""      # a new worker: what it hosts is served, the rest waits again
        pool.demand_sent = False
        self.pump(pool)

    def worker_gone(self, worker: Worker) -> None:
        pool = self.pools.get(worker.pool_name)
        if pool is None:
            return
        if worker in pool.workers:
            pool.workers.remove(worker)
            pool.update_common()
        if (pool.queue and not pool.workers and not pool.demand_sent
                and pool.state is PoolState.STARTED):
            pool.demand_sent = True
            self._on_demand(pool.name)

    def queued(self) -> Iterable[Request]:
        for pool in self.pools.values():
            yield from pool.queue
