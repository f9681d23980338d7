"""The manager's policy, sans I/O: a fake clock in, actions out."""

from __future__ import annotations

import random
import textwrap

import pytest

from wasp.config.load import load_text
from wasp.manager import actions as A
from wasp.manager.pools import PoolState, WorkerState
from wasp.manager.supervisor import CommandError, FrontState, Supervisor

WALL = 1_700_000_000.0


def config(pool_toml: str = "", extra: str = ""):
    return load_text(textwrap.dedent(f"""
        [[pools]]
        name = "P"
        {textwrap.dedent(pool_toml)}
        {textwrap.dedent(extra)}
        [[sites]]
        name = "S"
        id = 1
        bindings = ["http/127.0.0.1:8080:"]
        [[sites.applications]]
        path = "/"
        app = "m:app"
        pool = "P"
        """))


class Harness:
    """A supervisor, a clock, and the bookkeeping a real manager would do for spawned workers."""

    def __init__(self, cfg, now: float = 100.0):
        self.now = now
        self.wall = WALL
        self.sup = Supervisor(cfg, rng=random.Random(1))
        self.pid = 1000
        self.log: list = []
        self.run(self.sup.start(self.now, self.wall))

    def run(self, actions: list) -> list:
        for action in actions:
            if isinstance(action, A.SpawnWorker):
                self.pid += 1
                self.sup.worker_spawned(action.worker_id, self.pid)
        self.log.extend(actions)
        return actions

    def advance(self, seconds: float) -> list:
        self.now += seconds
        self.wall += seconds
        return self.run(self.sup.tick(self.now, self.wall))

    def ready(self, wid: int) -> list:
        return self.run(self.sup.worker_ready(wid, self.now))

    def exited(self, wid: int, code: int = 0) -> list:
        return self.run(self.sup.worker_exited(wid, code, self.now))

    def pong(self, wid: int, **stats) -> list:
        return self.run(self.sup.worker_pong(wid, self.now, **stats))

    def demand(self, pool: str = "P") -> list:
        return self.run(self.sup.front_demand(pool, self.now))

    def live(self, state: WorkerState | None = None) -> list[int]:
        return sorted(w.worker_id for w in self.sup.workers.values()
                      if state is None or w.state is state)

    def events(self) -> list[int]:
        return [a.event_id for a in self.log if isinstance(a, A.Event)]


def of(actions, kind):
    return [a for a in actions if isinstance(a, kind)]


def acts(actions):
    """The actions without the events (which tests check through Harness.events)."""
    return [a for a in actions if not isinstance(a, A.Event)]


def test_start_spawns_front_and_tells_it_pool_states():
    h = Harness(config())
    assert isinstance(h.log[0], A.SpawnFront)
    assert A.SetPoolState("P", "Started", "", front=0) in h.log  # to the new front
    assert not of(h.log, A.SpawnWorker)  # on_demand: nothing until a request comes
    assert h.sup.pools["P"].state is PoolState.STARTED


def test_always_running_starts_max_processes_workers():
    h = Harness(config('start_mode = "always_running"\nmax_processes = 3'))
    assert [a.worker_id for a in of(h.log, A.SpawnWorker)] == [1, 2, 3]


def test_auto_start_false_pool_is_stopped():
    h = Harness(config("auto_start = false"))
    assert h.sup.pools["P"].state is PoolState.STOPPED
    assert A.SetPoolState("P", "Stopped", "Disabled", front=0) in h.log


def test_demand_starts_workers_and_ready_attaches():
    h = Harness(config("max_processes = 2"))
    spawned = of(h.demand(), A.SpawnWorker)
    assert [a.worker_id for a in spawned] == [1, 2]
    assert h.demand() == []  # already starting: no more
    out = h.ready(1)
    assert acts(out) == [A.AttachWorker(1)]
    assert h.sup.workers[1].state is WorkerState.READY


def test_crash_is_replaced_and_counted():
    h = Harness(config('start_mode = "always_running"'))
    h.ready(1)
    out = h.exited(1, code=-11)
    assert [a.event_id for a in of(out, A.Event)] == [5009]
    assert of(out, A.SpawnWorker) == [A.SpawnWorker(2, "P")]
    assert len(h.sup.pools["P"].failures.times) == 1


