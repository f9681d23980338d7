"""Health: a worker whose event loop is blocked misses its pings and is replaced (5010); a worker
not ready within startup_time_limit is killed and counts as a failure (9008); rapid-fail
protection stops a pool (5002, 503 AppOffline, auto_shutdown_exe) and `wasp start pool` brings it
back; a crash-looping pool does not disturb another pool; orphan_worker_process leaves a failing
worker running and runs orphan_action_exe (9015)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import threading
import time

import requests

from process_support import (
    Load, events, get, gone, one_pool, percentiles, pid_of, pools, process_config, wait_event,
)

def recorder(folder, target) -> str:
    """A command line (as a TOML string) that writes its last argument (%1%) into `target`."""
    script = folder / "record.py"
    script.write_text("import pathlib, sys\npathlib.Path(sys.argv[1]).write_text(sys.argv[2])\n")
    return json.dumps(shlex.join([sys.executable, str(script), str(target)]) + " %1%")


FAST_PING = '[pools.process_model]\nping_interval = "0.5s"\nping_response_time = "1.5s"'


def _block_in_background(server, seconds: int = 30) -> dict:
    outcome: dict = {}

    def run():
        try:
            outcome["status"] = get(server, f"/block?s={seconds}", timeout=60).status_code
        except requests.RequestException as exc:
            outcome["error"] = type(exc).__name__

    threading.Thread(target=run, daemon=True).start()
    return outcome


def test_blocked_event_loop_misses_pings_and_is_replaced(wasp_server):
    server = wasp_server(one_pool('start_mode = "always_running"\n' + FAST_PING, app="procasgi:app"))
    hung = pid_of(server)
    outcome = _block_in_background(server)
    [event] = wait_event(server, 5010, 15, pool="P")
    assert event["pid"] == hung
    server.wait_until(lambda: gone(hung), 10, what="the hung worker to be killed")
    assert pid_of(server) != hung
    server.wait_until(lambda: outcome, 15, what="an answer for the request on the hung worker")
    print("\nthe request on the hung worker got:", outcome)


def test_worker_with_every_thread_stuck_misses_pings_and_is_replaced(wasp_server, tmp_path):
    """A WSGI worker answers pings from its request threads, so with every thread stuck it misses
    them, as IIS's w3wp does."""
    server = wasp_server(one_pool('start_mode = "always_running"\nthreads = 2\n' + FAST_PING))
    stuck = pid_of(server)
    marks = [tmp_path / f"stuck-{n}" for n in range(2)]
    for mark in marks:
        threading.Thread(target=lambda m=mark: _quiet_get(server, f"/slow?s=30&mark={m}"), daemon=True).start()
    server.wait_until(lambda: all(m.exists() for m in marks), 15, what="both threads to be busy")
    [event] = wait_event(server, 5010, 15, pool="P")
    assert event["pid"] == stuck
    server.wait_until(lambda: gone(stuck), 10, what="the stuck worker to be killed")
    assert pid_of(server) != stuck


def _quiet_get(server, path: str) -> None:
    try:
        get(server, path, timeout=60)
    except requests.RequestException:
        pass


def test_startup_time_limit_kills_and_counts_towards_rapid_fail(wasp_server):
    server = wasp_server(one_pool(
        'environment_variables = { PROCAPP_IMPORT_SLEEP = "30" }\n'
        '[pools.process_model]\nstartup_time_limit = "1s"\n'
        '[pools.failure]\nrapid_fail_protection_max_crashes = 2'))
    r = get(server, "/pid", timeout=30)  # starts a worker on demand; waits in the queue
    assert r.status_code == 503, (r.status_code, r.text[:200])
    assert len(events(server, 9008, pool="P")) == 2
    assert events(server, 5002, pool="P")
    assert pools(server)["P"]["state"] == "Disabled"
    killed = [e["pid"] for e in events(server, 9008)]
    assert all(gone(pid) for pid in killed)


