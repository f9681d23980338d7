"""/metrics: IIS's performance counters under Prometheus names, put together by the manager.

Sans I/O. Three sources:
- `PoolCounters`, counted here from the supervisor's actions as the executor runs them
  (APP_POOL_WAS: workers created, failures, ping/startup/shutdown failures, recycles by reason).
  They live in the manager, so a pool's totals survive its workers' recycles and crashes.
- the fronts' snapshots (wasp/front/metrics.py: Web Service per site, request queues per pool,
  W3SVC_W3WP per worker as the front sees it, the response cache), summed over every front by
  `FrontTotals`; what a front counted before it exited is kept (its counters, not its gauges),
  so a front restart does not make a counter go back.
- the supervisor's records (pool state and uptime, workers) and each worker's thread count,
  which the admin API reads from /proc when scraped.

`families` turns them into exposition families (wasp/common/exposition.py).
"""

from __future__ import annotations

from wasp.common.exposition import DURATION_BOUNDS, METHODS, STATUS_CLASSES, Family
from wasp.manager import actions as A
from wasp.manager.pools import PoolState

#: Recycle events and the reason label they count under (IIS's logEventOnRecycle names).
RECYCLE_REASONS = {
    5074: "time", 5075: "requests", 5076: "schedule", 5077: "memory", 5117: "private_memory",
    5079: "on_demand", 5080: "config_change", 9022: "code_change", 9030: "request_timeout",
}
#: Worker failures (IIS "Total Worker Process Failures"): a crash, an app that failed to load.
FAILURES = {5009: "crash", 9009: "load"}
STARTUP_FAILURES = (9008, 9012)
PING_FAILURES = 5010
SHUTDOWN_FAILURES = 5013
RAPID_FAIL = 5002

#: Keys of a front snapshot that are gauges: summed over live fronts, never kept after exit.
GAUGES = frozenset({"connections", "queued", "oldest", "inflight", "entries", "bytes"})
_MAXED = frozenset({"oldest"})
_SKIP = frozenset({"op", "id", "front"})


class PoolCounters:
    __slots__ = ("created", "failures", "startup_failures", "ping_failures",
                 "shutdown_failures", "recycles", "disables")

    def __init__(self) -> None:
        self.created = 0
        self.failures: dict[str, int] = {}
        self.startup_failures = 0
        self.ping_failures = 0
        self.shutdown_failures = 0
        self.recycles: dict[str, int] = {}
        self.disables = 0


class ManagerCounters:
    """APP_POOL_WAS counters, by pool name, from the actions the supervisor asks for."""

    def __init__(self) -> None:
        self.pools: dict[str, PoolCounters] = {}

    def pool(self, name: str) -> PoolCounters:
        counters = self.pools.get(name)
        if counters is None:
            counters = self.pools[name] = PoolCounters()
        return counters

    def observe(self, action) -> None:
        kind = type(action)
        if kind is A.SpawnWorker:
            self.pool(action.pool).created += 1
        elif kind is A.Event and action.pool:
            eid = action.event_id
            c = self.pool(action.pool)
            if eid in RECYCLE_REASONS:
                reason = RECYCLE_REASONS[eid]
                c.recycles[reason] = c.recycles.get(reason, 0) + 1
            elif eid in FAILURES:
                reason = FAILURES[eid]
                c.failures[reason] = c.failures.get(reason, 0) + 1
            elif eid in STARTUP_FAILURES:
                c.startup_failures += 1
            elif eid == PING_FAILURES:
                c.ping_failures += 1
            elif eid == SHUTDOWN_FAILURES:
                c.shutdown_failures += 1
            elif eid == RAPID_FAIL:
                c.disables += 1


