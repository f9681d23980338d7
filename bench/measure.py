"""One measured row: start a deployment, check its answer, warm up, run wrk, stop it."""

from __future__ import annotations

import http.client
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import psutil

from bench import cost as costs
from bench import wrk
from bench.procs import ServerFailed, http_get
from bench.servers import Deployment

MIB = 1024 * 1024


@dataclass
class Settings:
    duration: int
    connections: int
    warmup: int = 2
    wasp_log: bool = False  # like the peers, which write no access log


@dataclass
class Row:
    scenario: str
    server: str
    baseline: bool = False
    result: wrk.WrkResult | None = None
    failure: str = ""  # why there is no result
    notes: list[str] = field(default_factory=list)
    rounds: list[float] = field(default_factory=list)  # req/s of each round, when combined
    cost: costs.Cost | None = None  # CPU per process over the measured run(s)


def combine(rows: list[Row]) -> Row:
    """The rounds of one row as one: medians of req/s, p50 and p99, errors summed.

    Rounds run interleaved with the other rows, so a burst of background load on the machine
    lands on different servers in different rounds and the median sets it aside."""
    first = rows[0]
    done = [r for r in rows if r.result is not None]
    notes = [n for r in rows for n in r.notes]
    if not done:
        return Row(first.scenario, first.server, first.baseline, failure=first.failure, notes=notes)
    if len(done) < len(rows):
        failed = next(r for r in rows if r.failure)
        notes.insert(0, f"{len(rows) - len(done)} of {len(rows)} rounds failed; first: {summary(failed.failure)}")
    results = [r.result for r in done]

    def mid(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    merged = wrk.WrkResult(
        requests=sum(r.requests for r in results), seconds=sum(r.seconds for r in results),
        rps=mid(r.rps for r in results), p50_ms=mid(r.p50_ms for r in results),
        p99_ms=mid(r.p99_ms for r in results),
        **{k: sum(getattr(r, k) for r in results) for k in ("non2xx", "connect", "read", "write", "timeout")},
        raw="",
    )
    return Row(first.scenario, first.server, first.baseline, merged, notes=notes,
               rounds=[r.rps for r in results] if len(rows) > 1 else [],
               cost=costs.merge([r.cost for r in done]))


def check_answer(port: int, path: str, length: int, settle_s: float = 10.0, tls: bool = False) -> str:
    """Wait until GET `path` gives the expected 200, since a fast wrong answer would make a
    fine-looking row. A server may answer otherwise (a 503) for a moment after it first answers;
    that is returned as a note. Raises ServerFailed when it does not settle within settle_s."""
    started = time.monotonic()
    wrong: dict[int, int] = {}
    while True:
        r = http_get(port, path, timeout=10, tls=tls)
        if r.status == 200 and len(r.body) == length:
            break
        wrong[r.status] = wrong.get(r.status, 0) + 1
        if time.monotonic() - started > settle_s:
            raise ServerFailed(f"GET {path} answered {r.status} with {len(r.body)} bytes for "
                               f"{settle_s:.0f}s, expected 200 with {length}: {r.body[:120]!r}")
        time.sleep(0.1)
    if not wrong:
        return ""
    seen = ", ".join(f"{n}x {status}" for status, n in sorted(wrong.items()))
    return (f"answered {seen} to GET {path} for {time.monotonic() - started:.1f}s after it "
            f"first answered, then 200")


def check_encoding(port: int, path: str, length: int, accept: str, coding: str,
                   settle_s: float = 10.0) -> None:
    """The compression rows: with `Accept-Encoding: accept` the answer must come `coding`-encoded
    and decode to the `length` bytes of the plain answer. A static file is compressed once it is
    frequently hit, so this asks again for a while; raises ServerFailed when it never does."""
    import gzip

    started = time.monotonic()
    while True:
        r = http_get(port, path, timeout=10, headers={"Accept-Encoding": accept})
        got = r.headers.get("content-encoding", "")
        if r.status == 200 and got == coding:
            if coding == "br":
                import brotli
                body = brotli.decompress(r.body)
            else:
                body = gzip.decompress(r.body)
            if len(body) != length:
                raise ServerFailed(f"GET {path} ({coding}) decoded to {len(body)} bytes, not {length}")
            return
        if time.monotonic() - started > settle_s:
            raise ServerFailed(f"GET {path} with Accept-Encoding: {accept} answered {r.status} "
                               f"Content-Encoding {got or 'none'} for {settle_s:.0f}s, expected {coding}")
        time.sleep(0.1)


def summary(failure: str) -> str:
    """A failure in one line: its first line and, if it quotes output, the output's last line."""
    lines = [line.strip() for line in failure.splitlines() if line.strip()]
    if len(lines) < 2:
        return lines[0] if lines else ""
    return f"{lines[0].rstrip(':')}: {lines[-1]}"


def quote_block(text: str) -> str:
    """A failure for a markdown list item: its first line, then any quoted output indented."""
    first, _, rest = text.partition("\n")
    if not rest.strip():
        return first
    quoted = "\n".join("      " + line for line in rest.splitlines())
    return f"{first}\n\n{quoted}\n"


def _stopped(dep: Deployment, row: Row) -> None:
    try:
        dep.stop()
    finally:
        row.notes.extend(dep.stop_notes())
        if dep.label == "wasp":
            # The manager must exit cleanly on SIGTERM; say so when it did not (and the failure
            # does not already say it died).
            for s in dep.servers:
                if row.failure and s.stop_note.startswith("had already exited"):
                    continue
                if s.stop_note and not s.stop_note.startswith("exited with code 0 "):
                    row.notes.append(f"wasp manager {s.stop_note}")


def measure(scenario: str, make: Callable[[], Deployment], path: str, length: int,
            settings: Settings, baseline: bool = False, headers: tuple[str, ...] = ()) -> Row:
    """One row; `headers` go on every wrk request ("Connection: close": a new connection each)."""
    dep = make()
    row = Row(scenario, dep.label, baseline)
    url = f"{dep.scheme}://127.0.0.1:{dep.port}{path}"
    print(f"  {scenario}: {dep.label} on {url} ...", flush=True)
    try:
        try:
            dep.start()
        except ServerFailed as e:
            row.failure = f"{dep.label} did not start: {e}"
        else:
            _load(row, dep, url, path, length, settings, headers or dep.wrk_headers)
    finally:
        _stopped(dep, row)
    if row.failure:
        print(f"    FAILED: {summary(row.failure)}", flush=True)
    return row


def _load(row: Row, dep: Deployment, url: str, path: str, length: int, settings: Settings,
          headers: tuple[str, ...] = ()) -> None:
    try:
        note = check_answer(dep.port, path, length, tls=dep.scheme == "https")
        if note:
            row.notes.append(note)
        if dep.encoding:
            check_encoding(dep.port, path, length, *dep.encoding)
        wrk.run(url, settings.warmup, settings.connections, headers=headers)
        # The cost model: every server process's CPU right before and right after the measured
        # run; wrk's own (a reaped child of this process) from getrusage, reported apart.
        load = os.getloadavg()[0]
        before, client_before = costs.sample(dep.roots()), costs.children_cpu_s()
        row.result = wrk.run(url, settings.duration, settings.connections, headers=headers)
        after, client_after = costs.sample(dep.roots()), costs.children_cpu_s()
        r = row.result
        row.cost = costs.difference(before, after, r.requests, client_after - client_before)
        row.cost.load_1m.append(load)
        print(f"    {r.rps:,.0f} req/s, p50 {fmt_ms(r.p50_ms)} ms, p99 {fmt_ms(r.p99_ms)} ms, "
              f"errors {r.error_text()}; µs/request: {costs.line(row.cost)}", flush=True)
    except (ServerFailed, wrk.WrkFailed, OSError, http.client.HTTPException, psutil.Error) as e:
        row.failure = f"{dep.label} failed: {type(e).__name__}: {e}"


def fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


@dataclass
class Rss:
    front_mib: float | None = None
    manager_mib: float | None = None
    workers_mib: list[float] = field(default_factory=list)
    failure: str = ""
    notes: list[str] = field(default_factory=list)
    label: str = "rss"  # "rss https": the same with an https binding (TLS contexts loaded)


def _cmdline(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return ""


def find_front(manager_pid: int) -> psutil.Process | None:
    """The front: a child of the manager whose command line names wasp.front."""
    children = psutil.Process(manager_pid).children(recursive=True)
    return next((c for c in children if "wasp.front" in _cmdline(c)), None)


def worker_processes(manager_pid: int, pool: str | None = None) -> list[psutil.Process]:
    """Workers as the OS shows them (`-m wasp.worker ... --pool NAME`), for cross-checks."""
    try:
        children = psutil.Process(manager_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for c in children:
        try:
            if c.status() == psutil.STATUS_ZOMBIE:
                continue  # dead, not yet reaped by the manager
        except psutil.NoSuchProcess:
            continue
        words = _cmdline(c).split()
        if "wasp.worker" not in words:
            continue
        if pool is not None and "--pool" in words:
            i = words.index("--pool")
            if i + 1 < len(words) and words[i + 1] != pool:
                continue
        found.append(c)
    return found


def measure_rss(make: Callable[[], Deployment], settle_s: float = 2.0, label: str = "rss") -> Rss:
    """Front RSS at rest: after the server has answered one request and sat idle for settle_s."""
    dep = make()
    out = Rss(label=label)
    print(f"  {label}: wasp front at rest on port {dep.port} ...", flush=True)
    try:
        dep.start()
        note = check_answer(dep.port, "/", 13, tls=dep.scheme == "https")
        if note:
            out.notes.append(note)
        time.sleep(settle_s)
        manager = psutil.Process(dep.servers[0].pid)
        out.manager_mib = manager.memory_info().rss / MIB
        front = find_front(manager.pid)
        if front is None:
            names = [_cmdline(c) for c in manager.children(recursive=True)]
            out.failure = f"no child of the manager has 'wasp.front' in its command line: {names}"
            return out
        out.front_mib = front.memory_info().rss / MIB
        out.workers_mib = [w.memory_info().rss / MIB for w in worker_processes(manager.pid)]
        print(f"    front {out.front_mib:.1f} MiB, manager {out.manager_mib:.1f} MiB, workers "
              f"{', '.join(f'{w:.1f}' for w in out.workers_mib) or 'none found'} MiB", flush=True)
    except ServerFailed as e:
        out.failure = f"wasp did not start: {e}"
    except (OSError, http.client.HTTPException, psutil.Error) as e:
        out.failure = f"wasp failed: {type(e).__name__}: {e}"
    finally:
        row = Row(label, "wasp", failure=out.failure)
        _stopped(dep, row)
        out.notes += row.notes
    if out.failure:
        print(f"    FAILED: {summary(out.failure)}", flush=True)
    return out
