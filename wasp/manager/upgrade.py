"""Upgrade without dropping a request (nginx's SIGUSR2 binary upgrade): docs/upgrade.md.

`wasp upgrade` (POST /upgrade) or SIGUSR2 makes the manager start a **new manager from the
installed version**: `sys.executable -m wasp <the same argv>`, resolved from disk again, so a newly
installed wasp runs. It is started through a tiny exec shim (`SHIM`, run by `python -c`) that

* moves the listening sockets the old manager passed to descriptors 3, 4, ... and sets
  LISTEN_FDS / LISTEN_FDNAMES / LISTEN_PID=<its own pid> (exec keeps the pid), so the new manager
  adopts them through the socket-activation code (activation.py), as from systemd;
* keeps a pipe to the old manager at the descriptor named by WASP_UPGRADE_FD.

The new manager (`Child` below, in the new process) binds its admin API at
run_dir/admin.upgrade.sock while both run, starts its fronts and workers on the inherited
sockets (both generations' fronts accept on the same sockets meanwhile), and once its pools'
startup is done (systemd.startup_done) it renames its socket onto run_dir/admin.sock, writes
wasp.pid and writes `ready <pid>` on the pipe. Every line it writes to stderr before that is also
sent on the pipe (`log ...`), so a failure says why. Only then does the old manager tell systemd
`MAINPID=<new>`, stop accepting, drain (its SIGTERM path) and exit, leaving the socket files,
the pid file and the Unix listening sockets' files to the new one.

A new manager that exits, or is not ready within UPGRADE_TIMEOUT, is stopped (SIGTERM then
SIGKILL, by PID); the old one keeps serving and writes event 9081 with the reason.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

#: Seconds the new manager has to report ready (the pools' startup_time_limit is 90 by default,
#: but one that takes that long is a failed upgrade: raise WASP_UPGRADE_TIMEOUT for such a site).
UPGRADE_TIMEOUT = 60.0
ENV_FD = "WASP_UPGRADE_FD"
ENV_SOCKETS = "WASP_UPGRADE_SOCKETS"
ENV_NAMES = "WASP_UPGRADE_NAMES"
CHILD_ADMIN = "admin.upgrade.sock"
#: LISTEN_FDNAMES name of a tcp pool's listening socket handed to the new generation.
SERVICE_NAME = "upgrade-tcp"
#: Lines of the new manager's stderr kept for the report.
KEEP_LINES = 40

#: Run by `python -c`: sockets to 3.., LISTEN_* for this pid, then exec wasp from disk.
SHIM = r"""
import fcntl, os, sys
socks = [int(x) for x in os.environ.pop("WASP_UPGRADE_SOCKETS", "").split(",") if x]
pipe = int(os.environ["WASP_UPGRADE_FD"])
n = len(socks)
high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 3 + n) for fd in socks]
hpipe = fcntl.fcntl(pipe, fcntl.F_DUPFD, 3 + n)
for fd in socks + [pipe]:
    os.close(fd)
for i, fd in enumerate(high):
    os.dup2(fd, 3 + i)
    os.close(fd)
os.set_inheritable(hpipe, True)
os.environ["WASP_UPGRADE_FD"] = str(hpipe)
os.environ["LISTEN_FDS"] = str(n)
os.environ["LISTEN_FDNAMES"] = os.environ.pop("WASP_UPGRADE_NAMES", "")
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.executable, [sys.executable, "-m", "wasp", *sys.argv[1:]])
"""


class UpgradeError(Exception):
    pass


def command(argv: list[str]) -> list[str]:
    return [sys.executable, "-c", SHIM, *argv]


def manager_argv() -> list[str]:
    """The old manager's own arguments (after `wasp` / `-m wasp`)."""
    return list(sys.argv[1:])


