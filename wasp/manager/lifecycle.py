"""The supervisor's state and the worker-lifecycle decisions its event handlers share, sans I/O.

`Supervisor` (supervisor.py) is the API: the event handlers, the admin commands, reload, shutdown
and the clock. What they have in common lives in its base class here: how many workers a pool has
(`_ensure`: spawn the missing, retire the surplus), a graceful stop, a kill, a worker that stopped
answering, an idle stop, a recycle (overlapped or not), the CPU limit, and counting a failure
towards rapid-fail protection (`_disable`). Nothing here is called from outside the supervisor;
every method only queues actions (`_emit`), which the handler that was called returns (`_take`).
"""

from __future__ import annotations

import random

from wasp.config.model import Config
from wasp.manager import actions as A
from wasp.manager.pools import FrontRecord, PoolRecord, PoolState, WorkerRecord, WorkerState
from wasp.manager.recycling import replacement_backoff, spawn_backoff

#: Stats pings when a pool's ping_interval is 0 (health pinging off): idle_timeout and the
#: request/memory limits still need the worker's numbers. IIS checks idleness once a minute.
STATS_PING_INTERVAL = 60.0


class Lifecycle:
    """The supervisor's pools, workers and front, and what is done to a pool's workers."""

    def __init__(self, config: Config, rng: random.Random | None = None, cpu_count: int = 1,
                 fronts: int = 1):
        self.config = config
        self.rng = rng or random.Random()
        self.cpu_count = max(1, cpu_count)  # cpu.limit is a share of the whole machine, as in IIS
        self.pools: dict[str, PoolRecord] = {}
        self.workers: dict[int, WorkerRecord] = {}
        #: One record per front index (server.front_processes; fixed for the manager's life).
        self.fronts: dict[int, FrontRecord] = {i: FrontRecord() for i in range(max(1, fronts))}
        self.shutting_down = False
        self.shutdown_deadline: float | None = None
        self._killed_all = False
        self._exit_sent = False
        self._next_worker_id = 1
        self._next_ping_id = 1
        self._out: list = []

    @property
    def front(self) -> FrontRecord:
        """Front 0 (the only one with front_processes = 1)."""
        return self.fronts[0]

    # ------------------------------------------------------------------ helpers
    def _emit(self, action) -> None:
        self._out.append(action)

    def _take(self) -> list:
        out, self._out = self._out, []
        return out

    def new_ping_id(self) -> int:
        self._next_ping_id += 1
        return self._next_ping_id

    def workers_of(self, pool: str) -> list[WorkerRecord]:
        return [w for w in self.workers.values() if w.pool == pool and w.live]

    def _counted(self, rec: PoolRecord) -> list[WorkerRecord]:
        """Workers that fill one of the pool's slots."""
        return [w for w in self.workers_of(rec.name)
                if (w.state in (WorkerState.STARTING, WorkerState.READY) and not w.retiring)
                or (w.state is WorkerState.DRAINING and w.holds_slot)]

    def _pool_event(self, event_id: int, rec_or_name, pid: int = 0, **data) -> None:
        name = rec_or_name if isinstance(rec_or_name, str) else rec_or_name.name
        self._emit(A.Event(event_id, pool=name, pid=pid, data=data))

    def _send_pool_state(self, rec: PoolRecord) -> None:
        state, reason = rec.front_state()
        self._emit(A.SetPoolState(rec.name, state, reason))

    # ------------------------------------------------------------------ a pool's number of workers
    def _ensure(self, rec: PoolRecord, now: float) -> None:
        """Start or stop workers so the pool has the number it wants."""
        if self.shutting_down or rec.state is not PoolState.STARTED:
            return
        self._retire_surplus(rec, now)
        counted = self._counted(rec)
        missing = rec.wanted - len(counted)
        if missing > 0:
            if now < rec.spawn_not_before:
                return  # tick() comes back at spawn_not_before
            for _ in range(missing):
                self._spawn(rec, now)
        elif missing < 0:
            extra = sorted((w for w in counted if w.state is not WorkerState.DRAINING),
                           key=lambda w: (w.state is WorkerState.READY, w.started))
            for w in extra[:-missing]:
                self._stop_worker(w, now)

    def _spawn(self, rec: PoolRecord, now: float) -> None:
        wid = self._next_worker_id
        self._next_worker_id += 1
        w = WorkerRecord(wid, rec.name, now)
        limit = rec.settings.process_model.startup_time_limit
        w.kill_at = now + limit if limit > 0 else None
        self.workers[wid] = w
        self._emit(A.SpawnWorker(wid, rec.name))

    def _retire_surplus(self, rec: PoolRecord, now: float) -> None:
        """Overlapped rotation: old workers serve only until enough new ones are ready."""
        retiring = sorted((x for x in self.workers_of(rec.name)
                           if x.retiring and x.state is WorkerState.READY), key=lambda x: x.started)
        if not retiring:
            return
        ready = sum(1 for x in self._counted(rec) if x.state is WorkerState.READY)
        keep = max(0, rec.wanted - ready)
        for old in retiring[:len(retiring) - keep]:
            self._stop_worker(old, now)

    # ------------------------------------------------------------------ a worker leaves, fails or is recycled
    def _remove(self, worker_id: int, now: float) -> WorkerRecord | None:
        """A worker's process is gone (or never was): forget it, keeping its CPU use."""
        w = self.workers.pop(worker_id, None)
        if w is not None:
            w.set_state(WorkerState.GONE, now)
            rec = self.pools.get(w.pool)
            if rec is not None:
                rec.cpu.retire(w)
        return w

    def _settle(self, rec: PoolRecord, now: float) -> None:
        """After a worker left: a stopping pool with none left is stopped; others get theirs."""
        if rec.state is PoolState.STOPPING and not self.workers_of(rec.name):
            rec.set_state(PoolState.STOPPED)
        self._ensure(rec, now)

    def _start_failed_or_crashed(self, rec: PoolRecord, w: WorkerRecord, now: float,
                                 error: str) -> None:
        """A worker failed. One that never became ready while another worker of the pool is
        ready and serving (the retiring one of an overlapped recycle, or a web garden's others)
        is a failed replacement: a broken deploy, retried with a back-off; the serving workers
        stay and rapid-fail protection does not count it. Anything else counts, as in IIS."""
        if w.ready_at is None:
            rec.start_failures += 1
            rec.last_start_error = error or "the process failed before it was ready"
            if any(x.state is WorkerState.READY for x in self.workers_of(rec.name)):
                rec.recycle_attempts += 1
                rec.recycle_error = rec.last_start_error
                delay = replacement_backoff(rec.recycle_attempts)
                rec.recycle_retry_at = rec.spawn_not_before = now + delay
                self._pool_event(9021, rec, w.pid, attempt=rec.recycle_attempts,
                                 retry_s=f"{delay:g}", error=rec.recycle_error)
                # Applications a reload gave the pool, which the serving workers do not host,
                # are offline until a retry comes up (the old ones keep being served).
                self._emit(A.PoolUnhosted(rec.name))
                return
        self._record_failure(rec, now)

    def _record_failure(self, rec: PoolRecord, now: float) -> None:
        rec.consecutive_failures += 1
        rec.spawn_not_before = now + spawn_backoff(rec.consecutive_failures)
        failure = rec.settings.failure
        if not failure.rapid_fail_protection:
            return
        count = rec.failures.add(now, failure.rapid_fail_protection_interval)
        if count >= failure.rapid_fail_protection_max_crashes:
            self._disable(rec, now)

    def _disable(self, rec: PoolRecord, now: float) -> None:
        rec.set_state(PoolState.DISABLED)
        rec.wanted = 0
        self._pool_event(5002, rec)
        self._send_pool_state(rec)
        for w in self.workers_of(rec.name):
            self._stop_worker(w, now)
        command = rec.settings.failure.auto_shutdown_exe
        if command:
            self._emit(A.RunCommand(command.replace("%1%", rec.name)))

    def _stop_worker(self, w: WorkerRecord, now: float, holds_slot: bool = False) -> None:
        """Graceful stop of a ready worker; a worker still starting serves nothing and is killed."""
        if w.state is WorkerState.STARTING:
            w.stop_asked = True
            w.set_state(WorkerState.DRAINING, now)
            w.kill_at = None
            w.killed = True
            self._emit(A.KillWorker(w.worker_id))
        elif w.state is WorkerState.READY:
            w.stop_asked = True
            w.holds_slot = holds_slot
            w.set_state(WorkerState.DRAINING, now)
            rec = self.pools.get(w.pool)
            limit = rec.settings.process_model.shutdown_time_limit if rec else 90.0
            w.kill_at = now + limit if limit > 0 else None
            self._emit(A.StopWorker(w.worker_id, drain=not self.shutting_down))

    def _fail_unhealthy(self, w: WorkerRecord, now: float, reason: str) -> None:
        """A worker that stopped answering or never started: killed, or with
        failure.orphan_worker_process left running for a debugger. Either way a failure."""
        rec = self.pools.get(w.pool)
        failure = rec.settings.failure if rec else None
        if failure is None or not failure.orphan_worker_process:
            self._kill(w, now, reason)
            return
        del self.workers[w.worker_id]
        w.set_state(WorkerState.GONE, now)
        self._pool_event(9015, rec, w.pid, reason=reason)
        command = failure.orphan_action_exe.replace("%1%", str(w.pid))
        self._emit(A.OrphanWorker(w.worker_id, command))
        self._start_failed_or_crashed(rec, w, now, reason)
        self._ensure(rec, now)

    def _kill(self, w: WorkerRecord, now: float, failure_reason: str = "") -> None:
        """Kill now. A failure reason makes the exit count towards rapid-fail protection."""
        w.stop_asked = True
        if failure_reason:
            w.counts_as_failure = True
            w.failure_reason = failure_reason
        if w.state is not WorkerState.DRAINING:
            w.set_state(WorkerState.DRAINING, now)
        w.kill_at = None
        w.killed = True
        self._emit(A.KillWorker(w.worker_id))

    def _ping_period(self, rec: PoolRecord) -> float:
        interval = rec.settings.process_model.ping_interval
        return interval if interval > 0 else STATS_PING_INTERVAL

    def _check_cpu(self, rec: PoolRecord, now: float) -> None:
        """IIS cpu.limit with action no_action (an event) or kill_w3wp (the pool's workers are
        killed; new ones start as needed). throttle and throttle_under_load are the cgroup's job."""
        cpu = rec.settings.cpu
        if cpu.limit <= 0 or cpu.reset_interval <= 0 or cpu.action not in ("no_action", "kill_w3wp"):
            return
        workers = self.workers_of(rec.name)
        used_pct = rec.cpu.over_limit(now, workers, cpu.limit / 1000, cpu.reset_interval, self.cpu_count)
        if used_pct is None:
            return
        self._pool_event(9020, rec, used_pct=used_pct, window_s=f"{cpu.reset_interval:g}",
                         limit_pct=f"{cpu.limit / 1000:g}", action=cpu.action)
        if cpu.action == "kill_w3wp":
            for w in workers:
                if not w.killed:
                    self._kill(w, now)

    def _idle_stop(self, w: WorkerRecord, rec: PoolRecord, now: float) -> None:
        minutes = rec.settings.process_model.idle_timeout / 60
        # idle_s: how long it had been idle when stopped (the timeout plus the check's lateness).
        self._pool_event(5186, rec, w.pid, minutes=f"{round(minutes, 2):g}", idle_s=w.idle_s)
        if not rec.always_running:
            rec.wanted = max(0, rec.wanted - 1)
        self._stop_worker(w, now)
        # An always_running pool gets a new worker at once, as IIS does.
        self._ensure(rec, now)

    def _recycle_worker(self, w: WorkerRecord, now: float, event_id: int | None) -> None:
        rec = self.pools.get(w.pool)
        if rec is None or w.retiring:
            return
        if w.state is WorkerState.STARTING:
            self._stop_worker(w, now)
        elif w.state is WorkerState.READY:
            if event_id is not None:
                self._pool_event(event_id, rec, w.pid)
            if rec.settings.recycling.disallow_overlapping_rotation:
                self._stop_worker(w, now, holds_slot=True)
            else:
                w.retiring = True
        self._ensure(rec, now)
