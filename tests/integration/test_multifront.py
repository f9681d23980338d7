"""`front_processes = N`: several fronts on the same sockets keep every guarantee of one front.

One server per parametrization (2 and 3 fronts), shared by the module's tests; the graceful stop
comes last and stops it. What a request went through is seen from the manager: `wasp list requests` names
each in-flight request's front, `wasp list cache` each entry's front. Requests are held in the
app (a release file) so the tests look at a settled state, not at timings.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import threading
import time

import psutil
import pytest
import requests

from process_support import PROCAPPS, TIMING, wait_event
from wasp.wire import w3c

CONFIG = TIMING + """
[server]
front_processes = {fronts}

[[pools]]
name = "P"
start_mode = "always_running"

[[pools]]
name = "C"
start_mode = "always_running"
max_concurrent_requests = 3

[[pools]]
name = "D"
start_mode = "on_demand"
[pools.process_model]
idle_timeout = "2s"

[[pools]]
name = "Q"
start_mode = "always_running"
max_concurrent_requests = 2
queue_length = 10

[[sites]]
name = "Site"
id = 1
bindings = ["http/127.0.0.1:{{port}}:"]
[[sites.applications]]
path = "/"
pool = "P"
app = "procapp:app"
python_path = ["{procapps}"]
[[sites.applications]]
path = "/static"
pool = "P"
physical_path = "{www}"
[[sites.applications.caching.profiles]]
extension = ".txt"
kernel_caching_policy = "CacheUntilChange"
[[sites.applications]]
path = "/c"
pool = "C"
app = "mfapp:app"
python_path = ["{procapps}"]
[[sites.applications]]
path = "/d"
pool = "D"
app = "procapp:app"
python_path = ["{procapps}"]
[[sites.applications]]
path = "/q"
pool = "Q"
app = "mfapp:app"
python_path = ["{procapps}"]

[[sites]]
name = "Limited"
id = 2
bindings = ["http/127.0.0.1:{port2}:"]
[sites.limits]
max_connections = 4
[[sites.applications]]
path = "/"
pool = "P"
app = "procapp:app"
python_path = ["{procapps}"]
"""


def make_config(fronts: int, www, port2: int) -> str:
    return CONFIG.format(fronts=fronts, procapps=PROCAPPS, www=www, port2=port2)


@pytest.fixture(scope="module", params=[2, 3], ids=["2fronts", "3fronts"])
def server(request, wasp_module_server):
    fronts = request.param
    www = wasp_module_server.dir / f"www{fronts}"
    www.mkdir()
    (www / "hello.txt").write_text("hello from the cache\n")
    port2 = wasp_module_server.free_port()
    srv = wasp_module_server(make_config(fronts, www, port2))
    srv.fronts, srv.port2 = fronts, port2
    srv.wait_until(lambda: len(front_pids(srv)) == fronts, 20, what="every front")
    yield srv
    srv.stop()


def front_pids(server) -> dict[int, int]:
    """front index -> pid, from the fronts' command lines."""
    out = {}
    for proc in server.processes("front"):
        try:
            cmd = proc.cmdline()
        except psutil.Error:
            continue
        index = int(cmd[cmd.index("--front-index") + 1]) if "--front-index" in cmd else 0
        out[index] = proc.pid
    return out


def hold(server, tmp, name: str, path: str = "/hold", port: int | None = None):
    """Open a connection and send a request the app holds until `release`; returns the socket."""
    sock = socket.create_connection(("127.0.0.1", port or server.port), timeout=30)
    release = tmp / f"release-{name}"
    mark = tmp / f"mark-{name}"
    sock.sendall(f"GET {path}?mark={mark}&release={release} HTTP/1.1\r\nHost: x\r\n"
                 "Connection: close\r\n\r\n".encode())
    return sock


def read_all(sock) -> bytes:
    chunks = []
    for _ in range(10_000):
        data = sock.recv(65536)
        if not data:
            break
        chunks.append(data)
    sock.close()
    return b"".join(chunks)


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else 0


