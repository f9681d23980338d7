"""/metrics on a real server: the admin API's GET /metrics and the front's metrics.url, checked
by Debian's `promtool check metrics`, counted right across a recycle and a crash, and scraped by a
real Prometheus server that then answers a query about wasp through its HTTP API."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse

import psutil
import pytest
import requests

from process_support import PROCAPPS, process_config

SITE_NAME = 'Main "site" \\ one'   # a quote and a backslash: label escaping on a real scrape

CONFIG = process_config(f"""
[metrics]
url = "/metrics"

[[pools]]
name = "P"
start_mode = "always_running"

[[pools]]
name = "Idle"
start_mode = "on_demand"

[[sites]]
name = {json.dumps(SITE_NAME)}
id = 1
bindings = ["http/127.0.0.1:{{port}}:"]
[[sites.applications]]
path = "/"
pool = "P"
app = "procapp:app"
python_path = ["{PROCAPPS}"]
[[sites.applications]]
path = "/idle"
pool = "Idle"
app = "procapp:app"
python_path = ["{PROCAPPS}"]
""")

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> dict[tuple, float]:
    """{(name, ((label, value), ...)): value} of an exposition (values unescaped)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, line
        labels = tuple((k, v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\"))
                       for k, v in LABEL.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def value(samples, name, **labels) -> float:
    want = set(labels.items())
    found = [v for (n, ls), v in samples.items() if n == name and want <= set(ls)]
    assert found, (name, labels, sorted(k for k in samples if k[0] == name))
    return sum(found)


def admin_metrics(server) -> tuple[int, str, str]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    try:
        sock.connect(str(server.run_dir / "admin.sock"))
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: wasp\r\n\r\n")
        data = b""
        for _ in range(100_000):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    ctype = re.search(rb"(?im)^content-type: *(.*?)\r?$", head).group(1).decode()
    return int(head.split(b" ")[1]), ctype, body.decode()


def promtool_check(text: str) -> None:
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="Debian's prometheus package (promtool) is not installed")


@needs_promtool
def test_a_real_scrape_passes_promtool_and_counts_what_happened(wasp_server):
    server = wasp_server(CONFIG)
    for _ in range(3):
        assert requests.get(server.url + "/pid", timeout=20).status_code == 200
    assert requests.post(server.url + "/pid", data=b"x" * 100, timeout=20).status_code == 200
    assert requests.get(server.url + "/missing", timeout=20).status_code == 404
    assert requests.request("REPORT", server.url + "/pid", timeout=20).status_code == 200

    status, ctype, text = admin_metrics(server)
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    promtool_check(text)
    s = parse(text)
    site = {"site": SITE_NAME}
    assert value(s, "wasp_site_requests_total", method="GET", **site) >= 4
    assert value(s, "wasp_site_requests_total", method="POST", **site) == 1
    assert value(s, "wasp_site_requests_total", method="other", **site) == 1
    assert value(s, "wasp_site_not_found_errors_total", **site) == 1
    assert value(s, "wasp_site_bytes_received_total", **site) > 100
    assert value(s, "wasp_site_bytes_sent_total", **site) > 0
    assert value(s, "wasp_site_request_duration_seconds_count", **site) == \
        value(s, "wasp_site_request_duration_seconds_bucket", le="+Inf", **site) >= 6
    assert value(s, "wasp_pool_request_duration_seconds_count", pool="P") >= 6
    assert value(s, "wasp_pool_requests_total", pool="P") >= 5
    assert value(s, "wasp_queue_arrivals_total", pool="P") >= 5
    assert value(s, "wasp_pool_state", pool="P", state="Started") == 1
    assert value(s, "wasp_pool_state", pool="P", state="Stopped") == 0
    assert value(s, "wasp_pool_uptime_seconds", pool="P") > 0
    assert value(s, "wasp_pool_worker_processes_created_total", pool="P") == 1
    assert value(s, "wasp_pool_worker_processes_created_total", pool="Idle") == 0
    assert value(s, "wasp_pool_worker_processes", pool="P") == 1
    assert value(s, "wasp_worker_threads", pool="P") >= 1
    assert value(s, "wasp_worker_requests_total", pool="P") >= 5
    assert value(s, "wasp_fronts_answering") >= 1

    # The front's metrics.url answers the same text to 127.0.0.1, GET and HEAD only.
    r = requests.get(server.url + "/metrics", timeout=20)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert r.headers["Cache-Control"] == "no-store"
    promtool_check(r.text)
    assert value(parse(r.text), "wasp_site_requests_total", method="GET", **site) == 4  # (not itself)
    assert requests.post(server.url + "/metrics", timeout=20).status_code == 405
    assert requests.head(server.url + "/metrics", timeout=20).status_code == 200


def test_pool_counters_survive_a_recycle_and_count_the_crash(wasp_server):
    server = wasp_server(CONFIG)
    for _ in range(4):
        assert requests.get(server.url + "/pid", timeout=20).status_code == 200
    before = parse(admin_metrics(server)[2])
    served = value(before, "wasp_pool_requests_total", pool="P")
    old_pid = int(requests.get(server.url + "/pid", timeout=20).text)
    server.cli("recycle", "apppool", "P")
    server.wait_until(lambda: int(requests.get(server.url + "/pid", timeout=20).text) != old_pid,
                      30, what="a new worker")
    after = parse(admin_metrics(server)[2])
    assert value(after, "wasp_pool_recycles_total", pool="P", reason="on_demand") == 1
    assert value(after, "wasp_pool_worker_processes_created_total", pool="P") == 2
    # The pool's total did not start again with the new worker.
    assert value(after, "wasp_pool_requests_total", pool="P") >= served + 2

    pid = int(requests.get(server.url + "/pid", timeout=20).text)
    try:
        requests.get(server.url + "/crash", timeout=20)
    except requests.RequestException:
        pass
    server.wait_until(lambda: value(parse(admin_metrics(server)[2]), "wasp_pool_worker_failures_total",
                                    pool="P", reason="crash") == 1, 30, what="the crash counted")
    server.wait_until(lambda: requests.get(server.url + "/pid", timeout=20).text != str(pid), 30,
                      what="a replacement worker")
    final = parse(admin_metrics(server)[2])
    assert value(final, "wasp_pool_worker_processes_created_total", pool="P") == 3
    assert value(final, "wasp_pool_requests_total", pool="P") >= served + 3


def test_metrics_url_refuses_clients_outside_allowed_ips(wasp_server):
    config = CONFIG.replace('url = "/metrics"', 'url = "/metrics"\nallowed_ips = ["10.9.9.9"]')
    server = wasp_server(config)
    r = requests.get(server.url + "/metrics", timeout=20)
    assert r.status_code == 403
    assert "wasp_" not in r.text
    # The connection stays usable and the app still answers.
    assert requests.get(server.url + "/pid", timeout=20).status_code == 200


def test_counting_off_still_shows_pools_and_workers(wasp_server):
    config = CONFIG.replace('url = "/metrics"', 'url = "/metrics"\nenabled = false')
    server = wasp_server(config)
    assert requests.get(server.url + "/pid", timeout=20).status_code == 200
    s = parse(admin_metrics(server)[2])
    assert value(s, "wasp_request_counting") == 0
    assert not [k for k in s if k[0] == "wasp_site_requests_total"]
    assert value(s, "wasp_pool_state", pool="P", state="Started") == 1
    assert value(s, "wasp_pool_requests_total", pool="P") >= 1


# ---- a real Prometheus server ----------------------------------------------------------------

DASHBOARD = pathlib.Path(__file__).resolve().parents[2] / "docs" / "grafana-wasp.json"


def dashboard_queries() -> list[str]:
    """The dashboard's PromQL with Grafana's variables as a plain query would have them."""
    subst = {"$__rate_interval": "1m", "$__range": "1h", "$job": ".*", "$instance": ".*",
             "$site": ".*", "$pool": ".*"}
    out = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for k, v in subst.items():
                expr = expr.replace(k, v)
            out.append(expr)
    assert len(out) > 20
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("prometheus") is None,
                    reason="Debian's prometheus package is not installed")
