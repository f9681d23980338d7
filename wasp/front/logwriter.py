"""The log files themselves: opening, appending, size rollover and retention, off the event loop.

The front's loop only buffers lines (accesslog.py) and hands a stream's buffer over at 64 KiB or
at the once-a-second tick. `ThreadWriter` carries the hand-overs out on one thread of its own,
in order, so a slow or stalled disk never holds up a request: `submit` appends to a queue and
returns. When more than MAX_PENDING bytes wait (the disk is not keeping up) further lines are
dropped and counted in `errors`, as a full disk's are; memory stays bounded. `InlineWriter` does
the same work at once, on the caller's thread (tools and unit tests that read the file next).

A stream is one series of files (a site's log, the central log, HTTPERR, stdout):

    open(stream, path, roll, retention)  the file lines go to next
    write(stream, data)                  whole lines, one write() each (O_APPEND: fronts never tear lines)
    roll(stream)                         the next numbered file
    close(stream)

`roll` (a `SizeRoll`) makes a stream number its own files, period = max_size and HTTPERR: the
highest number in the folder, or the next when that one is full. The front decides when, line by
line, from `size(stream)` (the file's real size as read back after each write: several fronts
append to the same files and so roll over to the same next one) plus what it handed over since.
After a file is opened, `Retention` deletes the stream's old files (by age, or beyond a count),
only names of its own pattern, never the file being written.
"""

from __future__ import annotations

import errno
import os
import queue
import re
import threading
import time
from dataclasses import dataclass

from wasp.wire import logfiles

_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
#: Hand-overs waiting beyond this many bytes are dropped (counted in `errors`).
MAX_PENDING = 32 * 1024 * 1024
#: A pipe takes a write of at most this many bytes whole (PIPE_BUF): stdout writes are cut at
#: line ends below it, so several fronts' lines do not interleave in a container's log.
PIPE_BUF = 4096
STDOUT = "-"


@dataclass(frozen=True)
class SizeRoll:
    directory: str
    pattern: re.Pattern       # group 1 = the number
    name: object              # number -> file name
    limit: int


@dataclass(frozen=True)
class Retention:
    directory: str
    pattern: re.Pattern
    days: float = 0.0
    max_files: int = 0


class _File:
    __slots__ = ("path", "fd", "size", "roll", "number", "retention")

    def __init__(self) -> None:
        self.path = ""
        self.fd = -1
        self.size = 0
        self.roll: SizeRoll | None = None
        self.number = 0
        self.retention: Retention | None = None


class Executor:
    """The file work; one thread calls it (the writer's)."""

    def __init__(self) -> None:
        self.files: dict[object, _File] = {}
        #: Opens and rolls done per stream: the front counts the ones it asked for, and trusts
        #: `size` only once they match (a ThreadWriter may not have caught up yet).
        self.generations: dict[object, int] = {}
        self.errors: list[str] = []
        self.dropped = 0

    # ---- the jobs
    def open(self, stream, path: str, roll: SizeRoll | None, retention: Retention | None) -> None:
        self._close_fd(self.files.pop(stream, None) or _File())
        self.generations[stream] = self.generations.get(stream, 0) + 1
        f = self.files[stream] = _File()
        f.roll, f.retention = roll, retention
        if roll is not None:
            f.number = self._first_number(roll)
            path = os.path.join(roll.directory, roll.name(f.number))
        self._open(f, path)

    def write(self, stream, data: bytes) -> None:
        f = self.files.get(stream)
        if f is None or f.fd < 0:
            return
        try:
            if f.path == STDOUT:
                _write_pipe(f.fd, data)
            else:
                _write_all(f.fd, data)
                f.size = os.fstat(f.fd).st_size  # other fronts append to the same file
        except OSError as exc:
            self.failed(f"cannot write {f.path}: {exc.strerror or exc}")

    def roll(self, stream) -> None:
        """The next numbered file (the front saw the current one would go over its limit)."""
        f = self.files.get(stream)
        if f is None or f.roll is None:
            return
        self._close_fd(f)
        self.generations[stream] = self.generations.get(stream, 0) + 1
        f.number = max(f.number + 1, self._first_number(f.roll))
        self._open(f, os.path.join(f.roll.directory, f.roll.name(f.number)))

    def size(self, stream) -> tuple[int, int]:
        """(opens and rolls done, the file's size as last read back)."""
        f = self.files.get(stream)
        return self.generations.get(stream, 0), (f.size if f is not None else 0)

    def close(self, stream) -> None:
        self.generations.pop(stream, None)
        f = self.files.pop(stream, None)
        if f is not None:
            self._close_fd(f)

    def close_all(self) -> None:
        for stream in list(self.files):
            self.close(stream)

    # ---- helpers
    def _open(self, f: _File, path: str) -> None:
        try:
            if path == STDOUT:
                fd = os.dup(1)
                os.set_inheritable(fd, False)
            else:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                fd = os.open(path, _OPEN_FLAGS, 0o644)
        except OSError as exc:
            self.failed(f"cannot open {path}: {exc.strerror or exc}")
            f.fd, f.path = -1, path
            return
        f.fd, f.path = fd, path
        try:
            f.size = os.fstat(fd).st_size if path != STDOUT else 0
        except OSError:
            f.size = 0
        if f.retention is not None and path != STDOUT:
            self.retain(f.retention, os.path.basename(path))

    def _close_fd(self, f: _File) -> None:
        if f.fd >= 0:
            try:
                os.close(f.fd)
            except OSError:
                pass
            f.fd = -1

    @staticmethod
    def _first_number(roll: SizeRoll) -> int:
        try:
            names = os.listdir(roll.directory)
        except OSError:
            return 1
        numbers = [int(m.group(1)) for m in map(roll.pattern.fullmatch, names) if m]
        if not numbers:
            return 1
        last = max(numbers)
        try:
            full = os.path.getsize(os.path.join(roll.directory, roll.name(last))) >= roll.limit
        except OSError:
            full = False
        return last + 1 if full else last

    def retain(self, retention: Retention, keep: str) -> None:
        try:
            entries = [(e.name, e.stat().st_mtime) for e in os.scandir(retention.directory)
                       if retention.pattern.fullmatch(e.name) and e.is_file(follow_symlinks=False)]
        except OSError:
            return
        for name in logfiles.expired(entries, time.time(), retention.days, retention.max_files, keep):
            try:
                os.unlink(os.path.join(retention.directory, name))
            except OSError as exc:
                if exc.errno != errno.ENOENT:  # another front deleted it first: fine
                    self.failed(f"cannot delete old log {name}: {exc.strerror or exc}")

    def failed(self, message: str) -> None:
        if len(self.errors) < 100:
            self.errors.append(message)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _write_pipe(fd: int, data: bytes) -> None:
    """Whole lines in writes of at most PIPE_BUF where the lines allow (one longer line alone)."""
    start = 0
    end = len(data)
    while start < end:
        stop = min(end, start + PIPE_BUF)
        if stop < end:
            cut = data.rfind(b"\n", start, stop)
            if cut >= start:
                stop = cut + 1
            else:
                nl = data.find(b"\n", stop)
                stop = end if nl < 0 else nl + 1
        _write_all(fd, data[start:stop])
        start = stop


