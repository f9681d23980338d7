"""Dynamic IP restrictions count per pool, not per worker: in a web garden of 2 workers a client
with two requests in flight, one on each worker, is at max_concurrent_requests = 2 for the pool
(403.501), where per-worker counts (IIS's) would let it have 2 on each; its request rate is the
pool's too, and a recycle does not reset it."""

from __future__ import annotations

import pytest
import requests
from garden_support import Hold
from process_support import last_seq, wait_event, workers

CONFIG = """
{pool_timing}
[http_errors]
error_mode = "Detailed"

[[pools]]
name = "G"
max_processes = 2
start_mode = "always_running"

[[sites]]
name = "Garden"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "G"
app = "garden_app:app"
python_path = ["{apps}"]
[sites.applications.dynamic_ip_security.deny_by_concurrent_requests]
enabled = true
max_concurrent_requests = 2

[[locations]]
path = "Garden/rate"
[locations.dynamic_ip_security.deny_by_concurrent_requests]
enabled = false
[locations.dynamic_ip_security.deny_by_request_rate]
enabled = true
max_requests = 4
request_interval_ms = 600000
"""


@pytest.fixture
def server(wasp_server):
    server = wasp_server(CONFIG)
    server.wait_until(lambda: len([w for w in workers(server, "G") if w["state"] == "Ready"]) == 2, 30,
                      what=lambda: f"two ready workers\n{server.diagnostics()}")
    return server


def code(r) -> str:
    return f"{r.status_code}.501" if "HTTP Error 403.501" in r.text else \
        f"{r.status_code}.502" if "HTTP Error 403.502" in r.text else str(r.status_code)


def test_requests_in_flight_are_counted_across_the_garden(server):
    first = Hold(server)
    try:
        second = Hold(server)     # the front gives it to the other worker (more free places)
        try:
            assert second.pid != first.pid
            r = requests.get(server.url + "/pid", timeout=30)
            assert code(r) == "403.501", (r.status_code, r.text[:300])
        finally:
            second.release()
    finally:
        first.release()
    assert requests.get(server.url + "/pid", timeout=30).status_code == 200


def test_the_request_rate_is_the_pools_and_outlives_a_recycle(server):
    seen = [code(requests.get(server.url + "/rate/pid", timeout=30)) for _ in range(4)]
    assert seen == ["200"] * 4
    before = {w["pid"] for w in workers(server, "G")}
    mark = last_seq(server)
    server.cli("recycle", "pool", "G")
    wait_event(server, 9014, 30, pool="G", count=2, after=mark)
    server.wait_until(lambda: not before & {w["pid"] for w in workers(server, "G")}
                      and len([w for w in workers(server, "G") if w["state"] == "Ready"]) == 2,
                      30, what=lambda: f"the recycled workers\n{server.diagnostics()}")
    r = requests.get(server.url + "/rate/pid", timeout=30)
    assert code(r) == "403.502", (r.status_code, r.text[:300])
