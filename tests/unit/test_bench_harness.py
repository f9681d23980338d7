"""The benchmark harness's readers: wrk's report, `list wp --json`, ratios and targets."""

from __future__ import annotations

import os
import shutil
import subprocess
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


# -- the cost model (bench/cost.py) --------------------------------------------------------------

from bench import cost  # noqa: E402


def _p(pid, label, cpu, created=1.0):
    return cost.Proc(pid=pid, created=created, label=label, cpu_s=cpu)


def test_cost_divides_each_process_cpu_by_the_requests():
    before = [_p(10, "manager", 1.0), _p(11, "front", 2.0), _p(12, "worker[0]", 0.5),
              _p(13, "worker[1]", 0.5)]
    after = [_p(11, "front", 2.0 + 1.12), _p(12, "worker[0]", 0.5 + 0.41),
             _p(13, "worker[1]", 0.5 + 0.43), _p(10, "manager", 1.0)]
    c = cost.difference(before, after, requests=100_000, client_cpu_s=0.8)
    per = dict(c.per_request_us())
    assert per["front"] == pytest.approx(11.2)
    assert per["worker[0]"] == pytest.approx(4.1)
    assert per["worker[1]"] == pytest.approx(4.3)
    assert per["manager"] == pytest.approx(0.0)
    assert c.total_us() == pytest.approx(19.6)
    assert c.client_us() == pytest.approx(8.0)  # reported, never part of the total
    assert cost.line(c) == "front 11.2 µs, worker[0] 4.1, worker[1] 4.3, manager 0.0, total 19.6"
    assert c.notes == []


def test_cost_counts_a_new_process_from_zero_and_says_when_one_exited():
    before = [_p(20, "arbiter", 5.0), _p(21, "worker[0]", 3.0)]
    after = [_p(20, "arbiter", 5.1), _p(22, "worker[0]", 0.2)]
    c = cost.difference(before, after, requests=1000)
    assert dict(c.per_request_us()) == {"arbiter": pytest.approx(100.0), "worker[0]": pytest.approx(200.0)}
    assert any("pid 22" in n and "started during" in n for n in c.notes)
    assert any("pid 21" in n and "exited during" in n for n in c.notes)


def test_cost_a_reused_pid_is_another_process():
    before = [_p(30, "worker[0]", 9.0, created=1.0)]
    after = [_p(30, "worker[0]", 0.5, created=2.0)]
    assert cost.difference(before, after, requests=1).cpu_s == {"worker[0]": pytest.approx(0.5)}


def test_cost_without_requests_has_no_rate():
    c = cost.difference([_p(1, "main", 1.0)], [_p(1, "main", 2.0)], requests=0)
    assert c.per_request_us() == [] and c.total_us() is None
    assert cost.line(c) == "total n/a"


def test_cost_merge_weights_rounds_by_their_requests():
    a = cost.Cost({"front": 1.0, "worker[0]": 1.0}, requests=100_000, client_cpu_s=1.0, load_1m=[0.5])
    b = cost.Cost({"front": 3.0, "worker[0]": 1.0}, requests=300_000, client_cpu_s=1.0, load_1m=[4.0])
    m = cost.merge([a, None, b])
    assert m.load_1m == [0.5, 4.0] and cost.load_text(m) == "0.5–4.0"
    assert cost.load_text(a) == "0.5" and cost.load_text(cost.Cost()) == "n/a"
    assert dict(m.per_request_us()) == {"front": pytest.approx(10.0), "worker[0]": pytest.approx(5.0)}
    assert m.requests == 400_000 and m.client_us() == pytest.approx(5.0)
    assert cost.merge([None]) is None
    assert cost.merge([a, cost.Cost({"front": 1.0}, requests=1)]).client_cpu_s is None


