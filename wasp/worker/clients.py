"""Dynamic IP restrictions' per-client counters, without I/O: requests in flight and request rate.

One `ClientTable` per application in a worker (IIS keeps its counters per w3wp; in a web garden
each worker counts its own share of a client's requests, docs/worker.md says what that means).
A client is its address string as the request head gives it (`RequestHead.client`, which is the
forwarded client only when the peer is a `server.trusted_proxies` proxy).

- In flight: the contexts admitted and not yet ended. END_REQUEST takes a request out; one that
  never gets there (an ASGI task cancelled by `execution_timeout`) is dropped as soon as it is
  finished or cancelled, so a lost END_REQUEST cannot lock a client out.
- Rate: a sliding window of `interval` seconds, estimated from the count of the current fixed
  window and the previous one weighted by how much of it still overlaps (the estimate nginx's and
  Cloudflare's limiters use): O(1) memory per client whatever `max_requests` is. Every request
  counts, denied ones too, so a client that keeps hammering stays denied; one that slows down is
  let through again within two intervals.

Memory is bounded: at most `limit` clients, least recently seen first out. An entry with nothing
in flight and no request for two intervals is expired on the way (from the old end of the table,
so each request does O(1) work); when the table is full of live clients the least recently seen
one is forgotten, which at worst resets that client's counts. An attacker with many source
addresses therefore costs a fixed amount of memory, not one entry per address forever.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable

#: The most clients one table remembers (about 200 bytes each).
CLIENT_LIMIT = 50_000

RATE = 502         # substatus: too many requests in the interval
CONCURRENCY = 501  # substatus: too many requests in flight


class _Client:
    __slots__ = ("start", "count", "previous", "interval", "inflight", "seen")

    def __init__(self, now: float, interval: float):
        self.start = now
        self.count = 0
        self.previous = 0
        self.interval = interval
        self.inflight: set = set()
        self.seen = now


class ClientTable:
    def __init__(self, limit: int = CLIENT_LIMIT, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.clock = clock
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._lock = threading.Lock()  # BEGIN_REQUEST on the loop, END_REQUEST maybe on a thread

    def __len__(self) -> int:
        return len(self._clients)

    def admit(self, key: str, request, *, max_concurrent: int = 0, max_requests: int = 0,
              interval: float = 0.0, enforce: bool = True) -> int:
        """Count `request` for client `key`: 0 when it may go on (it is then in flight until
        `release`), else the substatus it is denied with (CONCURRENCY or RATE). `max_concurrent`
        / `max_requests` of 0 leave that limit off. `enforce=False` (logging-only mode) counts and
        judges but admits every request."""
        now = self.clock()
        with self._lock:
            clients = self._clients
            client = clients.get(key)
            if client is None:
                self._expire(now)
                client = clients[key] = _Client(now, interval)
            else:
                clients.move_to_end(key)
            client.seen = now
            verdict = 0
            if max_concurrent:
                inflight = client.inflight
                if len(inflight) >= max_concurrent:
                    for done in [r for r in inflight if r.finished or r.cancelled]:
                        inflight.discard(done)
                if len(inflight) >= max_concurrent:
                    verdict = CONCURRENCY
            if max_requests and interval > 0:
                if self._over_rate(client, now, interval, max_requests):
                    verdict = verdict or RATE
            if verdict == 0 or not enforce:
                if max_concurrent:
                    client.inflight.add(request)
            return verdict

    def release(self, key: str, request) -> None:
        with self._lock:
            client = self._clients.get(key)
            if client is not None:
                client.inflight.discard(request)

    @staticmethod
    def _over_rate(client: _Client, now: float, interval: float, max_requests: int) -> bool:
        if client.interval != interval:  # the URL's settings differ from the last: start again
            client.interval, client.start, client.count, client.previous = interval, now, 0, 0
        elapsed = now - client.start
        if elapsed >= interval:
            windows = int(elapsed // interval)
            client.previous = client.count if windows == 1 else 0
            client.count = 0
            client.start += windows * interval
            elapsed = now - client.start
        client.count += 1
        estimate = client.previous * (1.0 - elapsed / interval) + client.count
        return estimate > max_requests

    def _expire(self, now: float) -> None:
        """Drop idle clients from the old end; when still full, the least recently seen."""
        clients = self._clients
        while clients:
            key, oldest = next(iter(clients.items()))
            idle = now - oldest.seen
            if idle < 2 * oldest.interval:
                break
            if oldest.inflight:
                for done in [r for r in oldest.inflight if r.finished or r.cancelled]:
                    oldest.inflight.discard(done)
                if oldest.inflight:
                    break
            clients.popitem(last=False)
        while len(clients) >= self.limit:
            clients.popitem(last=False)
