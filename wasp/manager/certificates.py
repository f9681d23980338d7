"""Automatic certificates in the manager: which host is due, one order at a time in a thread,
and what the front must know (the pending challenges).

The manager loop never blocks on the CA: `tick()` starts `acme.issue()` in a daemon thread when a
host is due; the thread hands everything back through the manager's queue (`post`, thread-safe):
`("acme", "challenge", host, challenges, event)` when a challenge must be answered (the manager
sends the front an `acme` message and sets `event` on the front's `acme_ack`; the thread waits
for it before it tells the CA to validate) and `("acme", "done", host, error)` at the end.

Renewal (`due_at`): a host whose filed certificate is missing, wasp's temporary one, for another
name or expired is due at once; an issued one when `renew_before` of its lifetime is left (0 = a
third of it). A failed order keeps the certificate that serves and is retried after
`retry_interval`, doubling per failure in a row up to a day.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from typing import TYPE_CHECKING

from wasp.config.acme import acme_hosts
from wasp.config.model import AcmeSettings, Config

if TYPE_CHECKING:
    from wasp.manager import acme

MAX_RETRY = 86400.0
#: How long an order's thread waits for the front to take a challenge.
ACK_TIMEOUT = 30.0

EVENT_ISSUED = 9060
EVENT_RENEWED = 9061
EVENT_FAILED = 9062


def due_at(info: acme.CertInfo | None, settings: AcmeSettings, now: float) -> float:
    """Wall-clock time at which a host's certificate should be (re)ordered."""
    if info is None or info.temporary or not info.covers or info.not_after <= now:
        return now
    lifetime = max(0.0, info.not_after - info.not_before)
    before = float(settings.renew_before) or lifetime / 3
    return info.not_after - before


def retry_delay(settings: AcmeSettings, failures: int) -> float:
    base = float(settings.retry_interval) or 60.0
    return min(MAX_RETRY, base * 2 ** max(0, failures - 1))


class _Host:
    __slots__ = ("due", "failures", "issued_before")

    def __init__(self, due: float, issued_before: bool):
        self.due = due                    # wall-clock time of the next order
        self.failures = 0                 # failed orders in a row
        self.issued_before = issued_before


