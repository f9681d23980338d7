"""Supervision as docs/manager.md describes it: the front restarted behind an open port, idle
timeout, request-count recycling, rapid-fail protection, hung workers found by ping, and reloads
that recycle only the pools they change."""

from __future__ import annotations

import os
import signal
import threading

import psutil
import pytest
import requests

ONE_POOL = """
{pool_timing}
[[pools]]
name = "PoolA"
{pool_extra}

[[sites]]
name = "Site A"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "PoolA"
app = "{app}"
python_path = ["{apps}"]
"""


def one_pool(pool_extra: str = "", app: str = "crashy:app") -> str:
    return ONE_POOL.replace("{pool_extra}", pool_extra).replace("{app}", app)


def get(server, path: str = "/pid", timeout: float = 20) -> requests.Response:
    return requests.get(server.url + path, timeout=timeout)


def pid_now(server) -> int:
    r = get(server)
    assert r.status_code == 200, (r.status_code, r.text[:300], server.diagnostics())
    return int(r.text)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_front_killed_is_restarted_behind_an_open_port(wasp_server):
    server = wasp_server(one_pool())
    worker = pid_now(server)
    [front] = server.processes("front")
    results: list[object] = []
    stop = threading.Event()

    def hammer():
        for _ in range(5000):
            if stop.is_set():
                return
            try:
                r = get(server, "/", timeout=20)
                results.append(r.status_code)
            except requests.ConnectionError as exc:
                refused = isinstance(getattr(exc.args[0], "reason", None), ConnectionRefusedError) \
                    or "Connection refused" in str(exc)
                results.append("REFUSED" if refused else "dropped")
            except requests.RequestException as exc:
                results.append(repr(exc))

    thread = threading.Thread(target=hammer, daemon=True)
    thread.start()
    try:
        server.wait_until(lambda: len(results) >= 10, 30, what="load before killing the front")
        front.kill()
        new_front = server.wait_until(
            lambda: [p for p in server.processes("front") if p.pid != front.pid], 30,
            what=lambda: f"a new front\n{server.diagnostics()}")[0]
        mark = len(results)
        server.wait_until(lambda: results[mark:].count(200) >= 20, 30,
                          what=lambda: f"200s after the front restart; saw {results[-10:]}\n{server.diagnostics()}")
    finally:
        stop.set()
        thread.join(30)
    assert "REFUSED" not in results, "the port closed while the front restarted"
    assert new_front.pid != front.pid
    assert pid_now(server) == worker, "the worker was replaced; it should have been re-attached to the new front"
    assert "9006" in server.output(), "no event 9006 for the front's unexpected exit"
    print("outcomes around the front kill:", {k: results.count(k) for k in set(results)})


def test_idle_timeout_stops_the_worker_and_the_next_request_starts_one(wasp_server):
    server = wasp_server(one_pool('[pools.process_model]\nidle_timeout = "2s"'))
    first = pid_now(server)
    server.wait_until(lambda: gone(first), 30, what=lambda: f"worker {first} to stop for idleness\n{server.diagnostics()}")
    assert server.worker_pids("PoolA") == [], "an on_demand pool restarted a worker nobody asked for"
    second = pid_now(server)
    assert second != first
    assert "5186" in server.output(), "no event 5186 for the idle shutdown"


def test_recycling_after_n_requests_loses_nothing(wasp_server):
    server = wasp_server(one_pool("[pools.recycling]\nrequests = 5"))
    pids: list[int] = []
    failures: list[object] = []

    def two_workers_seen():
        try:
            r = get(server)
            if r.status_code == 200:
                pids.append(int(r.text))
            else:
                failures.append(r.status_code)
        except requests.RequestException as exc:
            failures.append(repr(exc))
        return len(set(pids)) >= 2

    server.wait_until(two_workers_seen, 45, interval=0.05,
                      what=lambda: f"a recycle after 5 requests (saw pids {sorted(set(pids))})\n{server.diagnostics()}")
    assert not failures, failures[:5]
    assert "5075" in server.output(), "no event 5075 for the request-count recycle"


