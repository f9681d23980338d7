"""Real wasp servers on 127.0.0.1 with ephemeral ports.

`wasp_server(toml_text)` writes the config into a temp folder, starts `wasp serve -c` as a child in
its own session and waits until it answers. Teardown stops it by PID (SIGTERM, then SIGKILL) and
kills any of its children still alive, even when the test failed.

`{port}` in the config text becomes the server's port, `{apps}` the folder of the test apps,
`{dir}` the server's temp folder, and `{pool_timing}` a `[pool_defaults]` block with short
durations so tests never wait for IIS's minutes-long defaults.

`server.connect()` opens a raw HTTP/1.1 connection (`RawConnection`) for what `requests` hides:
pipelining, 100-continue, malformed requests, exact status lines.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from wasp.common.unixsock import answers

REPO = pathlib.Path(__file__).resolve().parents[2]
APPS = pathlib.Path(__file__).resolve().parent / "apps"

POOL_TIMING = """\
[pool_defaults]
[pool_defaults.process_model]
idle_timeout = "0s"
ping_interval = "2s"
ping_response_time = "10s"
startup_time_limit = "30s"
shutdown_time_limit = "10s"
"""


# Ports for servers the tests start come from below the kernel's ephemeral range (32768-60999 by
# default), where no outgoing connection of another test can take a port between our check and
# the server's bind; each pytest-xdist process has its own slice, so two never pick the same one.
_PORT_SLICE = 1500
_PORT_BASE = 12000
_next_port = [0]


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on, for a server a test is about to start."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    start = _PORT_BASE + (index % 12) * _PORT_SLICE
    for _ in range(_PORT_SLICE):
        port = start + _next_port[0] % _PORT_SLICE
        _next_port[0] += 1
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}-{start + _PORT_SLICE - 1}")


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05, what="condition"):
    """Poll `predicate` until truthy or `timeout`. `what` may be a callable, evaluated only on
    timeout, so the message shows the state at the end (server logs, statuses seen)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what() if callable(what) else what}")


def wasp_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    env.update(extra or {})
    return env


def run_wasp(*args: str, cwd: pathlib.Path | str | None = None, timeout: float = 60,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a short-lived `wasp ...` command (validate, list, ...) and return its result."""
    return subprocess.run(
        [sys.executable, "-m", "wasp.cli.main", *args],
        cwd=cwd or REPO, capture_output=True, text=True, env=wasp_env(env), timeout=timeout,
    )


# --- raw HTTP -----------------------------------------------------------------------------------

@dataclasses.dataclass
class RawResponse:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    raw_head: bytes

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return default

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key.lower() == name]


class RawConnection:
    """One client socket with a tiny HTTP/1.1 response reader. Every read has a deadline."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 20.0):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.eof = False
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def __enter__(self) -> "RawConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        if self.eof:
            return False
        data = self.sock.recv(256 * 1024)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionError(f"EOF after {len(self.buf)} of {n} expected bytes")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError(f"EOF inside a line: {self.buf[:200]!r}")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_head(self) -> tuple[str, int, str, list[tuple[str, str]], bytes]:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError(f"EOF before a complete response head: {self.buf[:300]!r}")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        version, _, rest = lines[0].decode("latin-1").partition(" ")
        code, _, reason = rest.partition(" ")
        headers = []
        for line in lines[1:]:
            key, _, value = line.decode("latin-1").partition(":")
            headers.append((key.strip(), value.strip()))
        return version, int(code), reason, headers, head

    def read_response(self, method: str = "GET") -> RawResponse:
        version, status, reason, headers, head = self.read_head()
        response = RawResponse(version, status, reason, headers, b"", head)
        if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
            return response
        te = (response.header("transfer-encoding") or "").lower()
        if "chunked" in te:
            body = bytearray()
            for _ in range(1_000_000):
                size = int(self._line().split(b";")[0].strip(), 16)
                if size == 0:
                    while self._line():  # trailers
                        pass
                    break
                body += self._take(size)
                if self._take(2) != b"\r\n":
                    raise ConnectionError("bad chunk terminator")
            response.body = bytes(body)
        elif response.header("content-length") is not None:
            response.body = self._take(int(response.header("content-length")))
        else:
            response.body = self.read_until_close()
        return response

    def read_until_close(self) -> bytes:
        """Everything until the server closes; raises on reset (an unclean close)."""
        while self._fill():
            pass
        data, self.buf = self.buf, b""
        return data

    def request(self, method: str, target: str, headers: dict[str, str] | None = None,
                body: bytes = b"", host: str = "127.0.0.1") -> RawResponse:
        self.send(build_request(method, target, headers, body, host))
        return self.read_response(method)


def build_request(method: str, target: str, headers: dict[str, str] | None = None,
                  body: bytes = b"", host: str = "127.0.0.1") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for key, value in (headers or {}).items():
        lines.append(f"{key}: {value}")
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in (headers or {})):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# --- the server ---------------------------------------------------------------------------------

