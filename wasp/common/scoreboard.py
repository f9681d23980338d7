"""The fronts' shared scoreboard (Apache httpd's idea): counts every front publishes, sans I/O.

With `front_processes = N` several fronts serve the same sockets and the same workers, and the
guarantees that one front kept with its own counters must hold across all of them: a worker
never has more than its `capacity` requests in flight, a pool's queue never holds more than
`queue_length`, a site never more than `max_connections` connections. The manager makes one
shared memory region (memfd) at start and hands it to every front; each front publishes its own
numbers in it and reads everyone's.

Layout (u32 cells, native byte order: every process is on the same machine): a header, then one *column* per front index, each column on
its own pages so that a front's writes never share a cache line with another front's:

    header  : MAGIC, VERSION, fronts, POOL_SLOTS, WORKER_SLOTS, SITE_SLOTS   (HEADER bytes)
    column f: queued[POOL_SLOTS] | inflight[WORKER_SLOTS] | site_conns[SITE_SLOTS] | conns[1]

Slots (a pool's, a worker's, a site's row) are the manager's (`SlotTable`), sent to the fronts in
`config` (pools, sites) and `worker_add` (workers). **Each front writes only its own column**
(one writer per cell, no locks); the manager zeroes a dead front's column before its successor
starts (the writer is gone then). A cell holds the front's absolute count (not a delta), so a
slot that changes owner is made right by the next write.

Admission is *reserve, then check*: write the new own count, issue a full memory barrier, sum
the row; over the bound, write the old count back and refuse. Never do two fronts admit past the
bound: the barrier keeps a front's own store from being ordered after its loads of the others'
cells (on x86 a store may otherwise sit in the store buffer while later loads complete, the one
reordering TSO allows, which is exactly the race). In Python the barrier is a `threading.Lock`
acquire and release: CPython implements them with atomic read-modify-write instructions
(sem_trywait and sem_post, a LOCK-prefixed cmpxchg / xadd on x86), each a full barrier for the
executing CPU. With one front nothing is shared and no barrier is taken.

Of two fronts racing for the last place both may refuse (each sees the other's reservation).
For a worker's capacity that costs nothing visible (the request waits for the next dispatch);
for a bound whose refusal the client sees (a queue's QueueFull 503, a connection cap's
ConnLimit 503) `reserve(..., exact=True)` closes that gap: when the place asked for is among the
last `fronts - 1` (where every other front's one pending reservation could be the one that takes
it), the reservation is made under an exclusive lock of the region (fcntl on the memfd, two
syscalls), so such reservations go one at a time and each sees only counts that stand. A front
reserving further from the bound, lock-free, is never refused, so what a locked reservation sees
of it is real; if a lock-free check fails after all (the others moved more than one place while
this front was descheduled), it retries under the lock.

Unit tests use a bytearray; the fronts and the manager use an mmap of the memfd.
"""

from __future__ import annotations

import fcntl
import struct
import threading

from wasp.config.model import MAX_POOLS, MAX_SITES

MAGIC = 0x57535042  # "WSPB"
VERSION = 1
HEADER = 64
POOL_SLOTS = MAX_POOLS
WORKER_SLOTS = 16384
SITE_SLOTS = MAX_SITES
PAGE = 4096
MAX_FRONTS = 64