def test_rapid_fail_disables_pool():
    h = Harness(config("""
        start_mode = "always_running"
        [pools.failure]
        rapid_fail_protection_max_crashes = 3
        rapid_fail_protection_interval = "1m"
        """))
    for i in range(3):
        wid = h.live()[-1] if h.live() else None
        assert wid is not None, h.log
        h.run(h.sup.worker_load_failed(wid, "ImportError: nope") or [])
        h.exited(wid, code=4)
        h.advance(11)  # past any spawn back-off
    pool = h.sup.pools["P"]
    assert pool.state is PoolState.DISABLED
    assert h.events().count(9009) == 3 and 5002 in h.events()
    assert A.SetPoolState("P", "Disabled", "AppOffline") in h.log
    assert h.live() == []
    # A request for it now just repeats the state; `start pool` re-enables.
    assert h.demand() == [A.SetPoolState("P", "Disabled", "AppOffline")]
    out = h.run(h.sup.start_pool("P", h.now))
    assert pool.state is PoolState.STARTED and of(out, A.SpawnWorker)


def test_failures_outside_the_interval_do_not_add_up():
    h = Harness(config("""
        start_mode = "always_running"
        [pools.failure]
        rapid_fail_protection_max_crashes = 2
        rapid_fail_protection_interval = "1m"
        """))
    h.ready(1)
    h.exited(1, code=1)
    h.advance(61)
    h.ready(2)
    h.exited(2, code=1)
    assert h.sup.pools["P"].state is PoolState.STARTED


def test_spawn_backs_off_after_consecutive_failures():
    h = Harness(config("""
        start_mode = "always_running"
        [pools.failure]
        rapid_fail_protection = false
        """))
    assert of(h.exited(1, code=1), A.SpawnWorker)  # first replacement at once
    assert not of(h.exited(2, code=1), A.SpawnWorker)  # then it waits
    assert of(h.advance(1), A.SpawnWorker)


def test_startup_time_limit_kills_and_counts():
    h = Harness(config("""
        start_mode = "always_running"
        [pools.process_model]
        startup_time_limit = "5s"
        """))
    assert h.sup.next_deadline(h.now, h.wall) == pytest.approx(h.now + 5)
    out = h.advance(5)
    assert A.KillWorker(1) in out and 9008 in h.events()
    h.exited(1, code=-9)
    assert len(h.sup.pools["P"].failures.times) == 1
    assert 5009 not in h.events()


def test_ping_timeout_replaces_worker_with_5010():
    h = Harness(config("""
        start_mode = "always_running"
        [pools.process_model]
        ping_interval = "10s"
        ping_response_time = "20s"
        """))
    h.ready(1)
    out = h.advance(10)
    assert of(out, A.PingWorker) and out[0].worker_id == 1
    h.advance(10)
    out = h.advance(10)
    assert A.KillWorker(1) in out and 5010 in h.events()
    assert of(out, A.SpawnWorker) == [A.SpawnWorker(2, "P")]  # the replacement starts at once


def test_pong_keeps_a_worker_alive():
    h = Harness(config("""
        start_mode = "always_running"
        [pools.process_model]
        ping_interval = "10s"
        ping_response_time = "20s"
        """))
    h.ready(1)
    for _ in range(5):
        pings = of(h.advance(10), A.PingWorker)
        assert pings
        h.pong(1, served=1)
    assert 5010 not in h.events()


def test_overlapped_recycle_drains_old_after_new_is_ready():
    h = Harness(config('start_mode = "always_running"'))
    h.ready(1)
    out = h.run(h.sup.recycle_pool("P", h.now))
    assert 5079 in h.events()
    assert of(out, A.SpawnWorker) == [A.SpawnWorker(2, "P")]
    assert not of(out, A.StopWorker)  # old keeps serving meanwhile
    out = h.ready(2)
    assert acts(out) == [A.AttachWorker(2), A.StopWorker(1, drain=True)]
    assert h.sup.workers[1].state is WorkerState.DRAINING
    # An asked-for exit: no replacement, and only the informational 9016.
    assert [e.event_id for e in h.exited(1)] == [9016]


