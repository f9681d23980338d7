"""One pool's compressed-file cache (IIS's "IIS Temporary Compressed Files\\<pool>").

Static compression (wasp/worker/modules/static_compression.py) serves a file's compressed copy
from here with the front's sendfile, like any file. A copy is made in the background, once the
file is frequently hit (IIS: frequentHitThreshold requests within frequentHitTimePeriod), on
one thread per worker, so the event loop never compresses.

- Names never come from the URL: a copy of `/srv/www/a.css` is
  `<root>/<h[:2]>/<h>-<mtime_ns>-<size><suffix>` with `h` the SHA-256 of the file's real path.
  Nothing a client sends can name a path outside the root, and a changed file (another mtime or
  size) has another name, so a stale copy is never served; the old copies of that file are
  deleted when the new one lands.
- Writes are atomic: a temporary file in the same directory, renamed into place once the source
  is seen unchanged (same fstat before and after reading); a copy that would not be smaller than
  the file, or larger than the disk limit allows, is dropped.
- Disk space (doDiskSpaceLimiting): when the pool's copies pass 90 % of max_disk_space_usage the
  directory is scanned (other workers of a web garden write there too) and the least recently
  used copies are deleted down to 90 %.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat as stat_mod
import threading
import time
from collections import OrderedDict
import queue

from wasp.worker.encoding import FILE_SUFFIX, new_encoder

log = logging.getLogger("wasp.worker")

#: Frequent-hit counters and "not worth compressing" marks kept at most.
MAX_TRACKED = 65536
#: Bytes read from the source file per step (memory per job stays at about this).
READ_SIZE = 256 * 1024
#: Jobs waiting at most; a hit when the queue is full is simply not queued (the next one is).
MAX_QUEUED = 64
_TMP = ".tmp"


class CompressedFiles:
    def __init__(self, root: str, max_bytes: int, limit_disk: bool = True, threshold: int = 2,
                 period: float = 10.0, clock=time.monotonic, run=None):
        self.root = root
        self.max_bytes = int(max_bytes)
        self.limit_disk = limit_disk
        self.threshold = threshold
        self.period = period
        self.clock = clock
        self.hits: OrderedDict = OrderedDict()      # real path -> [window start, count]
        self.pending: set[str] = set()              # copy names being made
        self.useless: OrderedDict = OrderedDict()   # copy names not worth making (too big, no gain)
        self.used: OrderedDict = OrderedDict()      # copy name -> size, least recently used first
        self.total = 0
        self.lock = threading.Lock()
        self.error = ""
        self._run = run             # tests: run jobs inline
        self._jobs: queue.SimpleQueue | None = None
        self._stopping = False
        self._ready = False

    @property
    def usable(self) -> bool:
        return not self.error

    def _prepare(self) -> bool:
        """Make the folder and learn what is in it, on the first copy (a worker that never
        compresses never touches the disk)."""
        if self._ready:
            return not self.error
        self._ready = True
        try:
            os.makedirs(self.root, mode=0o711, exist_ok=True)
            self._scan()
        except OSError as exc:
            self.error = f"compressed-file directory {self.root}: {exc.strerror or exc}"
            log.warning("static compression off: %s", self.error)
        return not self.error

    # ---- names ----
    def name_for(self, real: str, st: os.stat_result, coding: str) -> str:
        digest = hashlib.sha256(os.fsencode(real)).hexdigest()[:40]
        return f"{digest}-{st.st_mtime_ns:x}-{st.st_size:x}{FILE_SUFFIX[coding]}"

    def path_of(self, name: str) -> str:
        return os.path.join(self.root, name[:2], name)

    # ---- the request path (the event loop) ----
    def lookup(self, real: str, st: os.stat_result, coding: str) -> tuple[str, int] | None:
        """(path, size) of a fresh compressed copy of `real` (stat `st`), or None."""
        if self.error:
            return None
        name = self.name_for(real, st, coding)
        path = self.path_of(name)
        try:
            cst = os.stat(path)
        except OSError:
            return None
        if not stat_mod.S_ISREG(cst.st_mode):
            return None
        with self.lock:
            if name in self.used:
                self.used.move_to_end(name)
            else:
                self.used[name] = cst.st_size
                self.total += cst.st_size
        return path, cst.st_size

    def frequently_hit(self, real: str) -> bool:
        """Count a request for `real` that found no copy; True once it is frequently hit."""
        now = self.clock()
        with self.lock:
            count = self.hits.get(real)
            if count is None or count[0] + self.period <= now:
                if count is not None:
                    del self.hits[real]
                elif len(self.hits) >= MAX_TRACKED:
                    self.hits.popitem(last=False)
                count = self.hits[real] = [now, 0]
            count[1] += 1
            return count[1] >= self.threshold

    def hopeless(self, real: str, st: os.stat_result, coding: str) -> bool:
        """Whether this version of the file was found not worth a copy (no smaller, too big)."""
        return self.name_for(real, st, coding) in self.useless

    def schedule(self, real: str, st: os.stat_result, coding: str, level: int) -> bool:
        """Queue the making of a copy; False when it is being made, not worth it or the queue is
        full (concurrent first hits make one job)."""
        if self.error or not self._prepare():
            return False
        name = self.name_for(real, st, coding)
        with self.lock:
            if name in self.pending or name in self.useless or len(self.pending) >= MAX_QUEUED:
                return False
            self.pending.add(name)
        job = (real, st, coding, level, name)
        if self._run is not None:
            self._run(self._job, job)
            return True
        with self.lock:
            if self._jobs is None:
                # A daemon thread: a worker that exits never waits for a big file's copy (the
                # temporary file it leaves is skipped by scans and replaced by the next job).
                self._jobs = queue.SimpleQueue()
                threading.Thread(target=self._serve, name="wasp-compress", daemon=True).start()
        self._jobs.put(job)
        return True

    def close(self) -> None:
        self._stopping = True
        if self._jobs is not None:
            self._jobs.put(None)

    def _serve(self) -> None:
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is None or self._stopping:
                return
            self._job(job)

    # ---- the background thread ----
    def _job(self, job) -> None:
        real, st, coding, level, name = job
        try:
            self._make(real, st, coding, level, name)
        except Exception:
            log.exception("compressing %s (%s) failed", real, coding)
        finally:
            with self.lock:
                self.pending.discard(name)

    def _make(self, real: str, st: os.stat_result, coding: str, level: int, name: str) -> None:
        path = self.path_of(name)
        cap = int(self.max_bytes * 0.9) if self.limit_disk else 0
        try:
            fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return
        tmp = f"{path}{_TMP}{os.getpid()}.{threading.get_ident()}"
        written = 0
        keep = False
        try:
            before = os.fstat(fd)
            if not _same(before, st):
                return  # changed since the request looked: the next request asks again
            os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                          (st.st_mode & 0o644) | 0o600)
            try:
                encoder = new_encoder(coding, level)
                while not self._stopping:
                    data = os.read(fd, READ_SIZE)
                    piece = encoder.compress(data) if data else encoder.finish()
                    if piece:
                        written += len(piece)
                        if (cap and written > cap) or written >= st.st_size:
                            self._mark_useless(name)  # cannot fit, or no smaller than the file
                            return
                        _write_all(out, piece)
                    if not data:
                        break
            finally:
                os.close(out)
            if self._stopping or not _same(os.fstat(fd), before) or not _same(os.stat(real), before):
                return  # changed while it was read: this copy may mix two versions
            os.rename(tmp, path)
            keep = True
        except OSError as exc:
            log.warning("compressing %s: %s", real, exc)
        finally:
            os.close(fd)
            if not keep:
                _unlink(tmp)
        self._landed(name, written)

    def _landed(self, name: str, size: int) -> None:
        prefix = name.split("-", 1)[0]
        suffix = name[name.rfind("."):]
        directory = os.path.dirname(self.path_of(name))
        stale = []
        try:
            for entry in os.listdir(directory):
                if entry != name and entry.startswith(prefix + "-") and entry.endswith(suffix) \
                        and _TMP not in entry:
                    stale.append(entry)
        except OSError:
            pass
        with self.lock:
            for entry in stale:
                self.total -= self.used.pop(entry, 0)
            old = self.used.pop(name, None)
            if old is not None:
                self.total -= old
            self.used[name] = size
            self.total += size
            over = self.limit_disk and self.total > self.max_bytes * 0.9
        for entry in stale:
            _unlink(os.path.join(directory, entry))
        if over:
            self.trim()

    def _mark_useless(self, name: str) -> None:
        with self.lock:
            self.useless[name] = True
            if len(self.useless) > MAX_TRACKED:
                self.useless.popitem(last=False)

    # ---- disk space ----
    def trim(self) -> int:
        """Delete the least recently used copies down to 90 % of the limit; -> files deleted."""
        self._scan()
        target = int(self.max_bytes * 0.9)
        doomed = []
        with self.lock:
            while self.total > target and self.used:
                name, size = self.used.popitem(last=False)
                self.total -= size
                doomed.append(name)
        for name in doomed:
            _unlink(self.path_of(name))
        return len(doomed)

    def _scan(self) -> None:
        """Learn the copies on disk (left by an earlier worker, or by another of a web garden):
        unknown ones count as least recently used, oldest mtime first."""
        found = []
        try:
            subs = os.listdir(self.root)
        except FileNotFoundError:
            subs = []
        for sub in subs:
            directory = os.path.join(self.root, sub)
            if len(sub) != 2 or not os.path.isdir(directory):
                continue
            for entry in os.listdir(directory):
                if _TMP in entry:
                    continue
                try:
                    est = os.stat(os.path.join(directory, entry))
                except OSError:
                    continue
                found.append((est.st_mtime, entry, est.st_size))
        found.sort()
        with self.lock:
            known = self.used
            fresh: OrderedDict = OrderedDict()
            for _mtime, entry, size in found:
                if entry not in known:
                    fresh[entry] = size
            on_disk = {entry for _m, entry, _s in found}
            for entry, size in known.items():
                if entry in on_disk:
                    fresh[entry] = size
            self.used = fresh
            self.total = sum(fresh.values())


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_ino, a.st_dev, a.st_size, a.st_mtime_ns) == (b.st_ino, b.st_dev, b.st_size, b.st_mtime_ns)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


_stores: dict[str, CompressedFiles] = {}
_stores_lock = threading.Lock()


def store_for(root: str, **settings) -> CompressedFiles:
    """The worker's one store per directory (every application of the pool shares it)."""
    with _stores_lock:
        store = _stores.get(root)
        if store is None:
            store = _stores[root] = CompressedFiles(root, **settings)
        return store


__all__ = ["CompressedFiles", "store_for"]
