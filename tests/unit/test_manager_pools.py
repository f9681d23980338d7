"""The pool and worker state tables."""

from __future__ import annotations

import pytest

from wasp.config.model import Pool
from wasp.manager.pools import (
    POOL_TRANSITIONS, WORKER_TRANSITIONS, FailureWindow, IllegalTransition, PoolRecord, PoolState,
    WorkerRecord, WorkerState,
)


def test_every_state_has_a_row():
    assert set(POOL_TRANSITIONS) == set(PoolState)
    assert set(WORKER_TRANSITIONS) == set(WorkerState)


@pytest.mark.parametrize("path", [
    [PoolState.STARTING, PoolState.STARTED, PoolState.STOPPING, PoolState.STOPPED],
    [PoolState.STARTING, PoolState.STARTED, PoolState.DISABLED, PoolState.STARTING],
    [PoolState.STARTING, PoolState.STARTED, PoolState.DISABLED, PoolState.STOPPING, PoolState.STOPPED],
    [PoolState.STARTING, PoolState.STARTED, PoolState.STOPPING, PoolState.STARTING],
])
def test_legal_pool_paths(path):
    rec = PoolRecord(Pool(name="P"))
    assert rec.state is PoolState.STOPPED
    for state in path:
        rec.set_state(state)
    assert rec.state is path[-1]


@pytest.mark.parametrize("start,bad", [
    (PoolState.STOPPED, PoolState.STARTED),
    (PoolState.STOPPED, PoolState.DISABLED),
    (PoolState.STOPPED, PoolState.STOPPING),
])
def test_illegal_pool_moves_raise(start, bad):
    rec = PoolRecord(Pool(name="P"))
    rec.state = start
    with pytest.raises(IllegalTransition):
        rec.set_state(bad)


def test_worker_lifecycle_and_gone_is_final():
    w = WorkerRecord(1, "P", 0.0)
    assert w.state is WorkerState.STARTING
    w.set_state(WorkerState.READY, 1.0)
    w.set_state(WorkerState.DRAINING, 2.0)
    w.set_state(WorkerState.GONE, 3.0)
    assert w.state_since == 3.0 and not w.live
    for state in WorkerState:
        with pytest.raises(IllegalTransition):
            w.set_state(state, 4.0)


def test_ready_cannot_go_back_to_starting():
    w = WorkerRecord(1, "P", 0.0)
    w.set_state(WorkerState.READY, 1.0)
    with pytest.raises(IllegalTransition):
        w.set_state(WorkerState.STARTING, 2.0)


def test_front_state_mapping():
    rec = PoolRecord(Pool(name="P"))
    assert rec.front_state() == ("Stopped", "Disabled")
    rec.set_state(PoolState.STARTING)
    rec.set_state(PoolState.STARTED)
    assert rec.front_state() == ("Started", "")
    rec.set_state(PoolState.DISABLED)
    assert rec.front_state() == ("Disabled", "AppOffline")


def test_failure_window_slides():
    window = FailureWindow()
    assert window.add(0.0, 10.0) == 1
    assert window.add(5.0, 10.0) == 2
    assert window.add(10.5, 10.0) == 2  # the one at 0 fell out
    assert window.add(30.0, 10.0) == 1
