"""Run the real front process with the test as its manager and fake workers behind it.

The harness binds a listening socket on 127.0.0.1 (ephemeral port), makes the control socketpair,
starts `python -m wasp.front`, sends it `config`, and hands it data channels to
`front_fake_worker.py` processes with `worker_add`. Blocking sockets, no event loop.

    python tests/integration/front_harness.py --bench [--workers 2] [--seconds 5]

starts a front with two fake workers and runs `wrk -t1 -c64` against it (only 127.0.0.1).
"""

from __future__ import annotations

import array
import os
import pathlib
import select
import signal
import socket
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from wasp.config import model  # noqa: E402
from wasp.wire import control  # noqa: E402

FAKE_WORKER = pathlib.Path(__file__).resolve().parent / "front_fake_worker.py"


def make_config(log_dir: str, port: int, pools=None, sites=None, limits=None) -> model.Config:
    pools = pools or [model.Pool(name="P")]
    sites = sites or [model.Site(name="S", id=1, bindings=[f"http/127.0.0.1:{port}:"],
                                 applications=[model.Application(path="/", pool=pools[0].name)])]
    return model.Config(server=model.ServerSettings(log_dir=log_dir, run_dir=log_dir),
                        limits=limits or model.Limits(), pools=pools, sites=sites)


def _env() -> dict:
    env = dict(os.environ)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *parts])
    return env


class FrontHarness:
    def __init__(self, log_dir: str, config_factory=None, python: list[str] | None = None):
        self.log_dir = log_dir
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1024)
        self.port = self.listener.getsockname()[1]
        self.config = (config_factory or make_config)(log_dir, self.port)
        self.ours, theirs = socket.socketpair()
        self.front = subprocess.Popen(
            [*(python or [sys.executable]), "-m", "wasp.front", "--control-fd", str(theirs.fileno()),
             "--listen-fds", str(self.listener.fileno())],
            pass_fds=[theirs.fileno(), self.listener.fileno()], env=_env(), cwd=str(REPO),
            stdin=subprocess.DEVNULL)
        theirs.close()
        self.workers: dict[int, subprocess.Popen] = {}
        self._reader = control.MessageReader()
        self._inbox: list[dict] = []
        self.send({"op": "config", "config": model.encode(self.config),
                   "listeners": [["127.0.0.1", self.port]]}, [self.listener.fileno()])

    # ---- control channel ----
    def send(self, message: dict, fds: list[int] | None = None) -> None:
        if fds:
            message = dict(message, nfds=len(fds))
        data = control.encode(message)
        if fds:
            self.ours.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        else:
            self.ours.sendall(data)

    def recv(self, op: str | None = None, timeout: float = 10.0) -> dict:
        """The next control message (with `op`, skipping others) from the front."""
        deadline = time.monotonic() + timeout
        while True:
            for i, message in enumerate(self._inbox):
                if op is None or message.get("op") == op:
                    return self._inbox.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {op or 'message'} from the front in {timeout}s")
            ready, _, _ = select.select([self.ours], [], [], left)
            if ready:
                data = self.ours.recv(65536)
                if not data:
                    raise EOFError("the front closed its control channel")
                self._inbox.extend(self._reader.feed(data))

    def ping(self, ping_id: int = 1) -> dict:
        self.send({"op": "ping", "id": ping_id})
        return self.recv("pong")

    # ---- workers ----
    def add_worker(self, worker_id: int, pool: str = "P", capacity: int = 64) -> subprocess.Popen:
        front_end, worker_end = socket.socketpair()
        proc = subprocess.Popen(
            [sys.executable, str(FAKE_WORKER), "--fd", str(worker_end.fileno()), "--worker-id",
             str(worker_id), "--capacity", str(capacity)],
            pass_fds=[worker_end.fileno()], env=_env(), cwd=str(REPO), stdin=subprocess.DEVNULL)
        worker_end.close()
        self.workers[worker_id] = proc
        self.send({"op": "worker_add", "pool": pool, "worker_id": worker_id, "pid": proc.pid},
                  [front_end.fileno()])
        front_end.close()
        return proc

    def wait_ready(self, pool: str = "P", timeout: float = 10.0) -> None:
        """Until the front answers requests (its listener is up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET /__ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(100).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError("the front did not answer")

    # ---- teardown ----
    def stop(self, timeout: float = 10.0) -> int | None:
        """Graceful stop, then kill by PID whatever is left. Returns the front's exit code."""
        code = None
        if self.front.poll() is None:
            try:
                self.send({"op": "stop"})
                code = self.front.wait(timeout)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.close()
        return code

    def close(self) -> None:
        for proc in [self.front, *self.workers.values()]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        self.ours.close()
        self.listener.close()


def bench(workers: int, seconds: int, connections: int) -> None:
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        h = FrontHarness(tmp)
        try:
            for i in range(workers):
                h.add_worker(i + 1)
            h.wait_ready()
            url = f"http://127.0.0.1:{h.port}/"
            out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                                 capture_output=True, text=True, timeout=seconds + 30)
            print(out.stdout)
            import psutil
            print("front RSS MiB:", round(psutil.Process(h.front.pid).memory_info().rss / 2 ** 20, 1))
        finally:
            h.stop()


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument("--bench", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if args.bench:
        bench(args.workers, args.seconds, args.connections)
