"""Process-model policy added on top of the supervisor's basics: memory samples, jitter across a
web garden, the lifecycle events, and IIS cpu.limit with no_action / kill_w3wp. Fake clock."""

from __future__ import annotations

import random

from wasp.config.model import Recycling
from wasp.manager import actions as A
from wasp.manager.events import RECYCLE_REASONS, EventLog, format_message
from wasp.manager.pools import WorkerRecord, WorkerState
from wasp.manager.recycling import MAX_JITTER_S, MEMORY_SAMPLES, jitter, memory_verdict

from test_manager_supervisor import Harness, config, of


def events(actions) -> list[A.Event]:
    return [a for a in actions if isinstance(a, A.Event)]


# ---- memory: several samples over the limit before acting --------------------------------------

def test_one_memory_spike_does_not_recycle():
    w = WorkerRecord(1, "P", 0.0)
    limits = Recycling(private_memory=100)
    w.uss = 500
    assert memory_verdict(limits, w) is None
    w.uss = 50  # the spike is gone: the count starts over
    assert memory_verdict(limits, w) is None
    for _ in range(MEMORY_SAMPLES - 1):
        w.uss = 500
        assert memory_verdict(limits, w) is None
    w.uss = 500
    assert memory_verdict(limits, w) == 5117


def test_virtual_memory_needs_the_same_number_of_samples():
    w = WorkerRecord(1, "P", 0.0)
    limits = Recycling(memory=1000)
    w.vms = 2000
    verdicts = [memory_verdict(limits, w) for _ in range(MEMORY_SAMPLES)]
    assert verdicts == [None] * (MEMORY_SAMPLES - 1) + [5077]


def test_memory_recycle_through_pongs_is_overlapped():
    h = Harness(config("""
        start_mode = "always_running"
        [pools.recycling]
        private_memory = "100MB"
        """))
    h.ready(1)
    for _ in range(MEMORY_SAMPLES - 1):
        h.pong(1, uss=200_000_000)
    h.pong(1, uss=10_000_000)
    assert 5117 not in h.events()
    out = []
    for _ in range(MEMORY_SAMPLES):
        out += h.pong(1, uss=200_000_000)
    assert 5117 in h.events()
    assert of(out, A.SpawnWorker) and not of(out, A.StopWorker)  # the old one serves until the new is ready
    assert A.StopWorker(1, drain=True) in h.ready(2)


# ---- jitter ------------------------------------------------------------------------------------

def test_jitter_is_bounded():
    rng = random.Random(7)
    assert all(0 <= jitter(100.0, rng) <= 2.0 for _ in range(200))
    assert all(0 <= jitter(29 * 3600.0, rng) <= MAX_JITTER_S for _ in range(200))


def test_web_garden_workers_do_not_recycle_at_once():
    h = Harness(config("""
        start_mode = "always_running"
        max_processes = 4
        [pools.recycling]
        time = "1h"
        """))
    for wid in range(1, 5):
        h.ready(wid)
    deadlines = [h.sup.workers[wid].recycle_at for wid in range(1, 5)]
    assert len(set(deadlines)) == 4
    assert all(h.now + 3600 <= d <= h.now + 3600 + 72 for d in deadlines)


# ---- lifecycle events --------------------------------------------------------------------------

def test_ready_and_expected_exit_are_events():
    h = Harness(config('start_mode = "always_running"'))
    h.advance(1.5)
    ready = events(h.ready(1))
    assert [(e.event_id, e.data["startup_s"]) for e in ready] == [(9014, 1.5)]
    h.run(h.sup.recycle_pool("P", h.now))
    h.ready(2)
    gone = events(h.exited(1, code=0))
    assert [(e.event_id, e.data["code"]) for e in gone] == [(9016, 0)]


def test_crash_is_5009_not_9016():
    h = Harness(config('start_mode = "always_running"'))
    h.ready(1)
    assert [e.event_id for e in events(h.exited(1, code=-11))] == [5009]


