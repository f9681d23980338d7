"""Reloads that give a running pool a new application (docs/internals.md, "Reloads that change a
pool's applications"), through a real server under load: the old worker keeps serving what it
hosts while the replacement that loads the new application starts; requests for the new one
wait in the pool's queue for it; a replacement that cannot import the new application (event
9021) leaves the new URL answering 503 AppOffline and the old one 200, until a fixed reload.
Load loops are bounded (threads, counted); no timing assertions."""

from __future__ import annotations

import datetime
import threading
import time
from collections import Counter

import requests

from process_support import events, gone, pid_of, process_config, wait_event

SLOW = """import os
import time

time.sleep(2)   # a slow import: the replacement is not ready for a while


def app(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'new ' + str(os.getpid()).encode()]
"""
BROKEN = "raise ImportError('the new application is broken')\n"
FIXED = SLOW.replace("time.sleep(2)", "time.sleep(0.1)")


def base(appdir) -> str:
    return process_config(f"""
[[pools]]
name = "P"
start_mode = "always_running"
threads = 4

[[sites]]
name = "Site"
id = 1
bindings = ["http/127.0.0.1:{{port}}:"]
[[sites.applications]]
path = "/"
pool = "P"
app = "procapp:app"
python_path = ["{{procapps}}"]
""")


def added(module: str, appdir) -> str:
    return f"""
[[sites.applications]]
path = "/new"
pool = "P"
app = "{module}:app"
python_path = ["{appdir}"]
"""


class Loop:
    """`threads` threads GETting `path` until stopped (at most `limit` requests each), counting
    outcomes: (status, body kind) or the exception's name."""

    def __init__(self, server, path: str, kind, threads: int = 3, limit: int = 5000):
        self.url = server.url + path
        self.kind = kind            # body -> a short label ("old", "new", "other")
        self.limit = limit
        self.outcomes: Counter = Counter()
        self.pids: Counter = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(60)
        assert not any(t.is_alive() for t in self._threads), "a load thread is stuck"

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.outcomes.values())

    def count(self, outcome) -> int:
        with self._lock:
            return self.outcomes[outcome]

    def _run(self):
        session = requests.Session()
        for _ in range(self.limit):
            if self._stop.is_set():
                break
            try:
                r = session.get(self.url, timeout=60)
                label, pid = self.kind(r.text)
                outcome = (r.status_code, label)
            except requests.RequestException as exc:
                outcome, pid = type(exc).__name__, None
                with self._lock:
                    self.errors.append(repr(exc)[:300])
            with self._lock:
                self.outcomes[outcome] += 1
                if pid is not None:
                    self.pids[pid] += 1
            if outcome != (200, "old") and outcome != (200, "new"):
                time.sleep(0.05)   # a refusal comes back at once: do not spin on it
        session.close()


def old_kind(body: str):
    return ("old", int(body)) if body.isdigit() else ("other", None)


def new_kind(body: str):
    if body.startswith("new ") and body[4:].isdigit():
        return "new", int(body[4:])
    return ("old", None) if body.isdigit() else ("other", None)


def event_time(record: dict) -> float:
    return datetime.datetime.fromisoformat(record["time"].replace("Z", "+00:00")).timestamp()


def reload(server, text: str) -> None:
    """Write the new wasp.toml whole (renamed into place: never seen half written), then reload."""
    temp = server.config.with_suffix(".new")
    temp.write_text(text)
    temp.replace(server.config)
    server.cli("reload")