class WaspServer:
    wait_until = staticmethod(wait_until)
    build_request = staticmethod(build_request)

    def __init__(self, directory: pathlib.Path, config_text: str | None, port: int,
                 args: list[str] | None = None, env: dict[str, str] | None = None,
                 admin_sock: pathlib.Path | None | bool = True, cwd: pathlib.Path | None = None):
        self.dir = directory
        self.cwd = cwd or directory
        self.port = port
        self.config = directory / "wasp.toml"
        if config_text is not None:
            self.config.write_text(config_text)
        self.args = args if args is not None else ["serve", "-c", str(self.config)]
        self.extra_env = env or {}
        # True: <dir>/run/admin.sock; None/False: do not wait for one; a path: wait for that path.
        self.admin_sock = directory / "run" / "admin.sock" if admin_sock is True else admin_sock or None
        self.run_dir = self.admin_sock.parent if self.admin_sock else directory / "run"
        self.proc: subprocess.Popen | None = None
        self.stderr_path = directory / "server.stderr"
        self.known_pids: set[int] = set()
        self._stderr = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def logs(self) -> pathlib.Path:
        return self.dir / "logs"

    def start(self, wait: bool = True) -> "WaspServer":
        self._stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wasp.cli.main", *self.args],
            cwd=self.cwd, stdout=self._stderr, stderr=subprocess.STDOUT, env=wasp_env(self.extra_env),
            start_new_session=True,
        )
        self.known_pids.add(self.proc.pid)
        if wait:
            wait_until(self._accepting, 30, what=lambda: f"wasp on port {self.port}\n{self.log_tail()}")
        return self

    def _accepting(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"wasp exited with {self.proc.returncode}\n{self.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                pass
        except OSError:
            return False
        self.remember_children()
        # Answering, not just there: the file exists a moment before the manager listens on it.
        return self.admin_sock is None or answers(str(self.admin_sock))

    def remember_children(self) -> None:
        try:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                self.known_pids.add(child.pid)
        except psutil.Error:
            pass

    def children(self) -> list[psutil.Process]:
        try:
            found = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return []
        self.known_pids.update(p.pid for p in found)
        return found

    def processes(self, role: str, pool: str | None = None) -> list[psutil.Process]:
        """Live children whose command line says `-m wasp.<role>` (and `--pool <pool>`)."""
        found = []
        for proc in self.children():
            try:
                cmd = proc.cmdline()
            except psutil.Error:
                continue
            if f"wasp.{role}" not in cmd:
                continue
            if pool is not None and not _arg_value(cmd, "--pool") == pool:
                continue
            found.append(proc)
        return found

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def output(self) -> str:
        """Everything the server printed plus every text log under logs/ (for searching)."""
        parts = []
        try:
            parts.append(self.stderr_path.read_text(errors="replace"))
        except OSError:
            pass
        if self.logs.is_dir():
            for path in sorted(self.logs.rglob("*")):
                if path.is_file():
                    try:
                        parts.append(f"== {path.relative_to(self.dir)}\n" + path.read_text(errors="replace"))
                    except OSError:
                        pass
        return "\n".join(parts)

    def diagnostics(self, n: int = 40) -> str:
        return f"--- server output (tail) ---\n{self.log_tail(n)}\n--- logs ---\n" + "\n".join(
            self.output().splitlines()[-n:])

    def cli(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        where = ["-c", str(self.config)] if self.config.exists() else ["--run-dir", str(self.run_dir)]
        result = run_wasp(*args, *where, cwd=self.dir, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"wasp {' '.join(args)} -> {result.returncode}\n{result.stdout}\n{result.stderr}")
        return result

    def list_json(self, what: str):
        return json.loads(self.cli("list", what, "--json").stdout)

    def worker_pids(self, pool: str | None = None) -> list[int]:
        rows = self.list_json("wp")
        return [row["pid"] for row in rows if pool is None or row["pool"] == pool]

    def connect(self, timeout: float = 20.0) -> RawConnection:
        return RawConnection(self.port, timeout=timeout)

    def signal(self, signum: int) -> None:
        self.remember_children()
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc is None:
            return None
        self.remember_children()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for pid in self.known_pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            except PermissionError:
                pass
        self.stop_later_generation()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        return self.proc.returncode

    def stop_later_generation(self, timeout: float = 30) -> None:
        """A `wasp upgrade` leaves a new manager that is not this fixture's child (wasp.pid names
        it): stop it by that PID too (SIGTERM, then SIGKILL), and kill what it started."""
        try:
            pid = int((self.run_dir / "wasp.pid").read_text())
        except (OSError, ValueError):
            return
        if pid == self.proc.pid:
            return
        try:
            manager = psutil.Process(pid)
            if "wasp" not in " ".join(manager.cmdline()):
                return  # the pid file is stale and the number belongs to someone else now
            children = manager.children(recursive=True)
            manager.send_signal(signal.SIGTERM)
            manager.wait(timeout)
        except psutil.NoSuchProcess:
            children = []
        except psutil.TimeoutExpired:
            manager.kill()
        for child in children:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass


def _arg_value(cmd: list[str], flag: str) -> str | None:
    for i, arg in enumerate(cmd):
        if arg == flag and i + 1 < len(cmd):
            return cmd[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


class ServerFactory:
    """`factory(toml_text)` starts a server in `factory.dir`; `stop_all()` stops every one.

    The helpers ride along as attributes (`factory.wait_until`, `factory.run_wasp`,
    `factory.apps`, `factory.free_port`) so test modules need not import conftest, which is
    ambiguous when several test folders each have one.
    """

    wait_until = staticmethod(wait_until)
    run_wasp = staticmethod(run_wasp)
    free_port = staticmethod(free_port)
    build_request = staticmethod(build_request)
    apps = APPS
    repo = REPO

    def __init__(self, directory: pathlib.Path):
        self.dir = directory
        self.servers: list[WaspServer] = []

    def expand(self, config_text: str, port: int) -> str:
        text = (textwrap.dedent(config_text).replace("{pool_timing}", POOL_TIMING)
                .replace("{port}", str(port)).replace("{apps}", str(APPS))
                .replace("{dir}", str(self.dir)))
        if os.geteuid() == 0 and "identity" not in text:
            # A root manager runs workers as an unprivileged account by default (see
            # test_process_isolation.py for that behaviour). These tests' apps write marker
            # files into pytest's 0700 temp folders, so they keep the workers as root, said
            # explicitly the way a user would.
            text += '\n[pool_defaults.identity]\nuser = "root"\n'
        return text

    def __call__(self, config_text: str | None, port: int | None = None, start: bool = True,
                 **kwargs) -> WaspServer:
        port = port or free_port()
        text = self.expand(config_text, port) if config_text is not None else None
        server = WaspServer(self.dir, text, port, **kwargs)
        self.servers.append(server)
        return server.start() if start else server

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture
def wasp_server(tmp_path):
    factory = ServerFactory(tmp_path)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def wasp_module_server(tmp_path_factory):
    """Like `wasp_server`, for a module whose tests share one running server."""
    factory = ServerFactory(tmp_path_factory.mktemp("wasp"))
    yield factory
    factory.stop_all()
