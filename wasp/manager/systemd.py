"""Running under systemd: sd_notify(3), the watchdog and the service status line.

systemd hands a Type=notify service an AF_UNIX datagram socket in NOTIFY_SOCKET (a path, or
`@name` for the abstract namespace). The manager tells it:

    READY=1                         the pools' startup is done (`startup_done`)
    RELOADING=1 + MONOTONIC_USEC=   a SIGHUP reload begins (READY=1 again when it is over)
    STOPPING=1                      a graceful stop begins
    STATUS=...                      pools, workers and requests/s, shown by `systemctl status`
    WATCHDOG=1                      at half of WATCHDOG_USEC, from the main loop, so a loop that
                                    hangs gets the service restarted (WatchdogSec=)

Only the manager speaks: `take_environment` removes NOTIFY_SOCKET, WATCHDOG_* and the socket
activation variables from the environment, so neither the fronts nor the workers (nor the
applications in them) inherit them, as sd_notify's and sd_listen_fds' `unset_environment` do.
Sending never blocks and never fails the server: a datagram that cannot be sent is dropped.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

from wasp.manager.pools import PoolState, WorkerState

#: The variables systemd sets for the main process only.
#: How soon a state change the full notify queue refused is sent again.
RETRY_INTERVAL = 0.1
SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
                     "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")


@dataclass(frozen=True)
class SystemdEnvironment:
    notify_socket: str = ""
    watchdog_usec: int = 0
    listen_fds: int = 0
    listen_fdnames: tuple[str, ...] = ()


def read_environment(environ: dict[str, str], pid: int) -> SystemdEnvironment:
    """What systemd passed to process `pid` (sans I/O). WATCHDOG_* and LISTEN_* count only when
    their *_PID names this process (or, for the watchdog, is absent), as libsystemd checks."""
    watchdog = 0
    wd_pid = environ.get("WATCHDOG_PID", "")
    if not wd_pid or wd_pid == str(pid):
        try:
            watchdog = max(0, int(environ.get("WATCHDOG_USEC", "0")))
        except ValueError:
            watchdog = 0
    fds = 0
    names: tuple[str, ...] = ()
    if environ.get("LISTEN_PID", "") == str(pid):
        try:
            fds = max(0, int(environ.get("LISTEN_FDS", "0")))
        except ValueError:
            fds = 0
        if fds and "LISTEN_FDNAMES" in environ:
            names = tuple(environ["LISTEN_FDNAMES"].split(":"))
    return SystemdEnvironment(environ.get("NOTIFY_SOCKET", ""), watchdog, fds, names)


def take_environment(environ=None, pid: int | None = None) -> SystemdEnvironment:
    """Read systemd's variables for this process and remove them from `environ` (os.environ)."""
    environ = os.environ if environ is None else environ
    found = read_environment(dict(environ), os.getpid() if pid is None else pid)
    for name in SYSTEMD_VARIABLES:
        environ.pop(name, None)
    return found


def notify_address(text: str) -> str | bytes | None:
    """The socket address of a NOTIFY_SOCKET value; None for one wasp cannot use (vsock)."""
    if text.startswith("@"):
        return b"\0" + text[1:].encode()
    if text.startswith("/"):
        return text
    return None


def message(**fields) -> bytes:
    """`KEY=value` lines; a value never carries a newline (it would start another field)."""
    lines = []
    for key, value in fields.items():
        text = str(value).replace("\n", " ")
        lines.append(f"{key}={text}")
    return ("\n".join(lines) + "\n").encode("utf-8", "replace")


