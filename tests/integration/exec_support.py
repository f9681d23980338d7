"""Helpers for the request-execution tests (test_exec_*.py): configs, the event log, clients
that run in the background.

`exec_config(...)` is one pool serving one app of `exec_apps/` at "/", with short process-model
timings; the `wasp_server` fixture then fills in `{port}` and `{dir}`. The apps read
$EXEC_RELEASE (a file that lets blocked requests go) and $EXEC_CANCELLED (a file an ASGI request
writes when its task is cancelled), both in the server's folder.
"""

from __future__ import annotations

import pathlib
import threading

import requests

import process_support
from process_support import events, gone  # noqa: F401  (the test_exec_* modules import them from here)

EXEC_APPS = pathlib.Path(__file__).resolve().parent / "exec_apps"


def exec_config(app: str, *, threads: int = 4, execution_timeout: str = "0s",
                ping_interval: str = "0.5s", ping_response_time: str = "10s") -> str:
    return f"""
[pool_defaults]
[pool_defaults.process_model]
idle_timeout = "0s"
ping_interval = "{ping_interval}"
ping_response_time = "{ping_response_time}"
startup_time_limit = "20s"
shutdown_time_limit = "5s"

[[pools]]
name = "P"
start_mode = "always_running"
threads = {threads}
environment_variables = {{ EXEC_RELEASE = "{{dir}}/release", EXEC_CANCELLED = "{{dir}}/cancelled" }}

[[sites]]
name = "Site"
id = 1
bindings = ["http/127.0.0.1:{{port}}:"]
[[sites.applications]]
path = "/"
pool = "P"
app = "{app}"
python_path = ["{EXEC_APPS}"]
execution_timeout = "{execution_timeout}"
"""


def get(server, path: str, timeout: float = 30) -> requests.Response:
    return requests.get(server.url + path, timeout=timeout)


def pid_of(server) -> int:
    r = get(server, "/pid")
    assert r.status_code == 200, (r.status_code, r.text[:300], server.diagnostics())
    return int(r.text)


def wait_event(server, event_id: int, timeout: float = 30) -> dict:
    """The first event `event_id` in the server's event log, once there is one."""
    return process_support.wait_event(server, event_id, timeout)[0]


def in_background(server, path: str, timeout: float = 60) -> dict:
    """GET `path` on a daemon thread; the returned dict gets `status` (or `error`) when it ends."""
    outcome: dict = {}

    def run():
        try:
            outcome["status"] = get(server, path, timeout=timeout).status_code
        except requests.RequestException as exc:
            outcome["error"] = type(exc).__name__

    threading.Thread(target=run, daemon=True).start()
    return outcome
