"""The pool's shared dynamic-IP counters (wasp/common/clientboard.py): several workers' views of
one region count exactly together (concurrency and rate), a dead worker's in-flight requests stop
counting and its column is reused, a worker releases its own requests that never reached
END_REQUEST, a full group forgets idle clients first, and a slot taken over by another client is
never decremented by the old one's release."""

from __future__ import annotations

import os

import pytest

from wasp.common import clientboard
from wasp.common.clientboard import CONCURRENCY, RATE, BoardError, SharedClientTable


class Req:
    def __init__(self):
        self.finished = False
        self.cancelled = False


@pytest.fixture
def board():
    fds = []
    now = [0.0]
    live = set()

    def make(columns=4, groups=16, ways=4):
        fd = clientboard.create(columns, groups, ways)
        fds.append(fd)
        return fd

    def worker(fd, pid):
        live.add(pid)
        return SharedClientTable(fd, clock=lambda: now[0], pid=pid,
                                 alive=lambda p, _start: p in live)
    make.worker, make.now, make.live = worker, now, live
    yield make
    for fd in fds:
        os.close(fd)


def test_two_workers_count_one_client_together(board):
    fd = board()
    a, b = board.worker(fd, 101), board.worker(fd, 102)
    assert a.column != b.column
    r1, r2, r3 = Req(), Req(), Req()
    assert a.admit("app\0c", r1, max_concurrent=2) == 0
    assert b.admit("app\0c", r2, max_concurrent=2) == 0
    assert a.admit("app\0c", r3, max_concurrent=2) == CONCURRENCY   # exact across workers
    assert b.admit("app\0d", Req(), max_concurrent=2) == 0           # per client
    b.release("app\0c", r2)
    assert a.admit("app\0c", Req(), max_concurrent=2) == 0


def test_the_rate_is_the_pools(board):
    fd = board()
    workers = [board.worker(fd, 200 + i) for i in range(3)]
    verdicts = [workers[i % 3].admit("c", Req(), max_requests=6, interval=10.0) for i in range(9)]
    assert verdicts == [0] * 6 + [RATE] * 3
    board.now[0] = 25.0   # two intervals later
    assert workers[1].admit("c", Req(), max_requests=6, interval=10.0) == 0


def test_a_dead_workers_requests_stop_counting_and_its_column_is_reused(board):
    fd = board(columns=2)
    a, b = board.worker(fd, 301), board.worker(fd, 302)
    assert a.admit("c", Req(), max_concurrent=1) == 0
    assert b.admit("c", Req(), max_concurrent=1) == CONCURRENCY
    board.live.discard(301)          # the worker crashed with the request in flight
    board.now[0] = 2.0               # (liveness is cached for a second)
    assert b.admit("c", Req(), max_concurrent=1) == 0
    c = board.worker(fd, 304)        # takes the dead worker's column, zeroed
    assert c.column == a.column
    assert c.admit("c", Req(), max_concurrent=2) == 0   # b's one + c's one: a's is gone
    assert b.admit("c", Req(), max_concurrent=2) == CONCURRENCY
    with pytest.raises(BoardError):  # every column owned by a live worker
        board.worker(fd, 305)


def test_a_lost_end_request_is_released_by_its_worker(board):
    fd = board()
    a = board.worker(fd, 401)
    reqs = [Req(), Req()]
    for r in reqs:
        assert a.admit("c", r, max_concurrent=2) == 0
    reqs[0].finished = True          # never released (an ASGI task cancelled past END_REQUEST)
    reqs[1].cancelled = True
    assert a.admit("c", Req(), max_concurrent=2) == 0


def test_logging_only_mode_counts_and_judges(board):
    a = board.worker(board(), 501)
    verdicts = [a.admit("c", Req(), max_concurrent=1, enforce=False) for _ in range(3)]
    assert verdicts == [0, CONCURRENCY, CONCURRENCY]


def test_memory_is_fixed_and_a_reused_slot_is_not_decremented_by_the_old_client(board):
    fd = board(groups=1, ways=2)     # two clients fit
    a = board.worker(fd, 601)
    held = Req()
    assert a.admit("old", held, max_concurrent=5) == 0
    board.now[0] = 1.0
    for i in range(50):              # many addresses: the group keeps two slots
        a.admit(f"10.0.0.{i}", Req(), max_requests=5, interval=0.1)
    a.release("old", held)           # its slot went to someone else: nothing to take back
    fresh = [Req() for _ in range(2)]
    assert [a.admit("new", r, max_concurrent=2) for r in fresh] == [0, 0]
    assert a.admit("new", Req(), max_concurrent=2) == CONCURRENCY


def test_a_region_that_is_not_a_board_is_refused():
    fd = os.memfd_create("not-a-board")
    try:
        os.ftruncate(fd, 8192)
        with pytest.raises(BoardError):
            SharedClientTable(fd)
    finally:
        os.close(fd)
