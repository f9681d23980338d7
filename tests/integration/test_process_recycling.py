"""Recycling, every trigger IIS has, on real processes with short limits: elapsed time, schedule,
virtual and private memory (several samples before acting), a config change (and
disallow_rotation_on_config_change), and on demand from the CLI and the admin API. Request-count
recycling is shown under load in test_process_overlap.py."""

from __future__ import annotations

import time

import psutil

from process_support import admin, events, exit_events, get, gone, last_seq, one_pool, pid_of, wait_event


def test_elapsed_time_recycles_overlapped_with_5074(wasp_server):
    server = wasp_server(one_pool('start_mode = "always_running"\n[pools.recycling]\ntime = "2s"'))
    first = pid_of(server)
    # The worker that answered (on a slow start an earlier one may have been recycled already).
    [event] = server.wait_until(lambda: [e for e in events(server, 5074) if e["pid"] == first][:1], 15,
                                what=lambda: f"5074 for pid {first}\n{server.diagnostics()}")
    assert event["reason"] == "time"
    server.wait_until(lambda: pid_of(server) != first, 15, what="a request served by the new worker")
    server.wait_until(lambda: gone(first), 15, what=f"the old worker {first} to exit")
    # Overlapped: the replacement was ready before the old worker left.
    ready = [e for e in events(server, 9014) if e["pid"] != first and e["seq"] > event["seq"]]
    exited = exit_events(server, first)
    assert ready and exited and ready[0]["seq"] < exited[0]["seq"], server.diagnostics()


def test_schedule_recycles_at_local_clock_times_with_5076(wasp_server):
    now = time.time()
    # Two entries, in case the server takes a while to start on a loaded machine.
    times = [time.strftime("%H:%M:%S", time.localtime(now + delay)) for delay in (4, 9)]
    server = wasp_server(one_pool(
        f'start_mode = "always_running"\n[pools.recycling]\nschedule = {times!r}'.replace("'", '"')))
    first = pid_of(server)
    [event] = wait_event(server, 5076, 20, pool="P")[:1]
    assert event["pid"] == first and event["reason"] == "schedule"
    server.wait_until(lambda: pid_of(server) != first, 15, what="the scheduled recycle's new worker")


def test_private_memory_acts_on_several_samples_not_one_spike(wasp_server):
    server = wasp_server(one_pool(
        'start_mode = "always_running"\nthreads = 2\n[pools.recycling]\nprivate_memory = "150MB"'))
    first = pid_of(server)
    assert psutil.Process(first).memory_full_info().uss < 150 << 20, "the idle worker is already over"
    # One spike: 300 MiB for 0.3 s, under one ping interval (0.5 s); at most one sample sees it.
    assert get(server, "/spike?mb=300&hold=0.3").status_code == 200
    time.sleep(2.5)  # five more samples, all under the limit
    assert not events(server, 5117), "one spike recycled the worker"
    assert pid_of(server) == first
    assert get(server, "/alloc?mb=300").status_code == 200
    [event] = wait_event(server, 5117, 15, pool="P")
    assert event["reason"] == "private_memory"
    server.wait_until(lambda: pid_of(server) != first, 15, what="a worker under the limit")
    server.wait_until(lambda: gone(first), 15, what="the worker over the limit to exit")


def test_virtual_memory_limit_set_by_a_reload_without_rotation(wasp_server):
    """Also shows disallow_rotation_on_config_change: the reload that sets the limit does not
    recycle; the limit then applies to the running worker."""
    pool = 'start_mode = "always_running"\nthreads = 2\n[pools.recycling]\n' \
           'disallow_rotation_on_config_change = true\nmemory = "{memory}"'
    server = wasp_server(one_pool(pool.replace("{memory}", "0")))
    first = pid_of(server)
    vms = psutil.Process(first).memory_info().vms
    server.config.write_text(server.config.read_text().replace(
        'memory = "0"', f'memory = "{vms + (1 << 30)}"'))  # room for malloc arenas of new threads
    mark = last_seq(server)
    server.cli("reload")
    wait_event(server, 9004, 10, after=mark)
    time.sleep(1.5)  # three samples under the new limit
    assert not events(server, 5080), "a reload recycled a pool with disallow_rotation_on_config_change"
    assert not events(server, 5077)
    assert pid_of(server) == first
    assert get(server, "/reserve?mb=2048").status_code == 200
    [event] = wait_event(server, 5077, 15, pool="P")
    assert event["pid"] == first and event["reason"] == "memory"
    server.wait_until(lambda: pid_of(server) != first, 15, what="the worker after the memory recycle")


def test_config_change_recycles_and_the_new_worker_sees_the_new_config(wasp_server):
    text = one_pool('start_mode = "always_running"\nenvironment_variables = { PROCAPP_COLOR = "blue" }')
    server = wasp_server(text)
    first = pid_of(server)
    server.config.write_text(server.config.read_text().replace('"blue"', '"green"'))
    server.cli("reload")
    [event] = wait_event(server, 5080, 15, pool="P")
    assert event["reason"] == "config_change"
    info = server.wait_until(lambda: (i := get(server, "/info").json())["pid"] != first and i, 15,
                             what="the recycled worker")
    assert info["env"]["PROCAPP_COLOR"] == "green"


def test_recycle_on_demand_from_the_cli_and_the_admin_api(wasp_server):
    server = wasp_server(one_pool('start_mode = "always_running"'))
    first = pid_of(server)
    result = server.cli("recycle", "pool", "P")
    assert result.stdout.strip() == '"P" successfully recycled'
    [event] = wait_event(server, 5079, 10, pool="P")
    assert event["reason"] == "on_demand"
    second = server.wait_until(lambda: (p := pid_of(server)) != first and p, 15, what="a new worker")
    status, answer = admin(server, "/pools/P/recycle", method="POST")
    assert (status, answer["ok"]) == (200, True)
    wait_event(server, 5079, 10, pool="P", count=2)
    server.wait_until(lambda: pid_of(server) not in (first, second), 15, what="a third worker")
    status, answer = admin(server, "/pools/Nope/recycle", method="POST")
    assert status == 404 and 'Cannot find APPPOOL object with identifier "Nope".' in answer["error"]