def test_recycle_when_replacement_fails_keeps_old_serving():
    h = Harness(config('start_mode = "always_running"'))
    h.ready(1)
    h.run(h.sup.recycle_pool("P", h.now))
    h.exited(2, code=1)
    assert h.sup.workers[1].state is WorkerState.READY
    assert of(h.advance(1), A.SpawnWorker)  # tries again, after a back-off


def test_non_overlapped_recycle_stops_old_first():
    h = Harness(config("""
        start_mode = "always_running"
        [pools.recycling]
        disallow_overlapping_rotation = true
        """))
    h.ready(1)
    out = h.run(h.sup.recycle_pool("P", h.now))
    assert out[-1] == A.StopWorker(1, drain=True) and not of(out, A.SpawnWorker)
    out = h.exited(1)
    assert of(out, A.SpawnWorker) == [A.SpawnWorker(2, "P")]


def test_shutdown_time_limit_kills_with_5013():
    h = Harness(config("""
        start_mode = "always_running"
        [pools.process_model]
        shutdown_time_limit = "3s"
        """))
    h.ready(1)
    h.run(h.sup.recycle_pool("P", h.now))
    h.ready(2)
    out = h.advance(3)
    assert A.KillWorker(1) in out and 5013 in h.events()
    h.exited(1, code=-9)
    assert not h.sup.pools["P"].failures.times


def test_recycling_time_with_jitter():
    h = Harness(config("""
        start_mode = "always_running"
        [pools.recycling]
        time = "100s"
        [pools.process_model]
        ping_interval = "0s"
        """))
    h.ready(1)
    recycle_at = h.sup.workers[1].recycle_at
    assert 200.0 <= recycle_at <= 202.0
    h.advance(recycle_at - h.now - 0.5)
    assert 5074 not in h.events()
    out = h.advance(1)
    assert 5074 in h.events() and of(out, A.SpawnWorker)


def test_recycling_requests_from_pong():
    h = Harness(config("""
        start_mode = "always_running"
        [pools.recycling]
        requests = 100
        """))
    h.ready(1)
    assert not of(h.pong(1, served=99), A.SpawnWorker)
    out = h.pong(1, served=100)
    assert 5075 in h.events() and of(out, A.SpawnWorker)
    assert not of(h.pong(1, served=150), A.SpawnWorker)  # already retiring: once only


def test_memory_limits_recycle():
    h = Harness(config("""
        start_mode = "always_running"
        [pools.recycling]
        private_memory = "100MB"
        """))
    h.ready(1)
    h.pong(1, uss=50_000_000)
    assert 5117 not in h.events()
    for _ in range(3):  # recycling.MEMORY_SAMPLES in a row
        h.pong(1, uss=200_000_000)
    assert 5117 in h.events()


def test_idle_timeout_stops_on_demand_worker_and_demand_restarts():
    h = Harness(config("""
        [pools.process_model]
        idle_timeout = "60s"
        ping_interval = "30s"
        """))
    h.demand()
    h.ready(1)
    h.pong(1, idle_s=10, inflight=0)
    # The next look is when it would have been idle for 60 s, not a whole ping period later.
    assert h.sup.next_deadline(h.now, h.wall) == pytest.approx(h.now + 30)
    h.advance(30)
    out = h.pong(1, idle_s=70, inflight=0)
    assert 5186 in h.events()
    assert A.StopWorker(1, drain=True) in out and not of(out, A.SpawnWorker)
    h.exited(1)
    assert h.live() == []
    assert of(h.demand(), A.SpawnWorker)


def test_busy_worker_is_not_idle():
    h = Harness(config("""
        [pools.process_model]
        idle_timeout = "60s"
        """))
    h.demand()
    h.ready(1)
    h.pong(1, idle_s=600, inflight=2)
    assert 5186 not in h.events()


