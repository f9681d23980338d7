"""The worker's state table and stats."""

from __future__ import annotations

import socket

import pytest

from wasp.worker.worker import TRANSITIONS, IllegalTransition, State, Stats, Worker


def test_every_state_has_a_row_and_exiting_is_final():
    assert set(TRANSITIONS) == set(State)
    assert TRANSITIONS[State.EXITING] == set()
    assert State.READY not in TRANSITIONS[State.DRAINING]


def test_illegal_move_raises():
    a, b = socket.socketpair()
    try:
        worker = Worker(1, "P", a)
        with pytest.raises(IllegalTransition):
            worker.move(State.READY)
        worker.move(State.LOADING)
        worker.move(State.READY)
        worker.move(State.STOPPING)
        with pytest.raises(IllegalTransition):
            worker.move(State.READY)
    finally:
        a.close()
        b.close()


def test_stats():
    stats = Stats()
    stats.begin()
    stats.begin()
    assert stats.idle_seconds() == 0.0
    assert stats.end() == 1 and stats.end() == 0
    assert stats.served == 2 and stats.idle_seconds() >= 0.0


def test_stats_report_the_request_limit_once_from_any_thread():
    import threading

    stats = Stats()
    stats.limit = 5
    calls = []
    stats.on_limit = lambda: calls.append(stats.served)
    for _ in range(4):
        stats.begin()
        stats.end()
    assert calls == []
    threads = [threading.Thread(target=lambda: (stats.begin(), stats.end())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and calls[0] >= 5 and stats.served == 12