def merge(into: dict, snapshot: dict, counters_only: bool = False) -> dict:
    """Add a front's snapshot to `into`: numbers and number lists summed, "oldest" the largest;
    `counters_only` leaves the gauges out (a front that exited)."""
    for key, value in snapshot.items():
        if key in _SKIP:
            continue
        if key in GAUGES:
            if counters_only or not isinstance(value, (int, float)):
                continue
            if key in _MAXED:
                into[key] = max(into.get(key, 0), value)
            else:
                into[key] = into.get(key, 0) + value
        elif isinstance(value, bool):
            into[key] = into.get(key, False) or value
        elif isinstance(value, dict):
            merge(into.setdefault(key, {}), value, counters_only)
        elif isinstance(value, list):
            have = into.setdefault(key, [])
            if len(have) < len(value):
                have.extend([0] * (len(value) - len(have)))
            for i, n in enumerate(value):
                if isinstance(n, (int, float)):
                    have[i] += n
        elif isinstance(value, (int, float)):
            into[key] = into.get(key, 0) + value
        else:
            into.setdefault(key, value)
    return into


class FrontTotals:
    """The fronts' last snapshots, and the counters of fronts that exited."""

    def __init__(self) -> None:
        self.last: dict[int, dict] = {}
        self.retired: dict = {}

    def answered(self, index: int, snapshot: dict) -> None:
        self.last[index] = snapshot

    def exited(self, index: int) -> None:
        snapshot = self.last.pop(index, None)
        if snapshot:
            merge(self.retired, snapshot, counters_only=True)

    def total(self, running) -> dict:
        """Every front's numbers summed: the running ones' last snapshots, the retired ones'."""
        out = merge({}, self.retired)
        for index in running:
            snapshot = self.last.get(index)
            if snapshot:
                merge(out, snapshot)
        return out


def _histogram(family: Family, labels, row: dict) -> None:
    counts = list(row.get("buckets") or [])
    want = len(DURATION_BOUNDS) + 1
    counts = (counts + [0] * want)[:want]
    family.add_histogram(labels, DURATION_BOUNDS, counts, float(row.get("seconds", 0.0)))


