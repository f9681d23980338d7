"""WAS's decisions, sans I/O: fed events and the clock, returns actions.

The manager's main loop feeds every happening (a worker became ready, a process exited, a pong,
the front asked for a worker, an admin command, the clock) into a `Supervisor` and carries out the
actions it returns (`wasp.manager.actions`). Nothing here touches a socket, a process or the real
clock, so the policy (health checks, recycling, rapid-fail protection) is tested with a fake clock.

`now` is monotonic seconds; `wall` is time.time(), used only for recycling.schedule.
"""

from __future__ import annotations

import random

from wasp.config.model import Config
from wasp.manager import actions as A
from wasp.manager.pools import (
    FrontRecord, FrontState, PoolRecord, PoolState, WorkerRecord, WorkerState,
)
from wasp.manager.recycling import (
    jitter, memory_verdict, next_scheduled, replacement_backoff, spawn_backoff,
)

FRONT_PING_INTERVAL = 30.0
FRONT_PING_RESPONSE = 90.0
#: Stats pings when a pool's ping_interval is 0 (health pinging off): idle_timeout and the
#: request/memory limits still need the worker's numbers. IIS checks idleness once a minute.
STATS_PING_INTERVAL = 60.0
#: The front is restarted at once unless it died this soon after starting; then it backs off.
FRONT_QUICK_DEATH = 2.0


NOT_NOW = "Command execution failed. The service cannot accept control messages at this time."


class CommandError(Exception):
    """An admin command that cannot be done; the message is appcmd's."""


