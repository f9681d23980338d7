"""Several fronts (server.front_processes), sans I/O: the config key, and the supervisor's
per-front state machine (each front started, pinged, restarted and stopped on its own)."""

from __future__ import annotations

import random
import textwrap

import pytest

from wasp.config.load import load_text
from wasp.errors import ConfigError
from wasp.manager import actions as A
from wasp.manager.pools import FrontState
from wasp.manager.supervisor import FRONT_PING_INTERVAL, FRONT_PING_RESPONSE, Supervisor, front_count

WALL = 1_700_000_000.0


def config(server: str = "", pool: str = 'start_mode = "always_running"'):
    return load_text(textwrap.dedent(f"""
        [server]
        {server}
        [[pools]]
        name = "P"
        {pool}
        [[sites]]
        name = "S"
        id = 1
        bindings = ["http/127.0.0.1:8080:"]
        [[sites.applications]]
        path = "/"
        app = "m:app"
        pool = "P"
        """))


def of(actions, kind):
    return [a for a in actions if isinstance(a, kind)]


# ---- the config key ----

@pytest.mark.parametrize("cpus,expected", [(1, 1), (2, 1), (4, 1), (7, 1), (8, 2), (16, 4), (64, 16)])
def test_default_is_one_front_per_four_cpus(cpus, expected):
    assert config().server.front_processes is None
    assert front_count(config(), cpus) == expected


def test_an_explicit_count_wins():
    assert front_count(config("front_processes = 3"), 2) == 3


@pytest.mark.parametrize("value,message", [
    ("0", "server.front_processes: 0 is out of range; allowed: 1 to 64"),
    ("65", "server.front_processes: 65 is out of range; allowed: 1 to 64"),
    ('"2"', "server.front_processes: expected an integer, got a string"),
])
def test_bad_counts_are_refused_with_path_and_line(value, message):
    with pytest.raises(ConfigError) as info:
        config(f"front_processes = {value}")
    path, _, text = message.partition(": ")
    assert [(p.path, p.message, p.line) for p in info.value.problems] == [(path, text, 3)]


# ---- the supervisor ----

class Harness:
    def __init__(self, fronts: int, now: float = 100.0):
        self.now = now
        self.sup = Supervisor(config(f"front_processes = {fronts}"), rng=random.Random(1),
                              fronts=fronts)
        self.start = self.sup.start(self.now, WALL)

    def advance(self, seconds: float) -> list:
        self.now += seconds
        return self.sup.tick(self.now, WALL + self.now)


def test_start_spawns_every_front_and_tells_each_the_pool_states():
    h = Harness(3)
    assert of(h.start, A.SpawnFront) == [A.SpawnFront(0), A.SpawnFront(1), A.SpawnFront(2)]
    assert of(h.start, A.SetPoolState) == [A.SetPoolState("P", "Started", "", front=i) for i in range(3)]
    assert all(f.state is FrontState.RUNNING for f in h.sup.fronts.values())


def test_a_ready_worker_is_attached_to_every_front():
    h = Harness(2)
    [spawn] = of(h.start, A.SpawnWorker)
    out = h.sup.worker_ready(spawn.worker_id, h.now)
    assert of(out, A.AttachWorker) == [A.AttachWorker(spawn.worker_id)]  # front None: all


def test_one_front_dies_only_it_restarts_and_gets_every_ready_worker():
    h = Harness(3)
    [spawn] = of(h.start, A.SpawnWorker)
    h.sup.worker_ready(spawn.worker_id, h.now)
    h.advance(10)
    out = h.sup.front_exited(-9, 4242, h.now, index=1)
    assert out[0] == A.Event(9006, pid=4242, data={"code": -9, "front": 1})
    assert of(out, A.SpawnFront) == [A.SpawnFront(1)]
    assert of(out, A.SetPoolState) == [A.SetPoolState("P", "Started", "", front=1)]
    assert of(out, A.AttachWorker) == [A.AttachWorker(spawn.worker_id, 1)]
    assert not of(out, A.StopWorker) and not of(out, A.KillFront)
    assert [f.state for f in h.sup.fronts.values()] == [FrontState.RUNNING] * 3


def test_back_off_is_per_front():
    h = Harness(2)
    h.advance(10)
    h.sup.front_exited(1, 1, h.now, index=0)          # ran 10 s: restarted at once
    out = h.sup.front_exited(1, 2, h.now, index=0)    # died at once: backs off
    assert not of(out, A.SpawnFront) and h.sup.fronts[0].state is FrontState.DOWN
    assert h.sup.fronts[1].state is FrontState.RUNNING and h.sup.fronts[1].quick_deaths == 0
    assert h.sup.next_deadline(h.now, WALL) == h.sup.fronts[0].restart_at
    assert of(h.advance(0.3), A.SpawnFront) == [A.SpawnFront(0)]


def test_an_exit_of_an_unknown_or_down_front_is_ignored():
    h = Harness(2)
    assert h.sup.front_exited(0, 1, h.now, index=5) == []
    h.advance(10)
    h.sup.front_exited(0, 1, h.now, index=1)
    h.sup.front_exited(0, 1, h.now, index=1)
    assert h.sup.front_exited(0, 1, h.now, index=1) == []  # down, backing off


def test_each_front_is_pinged_and_only_the_silent_one_killed():
    h = Harness(2)
    out = h.advance(FRONT_PING_INTERVAL)
    pings = of(out, A.PingFront)
    assert sorted(p.index for p in pings) == [0, 1]
    h.sup.front_pong(h.now, index=0)
    out = h.advance(FRONT_PING_RESPONSE)
    assert of(out, A.KillFront) == [A.KillFront(1)]
    assert A.Event(9007, data={"front": 1}) in out


def test_shutdown_stops_every_front_and_exits_when_all_are_gone():
    h = Harness(3)
    [spawn] = of(h.start, A.SpawnWorker)
    h.sup.worker_ready(spawn.worker_id, h.now)
    out = h.sup.shutdown(h.now)
    assert of(out, A.StopFront) == [A.StopFront(0), A.StopFront(1), A.StopFront(2)]
    assert of(h.sup.worker_exited(spawn.worker_id, 0, h.now), A.Exit) == []
    assert of(h.sup.front_exited(0, 1, h.now, index=0), A.Exit) == []
    assert of(h.sup.front_exited(0, 2, h.now, index=2), A.Exit) == []
    assert of(h.sup.front_exited(0, 3, h.now, index=1), A.Exit) == [A.Exit()]


def test_kill_everything_kills_every_live_front():
    h = Harness(2)
    h.advance(10)
    h.sup.shutdown(h.now)
    h.sup.front_exited(0, 1, h.now, index=0)
    out = h.sup.kill_everything()
    assert of(out, A.KillFront) == [A.KillFront(1)]


def test_demand_from_any_front_starts_workers_once():
    h = Harness(2)
    sup = Supervisor(config("front_processes = 2", pool='start_mode = "on_demand"\nmax_processes = 2'),
                     rng=random.Random(1), fronts=2)
    sup.start(h.now, WALL)
    first = of(sup.front_demand("P", h.now), A.SpawnWorker)
    again = of(sup.front_demand("P", h.now), A.SpawnWorker)   # the other front's demand
    assert len(first) == 2 and again == []
