"""wasp.front.queues: bounded pool queues and dispatch to the worker with the most room."""

from __future__ import annotations

import pytest

from wasp.config import model
from wasp.front.queues import Dispatcher, PoolState
from wasp.front.request import Request, Stage
from wasp.wire.http import AppPoolUnavailable


class Worker:
    def __init__(self, pool, capacity, apps=None):
        self.pool_name = pool
        self.apps = frozenset(apps) if apps is not None else None
        self.capacity = capacity
        self.inflight = 0
        self.got = []

    @property
    def free(self):
        return self.capacity - self.inflight

    def claim(self):
        return self.free > 0

    def dispatch(self, req):
        self.inflight += 1
        req.move(Stage.EXECUTING)
        self.got.append(req)


def config(queue_length=10, tcp=False, auto_start=True):
    failure = model.Failure(load_balancer_capabilities="tcp_level" if tcp else "http_level")
    return model.Config(pools=[model.Pool(name="P", queue_length=queue_length, failure=failure,
                                          auto_start=auto_start)])


@pytest.fixture
def setup():
    demands = []
    d = Dispatcher(demands.append)
    d.configure(config())
    return d, demands


def req(d, n=[0]):
    n[0] += 1
    r = Request(None, n[0], 0.0)
    r.pool = d.pools["P"]
    return r


def test_no_worker_queues_and_demands_once(setup):
    d, demands = setup
    a, b = req(d), req(d)
    d.submit(a, 1.0)
    d.submit(b, 1.0)
    assert a.stage is Stage.QUEUED and b.stage is Stage.QUEUED
    assert list(d.pools["P"].queue) == [a, b]
    assert demands == ["P"]


def test_hello_pumps_the_queue_in_order(setup):
    d, demands = setup
    rs = [req(d) for _ in range(3)]
    for r in rs:
        d.submit(r, 1.0)
    w = Worker("P", 2)
    d.worker_ready(w)
    assert w.got == rs[:2]
    assert list(d.pools["P"].queue) == rs[2:]
    w.inflight -= 1
    d.pump(d.pools["P"])
    assert w.got == rs


def test_dispatch_goes_to_the_worker_with_most_free_capacity(setup):
    d, _ = setup
    w1, w2 = Worker("P", 4), Worker("P", 4)
    w1.inflight = 3
    w2.inflight = 1
    d.worker_ready(w1)
    d.worker_ready(w2)
    r = req(d)
    d.submit(r, 0)
    assert w2.got == [r] and not w1.got


def test_queue_full_is_503_queuefull(setup):
    d, _ = setup
    for _ in range(10):
        d.submit(req(d), 0)
    with pytest.raises(AppPoolUnavailable) as info:
        d.submit(req(d), 0)
    assert info.value.status == 503
    assert info.value.reason == "QueueFull"
    assert not info.value.close


def test_tcp_level_pool_closes_instead():
    d = Dispatcher(lambda p: None)
    d.configure(config(tcp=True))
    for _ in range(10):
        d.submit(req(d), 0)
    with pytest.raises(AppPoolUnavailable) as info:
        d.submit(req(d), 0)
    assert info.value.close


def test_a_busy_pool_queues_behind_earlier_requests(setup):
    d, _ = setup
    w = Worker("P", 1)
    d.worker_ready(w)
    a, b, c = req(d), req(d), req(d)
    d.submit(a, 0)
    d.submit(b, 0)
    w.inflight = 0  # a slot frees before anyone pumps: c must still not overtake b
    d.submit(c, 0)
    assert w.got == [a]
    assert list(d.pools["P"].queue) == [b, c]


def test_stopped_and_disabled_pools(setup):
    d, _ = setup
    queued = req(d)
    d.submit(queued, 0)
    assert d.set_state("P", "Stopped") == [queued]
    with pytest.raises(AppPoolUnavailable) as info:
        d.submit(req(d), 0)
    assert info.value.reason == "Disabled"
    d.set_state("P", "Disabled", "AppOffline")
    with pytest.raises(AppPoolUnavailable) as info:
        d.submit(req(d), 0)
    assert info.value.reason == "AppOffline"
    d.set_state("P", "Started")
    d.submit(req(d), 0)
    assert d.pools["P"].state is PoolState.STARTED


