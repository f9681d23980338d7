"""`wasp upgrade` / SIGUSR2 (docs/upgrade.md): a new manager on the same listening sockets, the old
generation drained, no request failed; a new manager that cannot start leaves the old serving."""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time

import pathlib
import shutil

import psutil
import pytest

import wasp
from wasp.cli.client import AdminClient

CONFIG = """
{pool_timing}
[[pools]]
name = "P"

[[sites]]
name = "Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "P"
app = "systemd_app:app"
python_path = ["{apps}"]
"""


def manager_pid(server) -> int:
    return int((server.run_dir / "wasp.pid").read_text())


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class Load:
    """Threads doing GETs (half on keep-alive connections, half a new connection each), counted."""

    def __init__(self, port: int, threads: int = 4):
        self.port = port
        self.ok = 0
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i % 2 == 0,), daemon=True)
                        for i in range(threads)]

    def run(self, keep_alive: bool) -> None:
        conn = None
        deadline = time.monotonic() + 120  # bounded whatever happens
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
                conn.request("GET", "/")
                response = conn.getresponse()
                body = response.read()
                if response.status != 200 or b"Hello" not in body:
                    raise AssertionError(f"status {response.status}")
                closing = response.getheader("Connection", "").lower() == "close"
                with self.lock:
                    self.ok += 1
                if not keep_alive or closing:
                    conn.close()
                    conn = None
            except Exception as exc:
                with self.lock:
                    self.failures.append(repr(exc))
                if conn is not None:
                    conn.close()
                conn = None

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)


@pytest.fixture
def server(wasp_server):
    srv = wasp_server(CONFIG)
    yield srv  # its stop() stops the generation an upgrade left too (conftest)


def old_generation(server) -> list[int]:
    server.remember_children()
    return [server.proc.pid, *[c.pid for c in server.children()]]


def wait_gone(server, pids: list[int]) -> None:
    server.wait_until(lambda: all(gone(p) for p in pids), 60,
                      what=lambda: f"the old generation {pids} gone\n{server.diagnostics()}")


def test_upgrade_under_load_drops_nothing(server):
    old = old_generation(server)
    with Load(server.port) as load:
        server.wait_until(lambda: load.ok >= 20, 30, what="load running")
        result = server.cli("upgrade", timeout=120)
        before = load.ok
        server.wait_until(lambda: load.ok >= before + 20, 30, what="load after the upgrade")
        wait_gone(server, old)
        after = load.ok
        server.wait_until(lambda: load.ok >= after + 20, 30, what="load after the old exited")
    assert load.failures == [], load.failures[:5]
    new = manager_pid(server)
    assert new != server.proc.pid
    assert f"-> {new}" in result.stdout
    assert server.proc.returncode == 0 or server.proc.poll() == 0
    # The new manager answers the admin API on the canonical socket, with its own workers.
    rows = server.list_json("wp")
    assert rows and all(row["pid"] not in old for row in rows)
    assert psutil.Process(rows[0]["pid"]).ppid() == new or new in [
        p.pid for p in psutil.Process(rows[0]["pid"]).parents()]


def test_failed_upgrade_keeps_the_old_serving(server):
    old = manager_pid(server)
    server.config.write_text(server.config.read_text() + "\n[server]\nno_such_setting = 1\n")
    result = server.cli("upgrade", check=False, timeout=120)
    assert result.returncode == 1, result
    assert "upgrade failed" in result.stderr and "no_such_setting" in result.stderr, result.stderr
    assert manager_pid(server) == old and server.proc.poll() is None
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    conn.request("GET", "/")
    assert conn.getresponse().status == 200
    events = (server.logs / "events.jsonl").read_text()
    assert '"id": 9081' in events or '"id":9081' in events
    assert "no_such_setting" in events


def test_two_upgrades_at_once_are_refused_and_sigusr2_works(server):
    old = old_generation(server)
    with Load(server.port) as load:
        server.wait_until(lambda: load.ok >= 10, 30, what="load running")
        server.signal(signal.SIGUSR2)
        # While the first one runs (the new manager is starting), a second is refused.
        second = server.cli("upgrade", check=False, timeout=120)
        wait_gone(server, old)
        after = load.ok
        server.wait_until(lambda: load.ok >= after + 20, 30, what="load after SIGUSR2")
    assert load.failures == [], load.failures[:5]
    assert manager_pid(server) != old[0]
    if second.returncode == 1:
        assert "already under way" in second.stderr or "shutting down" in second.stderr, second.stderr


def test_upgrade_runs_the_newly_installed_version(wasp_server, tmp_path):
    """Two installed versions: the server runs from a copy of the package on PYTHONPATH (an
    install); the copy is then replaced in place with a bumped __version__, as an upgrade of the
    installed package does, and `wasp upgrade` must bring that version up (GET /status)."""
    site = tmp_path / "installed"
    shutil.copytree(pathlib.Path(wasp.__file__).parent, site / "wasp",
                    ignore=shutil.ignore_patterns("__pycache__"))
    srv = wasp_server(CONFIG, env={"PYTHONPATH": str(site)})
    client = AdminClient(str(srv.run_dir))
    assert client.get("status")["server"]["version"] == wasp.__version__
    init = site / "wasp" / "__init__.py"
    init.write_text(init.read_text().replace(f'__version__ = "{wasp.__version__}"',
                                             '__version__ = "99.0.0+upgraded"'))
    old = old_generation(srv)
    srv.cli("upgrade", timeout=120)
    wait_gone(srv, old)
    status = client.get("status")["server"]
    assert status["version"] == "99.0.0+upgraded" and status["pid"] == manager_pid(srv) != old[0]


SLOW_APP = """
import time
time.sleep(5)   # a slow import: the old generation's first worker is still starting at the handover


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello from the slow app"]
"""


def test_a_request_queued_for_a_worker_still_starting_is_answered_across_an_upgrade(wasp_server, tmp_path):
    """The old generation's on-demand worker is still importing its app when the new manager
    takes over: the request the old front queued for it is served by it (it is attached when
    ready), not closed unanswered by a kill of the starting worker."""
    appdir = tmp_path / "slowapp"
    appdir.mkdir()
    (appdir / "slowupgrade.py").write_text(SLOW_APP)
    srv = wasp_server(CONFIG.replace('app = "systemd_app:app"', 'app = "slowupgrade:app"')
                      .replace('python_path = ["{apps}"]', f'python_path = ["{appdir}"]'))
    manager = psutil.Process(srv.proc.pid)
    outcome: list = []

    def get() -> None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=40)
            conn.request("GET", "/")
            response = conn.getresponse()
            outcome.append((response.status, response.read()))
        except Exception as exc:
            outcome.append(repr(exc))

    client = threading.Thread(target=get, daemon=True)
    client.start()
    try:
        # The request started the pool's first worker: wait until it exists, then upgrade.
        srv.wait_until(lambda: any("wasp.worker" in " ".join(c.cmdline())
                                   for c in manager.children(recursive=True)), 20,
                       what="the first worker started")
        old = old_generation(srv)
        srv.cli("upgrade", timeout=120)
        client.join(40)
        assert outcome == [(200, b"Hello from the slow app")], outcome
        wait_gone(srv, old)
    finally:
        client.join(1)
