"""The worker's output cache (IIS's user-mode output cache): an application's responses held in
the worker and served at RESOLVE_REQUEST_CACHE without calling the app. No I/O; HttpCacheModule
(wasp/worker/modules/http_cache.py) feeds it and docs/output-cache.md says what is cached.

- Key: the scheme and Host, the cooked path, the query parameters the profile's
  `vary_by_query_string` names (["*"]: all of them, in order of name), then the values of the
  request headers it varies by: the profile's `vary_by_headers` and the names the stored
  response's own Vary listed (kept per path and query, `varies`).
- Bounded: at most `size_limit` bytes of heads and bodies (ENTRY_OVERHEAD more each); the least
  recently used entry goes first; a body over `max_response_size` is never stored.
- Expiry: CacheForTimePeriod entries at their time, looked at when asked for; CacheUntilChange
  entries live as long as the worker (or until evicted), as the front's app entries do.
Thread-safe: WSGI threads store, the event loop looks up.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from urllib.parse import parse_qsl

#: Bytes an entry costs beyond its head and body.
ENTRY_OVERHEAD = 512
#: Request header values (and query strings) longer than this make a request uncacheable: a key
#: must not grow with what a client sends.
KEY_PART_LIMIT = 4096
#: Vary-by names kept per path at most.
MAX_VARY_NAMES = 16


def query_key(query: bytes, names: tuple[str, ...]):
    """The part of the key a query string gives, or None when the request must not be cached
    (a query string and no vary_by_query_string, or one too long to key)."""
    if not query:
        return ()
    if not names or len(query) > KEY_PART_LIMIT:
        return None
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    if names == ("*",):
        return tuple(sorted(pairs))
    wanted = set(names)
    return tuple(sorted((k, v) for k, v in pairs if k.lower() in wanted))


def header_values(headers, names) -> tuple | None:
    """The request's values of `names` (lower case), in order; None when one is too long."""
    found: dict[str, list] = {}
    total = 0
    for name, value in headers:
        lower = name.lower().decode("latin-1")
        if lower in names:
            total += len(value)
            found.setdefault(lower, []).append(value)
    if total > KEY_PART_LIMIT:
        return None
    return tuple(b",".join(found.get(n, ())) for n in names)


class Entry:
    __slots__ = ("block", "body", "expires", "size")

    def __init__(self, block: bytes, body: bytes, expires: float):
        self.block = block
        self.body = body
        self.expires = expires  # monotonic time, 0 = until the worker goes
        self.size = len(block) + len(body) + ENTRY_OVERHEAD


class OutputCache:
    def __init__(self, size_limit: int, max_response_size: int, clock=time.monotonic):
        self.size_limit = size_limit
        self.max_response_size = max_response_size
        self.clock = clock
        self.entries: OrderedDict = OrderedDict()
        self.varies: OrderedDict = OrderedDict()  # base key -> vary names of its stored response
        self.size = 0
        self.hits = 0
        self.misses = 0
        self.lock = threading.Lock()

    def _names(self, base, vary: tuple[str, ...]) -> tuple[str, ...]:
        extra = self.varies.get(base)
        return tuple(sorted(set(vary) | set(extra))) if extra else vary

    def get(self, base, headers, vary: tuple[str, ...]):
        """(block, body) for the request, or None."""
        with self.lock:
            names = self._names(base, vary)
            values = header_values(headers, names) if names else ()
            if values is None:
                return None
            key = (base, names, values)
            entry = self.entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            if entry.expires and entry.expires <= self.clock():
                self._drop(key)
                self.misses += 1
                return None
            self.entries.move_to_end(key)
            self.hits += 1
            return entry.block, entry.body

    def put(self, base, headers, vary: tuple[str, ...], response_vary: tuple[str, ...],
            block: bytes, body: bytes, duration: float) -> bool:
        """Keep a response for `duration` seconds (0 = until the worker goes)."""
        if len(body) > self.max_response_size or self.size_limit <= 0:
            return False
        names = tuple(sorted(set(vary) | set(response_vary)))
        if len(names) > MAX_VARY_NAMES:
            return False
        values = header_values(headers, names) if names else ()
        if values is None:
            return False
        entry = Entry(block, body, self.clock() + duration if duration > 0 else 0.0)
        if entry.size > self.size_limit:
            return False
        with self.lock:
            if response_vary:
                self.varies[base] = tuple(sorted(response_vary))
                self.varies.move_to_end(base)
                while len(self.varies) > max(64, len(self.entries)):
                    self.varies.popitem(last=False)
            key = (base, names, values)
            if key in self.entries:
                self._drop(key)
            self.entries[key] = entry
            self.size += entry.size
            while self.size > self.size_limit and self.entries:
                self._drop(next(iter(self.entries)))
        return True

    def _drop(self, key) -> None:
        entry = self.entries.pop(key)
        self.size -= entry.size

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.varies.clear()
            self.size = 0

    def __len__(self) -> int:
        return len(self.entries)
