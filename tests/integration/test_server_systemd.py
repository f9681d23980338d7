"""wasp under systemd without PID 1: `systemd-socket-activate` passes the listening sockets
(LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES) and the test plays systemd's notify socket (an AF_UNIX
datagram socket in NOTIFY_SOCKET) and journal stream (JOURNAL_STREAM naming the server's
stderr file)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
import requests

ACTIVATE = shutil.which("systemd-socket-activate")
pytestmark = pytest.mark.skipif(ACTIVATE is None, reason="systemd-socket-activate (Debian: systemd) is not installed")

CONFIG = """
{pool_timing}
[[pools]]
name = "P"
start_mode = "always_running"

[[sites]]
name = "Shop"
id = 1
bindings = ["http/{binding}:{port}:"]
[[sites.applications]]
path = "/"
pool = "P"
app = "systemd_app:app"
python_path = ["{apps}"]
"""


class Notify:
    """The test's side of NOTIFY_SOCKET: every datagram the manager sends, as field dicts."""

    def __init__(self, path: str):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.messages: list[dict[str, str]] = []

    def wait(self, key: str, value: str | None = None, timeout: float = 30.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        seen = len(self.messages)
        while time.monotonic() < deadline:
            for m in self.messages[seen:]:
                if key in m and (value is None or m[key] == value):
                    return m
            seen = len(self.messages)
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                break
            self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line))
        raise AssertionError(f"no {key}={value} from the manager in {timeout}s; got {self.messages}")

    def close(self) -> None:
        self.sock.close()