class InlineWriter:
    """The jobs done at once by the caller."""

    def __init__(self) -> None:
        self.executor = Executor()

    @property
    def errors(self) -> list[str]:
        return self.executor.errors

    def submit(self, job: str, *args) -> None:
        getattr(self.executor, job)(*args)

    def size(self, stream) -> tuple[int, int]:
        return self.executor.size(stream)

    def drain(self) -> None:
        pass

    def stop(self) -> None:
        self.executor.close_all()


class ThreadWriter:
    """The jobs done in order on a thread of their own; `submit` never blocks."""

    def __init__(self) -> None:
        self.executor = Executor()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._pending = 0          # bytes of write jobs queued
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._jobs = 0             # jobs queued and not yet done
        self._dropped_lines = 0
        self._thread = threading.Thread(target=self._run, name="wasp-log-writer", daemon=True)
        self._thread.start()

    @property
    def errors(self) -> list[str]:
        return self.executor.errors

    def submit(self, job: str, *args) -> None:
        size = len(args[1]) if job == "write" else 0
        with self._lock:
            if size and self._pending + size > MAX_PENDING:
                lines = args[1].count(b"\n")
                first = self._dropped_lines == 0
                self._dropped_lines += lines
                if first:
                    self.executor.failed("the log disk is not keeping up: lines are being dropped")
                return
            self._pending += size
            self._jobs += 1
        self._queue.put((job, args, size))

    def _run(self) -> None:
        while True:
            job, args, size = self._queue.get()
            if job == "_stop":
                self.executor.close_all()
                with self._lock:
                    self._jobs -= 1
                    self._idle.notify_all()
                return
            try:
                getattr(self.executor, job)(*args)
            except Exception as exc:  # a bug must not kill the writer: report, carry on
                self.executor.failed(f"log writer: {type(exc).__name__}: {exc}")
            with self._lock:
                self._pending -= size
                self._jobs -= 1
                if not self._jobs:
                    self._idle.notify_all()

    def size(self, stream) -> tuple[int, int]:
        return self.executor.size(stream)  # as of the last job done: may lag what is queued

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every job submitted so far is done (tests, and the front's exit)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._jobs:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._idle.wait(left)

    def stop(self, timeout: float = 30.0) -> None:
        if not self._thread.is_alive():
            return
        with self._lock:
            self._jobs += 1
        self._queue.put(("_stop", (), 0))
        self._thread.join(timeout)
        if self._dropped_lines:
            self.executor.failed(f"{self._dropped_lines} log lines were dropped: the log disk did not keep up")