def families(config, sup, counters: ManagerCounters, fronts: dict, threads: dict[int, int],
             now: float, info: dict) -> list[Family]:
    """Everything /metrics shows. `fronts`: FrontTotals.total(); `threads`: worker id -> OS
    threads; `info`: version, uptime_s, fronts configured and answering."""
    out: list[Family] = []

    def fam(name, kind, text):
        f = Family(name, kind, text)
        out.append(f)
        return f

    # ---- the server ----
    f = fam("wasp_info", "gauge", "The wasp server: its version (always 1).")
    f.add((("version", str(info.get("version", ""))),), 1)
    fam("wasp_uptime_seconds", "gauge", "Seconds since the manager started.").add((), info.get("uptime_s", 0.0))
    fam("wasp_fronts", "gauge", "Front processes configured.").add((), info.get("fronts", 0))
    fam("wasp_fronts_answering", "gauge", "Front processes that answered this scrape.").add(
        (), info.get("answering", 0))
    fam("wasp_current_connections", "gauge", "Open client connections, every site and front.").add(
        (), fronts.get("connections", 0))
    fam("wasp_request_counting", "gauge",
        "1 when the fronts count requests per site and pool (metrics.enabled).").add(
        (), 1 if fronts.get("counting", config.metrics.enabled) else 0)

    # ---- Web Service, per site ----
    site_rows = fronts.get("sites") or {}
    conns = fam("wasp_site_current_connections", "gauge", "Open client connections (Web Service Current Connections).")
    sent = fam("wasp_site_bytes_sent_total", "counter", "Bytes sent to clients (Web Service Total Bytes Sent).")
    recv = fam("wasp_site_bytes_received_total", "counter", "Bytes received from clients (Web Service Total Bytes Received).")
    reqs = fam("wasp_site_requests_total", "counter", "Requests by method (Web Service Total <Method> Requests, other methods as \"other\").")
    resp = fam("wasp_site_responses_total", "counter", "Responses by status class (\"none\": the connection closed before any).")
    nf = fam("wasp_site_not_found_errors_total", "counter", "404 responses (Web Service Total Not Found Errors).")
    lk = fam("wasp_site_locked_errors_total", "counter", "423 responses (Web Service Total Locked Errors).")
    dur_site = fam("wasp_site_request_duration_seconds", "histogram", "Request duration in the front, first byte to last (time-taken).")
    for site in config.sites:
        row = site_rows.get(str(site.id)) or {}
        labels = (("site", site.name),)
        conns.add(labels, row.get("connections", 0))
        if not row.get("methods"):
            continue   # not counting (metrics.enabled = false), or no front answered yet
        sent.add(labels, row.get("sent", 0))
        recv.add(labels, row.get("received", 0))
        methods = row.get("methods") or []
        for i, name in enumerate(METHODS + ("other",)):
            n = methods[i] if i < len(methods) else 0
            if n or name in ("GET", "HEAD", "POST"):
                reqs.add(labels + (("method", name),), n)
        statuses = row.get("statuses") or []
        for i, name in enumerate(STATUS_CLASSES):
            n = statuses[i] if i < len(statuses) else 0
            if n or name in ("2xx", "4xx", "5xx"):
                resp.add(labels + (("status", name),), n)
        nf.add(labels, row.get("not_found", 0))
        lk.add(labels, row.get("locked", 0))
        _histogram(dur_site, labels, row)

    # ---- HTTP Service Request Queues and APP_POOL_WAS, per pool ----
    pool_rows = fronts.get("pools") or {}
    qsize = fam("wasp_queue_current_size", "gauge", "Requests waiting in the pool's queue (CurrentQueueSize).")
    qage = fam("wasp_queue_max_item_age_seconds", "gauge", "Age of the oldest request in the queue (MaxQueueItemAge).")
    qarr = fam("wasp_queue_arrivals_total", "counter", "Requests that arrived for the pool's queue (ArrivalRate is its rate).")
    qrej = fam("wasp_queue_rejected_requests_total", "counter", "Requests the queue refused, by HTTPERR reason (RejectedRequests).")
    served = fam("wasp_pool_requests_total", "counter", "Requests the pool's workers answered (over every worker it had).")
    dur_pool = fam("wasp_pool_request_duration_seconds", "histogram", "Request duration in the front, by pool.")
    state = fam("wasp_pool_state", "gauge", "1 for the pool's current state (Current Application Pool State).")
    uptime = fam("wasp_pool_uptime_seconds", "gauge", "Seconds since the pool was started; 0 when not Started (Current Application Pool Uptime).")
    current = fam("wasp_pool_worker_processes", "gauge", "Live worker processes (Current Worker Processes).")
    maximum = fam("wasp_pool_max_worker_processes", "gauge", "max_processes (Maximum Worker Processes).")
    created = fam("wasp_pool_worker_processes_created_total", "counter", "Worker processes started (Total Worker Processes Created).")
    failed = fam("wasp_pool_worker_failures_total", "counter", "Workers that crashed or failed to load the app (Total Worker Process Failures).")
    startup = fam("wasp_pool_worker_startup_failures_total", "counter", "Workers that did not start in time or at all (Total Worker Process Startup Failures).")
    ping = fam("wasp_pool_worker_ping_failures_total", "counter", "Workers that did not answer a ping (Total Worker Process Ping Failures).")
    shutdown = fam("wasp_pool_worker_shutdown_failures_total", "counter", "Workers killed after shutdown_time_limit (Total Worker Process Shutdown Failures).")
    recycles = fam("wasp_pool_recycles_total", "counter", "Recycles by reason (Total Application Pool Recycles).")
    disables = fam("wasp_pool_rapid_fail_disables_total", "counter", "Times rapid-fail protection disabled the pool (event 5002).")
    live = {}
    for w in sup.workers.values():
        if w.live:
            live[w.pool] = live.get(w.pool, 0) + 1
    for pool in config.pools:
        name = pool.name
        labels = (("pool", name),)
        row = pool_rows.get(name) or {}
        qsize.add(labels, row.get("queued", 0))
        qage.add(labels, row.get("oldest", 0.0))
        qarr.add(labels, row.get("arrivals", 0))
        for reason, n in sorted((row.get("rejected") or {}).items()):
            qrej.add(labels + (("reason", str(reason)),), n)
        served.add(labels, row.get("served", 0))
        if row.get("buckets") and fronts.get("counting", True):
            _histogram(dur_pool, labels, row)
        rec = sup.pools.get(name)
        now_state = rec.state if rec is not None else PoolState.STOPPED
        for s in PoolState:
            state.add(labels + (("state", s.value),), 1 if s is now_state else 0)
        up = 0.0
        if rec is not None and rec.state is PoolState.STARTED and rec.started_at is not None:
            up = max(0.0, now - rec.started_at)
        uptime.add(labels, round(up, 3))
        current.add(labels, live.get(name, 0))
        maximum.add(labels, pool.max_processes)
        c = counters.pools.get(name) or PoolCounters()
        created.add(labels, c.created)
        failed.add(labels + (("reason", "crash"),), c.failures.get("crash", 0))
        failed.add(labels + (("reason", "load"),), c.failures.get("load", 0))
        startup.add(labels, c.startup_failures)
        ping.add(labels, c.ping_failures)
        shutdown.add(labels, c.shutdown_failures)
        for reason in sorted(set(RECYCLE_REASONS.values()) | set(c.recycles)):
            recycles.add(labels + (("reason", reason),), c.recycles.get(reason, 0))
        disables.add(labels, c.disables)

    # ---- W3SVC_W3WP, per worker ----
    worker_rows = fronts.get("workers") or {}
    active = fam("wasp_worker_active_requests", "gauge", "Requests in flight on the worker (W3SVC_W3WP Active Requests).")
    wreq = fam("wasp_worker_requests_total", "counter", "Requests the worker answered (W3SVC_W3WP Total HTTP Requests Served).")
    wthreads = fam("wasp_worker_threads", "gauge", "Threads of the worker process (W3SVC_W3WP Active Threads Count).")
    wup = fam("wasp_worker_uptime_seconds", "gauge", "Seconds since the worker process started.")
    for w in sorted(sup.workers.values(), key=lambda w: w.worker_id):
        if not w.live or not w.pid:
            continue
        labels = (("pool", w.pool), ("worker", str(w.worker_id)), ("pid", str(w.pid)))
        row = worker_rows.get(str(w.worker_id)) or {}
        active.add(labels, row.get("inflight", 0))
        wreq.add(labels, row.get("served", 0))
        if w.worker_id in threads:
            wthreads.add(labels, threads[w.worker_id])
        wup.add(labels, round(max(0.0, now - w.started), 3))

    # ---- the front's response cache ----
    cache = fronts.get("cache") or {}
    fam("wasp_cache_hits_total", "counter", "Requests answered from the response cache (Kernel: URI Cache Hits).").add((), cache.get("hits", 0))
    fam("wasp_cache_misses_total", "counter", "Cacheable requests the cache could not answer (URI Cache Misses).").add((), cache.get("misses", 0))
    fam("wasp_cache_entries", "gauge", "Responses in the cache (Current URIs Cached).").add((), cache.get("entries", 0))
    fam("wasp_cache_bytes", "gauge", "Bytes the cached responses take.").add((), cache.get("bytes", 0))
    fam("wasp_cache_flushes_total", "counter", "Entries removed from the cache: expired, changed, flushed (Total Flushed URIs).").add((), cache.get("flushes", 0))
    fam("wasp_cache_stores_total", "counter", "Responses stored in the cache (Total URIs Cached).").add((), cache.get("stores", 0))
    return out
