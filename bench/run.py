"""Benchmark wasp against the servers users would pick instead, in the same run, as ratios.

    python bench/run.py [--duration 10] [--connections 64] [--scenarios wsgi,asgi,static,cached,rss]
                        [--quick] [--servers wasp,gunicorn,...] [--wasp-log] [--keep]
                        [--fronts 1,2]

Scenarios: wsgi, asgi, static, cached, https, rss (default) and recycle, chaos, slowloris, h2, security,
compression, accesslog (on request). Prints a markdown
table and the targets as PASS/FAIL, and writes both to bench/results/<timestamp>.md. Exit status
1 when any row could not run (a server did not start or answered wrongly), else 0.
See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bench import install  # noqa: E402  (stdlib only; runs before psutil is importable)

DEFAULT_SCENARIOS = ("wsgi", "asgi", "static", "cached", "https", "rss")
ALL_SCENARIOS = DEFAULT_SCENARIOS + ("recycle", "chaos", "slowloris", "h2", "security", "compression",
                                       "rewrite", "proxy", "php", "accesslog", "metrics", "tracing", "freb",
                                       "upgrade")
SERVERS = ("wasp", "gunicorn", "nginx-gunicorn", "uvicorn", "nginx", "granian", "nginx-php-fpm")


def _csv(allowed):
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(bad)}; choose from {', '.join(allowed)}")
        return items
    return parse


def _fronts(text: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--fronts takes integers 1..64, not {text!r}") from None
    if not values or any(not 1 <= v <= 64 for v in values):
        raise argparse.ArgumentTypeError(f"--fronts takes integers 1..64, not {text!r}")
    return list(dict.fromkeys(values))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=int, default=None, help="seconds per measured run (default 10)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    p.add_argument("--scenarios", type=_csv(ALL_SCENARIOS), default=list(DEFAULT_SCENARIOS),
                   help=f"comma list of {', '.join(ALL_SCENARIOS)} (default {','.join(DEFAULT_SCENARIOS)})")
    p.add_argument("--servers", type=_csv(SERVERS), default=list(SERVERS),
                   help=f"only these servers' rows: {', '.join(SERVERS)}")
    p.add_argument("--rounds", type=int, default=1,
                   help="measure every row this many times, interleaved; report medians (default 1)")
    p.add_argument("--quick", action="store_true",
                   help="3 s runs, 1 s warm-up, short recycle/chaos runs: a smoke check, not a measurement")
    # Like for like by default: the peers run without access logs, so wasp does too.
    p.add_argument("--wasp-log", dest="wasp_log", action="store_true", default=False,
                   help="keep wasp's W3C access log on (IIS's default; the peers still log nothing)")
    p.add_argument("--no-wasp-log", dest="wasp_log", action="store_false",
                   help="wasp's W3C access log off (the default, like the peers)")
    p.add_argument("--fronts", type=_fronts, default=[1],
                   help="comma list of server.front_processes values: each wasp row is measured "
                        "with each (default 1)")
    p.add_argument("--freb", action="store_true", help=(
        "add the freb scenario (WSGI hello with Failed Request Tracing rules that match nothing "
        "against the same server without rules) to the chosen scenarios"))
    p.add_argument("--seed", type=int, default=1, help="random seed of the chaos scenario")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (configs, server output)")
    p.add_argument("--lock-wait", type=float, default=1800,
                   help="seconds to wait for another benchmark run to finish first (default 1800)")
    args = p.parse_args(argv)
    if args.duration is None:
        args.duration = 3 if args.quick else 10
    if min(args.duration, args.connections, args.rounds) < 1:
        p.error("--duration, --connections and --rounds must be at least 1")
    return args


def _version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "?"


def environment() -> list[str]:
    import granian
    import gunicorn
    import uvicorn
    rev = _version(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
    return [
        f"- host: {platform.node()}, {os.cpu_count()} CPUs, {platform.platform()}",
        f"- Python {platform.python_version()}; gunicorn {gunicorn.__version__}; uvicorn {uvicorn.__version__}; "
        f"granian {granian.__version__}",
        f"- {_version(['nginx', '-v'])}; {_version(['wrk', '-v']).split(' [')[0]}",
        f"- wasp tree at {rev} (plus uncommitted changes, if any)",
    ]


def plan(args, workdir: str, fronts: int = 1):
    """(scenario, server key, deployment factory, path, body length, is baseline) in run order;
    the wasp rows with server.front_processes = `fronts`."""
    import functools

    from bench import servers as sv
    wasp = functools.partial(sv.wasp, fronts=fronts)
    log = args.wasp_log
    cases = []
    if "wsgi" in args.scenarios:
        for label, app, length in (("wsgi hello", "wsgi_hello", 13), ("wsgi 100k", "wsgi_100k", 102400)):
            cases += [
                (label, "nginx-gunicorn", lambda app=app: sv.nginx_gunicorn(workdir, app), "/", length, True),
                (label, "gunicorn", lambda app=app: sv.gunicorn(workdir, app), "/", length, False),
                (label, "wasp", lambda app=app: wasp(workdir, app, log), "/", length, False),
            ]
        cases.insert(2, ("wsgi hello", "granian", lambda: sv.granian(workdir, "wsgi_hello", "wsgi"), "/", 13,
                         False))
    if "asgi" in args.scenarios:
        cases += [
            ("asgi hello", "uvicorn", lambda: sv.uvicorn(workdir, "asgi_hello"), "/", 13, True),
            ("asgi hello", "granian", lambda: sv.granian(workdir, "asgi_hello", "asgi"), "/", 13, False),
            ("asgi hello", "wasp", lambda: wasp(workdir, "asgi_hello", log), "/", 13, False),
        ]
    if "static" in args.scenarios:
        for label, path, length in (("static 1k", "/1k.txt", 1024), ("static 100k", "/100k.txt", 102400)):
            cases += [
                (label, "nginx", lambda: sv.nginx_static(workdir), path, length, True),
                (label, "wasp", lambda: wasp(workdir, None, log), path, length, False),
            ]
    if "cached" in args.scenarios:
        length = len(__import__("bench.apps.wsgi_page", fromlist=["BODY"]).BODY)
        cases += [
            ("cached page", "nginx-gunicorn", lambda: sv.nginx_cache_gunicorn(workdir, "wsgi_page"), "/",
             length, True),
            ("cached page", "wasp", lambda: wasp(workdir, "wsgi_page", log, app_extra=sv.CACHE_PROFILE),
             "/", length, False),
        ]
    if "https" in args.scenarios:
        # TLS 1.3 both sides, the same self-signed P-256 certificate; keep-alive, then a new
        # connection (a full handshake: wrk resumes no sessions) for every request.
        def closing(dep):
            dep.wrk_headers = ("Connection: close",)
            return dep
        cases += [
            ("https hello", "nginx-gunicorn", lambda: sv.nginx_gunicorn(workdir, "wsgi_hello", tls=True), "/", 13,
             True),
            ("https hello", "wasp", lambda: wasp(workdir, "wsgi_hello", log, name="wasp-tls", tls=True), "/",
             13, False),
            ("https handshake", "nginx-gunicorn",
             lambda: closing(sv.nginx_gunicorn(workdir, "wsgi_hello", tls=True)), "/", 13, True),
            ("https handshake", "wasp",
             lambda: closing(wasp(workdir, "wsgi_hello", log, name="wasp-tls", tls=True)), "/", 13, False),
        ]
    if "security" in args.scenarios:
        # Issue 9's cost of the security modules: IIS's defaults (request filtering, anonymous
        # authentication, URL authorization with its one `Allow users="*"` rule) against the same
        # server with those modules removed from the application.
        bare = sv.security_modules_removed()

        def relabel(dep, label):
            dep.label = label
            return dep
        cases += [
            ("wsgi hello, security", "wasp",
             lambda: relabel(wasp(workdir, "wsgi_hello", log, name="wasp-nosec", app_extra=bare),
                             "wasp, no security modules"), "/", 13, True),
            ("wsgi hello, security", "wasp", lambda: wasp(workdir, "wsgi_hello", log, name="wasp-sec"),
             "/", 13, False),
        ]
    if "accesslog" in args.scenarios:
        # Issue 12: what the W3C access log (IIS's default fields, buffered, written by the
        # front's log thread) costs WSGI hello: the same server with the log off, then on.
        def named(dep, label):
            dep.label = label
            return dep
        cases += [
            ("wsgi hello, access log", "wasp",
             lambda: named(wasp(workdir, "wsgi_hello", False, name="wasp-nolog"), "wasp, no access log"),
             "/", 13, True),
            ("wsgi hello, access log", "wasp", lambda: wasp(workdir, "wsgi_hello", True, name="wasp-log"),
             "/", 13, False),
        ]
    if "compression" in args.scenarios:
        # Issue 10: dynamic gzip of a 20 KiB JSON answer, and brotli of a 100 KiB static file.
        json_length = len(__import__("bench.apps.wsgi_json", fromlist=["BODY"]).BODY)
        css = "/" + sv.STYLESHEET
        css_length = os.path.getsize(os.path.join(sv.STATIC_DIR, sv.STYLESHEET))

        def accepting(dep, accept, coding):
            dep.wrk_headers = (f"Accept-Encoding: {accept}",)
            dep.encoding = (accept, coding)
            return dep
        cases += [
            ("gzip json 20k", "nginx-gunicorn", lambda: sv.nginx_gzip_gunicorn(workdir, "wsgi_json"), "/",
             json_length, True),
            ("gzip json 20k", "wasp",
             lambda: accepting(wasp(workdir, "wsgi_json", log, name="wasp-gzip",
                                    app_extra=sv.JSON_COMPRESSION), "gzip", "gzip"), "/", json_length, False),
            ("brotli static 100k", "nginx", lambda: sv.nginx_brotli_static(workdir), css, css_length, True),
            ("brotli static 100k", "wasp",
             lambda: accepting(wasp(workdir, None, log, name="wasp-br"), "gzip, deflate, br", "br"), css,
             css_length, False),
        ]
    if "rewrite" in args.scenarios:
        # Issue 10's URL Rewrite: four recipe rules (three test and pass, a front controller
        # rewrites every request) against the same server without rules.
        def named(dep, label):
            dep.label = label
            return dep
        cases += [
            ("wsgi hello, rewrite", "wasp",
             lambda: named(wasp(workdir, "wsgi_hello", log, name="wasp-norewrite"), "wasp, no rewrite rules"),
             "/", 13, True),
            ("wsgi hello, rewrite", "wasp",
             lambda: wasp(workdir, "wsgi_hello", log, name="wasp-rewrite", app_extra=sv.REWRITE_RULES),
             "/", 13, False),
        ]
    if "proxy" in args.scenarios:
        # ARR: proxied hello, wasp's reverse proxy vs nginx proxy_pass, to one gunicorn process.
        cases += [
            ("proxied hello", "nginx-gunicorn", lambda: sv.nginx_proxy_shared(workdir, "wsgi_hello"), "/", 13,
             True),
            ("proxied hello", "wasp", lambda: sv.wasp_proxy_shared(workdir, "wsgi_hello", log, fronts=fronts),
             "/", 13, False),
        ]
    if "php" in args.scenarios:
        # Issue 10: PHP hello through the same php-fpm pool config, behind nginx and behind wasp.
        cases += [
            ("php hello", "nginx-php-fpm", lambda: sv.nginx_php(workdir), "/hello.php", 13, True),
            ("php hello", "wasp", lambda: sv.wasp_php(workdir, log, fronts), "/hello.php", 13, False),
        ]
    if "metrics" in args.scenarios:
        # Issue 11: per-request counting for /metrics (on by default) against the same server
        # with [metrics] enabled = false; the measured row also serves metrics.url.
        def called(dep, label):
            dep.label = label
            return dep
        cases += [
            ("wsgi hello, metrics", "wasp",
             lambda: called(wasp(workdir, "wsgi_hello", log, name="wasp-nometrics",
                                 app_extra=sv.METRICS_OFF), "wasp, metrics off"), "/", 13, True),
            ("wsgi hello, metrics", "wasp",
             lambda: wasp(workdir, "wsgi_hello", log, name="wasp-metrics", app_extra=sv.METRICS_ON),
             "/", 13, False),
        ]
    if "tracing" in args.scenarios:
        # Issue 11 item 6: OpenTelemetry on (every request sampled: a front span and a span per
        # module, exported over OTLP/HTTP to a sink in this process) against the same server off.
        def labelled(dep, label):
            dep.label = label
            return dep
        sink = sv.otlp_sink()
        cases += [
            ("wsgi hello, tracing", "wasp",
             lambda: labelled(wasp(workdir, "wsgi_hello", log, name="wasp-notrace"), "wasp, tracing off"),
             "/", 13, True),
            ("wsgi hello, tracing", "wasp",
             lambda: labelled(wasp(workdir, "wsgi_hello", log, name="wasp-trace",
                                   app_extra=sv.tracing_toml(sink)), "wasp, tracing on"), "/", 13, False),
        ]
    if "freb" in args.scenarios or getattr(args, "freb", False):
        # Issue 11 item 8: Failed Request Tracing rules that match nothing cost at most 3%.
        def labelled(dep, label):
            dep.label = label
            return dep
        cases += [
            ("wsgi hello, freb", "wasp",
             lambda: labelled(wasp(workdir, "wsgi_hello", log, name="wasp-nofreb"), "wasp, no freb rules"),
             "/", 13, True),
            ("wsgi hello, freb", "wasp",
             lambda: wasp(workdir, "wsgi_hello", log, name="wasp-freb", app_extra=sv.FREB_RULES),
             "/", 13, False),
            ("wsgi hello, freb", "wasp",
             lambda: labelled(wasp(workdir, "wsgi_hello", log, name="wasp-freb-path",
                                   app_extra=sv.FREB_PATH_RULE), "wasp, freb rule *.php only"),
             "/", 13, False),
        ]
    return [c for c in cases if c[1] in args.servers]


def plan_all(args, workdir: str) -> list:
    """`plan` with each wasp row once per --fronts value (server.front_processes), side by side;
    the other servers' rows once."""
    plans = [plan(args, workdir, n) for n in args.fronts]
    out = []
    for i, case in enumerate(plans[0]):
        out.append(case)
        out += [p[i] for p in plans[1:] if p[i][1] == "wasp"]
    return out