def start(sockets: list, notify_socket: str = "", cwd: str | None = None,
          service_sockets: list = ()) -> tuple[subprocess.Popen, int]:
    """Start the new manager with these listening sockets (the HTTP ones named `upgrade`, the
    tcp pools' `upgrade-tcp`); (its process, the pipe's read end)."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    fds = [s.fileno() for s in sockets] + [s.fileno() for s in service_sockets]
    env = dict(os.environ)
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", ENV_FD):
        env.pop(name, None)
    env[ENV_SOCKETS] = ",".join(map(str, fds))
    env[ENV_NAMES] = ":".join(["upgrade"] * len(sockets) + [SERVICE_NAME] * len(service_sockets))
    env[ENV_FD] = str(write_end)
    if notify_socket:
        env["NOTIFY_SOCKET"] = notify_socket
    try:
        proc = subprocess.Popen(command(manager_argv()), env=env, pass_fds=[*fds, write_end],
                                cwd=cwd, stdin=subprocess.DEVNULL, start_new_session=False)
    except OSError:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    return proc, read_end


def parse(lines: list[str]) -> tuple[int | None, list[str]]:
    """(the pid a `ready PID` line names, or None; the `log` lines). Sans I/O."""
    ready = None
    logs = []
    for line in lines:
        if line.startswith("ready "):
            try:
                ready = int(line[6:].strip())
            except ValueError:
                pass
        elif line.startswith("log "):
            logs.append(line[4:])
    return ready, logs[-KEEP_LINES:]


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Stop a new manager that failed (by its PID), its own children with it (its SIGTERM path)."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------------- in the new manager

class Child:
    """The new manager's side: None-safe; `active` only when started by an upgrade."""

    def __init__(self, environ=None):
        environ = os.environ if environ is None else environ
        text = environ.pop(ENV_FD, "")
        self.fd: int | None = int(text) if text.isdigit() else None
        if self.fd is not None:
            try:
                os.set_inheritable(self.fd, False)
            except OSError:
                self.fd = None

    @property
    def active(self) -> bool:
        return self.fd is not None

    def send(self, line: str) -> None:
        if self.fd is None:
            return
        try:
            os.write(self.fd, (line.replace("\n", " ") + "\n").encode("utf-8", "replace"))
        except OSError:
            self.close()

    def ready(self) -> None:
        self.send(f"ready {os.getpid()}")
        self.close()

    def close(self) -> None:
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None


class TeeStream:
    """stderr that also sends each line to the old manager while the upgrade is under way."""

    def __init__(self, stream, child: Child):
        self._stream = stream
        self._child = child
        self._partial = ""

    def write(self, text: str) -> int:
        if self._child.active:
            self._partial += text
            *lines, self._partial = self._partial.split("\n")
            for line in lines:
                self._child.send("log " + line)
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


_child: Child | None = None


def child() -> Child:
    """This process's upgrade pipe (read once, at start-up, by the CLI)."""
    global _child
    if _child is None:
        _child = Child()
        if _child.active:
            sys.stderr = TeeStream(sys.stderr, _child)
    return _child


def wait_deadline() -> float:
    try:
        return time.monotonic() + float(os.environ.get("WASP_UPGRADE_TIMEOUT", UPGRADE_TIMEOUT))
    except ValueError:
        return time.monotonic() + UPGRADE_TIMEOUT


# ---------------------------------------------------------------------- in the old manager

