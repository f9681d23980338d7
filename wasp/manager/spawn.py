"""The only code that starts processes: the front and the workers.

Children stay in the manager's process group but ignore SIGINT, so a Ctrl-C in the terminal
reaches the manager alone, which then stops everything in order (front first, then workers).
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


def _ignore_sigint() -> None:
    # Runs in the child between fork and exec. An ignored disposition survives exec, and CPython
    # leaves SIGINT alone at start-up when it is ignored.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _package_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(wasp.__file__)))


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The manager's environment, plus what a child needs to import wasp from where we did."""
    env = dict(os.environ)
    root = _package_root()
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


def _popen(argv: list[str], pass_fds: list[int], env: dict[str, str],
           user: str | None = None, group: str | None = None) -> subprocess.Popen:
    return subprocess.Popen(argv, pass_fds=pass_fds, env=env, close_fds=True,
                            stdin=subprocess.DEVNULL, preexec_fn=_ignore_sigint,
                            user=user, group=group, extra_groups=[] if user and os.getuid() == 0 else None)


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


def identity_of(identity) -> tuple[str | None, str | None]:
    """(user, group) to run a pool's workers as: only when the manager is root, as IIS's
    ApplicationPoolIdentity only applies to a service that may switch accounts."""
    user = getattr(identity, "user", "") or None
    group = getattr(identity, "group", "") or None
    if os.getuid() != 0:
        return None, None
    if user and not group:
        import pwd
        group = str(pwd.getpwnam(user).pw_gid)
    return user, group


def spawn_worker(worker_id: int, pool: str, variables: dict[str, str], python: str | None = None,
                 identity=None) -> tuple[subprocess.Popen, socket.socket]:
    """Start a worker of `pool` (with the pool's interpreter and identity when set). Returns the
    process and the manager's end of its control channel."""
    user, group = identity_of(identity)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        proc = _popen(worker_command(theirs.fileno(), worker_id, pool, python), [theirs.fileno()],
                      worker_env(pool, worker_id, variables), user, group)
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
