"""The results as markdown: the table, ratios against each scenario's baseline, the targets."""

from __future__ import annotations

from bench import cost as costs
from bench.measure import Row, Rss, fmt_ms, quote_block, summary

WSGI_RATIO = 2.0  # wasp vs nginx -> gunicorn gthread, and a lower p99
ASGI_RATIO = 0.6  # wasp vs uvicorn
CACHED_RATIO = 1.5  # wasp's front cache vs nginx proxy_cache -> gunicorn, a cached WSGI page
HTTPS_RATIO = 2.0  # wasp vs nginx (TLS 1.3) -> gunicorn, keep-alive
SECURITY_RATIO = 0.95  # wasp with IIS's default security modules vs wasp without them (issue 9)
GZIP_JSON_RATIO = 1.5  # wasp's dynamic gzip vs nginx gzip -> gunicorn, a 20 KiB JSON (issue 10)
BROTLI_STATIC_RATIO = 1.0  # wasp's static br copy vs nginx sending a precompressed .br (issue 10)
RSS_LIMIT_MIB = 40.0

#: Issue 8's targets, each against one named peer of a scenario: (scenario, peer's server label,
#: minimum req/s ratio). Every one also needs a p99 no worse than the peer's and 0 errors.
PEER_TARGETS = (
    ("asgi hello", "uvicorn", 0.9),
    ("wsgi hello", "granian", 1.0),
    ("wsgi hello", "nginx -> gunicorn gthread", 3.0),
    ("wsgi 100k", "gunicorn gthread", 1.0),
)


def baseline_of(rows: list[Row], scenario: str) -> Row | None:
    return next((r for r in rows if r.scenario == scenario and r.baseline), None)


def ratio(row: Row, base: Row | None) -> float | None:
    if base is None or row.result is None or base.result is None or not base.result.rps:
        return None
    return row.result.rps / base.result.rps


def table(rows: list[Row]) -> list[str]:
    out = ["| scenario | server | req/s | p50 ms | p99 ms | errors | ratio vs baseline |",
           "| --- | --- | ---: | ---: | ---: | --- | ---: |"]
    for row in rows:
        base = baseline_of(rows, row.scenario)
        if row.result is None:
            out.append(f"| {row.scenario} | {row.server} | — | — | — | did not run (see notes) | — |")
            continue
        r = row.result
        x = ratio(row, base)
        shown = "n/a" if x is None else f"{x:.2f}x"
        if row.baseline:
            shown += " (baseline)"
        rate = f"{r.rps:,.0f}"
        if len(row.rounds) > 1:
            rate += f" ({min(row.rounds):,.0f}–{max(row.rounds):,.0f})"
        out.append(f"| {row.scenario} | {row.server} | {rate} | {fmt_ms(r.p50_ms)} | "
                   f"{fmt_ms(r.p99_ms)} | {r.error_text()} | {shown} |")
    return out


def cost_table(rows: list[Row]) -> list[str]:
    """CPU µs per request of every process of every row that ran (bench/cost.py)."""
    out = ["| scenario | server | µs/request by process | total µs | wrk client µs (not counted) | load |",
           "| --- | --- | --- | ---: | ---: | ---: |"]
    shown = 0
    for row in rows:
        c = row.cost
        if row.result is None or c is None:
            continue
        per = ", ".join(f"{label} {us:.1f}" for label, us in c.per_request_us()) or "—"
        total, client = c.total_us(), c.client_us()
        out.append(f"| {row.scenario} | {row.server} | {per} | "
                   f"{'n/a' if total is None else f'{total:.1f}'} | "
                   f"{'n/a' if client is None else f'{client:.1f}'} | {costs.load_text(c)} |")
        shown += 1
    if not shown:
        return []
    return out + ["", "User + system CPU time of each process of the server under test (psutil, "
                      "sampled right before and right after the measured wrk run) divided by the "
                      "requests wrk completed; with several rounds, summed over the rounds. The "
                      "total is the server's alone: wrk's own CPU (getrusage of the reaped wrk "
                      "process) is shown apart and not counted. load: the 1-minute load average "
                      "as each measured run started (min–max over rounds)."]


def notes(rows: list[Row], rss: Rss | None) -> list[str]:
    out = []
    for row in rows:
        if row.failure:
            out.append(f"- {row.scenario} / {row.server}: {quote_block(row.failure)}")
        for note in row.notes + (row.cost.notes if row.cost else []):
            out.append(f"- {row.scenario} / {row.server}: {note}")
    if rss is not None:
        if rss.failure:
            out.append(f"- {rss.label} / wasp: {quote_block(rss.failure)}")
        out.extend(f"- {rss.label} / wasp: {n}" for n in rss.notes)
    return out


def _compared(rows: list[Row], scenario: str, out: list[str]):
    """(wasp, baseline) results when both ran; otherwise appends why not (if selected at all)."""
    wasp = next((r for r in rows if r.scenario == scenario and r.server == "wasp"), None)
    base = baseline_of(rows, scenario)
    if wasp is None and base is None:
        return None
    if wasp is None or base is None:
        out.append(f"UNKNOWN {scenario}: wasp and the baseline were not both selected")
    elif wasp.result is None:
        out.append(f"FAIL {scenario}: wasp did not run ({summary(wasp.failure)})")
    elif base.result is None:
        out.append(f"UNKNOWN {scenario}: baseline {base.server} did not run")
    else:
        return wasp.result, base.result, base.server
    return None


