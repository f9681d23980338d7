"""A reverse-DNS lookup for ip_security's domain entries never holds the worker's event loop:
the request that needs a name is pending (IIS's RQ_NOTIFICATION_PENDING) while its lookup runs on
a resolver thread, other requests of the same worker are answered meanwhile, and the pending one
is decided with the forward-confirmed name once the name server answers. The slow name server is
slow_rdns/sitecustomize.py (the lookup of 127.0.0.1 waits for a file the test writes): the test
orders events, it measures no time."""

from __future__ import annotations

import concurrent.futures
import os

import pytest
import requests

CONFIG = """
{pool_timing}
[[pools]]
name = "Dns"

[[sites]]
name = "Dns Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "Dns"
physical_path = "www"

[[locations]]
path = "Dns Site/dns"
[locations.ip_security]
enable_reverse_dns = true
allow_unlisted = false
add = [{ domain_name = "localhost", allowed = true }]
"""


@pytest.fixture
def server(wasp_server, tmp_path):
    for folder in ("dns", "open"):
        (wasp_server.dir / "www" / folder).mkdir(parents=True)
        (wasp_server.dir / "www" / folder / "file.txt").write_text(f"CONTENT-OF:{folder}")
    gate = tmp_path / "gate"
    gate.mkdir()
    hook = os.path.join(os.path.dirname(__file__), "slow_rdns")
    server = wasp_server(CONFIG, env={
        "WASP_SLOW_RDNS": str(gate),
        "PYTHONPATH": os.pathsep.join([hook, str(wasp_server.repo), os.environ.get("PYTHONPATH", "")])})
    server.gate = gate
    return server


def test_a_request_waiting_for_its_name_holds_nobody_else(server):
    url = server.url
    assert requests.get(url + "/open/file.txt", timeout=30).status_code == 200  # the worker is up
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(requests.get, url + "/dns/file.txt", timeout=60)
        try:
            server.wait_until(lambda: (server.gate / "started").exists(), 30,
                              what="the reverse lookup of 127.0.0.1 to start")
            # The worker's loop is free: the same worker serves another request now.
            for _ in range(3):
                r = requests.get(url + "/open/file.txt", timeout=30)
                assert (r.status_code, r.text) == (200, "CONTENT-OF:open")
            assert not pending.done()  # still waiting for its name, not given up on it
        finally:
            (server.gate / "release").write_text("go")
        r = pending.result(timeout=60)
    # Decided with the name the lookup found: 127.0.0.1 -> localhost, forward-confirmed, allowed.
    assert (r.status_code, r.text) == (200, "CONTENT-OF:dns"), r.text[:300]
    # The name stays cached (the next request is decided without a lookup).
    assert requests.get(url + "/dns/file.txt", timeout=30).status_code == 200
