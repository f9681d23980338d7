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


#: A worker whose interpreter cannot import wasp (or its dependencies) exits with this code.
EXIT_NO_WASP = 5
#: What a worker imports from the server's own packages: wasp and its run-time dependencies
#: (pyproject.toml's, and theirs: wsproto needs h11). A unit test keeps it in step.
#: bcrypt, pam (python-pam), ldap3 and its pyasn1: Basic authentication's providers, imported
#: by a worker only when a URL uses them.
WORKER_IMPORTS = ("wasp", "uvloop", "httptools", "msgspec", "psutil", "wsproto", "h11",
                  "bcrypt", "pam", "ldap3", "pyasn1", "brotli", "_brotli", "zstandard")
#: Run-time dependencies only the manager and the front import, never a worker: a pool's own
#: interpreter keeps its own copy (an app may pin another cryptography than the server's).
#: h2 is the front's alone: workers never see HTTP/2.
SERVER_ONLY_IMPORTS = ("cryptography", "acme", "josepy", "h2")
PROBE_TIMEOUT = 20.0

# Run by a pool's own `python` (not the server's) in place of `-m wasp.worker`, before any of
# wasp is imported. An interpreter of the server's Python version gets wasp and its dependencies
# (only those names: WORKER_IMPORTS) from where the server has them, ahead of any copy of its own,
# so the worker runs the manager's wasp and speaks its protocol; every other import (a pinned
# Django) is the interpreter's own, and its site-packages are never mixed with the server's. One
# of another version must have wasp-server installed. Either way a failed import is one clear
# line and exit code EXIT_NO_WASP, not a traceback.
_BOOT = """\
import sys
def _finder(names, path):
    import importlib.machinery
    class WaspFinder:
        @staticmethod
        def find_spec(name, parent_path=None, target=None):
            if parent_path is None and name in names:
                return importlib.machinery.PathFinder.find_spec(name, path)
            return None
    return WaspFinder
if sys.version_info[:2] == {version!r}:
    sys.meta_path.insert(0, _finder({names!r}, {path!r}))
try:
    import uvloop, msgspec, httptools
    import wasp.worker.main, wasp.worker.worker
except ImportError as exc:
    sys.stderr.write("wasp: %s (Python %d.%d) cannot import wasp: %s\\n" % (
        sys.executable, sys.version_info[0], sys.version_info[1], exc))
    sys.exit({code})
if sys.argv[1:] == ["--probe"]:
    sys.exit(0)
sys.exit(wasp.worker.main.main())
"""


def server_packages() -> list[str]:
    """Where this (the server's) interpreter finds wasp and its dependencies."""
    folders = [package_root(), *site.getsitepackages()]
    if site.ENABLE_USER_SITE:
        folders.append(site.getusersitepackages())
    return list(dict.fromkeys(folders))


def boot_code() -> str:
    """The `-c` program a pool's own interpreter runs (see _BOOT)."""
    return _BOOT.format(version=tuple(sys.version_info[:2]), names=tuple(sorted(WORKER_IMPORTS)),
                        path=server_packages(), code=EXIT_NO_WASP)


def front_command(control_fd: int, listen_fds: list[int], index: int = 0, count: int = 1,
                  scoreboard_fd: int | None = None) -> list[str]:
    argv = [sys.executable, "-m", "wasp.front", "--control-fd", str(control_fd),
            "--listen-fds", ",".join(str(fd) for fd in listen_fds)]
    if count > 1 or index:
        argv += ["--front-index", str(index), "--front-count", str(count)]
    if scoreboard_fd is not None:
        argv += ["--scoreboard-fd", str(scoreboard_fd)]
    return argv


def worker_command(control_fd: int, worker_id: int, pool: str, python: str | None = None,
                   virtualenv: str | None = None) -> list[str]:
    """The worker's command line: the server's interpreter (with `--virtualenv` for a pool's
    venv), or the pool's own `python` running the boot program."""
    args = ["--control-fd", str(control_fd), "--worker-id", str(worker_id), "--pool", pool]
    if python and python != sys.executable:
        return [python, "-c", boot_code(), *args]
    if virtualenv:
        args += ["--virtualenv", virtualenv]
    return [sys.executable, "-m", "wasp.worker", *args]


