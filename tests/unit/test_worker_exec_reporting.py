"""What the manager and the CLI do with the worker's execution reports, sans I/O: the stuck event
(9030) and the recycle it starts, the join of the front's and the workers' request lists, and the
appcmd-style line."""

from __future__ import annotations

import random
import textwrap

from wasp.cli.output import request_line
from wasp.config.load import load_text
from wasp.manager import actions as A
from wasp.manager.events import CATALOGUE, format_message
from wasp.manager.inflight import merge
from wasp.manager.pools import WorkerState
from wasp.manager.supervisor import Supervisor


def _supervisor(pool_extra: str = ""):
    cfg = load_text(textwrap.dedent(f"""
        [[pools]]
        name = "P"
        start_mode = "always_running"
        {pool_extra}
        [[sites]]
        name = "S"
        id = 1
        bindings = ["http/127.0.0.1:8080:"]
        [[sites.applications]]
        path = "/"
        app = "m:app"
        pool = "P"
        """))
    sup = Supervisor(cfg, rng=random.Random(1))
    sup.start(0.0, 1_700_000_000.0)
    [w] = sup.workers.values()
    sup.worker_spawned(w.worker_id, 4242)
    sup.worker_ready(w.worker_id, 1.0)
    return sup, w


REPORT = {"op": "stuck", "stream": 3, "app": "1/", "url": "GET /hang", "elapsed_s": 2.0,
          "limit_s": 1.0, "stage": "ExecuteRequestHandler (python_app)", "thread": "wsgi-0",
          "stacks": 'Thread "wsgi-0":\n  File "app.py", line 3, in hang_here_forever\n'}


def test_stuck_worker_is_logged_with_its_stacks_and_recycled_overlapped():
    sup, w = _supervisor()
    actions = sup.worker_stuck(w.worker_id, 5.0, REPORT)
    [event] = [a for a in actions if isinstance(a, A.Event)]
    assert event.event_id == 9030 and event.pid == 4242 and event.pool == "P"
    assert "op" not in event.data and "hang_here_forever" in event.data["stacks"]
    level, message = format_message(9030, "P", 4242, event.data)
    assert level == "Error" and "GET /hang" in message and "hang_here_forever" in message
    # Overlapped: a new worker starts; the stuck one serves until it is ready.
    assert [a for a in actions if isinstance(a, A.SpawnWorker)]
    assert w.retiring and w.state is WorkerState.READY
    assert sup.worker_stuck(999, 6.0, REPORT) == []


def test_stuck_worker_with_overlapping_rotation_disallowed_is_stopped_first():
    sup, w = _supervisor("[pools.recycling]\ndisallow_overlapping_rotation = true")
    actions = sup.worker_stuck(w.worker_id, 5.0, REPORT)
    assert [a for a in actions if isinstance(a, A.StopWorker)]
    assert w.state is WorkerState.DRAINING


def test_event_9030_is_in_the_catalogue():
    assert CATALOGUE[9030][0] == "Error" and "{stacks}" in CATALOGUE[9030][1]


def test_merge_joins_on_worker_and_stream():
    front = [
        {"id": 1, "url": "/slow", "worker_id": 2, "stream": 5, "stage": "ExecuteRequestHandler"},
        {"id": 2, "url": "/queued", "worker_id": None, "stream": None, "stage": "Queued"},
        {"id": 3, "url": "/other", "worker_id": 3, "stream": 5, "stage": "SendResponse"},
    ]
    workers = {2: [{"stream": 5, "stage": "ExecuteRequestHandler", "module": "python_app",
                    "thread": "wsgi-1", "modules": "http_cache,python_app"}],
               3: [{"stream": 9, "stage": "BeginRequest", "module": ""}]}
    rows = merge(front, workers)
    assert rows[0]["module"] == "python_app" and rows[0]["thread"] == "wsgi-1"
    assert rows[0]["modules"] == "http_cache,python_app"
    assert "module" not in rows[1] and rows[1]["stage"] == "Queued"
    assert rows[2]["stage"] == "SendResponse" and "module" not in rows[2]
    assert "module" not in front[0]  # the input is not changed


def test_request_line_prints_the_module_like_appcmd():
    row = {"id": 17, "method": "GET", "url": "/slow", "elapsed_ms": 2840,
           "client": ["127.0.0.1", 50000], "stage": "ExecuteRequestHandler", "module": "python_app"}
    assert request_line(row) == ('REQUEST "17" (url:GET /slow, time:2840 msec, client:127.0.0.1, '
                                 'stage:ExecuteRequestHandler, module:python_app)')
    row.pop("module")
    assert request_line(row).endswith("stage:ExecuteRequestHandler)")


def test_a_slow_pong_is_fine_up_to_ping_response_time():
    # A pong now waits behind the requests queued for the WSGI threads: the manager must take a
    # late one as long as it comes within ping_response_time.
    sup, w = _supervisor('[pools.process_model]\nping_interval = "1s"\nping_response_time = "5s"')
    pings = [a for a in sup.tick(2.0, 1_700_000_000.0) if isinstance(a, A.PingWorker)]
    assert pings and w.ping_sent == 2.0
    assert not [a for a in sup.tick(6.9, 1_700_000_000.0) if isinstance(a, A.Event)]
    sup.worker_pong(w.worker_id, 6.9)
    assert w.ping_sent is None and w.state is WorkerState.READY
    later = sup.tick(8.0, 1_700_000_000.0) + sup.tick(12.9, 1_700_000_000.0)
    assert not [a for a in later if isinstance(a, A.Event) and a.event_id == 5010]
    # No pong at all: replaced once ping_response_time has passed.
    dead = sup.tick(13.1, 1_700_000_000.0)
    assert [a.event_id for a in dead if isinstance(a, A.Event)] == [5010]


def test_request_line_names_https_only():
    row = {"id": 3, "method": "GET", "url": "/", "elapsed_ms": 5, "client": ["127.0.0.1", 5000],
           "stage": "Queued"}
    plain = request_line({**row, "protocol": "HTTP/1.1"})
    assert plain == request_line(row) and "protocol" not in plain
    assert request_line({**row, "protocol": "HTTPS/1.1"}).endswith(", stage:Queued, protocol:HTTPS/1.1)")
