"""Two sites on one port told apart by Host, each in its own pool; a killed worker is replaced
while the other pool keeps answering."""

from __future__ import annotations

import os
import signal
import threading

import psutil
import requests


CONFIG = """
{pool_timing}
[[pools]]
name = "PoolA"

[[pools]]
name = "PoolB"

[[sites]]
name = "Site A"
id = 1
bindings = ["http/127.0.0.1:{port}:a.test"]
[[sites.applications]]
path = "/"
pool = "PoolA"
app = "crashy:app"
python_path = ["{apps}"]

[[sites]]
name = "Site B"
id = 2
bindings = ["http/127.0.0.1:{port}:b.test"]
[[sites.applications]]
path = "/"
pool = "PoolB"
app = "crashy:app"
python_path = ["{apps}"]
"""


def get(server, host: str, path: str = "/pid", timeout: float = 30) -> requests.Response:
    return requests.get(server.url + path, headers={"Host": host}, timeout=timeout)


def pid_of(server, host: str) -> int:
    response = get(server, host)
    assert response.status_code == 200, (host, response.status_code, response.text[:300], server.diagnostics())
    return int(response.text)


def test_host_header_picks_the_site_and_its_pool(wasp_server):
    server = wasp_server(CONFIG)
    a = pid_of(server, "a.test")
    b = pid_of(server, "b.test")
    assert a != b, "sites A and B were served by the same process"
    assert a != server.proc.pid and b != server.proc.pid
    # Host matching ignores the port and the case, like HTTP.sys.
    assert pid_of(server, f"a.test:{server.port}") == a
    assert pid_of(server, "B.TEST") == b
    # Same pool, same worker (max_processes = 1).
    assert pid_of(server, "a.test") == a


def test_unknown_host_is_400_invalid_hostname(wasp_server):
    server = wasp_server(CONFIG)
    response = get(server, "c.test", "/")
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert "Invalid Hostname" in response.text


def test_exception_out_of_a_wsgi_app_is_500_and_the_worker_lives(wasp_server):
    server = wasp_server(CONFIG)
    before = pid_of(server, "a.test")
    response = get(server, "a.test", "/raise")
    assert response.status_code == 500, (response.status_code, response.text[:300])
    assert "crashy: raised" not in response.text, "the traceback leaked to the client"
    assert pid_of(server, "a.test") == before


def test_kill_9_of_one_worker_leaves_the_other_pool_serving(wasp_server):
    server = wasp_server(CONFIG)
    old_a = pid_of(server, "a.test")
    pid_of(server, "b.test")

    stop = threading.Event()
    b_results: list[object] = []

    def hammer_b():
        for _ in range(20000):
            if stop.is_set():
                return
            try:
                r = get(server, "b.test", timeout=15)
                b_results.append(r.status_code if r.status_code != 200 else int(r.text))
            except requests.RequestException as exc:
                b_results.append(repr(exc))

    thread = threading.Thread(target=hammer_b, daemon=True)
    thread.start()
    try:
        server.wait_until(lambda: len(b_results) >= 20, 30, what="B answering before the kill")
        os.kill(old_a, signal.SIGKILL)

        seen_a: list[object] = []

        def a_is_back():
            try:
                r = get(server, "a.test", timeout=15)
            except requests.RequestException as exc:
                seen_a.append(repr(exc))
                return False
            seen_a.append(r.status_code)
            return r.status_code == 200 and int(r.text) != old_a and int(r.text)

        new_a = server.wait_until(a_is_back, 45, interval=0.1,
                           what=lambda: f"pool A to serve again after kill -9; saw {seen_a[-10:]}\n{server.diagnostics()}")
        count_at_recovery = len(b_results)
        server.wait_until(lambda: len(b_results) >= count_at_recovery + 20, 30, what="B answering after the kill")
    finally:
        stop.set()
        thread.join(30)

    b_failures = [r for r in b_results if not isinstance(r, int)]
    assert not b_failures, f"pool B failed while pool A's worker was killed: {b_failures[:10]}"
    assert new_a != old_a
    # The manager reaps its dead child (no zombie left behind).
    def reaped():
        try:
            return psutil.Process(old_a).status() != psutil.STATUS_ZOMBIE  # else the PID was reused
        except psutil.NoSuchProcess:
            return True
    server.wait_until(reaped, 15, what=lambda: f"the killed worker {old_a} to be reaped")
    print(f"pool A statuses while recovering: {seen_a}")


def test_kill_9_with_a_request_in_flight_answers_or_closes_but_never_hangs(wasp_server, tmp_path):
    server = wasp_server(CONFIG.replace('app = "crashy:app"', 'app = "flask_app:app"', 1))
    old = int(get(server, "a.test").text)
    mark = tmp_path / "in-flight"
    outcome: dict[str, object] = {}

    def slow():
        try:
            r = get(server, "a.test", f"/slow?s=30&mark={mark}", timeout=25)
            outcome["status"] = r.status_code
        except requests.ReadTimeout as exc:
            outcome["hung"] = repr(exc)
        except requests.RequestException as exc:
            outcome["closed"] = repr(exc)

    thread = threading.Thread(target=slow, daemon=True)
    thread.start()
    server.wait_until(mark.exists, 30, what="the slow request to reach the app")
    os.kill(old, signal.SIGKILL)
    thread.join(40)
    assert "hung" not in outcome, f"the in-flight request hung after its worker died: {outcome}"
    assert outcome.get("status", 502) >= 500, outcome
    print("in-flight request on a killed worker:", outcome)
    r = server.wait_until(lambda: [get(server, "a.test")], 45, what="pool A after the kill")[0]
    assert r.status_code == 200 and int(r.text) != old, (r.status_code, r.text[:200])
