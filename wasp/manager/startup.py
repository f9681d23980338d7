"""Start-up checks that come before the manager exists: the run and log directories, the CPUs.

`serve` (main.py) runs them; a problem is a `StartupError` (or `rundir.RunDirError`) that it turns
into a line on stderr and exit code 1.
"""

from __future__ import annotations

import os

from wasp.common.unixsock import answers
from wasp.config import rundir


class StartupError(Exception):
    """The server cannot start (a port is taken, the run_dir is in use ...)."""


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what this process may use (cpusets, containers)
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def prepare_dirs(run_dir: str, log_dir: str, upgrading_from: int | None = None) -> None:
    """Create run_dir (0700) and log_dir; refuse a run_dir another live server uses, or one that
    is not ours and private (wasp/config/rundir.py: a local user may have pre-created it).

    A live server is one answering on its admin socket: a pid file alone may be stale, its pid
    reused by an unrelated process."""
    base = rundir.run_dir_base()
    fallback = os.path.dirname(run_dir) == base
    if fallback:  # a fallback run dir: the shared base must be ours and private too
        rundir.private_dir(base)
    os.makedirs(os.path.dirname(run_dir), exist_ok=True)
    # One the config names may be readable (0755), never writable, by others.
    rundir.private_dir(run_dir, forbidden=0o077 if fallback else 0o022)
    os.makedirs(log_dir, exist_ok=True)
    if answers(os.path.join(run_dir, "admin.sock"), timeout=2.0):
        try:
            with open(os.path.join(run_dir, "wasp.pid")) as f:
                pid = f.read().strip()
        except OSError:
            pid = "?"
        if upgrading_from is not None and pid == str(upgrading_from):
            return  # the manager that started this one to take over (upgrade.py)
        raise StartupError(f"wasp is already running with run_dir {run_dir} (pid {pid})")
