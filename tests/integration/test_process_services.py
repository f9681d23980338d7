"""Non-HTTP activation (WAS listener adapters, docs/services.md): tcp pools on real processes.

The manager binds a tcp pool's port, starts its worker on the first connection and hands it the
listening socket; recycling, idle timeout and rapid-fail protection are the HTTP pools'. Every
service here answers a line with "PID line", so a test sees which worker served a connection."""

from __future__ import annotations

import socket

import psutil
from process_support import PROCAPPS, events, gone, process_config, wait_event

SITE = """
[[pools]]
name = "Web"

[[sites]]
name = "Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "Web"
app = "procapp:app"
python_path = ["{procapps}"]
"""


def service_config(port: int, app: str, pool_extra: str = "", name: str = "Echo",
                   binding: str | None = None) -> str:
    return process_config(SITE + f"""
[[pools]]
name = "{name}"
protocol = "tcp"
{pool_extra}
[pools.service]
bindings = ["{binding or f'net.tcp/127.0.0.1:{port}'}"]
app = "{app}"
python_path = ["{{procapps}}"]
""")


class Client:
    """One connection to a line service."""

    def __init__(self, port: int | str):
        if isinstance(port, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(30)
            self.sock.connect(port)
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.file = self.sock.makefile("rb")

    def ask(self, text: str) -> tuple[int, str]:
        self.sock.sendall(text.encode() + b"\n")
        line = self.file.readline()
        assert line.endswith(b"\n"), line
        pid, _, echoed = line.decode().rstrip("\n").partition(" ")
        return int(pid), echoed

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def worker_pids(server, pool: str) -> list[int]:
    return [row["pid"] for row in server.list_json("wp") if row["pool"] == pool]


def listens(pid: int) -> bool:
    try:
        return any(c.status == psutil.CONN_LISTEN for c in psutil.Process(pid).net_connections("tcp"))
    except psutil.NoSuchProcess:
        return False


def test_the_first_connection_starts_the_worker_of_an_asyncio_protocol(wasp_server):
    port = wasp_server.free_port()
    server = wasp_server(service_config(port, "services:LineEcho"))
    assert not events(server, 9013, pool="Echo")  # on demand: nothing runs before a connection
    assert worker_pids(server, "Echo") == []
    client = Client(port)
    try:
        pid, echoed = client.ask("hello")
        assert echoed == "hello"
        assert client.ask("twice") == (pid, "twice")
    finally:
        client.close()
    [started] = events(server, 9013, pool="Echo")
    assert started["pid"] == pid and worker_pids(server, "Echo") == [pid]
    # The worker took the manager's socket: it listens on it, the manager still does too.
    assert listens(pid)
    assert listens(server.proc.pid)


def test_a_recycle_keeps_old_connections_on_the_old_worker_and_new_ones_go_to_the_new(wasp_server):
    port = wasp_server.free_port()
    server = wasp_server(service_config(port, "services:socket_echo", 'start_mode = "always_running"'))
    wait_event(server, 9014, pool="Echo")
    clients = [Client(port) for _ in range(3)]
    try:
        [old] = {c.ask("before")[0] for c in clients}
        server.cli("recycle", "pool", "Echo", timeout=60)
        wait_event(server, 9014, pool="Echo", count=2)
        [new] = [p for p in worker_pids(server, "Echo") if p != old]
        # The old worker has closed its copy of the listening socket: it takes no new connection.
        server.wait_until(lambda: not listens(old), 30, what="the old worker to stop listening")
        for _ in range(5):
            fresh = Client(port)
            try:
                assert fresh.ask("after") == (new, "after")
            finally:
                fresh.close()
        # The old connections are still served by the old worker, which waits for them.
        for c in clients:
            assert c.ask("still here") == (old, "still here")
        assert not gone(old)
        assert not events(server, 9016, pool="Echo")
    finally:
        for c in clients:
            c.close()
    # Their clients gone, the old worker exits by itself (long before shutdown_time_limit's kill).
    wait_event(server, 9016, pool="Echo", timeout=30)
    server.wait_until(lambda: gone(old), 30, what=f"the old worker {old} to exit")
    assert not events(server, 5013, pool="Echo")
    assert worker_pids(server, "Echo") == [new]


def test_idle_timeout_stops_the_worker_and_the_next_connection_starts_another(wasp_server, tmp_path):
    path = str(tmp_path / "echo.sock")
    server = wasp_server(service_config(0, "services:stream_echo", """
[pools.process_model]
idle_timeout = "1s"
""", binding=f"net.pipe/unix:{path}"))
    client = Client(path)
    try:
        first, echoed = client.ask("one")
        assert echoed == "one"
    finally:
        client.close()
    [idle] = wait_event(server, 5186, pool="Echo", timeout=30)
    assert idle["pid"] == first
    server.wait_until(lambda: gone(first), 30, what="the idle worker to exit")
    client = Client(path)
    try:
        second, echoed = client.ask("two")
    finally:
        client.close()
    assert echoed == "two" and second != first
    assert len(events(server, 9013, pool="Echo")) == 2


def test_a_service_that_fails_to_load_trips_rapid_fail_and_connections_are_closed(wasp_server):
    port = wasp_server.free_port()
    server = wasp_server(service_config(port, "broken_service:factory", """
[pools.failure]
rapid_fail_protection_max_crashes = 2
rapid_fail_protection_interval = "5m"
"""))
    # The first connection starts a worker; it fails to import, again, and the pool is disabled.
    waiting = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        [disabled] = wait_event(server, 5002, pool="Echo", timeout=60)
        failures = events(server, 9009, pool="Echo")
        assert len(failures) == 2 and "broken_service cannot be imported" in failures[0]["traceback"]
        # The connection that waited is closed by the manager, not left hanging.
        assert waiting.recv(100) == b""
    finally:
        waiting.close()
    [row] = [r for r in server.list_json("pools") if r["name"] == "Echo"]
    assert row["state"] == "Disabled"
    later = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        later.sendall(b"anyone?\n")
        try:
            assert later.recv(100) == b""
        except ConnectionResetError:
            pass  # closed with data unread: a reset is a closed connection too
    finally:
        later.close()
    assert len(events(server, 9013, pool="Echo")) == 2  # no worker started for it
    # `wasp start pool` brings it back: the next connection tries a worker again.
    server.cli("start", "pool", "Echo")
    again = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        wait_event(server, 9013, pool="Echo", count=3, timeout=60)
    finally:
        again.close()


def test_a_factory_that_raises_closes_that_connection_and_the_worker_stays(wasp_server):
    port = wasp_server.free_port()
    server = wasp_server(service_config(port, "services:factory_that_crashes"))
    for _ in range(3):
        client = socket.create_connection(("127.0.0.1", port), timeout=30)
        try:
            assert client.recv(100) == b""
        finally:
            client.close()
    assert len(events(server, 9013, pool="Echo")) == 1
    assert not events(server, 5009, pool="Echo")


def test_past_max_concurrent_requests_connections_wait_in_the_backlog(wasp_server):
    port = wasp_server.free_port()
    server = wasp_server(service_config(port, "services:LineEcho", "max_concurrent_requests = 1"))
    first = Client(port)
    waiting = Client(port)
    try:
        pid, _ = first.ask("one")
        waiting.sock.sendall(b"two\n")
        # Two pongs later the worker has still accepted one connection only, and "two" is unread.
        seen = []

        def served_twice():
            rows = [r for r in server.list_json("wp") if r["pool"] == "Echo"]
            seen.append(rows[0]["requests"] if rows else None)
            return len([s for s in seen if s is not None]) >= 6

        server.wait_until(served_twice, 30, interval=0.25, what="pongs")
        assert seen[-1] == 1, seen
        waiting.sock.setblocking(False)
        try:
            data = waiting.sock.recv(100)
        except BlockingIOError:
            data = None  # nothing yet: as it should be
        assert data is None, f"answered or closed past the limit: {data!r}"
        waiting.sock.setblocking(True)
        waiting.sock.settimeout(30)
        first.close()
        # The slot is free: the waiting connection is accepted and answered.
        line = waiting.file.readline()
        assert line == f"{pid} two\n".encode()
    finally:
        first.close()
        waiting.close()


def test_a_reload_binds_a_new_service_and_a_port_in_use_is_rejected(wasp_server):
    port, second = wasp_server.free_port(), wasp_server.free_port()
    server = wasp_server(service_config(port, "services:LineEcho"))
    text = server.config.read_text()
    extra = f"""
[[pools]]
name = "Two"
protocol = "tcp"
[pools.service]
bindings = ["net.tcp/127.0.0.1:{second}"]
app = "services:stream_echo"
python_path = ["{PROCAPPS}"]
"""
    server.config.write_text(text + extra)
    server.cli("reload")
    client = Client(second)
    try:
        assert client.ask("new")[1] == "new"
    finally:
        client.close()
    # A port someone else holds: the reload is rejected and the running services keep serving.
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        busy = taken.getsockname()[1]
        server.config.write_text(text + extra.replace(str(second), str(busy)))
        result = server.cli("reload", check=False)
        assert result.returncode != 0 and str(busy) in result.stdout + result.stderr, result
    finally:
        taken.close()
    for target in (port, second):
        client = Client(target)
        try:
            assert client.ask("still")[1] == "still"
        finally:
            client.close()


def test_a_tcp_pool_survives_wasp_upgrade_on_the_same_socket(wasp_server):
    """`wasp upgrade` hands the tcp pool's listening socket to the new generation (named
    upgrade-tcp): the new manager does not try to bind the port the old one holds, a connection
    made before the upgrade is still answered by the old worker while it drains, and new
    connections are served by the new generation's worker."""
    port = wasp_server.free_port()
    server = wasp_server(service_config(port, "services:LineEcho"))
    before = Client(port)
    try:
        old_pid, echoed = before.ask("one")
        assert echoed == "one"
        old_manager = server.proc.pid
        result = server.cli("upgrade", timeout=120)
        new_manager = int((server.run_dir / "wasp.pid").read_text())
        assert new_manager != old_manager and f"-> {new_manager}" in result.stdout
        assert before.ask("two") == (old_pid, "two")      # still served while the old drains
        after = Client(port)
        try:
            new_pid, echoed = after.ask("three")
            assert echoed == "three" and new_pid != old_pid
            assert psutil.Process(new_pid).ppid() == new_manager
        finally:
            after.close()
    finally:
        before.close()