def hold_on_every_front(server, tmp, name: str, limit: int = 60) -> tuple[list, list[dict]]:
    """Held requests on fresh connections until `wasp list requests` shows one on every front
    (bounded); returns the sockets and the rows."""
    socks, rows = [], []
    for i in range(limit):
        socks.append(hold(server, tmp, name))
        if i % 4 == 3 or i == limit - 1:
            def listed():
                rows[:] = [r for r in server.list_json("requests") if "/hold" in r["url"]]
                return len(rows) == len(socks)
            server.wait_until(listed, 15, what=lambda: f"{len(socks)} held requests listed: {rows}")
            if {r["front"] for r in rows} == set(range(server.fronts)):
                break
    return socks, rows


def release(tmp, name: str) -> None:
    (tmp / f"release-{name}").write_text("go")


# ---- 1 and 4: every front accepts; list requests merges them with unique ids -----------------

def test_every_front_accepts_and_list_requests_merges_them(server, tmp_path):
    socks, rows = hold_on_every_front(server, tmp_path, "list")
    try:
        assert {r["front"] for r in rows} == set(range(server.fronts)), rows
        ids = [r["id"] for r in rows]
        assert len(set(ids)) == len(ids), ids
        # Joined with the worker's own view: the worker ran each of them, on that front's channel.
        assert {r["stage"] for r in rows} == {"ExecuteRequestHandler"}, rows
        assert {r.get("module") for r in rows} == {"python_app"}, rows
    finally:
        release(tmp_path, "list")
        answers = [read_all(s) for s in socks]
    assert [status_of(a) for a in answers] == [200] * len(socks)


# ---- 2: credits: the worker never has more than its capacity in flight ------------------------

def test_a_worker_never_runs_more_than_its_capacity_across_fronts(server):
    requests.get(server.url + "/c/max", timeout=10)  # start the count over

    def one(_):
        with requests.Session() as s:
            return s.get(server.url + "/c/conc?s=0.3", headers={"Connection": "close"},
                         timeout=60).status_code

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(one, range(20)))
    assert statuses == [200] * 20
    most = int(requests.get(server.url + "/c/max", timeout=10).text)
    # max_concurrent_requests = 3 for pool C: whichever fronts the 20 connections landed on.
    assert 1 <= most <= 3, most


# ---- 3: the queue bound is the pool's, across fronts ------------------------------------------

def settle(server, socks, url_part: str, refused_n: int, held_n: int) -> tuple[list, list]:
    """Wait until `refused_n` of the connections were answered at once and `held_n` requests
    are listed in flight (running or queued) by `wasp list requests`: the settled state in which
    every request was admitted or refused. Returns (first bytes of the refused, the others)."""
    import select

    pending = {s.fileno(): s for s in socks}
    refused: list[bytes] = []
    rows: list = []

    def settled():
        readable, _, _ = select.select(list(pending.values()), [], [], 0.1)
        for sock in readable:
            refused.append(sock.recv(65536))
            del pending[sock.fileno()]
            sock.close()
        rows[:] = [r for r in server.list_json("requests") if url_part in r["url"]]
        return len(refused) >= refused_n and len(rows) >= held_n

    server.wait_until(settled, 20, what=lambda: f"{len(refused)} refused, {len(rows)} held")
    assert len(refused) == refused_n and len(rows) == held_n, (len(refused), rows)
    return refused, list(pending.values())


def test_queue_length_bounds_every_fronts_queue_together(server, tmp_path):
    name = "queue"
    before = len(httperr(server, "QueueFull"))
    socks = [hold(server, tmp_path, name, "/q/hold") for _ in range(20)]
    try:
        # capacity 2 on the one worker + queue_length 10: exactly 12 admitted, 8 answered at once.
        refused, waiting = settle(server, socks, "/q/hold", 8, 12)
        assert {status_of(r) for r in refused} == {503}
        server.wait_until(lambda: len(httperr(server, "QueueFull")) - before == 8, 10,
                          what=lambda: f"8 QueueFull lines: {httperr(server, 'QueueFull')}")
    finally:
        release(tmp_path, name)
    answers = [read_all(s) for s in waiting]
    assert [status_of(a) for a in answers] == [200] * 12


