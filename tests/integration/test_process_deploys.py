"""A broken deploy never takes a healthy pool down; rapid-fail still stops a pool whose serving
workers crash; the worker's own request limit; idle_timeout from the worker's last request.
Real processes, short limits; no timing assertions except "never before its configured time"."""

from __future__ import annotations

import datetime

from process_support import admin, events, get, gone, last_seq, pid_of, pools, process_config, wait_event

GOOD = "import os\n\n\ndef app(environ, start_response):\n" \
       "    start_response('200 OK', [('Content-Type', 'text/plain')])\n" \
       "    return [str(os.getpid()).encode()]\n"
BROKEN = "raise ZeroDivisionError('the deploy is broken')\n"
FIXED = GOOD + "# fixed again (a different size, so no stale .pyc is used)\n"


def deploy_config(appdir, pool_extra: str = "") -> str:
    return process_config(f"""
[[pools]]
name = "P"
start_mode = "always_running"
{pool_extra}

[[sites]]
name = "Site"
id = 1
bindings = ["http/127.0.0.1:{{port}}:"]
[[sites.applications]]
path = "/"
pool = "P"
app = "deployapp:app"
python_path = ["{appdir}"]
""")


def event_time(record: dict) -> float:
    return datetime.datetime.fromisoformat(record["time"].replace("Z", "+00:00")).timestamp()


def test_a_broken_deploy_keeps_the_old_worker_serving_until_it_is_fixed(wasp_server, tmp_path):
    appdir = tmp_path / "deployed"
    appdir.mkdir()
    (appdir / "deployapp.py").write_text(GOOD)
    server = wasp_server(deploy_config(appdir, """
[pools.failure]
rapid_fail_protection_max_crashes = 2
rapid_fail_protection_interval = "5m"
"""))
    first = pid_of(server, "/")
    (appdir / "deployapp.py").write_text(BROKEN)
    result = server.cli("recycle", "pool", "P", check=False, timeout=120)
    assert result.returncode != 0, (result.stdout, result.stderr)
    assert "ZeroDivisionError" in result.stdout + result.stderr
    assert "successfully" not in result.stdout
    assert pid_of(server, "/") == first
    # More failed retries than rapid_fail_protection_max_crashes: the pool stays up.
    wait_event(server, 9021, 60, pool="P", count=3)
    [load_failure] = events(server, 9009, pool="P")[:1]
    assert "ZeroDivisionError" in load_failure["traceback"], load_failure
    assert not events(server, 5002)
    [row] = [r for r in server.list_json("pools") if r["name"] == "P"]
    assert row["state"] == "Started" and row["recycle"].startswith("failing (attempt "), row
    assert "ZeroDivisionError" in row["recycle"]
    text = server.cli("list", "pools").stdout
    assert "recycle:failing" in text, text
    assert pid_of(server, "/") == first
    # Fixed: the next retry starts, the old worker retires and the failure clears.
    (appdir / "deployapp.py").write_text(FIXED)
    server.wait_until(lambda: get(server, "/").text != str(first), 90,
                      what=lambda: f"a new worker after the fix\n{server.diagnostics()}")
    server.wait_until(lambda: gone(first), 30, what=f"the old worker {first} to exit")
    assert pools(server)["P"]["recycle"] == "ok" and pools(server)["P"]["state"] == "Started"
    assert not events(server, 5002)


def test_recycle_pool_waits_for_the_new_worker_and_then_says_so(wasp_server, tmp_path):
    appdir = tmp_path / "deployed"
    appdir.mkdir()
    (appdir / "deployapp.py").write_text(GOOD)
    server = wasp_server(deploy_config(appdir))
    first = pid_of(server, "/")
    result = server.cli("recycle", "pool", "P", timeout=120)
    assert "successfully recycled" in result.stdout
    # The answer came after the replacement was ready: the old worker was told to go already.
    assert [e for e in events(server, 9014) if e["pid"] != first]
    assert pid_of(server, "/") != first


def test_a_pool_whose_serving_workers_crash_is_still_disabled_by_rapid_fail(wasp_server):
    server = wasp_server(process_config("""
[[pools]]
name = "P"
start_mode = "always_running"
[pools.failure]
rapid_fail_protection_max_crashes = 2
rapid_fail_protection_interval = "5m"

[[sites]]
name = "Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "P"
app = "procapp:app"
python_path = ["{procapps}"]
"""))
    for _ in range(2):
        pid_of(server)  # a worker is up and serving
        try:
            get(server, "/crash", timeout=10)
        except Exception:
            pass  # the connection may just close
    wait_event(server, 5002, 30, pool="P")
    assert pools(server)["P"]["state"] == "Disabled"
    assert get(server, "/pid").status_code == 503


def test_the_worker_reports_reaching_its_request_limit(wasp_server):
    """ping_interval is a minute: counted at pings, the recycle would come far too late."""
    server = wasp_server(process_config("""
[[pools]]
name = "P"
start_mode = "always_running"
[pools.process_model]
ping_interval = "60s"
[pools.recycling]
requests = 5

[[sites]]
name = "Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "P"
app = "procapp:app"
python_path = ["{procapps}"]
"""))
    first = pid_of(server)
    for _ in range(3):
        assert pid_of(server) == first
    mark = last_seq(server)
    assert not events(server, 5075)
    assert pid_of(server) == first  # the fifth
    [event] = wait_event(server, 5075, 20, pool="P", after=mark)
    assert event["pid"] == first and event["reason"] == "requests"
    server.wait_until(lambda: gone(first), 30, what=f"the old worker {first} to exit")
    assert pid_of(server) != first  # the sixth, by the new worker


def test_an_idle_worker_stops_after_idle_timeout_without_waiting_for_a_ping(wasp_server):
    server = wasp_server(process_config("""
[[pools]]
name = "P"
[pools.process_model]
idle_timeout = "2s"
ping_interval = "60s"

[[sites]]
name = "Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "P"
app = "procapp:app"
python_path = ["{procapps}"]
"""))
    import time
    sent = time.time()
    pid = pid_of(server)
    [event] = wait_event(server, 5186, 20, pool="P")
    server.wait_until(lambda: gone(pid), 20, what=f"the idle worker {pid} to exit")
    # Never before its time (the event's time has milliseconds, truncated).
    assert event_time(event) + 0.001 >= sent + 2.0, (event, sent)
    assert event["idle_s"] >= 2.0
    # Exited is not yet reaped: the manager drops the row when it reaps the worker.
    def no_worker_listed():
        status, rows = admin(server, "/wp")
        return status == 200 and not [r for r in rows if r["pool"] == "P"]

    server.wait_until(no_worker_listed, 10, what=lambda: admin(server, "/wp"))