@pytest.mark.parametrize("kind, procs, expected", [
    ("wasp", [(100, True, "python -m wasp.cli.main serve -c x"),
              (105, False, "python -m wasp.worker --pool bench"),
              (101, False, "python -m wasp.front --fd 3"),
              (103, False, "python -m wasp.worker --pool bench")],
     {100: "manager", 101: "front", 103: "worker[0]", 105: "worker[1]"}),
    ("nginx", [(7, True, "nginx: master process /usr/sbin/nginx"), (9, False, "nginx: worker process"),
               (8, False, "nginx: worker process"), (10, False, "nginx: cache manager process")],
     {7: "master", 8: "worker[0]", 9: "worker[1]", 10: "cache manager"}),
    ("gunicorn", [(1, True, "python -m gunicorn"), (2, False, "python -m gunicorn")],
     {1: "arbiter", 2: "worker[0]"}),
    ("uvicorn", [(1, True, "python -m uvicorn"), (2, False, "python -c from multiprocessing.resource_tracker import main;main(5)"),
                 (3, False, "python -c from multiprocessing.spawn import spawn_main")],
     {1: "main", 2: "resource tracker", 3: "worker[0]"}),
])
def test_cost_labels_each_servers_processes(kind, procs, expected):
    labels = cost.label_all(kind, procs)
    assert labels == expected
    if kind == "wasp":  # reading order: the front, the workers, then the manager
        assert list(labels.values()) == ["front", "worker[0]", "worker[1]", "manager"]


def test_cost_labels_carry_the_server_name_in_a_two_server_deployment():
    assert cost.label_all("gunicorn", [(5, True, "g"), (6, False, "g")], prefix="gunicorn") == {
        5: "gunicorn arbiter", 6: "gunicorn worker[0]"}


def test_cost_sample_reads_this_process_and_its_children():
    import subprocess
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        procs = cost.sample([("granian", os.getpid())])
        by_pid = {p.pid: p for p in procs}
        assert by_pid[os.getpid()].label == "main"
        assert by_pid[child.pid].label.startswith("worker[")
        assert by_pid[os.getpid()].cpu_s > 0
    finally:
        child.kill()
        child.wait()


def test_cost_table_has_a_row_per_measured_server_and_leaves_wrk_out_of_the_total():
    wasp = _row("wsgi hello", "wasp", 50_000, 2.0)
    wasp.cost = cost.Cost({"front": 1.12, "worker[0]": 0.41, "worker[1]": 0.43, "manager": 0.0},
                          requests=100_000, client_cpu_s=0.5, load_1m=[3.14, 1.0, 2.0])
    nginx = _row("wsgi hello", "nginx -> gunicorn gthread", 10_000, 9.0, baseline=True)
    nginx.cost = cost.Cost({"nginx master": 0.0, "nginx worker[0]": 0.3, "gunicorn arbiter": 0.01},
                           requests=100_000, client_cpu_s=None)
    failed = Row("asgi hello", "wasp", failure="wasp did not start: boom")
    lines = report.cost_table([nginx, wasp, failed])
    assert lines[2] == ("| wsgi hello | nginx -> gunicorn gthread | nginx master 0.0, nginx worker[0] 3.0, "
                        "gunicorn arbiter 0.1 | 3.1 | n/a | n/a |")
    assert lines[3] == ("| wsgi hello | wasp | front 11.2, worker[0] 4.1, worker[1] 4.3, manager 0.0 | 19.6 | 5.0 "
                        "| 1.0–3.1 |")
    assert len([line for line in lines if line.startswith("| ")]) == 4  # the failed row has none
    assert "not counted" in lines[-1]
    assert report.cost_table([failed]) == []


def test_cost_notes_reach_the_report_notes():
    row = _row("wsgi hello", "wasp", 50_000, 2.0)
    row.cost = cost.Cost({"worker[0]": 1.0}, requests=10, notes=["worker[0] (pid 9) started during the run"])
    assert report.notes([row], None) == ["- wsgi hello / wasp: worker[0] (pid 9) started during the run"]


def test_peer_targets_need_the_ratio_a_p99_no_worse_and_no_errors():
    base = _row("wsgi hello", "nginx -> gunicorn gthread", 10_000, 18.0, baseline=True)
    gran = _row("wsgi hello", "granian", 40_000, 3.0)

    def judged(wasp):
        return [t for t in report.targets([base, gran, wasp], None) if "(issue 8)" in t]

    granian_line, nginx_line = judged(_row("wsgi hello", "wasp", 40_000, 3.0))
    assert granian_line.startswith("PASS wsgi hello vs granian (issue 8): wasp 40,000 req/s = 1.00x")
    assert nginx_line.startswith("PASS wsgi hello vs nginx -> gunicorn gthread (issue 8)")
    slower, _ = judged(_row("wsgi hello", "wasp", 39_000, 3.0))
    assert slower.startswith("FAIL") and "0.97x" in slower
    later, _ = judged(_row("wsgi hello", "wasp", 45_000, 3.1))
    assert later.startswith("FAIL") and "p99 3.10 vs 3.00 ms" in later
    assert all(t.startswith("FAIL") for t in judged(_row("wsgi hello", "wasp", 45_000, 2.0, non2xx=1)))
    _, under_3x = judged(_row("wsgi hello", "wasp", 29_000, 2.0))
    assert under_3x.startswith("FAIL") and "target >= 3.0x" in under_3x


