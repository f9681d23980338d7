"""Developer mode (`wasp serve --reload`): recycle a pool when its Python code changes.

What `uvicorn --reload` and `flask run` give developers, done the IIS way: the pool is recycled
overlapped (event 9022), so the old worker keeps answering until the new one has imported the
changed code and is ready, and a change that breaks the import leaves the old worker serving
(event 9009 says why) until the next save fixes it.

A pool's code is its applications' `python_path` directories, or the config file's directory
for an application without one. Every `*.py` file below them is watched, except under hidden
directories (`.git`, `.venv`), `__pycache__`, `site-packages` and `node_modules`. The watch is a
stat poll once a second on a thread of its own (inotify would miss files in directories created
after the watch started, and the poll's cost is bounded by MAX_FILES), so the manager's loop
never waits on a disk.
"""

from __future__ import annotations

import os
import threading
from typing import Callable

#: Seconds between two looks at the files.
POLL_S = 1.0
#: Files watched per pool at most; past it the rest are ignored, with a warning (a python_path
#: pointing at a whole home directory should not cost the manager a core).
MAX_FILES = 20_000
SKIP_DIRS = frozenset({"__pycache__", "site-packages", "node_modules"})
SUFFIXES = (".py",)

Snapshot = dict[str, tuple[int, int]]  # path -> (mtime_ns, size)


def pool_roots(config, config_file: str | None) -> dict[str, list[str]]:
    """The directories whose Python files each pool's applications import."""
    base = os.path.dirname(os.path.abspath(config_file)) if config_file else os.getcwd()
    skip = {os.path.abspath(d) for d in (config.server.run_dir, config.server.log_dir) if d}
    roots: dict[str, list[str]] = {}
    for site in config.sites:
        for app in site.applications:
            if not app.app:
                continue
            dirs = [os.path.abspath(p) for p in app.python_path] or [base]
            pool = roots.setdefault(app.pool, [])
            for d in dirs:
                if d not in pool and d not in skip:
                    pool.append(d)
    return roots


def scan(roots: list[str], limit: int = MAX_FILES) -> tuple[Snapshot, bool]:
    """(the watched files' stat, whether `limit` cut the walk short)."""
    found: Snapshot = {}
    stack = list(roots)
    seen_dirs: set[tuple[int, int]] = set()  # symlink loops
    while stack:
        directory = stack.pop()
        try:
            info = os.stat(directory)
            if (info.st_dev, info.st_ino) in seen_dirs:
                continue
            seen_dirs.add((info.st_dev, info.st_ino))
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            try:
                if entry.is_dir():
                    if not name.startswith(".") and name not in SKIP_DIRS:
                        stack.append(entry.path)
                elif name.endswith(SUFFIXES):
                    if len(found) >= limit:
                        return found, True
                    st = entry.stat()
                    found[entry.path] = (st.st_mtime_ns, st.st_size)
            except OSError:
                continue  # gone between the listing and the stat
    return found, False


def changes(before: Snapshot, after: Snapshot) -> list[str]:
    """The files added, removed or modified between two snapshots, sorted."""
    changed = [path for path, stamp in after.items() if before.get(path) != stamp]
    changed += [path for path in before if path not in after]
    return sorted(changed)


class CodeWatcher:
    """A thread that posts ("code_changed", pool, files) when a pool's files change, and
    ("code_watch_limit", pool, limit) once when a pool has more than MAX_FILES files."""

    def __init__(self, post: Callable[[tuple], None], interval: float = POLL_S,
                 limit: int = MAX_FILES):
        self._post = post
        self._interval = interval
        self._limit = limit
        self._lock = threading.Lock()
        self._roots: dict[str, list[str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wasp-reload", daemon=True)

    def watch(self, roots: dict[str, list[str]]) -> None:
        """Watch these pools' directories from now on (on start and after a config reload)."""
        with self._lock:
            self._roots = {pool: list(dirs) for pool, dirs in roots.items()}

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        known: dict[tuple[str, tuple[str, ...]], Snapshot] = {}
        warned: set[str] = set()
        while not self._stop.is_set():
            with self._lock:
                roots = dict(self._roots)
            current = {}
            for pool, dirs in roots.items():
                key = (pool, tuple(dirs))
                snapshot, cut = scan(dirs, self._limit)
                if cut and pool not in warned:
                    warned.add(pool)
                    self._post(("code_watch_limit", pool, self._limit))
                before = known.get(key)
                if before is not None:
                    changed = changes(before, snapshot)
                    if changed:
                        self._post(("code_changed", pool, changed))
                current[key] = snapshot
            known = current  # pools or directories no longer configured are forgotten
            self._stop.wait(self._interval)


__all__ = ["CodeWatcher", "pool_roots", "scan", "changes", "POLL_S", "MAX_FILES"]