def httperr(server, reason: str) -> list[list[str]]:
    folder = server.logs / "httperr"
    if not folder.is_dir():
        return []
    return [f for p in sorted(folder.glob("*.log")) for line in p.read_text().splitlines()
            if line and not line.startswith("#") and (f := line.split(" "))[12:13] == [reason]]


# ---- 5: each front keeps its own cache; a flush empties every one ------------------------------

def test_each_front_caches_and_a_flush_empties_them_all(server):
    url = server.url + "/static/hello.txt"
    entries: list = []

    def cached_everywhere():
        for _ in range(4):
            r = requests.get(url, headers={"Connection": "close"}, timeout=10)
            assert r.status_code == 200 and r.text == "hello from the cache\n"
        entries[:] = [e for e in server.list_json("cache") if e["url"].endswith("/hello.txt")]
        return {e["front"] for e in entries} == set(range(server.fronts))

    server.wait_until(cached_everywhere, 30, interval=0.01,
                      what=lambda: f"hello.txt cached by every front: {entries}")
    everything = server.list_json("cache")
    flushed = server.cli("cache", "flush")
    assert f"flushed {len(everything)} cached response" in flushed.stdout, (flushed.stdout, everything)
    assert [e for e in server.list_json("cache") if e["url"].endswith("/hello.txt")] == []


# ---- 6: every front's lines, whole, in the same W3C file ---------------------------------------

def test_w3c_lines_from_every_front_are_whole(server):
    marker = f"lines-{server.fronts}-{time.time_ns()}"
    total = 30 * server.fronts

    def one(i):
        return requests.get(f"{server.url}/pid?{marker}={i}", headers={"Connection": "close"},
                            timeout=30).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert set(pool.map(one, range(total))) == {200}
    fields = len(w3c.W3C_FIELDS.split())
    lines: list[str] = []

    def logged():
        lines[:] = [line for path in (server.logs / "W3SVC1").glob("*.log")
                    for line in path.read_text().splitlines() if marker in line]
        return len(lines) >= total

    server.wait_until(logged, 15, what=lambda: f"{total} lines, found {len(lines)}")
    assert len(lines) == total
    assert all(len(line.split(" ")) == fields for line in lines), lines[:3]
    assert sorted(int(line.split(f"{marker}=")[1].split(" ")[0]) for line in lines) == list(range(total))


# ---- 10: a site's max_connections counts every front's connections ----------------------------

def test_site_max_connections_across_fronts(server, tmp_path):
    name = "site"
    socks = [hold(server, tmp_path, name, port=server.port2) for _ in range(10)]
    try:
        refused, held = settle(server, socks, f"release-{name}", 6, 4)
        assert {status_of(r) for r in refused} == {503}
        assert b"503" in refused[0].split(b"\r\n", 1)[0]
    finally:
        release(tmp_path, name)
    answers = [read_all(s) for s in held]
    assert [status_of(a) for a in answers] == [200] * 4
    # Closed again: the site takes new connections.
    server.wait_until(lambda: requests.get(f"http://127.0.0.1:{server.port2}/pid",
                                           timeout=10).status_code == 200, 15)


# ---- 8: recycle under load loses nothing -------------------------------------------------------

def test_recycle_under_load_fails_no_request(server):
    from process_support import Load, last_seq, wait_event

    with Load(server, "/pid", threads=4) as load:
        load.wait_for(50)
        for _ in range(2):
            mark = last_seq(server)
            server.cli("recycle", "pool", "P")
            wait_event(server, 9014, 20, pool="P", after=mark)
            load.wait_for(60)
    assert set(load.outcomes) == {200}, (dict(load.outcomes), load.errors[:5])
    assert len(load.pids) >= 3, load.pids


# ---- 7: kill -9 one front: the others serve throughout; it comes back with its index ----------