def test_auto_start_false_pool_starts_stopped():
    d = Dispatcher(lambda p: None)
    d.configure(config(auto_start=False))
    with pytest.raises(AppPoolUnavailable):
        d.submit(req(d), 0)


def test_expire_takes_the_oldest_only(setup):
    d, _ = setup
    old, new = req(d), req(d)
    d.submit(old, 10.0)
    d.submit(new, 100.0)
    assert d.expire(130.0, 120.0) == [old]
    assert list(d.pools["P"].queue) == [new]


def test_withdraw(setup):
    d, _ = setup
    a, b = req(d), req(d)
    d.submit(a, 0)
    d.submit(b, 0)
    d.withdraw(a)
    d.withdraw(a)
    assert list(d.pools["P"].queue) == [b]


def test_worker_gone_keeps_the_queue_and_demands_again(setup):
    d, demands = setup
    w = Worker("P", 1)
    d.worker_ready(w)
    d.submit(req(d), 0)
    waiting = req(d)
    d.submit(waiting, 0)
    d.worker_gone(w)
    assert list(d.pools["P"].queue) == [waiting]
    assert demands == ["P"]
    w2 = Worker("P", 1)
    d.worker_ready(w2)
    assert w2.got == [waiting]


def test_reconfigure_updates_limits_and_drops_removed_pools(setup):
    d, _ = setup
    r = req(d)
    d.submit(r, 0)
    assert d.configure(config(queue_length=20)) == []
    assert d.pools["P"].limit == 20
    orphans = d.configure(model.Config(pools=[model.Pool(name="Q")]))
    assert orphans == [r]
    assert set(d.pools) == {"Q"}


def test_a_restarted_pool_demands_a_worker_again(setup):
    # The demand sent while the pool was being disabled was answered with a state, not a
    # worker; after `start pool` the first request must ask for a worker again.
    d, demands = setup
    w = Worker("P", 1)
    d.worker_ready(w)
    d.submit(req(d), 0)
    d.submit(req(d), 0)
    d.worker_gone(w)
    assert demands == ["P"]
    d.set_state("P", "Disabled", "AppOffline")
    d.set_state("P", "Started")
    d.submit(req(d), 0)
    assert demands == ["P", "P"]


# ---- several fronts: the bounds are the scoreboard's row, not this front's own counts ----

def _two_fronts():
    from wasp.common import scoreboard as sb
    buf = bytearray(sb.size_for(2))
    sb.initialize(buf, 2)
    return sb.Scoreboard(buf, 0), sb.Scoreboard(buf, 1)


def test_queue_bound_counts_the_other_fronts_queued_requests():
    mine, other = _two_fronts()
    d = Dispatcher(lambda pool: None, mine)
    d.configure(config(queue_length=10), {"P": 7})
    from wasp.common.scoreboard import QUEUED
    other.set(QUEUED + 7, 9)                      # the other front holds 9 of the 10 places
    first, second = req(d), req(d)
    d.submit(first, 0.0)
    with pytest.raises(AppPoolUnavailable) as info:
        d.submit(second, 0.0)
    assert info.value.reason == "QueueFull"
    assert mine.own(QUEUED + 7) == 1              # the refused one left no trace
    d.withdraw(first)
    assert mine.own(QUEUED + 7) == 0


def test_a_moved_pool_row_leaves_nothing_behind():
    mine, _ = _two_fronts()
    d = Dispatcher(lambda pool: None, mine)
    d.configure(config(), {"P": 1})
    d.submit(req(d), 0.0)
    from wasp.common.scoreboard import QUEUED
    assert mine.own(QUEUED + 1) == 1
    d.configure(config(), {"P": 2})
    assert mine.own(QUEUED + 1) == 0 and mine.own(QUEUED + 2) == 1


