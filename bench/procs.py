"""Servers under test as child processes: start, wait until they answer, stop by PID.

Every server is started in its own session (so its process group id is its PID) and registered
here; `stop_all` runs at exit, so nothing outlives the harness even when a run fails half-way.
Stopping is two-step, like a supervisor: SIGTERM, then SIGKILL after a limit; then whatever the
server left behind (its own children, its process group) is killed by PID.
"""

from __future__ import annotations

import atexit
import http.client
import os
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field

import psutil

TERM_LIMIT_S = 10.0
_live: list["Server"] = []


class ServerFailed(Exception):
    """A server did not start, died, or answered wrongly; the message says why."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: str, lines: int = 12) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def _unverified() -> ssl.SSLContext:
    # The bench's certificates are self-signed, made at run time: the harness checks answers,
    # not certificates.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def http_get(port: int, path: str = "/", timeout: float = 5.0, tls: bool = False,
             headers: dict[str, str] | None = None) -> Response:
    if tls:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=_unverified())
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, body)
    finally:
        conn.close()


@dataclass
class Server:
    """One server under test: argv run in `workdir`, output in workdir/<name>.out|.err."""

    name: str
    argv: list[str]
    workdir: str
    port: int  # where it answers HTTP once started
    kind: str = ""  # wasp, gunicorn, nginx, uvicorn, granian: names its processes in the cost model
    tls: bool = False  # it answers https on `port`
    cwd: str | None = None
    env: dict[str, str] | None = None
    proc: subprocess.Popen | None = None
    stop_note: str = ""
    leftovers: list[int] = field(default_factory=list)

    @property
    def out_path(self) -> str:
        return os.path.join(self.workdir, f"{self.name}.out")

    @property
    def err_path(self) -> str:
        return os.path.join(self.workdir, f"{self.name}.err")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        env = dict(os.environ)
        env.update(self.env or {})
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.argv, cwd=self.cwd or self.workdir, env=env, stdin=subprocess.DEVNULL,
                stdout=out, stderr=err, start_new_session=True,
            )
        _live.append(self)

    def output_tail(self, lines: int = 12) -> str:
        text = tail(self.err_path, lines) or tail(self.out_path, lines)
        return text or "(no output)"

    def wait_ready(self, port: int, path: str = "/", timeout: float = 30.0) -> None:
        """Until the server answers HTTP on `port` (any status); raise if it dies or times out."""
        deadline = time.monotonic() + timeout
        last = "no attempt"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerFailed(
                    f"{self.name} exited with code {self.proc.returncode} before answering:\n"
                    f"{self.output_tail()}")
            try:
                http_get(port, path, timeout=max(0.5, min(5.0, deadline - time.monotonic())), tls=self.tls)
                return
            except (OSError, http.client.HTTPException) as e:
                last = f"{type(e).__name__}: {e}"
            time.sleep(0.1)
        raise ServerFailed(
            f"{self.name} did not answer on 127.0.0.1:{port} within {timeout:.0f}s ({last}):\n"
            f"{self.output_tail()}")

    def descendants(self) -> list[psutil.Process]:
        if self.proc is None or self.proc.poll() is not None:
            return []
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> None:
        """SIGTERM, SIGKILL after TERM_LIMIT_S, then kill what it left behind. Idempotent."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        try:
            children = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
        except psutil.NoSuchProcess:
            children = []
        started = time.monotonic()
        if proc.poll() is None:
            _signal(proc.pid, signal.SIGTERM)
            try:
                proc.wait(TERM_LIMIT_S)
                self.stop_note = (f"exited with code {proc.returncode} "
                                  f"{time.monotonic() - started:.1f}s after SIGTERM")
            except subprocess.TimeoutExpired:
                _signal(proc.pid, signal.SIGKILL)
                proc.wait(5)
                self.stop_note = f"still running {TERM_LIMIT_S:.0f}s after SIGTERM; killed"
        else:
            self.stop_note = f"had already exited with code {proc.returncode}"
        # A clean server has reaped its children by now; give stragglers a moment, then kill.
        alive = [c for c in children if _alive(c)]
        _gone, alive = psutil.wait_procs(alive, timeout=2)
        self.leftovers = [c.pid for c in alive]
        for c in alive:
            try:
                c.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self in _live:
            _live.remove(self)


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def stop_all() -> None:
    for server in list(_live):
        try:
            server.stop()
        except Exception:  # keep stopping the others
            pass


atexit.register(stop_all)