def test_rapid_fail_stops_the_pool_runs_auto_shutdown_exe_and_start_brings_it_back(wasp_server):
    flag = wasp_server.dir / "auto-shutdown-ran"
    server = wasp_server(one_pool(
        "[pools.failure]\nrapid_fail_protection_max_crashes = 3\n"
        'rapid_fail_protection_interval = "1m"\n'
        f"auto_shutdown_exe = {recorder(wasp_server.dir, flag)}"))
    for _ in range(3):
        server.wait_until(lambda: pid_of(server), 20, what="a worker to crash")
        try:
            get(server, "/crash")
        except requests.RequestException:
            pass
    [event] = wait_event(server, 5002, 15, pool="P")
    assert len(events(server, 5009, pool="P")) == 3
    r = get(server, "/pid")
    assert r.status_code == 503
    server.wait_until(lambda: "AppOffline" in server.output(), 10, what="HTTPERR reason AppOffline")
    assert pools(server)["P"]["state"] == "Disabled"
    server.wait_until(flag.exists, 10, what="auto_shutdown_exe to run")
    assert flag.read_text() == "P"
    lines = server.cli("list", "pools").stdout
    assert 'APPPOOL "P" (workers:0,queue:0,state:Disabled)' in lines, lines
    server.cli("start", "pool", "P")
    assert pid_of(server) > 0
    assert pools(server)["P"]["state"] == "Started"


TWO_POOLS = """
[[pools]]
name = "Healthy"
start_mode = "always_running"

[[pools]]
name = "Looping"
start_mode = "always_running"
max_processes = 2
[pools.failure]
rapid_fail_protection = false

[[sites]]
name = "Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "Healthy"
app = "procapp:app"
python_path = ["{procapps}"]
[[sites.applications]]
path = "/bad"
pool = "Looping"
app = "procapp:app"
python_path = ["{procapps}"]
"""


def test_crash_looping_pool_does_not_disturb_the_healthy_pool(wasp_server):
    server = wasp_server(process_config(TWO_POOLS))
    pid_of(server)
    pid_of(server, "/bad/pid")
    with Load(server, "/pid", threads=1) as baseline:
        time.sleep(2)  # a measurement period, not a condition
    stop = threading.Event()

    def crash_loop():
        session = requests.Session()
        while not stop.is_set():
            try:
                session.get(server.url + "/bad/crash", timeout=10)
            except requests.RequestException:
                pass

    loopers = [threading.Thread(target=crash_loop, daemon=True) for _ in range(2)]
    for looper in loopers:
        looper.start()
    try:
        server.wait_until(lambda: len(events(server, 5009, pool="Looping")) >= 3, 20,
                          what=lambda: f"the looping pool to crash\n{server.diagnostics()}")
        with Load(server, "/pid", threads=1) as during:
            time.sleep(4)
    finally:
        stop.set()
        for looper in loopers:
            looper.join(15)
    crashed = len(events(server, 5009, pool="Looping"))
    print(f"\nhealthy pool alone:        {percentiles(baseline.latencies)}"
          f"\nwhile the other crash-loops ({crashed} crashes): {percentiles(during.latencies)}")
    assert set(baseline.outcomes) == {200} and set(during.outcomes) == {200}, \
        (dict(baseline.outcomes), dict(during.outcomes), during.errors[:5])
    assert crashed >= 3


def test_orphaned_worker_is_left_running_and_the_action_runs(wasp_server):
    record = wasp_server.dir / "orphan-pid"
    server = wasp_server(one_pool(
        'start_mode = "always_running"\n' + FAST_PING + "\n[pools.failure]\n"
        f"orphan_worker_process = true\norphan_action_exe = {recorder(wasp_server.dir, record)}",
        app="procasgi:app"))
    hung = pid_of(server)
    try:
        _block_in_background(server, seconds=60)
        [event] = wait_event(server, 9015, 15, pool="P")
        assert event["pid"] == hung and event["reason"] == "ping"
        assert events(server, 5010, pool="P")
        server.wait_until(record.exists, 10, what="orphan_action_exe to run")
        assert record.read_text() == str(hung)
        assert pid_of(server) != hung  # a replacement serves the pool
        time.sleep(1)
        assert not gone(hung), "the orphaned worker was killed"
        assert hung not in [row["pid"] for row in server.list_json("wp")]
    finally:
        try:
            os.kill(hung, signal.SIGKILL)
        except ProcessLookupError:
            pass
