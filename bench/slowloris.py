"""The slowloris scenario (issue 7 item 8): normal clients' p99 while thousands of slow clients
hold connections open, and the front's RSS then, at rest and with 10,000 idle keep-alive
connections.

1. wasp (WSGI hello) starts; `wrk -c64` measures the undisturbed p99.
2. SLOW connections are opened and each sends an incomplete request head, then one more header
   line every TRICKLE_S (a slowloris: never a complete head, always just inside any idle timer).
   `wrk -c64` measures again while they are held; the front's RSS is read.
3. The slow connections close; IDLE connections each send one request, read its answer and stay
   open (keep-alive, idle); the front's RSS is read again.

Everything targets 127.0.0.1, every count is fixed and every wait has a deadline. The process
raises its own RLIMIT_NOFILE to the hard limit first; the server it starts inherits it.
"""

from __future__ import annotations

import resource
import socket
import threading
import time

import psutil

from bench import wrk
from bench.measure import MIB, Settings, find_front, fmt_ms
from bench.servers import wasp
from bench.stress import Section, _start

SLOW = 5000
IDLE = 10_000
TRICKLE_S = 5.0
CONNECT_TIMEOUT_S = 10.0
#: Targets (issue 7 item 8).
P99_RATIO = 2.0
RSS_REST_MIB = 40.0
RSS_IDLE_MIB = 120.0


def _raise_nofile(need: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        soft = min(hard, max(need, soft))
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


def _open(port: int, count: int, deadline: float) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT_S)
        except OSError:
            break
        socks.append(s)
    return socks


class _Trickle(threading.Thread):
    """Sends one more header line on every slow connection each TRICKLE_S, spread over the
    interval (a slice of the connections every 0.1 s, as a real slowloris paces itself), until
    stopped."""

    def __init__(self, socks: list[socket.socket], until: float):
        super().__init__(daemon=True)
        self.socks = socks
        self.until = until
        self.stop = threading.Event()
        self.sent = 0

    def run(self) -> None:
        slices = int(TRICKLE_S / 0.1)
        n = 0
        while time.monotonic() < self.until:
            n += 1
            line = b"X-Slow-%d: x\r\n" % n
            for k in range(slices):
                if self.stop.wait(0.1):
                    return
                for s in self.socks[k::slices]:
                    try:
                        s.send(line)
                        self.sent += 1
                    except OSError:
                        pass


def _rss(front: psutil.Process | None) -> float | None:
    try:
        return front.memory_info().rss / MIB if front is not None else None
    except psutil.Error:
        return None


