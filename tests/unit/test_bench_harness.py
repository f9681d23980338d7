"""The benchmark harness's readers: wrk's report, `list wp --json`, ratios and targets."""

from __future__ import annotations

import pathlib
import sys

import pytest

REPO = str(pathlib.Path(__file__).resolve().parents[2])
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bench import report, wrk  # noqa: E402
from bench.measure import Row, Rss, summary  # noqa: E402
from bench.stress import worker_pids_from_json  # noqa: E402

WRK_NON2XX = """Running 1s test @ http://127.0.0.1:18777/nonexistent
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   764.61us  460.42us   9.38ms   96.86%
    Req/Sec     5.30k   149.40     5.48k    81.82%
  Latency Distribution
     50%  711.00us
     75%  844.00us
     90%    1.00ms
     99%    1.55ms
  5792 requests in 1.10s, 2.87MB read
  Non-2xx or 3xx responses: 5792
Requests/sec:   5265.35
Transfer/sec:      2.61MB
"""

WRK_SOCKET_ERRORS = """Running 30s test @ http://127.0.0.1:40000/
  1 threads and 64 connections
  Latency Distribution
     50%    4.80ms
     75%    5.50ms
     90%    6.70ms
     99%    1.20s
  312345 requests in 30.01s, 40.00MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
Requests/sec:  10408.20
Transfer/sec:      1.33MB
"""


def test_parse_reads_rate_percentiles_and_non2xx():
    r = wrk.parse(WRK_NON2XX)
    assert (r.requests, r.rps, r.non2xx) == (5792, 5265.35, 5792)
    assert r.p50_ms == pytest.approx(0.711)
    assert r.p99_ms == pytest.approx(1.55)
    assert r.seconds == pytest.approx(1.10)
    assert r.socket_errors == 0
    assert r.error_text() == "5792 non-2xx"


def test_parse_reads_socket_errors_and_second_latencies():
    r = wrk.parse(WRK_SOCKET_ERRORS)
    assert (r.connect, r.read, r.write, r.timeout) == (1, 2, 3, 4)
    assert r.errors == 10
    assert r.p99_ms == pytest.approx(1200.0)
    assert r.error_text() == "1 connect, 2 read, 3 write, 4 timeout"


def test_parse_refuses_what_is_not_a_report():
    with pytest.raises(wrk.WrkFailed):
        wrk.parse("unable to connect to 127.0.0.1:1 Connection refused\n")


@pytest.mark.parametrize("text", [
    '[{"pid": 11, "pool": "bench"}, {"pid": 12, "pool": "other"}, {"pid": 13, "pool": "bench"}]',
    '{"workers": [{"process_id": 11, "application_pool": "bench"}, {"process_id": 13}]}',
    "[11, 13]",
])
def test_worker_pids_from_json_keeps_the_pools_workers(text):
    assert worker_pids_from_json(text, "bench") == [11, 13]


def test_worker_pids_from_json_raises_on_text():
    with pytest.raises(ValueError):
        worker_pids_from_json('WP "11" (applicationPool:bench)', "bench")


def _row(scenario, server, rps, p99, baseline=False, non2xx=0):
    r = wrk.WrkResult(requests=int(rps * 10), seconds=10.0, rps=rps, p50_ms=1.0, p99_ms=p99,
                      non2xx=non2xx, connect=0, read=0, write=0, timeout=0, raw="")
    return Row(scenario, server, baseline, r)


def test_table_shows_ratio_to_the_scenarios_baseline():
    rows = [_row("wsgi hello", "nginx -> gunicorn gthread", 10_000, 18.0, baseline=True),
            _row("wsgi hello", "wasp", 25_000, 4.0),
            Row("asgi hello", "wasp", failure="wasp did not start: boom")]
    lines = report.table(rows)
    assert lines[2].endswith("| 1.00x (baseline) |")
    assert lines[3].endswith("| 2.50x |")
    assert "did not run" in lines[4]


def test_targets_need_ratio_lower_p99_and_no_errors():
    base = _row("wsgi hello", "nginx -> gunicorn gthread", 10_000, 18.0, baseline=True)
    assert report.targets([base, _row("wsgi hello", "wasp", 25_000, 4.0)], None)[0].startswith("PASS")
    assert report.targets([base, _row("wsgi hello", "wasp", 25_000, 20.0)], None)[0].startswith("FAIL")
    assert report.targets([base, _row("wsgi hello", "wasp", 15_000, 4.0)], None)[0].startswith("FAIL")
    errors = _row("wsgi hello", "wasp", 25_000, 4.0, non2xx=3)
    assert report.targets([base, errors], None)[0].startswith("FAIL")


def test_targets_say_why_wasp_did_not_run_and_judge_rss():
    rows = [_row("asgi hello", "uvicorn", 40_000, 5.0, baseline=True),
            Row("asgi hello", "wasp", failure="wasp did not start: exited with code 1:\nImportError: x")]
    lines = report.targets(rows, Rss(front_mib=31.5, manager_mib=30.0))
    assert lines[0] == "FAIL asgi hello: wasp did not run (wasp did not start: exited with code 1: ImportError: x)"
    assert lines[1].startswith("PASS rss: wasp front 31.5 MiB")
    assert report.targets([], Rss(front_mib=45.0))[0].startswith("FAIL rss")


def test_summary_joins_first_and_last_line():
    assert summary("wasp did not start:\n  Traceback\n  ValueError: bad\n") == "wasp did not start: ValueError: bad"
    assert summary("one line") == "one line"


def test_combine_takes_medians_and_sums_errors():
    from bench.measure import combine
    rounds = [_row("static 1k", "nginx", rps, p99, baseline=True, non2xx=n)
              for rps, p99, n in ((100.0, 3.0, 0), (300.0, 9.0, 1), (200.0, 5.0, 2))]
    row = combine(rounds)
    assert (row.result.rps, row.result.p99_ms, row.result.non2xx) == (200.0, 5.0, 3)
    assert row.rounds == [100.0, 300.0, 200.0] and row.baseline
    assert "(100–300)" in report.table([row])[2]


def test_combine_keeps_the_failure_when_every_round_failed():
    from bench.measure import combine
    row = combine([Row("asgi hello", "wasp", failure="wasp did not start: x")] * 2)
    assert row.result is None and row.failure == "wasp did not start: x"


@pytest.mark.parametrize("app", ["wsgi_hello", "asgi_hello", None])
def test_generated_wasp_toml_is_a_valid_config(app, tmp_path):
    from bench.servers import STATIC_DIR, wasp_toml
    from wasp.config.load import load
    path = tmp_path / "wasp.toml"
    path.write_text(wasp_toml(8123, app, wasp_log=False,
                              pool_extra="[pool_defaults.failure]\nrapid_fail_protection = false\n"))
    cfg = load(str(path))
    (pool,) = cfg.pools
    assert (pool.name, pool.max_processes, pool.threads, pool.start_mode) == ("bench", 2, 16, "always_running")
    assert pool.failure.rapid_fail_protection is False
    (site,) = cfg.sites
    assert site.bindings == ["http/127.0.0.1:8123:"] and site.log.enabled is False
    (application,) = site.applications
    assert application.pool == "bench"
    if app:
        assert application.app == f"bench.apps.{app}:app"
    else:
        assert application.physical_path == STATIC_DIR