def test_stop_and_start_pool():
    h = Harness(config('start_mode = "always_running"'))
    h.ready(1)
    out = h.run(h.sup.stop_pool("P", h.now))
    assert A.SetPoolState("P", "Stopped", "Disabled") in out and A.StopWorker(1, drain=True) in out
    assert h.sup.pools["P"].state is PoolState.STOPPING
    with pytest.raises(CommandError, match="already been stopped"):
        h.sup.stop_pool("P", h.now)
    h.exited(1)
    assert h.sup.pools["P"].state is PoolState.STOPPED
    assert h.demand() == [A.SetPoolState("P", "Stopped", "Disabled")]
    out = h.run(h.sup.start_pool("P", h.now))
    assert A.SetPoolState("P", "Started", "") in out and of(out, A.SpawnWorker)
    with pytest.raises(CommandError, match="already been started"):
        h.sup.start_pool("P", h.now)


def test_unknown_pool_message_is_appcmds():
    h = Harness(config())
    with pytest.raises(CommandError) as info:
        h.sup.recycle_pool("Nope", h.now)
    assert str(info.value) == 'Cannot find APPPOOL object with identifier "Nope".'


def test_front_crash_restarts_it_and_reattaches_ready_workers():
    h = Harness(config('start_mode = "always_running"\nmax_processes = 2'))
    h.ready(1)
    h.ready(2)
    h.advance(10)
    out = h.run(h.sup.front_exited(-9, 555, h.now))
    assert out[0] == A.Event(9006, pid=555, data={"code": -9, "front": 0})
    assert isinstance(out[1], A.SpawnFront)
    assert A.SetPoolState("P", "Started", "", front=0) in out
    assert A.AttachWorker(1, 0) in out and A.AttachWorker(2, 0) in out
    # Dying again at once: it backs off instead of spinning.
    out = h.run(h.sup.front_exited(-9, 556, h.now))
    assert not of(out, A.SpawnFront) and h.sup.front.state is FrontState.DOWN
    assert of(h.advance(1), A.SpawnFront)


def test_graceful_shutdown_then_exit():
    h = Harness(config("""
        start_mode = "always_running"
        [pools.process_model]
        shutdown_time_limit = "7s"
        """))
    h.ready(1)
    out = h.run(h.sup.shutdown(h.now))
    assert A.StopFront() in out
    assert A.StopWorker(1, drain=False) in out  # the front drains; the worker serves what it queued
    assert h.sup.next_deadline(h.now, h.wall) == pytest.approx(h.now + 7)
    assert h.run(h.sup.front_exited(0, 1, h.now)) == []
    assert acts(h.exited(1)) == [A.Exit()]


def test_shutdown_deadline_kills_everything():
    h = Harness(config("""
        start_mode = "always_running"
        [pools.process_model]
        shutdown_time_limit = "7s"
        """))
    h.ready(1)
    h.run(h.sup.shutdown(h.now))
    out = h.advance(7)
    assert A.KillFront() in out and A.KillWorker(1) in out
    h.run(h.sup.front_exited(-9, 1, h.now))
    assert acts(h.exited(1, code=-9)) == [A.Exit()]


def test_reconfigure_adds_removes_and_recycles_changed_pools():
    old = config('start_mode = "always_running"', extra='[[pools]]\nname = "Gone"\nstart_mode = "always_running"')
    h = Harness(old)
    h.ready(1)
    h.ready(2)
    new = load_text(textwrap.dedent("""
        [[pools]]
        name = "P"
        start_mode = "always_running"
        threads = 4
        [[pools]]
        name = "Fresh"
        start_mode = "always_running"
        [[sites]]
        name = "S"
        id = 1
        bindings = ["http/127.0.0.1:8080:"]
        [[sites.applications]]
        path = "/"
        app = "m:app"
        pool = "P"
        """))
    out = h.run(h.sup.reconfigure(new, {"P"}, h.now, h.wall))
    gone_worker = next(w for w in h.sup.workers.values() if w.pool == "Gone")
    assert gone_worker.state is WorkerState.DRAINING
    assert "Gone" not in h.sup.pools and h.sup.pools["Fresh"].state is PoolState.STARTED
    assert 5080 in h.events()
    spawned_pools = sorted(a.pool for a in of(out, A.SpawnWorker))
    assert spawned_pools == ["Fresh", "P"]


