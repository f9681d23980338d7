"""The front's response cache (HTTP.sys's kernel response cache). No I/O: the front feeds it.

Workers decide what may be cached (HttpCacheModule, wasp/worker/modules/http_cache.py) and say so
with a CACHE frame before the response; this store keeps such responses and the front serves
later requests from it without a worker.

- Key: the application (`<site id><path>`, so one site's entries never answer another's), the
  scheme and the Host header as the client sent it (lower-cased), and the cooked path (percent-decoded, dot
  segments resolved, as routing sees it; case kept, since Linux file names are case-sensitive),
  then the values of the request headers the response varies by. Nothing else of the request
  reaches the key, so only vary-by headers vary.
- Admission (HTTP.sys's frequent-hit rule): a response is stored only when its URL was asked for
  `frequent_hit_threshold` times within `frequent_hit_time_period`. The table of those counts is
  bounded (`MAX_CANDIDATES`); the oldest counts go first.
- Expiry: CacheForTimePeriod entries at their time; file entries when the front's watcher reports
  a change (`invalidate`); every entry unused for `scavenger_period` (the sweep); the least recently
  used when the total goes over `max_cache_size`.
- Conditional requests are answered 304 from an entry by its ETag / Last-Modified.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from email.utils import parsedate_to_datetime
from typing import Callable, Hashable, Iterable

from wasp.wire.frames import (
    CACHE_FOR_TIME_PERIOD, CACHE_UNTIL_CHANGE, NOT_FOR_HTTP_10, NOT_FOR_PROXIES, CacheHint,
)

#: Frequent-hit counters kept at most (URLs asked for once each must not grow memory unbounded).
MAX_CANDIDATES = 65536
#: Bytes an entry costs beyond its head and body (the key, the entry, the dict slots).
ENTRY_OVERHEAD = 512
#: `max_cache_size = 0`: an eighth of physical memory, at most this.
AUTOMATIC_CAP = 1 << 30

#: Response headers a 304 repeats (RFC 9110 15.4.5).
_304_HEADERS = (b"etag", b"last-modified", b"cache-control", b"expires", b"vary", b"content-location")
POLICY_NAMES = {CACHE_UNTIL_CHANGE: "CacheUntilChange", CACHE_FOR_TIME_PERIOD: "CacheForTimePeriod"}

Base = tuple  # (app key, host, path)
Token = Hashable  # what a file entry depends on; the watcher says when one changed


def automatic_size() -> int:
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return AUTOMATIC_CAP
    return max(1 << 20, min(AUTOMATIC_CAP, memory // 8))


class Entry:
    __slots__ = ("key", "base", "site_id", "pool", "block", "body", "block_304", "etag", "modified",
                 "policy", "expires", "hits", "last_used", "size", "deps", "wire", "wire_date",
                 "not_for")

    def __init__(self, key, base: Base, site_id: int, pool: str, block: bytes, body: bytes,
                 policy: int, expires: float, now: float, deps: tuple):
        self.key = key
        self.base = base
        self.site_id = site_id
        self.pool = pool
        self.body = body
        self.policy = policy
        self.expires = expires   # 0.0: until it changes
        self.hits = 0
        self.last_used = now
        self.deps = deps
        self.wire = b""          # the front's whole keep-alive answer, for the Date line it has
        self.wire_date = None
        self.not_for = 0         # CacheHint.not_for: requests this (compressed) entry must not answer
        lines = []
        kept_304 = []
        self.etag = None
        modified = None
        for line in block.split(b"\r\n")[1:]:
            if not line:
                continue
            name = line.partition(b":")[0].strip().lower()
            if name == b"date":
                continue  # the front writes the current Date on every answer
            lines.append(line)
            value = line.partition(b":")[2].strip()
            if name == b"etag":
                self.etag = value
            elif name == b"last-modified":
                modified = _seconds(value)
            if name in _304_HEADERS:
                kept_304.append(line)
        status = block.split(b"\r\n", 1)[0]
        self.block = b"\r\n".join([status, *lines]) + b"\r\n"
        self.block_304 = b"\r\n".join([b"304 Not Modified", *kept_304]) + b"\r\n"
        self.modified = modified
        # The front's prebuilt answer (head and body again) counts too.
        self.size = 2 * (len(self.block) + len(body)) + len(self.block_304) + ENTRY_OVERHEAD

    def not_modified(self, if_none_match: bytes | None, if_modified_since: bytes | None) -> bool:
        """Whether the request's validators match (If-None-Match first, as RFC 9110 13.2.2)."""
        if if_none_match is not None:
            return self.etag is not None and etag_matches(if_none_match, self.etag)
        if if_modified_since is not None and self.modified is not None:
            since = _seconds(if_modified_since)
            return since is not None and self.modified <= since
        return False


