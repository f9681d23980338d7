"""wasp.common.scoreboard: layout, single-writer cells, reserve-then-check across fronts, slots.

Two or three "fronts" are Scoreboard views of one bytearray; their steps are interleaved by hand
(every order of the reserve's store / read), which is what a real race between processes can do.
"""

from __future__ import annotations

import itertools

import pytest

from wasp.common import scoreboard as sb
from wasp.common.scoreboard import INFLIGHT, QUEUED, SITE, CONNS, Scoreboard, ScoreboardError, SlotTable


def board(fronts: int) -> bytearray:
    buf = bytearray(sb.size_for(fronts))
    sb.initialize(buf, fronts)
    return buf


def test_columns_are_page_aligned_and_apart():
    assert sb.COLUMN_BYTES % sb.PAGE == 0
    buf = board(3)
    a, b = Scoreboard(buf, 0), Scoreboard(buf, 1)
    a.set(QUEUED + 5, 7)
    b.set(QUEUED + 5, 2)
    assert a.own(QUEUED + 5) == 7 and b.own(QUEUED + 5) == 2
    assert a.total(QUEUED + 5) == 9 and a.others(QUEUED + 5) == 2 and b.others(QUEUED + 5) == 7
    # Front 1's cell sits a whole column (pages) after front 0's.
    raw = memoryview(buf).cast("I")
    assert raw[(sb.PAGE + sb.COLUMN_BYTES) // 4 + QUEUED + 5] == 2


def test_kinds_do_not_overlap():
    buf = board(1)
    f = Scoreboard(buf, 0)
    f.set(QUEUED + sb.POOL_SLOTS - 1, 1)
    f.set(INFLIGHT, 2)
    f.set(INFLIGHT + sb.WORKER_SLOTS - 1, 3)
    f.set(SITE, 4)
    f.set(SITE + sb.SITE_SLOTS - 1, 5)
    f.set(CONNS, 6)
    assert sorted(v for _, v in f.column(0)) == [1, 2, 3, 4, 5, 6]


def test_negative_counts_publish_zero():
    f = Scoreboard(board(1), 0)
    f.set(CONNS, -3)
    assert f.own(CONNS) == 0


@pytest.mark.parametrize("fronts,index", [(0, 0), (65, 0)])
def test_bad_front_counts(fronts, index):
    with pytest.raises(ScoreboardError):
        sb.size_for(fronts)


def test_rejects_foreign_regions():
    with pytest.raises(ScoreboardError, match="too small"):
        Scoreboard(bytearray(16), 0)
    with pytest.raises(ScoreboardError, match="magic"):
        Scoreboard(bytearray(sb.size_for(1)), 0)
    buf = board(2)
    with pytest.raises(ScoreboardError, match="index 2"):
        Scoreboard(buf, 2)
    with pytest.raises(ScoreboardError, match="too small"):
        sb.initialize(bytearray(sb.PAGE), 2)
    short = bytearray(buf[:sb.size_for(1)])
    with pytest.raises(ScoreboardError, match="does not hold 2"):
        Scoreboard(short, 0)


def test_reserve_one_front_is_a_plain_bound():
    f = Scoreboard(board(1), 0)
    assert not f.shared
    assert f.reserve(QUEUED, 1, 2) and f.reserve(QUEUED, 2, 2)
    assert not f.reserve(QUEUED, 3, 2)
    assert f.own(QUEUED) == 2


def test_reserve_counts_the_other_fronts():
    buf = board(2)
    a, b = Scoreboard(buf, 0), Scoreboard(buf, 1)
    assert a.reserve(INFLIGHT + 3, 1, 2)
    assert b.reserve(INFLIGHT + 3, 1, 2)
    assert not a.reserve(INFLIGHT + 3, 2, 2)
    assert a.own(INFLIGHT + 3) == 1           # undone
    b.set(INFLIGHT + 3, 0)                    # b's request ended
    assert a.reserve(INFLIGHT + 3, 2, 2)


def _racing_steps(front: Scoreboard, cell: int, limit: int, results: dict, name: str):
    """reserve() cut at its store and its read, so a test can interleave two fronts."""
    at = front._base + cell
    old = front.cells[at]
    value = old + 1
    front.cells[at] = value
    yield
    over = value + front.others(cell) > limit
    yield
    if over:
        front.cells[at] = old
    results[name] = not over


@pytest.mark.parametrize("fronts", [2, 3])
def test_racing_for_the_last_place_never_admits_past_the_bound(fronts):
    """Every interleaving of every front's store/read/undo for the last free place: never more
    than the bound admitted, and the cells end consistent with who was admitted."""
    limit = 4
    names = [f"f{i}" for i in range(fronts)]
    schedules = set(itertools.permutations([n for n in names for _ in range(3)]))
    for schedule in schedules:
        buf = board(fronts)
        views = [Scoreboard(buf, i) for i in range(fronts)]
        views[0].set(QUEUED + 1, limit - 1)   # one place left
        results: dict = {}
        steps = {n: _racing_steps(v, QUEUED + 1, limit, results, n) for n, v in zip(names, views)}
        for name in schedule:
            next(steps[name], None)
        admitted = sum(results.values())
        assert admitted <= 1, schedule
        assert views[0].total(QUEUED + 1) == limit - 1 + admitted, schedule


def test_a_sequential_race_admits_exactly_one():
    buf = board(3)
    views = [Scoreboard(buf, i) for i in range(3)]
    views[2].set(SITE + 9, 9)
    assert [v.reserve(SITE + 9, v.own(SITE + 9) + 1, 10) for v in views] == [True, False, False]


def _memfd_board(fronts: int):
    import mmap
    import os
    fd = os.memfd_create("wasp-scoreboard-test")
    os.ftruncate(fd, sb.size_for(fronts))
    region = mmap.mmap(fd, sb.size_for(fronts))
    sb.initialize(region, fronts)
    return fd, region


def _blocked_on_lock(pid: int) -> bool:
    """/proc/locks lists a process waiting for a POSIX lock with "->"."""
    with open("/proc/locks") as f:
        return any("->" in line and f" {pid} " in f" {line} ".replace(":", " ") for line in f)


def test_an_exact_reservation_waits_for_a_pending_one_instead_of_refusing():
    """Front 1 (a child process) holds the region's lock with a reservation of the last place
    pending, the one it will give back. Front 0 asks for that place with exact=True: it must
    wait for the lock (seen in /proc/locks) and then get the place, where a lock-free check
    would have seen front 1's pending count and refused a place that was free."""
    import fcntl
    import os
    import time

    fd, region = _memfd_board(2)
    limit = 4
    cell = QUEUED + 3
    mine = Scoreboard(region, 0, lock_fd=fd)
    mine.set(cell, 1)
    other = Scoreboard(region, 1, lock_fd=fd)
    other.set(cell, 2)                        # one place left: 1 + 2 of 4
    ready_r, ready_w = os.pipe()
    parent = os.getpid()
    child = os.fork()
    if child == 0:   # front 1
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            other.set(cell, 3)                # its reservation of the last place, pending
            os.write(ready_w, b"x")
            deadline = time.monotonic() + 20
            while not _blocked_on_lock(parent) and time.monotonic() < deadline:
                time.sleep(0.005)
            other.set(cell, 2)                # it gives the place back
            fcntl.lockf(fd, fcntl.LOCK_UN)
        finally:
            os._exit(0)
    try:
        assert os.read(ready_r, 1) == b"x"
        assert mine.reserve(cell, 2, limit) is False   # lock-free: sees the pending place
        assert mine.reserve(cell, 2, limit, exact=True) is True
        assert mine.total(cell) == limit
    finally:
        os.waitpid(child, 0)
        os.close(ready_r)
        os.close(ready_w)
        del mine, other
        region.close()
        os.close(fd)


def test_far_from_the_bound_an_exact_reservation_takes_no_lock():
    import fcntl
    import os

    fd, region = _memfd_board(2)
    mine = Scoreboard(region, 0, lock_fd=fd)
    locks = []
    real = fcntl.lockf
    fcntl.lockf = lambda *a: locks.append(a) or real(*a)
    try:
        assert all(mine.reserve(CONNS, n, 100, exact=True) for n in range(1, 50))
        assert locks == []
        Scoreboard(region, 1).set(CONNS, 50)
        assert mine.reserve(CONNS, 50, 100, exact=True) is True     # 100 of 100: the last place
        assert mine.reserve(CONNS, 51, 100, exact=True) is False
        assert len(locks) == 4                                       # two reservations locked
    finally:
        fcntl.lockf = real
        del mine
        region.close()
        os.close(fd)


def test_zero_column_forgets_a_dead_front():
    buf = board(2)
    a, b = Scoreboard(buf, 0), Scoreboard(buf, 1)
    a.set(CONNS, 4)
    b.set(CONNS, 5)
    b.set(INFLIGHT + 100, 2)
    sb.zero_column(buf, 1)
    assert a.total(CONNS) == 4 and a.total(INFLIGHT + 100) == 0 and b.column(1) == []


def test_slot_table_pools_and_sites_are_stable_and_reused():
    t = SlotTable()
    first = t.configure(["a", "b", "c"], [1, 2])
    assert first == {"pools": {"a": 0, "b": 1, "c": 2}, "sites": {"1": 0, "2": 1}}
    again = t.configure(["c", "a", "d"], [2, 7])
    assert again["pools"] == {"a": 0, "c": 2, "d": 1}   # b's slot freed, lowest free reused
    assert again["sites"] == {"2": 1, "7": 0}


def test_slot_table_too_many_pools():
    with pytest.raises(ScoreboardError, match="pools"):
        SlotTable().configure([f"p{i}" for i in range(sb.POOL_SLOTS + 1)], [])


def test_worker_slots_cycle_and_skip_live_ones():
    t = SlotTable()
    assert [t.worker(w) for w in (1, 2, 3)] == [0, 1, 2]
    assert t.worker(2) == 1                               # stable
    t.release_worker(1)
    assert t.worker(4) == 3                               # not 0: reused as late as possible
    t._cursor = sb.WORKER_SLOTS - 1
    assert t.worker(5) == sb.WORKER_SLOTS - 1
    assert t.worker(6) == 0                               # wrapped; 1 and 2 are still live
    assert t.worker(7) == 4


def test_check_slot():
    assert sb.check_slot("pool", 0) == 0
    for kind, bad in (("pool", sb.POOL_SLOTS), ("worker", -1), ("site", sb.SITE_SLOTS)):
        with pytest.raises(ScoreboardError):
            sb.check_slot(kind, bad)


@pytest.mark.parametrize("own,total,fronts,over", [
    (64, 64, 1, False),          # alone: never
    (0, 0, 2, False), (5, 5, 2, False), (6, 6, 2, True),   # a burst's first connections
    (32, 64, 2, False), (42, 64, 2, False), (43, 64, 2, True),
    (28, 64, 3, False), (29, 64, 3, True),
])
def test_over_share(own, total, fronts, over):
    assert sb.over_share(own, total, fronts) is over