def _close(socks: list[socket.socket]) -> None:
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def run_slowloris(workdir: str, s: Settings, slow: int = SLOW, idle: int = IDLE) -> Section:
    section = Section(f"slowloris: wrk -c{s.connections} undisturbed and with {slow:,} slow clients; "
                      f"front RSS at rest, with them, and with {idle:,} idle keep-alive connections")
    limit = _raise_nofile(slow + idle + 1024)
    if limit < slow + idle + 256:
        section.lines.append(f"- RLIMIT_NOFILE is {limit}: fewer connections than asked may open")
    dep = wasp(workdir, "wsgi_hello", s.wasp_log, name="wasp-slowloris")
    if not _start(dep, section):
        return section
    url = f"http://127.0.0.1:{dep.port}/"
    slow_socks: list[socket.socket] = []
    idle_socks: list[socket.socket] = []
    trickle = None
    try:
        manager = psutil.Process(dep.servers[0].pid)
        time.sleep(1.0)
        front = find_front(manager.pid)
        rest = _rss(front)
        wrk.run(url, s.warmup, s.connections)
        base = wrk.run(url, s.duration, s.connections)
        print(f"  slowloris: undisturbed p99 {fmt_ms(base.p99_ms)} ms", flush=True)

        started = time.monotonic()
        slow_socks = _open(dep.port, slow, started + 60.0)
        for sock in slow_socks:
            try:
                sock.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            except OSError:
                pass
        opened = time.monotonic() - started
        n_slow = len(slow_socks)
        trickle = _Trickle(slow_socks, time.monotonic() + s.duration + 30.0)
        trickle.start()
        held = wrk.run(url, s.duration, s.connections)
        rss_slow = _rss(front)
        alive = sum(1 for c in (front.connections(kind="tcp") if front else []) if c.status == "ESTABLISHED")
        trickle.stop.set()
        trickle.join(TRICKLE_S + 5)
        _close(slow_socks)
        slow_socks = []
        print(f"  slowloris: {slow:,} slow held, p99 {fmt_ms(held.p99_ms)} ms", flush=True)

        time.sleep(2.0)
        started = time.monotonic()
        idle_socks = _open(dep.port, idle, started + 60.0)
        request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        answered = 0
        # In batches well under the pool's queue_length (1000), which would answer the rest 503.
        for first in range(0, len(idle_socks), 250):
            batch = idle_socks[first:first + 250]
            for sock in batch:
                try:
                    sock.sendall(request)
                except OSError:
                    pass
            for sock in batch:
                try:
                    sock.settimeout(max(0.1, started + 120.0 - time.monotonic()))
                    if sock.recv(4096).startswith(b"HTTP/1.1 200"):
                        answered += 1
                except OSError:
                    pass
        time.sleep(1.0)
        rss_idle = _rss(front)

        ratio = (held.p99_ms / base.p99_ms) if held.p99_ms and base.p99_ms else None
        section.lines += [
            "| run | req/s | p99 ms | errors |", "| --- | ---: | ---: | --- |",
            f"| undisturbed | {base.rps:,.0f} | {fmt_ms(base.p99_ms)} | {base.error_text()} |",
            f"| with {n_slow:,} slow clients | {held.rps:,.0f} | {fmt_ms(held.p99_ms)} | {held.error_text()} |",
            "",
            f"- slow connections: {n_slow:,} of {slow:,} opened, in {opened:.1f} s; the front had {alive:,} "
            f"established TCP connections while they were held; {trickle.sent:,} header lines trickled",
            f"- idle keep-alive connections: {len(idle_socks):,} opened, {answered:,} answered 200 and held",
            f"- front RSS: at rest {rest:.1f} MiB, with the slow clients {rss_slow:.1f} MiB, "
            f"with the idle connections {rss_idle:.1f} MiB" if None not in (rest, rss_slow, rss_idle)
            else "- front RSS: not measured (no front process found)",
        ]
        verdicts = []
        if ratio is not None:
            ok = ratio <= P99_RATIO and n_slow >= slow
            verdicts.append(f"{'PASS' if ok else 'FAIL'} p99 with {n_slow:,} slow clients "
                            f"{ratio:.2f}x undisturbed (target <= {P99_RATIO}x)")
        if rest is not None:
            verdicts.append(f"{'PASS' if rest < RSS_REST_MIB else 'FAIL'} front RSS at rest {rest:.1f} MiB "
                            f"(target < {RSS_REST_MIB:.0f})")
        if rss_idle is not None:
            ok = rss_idle < RSS_IDLE_MIB and answered >= idle
            verdicts.append(f"{'PASS' if ok else 'FAIL'} front RSS with {answered:,} idle keep-alive "
                            f"connections {rss_idle:.1f} MiB (target < {RSS_IDLE_MIB:.0f} with {idle:,})")
        section.verdict = "; ".join(verdicts)
    except (wrk.WrkFailed, OSError, psutil.Error) as e:
        section.lines.append(f"- failed: {type(e).__name__}: {e}")
        section.failed = True
        section.verdict = f"FAIL slowloris: {type(e).__name__}: {e}"
    finally:
        if trickle is not None:
            trickle.stop.set()
        _close(slow_socks)
        _close(idle_socks)
        dep.stop()
    return section