class UpgradeOps:
    """`Manager`'s side (a mixin, as api.py's): start the new generation, hand over or report."""

    _upgrading = False
    handed_over = False

    async def upgrade(self) -> tuple[int, object]:
        import asyncio

        if self._upgrading:
            return 409, {"error": "an upgrade is already under way"}
        if self.sup.shutting_down:
            return 409, {"error": "the server is shutting down"}
        if getattr(self, "upgrade_child", None) is not None and self.upgrade_child.active:
            return 409, {"error": "this manager is itself still starting as an upgrade"}
        self._upgrading = True
        try:
            sockets = list(self.listeners.sockets.values())
            services = list(self.services.sockets.values())
            try:
                proc, read_end = start(sockets, getattr(self.notifier, "socket_text", ""),
                                       service_sockets=services)
            except OSError as exc:
                return self._upgrade_failed(None, f"the new manager could not be started: {exc}", [])
            self.events.write(9080, pid=proc.pid, data={"pid": proc.pid})
            loop = asyncio.get_running_loop()
            chunks: list[bytes] = []
            done = loop.create_future()

            def readable() -> None:
                try:
                    data = os.read(read_end, 65536)
                except OSError:
                    data = b""
                if data:
                    chunks.append(data)
                    if b"\nready " in b"\n" + b"".join(chunks):
                        if not done.done():
                            done.set_result(True)
                elif not done.done():
                    done.set_result(False)

            loop.add_reader(read_end, readable)
            try:
                await asyncio.wait_for(done, max(0.0, wait_deadline() - time.monotonic()))
                timed_out = False
            except asyncio.TimeoutError:
                timed_out = True
            finally:
                loop.remove_reader(read_end)
                os.close(read_end)
            ready, logs = parse(b"".join(chunks).decode("utf-8", "replace").splitlines())
            if ready is None or ready != proc.pid or proc.poll() is not None:
                code = proc.poll()
                if timed_out:
                    reason = "the new manager was not ready in time"
                elif code is not None:
                    reason = f"the new manager exited with code {code}"
                else:
                    reason = "the new manager closed its pipe without reporting ready"
                await loop.run_in_executor(None, stop, proc)
                return self._upgrade_failed(proc.pid, reason, logs)
            # The new generation serves: leave it the files and the service, then drain.
            self.handed_over = True
            self.listeners.files.clear()  # its Unix sockets' files are the new manager's now
            self.notifier.send(True, MAINPID=proc.pid)
            self.events.write(9082, pid=proc.pid, data={"pid": proc.pid, "old": os.getpid()})
            self.stderr.write(f"wasp: upgrade: the new manager (pid {proc.pid}) serves; "
                              "this one drains and exits\n")
            self._execute(self.sup.shutdown(time.monotonic(), handover=True))
            self._upgrade_proc = proc  # not waited for: it outlives this process
            return 200, {"old_pid": os.getpid(), "new_pid": proc.pid,
                         "message": f"upgraded: the new manager is pid {proc.pid}"}
        finally:
            if not self.handed_over:
                self._upgrading = False

    def _upgrade_failed(self, pid, reason: str, logs: list[str]) -> tuple[int, object]:
        detail = "; ".join(line for line in logs if line.strip())[-2000:]
        self.events.write(9081, data={"reason": reason + (f": {detail}" if detail else "")})
        self.stderr.write(f"wasp: upgrade failed: {reason}; this manager keeps serving\n")
        return 500, {"error": f"upgrade failed: {reason}; the running server keeps serving",
                     "reason": reason, "pid": pid, "log": logs}

    def upgrade_signal(self) -> None:
        """SIGUSR2: the same, with the outcome in the event log and on stderr only."""
        if self._upgrading:
            self.stderr.write("wasp: SIGUSR2: an upgrade is already under way\n")
            return
        task = self.loop.create_task(self.upgrade())
        self._upgrade_task = task

    def upgrade_child_tick(self) -> None:
        """The new manager: once its pools' startup is done, take the canonical paths, say ready."""
        from wasp.manager import systemd

        child = getattr(self, "upgrade_child", None)
        if child is None or not child.active or self.sup.shutting_down:
            return
        if not systemd.startup_done(self.sup, time.monotonic(), self.started) or not self.fronts:
            return
        canonical = os.path.join(self.run_dir, "admin.sock")
        os.replace(self.admin_path, canonical)
        self.admin_path = canonical
        with open(self.pid_path + ".tmp", "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(self.pid_path + ".tmp", self.pid_path)
        child.ready()
