"""WAS's decisions, sans I/O: fed events and the clock, returns actions.

The manager's main loop feeds every happening (a worker became ready, a process exited, a pong,
the front asked for a worker, an admin command, the clock) into a `Supervisor` and carries out the
actions it returns (`wasp.manager.actions`). Nothing here touches a socket, a process or the real
clock, so the policy (health checks, recycling, rapid-fail protection) is tested with a fake clock.

This module is the API: the handlers of those happenings, the admin commands, reload, shutdown and
the clock. The state and the decisions the handlers share (starting, stopping, killing and
recycling a pool's workers, counting failures) are its base class `Lifecycle` (lifecycle.py); the
admin API's views of them are status.py.

`now` is monotonic seconds; `wall` is time.time(), used only for recycling.schedule.
"""

from __future__ import annotations

from wasp.config.model import Config
from wasp.manager import actions as A
from wasp.manager import status
from wasp.manager.lifecycle import Lifecycle
from wasp.manager.pools import FrontState, PoolRecord, PoolState, WorkerRecord, WorkerState
from wasp.manager.recycling import jitter, memory_verdict, next_scheduled

FRONT_PING_INTERVAL = 30.0
FRONT_PING_RESPONSE = 90.0
#: The front is restarted at once unless it died this soon after starting; then it backs off.
FRONT_QUICK_DEATH = 2.0


