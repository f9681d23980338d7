"""A site's `health_url`, answered by the front from pool state for load balancers: 200 while
every pool of the site is Started, 503 when one is stopped and while the server drains; no
worker involved or started."""

from __future__ import annotations

import http.client
import re
import signal
import subprocess
import threading

import requests

from process_support import PROCAPPS, process_config

CONFIG = process_config(f"""
[[pools]]
name = "Front"
start_mode = "always_running"

[[pools]]
name = "Lazy"
start_mode = "on_demand"

[[sites]]
name = "Site"
id = 1
bindings = ["http/127.0.0.1:{{port}}:"]
health_url = "/healthz"
[[sites.applications]]
path = "/"
pool = "Front"
app = "procapp:app"
python_path = ["{PROCAPPS}"]
[[sites.applications]]
path = "/lazy"
pool = "Lazy"
app = "procapp:app"
python_path = ["{PROCAPPS}"]

[[sites]]
name = "Other"
id = 2
bindings = ["http/127.0.0.1:{{port}}:other.test"]
[[sites.applications]]
path = "/"
pool = "Front"
app = "procapp:app"
python_path = ["{PROCAPPS}"]
""")


def health(server, path="/healthz", method="GET", host=None):
    headers = {"Host": host} if host else {}
    return requests.request(method, server.url + path, headers=headers, timeout=20)


def test_the_front_answers_the_health_url_without_a_worker(wasp_server):
    server = wasp_server(CONFIG)
    r = health(server)
    assert (r.status_code, r.text) == (200, "OK\n"), (r.status_code, r.text[:300])
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["Content-Type"].startswith("text/plain")
    assert health(server, "/HealthZ").status_code == 200          # IIS compares URLs without case
    head = health(server, method="HEAD")
    assert head.status_code == 200 and head.content == b""
    assert health(server, method="POST").status_code == 405
    # The on-demand pool was not started by it, and no worker saw it.
    assert not server.worker_pids("Lazy"), server.cli("list", "wp").stdout
    # Only the site that asks for one has it: the other site's app gets the path.
    assert health(server, host="other.test").status_code == 404
    assert health(server, "/healthz/more").status_code == 404     # the exact path only
    # Over HTTP/2 (h2c with prior knowledge) too.
    out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-w", "\n%{http_code} %{http_version}",
                          server.url + "/healthz"], capture_output=True, text=True, timeout=30)
    assert out.stdout == "OK\n\n200 2", (out.stdout, out.stderr)
    # In the W3C log like any request.
    server.wait_until(lambda: any("/healthz" in line and " 200 " in line for line in _log(server)), 30,
                      what=lambda: "the health request in the W3C log\n" + "\n".join(_log(server)))


def test_a_stopped_pool_makes_the_site_unhealthy(wasp_server):
    server = wasp_server(CONFIG)
    assert health(server).status_code == 200
    server.cli("stop", "pool", "Lazy")
    [r] = server.wait_until(lambda: [r for r in [health(server)] if r.status_code == 503], 30,
                            what="503 from the health URL after stop pool")
    assert "Service Unavailable" in r.text
    server.cli("start", "pool", "Lazy")
    server.wait_until(lambda: health(server).status_code == 200, 30, what="200 after start pool")


def test_the_health_url_turns_503_for_the_shutdown_delay_while_the_rest_is_served(wasp_server, tmp_path):
    server = wasp_server(CONFIG.replace("[[pools]]", '[server]\nshutdown_delay = "10s"\n\n[[pools]]', 1))
    mark, release = tmp_path / "held", tmp_path / "release"
    assert health(server).status_code == 200
    # A request in flight when the stop begins: it finishes, as the others are served.
    held = threading.Thread(target=lambda: requests.get(
        f"{server.url}/hold?mark={mark}&release={release}", timeout=60), daemon=True)
    held.start()
    server.wait_until(mark.exists, 30, what="the held request to start")
    try:
        server.proc.send_signal(signal.SIGTERM)
        # A load balancer's next check, on a new connection: the port still accepts.
        [r] = server.wait_until(lambda: [r for r in [health(server)] if r.status_code == 503], 30,
                                what="503 from the health URL once the stop began")
        assert "Service Unavailable" in r.text
        assert requests.get(server.url + "/pid", timeout=20).status_code == 200  # still served
        assert server.proc.poll() is None
    finally:
        release.touch()
        held.join(30)
    assert not held.is_alive()
    # Once the delay is over the ports close and the server stops by itself.
    server.wait_until(lambda: server.proc.poll() is not None, 60, what="the server to stop")
    # The HTTPERR line (IIS's reason for a 503 of an application shutting down), once written.
    server.wait_until(lambda: re.search(r"/healthz - 503 \d+ AppShutdown", _httperr(server)), 60,
                      what=lambda: "the HTTPERR line\n" + _httperr(server))


def _httperr(server) -> str:
    return "\n".join(p.read_text() for p in (server.logs / "httperr").glob("*.log"))


def test_without_a_shutdown_delay_a_stop_closes_the_ports_at_once(wasp_server):
    server = wasp_server(CONFIG)
    checker = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    checker.request("GET", "/healthz")
    assert checker.getresponse().read() == b"OK\n"
    server.proc.send_signal(signal.SIGTERM)
    server.wait_until(lambda: server.proc.poll() is not None, 60, what="the server to stop")
    checker.close()


def _log(server) -> list[str]:
    return [line for p in (server.logs / "W3SVC1").glob("*.log") for line in p.read_text().splitlines()]
