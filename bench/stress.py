"""Load while wasp's workers come and go: pool recycles, and SIGKILLed workers (chaos).

Both report what a client saw (requests, non-2xx, socket errors, p99) next to what was done to the
server. Only processes that descend from the manager this harness started are ever signalled.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

import psutil

from bench import wrk
from bench.measure import Settings, check_answer, fmt_ms, quote_block, summary, worker_processes
from bench.procs import ServerFailed, http_get
from bench.servers import REPO, Deployment, wasp, wasp_command, wasp_env

POOL = "bench"
CLI_TIMEOUT_S = 15.0


@dataclass
class Section:
    title: str
    lines: list[str] = field(default_factory=list)
    failed: bool = False  # the scenario could not run
    verdict: str = ""  # a PASS/FAIL/INFO line for the targets list


@dataclass
class CliCall:
    rc: int | None  # None: timed out
    seconds: float
    output: str


def _cli(config: str, *args: str) -> CliCall:
    started = time.monotonic()
    try:
        done = subprocess.run(wasp_command(config, *args), capture_output=True, text=True,
                              timeout=CLI_TIMEOUT_S, cwd=REPO, env={**os.environ, **wasp_env()})
    except subprocess.TimeoutExpired:
        return CliCall(None, time.monotonic() - started, f"no answer within {CLI_TIMEOUT_S:.0f}s")
    out = (done.stdout + done.stderr).strip()
    return CliCall(done.returncode, time.monotonic() - started, out)


def recycle_pool(config: str) -> CliCall:
    return _cli(config, "recycle", "pool", POOL)


def _pid_of(item) -> int | None:
    if isinstance(item, int):
        return item
    if isinstance(item, dict):
        for key in ("pid", "process_id", "processId"):
            if isinstance(item.get(key), int):
                return item[key]
    return None


def _pool_of(item) -> str | None:
    if isinstance(item, dict):
        for key in ("pool", "application_pool", "app_pool", "applicationPool"):
            if isinstance(item.get(key), str):
                return item[key]
    return None


def listed_workers(config: str) -> tuple[list[int], str]:
    """Worker PIDs of the bench pool from `wasp list wp --json`, and an error text if that failed."""
    call = _cli(config, "list", "wp", "--json")
    if call.rc != 0:
        return [], f"`list wp --json` exit {call.rc}: {call.output[-300:]}"
    try:
        return worker_pids_from_json(call.output, POOL), ""
    except ValueError:
        return [], f"`list wp --json` printed no JSON: {call.output[-300:]}"


def worker_pids_from_json(text: str, pool: str) -> list[int]:
    """PIDs of `pool`'s workers from `list wp --json`: a list of objects (or of PIDs), bare or
    under the one list-valued key of an object. Raises ValueError when the text is not JSON."""
    data = json.loads(text)
    if isinstance(data, dict):
        data = next((v for v in data.values() if isinstance(v, list)), [])
    pids = [_pid_of(i) for i in data if _pool_of(i) in (None, pool)]
    return [p for p in pids if p]


def _worker_pids(manager_pid: int) -> set[int]:
    return {p.pid for p in worker_processes(manager_pid, POOL)}


class PidSampler:
    """Worker PIDs seen during a run, sampled every `interval` s on a thread, so that restarts
    between the harness's own actions are counted too."""

    def __init__(self, manager_pid: int, interval: float = 0.2) -> None:
        self.manager_pid = manager_pid
        self.interval = interval
        self.first = _worker_pids(manager_pid)
        self.seen = set(self.first)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="pid-sampler", daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.seen |= _worker_pids(self.manager_pid)
            except psutil.Error:
                pass

    def __enter__(self) -> "PidSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self.seen |= _worker_pids(self.manager_pid)

    @property
    def new(self) -> int:
        return len(self.seen - self.first)


def _descends_from(pid: int, ancestor: int) -> bool:
    try:
        return any(p.pid == ancestor for p in psutil.Process(pid).parents())
    except psutil.NoSuchProcess:
        return False


