"""Idle timeout and demand start: a pool with no request for idle_timeout scales to zero (5186)
and the next request starts a worker, waiting in the pool's queue meanwhile; always_running keeps
a worker up; initialization_pages are requested by every new worker before it takes traffic."""

from __future__ import annotations

import threading
import time

from process_support import (
    events, get, gone, last_seq, one_pool, pid_of, pools, wait_event, workers,
)


def test_idle_pool_scales_to_zero_and_the_next_request_waits_for_a_new_worker(wasp_server):
    server = wasp_server(one_pool(
        'environment_variables = { PROCAPP_IMPORT_SLEEP = "1" }\n'
        '[pools.process_model]\nidle_timeout = "1s"'))
    assert workers(server) == [], "an on_demand pool started a worker before any request"
    first = pid_of(server)
    [event] = wait_event(server, 5186, 15, pool="P")
    assert event["pid"] == first
    server.wait_until(lambda: gone(first), 10, what="the idle worker to exit")
    # Exited is not yet reaped: the manager drops the worker when it reaps it.
    server.wait_until(lambda: workers(server) == [] and pools(server)["P"]["workers"] == 0, 10,
                      what=lambda: (workers(server), pools(server)["P"]))
    assert pools(server)["P"]["state"] == "Started"

    answer: dict = {}
    thread = threading.Thread(target=lambda: answer.update(r=get(server, "/pid", timeout=30)), daemon=True)
    thread.start()
    # The worker takes a second to import its app; the request waits in the queue meanwhile.
    server.wait_until(lambda: pools(server)["P"]["queue"] >= 1, 10, interval=0.05,
                      what="the request to show in the pool's queue")
    thread.join(30)
    assert answer["r"].status_code == 200 and int(answer["r"].text) != first


def test_always_running_keeps_a_worker_without_any_request(wasp_server):
    server = wasp_server(one_pool(
        'start_mode = "always_running"\n[pools.process_model]\nidle_timeout = "1s"'))
    first = server.wait_until(lambda: [w["pid"] for w in workers(server) if w["state"] == "Ready"], 20,
                              what="a worker started with no request")[0]
    # IIS stops an idle always-running worker and starts a fresh one at once.
    wait_event(server, 5186, 15, pool="P")
    second = server.wait_until(
        lambda: [w["pid"] for w in workers(server) if w["state"] == "Ready" and w["pid"] != first], 20,
        what="the always-running pool to start a worker on its own")[0]
    # (The new one is idle too and may itself be replaced a second later: that is the same rule.)
    assert second != first


def test_initialization_pages_run_before_the_first_request_and_after_a_recycle(wasp_server):
    server = wasp_server(one_pool(
        'start_mode = "always_running"', app_extra='initialization_pages = ["/warm"]'))
    # always_running: the worker warms up with no client around.
    [ready] = wait_event(server, 9014, 20, pool="P")
    info = get(server, "/info").json()
    assert [path for path, _ in info["warmups"]] == ["/warm"], info
    assert info["pid"] == ready["pid"]
    assert info["warmups"][0][1] < time.time()

    mark = last_seq(server)
    server.cli("recycle", "pool", "P")
    wait_event(server, 9014, 20, pool="P", after=mark)
    info2 = server.wait_until(lambda: (i := get(server, "/info").json())["pid"] != info["pid"] and i, 15,
                              what="the recycled worker")
    assert [path for path, _ in info2["warmups"]] == ["/warm"], info2


def test_on_demand_start_warms_up_before_the_queued_request(wasp_server):
    server = wasp_server(one_pool("", app_extra='initialization_pages = ["/warm"]'))
    info = get(server, "/info").json()  # this very request started the worker
    assert [path for path, _ in info["warmups"]] == ["/warm"], info
    assert not events(server, 9012)
