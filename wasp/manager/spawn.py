"""The only code that starts processes: the front and the workers.

Each child runs in a process group of its own (and ignores SIGINT besides), so a signal sent to
the manager's whole group (Ctrl-C in a terminal, systemd's default KillMode=control-group stop,
GNU `timeout`) reaches the manager alone, which then stops everything in order (front first, then
workers). Children take their stop orders from the control channel only; when the manager dies
they read EOF on it and leave (the front at once, workers once in-flight requests are done), and
SIGKILL stays the manager's hard stop.
"""

from __future__ import annotations

import os
import shlex
import signal
import site
import socket
import subprocess
import sys

import wasp
from wasp.manager import identity
from wasp.manager.identity import Account


def _ignore_sigint() -> None:
    # Runs in the child between fork and exec. An ignored disposition survives exec, and CPython
    # leaves SIGINT alone at start-up when it is ignored.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def package_root() -> str:
    """The folder `wasp` is imported from (its parent), which every child must be able to read."""
    return os.path.dirname(os.path.dirname(os.path.abspath(wasp.__file__)))


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The manager's environment, plus what a child needs to import wasp from where we did."""
    env = dict(os.environ)
    root = package_root()
    installed = set(site.getsitepackages()) | {site.getusersitepackages()}
    if root not in installed:
        # Running from a source tree: the child must find the same `wasp` whatever its cwd.
        parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        if root not in parts:
            env["PYTHONPATH"] = os.pathsep.join([root, *parts])
    if extra:
        env.update(extra)
    return env


def front_command(control_fd: int, listen_fds: list[int]) -> list[str]:
    return [sys.executable, "-m", "wasp.front", "--control-fd", str(control_fd),
            "--listen-fds", ",".join(str(fd) for fd in listen_fds)]


def worker_command(control_fd: int, worker_id: int, pool: str, python: str | None = None) -> list[str]:
    return [python or sys.executable, "-m", "wasp.worker", "--control-fd", str(control_fd),
            "--worker-id", str(worker_id), "--pool", pool]


def worker_env(pool: str, worker_id: int, variables: dict[str, str]) -> dict[str, str]:
    # APP_POOL_ID is what IIS sets in w3wp's environment.
    extra = {"APP_POOL_ID": pool, "WASP_POOL": pool, "WASP_WORKER_ID": str(worker_id)}
    extra.update(variables)
    return child_env(extra)


def _popen(argv: list[str], pass_fds: list[int], env: dict[str, str], user: int | None = None,
           group: int | None = None, extra_groups: list[int] | None = None) -> subprocess.Popen:
    return subprocess.Popen(argv, pass_fds=pass_fds, env=env, close_fds=True,
                            stdin=subprocess.DEVNULL, preexec_fn=_ignore_sigint,
                            process_group=0,  # out of the group signals are sent to
                            user=user, group=group, extra_groups=extra_groups)


def spawn_front(listen_fds: list[int]) -> tuple[subprocess.Popen, socket.socket]:
    """Start the front. Returns the process and the manager's end of its control channel."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        proc = _popen(front_command(theirs.fileno(), listen_fds),
                      [theirs.fileno(), *listen_fds], child_env())
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return proc, ours


def spawn_worker(worker_id: int, pool: str, variables: dict[str, str], python: str | None = None,
                 account: Account | None = None) -> tuple[subprocess.Popen, socket.socket]:
    """Start a worker of `pool` with the pool's interpreter, as `account` when given (see
    `wasp.manager.identity`). Returns the process and the manager's end of its control channel."""
    env = worker_env(pool, worker_id, variables)
    user = group = extra_groups = None
    if account is not None:
        # What a login would set, but the pool's own variables still win.
        env.update({k: v for k, v in identity.environment(account).items() if k not in variables})
        user, group, extra_groups = account.uid, account.gid, list(account.groups)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        proc = _popen(worker_command(theirs.fileno(), worker_id, pool, python), [theirs.fileno()],
                      env, user, group, extra_groups)
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return proc, ours


def run_command(command: str) -> subprocess.Popen:
    """An admin's command line from the config (orphan_action_exe, auto_shutdown_exe), split like
    a shell would but not run by one."""
    argv = shlex.split(command)
    if not argv:
        raise ValueError("empty command")
    return _popen(argv, [], child_env())