# Cell offsets inside a column (in cells).
QUEUED = 0
INFLIGHT = QUEUED + POOL_SLOTS
SITE = INFLIGHT + WORKER_SLOTS
CONNS = SITE + SITE_SLOTS
_COLUMN_CELLS = CONNS + 1
COLUMN_BYTES = -(-_COLUMN_CELLS * 4 // PAGE) * PAGE
_COLUMN = COLUMN_BYTES // 4
_MAX_CELL = 2 ** 32 - 1


class ScoreboardError(ValueError):
    """A region that is not a scoreboard of this layout, or a slot out of range."""


def size_for(fronts: int) -> int:
    """Bytes of a scoreboard for `fronts` columns."""
    if not 1 <= fronts <= MAX_FRONTS:
        raise ScoreboardError(f"fronts must be 1..{MAX_FRONTS}, not {fronts}")
    return PAGE + fronts * COLUMN_BYTES


def initialize(buf, fronts: int) -> None:
    """Write the header into a zeroed region of `size_for(fronts)` bytes (the manager, once)."""
    if len(buf) < size_for(fronts):
        raise ScoreboardError(f"region of {len(buf)} bytes is too small for {fronts} fronts")
    struct.pack_into("=6I", buf, 0, MAGIC, VERSION, fronts, POOL_SLOTS, WORKER_SLOTS, SITE_SLOTS)


def zero_column(buf, front: int) -> None:
    """Forget everything front `front` published: only once that front's process is gone."""
    board = Scoreboard(buf, front)
    start = board._base
    board.cells[start:start + _COLUMN_CELLS] = memoryview(bytes(_COLUMN_CELLS * 4)).cast("I")


class Scoreboard:
    """Front `index`'s view of a scoreboard region (`buf`: bytearray or mmap)."""

    __slots__ = ("cells", "fronts", "index", "_base", "_bases", "_others", "_fence", "_lock_fd",
                 "_margin")

    def __init__(self, buf, index: int, lock_fd: int | None = None):
        """`lock_fd`: the region's file (the memfd), for `reserve(exact=True)`; without one an
        exact reservation is an ordinary one (a bytearray in unit tests)."""
        view = memoryview(buf).cast("B")
        if len(view) < PAGE:
            raise ScoreboardError("the scoreboard region is too small")
        head = view[:HEADER].cast("I")
        if head[0] != MAGIC or head[1] != VERSION:
            raise ScoreboardError("not a wasp scoreboard (bad magic or version)")
        fronts = head[2]
        if (head[3], head[4], head[5]) != (POOL_SLOTS, WORKER_SLOTS, SITE_SLOTS):
            raise ScoreboardError("scoreboard slot counts differ from this wasp's")
        if not 1 <= fronts <= MAX_FRONTS or len(view) < size_for(fronts):
            raise ScoreboardError(f"scoreboard region does not hold {fronts} fronts")
        if not 0 <= index < fronts:
            raise ScoreboardError(f"front index {index} is not in 0..{fronts - 1}")
        self.cells = view[PAGE:PAGE + fronts * COLUMN_BYTES].cast("I")
        self.fronts = fronts
        self.index = index
        self._base = index * _COLUMN
        self._bases = tuple(f * _COLUMN for f in range(fronts))
        self._others = tuple(f * _COLUMN for f in range(fronts) if f != index)
        self._fence = threading.Lock()
        self._lock_fd = lock_fd if fronts > 1 else None
        self._margin = fronts - 1

    @property
    def shared(self) -> bool:
        return self.fronts > 1

    def _barrier(self) -> None:
        fence = self._fence
        fence.acquire()
        fence.release()

    # ---- own cells ----
    def set(self, cell: int, value: int) -> None:
        """Publish this front's count for `cell` (QUEUED + pool slot, INFLIGHT + worker slot,
        SITE + site slot, CONNS)."""
        self.cells[self._base + cell] = value if value > 0 else 0

    def own(self, cell: int) -> int:
        return self.cells[self._base + cell]

    # ---- rows ----
    def total(self, cell: int) -> int:
        """Every front's count for `cell`."""
        cells = self.cells
        n = 0
        for base in self._bases:
            n += cells[base + cell]
        return n

    def others(self, cell: int) -> int:
        """The other fronts' counts for `cell` (0 with one front, without reading anything)."""
        cells = self.cells
        n = 0
        for base in self._others:
            n += cells[base + cell]
        return n

    def reserve(self, cell: int, value: int, limit: int, exact: bool = False) -> bool:
        """Set own `cell` to `value` (one more than it holds) if every front's total stays
        within `limit`; otherwise leave it as it was and return False. `exact`: never refuse
        a place that is free (module docstring)."""
        cells = self.cells
        at = self._base + cell
        old = cells[at]
        if value > _MAX_CELL:
            return False
        if not self._others:
            if value > limit:
                return False
            cells[at] = value
            return True
        exact = exact and self._lock_fd is not None
        if exact and value + self.others(cell) + self._margin > limit:
            return self._reserve_locked(cell, at, old, value, limit)
        cells[at] = value
        self._barrier()
        if value + self.others(cell) > limit:
            cells[at] = old
            return self._reserve_locked(cell, at, old, value, limit) if exact else False
        return True

    def _reserve_locked(self, cell: int, at: int, old: int, value: int, limit: int) -> bool:
        fd = self._lock_fd
        fcntl.lockf(fd, fcntl.LOCK_EX)
        try:
            cells = self.cells
            cells[at] = value
            self._barrier()
            if value + self.others(cell) > limit:
                cells[at] = old
                return False
            return True
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN)

    def column(self, front: int) -> list[int]:
        """A front's published non-zero cells, {cell: count} as pairs (for tests and status)."""
        base = self._bases[front]
        cells = self.cells
        return [(c, cells[base + c]) for c in range(_COLUMN_CELLS) if cells[base + c]]


