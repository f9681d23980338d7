"""A broken deploy never takes a healthy pool down; the worker's own request limit; the first
idle check at ready + idle_timeout. The supervisor with a fake clock (see test_manager_supervisor)."""

from __future__ import annotations

from test_manager_supervisor import Harness, config, of

from wasp.manager import actions as A
from wasp.manager.pools import PoolState, WorkerState
from wasp.manager.recycling import REPLACEMENT_BACKOFF_CAP, replacement_backoff

RAPID = """
    start_mode = "always_running"
    [pools.failure]
    rapid_fail_protection_max_crashes = 3
    rapid_fail_protection_interval = "10m"
    """


def fail_load(h: Harness, wid: int) -> list:
    h.sup.worker_load_failed(wid, "ZeroDivisionError: division by zero", "Traceback ...\n")
    return h.exited(wid, code=4)


def spawned(actions) -> list[int]:
    return [a.worker_id for a in of(actions, A.SpawnWorker)]


def row(h: Harness) -> dict:
    return {r["name"]: r for r in h.sup.pool_rows(h.now)}["P"]


def test_replacement_backoff_doubles_from_one_second_to_the_cap():
    assert [replacement_backoff(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert replacement_backoff(50) == REPLACEMENT_BACKOFF_CAP == 60


def test_failed_replacements_keep_the_old_worker_and_never_disable_the_pool():
    h = Harness(config(RAPID))
    h.ready(1)
    h.run(h.sup.recycle_pool("P", h.now))
    wid = 2
    for attempt in range(1, 7):  # twice rapid_fail_protection_max_crashes
        out = fail_load(h, wid)
        assert not of(out, A.SpawnWorker), "retried without a back-off"
        assert not of(out, A.StopWorker) and not of(out, A.KillWorker)
        [event] = [a for a in out if isinstance(a, A.Event) and a.event_id == 9021]
        assert event.data["attempt"] == attempt and "ZeroDivisionError" in event.data["error"]
        [load] = [a for a in out if isinstance(a, A.Event) and a.event_id == 9009]
        assert load.data["traceback"] == "Traceback ...\n"
        delay = replacement_backoff(attempt)
        assert row(h)["recycle"] == (f"failing (attempt {attempt}, next in {delay:.0f}s): "
                                     "ZeroDivisionError: division by zero")
        assert not spawned(h.advance(delay - 0.01))
        [wid] = spawned(h.advance(0.01))
    pool = h.sup.pools["P"]
    assert pool.state is PoolState.STARTED and 5002 not in h.events()
    assert h.sup.workers[1].state is WorkerState.READY and h.sup.workers[1].retiring
    # The deploy is fixed: the next try is ready, the old worker retires, the failure clears.
    out = h.ready(wid)
    assert A.AttachWorker(wid) in out and A.StopWorker(1, drain=True) in out
    assert row(h)["recycle"] == "ok"


def test_the_old_worker_outlives_its_own_time_and_request_limits_while_replacements_fail():
    h = Harness(config("""
        start_mode = "always_running"
        [pools.recycling]
        time = "100s"
        requests = 10
        """))
    h.ready(1)
    h.run(h.sup.recycle_pool("P", h.now))
    fail_load(h, 2)
    h.pong(1, served=50)
    h.run(h.sup.worker_recycle_me(1, "requests", h.now))
    out = h.advance(300)  # past recycling.time
    assert h.sup.workers[1].state is WorkerState.READY
    assert not [a for a in h.log if isinstance(a, (A.StopWorker, A.KillWorker)) and a.worker_id == 1]
    assert spawned(out)  # the retry


def test_a_web_garden_worker_that_cannot_start_beside_serving_ones_is_retried_not_counted():
    h = Harness(config("max_processes = 2\n" + RAPID))
    h.ready(1)
    wid = 2
    for attempt in range(1, 6):
        fail_load(h, wid)
        [wid] = spawned(h.advance(replacement_backoff(attempt)))
    assert h.sup.pools["P"].state is PoolState.STARTED
    assert not h.sup.pools["P"].failures.times


def test_serving_workers_that_crash_are_still_stopped_by_rapid_fail():
    h = Harness(config(RAPID))
    for wid in (1, 2, 3):
        h.ready(wid)
        h.exited(wid, code=1)  # crashed while serving
        h.advance(11)
    assert h.sup.pools["P"].state is PoolState.DISABLED and 5002 in h.events()


def test_once_the_old_worker_is_gone_failed_starts_count_towards_rapid_fail():
    h = Harness(config(RAPID))
    h.ready(1)
    h.run(h.sup.recycle_pool("P", h.now))
    fail_load(h, 2)
    h.exited(1, code=1)  # the old one crashes: nothing healthy is left
    for _ in range(5):
        live = h.live(WorkerState.STARTING)
        if not live:
            h.advance(11)
            live = h.live(WorkerState.STARTING)
        if not live:
            break
        fail_load(h, live[0])
    assert h.sup.pools["P"].state is PoolState.DISABLED


def test_without_overlap_the_old_worker_is_stopped_first_and_rapid_fail_applies():
    h = Harness(config(RAPID + "[pools.recycling]\ndisallow_overlapping_rotation = true\n"))
    h.ready(1)
    h.run(h.sup.recycle_pool("P", h.now))
    h.exited(1)
    for _ in range(3):
        [wid] = h.live(WorkerState.STARTING) or spawned(h.advance(11))
        fail_load(h, wid)
    assert h.sup.pools["P"].state is PoolState.DISABLED and 9021 not in h.events()


def test_startup_time_limit_of_a_replacement_is_a_failed_replacement():
    h = Harness(config(RAPID + "[pools.process_model]\nstartup_time_limit = \"5s\"\n"))
    h.ready(1)
    h.run(h.sup.recycle_pool("P", h.now))
    h.advance(5)
    assert A.KillWorker(2) in h.log
    out = h.exited(2, code=-9)
    [event] = [a for a in out if isinstance(a, A.Event) and a.event_id == 9021]
    assert event.data["error"] == "startup time limit"
    assert not h.sup.pools["P"].failures.times


def test_the_worker_reports_its_request_limit_and_is_recycled_with_5075():
    h = Harness(config('start_mode = "always_running"\n[pools.recycling]\nrequests = 5\n'))
    h.ready(1)
    out = h.run(h.sup.worker_recycle_me(1, "requests", h.now))
    assert 5075 in h.events() and spawned(out) == [2]
    assert h.sup.workers[1].state is WorkerState.READY  # serves until the replacement is ready
    h.run(h.sup.worker_recycle_me(1, "requests", h.now))
    assert h.events().count(5075) == 1


def test_recycle_me_without_a_request_limit_is_ignored():
    h = Harness(config('start_mode = "always_running"'))
    h.ready(1)
    assert h.run(h.sup.worker_recycle_me(1, "requests", h.now)) == []
    assert h.run(h.sup.worker_recycle_me(99, "requests", h.now)) == []


def test_the_first_idle_check_is_at_ready_plus_idle_timeout_not_the_first_ping():
    h = Harness(config("""
        [pools.process_model]
        idle_timeout = "2s"
        ping_interval = "0s"
        """))
    h.demand()
    h.ready(1)
    assert h.sup.next_deadline(h.now, h.wall) == h.now + 2
    assert not of(h.advance(1.99), A.PingWorker)
    [ping] = of(h.advance(0.01), A.PingWorker)
    out = h.pong(1, idle_s=2.0, inflight=0)
    assert 5186 in h.events() and A.StopWorker(1, drain=True) in out


def test_a_busy_worker_is_looked_at_again_one_idle_timeout_later():
    h = Harness(config("""
        [pools.process_model]
        idle_timeout = "2s"
        ping_interval = "0s"
        """))
    h.demand()
    h.ready(1)
    h.advance(2)
    h.pong(1, idle_s=0.0, inflight=1)
    assert h.sup.next_deadline(h.now, h.wall) == h.now + 2


def test_an_admin_recycle_while_replacements_fail_tries_again_at_once():
    h = Harness(config(RAPID))
    h.ready(1)
    h.run(h.sup.recycle_pool("P", h.now))
    for wid in (2, 3, 4):
        fail_load(h, wid)
        h.advance(replacement_backoff(wid - 1))
    fail_load(h, 5)  # now 8 s to wait
    out = h.run(h.sup.recycle_pool("P", h.now))
    assert spawned(out) == [6]
    assert h.sup.recycle_outcome("P", {1}, h.sup.pools["P"].start_failures) is None
    h.ready(6)
    assert h.sup.recycle_outcome("P", {1}, 0) is not None  # failures since are reported
    assert h.sup.recycle_outcome("P", {1}, h.sup.pools["P"].start_failures) == ""


def test_a_changed_config_while_replacements_fail_tries_again_at_once():
    h = Harness(config(RAPID))
    h.ready(1)
    h.run(h.sup.recycle_pool("P", h.now))
    for wid in (2, 3, 4):
        fail_load(h, wid)
        h.advance(replacement_backoff(wid - 1))
    fail_load(h, 5)  # now 8 s to wait
    out = h.run(h.sup.reconfigure(h.sup.config, {"P"}, h.now, h.wall))
    assert spawned(out) == [6] and 5080 in h.events()
    out = h.ready(6)
    assert A.AttachWorker(6) in out and A.StopWorker(1, drain=True) in out


def test_an_unchanged_pool_keeps_its_back_off_at_a_reload():
    h = Harness(config(RAPID))
    h.ready(1)
    h.run(h.sup.recycle_pool("P", h.now))
    fail_load(h, 2)
    fail_load(h, spawned(h.advance(1))[0])  # now 2 s to wait
    assert not spawned(h.run(h.sup.reconfigure(h.sup.config, set(), h.now, h.wall)))
    assert spawned(h.advance(2))


def test_recycle_outcome_reports_the_first_failed_replacement():
    h = Harness(config(RAPID))
    h.ready(1)
    failures = h.sup.pools["P"].start_failures
    h.run(h.sup.recycle_pool("P", h.now))
    assert h.sup.recycle_outcome("P", {1}, failures) is None
    fail_load(h, 2)
    assert h.sup.recycle_outcome("P", {1}, failures) == "ZeroDivisionError: division by zero"
