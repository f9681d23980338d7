"""Deploys (docs/deploys.md): `recycling.monitor_changes_to`, IIS's recycle on a file's change.

A thread polls (once a second, one stat per file) the files each pool lists and posts
("files_changed", pool, files) when one is written, created or removed; the manager recycles the
pool, overlapped, with event 9023. The recycle is the one `wasp deploy pool` does: the new worker
must import the code and pass its initialization pages before it takes traffic, or the old one
keeps serving. The manager's loop never waits on a disk.
"""

from __future__ import annotations

import os

from wasp.manager.reloader import PollingWatcher


def watched(config) -> dict[str, list[str]]:
    return {p.name: list(p.recycling.monitor_changes_to) for p in config.pools
            if p.recycling.monitor_changes_to}


def stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class FileWatcher(PollingWatcher):
    """Posts ("files_changed", pool, files) when a listed file is written, created or removed
    (a file is compared only once it has been seen: one added to the list is not a change)."""

    thread_name = "wasp-monitor-changes"

    def key(self, pool: str, paths: list[str]):
        return pool

    def check(self, pool: str, paths: list[str], before: dict | None) -> tuple[dict, list[tuple]]:
        before = before or {}
        now = {path: stamp(path) for path in paths}
        changed = [path for path in paths if path in before and before[path] != now[path]]
        return now, [("files_changed", pool, changed)] if changed else []
