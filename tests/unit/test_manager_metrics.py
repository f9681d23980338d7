"""wasp.manager.metrics: APP_POOL_WAS counters from the supervisor's actions, the fronts'
snapshots summed (an exited front's counters kept, its gauges not), and the families rendered."""

from __future__ import annotations

import random
import textwrap

from wasp.common.exposition import DURATION_BOUNDS, render
from wasp.config.load import load_text
from wasp.manager import actions as A
from wasp.manager.metrics import FrontTotals, ManagerCounters, families, merge
from wasp.manager.supervisor import Supervisor

CONFIG = textwrap.dedent("""
    [[pools]]
    name = "P"
    start_mode = "always_running"
    [[pools]]
    name = 'odd \\ pool é'
    [[sites]]
    name = 'Site "A"'
    id = 1
    bindings = ["http/127.0.0.1:8080:"]
    [[sites.applications]]
    path = "/"
    app = "m:app"
    pool = "P"
    """)


def sample(text: str, line_start: str) -> float:
    found = [line for line in text.splitlines() if line.startswith(line_start + " ")]
    assert len(found) == 1, (line_start, [l for l in text.splitlines() if l.startswith(line_start.split("{")[0])])
    return float(found[0].rsplit(" ", 1)[1])


def front_snapshot(get=1, queued=0, oldest=0.0, hits=0, served=0, inflight=0, crash_buckets=None):
    buckets = [0] * (len(DURATION_BOUNDS) + 1)
    buckets[2] = get
    return {
        "op": "metrics", "id": 7, "front": 0, "counting": True, "connections": 1,
        "sites": {"1": {"methods": [get] + [0] * 17, "statuses": [0, 0, get, 0, 0, 0], "sent": 100 * get,
                        "received": 10 * get, "not_found": 0, "locked": 0, "buckets": buckets,
                        "seconds": 0.02 * get, "connections": 1}},
        "pools": {"P": {"queued": queued, "oldest": oldest, "arrivals": get, "rejected": {"QueueFull": 1},
                        "served": served, "buckets": buckets, "seconds": 0.02 * get}},
        "workers": {"1": {"pool": "P", "inflight": inflight, "served": served}},
        "cache": {"hits": hits, "misses": 1, "entries": 2, "bytes": 300, "flushes": 0, "stores": 2},
    }


def test_pool_counters_come_from_the_supervisors_actions():
    c = ManagerCounters()
    for action in [A.SpawnWorker(1, "P"), A.SpawnWorker(2, "P"), A.Event(5009, pool="P"),
                   A.Event(9009, pool="P"), A.Event(5010, pool="P"), A.Event(9008, pool="P"),
                   A.Event(9012, pool="P"), A.Event(5013, pool="P"), A.Event(5079, pool="P"),
                   A.Event(5074, pool="P"), A.Event(5074, pool="P"), A.Event(5002, pool="P"),
                   A.Event(9014, pool="P"), A.Event(9001), A.StopWorker(1, True)]:
        c.observe(action)
    p = c.pools["P"]
    assert p.created == 2 and p.failures == {"crash": 1, "load": 1}
    assert (p.ping_failures, p.startup_failures, p.shutdown_failures, p.disables) == (1, 2, 1, 1)
    assert p.recycles == {"on_demand": 1, "time": 2}
    assert list(c.pools) == ["P"]


def test_fronts_sum_and_an_exited_front_keeps_its_counters_not_its_gauges():
    totals = FrontTotals()
    totals.answered(0, front_snapshot(get=3, queued=2, oldest=1.5, hits=4, served=3, inflight=1))
    totals.answered(1, front_snapshot(get=5, queued=1, oldest=4.0, hits=1, served=5, inflight=2))
    both = totals.total([0, 1])
    site = both["sites"]["1"]
    assert site["methods"][0] == 8 and site["sent"] == 800 and site["connections"] == 2
    assert both["pools"]["P"]["queued"] == 3 and both["pools"]["P"]["oldest"] == 4.0
    assert both["pools"]["P"]["rejected"] == {"QueueFull": 2}
    assert both["workers"]["1"] == {"pool": "P", "inflight": 3, "served": 8}
    assert both["cache"]["hits"] == 5 and both["cache"]["entries"] == 4
    assert "id" not in both and "front" not in both
    totals.exited(1)
    totals.answered(1, front_snapshot(get=1, queued=0, hits=0, served=1))   # its successor
    after = totals.total([0, 1])
    assert after["sites"]["1"]["methods"][0] == 3 + 5 + 1          # never goes back
    assert after["sites"]["1"]["connections"] == 2                 # live fronts only
    assert after["pools"]["P"]["queued"] == 2 and after["cache"]["entries"] == 4


