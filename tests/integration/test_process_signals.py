"""Signals as service managers send them: SIGTERM to the whole process group (systemd's default
KillMode, GNU `timeout`) drains gracefully, and repeating it does not escalate; only SIGQUIT or
SIGINT twice (Ctrl-C twice) stop at once. No child outlives a manager killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest
import requests

from process_support import gone, one_pool, pid_of


def slow_request(server, seconds: float, timeout: float = 60) -> dict:
    """Start GET /slow?s=seconds in a thread; the dict gets "status" or "error" when it ends."""
    result: dict = {}

    def run():
        try:
            result["status"] = requests.get(f"{server.url}/slow?s={seconds}", timeout=timeout).status_code
        except requests.RequestException as exc:
            result["error"] = repr(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    result["thread"] = thread
    return result


def in_flight(server) -> bool:
    status, rows = _requests(server)
    return status == 200 and any("/slow" in str(r.get("url", "")) for r in rows)


def _requests(server):
    from process_support import admin
    try:
        return admin(server, "/requests", timeout=5)
    except OSError:
        return 0, []


def started(wasp_server):
    server = wasp_server(one_pool('start_mode = "always_running"'))
    pid_of(server)
    server.remember_children()
    children = [p.pid for p in server.children()]
    assert children, server.diagnostics()
    return server, children


@pytest.mark.parametrize("times", [1, 2])
def test_sigterm_to_the_process_group_drains_the_request_in_flight(wasp_server, times):
    server, children = started(wasp_server)
    pending = slow_request(server, 3)
    server.wait_until(lambda: in_flight(server), 20, what="the slow request in flight")
    pgid = os.getpgid(server.proc.pid)
    assert pgid == server.proc.pid  # the fixture's own session: the group is the server's tree
    for _ in range(times):
        os.killpg(pgid, signal.SIGTERM)
        time.sleep(0.2)
    pending["thread"].join(60)
    assert pending.get("status") == 200, (pending, server.diagnostics())
    assert server.proc.wait(60) == 0, server.diagnostics()
    server.wait_until(lambda: all(gone(pid) for pid in children), 30, what="every child to exit")


@pytest.mark.parametrize("how", ["sigquit", "sigint_twice"])
def test_sigquit_or_sigint_twice_stops_at_once(wasp_server, how):
    server, children = started(wasp_server)
    pending = slow_request(server, 40)
    server.wait_until(lambda: in_flight(server), 20, what="the slow request in flight")
    if how == "sigquit":
        server.proc.send_signal(signal.SIGQUIT)
    else:
        os.killpg(server.proc.pid, signal.SIGINT)
        time.sleep(0.2)
        os.killpg(server.proc.pid, signal.SIGINT)
    try:
        code = server.proc.wait(30)  # well before the 40 s request could have finished
    except subprocess.TimeoutExpired:
        pytest.fail(f"{how} did not stop the server at once\n{server.diagnostics()}")
    assert code == 0
    server.wait_until(lambda: all(gone(pid) for pid in children), 30, what="every child to exit")
    pending["thread"].join(60)
    assert pending.get("status") != 200, pending


def test_no_child_outlives_a_manager_killed_with_sigkill(wasp_server):
    server, children = started(wasp_server)
    server.proc.kill()
    server.proc.wait(10)
    server.wait_until(lambda: all(gone(pid) for pid in children), 30,
                      what=lambda: f"the children {children} to exit after the manager died")