def test_a_killed_front_costs_only_its_own_connections(server, tmp_path):
    before = front_pids(server)
    victim = server.fronts - 1
    failures: dict[int, int] = {}
    ok = [0]
    stop = threading.Event()
    lock = threading.Lock()

    def client(n):
        session = requests.Session()
        for _ in range(100_000):
            if stop.is_set():
                break
            try:
                r = session.get(server.url + "/pid", timeout=30)
                assert r.status_code == 200
                with lock:
                    ok[0] += 1
            except requests.RequestException:
                with lock:
                    failures[n] = failures.get(n, 0) + 1
                session.close()
                session = requests.Session()
        session.close()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(6)]
    for t in threads:
        t.start()
    try:
        server.wait_until(lambda: ok[0] >= 100, 30, what="load going")
        os.kill(before[victim], signal.SIGKILL)
        at_kill = ok[0]
        server.wait_until(lambda: ok[0] >= at_kill + 200, 30, what="serving on after the kill")
        server.wait_until(lambda: front_pids(server).get(victim) not in (None, before[victim]), 20,
                          what="the front restarted")
    finally:
        stop.set()
        for t in threads:
            t.join(40)
    # A client loses at most the one request that was on the killed front's connection.
    assert all(n <= 1 for n in failures.values()), failures
    after = front_pids(server)
    assert set(after) == set(range(server.fronts))
    assert all(after[i] == before[i] for i in after if i != victim)
    # The restarted front serves again (seen in list requests under its index).
    socks, rows = hold_on_every_front(server, tmp_path, "restarted")
    release(tmp_path, "restarted")
    for s in socks:
        read_all(s)
    assert victim in {r["front"] for r in rows}, rows


# ---- on demand, stop/start, idle timeout: the pool's life is the manager's, whatever front ---

def test_on_demand_start_stop_start_and_idle_timeout_across_fronts(server):
    from process_support import events, last_seq, wait_event

    def fresh(path):
        return requests.get(server.url + path, headers={"Connection": "close"}, timeout=30)

    server.wait_until(lambda: not server.worker_pids("D"), 20, what="pool D without workers")
    mark = last_seq(server)
    # Many connections at once, spread over the fronts: every front may send `demand`; the pool
    # gets exactly one worker (max_processes = 1), and every request is served by it.
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: fresh("/d/pid"), range(24)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1
    assert len([e for e in events(server, 9013, pool="D") if e["seq"] > mark]) == 1
    server.cli("stop", "pool", "D")
    stopped = [fresh("/d/pid") for _ in range(4 * server.fronts)]
    assert {r.status_code for r in stopped} == {503}
    server.cli("start", "pool", "D")
    assert fresh("/d/pid").status_code == 200
    # Idle on every front's channel: stopped after idle_timeout (event 5186).
    mark = last_seq(server)
    wait_event(server, 5186, 20, pool="D", after=mark)
    server.wait_until(lambda: not server.worker_pids("D"), 20, what="the idle worker gone")


# ---- reload: the number of fronts is fixed for the manager's life ----------------------------

def test_a_reload_cannot_change_the_number_of_fronts(server):
    text = server.config.read_text()
    changed = text.replace(f"front_processes = {server.fronts}", f"front_processes = {server.fronts + 1}")
    assert changed != text
    server.config.write_text(changed)
    try:
        result = server.cli("reload", check=False)
        assert result.returncode != 0
        assert "server.front_processes" in result.stdout + result.stderr, (result.stdout, result.stderr)
        assert len(front_pids(server)) == server.fronts
        assert requests.get(server.url + "/pid", timeout=10).status_code == 200
    finally:
        server.config.write_text(text)


# ---- 9: a graceful stop finishes what every front has in flight --------------------------------

def test_graceful_stop_finishes_in_flight_requests_on_every_front(server, tmp_path):
    """Last in the module: it stops the module's server (for this parametrization)."""
    socks, rows = hold_on_every_front(server, tmp_path, "stop")
    assert {r["front"] for r in rows} == set(range(server.fronts))
    server.signal(signal.SIGTERM)
    wait_event(server, 9002, 10)  # the stop is under way before the requests may end
    release(tmp_path, "stop")
    answers = [read_all(s) for s in socks]
    assert [status_of(a) for a in answers] == [200] * len(socks)
    assert server.proc.wait(30) == 0
