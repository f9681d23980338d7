"""Dynamic IP restrictions' per-client counters shared by every worker of a pool (shared memory).

IIS counts per w3wp, so a web garden of N workers lets a client make about N times the limits.
wasp counts per pool instead: the manager makes one shared memory region (memfd) per pool, once
per manager run, and hands it to each worker of the pool in `init`; every worker counts in it.
The counts are therefore exact across the pool's workers, and they outlive recycles (a client
cannot reset its rate by waiting for a new worker). The front plays no part: every request of an
application goes through a worker of its pool, whichever front received it.

Layout: a header page, then `groups` groups of `ways` slots. A client is
blake2b(app key, client address; keyed by a random key of the region) -> 16 bytes; its group is
the hash modulo `groups` and it lives in one of the group's slots (an attacker cannot aim its
addresses at one group: the key is secret). A slot holds the client's hash, when it was last
seen, its rate window (start, interval, count, previous count: the sliding-window estimate of
wasp/worker/clients.py) and one in-flight count per *column*. Each worker of the pool owns a
column (claimed at start in the header: pid and process start time); the requests it has in
flight for a client are counted in its column, and the client's in-flight total is the sum.

Every read-modify-write of a group is made under the group's lock: a `threading.Lock` (the
worker's loop and its WSGI threads) and a POSIX record lock (`fcntl.lockf`) on the group's bytes
of the memfd (the other workers), so the verdicts are exact. Two syscalls per counted request.

A worker that dies with requests in flight leaves counts in its column: they are not counted once
its process is gone (a column whose owner is dead is skipped when a total reaches a limit, and
zeroed by the next worker that claims it), so a crash cannot lock a client out. A worker's own
requests whose END_REQUEST never came (an ASGI task cancelled by `execution_timeout`) are
released by the worker itself when they are finished or cancelled (a sweep of its own requests
in flight, at most once a second, and before any concurrency denial).

A full group forgets, first, a client idle for two intervals with nothing in flight, then the
least recently seen one (which at worst resets that client's counts); memory is fixed.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import threading
import time
from typing import Callable

MAGIC = 0x57534342  # "WSCB"
VERSION = 1
PAGE = 4096
GROUPS = 4096
WAYS = 8
#: Columns for a pool of `max_processes` workers: twice (an overlapped recycle runs old and new
#: workers side by side) and two spare.
MAX_COLUMNS = 2 * 64 + 2

RATE = 502         # substatus: too many requests in the interval
CONCURRENCY = 501  # substatus: too many requests in flight

_HEAD = struct.Struct("=5I")          # magic, version, groups, ways, columns
_KEY_AT = 32                          # 16 bytes: the hash key
_OWNERS_AT = 64                       # columns x (pid, start time)
_OWNER = struct.Struct("=QQ")
_FIELDS = struct.Struct("=16sdddII")  # hash, seen, start, interval, count, previous
_EMPTY = bytes(16)
_SWEEP_EVERY = 1.0


def columns_for(max_processes: int) -> int:
    return min(MAX_COLUMNS, 2 * max(1, max_processes) + 2)


def slot_size(columns: int) -> int:
    return -(-(_FIELDS.size + 2 * columns) // 8) * 8


def size_for(columns: int, groups: int = GROUPS, ways: int = WAYS) -> int:
    return PAGE + groups * ways * slot_size(columns)


def create(columns: int, groups: int = GROUPS, ways: int = WAYS) -> int:
    """A new region (the manager, once per pool): the memfd, its header written."""
    if not 1 <= columns <= MAX_COLUMNS:
        raise ValueError(f"columns must be 1..{MAX_COLUMNS}")
    fd = os.memfd_create("wasp-clients")
    size = size_for(columns, groups, ways)
    os.ftruncate(fd, size)
    with mmap.mmap(fd, size) as buf:
        _HEAD.pack_into(buf, 0, MAGIC, VERSION, groups, ways, columns)
        buf[_KEY_AT:_KEY_AT + 16] = os.urandom(16)
    return fd


def process_start(pid: int) -> int | None:
    """The start time of process `pid` (clock ticks since boot, /proc/PID/stat field 22), or
    None when there is no such process: with the pid, it names one process for good."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    try:
        return int(data[data.rindex(b")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None


class BoardError(ValueError):
    """Not a client board, or no column free."""


class SharedClientTable:
    """One worker's view of its pool's board; `admit` / `release` as ClientTable's."""

    def __init__(self, fd: int, clock: Callable[[], float] = time.monotonic,
                 pid: int | None = None, alive: Callable[[int, int], bool] | None = None):
        size = os.fstat(fd).st_size
        self.buf = mmap.mmap(fd, size)
        magic, version, groups, ways, columns = _HEAD.unpack_from(self.buf, 0)
        if magic != MAGIC or version != VERSION or size < size_for(columns, groups, ways):
            raise BoardError("not a wasp client board of this version")
        self.fd = fd
        self.groups, self.ways, self.columns = groups, ways, columns
        self.slot = slot_size(columns)
        self.group_bytes = ways * self.slot
        self.hash_key = bytes(self.buf[_KEY_AT:_KEY_AT + 16])
        self.clock = clock
        self.pid = pid if pid is not None else os.getpid()
        self._alive = alive or _alive
        self._lock = threading.Lock()
        self._mine: dict = {}        # request -> (slot offset, hash): this worker's, in flight
        self._swept = float("-inf")
        self._dead: dict[int, tuple] = {}  # column -> (owner, when checked, alive)
        self.column = self._claim()

    # ---- columns ----
    def _claim(self) -> int:
        start = process_start(self.pid) if self.pid == os.getpid() else 0
        me = (self.pid, start or 0)
        with self._locked(0, PAGE):
            for column in range(self.columns):
                at = _OWNERS_AT + column * _OWNER.size
                pid, began = _OWNER.unpack_from(self.buf, at)
                if pid == 0 or not self._alive(pid, began) or (pid, began) == me:
                    _OWNER.pack_into(self.buf, at, *me)
                    if pid:  # a dead worker's counts (a fresh column is zero: pages untouched)
                        self._zero_column(column)
                    return column
        raise BoardError(f"no free column among {self.columns} (more live workers than the pool's "
                         "max_processes allows)")

    def _zero_column(self, column: int) -> None:
        buf, first = self.buf, PAGE + _FIELDS.size + 2 * column
        for offset in range(first, len(buf) - 1, self.slot):
            buf[offset:offset + 2] = b"\0\0"

    def _live_columns(self) -> list[bool]:
        now = self.clock()
        live = []
        for column in range(self.columns):
            pid, began = _OWNER.unpack_from(self.buf, _OWNERS_AT + column * _OWNER.size)
            if pid == self.pid or pid == 0:
                live.append(pid == self.pid)
                continue
            known = self._dead.get(column)
            if known is not None and known[0] == (pid, began) and now - known[1] < 1.0:
                live.append(known[2])
                continue
            alive = self._alive(pid, began)
            self._dead[column] = ((pid, began), now, alive)
            live.append(alive)
        return live

    # ---- locking ----
    class _Range:
        __slots__ = ("table", "start", "length")

        def __init__(self, table, start, length):
            self.table, self.start, self.length = table, start, length

        def __enter__(self):
            self.table._lock.acquire()
            try:
                fcntl.lockf(self.table.fd, fcntl.LOCK_EX, self.length, self.start)
            except BaseException:
                self.table._lock.release()
                raise

        def __exit__(self, *exc):
            try:
                fcntl.lockf(self.table.fd, fcntl.LOCK_UN, self.length, self.start)
            finally:
                self.table._lock.release()

    def _locked(self, start: int, length: int):
        return self._Range(self, start, length)

    # ---- counting ----
    def _hash(self, key: str) -> tuple[bytes, int]:
        digest = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=16,
                                 key=self.hash_key).digest()
        group = int.from_bytes(digest[:8], "little") % self.groups
        return digest, PAGE + group * self.group_bytes

    def _inflight(self, offset: int, live: list[bool] | None = None) -> int:
        counts = struct.unpack_from(f"={self.columns}H", self.buf, offset + _FIELDS.size)
        if live is None:
            return sum(counts)
        return sum(c for c, ok in zip(counts, live) if ok)

    def _find(self, digest: bytes, base: int, now: float, interval: float) -> int:
        buf, slot = self.buf, self.slot
        empty = idle = oldest = None
        oldest_seen = float("inf")
        for way in range(self.ways):
            offset = base + way * slot
            found, seen, _start, slot_interval, _c, _p = _FIELDS.unpack_from(buf, offset)
            if found == digest:
                return offset
            if found == _EMPTY:
                if empty is None:
                    empty = offset
                continue
            if idle is None and now - seen >= 2 * slot_interval and not self._inflight(offset):
                idle = offset
            if seen < oldest_seen:
                oldest, oldest_seen = offset, seen
        offset = empty if empty is not None else idle if idle is not None else oldest
        _FIELDS.pack_into(buf, offset, digest, now, now, interval, 0, 0)
        buf[offset + _FIELDS.size:offset + self.slot] = bytes(self.slot - _FIELDS.size)
        return offset

    def admit(self, key: str, request, *, max_concurrent: int = 0, max_requests: int = 0,
              interval: float = 0.0, enforce: bool = True) -> int:
        """Count `request` for client `key` (see ClientTable.admit): 0 or the substatus."""
        now = self.clock()
        if now - self._swept >= _SWEEP_EVERY:
            self.sweep(now)
        digest, base = self._hash(key)
        for attempt in (0, 1):
            with self._locked(base, self.group_bytes):
                offset = self._find(digest, base, now, interval)
                verdict = 0
                if max_concurrent:
                    if self._inflight(offset) >= max_concurrent and \
                            self._inflight(offset, self._live_columns()) >= max_concurrent:
                        verdict = CONCURRENCY
                if verdict == CONCURRENCY and attempt == 0 and self._mine:
                    pass  # release what this worker finished, outside the lock, then again
                else:
                    if max_requests and interval > 0 and self._over_rate(offset, now, interval, max_requests):
                        verdict = verdict or RATE
                    else:
                        self._seen(offset, now)
                    if max_concurrent and (verdict == 0 or not enforce):
                        at = offset + _FIELDS.size + 2 * self.column
                        (count,) = struct.unpack_from("=H", self.buf, at)
                        struct.pack_into("=H", self.buf, at, min(count + 1, 65535))
                        self._mine[request] = (offset, digest)
                    return verdict
            self.sweep(now)
        return verdict  # not reached

    def _seen(self, offset: int, now: float) -> None:
        struct.pack_into("=d", self.buf, offset + 16, now)

    def _over_rate(self, offset: int, now: float, interval: float, max_requests: int) -> bool:
        digest, _seen, start, slot_interval, count, previous = _FIELDS.unpack_from(self.buf, offset)
        if slot_interval != interval:  # the URL's settings differ from the last: start again
            start, count, previous = now, 0, 0
        elapsed = now - start
        if elapsed >= interval:
            windows = int(elapsed // interval)
            previous = count if windows == 1 else 0
            count = 0
            start += windows * interval
            elapsed = now - start
        count = min(count + 1, 2 ** 32 - 1)
        _FIELDS.pack_into(self.buf, offset, digest, now, start, interval, count, previous)
        return previous * (1.0 - elapsed / interval) + count > max_requests

    def release(self, key: str, request) -> None:
        found = self._mine.pop(request, None)
        if found is not None:
            self._release(*found)

    def _release(self, offset: int, digest: bytes) -> None:
        base = PAGE + (offset - PAGE) // self.group_bytes * self.group_bytes
        with self._locked(base, self.group_bytes):
            if bytes(self.buf[offset:offset + 16]) != digest:
                return  # the slot went to another client: its counts started afresh
            at = offset + _FIELDS.size + 2 * self.column
            (count,) = struct.unpack_from("=H", self.buf, at)
            if count:
                struct.pack_into("=H", self.buf, at, count - 1)

    def sweep(self, now: float | None = None) -> None:
        """Release this worker's requests that finished without END_REQUEST."""
        self._swept = self.clock() if now is None else now
        for request, found in list(self._mine.items()):
            if getattr(request, "finished", False) or getattr(request, "cancelled", False):
                if self._mine.pop(request, None) is not None:
                    self._release(*found)

    def close(self) -> None:
        self.buf.close()


def _alive(pid: int, began: int) -> bool:
    start = process_start(pid)
    return start is not None and (not began or start == began)