LOCK_PATH = os.path.join(tempfile.gettempdir(), "wasp-bench.lock")


def _held_by_ancestor(lock) -> bool:
    """Whether the flock on `lock`'s file is held by this process's parent or an earlier
    ancestor (flock(1) wrapping the run). Without this check a wrapped run waits for itself."""
    try:
        inode = os.fstat(lock.fileno()).st_ino
        with open("/proc/locks") as f:
            holders = {int(fields[4]) for fields in (line.split() for line in f)
                       if len(fields) > 5 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(inode)}
    except (OSError, ValueError):
        return False
    pid = os.getppid()
    for _ in range(64):
        if pid <= 1:
            return False
        if pid in holders:
            return True
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


def take_turn(wait_s: float) -> tuple[object, str]:
    """Two benchmark runs on 2 CPUs spoil each other's numbers, so runs take turns on a lock
    file. Waits up to wait_s; then goes ahead and says so in the report. Returns the open lock
    file (held until exit) and a note ("" when the turn came)."""
    import fcntl
    lock = open(LOCK_PATH, "a+")
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            lock.seek(0)
            lock.truncate()
            lock.write(f"{os.getpid()}\n")
            lock.flush()
            return lock, ""
        except BlockingIOError:
            if _held_by_ancestor(lock):
                # `flock LOCK python bench/run.py`, as the helpers' rules say: the turn is ours.
                return lock, ""
            if time.monotonic() > deadline:
                return lock, f"another benchmark run held {LOCK_PATH} for {wait_s:.0f}s; ran alongside it"
            if not told:
                lock.seek(0)
                holder = lock.read().strip() or "?"
                print(f"waiting up to {wait_s:.0f}s for another benchmark run (pid {holder}) to finish",
                      flush=True)
                told = True
            time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install.ensure_peers()
    from bench import report, stress
    from bench.measure import Settings, combine, measure, measure_rss
    from bench.procs import stop_all
    from bench import servers as sv

    # SIGTERM/SIGHUP unwind like Ctrl-C so every finally (and the atexit stop) runs.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    _lock, lock_note = take_turn(args.lock_wait)
    settings = Settings(args.duration, args.connections, warmup=1 if args.quick else 2,
                        wasp_log=args.wasp_log)
    workdir = tempfile.mkdtemp(prefix="wasp-bench-")
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    load_start = os.getloadavg()[0]
    rows, rss, rss_tls, sections, rounds = [], None, None, [], []
    try:
        print(f"wasp benchmark: wrk -t1 -c{args.connections} -d{args.duration}s --latency, "
              f"scenarios {','.join(args.scenarios)}; temp dir {workdir}", flush=True)
        cases = plan_all(args, workdir)
        rounds = [[] for _ in cases]
        for n in range(args.rounds):
            if args.rounds > 1:
                print(f"round {n + 1} of {args.rounds}", flush=True)
            for i, (scenario, _key, make, path, length, baseline) in enumerate(cases):
                rounds[i].append(measure(scenario, make, path, length, settings, baseline))
        rows = [combine(r) for r in rounds]
        if "rss" in args.scenarios and "wasp" in args.servers:
            rss = measure_rss(lambda: sv.wasp(workdir, "wsgi_hello", args.wasp_log, name="wasp-rss"))
            if "https" in args.scenarios:
                rss_tls = measure_rss(lambda: sv.wasp(workdir, "wsgi_hello", args.wasp_log, name="wasp-rss-tls",
                                                      tls=True), label="rss https")
        for fronts in args.fronts:
            if "recycle" in args.scenarios:
                sections.append(stress.run_recycle(workdir, settings, *((6, 4) if args.quick else (30, 20)),
                                                   fronts=fronts))
            if "chaos" in args.scenarios:
                sections.append(stress.run_chaos(workdir, settings, 10 if args.quick else 60, args.seed,
                                                 fronts=fronts))
        if "upgrade" in args.scenarios and "wasp" in args.servers:
            from bench.upgrade import run_upgrade  # wasp upgrade x3 under wrk (bench/upgrade.py)
            sections.append(run_upgrade(workdir, settings, 30 if args.quick else 45))
        if "slowloris" in args.scenarios:
            from bench.slowloris import run_slowloris
            sections.append(run_slowloris(workdir, settings))
        if "h2" in args.scenarios:
            from bench import h2
            sections.append(h2.run_h2(workdir, settings, args.quick))
    finally:
        stop_all()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    lines = [f"# wasp benchmark, {started}", ""]
    lines += environment()
    rounds_text = f"; {args.rounds} rounds, medians (min–max req/s)" if args.rounds > 1 else ""
    lines += [f"- load: `wrk -t1 -c{args.connections} -d{args.duration}s --latency` after a "
              f"{settings.warmup} s warm-up; 2 workers everywhere; wasp access log "
              f"{'on' if args.wasp_log else 'off'}{rounds_text}{'; QUICK (smoke check)' if args.quick else ''}",
              f"- load average (1 min) at start {load_start:.2f}, at end {os.getloadavg()[0]:.2f}: other work "
              f"on these 2 CPUs skews every row"]
    lines += [f"- WARNING: {lock_note}"] if lock_note else []
    lines += [""]
    if rows:
        lines += report.table(rows) + [""]
        cpu = report.cost_table(rows)
        if cpu:
            lines += ["## CPU time per request (the cost model)", ""] + cpu + [""]
    if rss is not None and rss.front_mib is not None:
        lines += ["## RSS at rest (wasp, WSGI hello, 2 workers)", ""] + report.rss_lines(rss) + [""]
    if rss_tls is not None and rss_tls.front_mib is not None:
        lines += ["## RSS at rest with an https binding", ""] + report.rss_lines(rss_tls) + [""]
    for section in sections:
        lines += [f"## {section.title}", ""] + section.lines + [""]
    targets = report.targets(rows, rss) + ([report.rss_target(rss_tls)] if rss_tls else [])
    targets += [s.verdict for s in sections if s.verdict]
    if targets:
        lines += ["## Targets", ""] + [f"- {t}" for t in targets] + [""]
    notes = report.notes(rows, rss) + (report.notes([], rss_tls) if rss_tls else [])
    if notes:
        lines += ["## Notes", ""] + notes + [""]
    text = "\n".join(lines)
    print("\n" + text)
    results = os.path.join(REPO, "bench", "results")
    os.makedirs(results, exist_ok=True)
    path = os.path.join(results, time.strftime("%Y%m%d-%H%M%S") + ".md")
    with open(path, "w") as f:
        f.write(text)
    print(f"written to {os.path.relpath(path, os.getcwd())}")
    broken = any(r.failure for per_case in rounds for r in per_case) or (rss is not None and rss.failure) or any(s.failed for s in sections)
    broken = broken or bool(rss_tls is not None and rss_tls.failure)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