def test_starved_queue_asks_to_look_again_only_when_shared():
    mine, _ = _two_fronts()
    starved = []
    d = Dispatcher(lambda pool: None, mine, lambda: starved.append(1))
    d.configure(config())
    pool = d.pools["P"]
    w = Worker("P", 0)                             # full (another front's requests, say)
    d.worker_ready(w)
    d.submit(req(d), 0.0)
    assert starved
    lone = Dispatcher(lambda pool: None, None, lambda: starved.append("lone"))
    lone.configure(config())
    lone.worker_ready(Worker("P", 0))
    lone.submit(req(lone), 0.0)
    assert "lone" not in starved


class _App:
    def __init__(self, key):
        self.key = key


def app_req(d, key):
    r = req(d)
    r.app = _App(key)
    return r


def test_a_request_goes_only_to_a_worker_that_hosts_its_application(setup):
    # A reload gave pool P application "1/new"; its old worker loaded only "1/"
    d, demands = setup
    old = Worker("P", 4, apps={"1/"})
    d.worker_ready(old)
    a, b = app_req(d, "1/new"), app_req(d, "1/")
    d.submit(a, 1.0)
    d.submit(b, 1.0)
    assert old.got == [b]                       # what the old worker knows goes on to it
    assert a.stage is Stage.QUEUED and list(d.pools["P"].queue) == [a]
    assert demands == []                        # the pool has a worker: the recycle brings the other
    c = app_req(d, "1/")
    d.submit(c, 1.0)                            # behind a queued request it cannot take: not blocked
    assert old.got == [b, c]
    new = Worker("P", 4, apps={"1/", "1/new"})
    d.worker_ready(new)
    assert new.got == [a] and not d.pools["P"].queue


def test_the_partial_pump_keeps_order_and_places(setup):
    d, _ = setup
    old = Worker("P", 1, apps={"1/"})
    d.worker_ready(old)
    rs = [app_req(d, k) for k in ("1/", "1/new", "1/", "1/new")]
    for r in rs:
        d.submit(r, 1.0)
    assert old.got == [rs[0]]
    assert list(d.pools["P"].queue) == rs[1:]
    old.inflight -= 1
    d.pump(d.pools["P"])
    assert old.got == [rs[0], rs[2]]
    assert list(d.pools["P"].queue) == [rs[1], rs[3]]
    new = Worker("P", 1, apps={"1/", "1/new"})
    d.worker_ready(new)
    assert new.got == [rs[1]] and list(d.pools["P"].queue) == [rs[3]]   # oldest first
    d.worker_gone(old)                           # the old one drains: the new one hosts all
    assert d.pools["P"].common == {"1/", "1/new"}


def test_unhosted_requests_share_the_queue_bound(setup):
    demands = []
    d = Dispatcher(demands.append)
    d.configure(config(queue_length=2))
    d.worker_ready(Worker("P", 4, apps={"1/"}))
    d.submit(app_req(d, "1/new"), 1.0)
    d.submit(app_req(d, "1/new"), 1.0)
    with pytest.raises(AppPoolUnavailable) as err:
        d.submit(app_req(d, "1/new"), 1.0)
    assert err.value.reason == "QueueFull"
    assert len(d.expire(100.0, 10.0)) == 2      # and the queue's timeout (503 Timer_AppPool)


def test_a_failed_replacement_answers_its_applications_app_offline(setup):
    d, _ = setup
    old = Worker("P", 4, apps={"1/"})
    d.worker_ready(old)
    a = app_req(d, "1/new")
    d.submit(a, 1.0)
    assert d.unhosted("P") == [a] and not d.pools["P"].queue
    with pytest.raises(AppPoolUnavailable) as err:
        d.submit(app_req(d, "1/new"), 1.0)
    assert err.value.reason == "AppOffline"
    b = app_req(d, "1/")
    d.submit(b, 1.0)                            # the old applications are still served
    assert old.got == [b]
    d.worker_ready(Worker("P", 4, apps={"1/", "1/new"}))   # a later retry came up
    c = app_req(d, "1/new")
    d.submit(c, 1.0)
    assert c.stage is Stage.EXECUTING


def test_unhosted_is_nothing_without_workers(setup):
    d, demands = setup
    assert d.unhosted("P") == [] and d.unhosted("nope") == []
    a = app_req(d, "1/new")
    d.submit(a, 1.0)
    assert a.stage is Stage.QUEUED and demands == ["P"]