@pytest.mark.parametrize("capability", ["http_level", "tcp_level"])
def test_rapid_fail_protection_disables_the_pool(wasp_server, capability):
    server = wasp_server(one_pool(
        "[pools.failure]\nrapid_fail_protection_max_crashes = 2\n"
        f'load_balancer_capabilities = "{capability}"'))
    def live_worker():
        try:
            r = get(server)
        except requests.ConnectionError:
            return None  # caught on the worker just killed: the front closes, as HTTP.sys does
        return r.status_code == 200 and int(r.text)

    for _ in range(2):
        pid = server.wait_until(live_worker, 30, what=lambda: f"a worker to kill\n{server.diagnostics()}")
        os.kill(pid, signal.SIGKILL)
        server.wait_until(lambda: gone(pid), 15, what=f"worker {pid} to die")

    if capability == "http_level":
        seen = []

        def offline():
            # A request caught on the killed worker is a 503 too (Connection_Abandoned_By_AppPool);
            # wait for the pool's own answer, logged as AppOffline.
            try:
                r = get(server, "/")
            except requests.ConnectionError:
                seen.append("closed")
                return False
            seen.append(r.status_code)
            return r.status_code == 503 and "AppOffline" in server.output()

        server.wait_until(offline, 30, interval=0.2,
                          what=lambda: f"503 AppOffline from the disabled pool (saw {seen})\n{server.diagnostics()}")
        assert set(seen) <= {503, "closed"}, seen
    else:
        def closed():
            # "Connection: close" so that a 503 (a request caught in flight on the killed worker,
            # before the pool was disabled) ends the read too; only a close with no answer counts.
            with server.connect(timeout=15) as conn:
                conn.send(server.build_request("GET", "/", {"Connection": "close"}))
                try:
                    data = conn.read_until_close()
                except ConnectionResetError:
                    return True
                return data == b""

        server.wait_until(closed, 30, interval=0.2,
                          what=lambda: f"a closed connection from the disabled tcp_level pool\n{server.diagnostics()}")
    assert "5002" in server.output(), "no event 5002 for rapid-fail protection"
    pools = {row["name"]: row for row in server.list_json("pools")}
    assert pools["PoolA"]["state"] == "Disabled", pools
    server.cli("start", "pool", "PoolA")
    r = get(server, timeout=30)
    assert r.status_code == 200, (r.status_code, r.text[:200], server.diagnostics())


def test_hung_worker_is_replaced_after_ping_response_time(wasp_server):
    server = wasp_server(one_pool(
        '[pools.process_model]\nping_interval = "1s"\nping_response_time = "3s"'))
    hung = pid_now(server)
    os.kill(hung, signal.SIGSTOP)
    try:
        outcomes: list[object] = []

        def replaced():
            try:
                r = get(server, timeout=15)
                outcomes.append(r.status_code)
                return r.status_code == 200 and int(r.text) != hung
            except requests.RequestException as exc:
                outcomes.append(type(exc).__name__)
                return False

        server.wait_until(replaced, 60, interval=0.2,
                          what=lambda: f"a replacement for the hung worker (saw {outcomes[-5:]})\n{server.diagnostics()}")
        server.wait_until(lambda: gone(hung), 30, what=f"the hung worker {hung} to be killed")
    finally:
        try:
            os.kill(hung, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert "5010" in server.output(), "no event 5010 for the unresponsive worker"
    print("requests while the worker hung:", outcomes)


TWO_POOLS = """
{pool_timing}
[[pools]]
name = "PoolA"
threads = {threads}

[[pools]]
name = "PoolB"

[[sites]]
name = "Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "PoolA"
app = "crashy:app"
python_path = ["{apps}"]
[[sites.applications]]
path = "/b"
pool = "PoolB"
app = "crashy:app"
python_path = ["{apps}"]
"""


def test_reload_recycles_only_the_changed_pool(wasp_server):
    server = wasp_server(TWO_POOLS.replace("{threads}", "16"))
    a = pid_now(server)
    b = int(get(server, "/b/pid").text)
    server.config.write_text(wasp_server.expand(TWO_POOLS.replace("{threads}", "8"), server.port))
    server.signal(signal.SIGHUP)
    server.wait_until(lambda: pid_now(server) != a, 30, interval=0.2,
                      what=lambda: f"PoolA recycled after its threads changed\n{server.diagnostics()}")
    assert int(get(server, "/b/pid").text) == b, "PoolB was recycled though its settings did not change"
    out = server.output()
    assert "5080" in out, "no event 5080 for the config-change recycle"
    assert "9004" in out, "no event 9004 for the reload"