class Notifier:
    """sd_notify over NOTIFY_SOCKET; does nothing when there is none."""

    def __init__(self, env: SystemdEnvironment):
        self.address = notify_address(env.notify_socket) if env.notify_socket else None
        #: Seconds between WATCHDOG=1 pings: half of WATCHDOG_USEC (sd_watchdog_enabled(3)).
        self.watchdog_interval = env.watchdog_usec / 2e6 if env.watchdog_usec else None
        self.next_watchdog: float | None = None
        self.ready_sent = False
        self._sock: socket.socket | None = None
        self._retry: list[bytes] = []
        self.dropped = 0
        if self.address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                                       | socket.SOCK_NONBLOCK)

    @property
    def active(self) -> bool:
        return self._sock is not None

    def send(self, important: bool = False, **fields) -> None:
        """Send one message. The socket's queue is short (net.unix.max_dgram_qlen, 10 by
        default): when it is full, a state change (`important`: READY, RELOADING, STOPPING) is
        kept and sent again from `tick` before anything newer, a WATCHDOG or STATUS is dropped."""
        if self._sock is None:
            return
        data = message(**fields)
        if self._retry and not self._flush_retry():
            if important:
                self._retry.append(data)
            else:
                self.dropped += 1
            return
        try:
            self._sock.sendto(data, self.address)
        except BlockingIOError:
            if important:
                self._retry.append(data)
            else:
                self.dropped += 1
        except OSError:
            self.dropped += 1  # systemd gone: never the server's problem

    def _flush_retry(self) -> bool:
        """Send what waits; True when nothing waits any more."""
        while self._retry:
            try:
                self._sock.sendto(self._retry[0], self.address)
            except BlockingIOError:
                return False
            except OSError:
                self.dropped += 1
            self._retry.pop(0)
        return True

    def retry_due(self, now: float) -> float | None:
        """When to try again a state change the full queue refused, or None."""
        return now + RETRY_INTERVAL if self._retry else None

    def ready(self, status: str) -> None:
        self.ready_sent = True
        self.send(True, READY=1, STATUS=status)

    def reloading(self) -> None:
        self.send(True, RELOADING=1, MONOTONIC_USEC=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)

    def stopping(self, status: str = "Stopping") -> None:
        self.send(True, STOPPING=1, STATUS=status)

    def watchdog_due(self, now: float) -> float | None:
        """When the next WATCHDOG=1 is due (monotonic), or None without a watchdog."""
        if self.watchdog_interval is None or self._sock is None:
            return None
        if self.next_watchdog is None:
            self.next_watchdog = now
        return self.next_watchdog

    def tick(self, now: float, status: str | None = None) -> None:
        if self._retry and self._sock is not None:
            self._flush_retry()
        due = self.watchdog_due(now)
        if due is not None and now >= due:
            if status is None:
                self.send(WATCHDOG=1)
            else:
                self.send(WATCHDOG=1, STATUS=status)
            self.next_watchdog = now + self.watchdog_interval

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


# ---------------------------------------------------------------------- what the manager reports

def startup_done(sup, now: float, started: float) -> bool:
    """Whether the pools' startup is over: every Started always_running pool has its workers
    ready (or has had a worker fail to start: rapid-fail protection owns it from there), or the
    longest startup_time_limit of those pools has passed. on_demand pools start nothing."""
    waiting = []
    for rec in sup.pools.values():
        if rec.state is not PoolState.STARTED or not rec.always_running:
            continue
        if rec.start_failures or rec.consecutive_failures:
            continue
        ready = sum(1 for w in sup.workers_of(rec.name) if w.state is WorkerState.READY)
        if ready < rec.wanted:
            waiting.append(float(rec.settings.process_model.startup_time_limit))
    return not waiting or now - started >= max(waiting)


class RequestRate:
    """Requests/s over the fronts' pongs: the sum of every pool's `served` counters."""

    def __init__(self) -> None:
        self._last: tuple[float, int] | None = None
        self.rate = 0.0

    def update(self, now: float, front_stats: dict[int, dict]) -> None:
        total = 0
        for stats in front_stats.values():
            pools = stats.get("pools") or {}
            if isinstance(pools, dict):
                for pool in pools.values():
                    if isinstance(pool, dict):
                        try:
                            total += int(pool.get("served", 0))
                        except (TypeError, ValueError):
                            pass
        if self._last is not None and now > self._last[0]:
            served = total - self._last[1]
            if served >= 0:  # a restarted front's counters begin at 0 again: skip that round
                self.rate = served / (now - self._last[0])
        self._last = (now, total)


def status_line(sup, rate: float, ready: bool) -> str:
    """`systemctl status`'s Status: line."""
    started = sum(1 for r in sup.pools.values() if r.state is PoolState.STARTED)
    disabled = [r.name for r in sup.pools.values() if r.state is PoolState.DISABLED]
    workers = sum(1 for w in sup.workers.values() if w.state is WorkerState.READY)
    text = (f"{started}/{len(sup.pools)} pools started, {workers} worker"
            f"{'s' if workers != 1 else ''} ready, {rate:.1f} requests/s")
    if disabled:
        text += ", disabled: " + ", ".join(disabled)
    if not ready:
        text = "Starting: " + text
    return text