def over_share(own: int, total: int, fronts: int) -> bool:
    """Whether a front holding `own` of `total` connections (every front's, its own included)
    holds well over its share: more than 5/4 of total/fronts plus 2. Such a front lets the others
    take the next connections from the shared accept queue first (wasp/front/accept.py)."""
    if fronts <= 1:
        return False
    return own * fronts * 4 > total * 5 + 8 * fronts


def check_slot(kind: str, slot: int) -> int:
    limit = {"pool": POOL_SLOTS, "worker": WORKER_SLOTS, "site": SITE_SLOTS}[kind]
    if not 0 <= slot < limit:
        raise ScoreboardError(f"{kind} slot {slot} is not in 0..{limit - 1}")
    return slot


class SlotTable:
    """The manager's assignment of rows: a slot per pool name and per site id (stable while the
    name/id stays configured, freed when it goes, lowest free first), and a slot per worker,
    taken cyclically from the large table so a slot is reused as late as possible."""

    def __init__(self) -> None:
        self.pools: dict[str, int] = {}
        self.sites: dict[int, int] = {}
        self.workers: dict[int, int] = {}
        self._cursor = 0

    @staticmethod
    def _assign(table: dict, keys, limit: int, kind: str) -> dict:
        keys = list(dict.fromkeys(keys))
        for key in [k for k in table if k not in keys]:
            del table[key]
        used = set(table.values())
        free = (s for s in range(limit) if s not in used)
        for key in keys:
            if key not in table:
                slot = next(free, None)
                if slot is None:
                    raise ScoreboardError(f"more than {limit} {kind}s are configured")
                table[key] = slot
        return dict(table)

    def configure(self, pools, sites) -> dict:
        """Slots for the config's pool names and site ids: {"pools": {...}, "sites": {...}}
        (site ids as strings: msgpack map keys of the `config` message)."""
        self._assign(self.pools, pools, POOL_SLOTS, "pool")
        self._assign(self.sites, sites, SITE_SLOTS, "site")
        return {"pools": dict(self.pools), "sites": {str(k): v for k, v in self.sites.items()}}

    def worker(self, worker_id: int) -> int:
        slot = self.workers.get(worker_id)
        if slot is not None:
            return slot
        used = set(self.workers.values())
        if len(used) >= WORKER_SLOTS:
            raise ScoreboardError(f"more than {WORKER_SLOTS} workers are alive")
        slot = self._cursor
        while slot in used:
            slot = (slot + 1) % WORKER_SLOTS
        self._cursor = (slot + 1) % WORKER_SLOTS
        self.workers[worker_id] = slot
        return slot

    def release_worker(self, worker_id: int) -> None:
        self.workers.pop(worker_id, None)