def test_peer_targets_say_unknown_when_the_peer_is_missing_and_skip_absent_scenarios():
    rows = [_row("wsgi 100k", "nginx -> gunicorn gthread", 9_000, 20.0, baseline=True),
            _row("wsgi 100k", "wasp", 12_000, 9.0)]
    assert report.peer_targets(rows) == [
        "UNKNOWN wsgi 100k vs gunicorn gthread (issue 8): wasp and gunicorn gthread were not both selected"]
    rows.append(Row("wsgi 100k", "gunicorn gthread", failure="gunicorn did not start"))
    assert report.peer_targets(rows) == ["UNKNOWN wsgi 100k vs gunicorn gthread (issue 8): gunicorn gthread did not run"]
    asgi = [_row("asgi hello", "uvicorn", 100_000, 1.5, baseline=True), _row("asgi hello", "wasp", 91_000, 1.4)]
    assert report.peer_targets(asgi)[0].startswith("PASS asgi hello vs uvicorn (issue 8): wasp 91,000 req/s = 0.91x")


def test_https_targets_ratio_and_the_handshake_row_is_info():
    rows = [_row("https hello", "nginx (TLS) -> gunicorn gthread", 10_000, 9.0, baseline=True),
            _row("https hello", "wasp", 21_000, 4.0),
            _row("https handshake", "nginx (TLS) -> gunicorn gthread", 3_000, 40.0, baseline=True),
            _row("https handshake", "wasp", 1_500, 60.0)]
    lines = report.targets(rows, None)
    assert lines[0].startswith("PASS https hello: wasp 21,000 req/s = 2.10x nginx (TLS) -> gunicorn gthread")
    assert lines[1].startswith("INFO https handshake: wasp 1,500 handshakes/s (a new TLS connection per request) "
                               "= 0.50x")
    rows[1] = _row("https hello", "wasp", 19_000, 4.0)
    assert report.targets(rows, None)[0].startswith("FAIL https hello")


def test_generated_https_wasp_toml_is_a_valid_config(tmp_path):
    from bench.certs import self_signed
    from bench.servers import wasp_toml
    from wasp.config.load import load
    cert, key = self_signed(str(tmp_path / "certs"))
    assert self_signed(str(tmp_path / "certs")) == (cert, key)  # made once, then reused
    assert os.stat(key).st_mode & 0o077 == 0
    path = tmp_path / "wasp.toml"
    path.write_text(wasp_toml(8124, "wsgi_hello", wasp_log=False, tls=(cert, key)))
    (site,) = load(str(path)).sites
    (binding,) = site.bindings
    assert binding.binding == "https/127.0.0.1:8124:"
    assert (binding.certificate, binding.key) == (cert, key)


def test_wrk_command_puts_each_header_before_the_url():
    assert wrk.command("https://127.0.0.1:1/", 10, 64, headers=("Connection: close",)) == [
        "wrk", "-t1", "-c64", "-d10s", "--latency", "-H", "Connection: close", "https://127.0.0.1:1/"]


def test_rss_target_names_the_https_measurement():
    assert report.rss_target(Rss(front_mib=33.0, label="rss https")) == (
        "PASS rss https: wasp front 33.0 MiB at rest (target < 40)")
    assert report.rss_target(Rss(failure="wasp did not start: x", label="rss https")).startswith(
        "FAIL rss https: front RSS not measured")


_TURN = ("import sys; sys.path.insert(0, {repo!r}); from bench import run; run.LOCK_PATH = {path!r}; "
         "print(repr(run.take_turn({wait})[1]))")