def test_config_change_without_rotation():
    h = Harness(config("""
        start_mode = "always_running"
        [pools.recycling]
        disallow_rotation_on_config_change = true
        """))
    h.ready(1)
    h.run(h.sup.reconfigure(h.sup.config, {"P"}, h.now, h.wall))
    assert 5080 not in h.events() and h.live(WorkerState.READY) == [1]


def test_max_processes_shrink_on_reload_drains_extras():
    h = Harness(config('start_mode = "always_running"\nmax_processes = 3'))
    for wid in (1, 2, 3):
        h.ready(wid)
    smaller = config('start_mode = "always_running"\nmax_processes = 1\n[pools.recycling]\n'
                     'disallow_rotation_on_config_change = true')
    out = h.run(h.sup.reconfigure(smaller, {"P"}, h.now, h.wall))
    assert len(of(out, A.StopWorker)) == 2


def test_scheduled_recycle():
    h = Harness(config("""
        start_mode = "always_running"
        [pools.recycling]
        schedule = ["03:00"]
        """))
    h.ready(1)
    when = h.sup.pools["P"].next_schedule
    assert when is not None and when > h.wall
    h.advance(when - h.wall + 0.1)
    assert 5076 in h.events()


def test_views():
    h = Harness(config('start_mode = "always_running"\nmax_processes = 2'))
    h.ready(1)
    h.pong(1, served=7)
    rows = h.sup.pool_rows()
    assert rows == [{"name": "P", "state": "Started", "workers": 2, "start_mode": "always_running",
                     "max_processes": 2, "recycle": "ok"}]
    wp = h.sup.worker_rows(h.now + 5)
    assert [(r["worker_id"], r["state"], r["requests"]) for r in wp] == [(1, "Ready", 7), (2, "Starting", 0)]
    assert wp[0]["uptime_s"] == pytest.approx(5)


def test_web_garden_recycle_replaces_one_for_one():
    h = Harness(config('start_mode = "always_running"\nmax_processes = 2'))
    h.ready(1)
    h.ready(2)
    h.run(h.sup.recycle_pool("P", h.now))
    assert h.live(WorkerState.STARTING) == [3, 4]
    assert h.ready(3)[-1] == A.StopWorker(1, drain=True)
    assert h.sup.workers[2].state is WorkerState.READY  # still serving until 4 is ready
    assert h.ready(4)[-1] == A.StopWorker(2, drain=True)


def test_recycle_while_shrinking_drains_every_surplus_old_worker():
    h = Harness(config('start_mode = "always_running"\nmax_processes = 2'))
    h.ready(1)
    h.ready(2)
    h.run(h.sup.reconfigure(config('start_mode = "always_running"\nmax_processes = 1'), {"P"}, h.now, h.wall))
    assert h.live(WorkerState.STARTING) == [3]
    h.ready(3)
    assert h.live(WorkerState.DRAINING) == [1, 2] and h.live(WorkerState.READY) == [3]


def test_orphaning_leaves_an_unresponsive_worker_and_runs_the_action():
    h = Harness(config("""
        start_mode = "always_running"
        [pools.process_model]
        ping_interval = "10s"
        ping_response_time = "20s"
        [pools.failure]
        orphan_worker_process = true
        orphan_action_exe = "gdb -p %1%"
        """))
    h.ready(1)
    pid = h.sup.workers[1].pid
    h.advance(10)
    h.advance(10)
    out = h.advance(10)
    assert A.OrphanWorker(1, f"gdb -p {pid}") in out and not of(out, A.KillWorker)
    assert of(out, A.SpawnWorker) == [A.SpawnWorker(2, "P")]
    assert 1 not in h.sup.workers and len(h.sup.pools["P"].failures.times) == 1
    assert h.exited(1, code=-9) == []  # whenever it dies, nobody minds


