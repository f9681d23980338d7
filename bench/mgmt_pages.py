"""How fast the management site's pages answer with many pools (issue 11 item 8: within 100 ms
with 200 pools configured).

Starts a real server with N pools and N sites (on_demand pools: no workers to start) and the
management site, logs in with the printed token, then times what each page asks for (the page's
/api/ calls, in sequence, as a cold reload does) over several rounds, and prints median and
worst per page with the load average. Every process it starts is stopped by PID.

    .venv/bin/python bench/mgmt_pages.py --pools 200 --rounds 20
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import requests

PAGES = {
    "overview": ["/api/status"],
    "sites": ["/api/sites", "/api/apps"],
    "pools": ["/api/pools", "/api/wp"],
    "workers": ["/api/wp", "/api/requests"],
    "events": ["/api/events"],
    "logs": ["/api/sites", "/api/logs?kind=httperr&lines=200"],
    "html": ["/"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(pools: int, port: int, mgmt_port: int) -> str:
    parts = [f'[management]\nenabled = true\nbindings = ["http/127.0.0.1:{mgmt_port}:"]\n']
    for i in range(pools):
        parts.append(f'[[pools]]\nname = "pool{i:03d}"\n')
    for i in range(pools):
        parts.append(f'[[sites]]\nname = "site{i:03d}"\nid = {i + 1}\n'
                     f'bindings = ["http/127.0.0.1:{port}:site{i:03d}.test"]\n'
                     f'[[sites.applications]]\npath = "/"\npool = "pool{i:03d}"\nphysical_path = "www"\n')
    return "\n".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pools", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="wasp-mgmt-bench-")
    os.mkdir(os.path.join(work, "www"))
    port, mgmt_port = free_port(), free_port()
    with open(os.path.join(work, "wasp.toml"), "w") as f:
        f.write(config(args.pools, port, mgmt_port))
    log = open(os.path.join(work, "server.log"), "wb")
    proc = subprocess.Popen([sys.executable, "-m", "wasp.cli.main", "serve", "-c", "wasp.toml"],
                            cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        link = None
        for _ in range(600):
            text = open(os.path.join(work, "server.log"), errors="replace").read()
            m = re.search(r"(http://\S+/login\?token=\S+)", text)
            if m:
                link = m.group(1)
                try:
                    if requests.get(f"http://127.0.0.1:{mgmt_port}/login", timeout=2).ok:
                        break
                except requests.RequestException:
                    pass
            if proc.poll() is not None:
                print(text)
                return 1
            time.sleep(0.1)
        s = requests.Session()
        r = s.get(link, timeout=30)
        assert r.ok and s.cookies.get("wasp_mgmt"), r.status_code
        base = f"http://127.0.0.1:{mgmt_port}"
        assert len(s.get(base + "/api/pools", timeout=30).json()) == args.pools + 1
        timings = {name: [] for name in PAGES}
        for _ in range(args.rounds):
            for name, calls in PAGES.items():
                t0 = time.perf_counter()
                for call in calls:
                    r = s.get(base + call, timeout=30)
                    assert r.status_code == 200, (call, r.status_code, r.text[:200])
                timings[name].append((time.perf_counter() - t0) * 1000)
        load = os.getloadavg()
        print(f"{args.pools} pools + {args.pools} sites, {args.rounds} rounds; load average "
              f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        print(f"{'page':10} {'median ms':>10} {'worst ms':>10}")
        for name, values in timings.items():
            print(f"{name:10} {statistics.median(values):10.1f} {max(values):10.1f}")
        return 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.close()


if __name__ == "__main__":
    sys.exit(main())
