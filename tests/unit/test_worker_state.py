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


class _SlowChannel:
    """A data channel whose queued responses leave after a few looks (a slow front)."""

    def __init__(self, looks_until_empty):
        self.left = looks_until_empty
        self.looks = 0
        self.closed = False
        self.backlog_at_close = None

    @property
    def backlog(self):
        self.looks += 1
        if self.left is None:
            return 4096
        self.left = max(0, self.left - 1)
        return 4096 if self.left else 0

    def close(self):
        self.backlog_at_close = self.left
        self.closed = True


def _exit_with(channel):
    import asyncio

    from wasp.worker.worker import Worker

    async def run():
        w = Worker(1, "p", None)
        w.loop = asyncio.get_running_loop()
        w._exit = w.loop.create_future()
        w.channels = {0: channel}
        await w._exit_sequence(0, shutdown_apps=False)
        return w._exit.result()

    return asyncio.run(run())


def test_leaving_waits_for_queued_responses_before_closing_the_channel():
    channel = _SlowChannel(5)
    assert _exit_with(channel) == 0
    assert channel.closed and channel.backlog_at_close == 0 and channel.looks == 5


def test_leaving_closes_a_channel_whose_front_never_reads_after_a_bounded_wait():
    channel = _SlowChannel(None)
    assert _exit_with(channel) == 0
    assert channel.closed and channel.looks == 100
