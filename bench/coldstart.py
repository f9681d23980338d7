"""Cold-start latency of a Flask and a Django app under wasp: the first request after the pool
went idle (idle_timeout), which waits in the pool's queue while a worker starts and imports the
app; compared with a warm request right after.

    python bench/coldstart.py [--rounds 5] [--keep]

Prints one line per app (min / median / max over the rounds). The apps are the integration
tests' (tests/integration/apps). Only 127.0.0.1 is used; the server is stopped by its PID.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APPS = os.path.join(REPO, "tests", "integration", "apps")

CONFIG = """
[server]
run_dir = "run"
log_dir = "logs"

[pool_defaults.process_model]
idle_timeout = "1s"
ping_interval = "0.25s"

[[pools]]
name = "Flask"

[[pools]]
name = "Django"

[[sites]]
name = "Cold"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[sites.log]
enabled = false

[[sites.applications]]
path = "/"
pool = "Flask"
app = "flask_app:app"
python_path = ["{apps}"]

[[sites.applications]]
path = "/dj"
pool = "Django"
app = "mysite.wsgi:application"
python_path = ["{apps}/djangoproj"]
"""

TARGETS = {"Flask": "/pid", "Django": "/dj/pid"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed_get(port: int, path: str) -> tuple[float, int, str]:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read().decode(errors="replace")
    finally:
        conn.close()
    return time.perf_counter() - started, response.status, body


def admin_workers(run_dir: str, pool: str) -> list[dict]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    try:
        sock.connect(os.path.join(run_dir, "admin.sock"))
        sock.sendall(b"GET /wp HTTP/1.1\r\nHost: wasp\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    finally:
        sock.close()
    rows = json.loads(data.partition(b"\r\n\r\n")[2] or b"[]")
    return [row for row in rows if row["pool"] == pool]


def wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def summary(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"min {min(ms):7.1f}  median {statistics.median(ms):7.1f}  max {max(ms):7.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (config, logs)")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="wasp-coldstart-")
    port = free_port()
    config = os.path.join(folder, "wasp.toml")
    with open(config, "w") as f:
        f.write(CONFIG.replace("{port}", str(port)).replace("{apps}", APPS))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    log = open(os.path.join(folder, "server.log"), "wb")
    server = subprocess.Popen([sys.executable, "-m", "wasp.cli.main", "serve", "-c", config],
                              cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    run_dir = os.path.join(folder, "run")
    results: dict[str, dict[str, list[float]]] = {}
    try:
        wait(lambda: os.path.exists(os.path.join(run_dir, "admin.sock")), 30, "the server")
        for pool, path in TARGETS.items():
            cold, warm = [], []
            for _ in range(args.rounds):
                # Idle: no worker for the pool (the first round: none was ever started).
                wait(lambda: not admin_workers(run_dir, pool), 30, f"{pool} to go idle")
                elapsed, status, body = timed_get(port, path)
                if status != 200:
                    raise RuntimeError(f"{pool}: {status} {body[:200]}")
                cold.append(elapsed)
                warm.append(min(timed_get(port, path)[0] for _ in range(5)))
            results[pool] = {"cold": cold, "warm": warm}
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)
        log.close()
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"cold start = first request after idle_timeout (worker start + app import + request), "
          f"{args.rounds} rounds; CPUs: {len(os.sched_getaffinity(0))}")
    for pool, numbers in results.items():
        print(f"{pool:7s} cold: {summary(numbers['cold'])}   warm: {summary(numbers['warm'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
