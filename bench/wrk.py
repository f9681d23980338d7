"""Running wrk and reading its report."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    non2xx: int  # wrk counts responses outside 2xx and 3xx
    connect: int
    read: int
    write: int
    timeout: int
    raw: str

    @property
    def socket_errors(self) -> int:
        return self.connect + self.read + self.write + self.timeout

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors

    def error_text(self) -> str:
        if not self.errors:
            return "0"
        parts = []
        if self.non2xx:
            parts.append(f"{self.non2xx} non-2xx")
        for name in ("connect", "read", "write", "timeout"):
            if getattr(self, name):
                parts.append(f"{getattr(self, name)} {name}")
        return ", ".join(parts)


class WrkFailed(Exception):
    pass


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def parse(text: str) -> WrkResult:
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m or not rps:
        raise WrkFailed(f"cannot read wrk output:\n{text.strip()[-800:]}")
    pct = {p: _ms(v, u) for p, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)}
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    c, r, w, t = (int(x) for x in sock.groups()) if sock else (0, 0, 0, 0)
    return WrkResult(
        requests=int(m.group(1)), seconds=_ms(m.group(2), m.group(3)) / 1000.0,
        rps=float(rps.group(1)), p50_ms=pct.get("50"), p99_ms=pct.get("99"),
        non2xx=int(non2xx.group(1)) if non2xx else 0, connect=c, read=r, write=w, timeout=t,
        raw=text,
    )


def command(url: str, duration: int, connections: int, threads: int = 1,
            headers: tuple[str, ...] = ()) -> list[str]:
    extra = [arg for h in headers for arg in ("-H", h)]
    return ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", *extra, url]


def run(url: str, duration: int, connections: int, threads: int = 1,
        headers: tuple[str, ...] = ()) -> WrkResult:
    """One wrk run, bounded by its duration plus a margin for connection set-up and teardown.
    `headers` ("Connection: close") go on every request."""
    try:
        done = subprocess.run(command(url, duration, connections, threads, headers), capture_output=True,
                              text=True, timeout=duration + 30)
    except subprocess.TimeoutExpired as e:
        raise WrkFailed(f"wrk did not finish within {duration + 30}s") from e
    if done.returncode != 0:
        raise WrkFailed(f"wrk exited with {done.returncode}: {(done.stderr or done.stdout).strip()[-800:]}")
    return parse(done.stdout)


def start(url: str, duration: int, connections: int, threads: int = 1) -> subprocess.Popen:
    """wrk in the background, for runs that do something else meanwhile; finish with `finish`."""
    return subprocess.Popen(command(url, duration, connections, threads), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, duration: int) -> WrkResult:
    try:
        out, err = proc.communicate(timeout=duration + 30)
    except subprocess.TimeoutExpired as e:
        proc.kill()
        proc.communicate(timeout=5)
        raise WrkFailed(f"wrk did not finish within {duration + 30}s") from e
    if proc.returncode != 0:
        raise WrkFailed(f"wrk exited with {proc.returncode}: {(err or out).strip()[-800:]}")
    return parse(out)
