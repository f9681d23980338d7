"""The client's host name for ip_security's domain entries: reverse DNS, then forward-confirmed.

Whoever owns an address block writes its PTR records, so a PTR answer alone proves nothing: an
attacker's 203.0.113.7 can claim to be `trusted.example.com`. A name counts only when a forward
lookup of it gives the same address back (the "forward-confirmed reverse DNS" rule of tcpwrappers
and Apache's `Require host`). Names are lower case without the trailing dot.

Lookups run on a few resolver threads (getnameinfo/getaddrinfo block); the event loop never
waits on one. `cached(address)` answers from the cache (None on a miss) and `resolve(address)`
is a coroutine: the ip_restriction step returns it as a pending step (IIS's
RQ_NOTIFICATION_PENDING), the pipeline carries on with the request when it resolves, and every
other request goes on being served meanwhile. Requests for an address whose lookup is under way
wait for that same lookup. A request waits at most `wait` seconds; a lookup still running then
goes on in the background and fills the cache, and this request is treated as having no name.
That is safe both ways: a name is only ever *needed* to match an allow entry (no name: not
allowed, the unlisted rule decides), and a deny entry by name can be dodged by an attacker anyway
(its PTR records are its own, or it just fails the forward check). After a wait ran out, no
request waits for `backoff` seconds (name servers are slow now: an attacker's, for its own
addresses, can be made so on purpose), and when `max_pending` lookups are under way a new
address gets no lookup and no wait: a flood of addresses with slow name servers costs at most
`max_pending` busy resolver threads, never the loop.

Results (names and failures) are cached for `ttl` / `negative_ttl` seconds (the resolver library
does not give the records' own TTL), in a table of at most `limit` addresses.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
import time
from collections import OrderedDict
from typing import Callable

from wasp.worker.iprules import client_ip

Lookup = Callable[[str], list[str]]


def confirmed_names(address: str) -> list[str]:
    """The forward-confirmed names of `address` (blocking): the PTR name and its aliases, each
    kept only if it resolves back to `address`."""
    try:
        primary, aliases, _ = socket.gethostbyaddr(address)
    except (OSError, UnicodeError):
        return []
    names = []
    for name in [primary, *aliases]:
        name = name.lower().rstrip(".")
        if not name or name in names:
            continue
        try:
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            continue
        if any(_same(info[4][0], address) for info in infos):
            names.append(name)
    return names


def _same(a: str, b: str) -> bool:
    ip = client_ip(a)
    return ip is not None and ip == client_ip(b)


class Resolver:
    """Cached forward-confirmed reverse lookups, safe to call from the loop or any thread."""

    def __init__(self, lookup: Lookup = confirmed_names, *, wait: float = 3.0, ttl: float = 300.0,
                 negative_ttl: float = 60.0, limit: int = 16384, threads: int = 4,
                 max_pending: int = 32, backoff: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self.lookup = lookup
        self.wait = wait
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.limit = limit
        self.max_pending = max_pending
        self.backoff = backoff
        self._slow_until = float("-inf")
        self.clock = clock
        self.threads = threads
        self._cache: OrderedDict[str, tuple[float, list[str]]] = OrderedDict()
        self._pending: dict[str, concurrent.futures.Future] = {}
        self._lock = threading.Lock()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    def cached(self, address: str) -> list[str] | None:
        """The cached names of `address` (possibly none), or None when it is not cached."""
        now = self.clock()
        with self._lock:
            hit = self._cache.get(address)
        if hit is not None and hit[0] > now:
            return hit[1]
        return None

    async def resolve(self, address: str) -> list[str]:
        """The names of `address`: cached, or looked up on a resolver thread and waited for at
        most `wait` seconds without holding the event loop."""
        now = self.clock()
        with self._lock:
            hit = self._cache.get(address)
            if hit is not None and hit[0] > now:
                return hit[1]
            future = self._pending.get(address)
            if future is None:
                if len(self._pending) >= self.max_pending:
                    return []  # saturated: no name now; don't queue behind a flood
                future = self._start(address)
            if now < self._slow_until:
                return []
        try:
            # shield: a request that stops waiting must not cancel the lookup others share.
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), self.wait)
        except asyncio.TimeoutError:
            with self._lock:
                self._slow_until = self.clock() + self.backoff
            return []
        except asyncio.CancelledError:
            raise
        except Exception:
            return []

    def _start(self, address: str) -> concurrent.futures.Future:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(self.threads, thread_name_prefix="rdns")
        future = self._pool.submit(self._run, address)
        self._pending[address] = future
        return future

    def _run(self, address: str) -> list[str]:
        try:
            found = list(self.lookup(address))
        except Exception:
            found = []
        with self._lock:
            self._pending.pop(address, None)
            cache = self._cache
            cache[address] = (self.clock() + (self.ttl if found else self.negative_ttl), found)
            cache.move_to_end(address)
            while len(cache) > self.limit:
                cache.popitem(last=False)
        return found

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
