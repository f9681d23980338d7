"""What the front counts for /metrics (IIS's Web Service and HTTP Service Request Queues counters,
HTTP.sys's cache counters), and the snapshot it sends the manager when asked (`metrics` op).

Counting is on the per-request path, so it is plain int and float arithmetic on objects made once
per site or pool (never per request): a request ending adds to its site's `SiteCounters` (bytes,
method, status class, duration bucket) and to its pool's (`PoolQueue.counters`); nothing
is summed, formatted or locked until a scrape asks. A site's counters are kept by site id across
reloads (the router's SiteEntry is rebuilt, the counters are not). Several fronts each count
their own; the manager sums their snapshots (wasp/manager/metrics.py).
"""

from __future__ import annotations

from wasp.common.exposition import DURATION_BOUNDS, METHODS, STATUS_CLASSES

OTHER = len(METHODS)
METHOD_INDEX = {m.encode(): i for i, m in enumerate(METHODS)}

_BUCKETS = len(DURATION_BOUNDS) + 1
# SiteCounters.count finds buckets with these bounds written out.
assert DURATION_BOUNDS == (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_METHOD_GET = METHOD_INDEX.get


class SiteCounters:
    """One site's counters in this front (Web Service: per site)."""

    __slots__ = ("methods", "statuses", "bytes_sent", "bytes_received", "not_found", "locked",
                 "buckets", "seconds")

    def __init__(self) -> None:
        self.methods = [0] * (OTHER + 1)
        self.statuses = [0] * len(STATUS_CLASSES)
        self.bytes_sent = 0
        self.bytes_received = 0
        self.not_found = 0
        self.locked = 0
        self.buckets = [0] * _BUCKETS
        self.seconds = 0.0

    def count(self, conn, req, seconds: float, pool: "PoolCounters | None") -> None:
        """An ended request: its method, status, bytes (as the W3C sc-bytes and cs-bytes count
        them, wasp/front/logformat.py) and duration, also into its pool's histogram. One call
        with everything inline: this runs for every request."""
        self.methods[_METHOD_GET(req.method, OTHER)] += 1
        status = req.status
        self.statuses[status // 100 if 100 <= status < 600 else 0] += 1
        if status == 404:
            self.not_found += 1
        elif status == 423:
            self.locked += 1
        st = req.h2
        if st is not None:
            self.bytes_sent += st.sent
            self.bytes_received += req.head_bytes + req.received
        else:
            self.bytes_sent += conn._sent
            method = req.method
            # "METHOD SP target SP HTTP/1.1 CRLF", the header lines (head_bytes), the empty line
            self.bytes_received += (len(method) + len(req.target) + 14 + req.head_bytes if method
                                    else 0) + req.received
        # The bucket (DURATION_BOUNDS) by float compares, which the interpreter specializes:
        # a fifth of what bisect costs (tests/unit/test_front_metrics.py checks them equal).
        if seconds <= 0.1:
            if seconds <= 0.01:
                i = 0 if seconds <= 0.005 else 1
            elif seconds <= 0.025:
                i = 2
            else:
                i = 3 if seconds <= 0.05 else 4
        elif seconds <= 1.0:
            i = 5 if seconds <= 0.25 else (6 if seconds <= 0.5 else 7)
        elif seconds <= 5.0:
            i = 8 if seconds <= 2.5 else 9
        else:
            i = 10 if seconds <= 10.0 else 11
        self.buckets[i] += 1
        self.seconds += seconds
        if pool is not None:
            pool.buckets[i] += 1
            pool.seconds += seconds

    def snapshot(self) -> dict:
        return {"methods": self.methods, "statuses": self.statuses, "sent": self.bytes_sent,
                "received": self.bytes_received, "not_found": self.not_found,
                "locked": self.locked, "buckets": self.buckets, "seconds": self.seconds}


class PoolCounters:
    """One pool's queue counters in this front (HTTP Service Request Queues), kept by its
    PoolQueue (wasp/front/queues.py), which lives as long as the pool is configured."""

    __slots__ = ("arrivals", "rejected", "buckets", "seconds")

    def __init__(self) -> None:
        self.arrivals = 0
        self.rejected: dict[str, int] = {}   # HTTPERR reason -> requests (a handful of names)
        self.buckets = [0] * _BUCKETS
        self.seconds = 0.0

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1


def snapshot(server) -> dict:
    """Everything this front counted, for the manager to sum (the `metrics` control answer)."""
    now = server.loop.time()
    sites = {}
    for site_id, counters in server.site_counters.items():
        row = counters.snapshot()
        row["connections"] = server.site_connections.get(site_id, 0)
        sites[str(site_id)] = row
    pools = {}
    for name, pool in server.dispatcher.pools.items():
        c = pool.counters
        queue = pool.queue
        pools[name] = {
            "queued": len(queue),
            "oldest": round(now - queue[0].queued_at, 6) if queue else 0.0,
            "arrivals": c.arrivals, "rejected": dict(c.rejected),
            "served": pool.served, "buckets": c.buckets, "seconds": c.seconds,
        }
    workers = {}
    for link in server.links.values():
        workers[str(link.worker_id)] = {"pool": link.pool_name, "inflight": link.inflight,
                                        "served": link.served}
    cache = server.cache
    return {
        "front": server.front_index,
        "counting": server.counting,
        "connections": len(server.connections),
        "sites": sites, "pools": pools, "workers": workers,
        "cache": {"hits": cache.hits, "misses": cache.misses, "entries": len(cache.entries),
                  "bytes": cache.size, "flushes": cache.flushes, "stores": cache.stored},
    }