def test_merge_pads_lists_of_different_lengths():
    assert merge({"a": [1]}, {"a": [1, 2, 3]}) == {"a": [2, 2, 3]}


def test_families_render_pools_sites_workers_with_escaped_labels():
    cfg = load_text(CONFIG)
    sup = Supervisor(cfg, rng=random.Random(1))
    counters = ManagerCounters()
    actions = sup.start(100.0, 1_700_000_000.0)
    for action in actions:
        counters.observe(action)
        if isinstance(action, A.SpawnWorker):
            sup.worker_spawned(action.worker_id, 4242)
    for action in sup.worker_ready(1, 101.0):
        counters.observe(action)
    totals = FrontTotals()
    totals.answered(0, front_snapshot(get=3, served=3, inflight=1))
    text = render(families(cfg, sup, counters, totals.total([0]), {1: 7}, 160.0,
                           {"version": "9.9", "uptime_s": 60.0, "fronts": 1, "answering": 1}))
    assert sample(text, 'wasp_site_requests_total{site="Site \\"A\\"",method="GET"}') == 3
    assert sample(text, 'wasp_site_request_duration_seconds_bucket{site="Site \\"A\\"",le="0.025"}') == 3
    assert sample(text, 'wasp_site_request_duration_seconds_count{site="Site \\"A\\""}') == 3
    assert sample(text, 'wasp_pool_state{pool="P",state="Started"}') == 1
    assert sample(text, 'wasp_pool_state{pool="P",state="Stopped"}') == 0
    assert sample(text, 'wasp_pool_state{pool="odd \\\\ pool é",state="Started"}') == 1
    assert sample(text, 'wasp_pool_uptime_seconds{pool="P"}') == 60
    assert sample(text, 'wasp_pool_worker_processes_created_total{pool="P"}') == 1
    assert sample(text, 'wasp_pool_recycles_total{pool="P",reason="time"}') == 0
    assert sample(text, 'wasp_queue_rejected_requests_total{pool="P",reason="QueueFull"}') == 1
    assert sample(text, 'wasp_worker_threads{pool="P",worker="1",pid="4242"}') == 7
    assert sample(text, 'wasp_worker_active_requests{pool="P",worker="1",pid="4242"}') == 1
    assert sample(text, 'wasp_cache_misses_total') == 1
    assert sample(text, 'wasp_info{version="9.9"}') == 1
    # Every line is a comment or "name{labels} value": nothing a label could have broken.
    for line in text.splitlines():
        assert line.startswith("# ") or line.startswith("wasp_"), line


def test_no_front_answer_yet_still_renders_the_managers_numbers():
    cfg = load_text(CONFIG)
    sup = Supervisor(cfg, rng=random.Random(1))
    sup.start(100.0, 1_700_000_000.0)
    text = render(families(cfg, sup, ManagerCounters(), {}, {}, 100.0, {}))
    assert sample(text, 'wasp_pool_state{pool="P",state="Started"}') == 1
    assert "wasp_site_requests_total" not in text      # nothing counted: no made-up zeros
    assert sample(text, 'wasp_site_current_connections{site="Site \\"A\\""}') == 0


def test_the_grafana_dashboard_names_only_metrics_wasp_renders():
    import json
    import pathlib
    import re
    cfg = load_text(CONFIG)
    sup = Supervisor(cfg, rng=random.Random(1))
    sup.start(100.0, 1_700_000_000.0)
    totals = FrontTotals()
    totals.answered(0, front_snapshot(get=1))
    names = {f.name for f in families(cfg, sup, ManagerCounters(), totals.total([0]), {}, 100.0, {})}
    names |= {n + suffix for n in names for suffix in ("_bucket", "_sum", "_count")}
    text = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "grafana-wasp.json").read_text()
    used = set(re.findall(r"\bwasp_[a-z_]+", text)) - {"wasp_"}
    json.loads(text)
    assert used and used <= names, used - names