def front_count(config: Config, cpu_count: int) -> int:
    """`server.front_processes`, or one front per 4 CPUs (at least 1) when it is not set."""
    wanted = config.server.front_processes
    return int(wanted) if wanted else max(1, cpu_count // 4)


NOT_NOW = "Command execution failed. The service cannot accept control messages at this time."


class CommandError(Exception):
    """An admin command that cannot be done; the message is appcmd's."""


class Supervisor(Lifecycle):
    # ------------------------------------------------------------------ start-up
    def start(self, now: float, wall: float) -> list:
        for settings in self.config.pools:
            rec = PoolRecord(settings)
            self.pools[settings.name] = rec
            rec.next_schedule = next_scheduled(settings.recycling.schedule, wall)
        for rec in self.pools.values():
            if rec.settings.auto_start:
                self._mark_started(rec, now)
        for index in self.fronts:
            self._spawn_front(index, now)  # tells each new front every pool's state
        for rec in self.pools.values():
            self._ensure(rec, now)
        return self._take()

    def _mark_started(self, rec: PoolRecord, now: float) -> None:
        rec.started_at = now
        rec.set_state(PoolState.STARTING)
        rec.failures.clear()
        rec.consecutive_failures = 0
        rec.spawn_not_before = 0.0
        rec.wanted = rec.settings.max_processes if rec.always_running else 0
        rec.set_state(PoolState.STARTED)

    def _start_pool(self, rec: PoolRecord, now: float) -> None:
        self._mark_started(rec, now)
        self._send_pool_state(rec)
        self._ensure(rec, now)

    # ------------------------------------------------------------------ the fronts
    # One supervised front per index 0..N-1 (server.front_processes): each is started, pinged,
    # restarted with its own back-off and stopped on its own; one that dies costs only its own
    # connections. A front's index is its identity across restarts (its scoreboard column).
    def _spawn_front(self, index: int, now: float) -> None:
        front = self.fronts[index]
        front.set_state(FrontState.RUNNING)
        front.started = now
        front.restart_at = None
        front.ping_sent = None
        front.next_ping = now + FRONT_PING_INTERVAL
        self._emit(A.SpawnFront(index))
        # A new front knows nothing: tell it every pool's state and hand it every ready worker.
        for rec in self.pools.values():
            state, reason = rec.front_state()
            self._emit(A.SetPoolState(rec.name, state, reason, index))
        for w in self.workers.values():
            if w.state is WorkerState.READY:
                self._emit(A.AttachWorker(w.worker_id, index))

    def front_exited(self, code: int, pid: int, now: float, index: int = 0) -> list:
        front = self.fronts.get(index)
        if front is None or front.state is FrontState.DOWN:
            return []
        expected = front.state is FrontState.STOPPING
        front.set_state(FrontState.DOWN)
        if self.shutting_down or expected:
            self._check_done()
            return self._take()
        self._emit(A.Event(9006, pid=pid, data={"code": code, "front": index}))
        if now - front.started < FRONT_QUICK_DEATH:
            front.quick_deaths += 1
        else:
            front.quick_deaths = 0
        if front.quick_deaths == 0:
            self._spawn_front(index, now)
        else:
            front.restart_at = now + min(10.0, 0.25 * 2 ** (front.quick_deaths - 1))
        return self._take()

    def front_pong(self, now: float, index: int = 0) -> None:
        front = self.fronts.get(index)
        if front is not None:
            front.ping_sent = None
            front.next_ping = now + FRONT_PING_INTERVAL

    def running_fronts(self) -> list[int]:
        return [i for i, f in self.fronts.items() if f.state is FrontState.RUNNING]

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
            if self.shutting_down and w.serve_then_stop and not self._killed_all:
                self._emit(A.AttachWorker(worker_id))  # the fronts' queues for it, then the stop
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

    # ------------------------------------------------------------------ admin commands
    def _pool(self, name: str) -> PoolRecord:
        rec = self.pools.get(name)
        if rec is None:
            raise CommandError(f'Cannot find APPPOOL object with identifier "{name}".')
        if self.shutting_down:
            raise CommandError(NOT_NOW)
        return rec

    def recycle_pool(self, name: str, now: float, event_id: int = 5079, **data) -> list:
        rec = self._pool(name)
        if rec.state is not PoolState.STARTED:
            raise CommandError(NOT_NOW)
        self._pool_event(event_id, rec, **data)
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
                    if rec.recycle_attempts:
                        # Replacements are failing (a broken deploy) and the config changed,
                        # typically to fix it: try the new one at once, as an admin recycle does.
                        rec.spawn_not_before, rec.recycle_retry_at = 0.0, None
                    for w in self.workers_of(name):
                        self._recycle_worker(w, now, None)
            # The front was sent a new config; it keeps pool states, but say them again anyway.
            self._send_pool_state(rec)
            self._ensure(rec, now)
        return self._take()

    # ------------------------------------------------------------------ shutdown
    def shutdown(self, now: float, handover: bool = False) -> list:
        """The graceful stop (`handover`: a new generation already serves, `wasp upgrade`)."""
        if self.shutting_down:
            return []
        self.shutting_down = True
        self._emit(A.Event(9002))
        limits = [r.settings.process_model.shutdown_time_limit for r in self.pools.values()]
        # The fronts keep serving for shutdown_delay first (lame duck), then drain.
        self.shutdown_deadline = now + float(self.config.server.shutdown_delay) + max(limits or [90.0])
        for rec in self.pools.values():
            if rec.state in (PoolState.STARTING, PoolState.STARTED, PoolState.DISABLED):
                rec.set_state(PoolState.STOPPING)
            rec.wanted = 0
        for index, front in self.fronts.items():
            if front.state is FrontState.RUNNING:
                front.set_state(FrontState.STOPPING)
                self._emit(A.StopFront(index, handover))
            front.restart_at = None
        # The front finishes what it has queued, so workers keep taking requests until the front
        # sends DRAIN or closes their channel: no worker_drain here. A worker still starting
        # (an on-demand pool's first worker importing its app) is left to finish: the front may
        # hold requests queued for it, which a kill would turn into closed connections (an
        # upgrade's old generation, a stop right after the first request). It is attached when
        # ready, serves that queue, and is stopped like the others; the shutdown deadline bounds
        # it as it bounds every drain.
        for w in list(self.workers.values()):
            if w.state is WorkerState.STARTING:
                w.serve_then_stop = True
            elif w.state is not WorkerState.DRAINING:
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
        for index, front in self.fronts.items():
            if front.state is not FrontState.DOWN:
                self._emit(A.KillFront(index))
        for w in self.workers.values():
            if w.state is not WorkerState.GONE:
                w.stop_asked = True
                self._emit(A.KillWorker(w.worker_id))

    def _check_done(self) -> None:
        if (self.shutting_down and not self._exit_sent and not self.workers
                and all(f.state is FrontState.DOWN for f in self.fronts.values())):
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
        for index, front in self.fronts.items():
            if (front.state is FrontState.DOWN and front.restart_at is not None
                    and now >= front.restart_at):
                self._spawn_front(index, now)
            elif front.state is FrontState.RUNNING:
                if front.ping_sent is not None and now >= front.ping_sent + FRONT_PING_RESPONSE:
                    front.ping_sent = None
                    self._emit(A.Event(9007, data={"front": index}))
                    self._emit(A.KillFront(index))
                elif front.ping_sent is None and now >= front.next_ping:
                    front.ping_id = self.new_ping_id()
                    front.ping_sent = now
                    self._emit(A.PingFront(front.ping_id, index))
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
        for front in self.fronts.values():
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
    # status.py: read-only, so plain functions of the state.
    def pool_rows(self, now: float | None = None) -> list[dict]:
        return status.pool_rows(self, now)

    def recycle_outcome(self, name: str, old: set[int], failures_before: int) -> str | None:
        return status.recycle_outcome(self, name, old, failures_before)

    def worker_rows(self, now: float) -> list[dict]:
        return status.worker_rows(self, now)