def _activated(wasp_server, tmp_path, binding: str = "127.0.0.1", listen: list[str] | None = None,
               names: str | None = None, env: dict[str, str] | None = None):
    """A server started the way systemd starts a socket-activated Type=notify service."""
    port = wasp_server.free_port()
    text = (CONFIG.replace("{binding}:{port}:", binding + ":") if binding.startswith("unix:")
            else CONFIG.replace("{binding}", binding))
    server = wasp_server(text, port=port, start=False)
    notify = Notify(str(tmp_path / "notify.sock"))
    server.notify = notify
    cmd = [ACTIVATE]
    for address in listen or [f"127.0.0.1:{port}"]:
        cmd += ["-l", address.replace("{port}", str(port))]
    if names:
        cmd.append(f"--fdname={names}")
    stderr_file = open(server.stderr_path, "ab")
    st = os.fstat(stderr_file.fileno())
    variables = {"NOTIFY_SOCKET": notify.path, "PYTHONPATH": str(wasp_server.repo),
                 "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}", **(env or {})}
    for key, value in variables.items():
        cmd += ["-E", f"{key}={value}"]
    cmd += [sys.executable, "-m", "wasp.cli.main", "serve", "-c", str(server.config)]
    server._stderr = stderr_file
    server.proc = subprocess.Popen(cmd, cwd=server.dir, stdout=stderr_file, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server.known_pids.add(server.proc.pid)
    count = len(listen or [1])
    wasp_server.wait_until(lambda: server.stderr_path.read_text().count("Listening on") >= count
                           or server.proc.poll() is not None, 10,
                           what=lambda: f"systemd-socket-activate listening\n{server.log_tail()}")
    return server


@pytest.fixture
def notify_cleanup():
    made = []
    yield made
    for server in made:
        server.notify.close()


def _first_request(server):
    """systemd-socket-activate starts wasp at the first connection, which then waits in the
    inherited socket's backlog until the front serves it."""
    return requests.get(server.url + "/", timeout=30)


def test_socket_activation_and_notify(wasp_server, tmp_path, notify_cleanup):
    server = _activated(wasp_server, tmp_path, env={"WATCHDOG_USEC": "400000"})
    notify_cleanup.append(server)
    response = _first_request(server)   # starts wasp, served from systemd's socket
    assert response.status_code == 200 and response.text.startswith("Hello")
    ready = server.notify.wait("READY", "1")
    # READY=1 comes once the always_running pool's worker is ready.
    assert "1 worker ready" in ready["STATUS"], ready
    server.remember_children()
    # WATCHDOG_USEC=0.4s: WATCHDOG=1 every 0.2s from the main loop.
    server.notify.wait("WATCHDOG", "1")
    server.notify.wait("WATCHDOG", "1")
    # The manager took systemd's variables: no front or worker (or app) sees them.
    for child in psutil.Process(server.proc.pid).children(recursive=True):
        environ = child.environ()
        assert not {"NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "WATCHDOG_USEC"} & set(environ), child.cmdline()
    # wasp did not bind the port (it would have failed: systemd-socket-activate holds it).
    out = server.output()
    assert "is served from systemd's socket" in out
    assert "cannot listen" not in out

    # Reload: RELOADING=1 with MONOTONIC_USEC, then READY=1 again.
    server.signal(signal.SIGHUP)
    reloading = server.notify.wait("RELOADING", "1")
    assert abs(int(reloading["MONOTONIC_USEC"]) - time.clock_gettime_ns(time.CLOCK_MONOTONIC) / 1000) < 60e6
    server.notify.wait("READY", "1")
    assert requests.get(server.url + "/", timeout=10).status_code == 200

    # Journal priorities: JOURNAL_STREAM names the stderr file, so every line has <N>.
    lines = [l for l in server.stderr_path.read_text().splitlines()
             if l and not l.startswith(("Listening on", "Communication attempt", "Execing"))]
    assert lines and all(l[:1] == "<" and l[2:3] == ">" for l in lines), lines[:5]
    assert any(l.startswith("<6>wasp: event 9001 Information") for l in lines)
    assert any(l.startswith("<5>wasp: socket activation") for l in lines)

    # Stop: STOPPING=1, and the manager exits 0.
    server.signal(signal.SIGTERM)
    stopping = server.notify.wait("STOPPING", "1")
    assert stopping["STATUS"].startswith("Stopping")
    assert server.proc.wait(30) == 0


def test_named_socket_serves_the_sites_wildcard_binding(wasp_server, tmp_path, notify_cleanup):
    # The site binds *:port; systemd listens on 127.0.0.1:port only and names the socket after
    # the site. By address it would not match (wasp plans 0.0.0.0:port); by name it does. A
    # second socket that no site has is reported and closed.
    spare = wasp_server.free_port()
    server = _activated(wasp_server, tmp_path, binding="*",
                        listen=["127.0.0.1:{port}", f"127.0.0.1:{spare}"], names="Shop:spare")
    notify_cleanup.append(server)
    assert _first_request(server).status_code == 200
    server.notify.wait("READY", "1")
    out = server.output()
    assert "0.0.0.0:" in out and "is served from systemd's socket Shop" in out
    assert "(spare) matches no binding of a started site; closed" in out
    # Nothing listens on the wildcard: wasp did not bind 0.0.0.0:port itself.
    conns = [c for c in psutil.Process(server.proc.pid).net_connections("tcp")
             if c.status == psutil.CONN_LISTEN]
    assert {c.laddr.ip for c in conns} == {"127.0.0.1"}


def test_install_service_print(wasp_server, tmp_path):
    config = tmp_path / "site" / "wasp.toml"
    config.parent.mkdir()
    config.write_text(CONFIG.replace("{pool_timing}", "").replace("{binding}", "*").replace("{port}", "80")
                      .replace("{apps}", str(wasp_server.apps)))
    result = wasp_server.run_wasp("install-service", "-c", str(config), "--print", "--socket",
                                  "--user", "nobody")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "# wasp.service" in out and "# wasp.socket" in out
    assert f"ExecStart={sys.executable} -m wasp serve -c {config}" in out
    assert "ListenStream=0.0.0.0:80" in out and "User=nobody" in out
    # Written: the units and the folders ReadWritePaths names.
    units = tmp_path / "units"
    result = wasp_server.run_wasp("install-service", "-c", str(config), "--unit-dir", str(units),
                                  "--name", "shop")
    assert result.returncode == 0, result.stderr
    assert (units / "shop.service").read_text().startswith("# Written by `wasp install-service`")
    assert (config.parent / "run").is_dir() and (config.parent / "logs").is_dir()
    assert "systemctl daemon-reload" in result.stdout
    # systemd itself accepts them (when its offline checker is installed).
    analyze = shutil.which("systemd-analyze")
    if analyze:
        sock_units = tmp_path / "sock-units"
        assert wasp_server.run_wasp("install-service", "-c", str(config), "--unit-dir", str(sock_units),
                                    "--name", "shop", "--socket").returncode == 0
        check = subprocess.run([analyze, "verify", str(units / "shop.service"),
                                str(sock_units / "shop.socket")], capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
    # Without --socket a port below 1024 and an unprivileged user cannot work: said.
    result = wasp_server.run_wasp("install-service", "-c", str(config), "--print", "--user", "nobody")
    assert "add --socket" in result.stderr
    bad = wasp_server.run_wasp("install-service", "-c", str(tmp_path / "missing.toml"), "--print")
    assert bad.returncode == 2


# ---------------------------------------------------------------------- logs (issue 12 item 3)

LOG_CONFIG = """
{pool_timing}
[log]
central_log_file_mode = "central_w3c"
log_target = "file_and_stdout"
[log.central_w3c_log_file]
period = "hourly"
max_files = 2

[[pools]]
name = "P"

[[sites]]
name = "One"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "P"
app = "systemd_app:app"
python_path = ["{apps}"]

[[sites]]
name = "Two"
id = 2
bindings = ["http/127.0.0.1:@PORT2@:"]
[[sites.applications]]
path = "/"
pool = "P"
app = "systemd_app:app"
python_path = ["{apps}"]
"""


def test_central_log_to_file_and_stdout_with_retention(wasp_server, tmp_path):
    folder = tmp_path / "logs" / "W3SVC"
    folder.mkdir(parents=True)
    for i, name in enumerate(("u_ex26010100.log", "u_ex26010101.log", "u_ex26010102.log")):
        (folder / name).write_text("#old\n")
        os.utime(folder / name, (1_000_000 + i, 1_000_000 + i))
    (folder / "keep-me.txt").write_text("not a log")
    port2 = wasp_server.free_port()
    server = wasp_server(LOG_CONFIG.replace("@PORT2@", str(port2)))
    assert requests.get(server.url + "/one", timeout=20).status_code == 200
    assert requests.get(f"http://127.0.0.1:{port2}/two", timeout=20).status_code == 200

    def written():
        files = sorted(folder.glob("u_ex*.log"))
        text = "".join(p.read_text() for p in files)
        return " /one " in text and " /two " in text and files
    files = server.wait_until(written, 15, what=lambda: sorted(p.name for p in folder.iterdir()))
    # max_files = 2: the newest old file and the one being written; other names left alone.
    assert sorted(p.name for p in folder.iterdir()) == sorted(["u_ex26010102.log", files[-1].name, "keep-me.txt"])
    assert not (tmp_path / "logs" / "W3SVC1").exists()
    lines = files[-1].read_text().splitlines()
    fields = next(l for l in lines if l.startswith("#Fields: ")).split(" ")[1:]
    sites = [dict(zip(fields, l.split(" ")))["s-sitename"] for l in lines if not l.startswith("#")]
    assert sites == ["W3SVC1", "W3SVC2"]
    # The same lines on the front's stdout (the server's output here).
    server.wait_until(lambda: " /two " in server.stderr_path.read_text(), 15, what=server.log_tail)
    out = server.stderr_path.read_text()
    assert "#Fields: " in out and " /one " in out


def test_unix_socket_from_systemd_is_served_and_left_in_place(wasp_server, tmp_path, notify_cleanup):
    path = tmp_path / "web.sock"
    server = _activated(wasp_server, tmp_path, binding=f"unix:{path}", listen=[str(path)])
    notify_cleanup.append(server)
    # A site's binding "http/unix:<path>:" and systemd's socket on the same path: matched by
    # address. The first connection starts wasp.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(path))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and b"socket-activated" in data
    server.notify.wait("READY", "1")
    server.signal(signal.SIGTERM)
    assert server.proc.wait(30) == 0
    # systemd's socket file is systemd's: wasp did not unlink it on the way out.
    assert path.exists()