def test_an_added_app_with_a_slow_import_waits_for_the_new_worker_and_the_old_app_keeps_serving(
        wasp_server, tmp_path):
    appdir = tmp_path / "newapps"
    appdir.mkdir()
    (appdir / "slownew.py").write_text(SLOW)
    server = wasp_server(base(appdir))
    first = pid_of(server)
    with Loop(server, "/pid", old_kind) as old:
        server.wait_until(lambda: old.count((200, "old")) >= 20, 30, what=lambda: old.outcomes)
        reload(server, server.config.read_text() + added("slownew", appdir))
        # The front routes /new to the pool at once; the old worker does not host it.
        sent = time.time()
        with Loop(server, "/new/", new_kind) as new:
            server.wait_until(lambda: new.count((200, "new")) >= 20, 60,
                              what=lambda: f"{new.outcomes}\n{server.diagnostics()}")
            server.wait_until(lambda: gone(first), 30, what=f"the old worker {first} to retire")
            mark = old.total
            server.wait_until(lambda: old.total >= mark + 20, 30, what=lambda: old.outcomes)
    [event] = events(server, 5080, pool="P")[:1]
    assert event["reason"] == "config_change"
    # Every request answered 200 by the application it named, no 404 or 503, nothing dropped.
    assert set(old.outcomes) == {(200, "old")}, (old.outcomes, old.errors[:3])
    assert set(new.outcomes) == {(200, "new")}, (new.outcomes, new.errors[:3])
    # The old worker served the old application through the window; the new one serves both.
    [replacement] = set(new.pids)
    assert replacement != first
    # The first requests for /new were sent before the replacement was ready (event 9014): they
    # waited in the pool's queue for it (the order of two moments 2 s of import apart).
    [ready] = [e for e in events(server, 9014) if e["pid"] == replacement]
    assert sent < event_time(ready), (sent, ready)
    assert old.pids[first] > 0 and old.pids[replacement] > 0, old.pids
    assert not events(server, 9021)


def test_an_added_app_whose_import_fails_is_503_app_offline_until_a_fixed_reload(
        wasp_server, tmp_path):
    appdir = tmp_path / "newapps"
    appdir.mkdir()
    (appdir / "brokennew.py").write_text(BROKEN)
    (appdir / "fixednew.py").write_text(FIXED)
    server = wasp_server(base(appdir))
    text = server.config.read_text()
    first = pid_of(server)
    with Loop(server, "/pid", old_kind) as old:
        server.wait_until(lambda: old.count((200, "old")) >= 20, 30, what=lambda: old.outcomes)
        reload(server, text + added("brokennew", appdir))
        [failed] = wait_event(server, 9021, 60, pool="P")
        assert "ImportError" in failed["error"] or "broken" in failed["error"], failed
        with Loop(server, "/new/", new_kind) as new:
            server.wait_until(lambda: new.count((503, "other")) >= 10, 30,
                              what=lambda: f"{new.outcomes}\n{server.diagnostics()}")
        offline = dict(new.outcomes)
        probe = requests.get(server.url + "/new/", timeout=30)
        assert probe.status_code == 503 and "Service Unavailable" in probe.text, probe.text[:300]
        assert pid_of(server) == first   # the pool keeps serving with the old worker
        # The fix: the new application now imports; the reload brings a replacement up.
        reload(server, text + added("fixednew", appdir))
        server.wait_until(lambda: requests.get(server.url + "/new/", timeout=30).text.startswith("new "),
                          60, what=lambda: server.diagnostics())
        server.wait_until(lambda: gone(first), 30, what=f"the old worker {first} to retire")
        mark = old.total
        server.wait_until(lambda: old.total >= mark + 20, 30, what=lambda: old.outcomes)
    assert set(old.outcomes) == {(200, "old")}, (old.outcomes, old.errors[:3])
    # While the replacement failed, the new application's requests were all 503 (AppOffline),
    # none reached the old worker (which would have answered 500) and none was dropped.
    assert set(offline) == {(503, "other")}, offline
    # HTTP.sys's 503 has no substatus; HTTPERR names the reason (s-reason) and the pool.
    lines = [line.split(" ") for p in sorted((server.logs / "httperr").glob("*.log"))
             for line in p.read_text().splitlines() if line and not line.startswith("#")]
    offline_lines = [f for f in lines if f[8:9] == ["/new/"]]
    assert len(offline_lines) >= 10, lines[-5:]
    assert all(f[10] == "503" and f[12:14] == ["AppOffline", "P"] for f in offline_lines), \
        [" ".join(f) for f in offline_lines if f[12:13] != ["AppOffline"]]
    assert not [f for f in lines if f[8:9] == ["/pid"]], "the old application was refused"
    assert not events(server, 5002)   # rapid-fail protection never counted the failed import
    assert get_state(server) == "Started"


def get_state(server) -> str:
    [row] = [r for r in server.list_json("pools") if r["name"] == "P"]
    return row["state"]