def refuses(entry: Entry, version: str, headers) -> bool:
    """Whether a compressed entry must not answer this request: HTTP/1.0, or through a proxy
    (a Via header), when the worker's compression said so (CacheHint.not_for)."""
    not_for = entry.not_for
    if not_for & NOT_FOR_HTTP_10 and version == "1.0":
        return True
    if not_for & NOT_FOR_PROXIES:
        for name, _value in headers:
            if len(name) == 3 and name.lower() == b"via":
                return True
    return False


def etag_matches(value: bytes, etag: bytes) -> bool:
    """If-None-Match's weak comparison."""
    text = value.strip()
    if text == b"*":
        return True
    mine = etag[2:] if etag.startswith(b"W/") else etag
    for item in text.split(b","):
        item = item.strip()
        if item.startswith(b"W/"):
            item = item[2:]
        if item == mine:
            return True
    return False


def _seconds(value: bytes) -> int | None:
    try:
        return int(parsedate_to_datetime(value.decode("latin-1")).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def header_values(headers: list[tuple[bytes, bytes]], names: tuple[bytes, ...]) -> tuple:
    """The request's values of `names` (each joined with ", " when repeated; None when absent)."""
    found: list = [None] * len(names)
    for name, value in headers:
        lower = name.lower()
        for i, wanted in enumerate(names):
            if lower == wanted:
                found[i] = value if found[i] is None else found[i] + b", " + value
    return tuple(found)


class ResponseCache:
    def __init__(self, settings, on_release: Callable[[Token], None] | None = None):
        self.entries: OrderedDict = OrderedDict()   # least recently used first
        self.varies: dict[Base, list] = {}           # base -> [vary header names, entries]
        self.candidates: OrderedDict = OrderedDict() # base -> [window start, requests]
        self.dependents: dict[Token, set] = {}       # token -> keys of the entries that need it
        self.size = 0
        self.hits = 0
        self.stored = 0
        self.on_release = on_release or (lambda token: None)
        self.configure(settings)

    def configure(self, settings) -> None:
        self.max_size = int(settings.max_cache_size) or automatic_size()
        self.max_response = int(settings.max_response_size)
        self.threshold = int(settings.frequent_hit_threshold)
        self.period = float(settings.frequent_hit_time_period)
        self.scavenger = float(settings.scavenger_period)
        while self.size > self.max_size and self.entries:
            self._drop(next(iter(self.entries.values())))

    # ---- the request path ----
    def lookup(self, base: Base, headers: list, now: float) -> Entry | None:
        vary = self.varies.get(base)
        if vary is None:
            return None
        names = vary[0]
        entry = self.entries.get((base, header_values(headers, names)) if names else base)
        if entry is None:
            return None
        if entry.expires and entry.expires <= now:
            self._drop(entry)
            return None
        entry.hits += 1
        entry.last_used = now
        self.entries.move_to_end(entry.key)
        self.hits += 1
        return entry

    def admit(self, base: Base, now: float) -> bool:
        """Count a request that missed. True when it makes its URL frequently hit: its response
        may then be stored."""
        candidates = self.candidates
        count = candidates.get(base)
        if count is None or count[0] + self.period <= now:
            if count is not None:
                del candidates[base]
            elif len(candidates) >= MAX_CANDIDATES:
                candidates.popitem(last=False)
            count = candidates[base] = [now, 0]
        count[1] += 1
        return count[1] >= self.threshold

    def fits(self, length: int) -> bool:
        return 0 < length <= self.max_response

    def store(self, base: Base, headers: list, hint: CacheHint, block: bytes, body: bytes, now: float,
              site_id: int, pool: str, deps: Iterable[Token] = ()) -> Entry | None:
        """Keep a response. None when it cannot be kept (size, policy)."""
        if not self.fits(len(body)) or hint.policy not in POLICY_NAMES:
            return None
        names = tuple(name.encode("latin-1").lower() for name in hint.vary)
        vary = self.varies.get(base)
        if vary is not None and vary[0] != names:
            # The URL now varies by other headers: its old copies are keyed wrongly.
            for entry in [e for e in self.entries.values() if e.base == base]:
                self._drop(entry)
        key = (base, header_values(headers, names)) if names else base
        old = self.entries.get(key)
        if old is not None:
            self._drop(old)
        expires = now + hint.duration if hint.duration > 0 else 0.0
        deps = tuple(deps)
        entry = Entry(key, base, site_id, pool, block, body, hint.policy, expires, now, deps)
        entry.not_for = hint.not_for
        if entry.size > self.max_size:
            return None
        while self.size + entry.size > self.max_size and self.entries:
            self._drop(next(iter(self.entries.values())))
        self.entries[key] = entry
        self.size += entry.size
        vary = self.varies.get(base)
        if vary is None:
            self.varies[base] = [names, 1]
        else:
            vary[1] += 1
        for token in deps:
            self.dependents.setdefault(token, set()).add(key)
        self.stored += 1
        return entry

    def release_unused(self, tokens: Iterable[Token]) -> None:
        """Tokens the caller took for an entry it did not store after all."""
        for token in tokens:
            if token not in self.dependents:
                self.on_release(token)

    # ---- what makes entries go ----
    def invalidate(self, token: Token) -> int:
        """What `token` stands for changed: drop the entries that depend on it."""
        keys = self.dependents.get(token)
        if not keys:
            return 0
        dropped = 0
        for key in list(keys):
            entry = self.entries.get(key)
            if entry is not None:
                self._drop(entry)
                dropped += 1
        return dropped

    def invalidate_where(self, predicate: Callable[[Token], bool]) -> int:
        """Drop the entries depending on any token `predicate` accepts (a watch that went away)."""
        dropped = 0
        for token in [t for t in self.dependents if predicate(t)]:
            dropped += self.invalidate(token)
        return dropped

    def drop_files(self) -> int:
        """The watcher lost track (its queue overflowed): no file entry can be trusted."""
        return self._drop_all(lambda e: bool(e.deps))

    def drop_pool(self, pool: str) -> int:
        """A pool got a new worker: what the old one answered may not be what it answers now."""
        return self._drop_all(lambda e: e.pool == pool)

    def flush(self, site_id: int | None = None, path: bytes | None = None) -> int:
        """`wasp cache flush [SITE] [URL]`: everything, one site, or one path of a site."""
        return self._drop_all(lambda e: (site_id is None or e.site_id == site_id)
                              and (path is None or e.base[2] == path))

    def sweep(self, now: float) -> None:
        """Once a second: drop entries unused for the scavenger period (the least recently used
        come first, so this stops at the first one still in use) and stale frequent-hit counts."""
        entries = self.entries
        limit = now - self.scavenger
        while entries:
            entry = next(iter(entries.values()))
            if entry.last_used > limit:
                break
            self._drop(entry)
        candidates = self.candidates
        start = now - self.period
        while candidates:
            first = next(iter(candidates.values()))
            if first[0] > start:
                break
            candidates.popitem(last=False)

    def rows(self, now: float, site_names: dict[int, str]) -> list[dict]:
        """Entries for `wasp list cache`."""
        out = []
        for entry in self.entries.values():
            app_key, host, path = entry.base
            out.append({
                "url": ("" if host.startswith(b"https://") else "http://") + host.decode("latin-1")
                       + path.decode("utf-8", "replace"),
                "site_id": entry.site_id,
                "site": site_names.get(entry.site_id, ""),
                "app": app_key,
                "size": len(entry.body),
                "hits": entry.hits,
                "policy": POLICY_NAMES.get(entry.policy, str(entry.policy)),
                "expires_in": round(entry.expires - now, 1) if entry.expires else None,
                "vary": {name.decode("latin-1"): (value.decode("latin-1") if value is not None else None)
                         for name, value in zip(self.varies[entry.base][0], entry.key[1])}
                if entry.key is not entry.base and isinstance(entry.key[1], tuple) else {},
            })
        return out

    # ---- internals ----
    def _drop_all(self, predicate: Callable[[Entry], bool]) -> int:
        doomed = [e for e in self.entries.values() if predicate(e)]
        for entry in doomed:
            self._drop(entry)
        return len(doomed)

    def _drop(self, entry: Entry) -> None:
        if self.entries.pop(entry.key, None) is None:
            return
        self.size -= entry.size
        vary = self.varies.get(entry.base)
        if vary is not None:
            vary[1] -= 1
            if vary[1] <= 0:
                del self.varies[entry.base]
        for token in entry.deps:
            keys = self.dependents.get(token)
            if keys is not None:
                keys.discard(entry.key)
                if not keys:
                    del self.dependents[token]
                    self.on_release(token)