def test_orphaning_is_an_event():
    h = Harness(config("""
        start_mode = "always_running"
        [pools.process_model]
        ping_interval = "1s"
        ping_response_time = "2s"
        [pools.failure]
        orphan_worker_process = true
        """))
    h.ready(1)
    pid = h.sup.workers[1].pid
    for _ in range(4):
        h.advance(1)
    orphaned = [a for a in h.log if isinstance(a, A.Event) and a.event_id == 9015]
    assert [(e.pid, e.data["reason"]) for e in orphaned] == [(pid, "ping")]
    assert 5010 in h.events()


def test_recycle_events_carry_their_reason(tmp_path):
    log = EventLog(str(tmp_path / "events.jsonl"), stderr=open(tmp_path / "err", "w"))
    for event_id, reason in RECYCLE_REASONS.items():
        assert log.write(event_id, "P", 42)["reason"] == reason
    assert "reason" not in log.write(5186, "P", 42, {"minutes": "1"})
    log.close()


def test_new_event_texts_fill_in():
    assert "as user 'nobody'" in format_message(9013, "P", 7, {"user": "nobody"})[1]
    assert "ready after 0.5 seconds" in format_message(9014, "P", 7, {"startup_s": 0.5})[1]
    level, text = format_message(9017, "P", 0, {"reason": "no cgroup v2"})
    assert level == "Warning" and text.endswith("no cgroup v2")


# ---- cpu.limit ---------------------------------------------------------------------------------

def cpu_harness(action: str, cpus: int = 2):
    h = Harness(config(f"""
        start_mode = "always_running"
        [pools.cpu]
        limit = 10000
        action = "{action}"
        reset_interval = "10s"
        """))
    h.sup.cpu_count = cpus
    h.ready(1)
    return h


def test_cpu_no_action_logs_once_per_window():
    h = cpu_harness("no_action")  # 10 % of 2 cores over 10 s: 2 CPU-seconds
    h.pong(1, cpu_s=5.0)  # opens the window with this as the base
    h.advance(2)
    h.pong(1, cpu_s=6.5)
    assert 9020 not in h.events()
    h.advance(2)
    out = h.pong(1, cpu_s=7.5)
    [event] = [e for e in events(out) if e.event_id == 9020]
    assert event.data["used_pct"] == 12.5 and event.data["action"] == "no_action"
    assert not of(out, A.KillWorker)
    h.advance(2)
    assert 9020 not in [e.event_id for e in events(h.pong(1, cpu_s=9.0))]  # once per window
    h.advance(5)  # a new window: counted from here
    h.pong(1, cpu_s=9.5)
    h.advance(1)
    assert 9020 not in [e.event_id for e in events(h.pong(1, cpu_s=10.0))]


def test_cpu_kill_w3wp_kills_the_pools_workers_without_counting_a_failure():
    h = cpu_harness("kill_w3wp")
    h.pong(1, cpu_s=0.0)
    h.advance(1)
    out = h.pong(1, cpu_s=3.0)
    assert A.KillWorker(1) in out and 9020 in h.events()
    respawn = h.exited(1, code=-9)
    assert of(respawn, A.SpawnWorker)  # always_running: a new worker at once
    assert not h.sup.pools["P"].failures.times


def test_cpu_of_exited_workers_still_counts_in_the_window():
    h = cpu_harness("no_action")
    h.pong(1, cpu_s=0.0)
    h.advance(1)
    h.pong(1, cpu_s=1.5)
    h.run(h.sup.recycle_pool("P", h.now))
    h.ready(2)
    h.exited(1)
    h.advance(1)
    h.pong(2, cpu_s=0.6)  # 1.5 + 0.6 > 2 CPU-seconds
    assert 9020 in h.events()


def test_throttle_actions_are_left_to_the_cgroup():
    h = cpu_harness("throttle")
    h.pong(1, cpu_s=0.0)
    h.advance(1)
    h.pong(1, cpu_s=100.0)
    assert 9020 not in h.events()
    assert h.sup.workers[1].state is WorkerState.READY
