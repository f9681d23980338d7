"""Deploys (docs/deploys.md): `recycling.monitor_changes_to`, IIS's recycle on a file's change.

A thread polls (once a second, one stat per file) the files each pool lists and posts
("files_changed", pool, files) when one is written, created or removed; the manager recycles the
pool, overlapped, with event 9023. The recycle is the one `wasp deploy pool` does: the new worker
must import the code and pass its initialization pages before it takes traffic, or the old one
keeps serving. The manager's loop never waits on a disk.
"""

from __future__ import annotations

import os
import threading
from typing import Callable

POLL_S = 1.0


def watched(config) -> dict[str, list[str]]:
    return {p.name: list(p.recycling.monitor_changes_to) for p in config.pools
            if p.recycling.monitor_changes_to}


def stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class FileWatcher:
    def __init__(self, post: Callable[[tuple], None], interval: float = POLL_S):
        self._post = post
        self._interval = interval
        self._lock = threading.Lock()
        self._files: dict[str, list[str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wasp-monitor-changes", daemon=True)

    def watch(self, files: dict[str, list[str]]) -> None:
        with self._lock:
            self._files = {pool: list(paths) for pool, paths in files.items()}

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        known: dict[tuple[str, str], tuple | None] = {}
        while not self._stop.is_set():
            with self._lock:
                files = dict(self._files)
            current = {}
            for pool, paths in files.items():
                changed = []
                for path in paths:
                    now = stamp(path)
                    key = (pool, path)
                    if key in known and known[key] != now:
                        changed.append(path)
                    current[key] = now
                if changed:
                    self._post(("files_changed", pool, changed))
            known = current
            self._stop.wait(self._interval)