@pytest.mark.skipif(not os.path.exists("/proc/locks") or not shutil.which("flock"), reason="needs flock(1), /proc/locks")
def test_take_turn_under_flock_is_our_turn(tmp_path):
    """`flock LOCK python bench/run.py` holds the lock for the run: the run must not wait for itself."""
    path = str(tmp_path / "bench.lock")
    code = _TURN.format(repo=REPO, path=path, wait=30)
    out = subprocess.run(["flock", path, sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "''"


@pytest.mark.skipif(not os.path.exists("/proc/locks") or not shutil.which("flock"), reason="needs flock(1), /proc/locks")
def test_take_turn_waits_for_another_holder(tmp_path):
    path = str(tmp_path / "bench.lock")
    open(path, "a").close()
    # One process (no child to leave behind) holds the lock the way another run would.
    holder = subprocess.Popen([sys.executable, "-c", f"import fcntl, time; f = open({path!r}); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(8)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code = _TURN.format(repo=REPO, path=path, wait=0.5)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
        assert "ran alongside it" in out.stdout.strip().splitlines()[-1]
    finally:
        holder.kill()
        holder.wait(10)


def test_security_target_compares_wasp_with_and_without_its_security_modules():
    rows = [_row("wsgi hello, security", "wasp, no security modules", 20_000, 5.0, baseline=True),
            _row("wsgi hello, security", "wasp", 19_200, 5.1)]
    [line] = report.targets(rows, None)
    assert line.startswith("PASS wsgi hello, security: wasp with IIS's default security modules "
                           "19,200 req/s = 0.96x wasp, no security modules 20,000"), line
    rows[1] = _row("wsgi hello, security", "wasp", 18_000, 5.1)
    assert report.targets(rows, None)[0].startswith("FAIL wsgi hello, security")


def test_the_rewrite_scenario_config_loads_with_its_rules(tmp_path):
    from bench.servers import REWRITE_RULES, wasp_toml
    from wasp.config.load import load
    path = tmp_path / "wasp.toml"
    path.write_text(wasp_toml(8123, "wsgi_hello", wasp_log=False, app_extra=REWRITE_RULES))
    config = load(str(path))
    rules = config.sections["applications"]["1/"]["rewrite"]["rules"]
    assert [r["name"] for r in rules] == ["https", "canonical", "moved", "front-controller"]


def test_the_security_baseline_removes_only_modules_this_tree_has(tmp_path):
    from bench.servers import SECURITY_MODULES, security_modules_removed, wasp_toml
    from wasp.config.load import load
    from wasp.config.sections.modules import NATIVE_MODULES
    path = tmp_path / "wasp.toml"
    path.write_text(wasp_toml(8123, "wsgi_hello", wasp_log=False, app_extra=security_modules_removed()))
    (site,) = load(str(path)).sites
    assert "anonymous_authentication" in security_modules_removed()
    assert all(m in NATIVE_MODULES for m in SECURITY_MODULES if f'"{m}"' in security_modules_removed())


def test_the_metrics_scenario_configs_turn_counting_off_and_on(tmp_path):
    from bench.servers import METRICS_OFF, METRICS_ON, wasp_toml
    from wasp.config.load import load
    path = tmp_path / "wasp.toml"
    path.write_text(wasp_toml(8123, "wsgi_hello", wasp_log=False, app_extra=METRICS_OFF))
    assert load(str(path)).metrics.enabled is False
    path.write_text(wasp_toml(8123, "wsgi_hello", wasp_log=False, app_extra=METRICS_ON))
    metrics = load(str(path)).metrics
    assert metrics.enabled is True and metrics.url == "/metrics"


def test_metrics_target_compares_counting_on_with_off():
    rows = [_row("wsgi hello, metrics", "wasp, metrics off", 20_000, 5.0, baseline=True),
            _row("wsgi hello, metrics", "wasp", 19_500, 5.1)]
    [line] = report.targets(rows, None)
    assert line.startswith("PASS wsgi hello, metrics: wasp counting for /metrics 19,500 req/s = "
                           "0.97x wasp, metrics off 20,000"), line
    rows[1] = _row("wsgi hello, metrics", "wasp", 19_000, 5.1)
    assert report.targets(rows, None)[0].startswith("FAIL wsgi hello, metrics")
