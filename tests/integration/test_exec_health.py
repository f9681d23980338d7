"""Health pings see stuck threads: a pool with WSGI apps answers `ping` from its thread pool, so a
worker whose every thread is blocked stops answering and is replaced after ping_response_time
(event 5010), as is a worker whose event loop is blocked by an ASGI app. A worker with a free
thread keeps answering."""

from __future__ import annotations

from exec_support import events, exec_config, gone, in_background, pid_of, wait_event

FAST = dict(ping_interval="0.5s", ping_response_time="2s")


def _replaced(server, old: int) -> None:
    def new_pid():
        try:
            return pid_of(server) != old
        except AssertionError:
            return False  # a 503 while the pool has no worker

    server.wait_until(new_pid, 30, interval=0.1, what=lambda: f"a new worker\n{server.diagnostics()}")
    server.wait_until(lambda: gone(old), 15, what=lambda: f"pid {old} to be killed")


def test_every_wsgi_thread_blocked_means_no_pong_and_a_new_worker(wasp_server):
    server = wasp_server(exec_config("execwsgi:app", threads=2, **FAST))
    hung = pid_of(server)
    outcomes = [in_background(server, "/wait"), in_background(server, "/wait")]
    server.wait_until(lambda: len(server.list_json("requests")) == 2, 15,
                      what="two requests in flight")
    event = wait_event(server, 5010, 20)
    assert event["pid"] == hung and event["pool"] == "P"
    _replaced(server, hung)
    (server.dir / "release").write_text("go")  # nothing left to release: the threads died with it
    print("\nrequests on the killed worker got:", outcomes)


def test_one_free_thread_keeps_the_worker_answering_pings(wasp_server):
    server = wasp_server(exec_config("execwsgi:app", threads=2, ping_interval="0.2s",
                                     ping_response_time="5s"))
    first = pid_of(server)
    outcome = in_background(server, "/wait")
    server.wait_until(lambda: len(server.list_json("requests")) == 1, 15, what="a request in flight")
    # Pings keep coming (every 0.2 s) and the free thread answers them between these requests:
    # the served count the manager shows comes from the pongs.
    seen = {pid_of(server) for _ in range(20)}
    server.wait_until(lambda: [row["requests"] for row in server.list_json("wp")] >= [20], 15,
                      what=lambda: f"a pong counting 20 requests: {server.list_json('wp')}")
    assert seen == {first} and not events(server, 5010)
    (server.dir / "release").write_text("go")
    server.wait_until(lambda: outcome, 30, what="the released request")
    assert outcome == {"status": 200}
    assert pid_of(server) == first


def test_a_blocked_asgi_event_loop_is_replaced(wasp_server):
    server = wasp_server(exec_config("execasgi:app", **FAST))
    hung = pid_of(server)
    in_background(server, "/block")
    event = wait_event(server, 5010, 20)
    assert event["pid"] == hung
    _replaced(server, hung)
    (server.dir / "release").write_text("go")