def virtualenv_env(virtualenv: str, path: str) -> dict[str, str]:
    """What `activate` sets: VIRTUAL_ENV, and the venv's bin/ first on PATH."""
    return {"VIRTUAL_ENV": virtualenv,
            "PATH": os.pathsep.join([os.path.join(virtualenv, "bin"), *[p for p in path.split(os.pathsep) if p]])}


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


def spawn_front(listen_fds: list[int], index: int = 0, count: int = 1,
                scoreboard_fd: int | None = None) -> tuple[subprocess.Popen, socket.socket]:
    """Start front `index` of `count` (sharing the scoreboard memfd with the others). Returns the
    process and the manager's end of its control channel."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    extra = [scoreboard_fd] if scoreboard_fd is not None else []
    try:
        proc = _popen(front_command(theirs.fileno(), listen_fds, index, count, scoreboard_fd),
                      [theirs.fileno(), *listen_fds, *extra], child_env())
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return proc, ours


def worker_environment(pool: str, worker_id: int, variables: dict[str, str],
                       account: Account | None = None, virtualenv: str | None = None) -> dict[str, str]:
    """A worker's whole environment: `worker_env`, what activating the venv and a login as
    `account` would set; the pool's own variables win over both."""
    env = worker_env(pool, worker_id, variables)
    added = virtualenv_env(virtualenv, env.get("PATH", os.defpath)) if virtualenv else {}
    if account is not None:
        added.update(identity.environment(account))
    env.update({k: v for k, v in added.items() if k not in variables})
    return env


def spawn_worker(worker_id: int, pool: str, variables: dict[str, str], python: str | None = None,
                 account: Account | None = None,
                 virtualenv: str | None = None) -> tuple[subprocess.Popen, socket.socket]:
    """Start a worker of `pool` with the pool's interpreter or virtualenv, as `account` when given
    (see `wasp.manager.identity`). Returns the process and the manager's end of its control channel."""
    env = worker_environment(pool, worker_id, variables, account, None if python else virtualenv)
    user = group = extra_groups = None
    if account is not None:
        user, group, extra_groups = account.uid, account.gid, list(account.groups)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        proc = _popen(worker_command(theirs.fileno(), worker_id, pool, python, virtualenv), [theirs.fileno()],
                      env, user, group, extra_groups)
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return proc, ours


def probe(python: str, env: dict[str, str] | None = None,
          account: Account | None = None) -> str | None:
    """Whether a pool's own interpreter can start a worker: runs the boot program up to its
    imports, as `account`. None when it can, else why not, with what to do about it."""
    user = group = extra_groups = None
    if account is not None:
        user, group, extra_groups = account.uid, account.gid, list(account.groups)
    try:
        done = subprocess.run([python, "-c", boot_code(), "--probe"], env=env or child_env(),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              errors="replace", timeout=PROBE_TIMEOUT, cwd="/",
                              user=user, group=group, extra_groups=extra_groups)
    except FileNotFoundError:
        return f"python {python!r} does not exist"
    except PermissionError as exc:
        return f"python {python!r} cannot be run: {exc.strerror or exc}"
    except OSError as exc:
        return f"python {python!r} cannot be run: {exc.strerror or exc}"
    except subprocess.TimeoutExpired:
        return f"python {python!r} did not finish importing wasp within {PROBE_TIMEOUT:.0f} seconds"
    if done.returncode == 0:
        return None
    lines = done.stderr.strip().splitlines()
    if done.returncode == EXIT_NO_WASP and lines:
        return lines[-1].removeprefix("wasp: ") + ". " + _no_wasp_fix(python)
    tail = lines[-1] if lines else "no output"
    return f"python {python!r} exited with code {done.returncode} while importing wasp: {tail}"


def _no_wasp_fix(python: str) -> str:
    ours = f"{sys.version_info[0]}.{sys.version_info[1]}"
    home = os.path.dirname(os.path.dirname(os.path.abspath(python)))
    venv = home if os.path.isfile(os.path.join(home, "pyvenv.cfg")) else "/path/to/venv"
    return (f"Use virtualenv = \"{venv}\" instead of python (the server's Python {ours} with that "
            f"venv's packages first), or install wasp into that interpreter: {python} -m pip "
            "install wasp-server")


def run_command(command: str) -> subprocess.Popen:
    """An admin's command line from the config (orphan_action_exe, auto_shutdown_exe), split like
    a shell would but not run by one."""
    argv = shlex.split(command)
    if not argv:
        raise ValueError("empty command")
    return _popen(argv, [], child_env())