def _result_row(name: str, r: wrk.WrkResult) -> str:
    return (f"| {name} | {r.requests:,} | {r.rps:,.0f} | {r.non2xx} | {r.connect} | {r.read} | "
            f"{r.write} | {r.timeout} | {fmt_ms(r.p50_ms)} | {fmt_ms(r.p99_ms)} |")


_RESULT_HEAD = ["| run | requests | req/s | non-2xx | connect | read | write | timeout | p50 ms | p99 ms |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]


def _start(dep: Deployment, section: Section) -> bool:
    try:
        dep.start()
        note = check_answer(dep.port, "/", 13)
        if note:
            section.lines += [f"- at start: {note}", ""]
        return True
    except (ServerFailed, OSError, http.client.HTTPException) as e:
        section.lines.append(f"- wasp did not start: {quote_block(str(e))}")
        section.failed = True
        section.verdict = f"FAIL {section.title.split(':')[0]}: wasp did not start ({summary(str(e))})"
        return False


def _still_answers(port: int, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            r = http_get(port, "/", timeout=5)
            if r.status == 200:
                return "yes"
            last = f"status {r.status}"
        except (OSError, http.client.HTTPException) as e:
            last = f"{type(e).__name__}: {e}"
        time.sleep(0.5)
    return f"NO ({last})"


def _sleep_until(when: float) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def run_recycle(workdir: str, s: Settings, duration: int = 30, recycles: int = 20,
                fronts: int = 1) -> Section:
    on = "" if fronts == 1 else f" ({fronts} fronts)"
    section = Section(f"recycle{on}: {duration} s of wrk -c{s.connections} while the pool recycles {recycles} times")
    dep = wasp(workdir, "wsgi_hello", s.wasp_log, name="wasp-recycle", fronts=fronts)
    url = f"http://127.0.0.1:{dep.port}/"
    print(f"  recycle: wasp on {url} ...", flush=True)
    try:
        if not _start(dep, section):
            return section
        manager = dep.servers[0].pid
        wrk.run(url, s.warmup, s.connections)
        steady = wrk.run(url, duration, s.connections)
        calls: list[CliCall] = []
        load = wrk.start(url, duration, s.connections)
        try:
            with PidSampler(manager) as pids:
                t0 = time.monotonic()
                for i in range(recycles):
                    _sleep_until(t0 + (i + 0.5) * duration / recycles)
                    if time.monotonic() > t0 + duration:
                        break  # earlier recycle commands were slow; the load is over
                    calls.append(recycle_pool(dep.config_path))
                during = wrk.finish(load, duration)
        finally:
            if load.poll() is None:
                load.kill()
                load.wait(5)
        ok = sum(1 for c in calls if c.rc == 0)
        section.lines += _RESULT_HEAD + [_result_row("steady", steady), _result_row("during recycles", during)]
        section.lines.append("")
        p99 = (f"{during.p99_ms / steady.p99_ms:.2f}x the steady p99"
               if during.p99_ms and steady.p99_ms else "n/a")
        section.lines.append(f"- p99 during recycles: {fmt_ms(during.p99_ms)} ms = {p99}")
        section.lines.append(f"- errors during recycles: {during.error_text()}")
        slowest = max((c.seconds for c in calls), default=0.0)
        section.lines.append(f"- recycle commands: {len(calls)} sent, {ok} exit 0, slowest {slowest:.2f} s")
        section.lines.append(f"- worker PIDs: {len(pids.first)} at start, {pids.new} new ones seen "
                             f"while the load ran (sampled every {pids.interval} s)")
        for c in calls:
            if c.rc != 0:
                section.lines.append(f"- recycle failed (exit {c.rc}): {c.output[-300:]}")
                break
        answers = _still_answers(dep.port)
        section.lines.append(f"- answers after the run: {answers}")
        good = during.errors == 0 and ok == len(calls) == recycles and answers == "yes"
        section.verdict = (f"{'PASS' if good else 'FAIL'} recycle: {ok}/{recycles} recycles done, "
                           f"{during.error_text()} errors in {during.requests:,} requests (target 0); "
                           f"p99 {fmt_ms(during.p99_ms)} ms vs steady {fmt_ms(steady.p99_ms)} ms")
    except (wrk.WrkFailed, OSError, http.client.HTTPException, psutil.Error) as e:
        section.lines.append(f"recycle run failed: {type(e).__name__}: {e}")
        section.failed = True
    finally:
        dep.stop()
        section.lines += [f"- {n}" for n in dep.stop_notes()]
    return section


@dataclass
class Havoc:
    kills: int = 0
    recycles: int = 0
    recycle_failures: int = 0
    list_errors: list[str] = field(default_factory=list)


def _havoc(rng: random.Random, dep: Deployment, manager: int, end: float) -> Havoc:
    """Until `end`: every 2-4 s SIGKILL a random worker, or (1 in 4) recycle the pool."""
    done = Havoc()
    while True:
        gap = rng.uniform(2.0, 4.0)
        if time.monotonic() + gap > end:
            return done
        time.sleep(gap)
        if rng.random() < 0.25:
            done.recycles += 1
            done.recycle_failures += recycle_pool(dep.config_path).rc != 0
            continue
        pids, error = listed_workers(dep.config_path)
        if error:
            # Keep the chaos going from what the OS shows, and report the CLI problem.
            done.list_errors.append(error)
            pids = sorted(_worker_pids(manager))
        pids = [p for p in pids if _descends_from(p, manager)]
        if pids:
            os.kill(rng.choice(pids), signal.SIGKILL)
            done.kills += 1


def run_chaos(workdir: str, s: Settings, duration: int = 60, seed: int = 1, fronts: int = 1) -> Section:
    on = "" if fronts == 1 else f" ({fronts} fronts)"
    section = Section(f"chaos{on}: {duration} s of wrk -c{s.connections}; every 2-4 s a worker is "
                      f"SIGKILLed (or, 1 time in 4, the pool recycled); rapid-fail protection off; seed {seed}")
    rng = random.Random(seed)
    # Five SIGKILLs in five minutes is exactly what rapid-fail protection stops a pool for (as IIS
    # does); chaos measures recovery, so it turns that off.
    dep = wasp(workdir, "wsgi_hello", s.wasp_log, name="wasp-chaos",
               pool_extra="[pool_defaults.failure]\nrapid_fail_protection = false\n", fronts=fronts)
    url = f"http://127.0.0.1:{dep.port}/"
    print(f"  chaos: wasp on {url} ...", flush=True)
    try:
        if not _start(dep, section):
            return section
        manager = dep.servers[0].pid
        wrk.run(url, s.warmup, s.connections)
        load = wrk.start(url, duration, s.connections)
        try:
            with PidSampler(manager) as sampler:
                havoc = _havoc(rng, dep, manager, time.monotonic() + duration - 1)
                result = wrk.finish(load, duration)
        finally:
            if load.poll() is None:
                load.kill()
                load.wait(5)
        answers = _still_answers(dep.port)
        section.lines += _RESULT_HEAD + [_result_row("chaos", result), ""]
        section.lines.append(f"- requests sent: {result.requests:,}; failed: {result.errors} "
                             f"({result.error_text()})")
        section.lines.append(f"- workers SIGKILLed: {havoc.kills}; pool recycles: {havoc.recycles} "
                             f"({havoc.recycle_failures} failed)")
        section.lines.append(f"- worker restarts seen: {sampler.new} new worker PIDs while the load ran "
                             f"({len(sampler.first)} at start; sampled every {sampler.interval} s)")
        if havoc.list_errors:
            section.lines.append(f"- `list wp --json` failed {len(havoc.list_errors)} times, PIDs taken "
                                 f"from the process table instead; first: {havoc.list_errors[0]}")
        section.lines.append(f"- answers after the run: {answers}")
        section.verdict = (f"INFO chaos: {result.errors} of {result.requests:,} requests failed across "
                           f"{havoc.kills} kills and {havoc.recycles} recycles; answers after: {answers}")
    except (wrk.WrkFailed, OSError, http.client.HTTPException, psutil.Error) as e:
        section.lines.append(f"chaos run failed: {type(e).__name__}: {e}")
        section.failed = True
    finally:
        dep.stop()
        section.lines += [f"- {n}" for n in dep.stop_notes()]
    return section