def _ratio_target(rows: list[Row], scenario: str, ratio: float, out: list[str],
                  who: str = "wasp") -> None:
    """A target that is wasp's req/s at least `ratio` times the baseline's, with 0 errors."""
    pair = _compared(rows, scenario, out)
    if pair:
        w, b, name = pair
        x = w.rps / b.rps
        ok = x >= ratio and w.errors == 0
        out.append(
            f"{'PASS' if ok else 'FAIL'} {scenario}: {who} {w.rps:,.0f} req/s = {x:.2f}x {name} "
            f"{b.rps:,.0f} (target >= {ratio}x); wasp errors {w.error_text()} (target 0)")


def targets(rows: list[Row], rss: Rss | None) -> list[str]:
    """One PASS/FAIL line per target, with the numbers it was decided on."""
    out: list[str] = []
    pair = _compared(rows, "wsgi hello", out)
    if pair:
        w, b, name = pair
        x = w.rps / b.rps
        lower = w.p99_ms is not None and b.p99_ms is not None and w.p99_ms < b.p99_ms
        ok = x >= WSGI_RATIO and lower and w.errors == 0
        out.append(
            f"{'PASS' if ok else 'FAIL'} wsgi hello: wasp {w.rps:,.0f} req/s = {x:.2f}x {name} "
            f"{b.rps:,.0f} (target >= {WSGI_RATIO}x); p99 {fmt_ms(w.p99_ms)} ms vs {fmt_ms(b.p99_ms)} ms "
            f"(target lower); wasp errors {w.error_text()} (target 0)")
    _ratio_target(rows, "asgi hello", ASGI_RATIO, out)
    _ratio_target(rows, "cached page", CACHED_RATIO, out)
    pair = _compared(rows, "https hello", out)
    if pair:
        w, b, name = pair
        x = w.rps / b.rps
        ok = x >= HTTPS_RATIO and w.errors == 0
        out.append(
            f"{'PASS' if ok else 'FAIL'} https hello: wasp {w.rps:,.0f} req/s = {x:.2f}x {name} "
            f"{b.rps:,.0f} (target >= {HTTPS_RATIO}x); p99 {fmt_ms(w.p99_ms)} vs {fmt_ms(b.p99_ms)} ms; "
            f"wasp errors {w.error_text()} (target 0)")
    _ratio_target(rows, "wsgi hello, security", SECURITY_RATIO, out,
                  who="wasp with IIS's default security modules")
    _ratio_target(rows, "gzip json 20k", GZIP_JSON_RATIO, out)
    _ratio_target(rows, "brotli static 100k", BROTLI_STATIC_RATIO, out)
    for scenario in ("wsgi 100k", "static 1k", "static 100k", "https handshake"):
        pair = _compared(rows, scenario, [])
        if pair:
            w, b, name = pair
            unit = "handshakes/s (a new TLS connection per request)" if "handshake" in scenario else "req/s"
            out.append(f"INFO {scenario}: wasp {w.rps:,.0f} {unit} = {w.rps / b.rps:.2f}x {name} "
                       f"{b.rps:,.0f}; p99 {fmt_ms(w.p99_ms)} vs {fmt_ms(b.p99_ms)} ms (no target)")
    if rss is not None:
        out.append(rss_target(rss))
    return out + peer_targets(rows)


def rss_target(rss: Rss) -> str:
    if rss.front_mib is None:
        return f"FAIL {rss.label}: front RSS not measured ({summary(rss.failure)})"
    ok = rss.front_mib < RSS_LIMIT_MIB
    return (f"{'PASS' if ok else 'FAIL'} {rss.label}: wasp front {rss.front_mib:.1f} MiB at rest "
            f"(target < {RSS_LIMIT_MIB:.0f})")


def _row(rows: list[Row], scenario: str, server: str) -> Row | None:
    return next((r for r in rows if r.scenario == scenario and r.server == server), None)


def peer_targets(rows: list[Row]) -> list[str]:
    """Issue 8's targets: wasp against one named peer each, with a p99 no worse than the peer's.
    Lines only for scenarios that ran; UNKNOWN when the peer or wasp did not."""
    out = []
    for scenario, peer, minimum in PEER_TARGETS:
        wasp, other = _row(rows, scenario, "wasp"), _row(rows, scenario, peer)
        if wasp is None and other is None:
            continue
        head = f"{scenario} vs {peer} (issue 8)"
        if wasp is None or other is None:
            out.append(f"UNKNOWN {head}: wasp and {peer} were not both selected")
        elif wasp.result is None:
            out.append(f"FAIL {head}: wasp did not run ({summary(wasp.failure)})")
        elif other.result is None or not other.result.rps:
            out.append(f"UNKNOWN {head}: {peer} did not run")
        else:
            w, p = wasp.result, other.result
            x = w.rps / p.rps
            p99_ok = w.p99_ms is not None and p.p99_ms is not None and w.p99_ms <= p.p99_ms
            ok = x >= minimum and p99_ok and w.errors == 0
            out.append(
                f"{'PASS' if ok else 'FAIL'} {head}: wasp {w.rps:,.0f} req/s = {x:.2f}x {p.rps:,.0f} "
                f"(target >= {minimum}x); p99 {fmt_ms(w.p99_ms)} vs {fmt_ms(p.p99_ms)} ms (target no "
                f"worse); wasp errors {w.error_text()} (target 0)")
    return out


def rss_lines(rss: Rss) -> list[str]:
    if rss.front_mib is None:
        return []
    workers = ", ".join(f"{w:.1f}" for w in rss.workers_mib) or "none found"
    return [f"- front: {rss.front_mib:.1f} MiB",
            f"- manager: {rss.manager_mib:.1f} MiB",
            f"- workers: {workers} MiB"]
