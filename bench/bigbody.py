"""A 1 GiB upload and a 1 GiB download through wasp, with every wasp process's peak RSS.

    python bench/bigbody.py [--mib 1024] [--keep]

The app is the integration tests' Flask app (tests/integration/apps/flask_app.py): /upload reads
wsgi.input in chunks and answers the byte count and sha256, /download?mb=N streams N MiB. The
client checks both. RSS of the manager, the front and the worker is sampled every 50 ms while the
bodies move; bounded memory means none of them grows with the body. Only 127.0.0.1 is used; the
server is stopped by its PID (and its children, should any outlive it).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import shutil
import sys
import tempfile
import threading
import time

import psutil

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bench.procs import Server, free_port  # noqa: E402
from bench.servers import wasp_command, wasp_env  # noqa: E402

APPS = os.path.join(REPO, "tests", "integration", "apps")
MiB = 1 << 20

CONFIG = """
[server]
run_dir = "run"
log_dir = "logs"

[[pools]]
name = "Big"
start_mode = "always_running"

[[sites]]
name = "Big"
id = 1
bindings = ["http/127.0.0.1:{port}:"]

[[sites.applications]]
path = "/"
pool = "Big"
app = "flask_app:app"
python_path = ["{apps}"]
"""


class PeakRss:
    def __init__(self, root_pid: int):
        root = psutil.Process(root_pid)
        self.procs = [root] + root.children(recursive=True)
        self.peak = {p.pid: 0 for p in self.procs}
        self.role = {}
        for p in self.procs:
            cmd = " ".join(p.cmdline())
            self.role[p.pid] = ("front" if "wasp.front" in cmd else
                                "worker" if "wasp.worker" in cmd else "manager")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for p in self.procs:
                try:
                    self.peak[p.pid] = max(self.peak[p.pid], p.memory_info().rss)
                except psutil.Error:
                    pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def transfer(port: int, size: int) -> tuple[str, str]:
    chunk = os.urandom(MiB)
    expected = hashlib.sha256()
    count = size // MiB

    def body():
        for _ in range(count):
            expected.update(chunk)
            yield chunk

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.monotonic()
    conn.request("POST", "/upload", body=body(), headers={"Content-Length": str(count * MiB)})
    answer = conn.getresponse().read().decode()
    up = time.monotonic() - t0
    if f'"bytes":{count * MiB}' not in answer or expected.hexdigest() not in answer:
        raise SystemExit(f"upload answered {answer!r}")
    t0 = time.monotonic()
    conn.request("GET", f"/download?mb={count}")
    response = conn.getresponse()
    got = 0
    while True:
        data = response.read(MiB)
        if not data:
            break
        got += len(data)
    down = time.monotonic() - t0
    if got != count * MiB:
        raise SystemExit(f"download gave {got} bytes, not {count * MiB}")
    return (f"upload {count} MiB in {up:.1f} s (byte count and sha256 checked by the app)",
            f"download {count} MiB in {down:.1f} s (length checked)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="body size in MiB (default 1024)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="wasp-bigbody-")
    port = free_port()
    config = os.path.join(workdir, "wasp.toml")
    with open(config, "w") as f:
        f.write(CONFIG.replace("{port}", str(port)).replace("{apps}", APPS))
    server = Server("wasp", wasp_command(config, "serve"), workdir, port, env=wasp_env())
    try:
        server.start()
        server.wait_ready(port, timeout=60)
        with PeakRss(server.pid) as rss:
            lines = transfer(port, args.mib * MiB)
        for line in lines:
            print(line)
        for pid, peak in sorted(rss.peak.items(), key=lambda item: rss.role[item[0]]):
            print(f"peak RSS {rss.role[pid]:8s} pid {pid}: {peak / MiB:.1f} MiB")
    finally:
        server.stop()  # SIGTERM, SIGKILL after its limit, then any children left behind
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