def test_auto_shutdown_exe_runs_when_rapid_fail_disables():
    h = Harness(config("""
        start_mode = "always_running"
        [pools.failure]
        rapid_fail_protection_max_crashes = 1
        auto_shutdown_exe = "notify-admin %1%"
        """))
    out = h.exited(1, code=1)
    assert A.RunCommand("notify-admin P") in out


def test_no_pool_commands_while_shutting_down():
    h = Harness(config('start_mode = "always_running"'))
    h.run(h.sup.shutdown(h.now))
    for command in (h.sup.start_pool, h.sup.stop_pool, h.sup.recycle_pool):
        with pytest.raises(CommandError, match="cannot accept control messages"):
            command("P", h.now)


def test_a_worker_that_could_not_be_started_is_no_crash_and_a_permanent_reason_disables():
    # No such user, interpreter or virtualenv: event 9012 (the manager's) says why; the pool is
    # disabled at once instead of five 5009s for a process that never ran (pid 0).
    h = Harness(config('start_mode = "always_running"'))
    [wid] = h.live()
    h.run(h.sup.worker_not_started(wid, h.now, permanent=True))
    pool = h.sup.pools["P"]
    assert pool.state is PoolState.DISABLED and h.live() == []
    assert 5009 not in h.events() and 5002 in h.events()
    assert A.SetPoolState("P", "Disabled", "AppOffline") in h.log
    out = h.run(h.sup.start_pool("P", h.now))  # after the fix, `start apppool` tries again
    assert pool.state is PoolState.STARTED and of(out, A.SpawnWorker)


def test_a_passing_spawn_failure_counts_as_a_failure_without_a_crash_event():
    h = Harness(config('start_mode = "always_running"'))
    [wid] = h.live()
    h.run(h.sup.worker_not_started(wid, h.now, permanent=False))
    pool = h.sup.pools["P"]
    assert pool.state is PoolState.STARTED and 5009 not in h.events()
    assert len(pool.failures.times) == 1
    h.advance(11)  # past the spawn back-off: it tries again
    assert len(h.live()) == 1


def test_a_permanent_spawn_failure_while_a_worker_serves_is_a_failed_replacement():
    # The pool's venv vanished under a running server, then a recycle: the replacement cannot
    # even be started, but the serving worker must stay and the pool must not be disabled.
    h = Harness(config('start_mode = "always_running"'))
    h.ready(1)
    h.run(h.sup.recycle_pool("P", h.now))
    [new] = [wid for wid in h.live() if wid != 1]
    h.run(h.sup.worker_not_started(new, h.now, permanent=True, error="virtualenv /srv/v is gone"))
    pool = h.sup.pools["P"]
    assert pool.state is PoolState.STARTED and h.sup.workers[1].state is WorkerState.READY
    assert 5002 not in h.events() and 9021 in h.events()
    assert pool.recycle_error == "virtualenv /srv/v is gone"


def test_a_worker_starting_at_shutdown_is_attached_when_ready_then_stopped():
    # An on-demand pool's first worker is still importing when the stop (or an upgrade's
    # handover) begins: the front may hold requests queued for it. A kill would close them
    # unanswered; instead it is attached when ready, serves the queue, and is stopped.
    h = Harness(config())
    h.demand()
    [wid] = h.live(WorkerState.STARTING)
    out = h.run(h.sup.shutdown(h.now, handover=True))
    assert A.StopFront(0, True) in out
    assert not of(out, A.KillWorker) and not of(out, A.StopWorker)
    out = h.ready(wid)
    assert acts(out) == [A.AttachWorker(wid), A.StopWorker(wid, drain=False)]
    h.run(h.sup.front_exited(0, 1, h.now))
    assert acts(h.exited(wid)) == [A.Exit()]


def test_a_worker_still_starting_at_the_shutdown_deadline_is_killed():
    h = Harness(config("""
        [pools.process_model]
        shutdown_time_limit = "7s"
        """))
    h.demand()
    [wid] = h.live(WorkerState.STARTING)
    h.run(h.sup.shutdown(h.now))
    out = h.advance(7)
    assert A.KillWorker(wid) in out
    assert acts(h.ready(wid)) == [A.StopWorker(wid, drain=False)]   # too late: not attached