def test_a_real_prometheus_scrapes_wasp_and_answers_a_query(wasp_server, tmp_path):
    server = wasp_server(CONFIG)
    for _ in range(3):
        assert requests.get(server.url + "/pid", timeout=20).status_code == 200
    port = _free_port()
    (tmp_path / "prometheus.yml").write_text(f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: wasp
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:{server.port}"]
""")
    log = open(tmp_path / "prometheus.log", "wb")
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        api = f"http://127.0.0.1:{port}/api/v1/query"
        query = f'sum(wasp_site_requests_total{{job="wasp",method="GET"}})'

        def answered():
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
            try:
                r = requests.get(api + "?" + urllib.parse.urlencode({"query": query}), timeout=5)
            except requests.RequestException:
                return False
            result = r.json().get("data", {}).get("result", [])
            return bool(result) and float(result[0]["value"][1]) >= 3

        server.wait_until(answered, 60, interval=0.5, what="Prometheus to answer about wasp")
        # The target is up, and a label with a quote and a backslash came through intact.
        r = requests.get(api, params={"query": 'up{job="wasp"}'}, timeout=5).json()
        assert r["data"]["result"][0]["value"][1] == "1"
        r = requests.get(api, params={"query": "wasp_site_current_connections"}, timeout=5).json()
        assert {row["metric"]["site"] for row in r["data"]["result"]} == {SITE_NAME}
        # Every query of the Grafana dashboard is PromQL this Prometheus accepts.
        for expr in dashboard_queries():
            r = requests.get(api, params={"query": expr}, timeout=5).json()
            assert r["status"] == "success", (expr, r)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


# ---- several fronts ---------------------------------------------------------------------------

def _front_pids(server) -> dict[int, int]:
    out = {}
    for proc in server.processes("front"):
        try:
            cmd = proc.cmdline()
        except psutil.Error:
            continue
        out[int(cmd[cmd.index("--front-index") + 1]) if "--front-index" in cmd else 0] = proc.pid
    return out


def test_two_fronts_sum_and_a_killed_fronts_counts_stay(wasp_server):
    server = wasp_server(CONFIG.replace("[metrics]", "[server]\nfront_processes = 2\n\n[metrics]"))
    server.wait_until(lambda: len(_front_pids(server)) == 2, 30, what="two fronts")
    n = 40
    for _ in range(n):   # a new connection each: both fronts take some
        assert requests.get(server.url + "/pid", headers={"Connection": "close"},
                            timeout=20).status_code == 200
    s = parse(admin_metrics(server)[2])
    assert value(s, "wasp_fronts_answering") == 2
    site = {"site": SITE_NAME}
    assert value(s, "wasp_site_requests_total", method="GET", **site) == n
    assert value(s, "wasp_pool_requests_total", pool="P") == n
    assert value(s, "wasp_worker_requests_total", pool="P") == n
    # Kill one front: what it counted (and the manager last saw) is not lost.
    victim = _front_pids(server)[1]
    os.kill(victim, signal.SIGKILL)
    server.wait_until(lambda: victim not in _front_pids(server).values() and
                      len(_front_pids(server)) == 2, 30, what="the front replaced")
    server.wait_until(lambda: value(parse(admin_metrics(server)[2]), "wasp_fronts_answering") == 2,
                      30, what="both fronts answering")
    after = parse(admin_metrics(server)[2])
    assert value(after, "wasp_site_requests_total", method="GET", **site) == n
    assert value(after, "wasp_pool_requests_total", pool="P") == n
    promtool_check(admin_metrics(server)[2])
