"""How a worker starts the processes it owns (CGI scripts, FastCGI applications).

IIS's w3wp owns its CGI and FastCGI processes; so does a wasp worker. Each child is the leader
of a process group of its own (it and whatever it starts are killed together, and a signal to the
worker's group does not reach it) and has PR_SET_PDEATHSIG = SIGKILL, so it dies with the worker
even when the worker is killed without a chance to clean up. It runs as the worker runs, under the
pool's identity (wasp/manager/identity.py applied it to the worker); nothing here changes user.
"""

from __future__ import annotations

import asyncio
import ctypes
import signal
import subprocess

_PR_SET_PDEATHSIG = 1

try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def _child_setup() -> None:
    # Between fork and exec: nothing here may take a lock another thread could hold. prctl is a
    # plain system call through a function pointer resolved before the fork.
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)


async def spawn_child(argv: list[str], *, env: dict, cwd: str | None = None, stdin=subprocess.PIPE,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE) -> asyncio.subprocess.Process:
    """An asyncio subprocess in its own process group that dies with the worker."""
    return await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=cwd, stdin=stdin, stdout=stdout, stderr=stderr,
        preexec_fn=_child_setup, start_new_session=True, close_fds=True)
