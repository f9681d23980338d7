"""Overlapped recycling loses nothing: the new worker has loaded its app before the old one stops
taking requests, the old one finishes what it has in flight (bounded by shutdown_time_limit, then
SIGKILL with event 5013), and disallow_overlapping_rotation stops the old worker first."""

from __future__ import annotations

import threading

from process_support import (
    Load, events, exit_events, get, gone, last_seq, one_pool, percentiles, pid_of, wait_event,
)


def test_recycles_under_load_fail_no_request(wasp_server):
    server = wasp_server(one_pool(
        'start_mode = "always_running"\nthreads = 4\n[pools.recycling]\nrequests = 150'))
    pid_of(server)
    with Load(server, "/pid", threads=4) as load:
        load.wait_for(50)
        for _ in range(3):  # on demand, on top of the request-count recycles
            mark = last_seq(server)
            server.cli("recycle", "pool", "P")
            wait_event(server, 9014, 20, pool="P", after=mark)
            load.wait_for(100)
        server.wait_until(lambda: len(events(server, 5075)) >= 3, 60, interval=0.2,
                          what=lambda: f"3 request-count recycles\n{server.diagnostics()}")
        load.wait_for(50)
    print(f"\n{load.total} requests over {len(load.pids)} workers: {dict(load.outcomes)}; "
          f"latency {percentiles(load.latencies)}")
    assert set(load.outcomes) == {200}, (dict(load.outcomes), load.errors[:5], server.diagnostics())
    # Recycles that overlap merge (a recycle replaces a replacement still starting), so fewer
    # workers than recycles may have served.
    assert len(events(server, 5079)) == 3 and len(load.pids) >= 4, load.pids


def test_slow_loading_app_is_ready_before_the_old_worker_stops(wasp_server):
    """The app takes 1.5 s to import; requests keep going to the old worker meanwhile."""
    server = wasp_server(one_pool(
        'start_mode = "always_running"\nenvironment_variables = { PROCAPP_IMPORT_SLEEP = "1.5" }'))
    first = pid_of(server)
    with Load(server, "/pid", threads=2) as load:
        load.wait_for(20)
        mark = last_seq(server)
        server.cli("recycle", "pool", "P")
        [ready] = wait_event(server, 9014, 20, pool="P", after=mark)
        server.wait_until(lambda: gone(first), 15, what="the old worker to exit")
        load.wait_for(20)
    [exited] = exit_events(server, first)
    assert ready["seq"] < exited["seq"], "the old worker stopped before its replacement was ready"
    assert ready["startup_s"] >= 1.5
    print(f"\n{dict(load.pids)}; latency {percentiles(load.latencies)}")
    assert set(load.outcomes) == {200}, (dict(load.outcomes), load.errors[:5])
    assert load.pids[first] > 0 and len(load.pids) == 2


def test_old_worker_finishes_its_in_flight_request(wasp_server, tmp_path):
    server = wasp_server(one_pool('start_mode = "always_running"'))
    first = pid_of(server)
    mark, release = tmp_path / "in-flight", tmp_path / "release"
    outcome: dict = {}

    def slow():
        r = get(server, f"/hold?mark={mark}&release={release}", timeout=90)
        outcome.update(status=r.status_code, text=r.text)

    thread = threading.Thread(target=slow, daemon=True)
    thread.start()
    server.wait_until(mark.exists, 15, what="the slow request to reach the app")
    server.cli("recycle", "pool", "P")
    # The new worker takes requests while the old one still runs the slow one.
    second = server.wait_until(lambda: (p := pid_of(server)) != first and p, 15, what="the new worker")
    assert not gone(first), "the old worker left before finishing its request"
    assert not outcome
    release.write_text("")
    thread.join(30)
    assert outcome == {"status": 200, "text": f"released in {first}"}, (outcome, server.diagnostics())
    server.wait_until(lambda: gone(first), 15, what="the old worker to exit after its request")
    assert [e["pid"] for e in exit_events(server, first)] == [first]
    assert [e["pid"] for e in events(server, 9016)] == [first]
    assert not events(server, 5013)
    assert pid_of(server) == second


def test_shutdown_time_limit_kills_a_request_that_will_not_end(wasp_server, tmp_path):
    server = wasp_server(one_pool(
        'start_mode = "always_running"\n[pools.process_model]\nshutdown_time_limit = "1s"'))
    first = pid_of(server)
    mark = tmp_path / "in-flight"
    outcome: dict = {}

    def stuck():
        try:
            r = get(server, f"/slow?s=60&mark={mark}", timeout=30)
            outcome["status"] = r.status_code
        except Exception as exc:  # the worker was killed under it: any end is fine, no hang
            outcome["error"] = type(exc).__name__

    thread = threading.Thread(target=stuck, daemon=True)
    thread.start()
    server.wait_until(mark.exists, 15, what="the stuck request to reach the app")
    server.cli("recycle", "pool", "P")
    [event] = wait_event(server, 5013, 15, pool="P")
    assert event["pid"] == first
    server.wait_until(lambda: gone(first), 10, what="SIGKILL of the worker past its limit")
    thread.join(30)
    assert outcome, "the client of the killed request never got an answer"
    print("\nthe client of the killed request got:", outcome)
    assert pid_of(server) != first


def test_disallow_overlapping_rotation_stops_the_old_worker_first(wasp_server):
    server = wasp_server(one_pool(
        'start_mode = "always_running"\n[pools.recycling]\ndisallow_overlapping_rotation = true'))
    first = pid_of(server)
    with Load(server, "/pid", threads=2) as load:
        load.wait_for(20)
        mark = last_seq(server)
        server.cli("recycle", "pool", "P")
        [started] = wait_event(server, 9013, 20, pool="P", after=mark)
        wait_event(server, 9014, 20, pool="P", after=mark)
        load.wait_for(20)
    [exited] = exit_events(server, first)
    assert exited["seq"] < started["seq"], "the new worker started before the old one stopped"
    # Requests that came in between waited in the pool's queue.
    assert set(load.outcomes) == {200}, (dict(load.outcomes), load.errors[:5])
    print(f"\nnon-overlapped: {dict(load.pids)}; latency {percentiles(load.latencies)}")