class Supervisor:
    def __init__(self, config: Config, rng: random.Random | None = None, cpu_count: int = 1):
        self.config = config
        self.rng = rng or random.Random()
        self.cpu_count = max(1, cpu_count)  # cpu.limit is a share of the whole machine, as in IIS
        self.pools: dict[str, PoolRecord] = {}
        self.workers: dict[int, WorkerRecord] = {}
        self.front = FrontRecord()
        self.shutting_down = False
        self.shutdown_deadline: float | None = None
        self._killed_all = False
        self._exit_sent = False
        self._next_worker_id = 1
        self._next_ping_id = 1
        self._out: list = []

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

    # ------------------------------------------------------------------ start-up
    def start(self, now: float, wall: float) -> list:
        for settings in self.config.pools:
            rec = PoolRecord(settings)
            self.pools[settings.name] = rec
            rec.next_schedule = next_scheduled(settings.recycling.schedule, wall)
        for rec in self.pools.values():
            if rec.settings.auto_start:
                self._mark_started(rec)
        self._spawn_front(now)  # tells the new front every pool's state
        for rec in self.pools.values():
            self._ensure(rec, now)
        return self._take()

    def _mark_started(self, rec: PoolRecord) -> None:
        rec.set_state(PoolState.STARTING)
        rec.failures.clear()
        rec.consecutive_failures = 0
        rec.spawn_not_before = 0.0
        rec.wanted = rec.settings.max_processes if rec.always_running else 0
        rec.set_state(PoolState.STARTED)

    def _start_pool(self, rec: PoolRecord, now: float) -> None:
        self._mark_started(rec)
        self._send_pool_state(rec)
        self._ensure(rec, now)

    # ------------------------------------------------------------------ the front
    def _spawn_front(self, now: float) -> None:
        self.front.set_state(FrontState.RUNNING)
        self.front.started = now
        self.front.restart_at = None
        self.front.ping_sent = None
        self.front.next_ping = now + FRONT_PING_INTERVAL
        self._emit(A.SpawnFront())
        # A new front knows nothing: tell it every pool's state and hand it every ready worker.
        for rec in self.pools.values():
            self._send_pool_state(rec)
        for w in self.workers.values():
            if w.state is WorkerState.READY:
                self._emit(A.AttachWorker(w.worker_id))

    def front_exited(self, code: int, pid: int, now: float) -> list:
        if self.front.state is FrontState.DOWN:
            return []
        expected = self.front.state is FrontState.STOPPING
        self.front.set_state(FrontState.DOWN)
        if self.shutting_down or expected:
            self._check_done()
            return self._take()
        self._emit(A.Event(9006, pid=pid, data={"code": code}))
        if now - self.front.started < FRONT_QUICK_DEATH:
            self.front.quick_deaths += 1
        else:
            self.front.quick_deaths = 0
        if self.front.quick_deaths == 0:
            self._spawn_front(now)
        else:
            self.front.restart_at = now + min(10.0, 0.25 * 2 ** (self.front.quick_deaths - 1))
        return self._take()

    def front_pong(self, now: float) -> None:
        self.front.ping_sent = None
        self.front.next_ping = now + FRONT_PING_INTERVAL

    def front_demand(self, pool: str, now: float) -> list:
        rec = self.pools.get(pool)
        if rec is None:
            return []
        if rec.state is not PoolState.STARTED:
            self._send_pool_state(rec)
        else:
            rec.wanted = rec.settings.max_processes
            self._ensure(rec, now)
        return self._take()

    # ------------------------------------------------------------------ workers
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

    def worker_spawned(self, worker_id: int, pid: int) -> None:
        w = self.workers.get(worker_id)
        if w is not None:
            w.pid = pid

    def worker_ready(self, worker_id: int, now: float) -> list:
        w = self.workers.get(worker_id)
        if w is None or w.state is not WorkerState.STARTING:
            return []
        rec = self.pools.get(w.pool)
        w.set_state(WorkerState.READY, now)
        w.ready_at = now
        w.kill_at = None
        if rec is None or rec.state is not PoolState.STARTED or self.shutting_down:
            self._stop_worker(w, now)
            return self._take()
        settings = rec.settings
        w.next_ping = now + self._ping_period(rec)
        period = settings.recycling.time
        if period > 0:
            w.recycle_at = w.started + period + jitter(period, self.rng)
        rec.consecutive_failures = 0
        rec.spawn_not_before = 0.0
        rec.recycle_attempts, rec.recycle_error, rec.recycle_retry_at = 0, "", None
        idle_timeout = settings.process_model.idle_timeout
        if idle_timeout > 0:
            # The first idle check is due at ready + idle_timeout, not at the first ping.
            w.idle_check_at = now + idle_timeout
        self._pool_event(9014, rec, w.pid, startup_s=round(now - w.started, 3))
        self._emit(A.AttachWorker(worker_id))
        self._retire_surplus(rec, now)
        return self._take()

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

    def worker_load_failed(self, worker_id: int, error: str, traceback: str = "") -> None:
        w = self.workers.get(worker_id)
        if w is not None:
            w.load_error = error
            w.load_traceback = traceback

    def worker_stuck(self, worker_id: int, now: float, report: dict) -> list:
        """A request of the worker outran its execution limit and grace: log its thread stacks
        (event 9030) and replace it by an overlapped recycle; its other threads serve meanwhile."""
        w = self.workers.get(worker_id)
        if w is None:
            return []
        data = {k: v for k, v in report.items() if k not in ("op", "pool", "pid")}
        self._emit(A.Event(9030, pool=w.pool, pid=w.pid, data=data))
        self._recycle_worker(w, now, None)
        return self._take()

    def worker_not_started(self, worker_id: int, now: float, permanent: bool, error: str = "") -> list:
        """The worker's process could not be started at all (event 9012 says why): nothing ran,
        so there is no 5009. A `permanent` reason (no such user, interpreter or virtualenv; an
        interpreter that cannot import wasp) will not pass by retrying, so a pool with nothing
        serving is disabled at once, as IIS disables a pool whose identity is invalid. While
        another worker of the pool serves, it is a failed replacement like any other (a broken
        deploy never takes a healthy pool down); anything else counts as a failure."""
        w = self._remove(worker_id, now)
        if w is None:
            return []
        rec = self.pools.get(w.pool)
        if self.shutting_down:
            self._check_done()
            return self._take()
        if rec is None:
            return self._take()
        if rec.state in (PoolState.STARTED, PoolState.STARTING):
            serving = any(x.state is WorkerState.READY for x in self.workers_of(rec.name))
            if permanent and not serving:
                self._disable(rec, now)
            else:
                self._start_failed_or_crashed(rec, w, now, error)
        self._settle(rec, now)
        return self._take()

    def worker_recycle_me(self, worker_id: int, reason: str, now: float) -> list:
        """The worker reached one of its own limits (`recycle_me`): recycling.requests, counted
        by the worker as each request ends, so the recycle comes after exactly that many."""
        w = self.workers.get(worker_id)
        rec = self.pools.get(w.pool) if w is not None else None
        if (reason == "requests" and rec is not None and rec.state is PoolState.STARTED
                and rec.settings.recycling.requests > 0):
            self._recycle_worker(w, now, 5075)
        return self._take()

    def worker_exited(self, worker_id: int, code: int, now: float) -> list:
        w = self._remove(worker_id, now)
        if w is None:
            return []
        rec = self.pools.get(w.pool)
        failed = w.counts_as_failure
        error = w.failure_reason
        if w.stop_asked or self.shutting_down:
            self._pool_event(9016, w.pool, w.pid, code=code)
        else:
            failed = True
            if code == 4 or w.load_error:
                error = w.load_error or "the application failed to load (exit code 4)"
                self._pool_event(9009, w.pool, w.pid, code=code, error=error,
                                 traceback=w.load_traceback)
            else:
                error = f"the process exited with code {code}"
                self._pool_event(5009, w.pool, w.pid, code=code)
        if self.shutting_down:
            self._check_done()
            return self._take()
        if rec is None:
            return self._take()
        if failed and rec.state in (PoolState.STARTED, PoolState.STARTING):
            self._start_failed_or_crashed(rec, w, now, error)
        self._settle(rec, now)
        return self._take()

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

    def worker_pong(self, worker_id: int, now: float, served: int = 0, inflight: int = 0,
                    idle_s: float = 0.0, vms: int = 0, uss: int = 0, cpu_s: float = 0.0) -> list:
        w = self.workers.get(worker_id)
        if w is None:
            return []
        rec = self.pools.get(w.pool)
        w.last_pong = now
        w.ping_sent = None
        w.served, w.inflight, w.idle_s, w.vms, w.uss = served, inflight, idle_s, vms, uss
        w.cpu_s = max(w.cpu_s, cpu_s)
        if rec is not None and rec.state is PoolState.STARTED:
            self._check_cpu(rec, now)
        if rec is None or w.state is not WorkerState.READY or w.retiring:
            return self._take()
        w.next_ping = now + self._ping_period(rec)
        w.idle_check_at = None
        recycling = rec.settings.recycling
        memory_event = memory_verdict(recycling, w)
        if recycling.requests > 0 and served >= recycling.requests:
            self._recycle_worker(w, now, 5075)
        elif memory_event is not None:
            self._recycle_worker(w, now, memory_event)
        else:
            idle_timeout = rec.settings.process_model.idle_timeout
            if idle_timeout > 0 and inflight == 0 and idle_s >= idle_timeout:
                self._idle_stop(w, rec, now)
            elif idle_timeout > 0:
                # Look again the moment it could be idle long enough, not a ping period later.
                w.idle_check_at = now + (idle_timeout - idle_s if inflight == 0 else idle_timeout)
        return self._take()

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

    # ------------------------------------------------------------------ admin commands
    def _pool(self, name: str) -> PoolRecord:
        rec = self.pools.get(name)
        if rec is None:
            raise CommandError(f'Cannot find APPPOOL object with identifier "{name}".')
        if self.shutting_down:
            raise CommandError(NOT_NOW)
        return rec

    def recycle_pool(self, name: str, now: float, event_id: int = 5079) -> list:
        rec = self._pool(name)
        if rec.state is not PoolState.STARTED:
            raise CommandError(NOT_NOW)
        self._pool_event(event_id, rec)
        if rec.recycle_attempts:
            # Replacements are failing (a broken deploy): an administrator's recycle, typically
            # after fixing it, tries again at once instead of waiting out the back-off.
            rec.spawn_not_before, rec.recycle_retry_at = 0.0, None
        for w in self.workers_of(name):
            self._recycle_worker(w, now, None)
        self._ensure(rec, now)
        return self._take()

    def stop_pool(self, name: str, now: float) -> list:
        rec = self._pool(name)
        if rec.state in (PoolState.STOPPED, PoolState.STOPPING):
            raise CommandError("Command execution failed. The object has already been stopped.")
        self._stop_pool(rec, now)
        self._pool_event(9011, rec)
        return self._take()

    def _stop_pool(self, rec: PoolRecord, now: float) -> None:
        rec.set_state(PoolState.STOPPING)
        rec.wanted = 0
        self._send_pool_state(rec)
        for w in self.workers_of(rec.name):
            self._stop_worker(w, now)
        if not self.workers_of(rec.name):
            rec.set_state(PoolState.STOPPED)

    def start_pool(self, name: str, now: float) -> list:
        rec = self._pool(name)
        if rec.state in (PoolState.STARTED, PoolState.STARTING):
            raise CommandError("Command execution failed. The object has already been started.")
        self._start_pool(rec, now)
        self._pool_event(9010, rec)
        return self._take()

    # ------------------------------------------------------------------ reload
    def reconfigure(self, config: Config, changed: set[str], now: float, wall: float) -> list:
        """A new valid config: add, remove and update pools; recycle the changed ones."""
        self.config = config
        new = {p.name: p for p in config.pools}
        for name in [n for n in self.pools if n not in new]:
            for w in self.workers_of(name):
                self._stop_worker(w, now)
            del self.pools[name]
        for name, settings in new.items():
            rec = self.pools.get(name)
            if rec is None:
                rec = PoolRecord(settings)
                self.pools[name] = rec
                rec.next_schedule = next_scheduled(settings.recycling.schedule, wall)
                if settings.auto_start and not self.shutting_down:
                    self._start_pool(rec, now)
                else:
                    self._send_pool_state(rec)
                continue
            rec.settings = settings
            rec.next_schedule = next_scheduled(settings.recycling.schedule, wall)
            if rec.state is PoolState.STARTED:
                if rec.always_running:
                    rec.wanted = settings.max_processes
                else:
                    rec.wanted = min(rec.wanted, settings.max_processes)
                if name in changed and not settings.recycling.disallow_rotation_on_config_change:
                    self._pool_event(5080, rec)
                    for w in self.workers_of(name):
                        self._recycle_worker(w, now, None)
            # The front was sent a new config; it keeps pool states, but say them again anyway.
            self._send_pool_state(rec)
            self._ensure(rec, now)
        return self._take()

    # ------------------------------------------------------------------ shutdown
    def shutdown(self, now: float) -> list:
        if self.shutting_down:
            return []
        self.shutting_down = True
        self._emit(A.Event(9002))
        limits = [r.settings.process_model.shutdown_time_limit for r in self.pools.values()]
        self.shutdown_deadline = now + max(limits or [90.0])
        for rec in self.pools.values():
            if rec.state in (PoolState.STARTING, PoolState.STARTED, PoolState.DISABLED):
                rec.set_state(PoolState.STOPPING)
            rec.wanted = 0
        if self.front.state is FrontState.RUNNING:
            self.front.set_state(FrontState.STOPPING)
            self._emit(A.StopFront())
        self.front.restart_at = None
        # The front finishes what it has queued, so workers keep taking requests until the front
        # sends DRAIN or closes their channel: no worker_drain here.
        for w in list(self.workers.values()):
            if w.state is not WorkerState.DRAINING:
                self._stop_worker(w, now)
            w.kill_at = None
        self._check_done()
        return self._take()

    def kill_everything(self) -> list:
        """Second signal, or the shutdown deadline passed."""
        self._kill_everything()
        return self._take()

    def _kill_everything(self) -> None:
        self._killed_all = True
        if self.front.state is not FrontState.DOWN:
            self._emit(A.KillFront())
        for w in self.workers.values():
            if w.state is not WorkerState.GONE:
                w.stop_asked = True
                self._emit(A.KillWorker(w.worker_id))

    def _check_done(self) -> None:
        if (self.shutting_down and not self._exit_sent and self.front.state is FrontState.DOWN
                and not self.workers):
            self._exit_sent = True
            for rec in self.pools.values():
                if rec.state is PoolState.STOPPING:
                    rec.set_state(PoolState.STOPPED)
            self._emit(A.Exit())

    # ------------------------------------------------------------------ the clock
    def tick(self, now: float, wall: float) -> list:
        if self.shutting_down:
            if (self.shutdown_deadline is not None and now >= self.shutdown_deadline
                    and not self._killed_all):
                self._kill_everything()
            return self._take()
        front = self.front
        if front.state is FrontState.DOWN and front.restart_at is not None and now >= front.restart_at:
            self._spawn_front(now)
        elif front.state is FrontState.RUNNING:
            if front.ping_sent is not None and now >= front.ping_sent + FRONT_PING_RESPONSE:
                front.ping_sent = None
                self._emit(A.Event(9007))
                self._emit(A.KillFront())
            elif front.ping_sent is None and now >= front.next_ping:
                front.ping_id = self.new_ping_id()
                front.ping_sent = now
                self._emit(A.PingFront(front.ping_id))
        for w in list(self.workers.values()):
            self._tick_worker(w, now)
        for rec in list(self.pools.values()):
            if rec.next_schedule is not None and wall >= rec.next_schedule:
                rec.next_schedule = next_scheduled(rec.settings.recycling.schedule, wall)
                if rec.state is PoolState.STARTED:
                    for w in self.workers_of(rec.name):
                        self._recycle_worker(w, now, 5076)
            if rec.spawn_not_before and now >= rec.spawn_not_before:
                rec.spawn_not_before = 0.0
                rec.recycle_retry_at = None
                self._ensure(rec, now)
        return self._take()

    def _tick_worker(self, w: WorkerRecord, now: float) -> None:
        rec = self.pools.get(w.pool)
        if w.kill_at is not None and now >= w.kill_at:
            if w.state is WorkerState.STARTING:
                self._pool_event(9008, w.pool, w.pid)
                self._fail_unhealthy(w, now, "startup time limit")
            elif w.state is WorkerState.DRAINING:
                self._pool_event(5013, w.pool, w.pid)
                self._kill(w, now)
            return
        if w.state is not WorkerState.READY or rec is None:
            return
        pm = rec.settings.process_model
        if w.ping_sent is not None:
            if pm.ping_interval > 0 and now >= w.ping_sent + pm.ping_response_time:
                self._pool_event(5010, rec, w.pid)
                self._fail_unhealthy(w, now, "ping")
                self._ensure(rec, now)
                return
        elif now >= w.next_ping or (w.idle_check_at is not None and now >= w.idle_check_at):
            w.ping_id = self.new_ping_id()
            w.ping_sent = now
            w.idle_check_at = None
            self._emit(A.PingWorker(w.worker_id, w.ping_id))
        if w.recycle_at is not None and now >= w.recycle_at and not w.retiring:
            w.recycle_at = None
            self._recycle_worker(w, now, 5074)

    def next_deadline(self, now: float, wall: float) -> float | None:
        """The monotonic time at which tick() has something to do, or None."""
        times: list[float] = []
        if self.shutting_down:
            if self.shutdown_deadline is not None and not self._killed_all:
                times.append(self.shutdown_deadline)
            return min(times) if times else None
        front = self.front
        if front.state is FrontState.DOWN and front.restart_at is not None:
            times.append(front.restart_at)
        elif front.state is FrontState.RUNNING:
            times.append(front.ping_sent + FRONT_PING_RESPONSE if front.ping_sent is not None
                         else front.next_ping)
        for w in self.workers.values():
            if w.kill_at is not None:
                times.append(w.kill_at)
            if w.state is not WorkerState.READY:
                continue
            rec = self.pools.get(w.pool)
            if rec is None:
                continue
            if w.ping_sent is not None:
                if rec.settings.process_model.ping_interval > 0:
                    times.append(w.ping_sent + rec.settings.process_model.ping_response_time)
            else:
                times.append(w.next_ping)
                if w.idle_check_at is not None:
                    times.append(w.idle_check_at)
            if w.recycle_at is not None and not w.retiring:
                times.append(w.recycle_at)
        for rec in self.pools.values():
            if rec.next_schedule is not None:
                times.append(now + max(0.0, rec.next_schedule - wall))
            if rec.spawn_not_before:
                times.append(rec.spawn_not_before)
        return min(times) if times else None

    # ------------------------------------------------------------------ views for the admin API
    def pool_rows(self, now: float | None = None) -> list[dict]:
        return [{
            "name": rec.name,
            "state": rec.state.value,
            "workers": sum(1 for w in self.workers_of(rec.name)
                           if w.state in (WorkerState.STARTING, WorkerState.READY)),
            "start_mode": rec.settings.start_mode,
            "max_processes": rec.settings.max_processes,
            "recycle": self._recycle_view(rec, now),
        } for rec in self.pools.values()]

    def recycle_outcome(self, name: str, old: set[int], failures_before: int) -> str | None:
        """How a `recycle pool` begun when `old` were the pool's ready workers is going: None while
        under way, "" once new workers are ready and the old ones retired, else why it failed
        (the first replacement that failed to start, or the pool is no longer Started)."""
        rec = self.pools.get(name)
        if rec is None:
            return "the pool was removed"
        if rec.start_failures > failures_before:
            return rec.last_start_error
        if rec.state is not PoolState.STARTED:
            return f"the pool is {rec.state.value}"
        workers = self.workers_of(name)
        if any(w.worker_id in old and w.state is WorkerState.READY for w in workers):
            return None
        ready = sum(1 for w in workers if w.worker_id not in old and w.state is WorkerState.READY
                    and not w.retiring)
        return "" if ready >= min(len(old), rec.wanted) else None

    @staticmethod
    def _recycle_view(rec: PoolRecord, now: float | None) -> str:
        """"ok", or "failing (attempt N, next in Ns): <error>" while replacements fail."""
        if not rec.recycle_attempts:
            return "ok"
        if rec.recycle_retry_at is not None and now is not None:
            when = f"next in {max(0.0, rec.recycle_retry_at - now):.0f}s"
        else:
            when = "retrying now"
        return f"failing (attempt {rec.recycle_attempts}, {when}): {rec.recycle_error}"

    def worker_rows(self, now: float) -> list[dict]:
        return [{
            "worker_id": w.worker_id,
            "pid": w.pid,
            "pool": w.pool,
            "state": w.state.value,
            "uptime_s": round(now - w.started, 3),
            "requests": w.served,
        } for w in sorted(self.workers.values(), key=lambda w: w.worker_id) if w.live]
