"""Application.execution_timeout through real processes: a request past its limit gets 503 (or a
cut connection once its response started); a WSGI thread that never comes back makes the worker
report every thread's stack (event 9030, shown by `wasp events`) and the manager replaces it while
the pool keeps serving; an ASGI request's task is cancelled."""

from __future__ import annotations

import socket

from exec_support import events, exec_config, gone, get, in_background, pid_of, wait_event
from process_support import exit_events


def test_wsgi_request_past_its_limit_gets_503_and_the_stuck_worker_is_replaced(wasp_server):
    server = wasp_server(exec_config("execwsgi:app", execution_timeout="1s"))
    first = pid_of(server)

    r = get(server, "/hang")
    assert r.status_code == 503, (r.status_code, r.text[:300])
    # The other threads serve on while the hung one sleeps.
    assert pid_of(server) == first

    event = wait_event(server, 9030)
    assert event["pid"] == first and event["pool"] == "P"
    assert event["url"] == "GET /hang" and event["app"] == "1/"
    assert "hang_here_forever" in event["stacks"]
    assert 'Thread "wsgi-' in event["stacks"] and "(running the request)" in event["stacks"]
    shown = server.cli("events").stdout
    assert "9030" in shown and "hang_here_forever" in shown, shown[-3000:]

    # Replaced by an overlapped recycle: a new pid answers, the old process leaves.
    statuses = []

    def replaced():
        r = get(server, "/pid")
        statuses.append(r.status_code)
        return r.status_code == 200 and int(r.text) != first

    server.wait_until(replaced, 30, interval=0.1, what=lambda: f"a new worker\n{server.diagnostics()}")
    server.wait_until(lambda: gone(first), 30, what=lambda: f"pid {first} to exit\n{server.diagnostics()}")
    assert set(statuses) == {200}, statuses
    assert len(events(server, 9030)) == 1
    # It left by itself (a graceful stop does not wait for the request already cut), not killed.
    # Its exit event is written when the manager reaps it, a moment after it is gone.
    codes = server.wait_until(lambda: [e["code"] for e in exit_events(server, first)], 10,
                              what=lambda: f"the exit event of {first}\n{server.diagnostics()}")
    assert codes == [0]


def test_a_started_response_past_its_limit_is_cut(wasp_server):
    server = wasp_server(exec_config("execwsgi:app", execution_timeout="1s"))
    with server.connect(timeout=30) as conn:
        conn.send(server.build_request("GET", "/stream-hang"))
        _version, status, _reason, headers, _head = conn.read_head()
        assert status == 200
        rest = b""
        try:
            rest = conn.read_until_close()
        except ConnectionError:
            pass  # a reset is a cut too
    data = conn.buf + rest
    assert b"first chunk" in data
    assert not data.endswith(b"0\r\n\r\n"), "the chunked body must not be completed"
    assert b"never" not in data


def test_asgi_request_past_its_limit_gets_503_and_its_task_is_cancelled(wasp_server):
    server = wasp_server(exec_config("execasgi:app", execution_timeout="1s"))
    first = pid_of(server)
    r = get(server, "/hang")
    assert r.status_code == 503, (r.status_code, r.text[:300])
    marker = server.dir / "cancelled"
    server.wait_until(marker.exists, 15, what=lambda: f"the task to be cancelled\n{server.diagnostics()}")
    # A cancelled task ends: nothing is stuck, the worker serves on.
    assert pid_of(server) == first
    assert get(server, "/pid").status_code == 200


def test_without_a_limit_nothing_is_cut(wasp_server):
    server = wasp_server(exec_config("execwsgi:app"))
    outcome = in_background(server, "/wait")
    server.wait_until(lambda: any(row.get("url") == "/wait" for row in server.list_json("requests")),
                      15, what="the request to be in flight")
    (server.dir / "release").write_text("go")
    server.wait_until(lambda: outcome, 30, what="the released request to answer")
    assert outcome == {"status": 200}


def test_an_asgi_task_that_ignores_its_cancellation_makes_the_worker_stuck(wasp_server):
    server = wasp_server(exec_config("execasgi:app", execution_timeout="1s"))
    first = pid_of(server)
    assert get(server, "/stubborn").status_code == 503
    event = wait_event(server, 9030)
    assert event["pid"] == first and event["url"] == "GET /stubborn" and event["thread"] == ""
    assert "Coroutine of the request:" in event["stacks"] and "refuse_to_stop" in event["stacks"]

    def replaced():
        r = get(server, "/pid")
        return r.status_code == 200 and int(r.text) != first

    server.wait_until(replaced, 30, interval=0.1, what=lambda: f"a new worker\n{server.diagnostics()}")
    # The stubborn task does not keep the old worker from leaving on its own.
    server.wait_until(lambda: gone(first), 30, what=lambda: f"pid {first} to exit\n{server.diagnostics()}")
    # Its exit event is written when the manager reaps it, a moment after it is gone.
    codes = server.wait_until(lambda: [e["code"] for e in exit_events(server, first)], 10,
                              what=lambda: f"the exit event of {first}\n{server.diagnostics()}")
    assert codes == [0]
