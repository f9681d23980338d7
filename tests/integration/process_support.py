"""Helpers for the process-model tests (test_process_*.py): short timings, the event log, load.

`process_config(body)` puts short process-model timings in front of a config body and fills in
`{procapps}` (this folder's apps); the `wasp_server` fixture then fills in `{port}` and the rest.
"""

from __future__ import annotations

import json
import pathlib
import threading
import time
from collections import Counter

import psutil
import requests

PROCAPPS = pathlib.Path(__file__).resolve().parent / "process_apps"

TIMING = """
[pool_defaults]
[pool_defaults.process_model]
idle_timeout = "0s"
ping_interval = "0.5s"
ping_response_time = "5s"
startup_time_limit = "20s"
shutdown_time_limit = "5s"
"""


def process_config(body: str, timing: str = TIMING) -> str:
    return (timing + "\n" + body).replace("{procapps}", str(PROCAPPS))


def one_pool(pool_extra: str = "", app: str = "procapp:app", name: str = "P",
             timing: str = TIMING, app_extra: str = "") -> str:
    """One pool serving one app at "/"."""
    return process_config(f"""
[[pools]]
name = "{name}"
{pool_extra}

[[sites]]
name = "Site"
id = 1
bindings = ["http/127.0.0.1:{{port}}:"]
[[sites.applications]]
path = "/"
pool = "{name}"
app = "{app}"
python_path = ["{{procapps}}"]
{app_extra}
""", timing)


def get(server, path: str = "/pid", timeout: float = 20) -> requests.Response:
    return requests.get(server.url + path, timeout=timeout)


def pid_of(server, path: str = "/pid") -> int:
    r = get(server, path)
    assert r.status_code == 200, (r.status_code, r.text[:300], server.diagnostics())
    return int(r.text)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# ---- the event log -----------------------------------------------------------------------------

def events(server, event_id: int | None = None, pool: str | None = None) -> list[dict]:
    path = server.logs / "events.jsonl"
    out = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if event_id is not None and record.get("id") != event_id:
            continue
        if pool is not None and record.get("pool") != pool:
            continue
        out.append(record)
    return out


def wait_event(server, event_id: int, timeout: float = 30, pool: str | None = None,
               count: int = 1, after: int = 0) -> list[dict]:
    """Wait until the event log holds `count` events `event_id` with seq > `after`."""
    def found():
        hits = [e for e in events(server, event_id, pool) if e["seq"] > after]
        return hits if len(hits) >= count else None

    return server.wait_until(found, timeout, interval=0.1,
                             what=lambda: f"event {event_id} x{count}\n{server.diagnostics()}")


def exit_events(server, pid: int, timeout: float = 15) -> list[dict]:
    """The 9016 ("exited") events of worker `pid`, once there is one: the manager writes it when
    it reaps the exit, a moment after the process is gone, so `gone(pid)` alone is too early."""
    def found():
        return [e for e in events(server, 9016) if e["pid"] == pid] or None

    return server.wait_until(found, timeout, interval=0.1,
                             what=lambda: f"event 9016 of pid {pid}\n{server.diagnostics()}")


def last_seq(server) -> int:
    records = events(server)
    return records[-1]["seq"] if records else 0


# ---- load --------------------------------------------------------------------------------------

class Load:
    """Threads sending requests in a loop (each with its own keep-alive session) and counting
    outcomes: status codes, or the exception's name for a failed or reset request."""

    def __init__(self, server, path: str = "/pid", threads: int = 4, timeout: float = 30):
        self.server = server
        self.path = path
        self.timeout = timeout
        self.outcomes: Counter = Counter()
        self.pids: Counter = Counter()
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> "Load":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.outcomes.values())

    def _run(self) -> None:
        session = requests.Session()
        for _ in range(1_000_000):
            if self._stop.is_set():
                break
            started = time.perf_counter()
            try:
                r = session.get(self.server.url + self.path, timeout=self.timeout)
                outcome = r.status_code
                body = r.text
            except requests.RequestException as exc:
                outcome, body = type(exc).__name__, ""
                with self._lock:
                    self.errors.append(repr(exc)[:300])
            elapsed = time.perf_counter() - started
            with self._lock:
                self.outcomes[outcome] += 1
                if outcome == 200:
                    self.latencies.append(elapsed)
                    if body.isdigit():
                        self.pids[int(body)] += 1
        session.close()

    def wait_for(self, n: int, timeout: float = 30) -> None:
        mark = self.total
        self.server.wait_until(lambda: self.total >= mark + n, timeout,
                               what=lambda: f"{n} more requests (outcomes {dict(self.outcomes)})")


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"n": len(ordered), "p50_ms": at(0.50), "p90_ms": at(0.90), "p99_ms": at(0.99),
            "max_ms": round(1000 * ordered[-1], 2)}


# ---- the admin API, straight on its socket (faster than `wasp list` when polling) --------------

def admin(server, path: str, method: str = "GET", timeout: float = 30):
    """(status, JSON payload) of one admin API request."""
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(server.run_dir / "admin.sock"))
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: wasp\r\nContent-Length: 0\r\n\r\n".encode())
        data = b""
        for _ in range(100_000):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body or b"null")


def workers(server, pool: str | None = None) -> list[dict]:
    status, rows = admin(server, "/wp")
    assert status == 200, rows
    return [row for row in rows if pool is None or row["pool"] == pool]


def pools(server) -> dict[str, dict]:
    status, rows = admin(server, "/pools")
    assert status == 200, rows
    return {row["name"]: row for row in rows}