class Certificates:
    """`post(item)` puts an item on the manager's queue from any thread; `send_front(message)`
    sends the front a control message (dropped while there is no front); `event(id, data)`
    writes an event."""

    def __init__(self, post: Callable[[tuple], None], send_front: Callable[[dict], None],
                 event: Callable[[int, dict], None], report: Callable[[str], None]):
        self.post = post
        self.send_front = send_front
        self.event = event
        self.report = report
        self.settings = AcmeSettings()
        self.run_dir = ""
        self.hosts: dict[str, _Host] = {}
        self.running: str | None = None          # the host whose order runs now
        self.http01: dict[str, list[str]] = {}    # what the front answers now
        self.tls_alpn01: dict[str, list[str]] = {}
        self._message_id = 0
        self._waiting: list[tuple[int, threading.Event]] = []

    # ---- configuration ----
    def apply(self, config: Config) -> None:
        """Take the hosts of a (new) config: file a temporary certificate for each host that has
        no usable one (before the front is told to serve it), schedule each."""
        self.settings = config.acme
        self.run_dir = config.server.run_dir
        now = time.time()
        hosts = acme_hosts(config)
        if not hosts and not self.hosts:
            return  # no acme binding: cryptography and the ACME client are never imported
        from wasp.manager import acme
        for host in list(self.hosts):
            if host not in hosts:
                del self.hosts[host]  # its files stay; the order running for it finishes
        for host in hosts:
            if host == self.running:
                continue  # its order's thread files the certificate; it is rescheduled when done
            try:
                acme.ensure_temporary(self.run_dir, host)
            except OSError as exc:
                self.report(f"wasp: cannot write the temporary certificate of {host}: {exc}")
            info = acme.current(self.run_dir, host)
            entry = self.hosts.get(host)
            if entry is None:
                self.hosts[host] = _Host(due_at(info, self.settings, now),
                                         info is not None and not info.temporary)
            elif not entry.failures:
                entry.due = due_at(info, self.settings, now)  # renew_before may have changed

    # ---- the loop ----
    def next_deadline(self, now_mono: float, now_wall: float) -> float | None:
        if self.running is not None or not self.hosts:
            return None
        due = min(h.due for h in self.hosts.values())
        return now_mono + max(0.0, due - now_wall)

    def tick(self, now_wall: float) -> None:
        if self.running is not None or not self.hosts:
            return
        host, entry = min(self.hosts.items(), key=lambda item: item[1].due)
        if entry.due > now_wall:
            return
        self.running = host
        settings, run_dir = self.settings, self.run_dir
        thread = threading.Thread(target=self._order, args=(settings, run_dir, host),
                                  name=f"acme {host}", daemon=True)
        thread.start()

    def _order(self, settings: AcmeSettings, run_dir: str, host: str) -> None:
        """The thread: one order. Talks to the loop only through `post`."""
        from wasp.manager import acme

        def publish(challenges: dict) -> None:
            event = threading.Event()
            self.post(("acme", "challenge", host, challenges, event))
            if challenges and not event.wait(ACK_TIMEOUT):
                raise acme.AcmeError("the front did not take the challenge in time")

        error = ""
        try:
            acme.issue(settings, run_dir, host, publish)
        except acme.AcmeError as exc:
            error = str(exc) or type(exc).__name__
        except Exception as exc:  # never let a bug kill the thread silently
            error = f"{type(exc).__name__}: {exc}"
        try:
            self.post(("acme", "done", host, error))
        except RuntimeError:
            pass  # the manager's loop is gone (shutting down)

    # ---- inputs from the queue ----
    def handle(self, item: tuple) -> None:
        kind, host = item[1], item[2]
        if kind == "challenge":
            challenges, event = item[3], item[4]
            self.http01 = {k: list(v) for k, v in challenges.get("http01", {}).items()}
            self.tls_alpn01 = {k: list(v) for k, v in challenges.get("tls_alpn01", {}).items()}
            message = self.front_message()
            self._waiting.append((message["id"], event))
            self.send_front(message)
        elif kind == "done":
            self._done(host, item[3])

    def _done(self, host: str, error: str) -> None:
        from wasp.manager import acme

        self.running = None
        now = time.time()
        entry = self.hosts.get(host)
        if error:
            if entry is not None:
                entry.failures += 1
                delay = retry_delay(self.settings, entry.failures)
                entry.due = now + delay
            else:
                delay = 0.0
            self.event(EVENT_FAILED, {"host": host, "error": error, "directory": self.settings.directory,
                                      "retry_s": round(delay)})
            return
        info = acme.current(self.run_dir, host)
        renewed = entry is not None and entry.issued_before
        if entry is not None:
            entry.failures = 0
            entry.issued_before = True
            entry.due = due_at(info, self.settings, now)
        expires = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(info.not_after)) if info else "?"
        self.event(EVENT_RENEWED if renewed else EVENT_ISSUED,
                   {"host": host, "serial": format(info.serial, "X") if info else "?",
                    "expires": expires, "directory": self.settings.directory})
        self.send_front(self.front_message())  # re-read the files now, not at the next poll

    def acked(self, message_id: int) -> None:
        keep = []
        for wanted, event in self._waiting:
            if wanted <= message_id:
                event.set()
            else:
                keep.append((wanted, event))
        self._waiting = keep

    def front_message(self) -> dict:
        """The `acme` control message: the challenges in force (a new front gets it too)."""
        self._message_id += 1
        return {"op": "acme", "id": self._message_id, "http01": self.http01, "tls_alpn01": self.tls_alpn01}
