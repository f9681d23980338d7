"""What every connection and worker link of the front shares: the tables built from the config,
the pools, the logs, the clocks, and the once-a-second sweep.

No sockets here: `main.py` owns the listeners and the control channel, and tests drive a Server
with fake transports.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Callable

from wasp.common.scoreboard import CONNS, SITE, Scoreboard, over_share
from wasp.config.model import Config
from wasp.front import rewriting
from wasp.front.accesslog import AccessLog, ErrorLog
from wasp.front.logwriter import ThreadWriter
from wasp.front.cache import Entry, ResponseCache
from wasp.front.metrics import SiteCounters
from wasp.front.logformat import _received as logformat_received, _sent as logformat_sent
from wasp.front.qos import CHUNK_SECONDS, Bucket
from wasp.front.queues import Dispatcher, private_board
from wasp.front.request import STAGE_NAMES, Request, Stage
from wasp.front.routing import Router
from wasp.front.tls import TlsState
from wasp.wire import w3c
from wasp.wire.forwarded import TrustedProxies
from wasp.errors import Forbidden, HttpError
from wasp.wire.http import AppPoolUnavailable, http_date
from wasp.wire.urls import cook_target


#: HTTPERR reasons of a request a pool did not take (HTTP.sys's queue rejections).
_POOL_REJECTIONS = frozenset({"QueueFull", "AppOffline", "Disabled", "Timer_AppPool", "AppShutdown",
                              "Connection_Abandoned_By_AppPool"})
#: Seconds between looks at the certificate files (stat only) for a changed certificate.
CERTIFICATE_POLL = 3
#: metrics.url answers a scrape only for these methods.
_SCRAPE_METHODS = (b"GET", b"HEAD")
#: metrics.url scrapes waiting for the manager at once, at most; more are answered 503.
MAX_SCRAPES = 16
#: With several fronts: how soon a front whose queued requests found every place on the pool's
#: workers taken (by other fronts' requests) looks again.
STARVED_RETRY = 0.001


class Server:
    def __init__(self, loop, config: Config, send: Callable[[dict], None] | None = None,
                 notice: Callable[[str], None] | None = None, board: Scoreboard | None = None,
                 slots: dict | None = None):
        self.loop = loop
        #: The scoreboard shared with the other fronts (a private one for a lone front).
        self.board = board if board is not None else private_board()
        #: Front index (server.front_processes): request ids are unique across fronts.
        self.front_index = self.board.index
        self.send = send or (lambda message: None)
        #: Called with a one-line notice the process's main logs (a certificate not (re)loaded).
        self.notice = notice or (lambda message: None)
        self.tls = TlsState(lambda message: self.notice(message))
        #: HTTP-01 challenges pending (wasp/front/challenges.py), as the manager last sent them.
        self.acme_http01: dict = {}
        self._ticks = 0
        self.dispatcher = Dispatcher(self._demand, self.board, self._starved)
        self._starved_timer = None
        self.connections: set = set()
        #: Of those, connections refused for the connection cap (ConnLimit) that are still
        #: closing: they hold a socket but no place, so they do not count against any limit.
        self.refused = 0
        self.links: dict[int, object] = {}
        self.ids = itertools.count(self.board.index + 1, self.board.fronts)
        self.site_cells: dict[int, int] = {}
        self.stopping = False
        #: Stopping after server.shutdown_delay: health URLs answer 503 meanwhile.
        self.leaving = False
        #: Called with an exception a connection or worker link hit (a bug): the process's main
        #: reports it. The connection involved is closed; the front carries on.
        self.on_fault: Callable[[BaseException], None] = lambda exc: None
        self.config = config
        # One thread per front writes the log files: the loop only buffers (logwriter.py).
        self.log_writer = ThreadWriter()
        self.access_log = AccessLog(config.server.log_dir, self.log_writer)
        #: Requests the front answered or dropped for a pool instead of a worker (503 QueueFull,
        #: AppOffline, Timer_AppPool, ...), and bytes to and from clients: for `ping`'s answer.
        self.rejected: dict[str, int] = {}
        self.bytes_sent = 0
        self.bytes_received = 0
        self.error_log = ErrorLog(config.server.log_dir, self.log_writer)
        self._second = -1
        self.cache = ResponseCache(config.cache, on_release=self._release_token)
        #: The file watcher (watch.FileWatcher) main.py gives us; None: static files are not cached.
        self.watcher = None
        #: Open connections counted per site id (site limits.max_connections); kept over reloads.
        self.site_connections: dict[int, int] = {}
        self.global_bucket: Bucket | None = None
        self.site_buckets: dict[int, Bucket] = {}
        self._bucket_sets: dict[int, tuple | None] = {}
        #: Limited HTTP/1.1 connections whose client sent FIN mid-response: polled for hang-up
        #: each sweep (qos.py `check_hangup`).
        self.hangup_watch: set = set()
        #: Per-request counters of each site by id (wasp/front/metrics.py); kept over reloads.
        self.site_counters: dict[int, SiteCounters] = {}
        #: metrics.url scrapes waiting for the manager's text: id -> (connection, request).
        self.scrapes: dict[int, tuple] = {}
        self._scrape_ids = itertools.count(1)
        #: OpenTelemetry server spans (front/tracing.py), None while [tracing] is off.
        self.tracing = None
        self.apply_config(config, slots)
        self.refresh_clock()

    # ---- configuration ----
    def apply_config(self, config: Config, slots: dict | None = None) -> None:
        """A (new) config; `slots` the manager's scoreboard rows {"pools": {name: slot},
        "sites": {"id": slot}} (by default the config's order)."""
        slots = slots or {}
        pool_slots = slots.get("pools") or {p.name: i for i, p in enumerate(config.pools)}
        site_slots = slots.get("sites") or {str(s.id): i for i, s in enumerate(config.sites)}
        self.config = config
        self.router = Router(config)
        self.global_rules = rewriting.compile_config(config)  # URL Rewrite, before routing
        self.tls.apply(config)
        limits = config.limits
        # 0 means HTTP.sys's default (120 s), as IIS's headerWaitTimeout = 0 does.
        self.idle_timeout = float(limits.connection_timeout) or 120.0
        self.header_wait = float(limits.header_wait_timeout) or 120.0
        self.max_request_bytes = int(limits.max_request_bytes)
        self.max_field_length = int(limits.max_field_length)
        self.max_url = int(limits.max_url)
        self.max_content = int(limits.max_allowed_content_length)
        self.max_connections = int(limits.max_connections)
        self.min_rate = int(limits.min_bytes_per_second)
        self.trusted = TrustedProxies(config.server.trusted_proxies)
        metrics = config.metrics
        self.counting = metrics.enabled
        self.metrics_path = metrics.url.encode("utf-8") if metrics.url else None
        self.metrics_allowed = TrustedProxies(metrics.allowed_ips)
        self._configure_tracing(config.tracing)
        self._set_buckets(config)
        self.h2_max_streams = int(limits.http2_max_concurrent_streams)
        header = config.server.server_header.encode("latin-1")
        self.server_header = header
        self.server_line = b"Server: " + header + b"\r\n" if header else b""
        self.access_log.move(config.server.log_dir)
        self.access_log.keep_only({dest.stream for site in self.router.sites.values()
                                   for _, _, dests in site.log_targets for dest in dests})
        self.error_log.move(config.server.log_dir)
        # What was cached under the old config (its caching sections, paths, apps) may be wrong now.
        self.cache.configure(config.cache)
        self.cache.flush()
        board = self.board
        cells = {site.id: SITE + int(site_slots[str(site.id)]) for site in config.sites}
        for site_id, cell in self.site_cells.items():
            if cells.get(site_id) != cell:
                board.set(cell, 0)
        self.site_cells = cells
        for site_id, cell in cells.items():
            board.set(cell, self.site_connections.get(site_id, 0))
        for req in self.dispatcher.configure(config, pool_slots):
            req.conn.reject(req, AppPoolUnavailable("Disabled"))
        pools = self.dispatcher.pools
        for app in self.router.apps.values():
            app.queue = pools.get(app.pool)
        counters = {}
        for site in self.router.sites.values():
            if self.counting:
                site.counters = counters[site.id] = self.site_counters.get(site.id) or SiteCounters()
        self.site_counters = counters
        # Open connections route their next requests by the new bindings too.
        for conn in self.connections:
            if conn.transport is not None:
                conn.table = self.router.table(conn.local[0], conn.local[1])
                conn._buckets = self.buckets_for(conn.site_id)
                if conn._buckets is not None:
                    conn._chunk = self.chunk_for(conn._buckets)
                elif getattr(conn, "_held", None):
                    conn._release()   # bytes that waited for the old limit's turn

    def over_connection_limit(self) -> bool:
        """A connection was added: over the server-wide limit (every front's connections)?
        With several fronts the count is published either way (accept balance, bandwidth)."""
        board = self.board
        if self.max_connections <= 0:
            if board.shared:
                board.set(CONNS, self.counted())
            return False
        return not board.reserve(CONNS, self.counted(), self.max_connections, exact=True)

    def counted(self) -> int:
        """Open connections that hold a place: every one but those refused and closing."""
        return len(self.connections) - self.refused

    def connection_closed(self) -> None:
        if self.max_connections > 0 or self.board.shared:
            self.board.set(CONNS, self.counted())

    def over_accept_share(self, starting: int) -> bool:
        """Several fronts: this front (with `starting` connections accepted, not yet made)
        holds well over its share of every front's connections (accept.py)."""
        board = self.board
        own = self.counted() + starting
        return over_share(own, board.others(CONNS) + own, board.fronts)

    def _starved(self) -> None:
        if self._starved_timer is None:
            self._starved_timer = self.loop.call_later(STARVED_RETRY, self._retry_starved)

    def _retry_starved(self) -> None:
        self._starved_timer = None
        self.dispatcher.pump_all()  # re-arms (_starved) while requests still wait

    # ---- bandwidth ----
    def _set_buckets(self, config: Config) -> None:
        """One bucket per limited site and one for the server; a bucket whose rate is unchanged
        is kept (with its debt) across a reload."""
        now = self.loop.time()
        rate = int(config.limits.max_global_bandwidth)
        old = self.global_bucket
        self.global_bucket = (old if old is not None and old.full == rate else Bucket(rate, now)) if rate else None
        buckets = {}
        for site in self.router.sites.values():
            if site.max_bandwidth:
                old = self.site_buckets.get(site.id)
                buckets[site.id] = old if old is not None and old.full == site.max_bandwidth \
                    else Bucket(site.max_bandwidth, now)
        self.site_buckets = buckets
        self._bucket_sets = {}

    def _share_bandwidth(self) -> None:
        """Several fronts: each spends the share of a site's (and the server's) bandwidth that
        its connections are of all the fronts' connections there (from the scoreboard)."""
        board = self.board
        for site_id, bucket in self.site_buckets.items():
            cell = self.site_cells.get(site_id)
            if cell is not None:
                bucket.share(self.site_connections.get(site_id, 0), board.total(cell))
        if self.global_bucket is not None:
            self.global_bucket.share(self.counted(), board.total(CONNS))

    def buckets_for(self, site_id: int) -> tuple | None:
        """The buckets a connection of `site_id` (0: not known yet) spends from; None: no limit."""
        try:
            return self._bucket_sets[site_id]
        except KeyError:
            pass
        found = tuple(b for b in (self.site_buckets.get(site_id), self.global_bucket) if b is not None)
        result = self._bucket_sets[site_id] = found or None
        return result

    @staticmethod
    def chunk_for(buckets: tuple) -> int:
        """Largest file chunk for a limited connection: CHUNK_SECONDS of its lowest rate."""
        return max(1024, int(min(b.rate for b in buckets) * CHUNK_SECONDS))

    # ---- clock ----
    def refresh_clock(self, wall: float | None = None) -> None:
        """Once a second: the cached Date header and log timestamps. `now` is the sweep's time;
        deadlines are set from `loop.time()`, never from it (it may be a second old)."""
        self.now = self.loop.time()
        wall = time.time() if wall is None else wall
        second = int(wall)
        if second == self._second:
            return
        self._second = second
        self.wall = float(second)
        self.date = http_date(second)
        self.date_line = b"Date: " + self.date + b"\r\n"
        self.log_when = w3c.log_datetime(second)
        self.day_key = w3c.period_key(second, "daily")
        self.hour_key = w3c.period_key(second, "hourly")

    # ---- the sweep ----
    def tick(self) -> None:
        """Timers of every connection and queued request (one sweep instead of a timer each),
        and the log flush."""
        self.refresh_clock()
        self._ticks += 1
        if self.tls.plans and self._ticks % CERTIFICATE_POLL == 0:
            self.tls.poll()
        now = self.now
        for conn in list(self.hangup_watch):
            conn.check_hangup()
        expired = [c for c in self.connections if c.deadline and c.deadline <= now]
        for conn in expired:
            try:
                conn.on_timer(now)
            except Exception as exc:
                self.fault(exc, conn)
        for req in self.dispatcher.expire(now, self.idle_timeout):
            try:
                req.conn.reject(req, AppPoolUnavailable("Timer_AppPool"))
            except Exception as exc:
                self.fault(exc, req.conn)
        self.cache.sweep(now)
        if self.board.shared:
            self._share_bandwidth()
        self.access_log.flush()   # handed to the writer thread, not waited for
        self.error_log.flush()

    def fault(self, exc: BaseException, conn=None) -> None:
        """A bug surfaced while handling one connection: close it, report, carry on."""
        if conn is not None and conn.transport is not None:
            try:
                conn.abort()
            except Exception:
                pass
        self.on_fault(exc)

    def flush_logs(self) -> None:
        """Everything logged so far, in the files when this returns."""
        self.access_log.flush()
        self.error_log.flush()
        self.log_writer.drain()

    def close_logs(self) -> None:
        self.access_log.close()
        self.error_log.close()
        self.log_writer.stop()

    # ---- the response cache ----
    def cache_lookup(self, key, headers, now: float):
        """The entry to answer from, or None. A file entry is answered only once the changes
        queued before now were handled."""
        cache = self.cache
        entry = cache.lookup(key, headers, now)
        if entry is not None and entry.deps and self.watcher is not None:
            self.watcher.poll()
            if cache.entries.get(entry.key) is not entry:
                return None
        return entry

    def cache_response(self, req, block: bytes, body: bytes) -> None:
        """A worker's whole response that it said may be cached, for a frequently hit URL."""
        app = req.app
        if type(body) is not bytes:
            body = bytes(body)   # a view of the worker link's read: the entry keeps its own copy
        self.cache.store(req.cache_key, req.headers, req.cache_hint, block, body, self.loop.time(),
                         app.site.id, app.pool)

    def cache_file(self, req, block: bytes, span) -> bytes | None:
        """The bytes of a cacheable file response, stored in the cache; None when the file cannot
        be cached (no watcher, too big, changed since the worker looked at it)."""
        watcher = self.watcher
        cache = self.cache
        if watcher is None or span.offset != 0 or not cache.fits(span.length):
            return None
        tokens = watcher.watch_file(span.path)  # before reading: a later change is then seen
        if tokens is None:
            return None
        hint = req.cache_hint
        if hint.source:
            # A compressed copy of a static file: a change of the file itself must drop it.
            more = watcher.watch_file(hint.source)
            if more is None:
                cache.release_unused(tokens)
                return None
            tokens = tokens + more
            try:
                unchanged = os.stat(hint.source).st_mtime_ns == hint.source_mtime_ns
            except OSError:
                unchanged = False
            if not unchanged:
                cache.release_unused(tokens)
                return None
        data = None
        try:
            fd = os.open(span.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                st = os.fstat(fd)
                hint = req.cache_hint
                if st.st_size == span.length and (not hint.mtime_ns or st.st_mtime_ns == hint.mtime_ns):
                    data = os.pread(fd, span.length, 0)
            except OSError:
                data = None
            finally:
                os.close(fd)
        if data is not None and len(data) == span.length:
            app = req.app
            cache.store(req.cache_key, req.headers, req.cache_hint, block, data, self.loop.time(),
                        app.site.id, app.pool, tokens)
        cache.release_unused(tokens)
        return data if data is not None and len(data) == span.length else None

    def _release_token(self, token) -> None:
        if self.watcher is not None:
            self.watcher.release(token)

    def cache_rows(self) -> list[dict]:
        return self.cache.rows(self.loop.time(), {s.id: s.name for s in self.router.sites.values()})

    def cache_flush(self, site: str | None, url: str | None) -> int:
        """`cache_flush`: `site` a site's name or id (None: all sites), `url` a path of it."""
        site_id = None
        if site:
            found = [s.id for s in self.router.sites.values() if s.name == site or str(s.id) == site]
            if not found:
                raise LookupError(f'no started site is named "{site}"')
            site_id = found[0]
        path = None
        if url:
            path = cook_target(url.encode("utf-8"))[0]
        return self.cache.flush(site_id, path)

    def _configure_tracing(self, settings) -> None:
        old = self.tracing
        if old is not None and old.settings == settings:
            return
        self.tracing = None
        if settings.enabled:
            try:
                from wasp.front.tracing import FrontTracing

                self.tracing = FrontTracing(settings, self.loop)
            except ImportError as exc:  # validate refuses this; a reload may still race an uninstall
                self.notice(f"tracing is enabled but OpenTelemetry cannot be imported: {exc}")
        if old is not None:
            # Spans of requests in flight end on the old provider; flush it off the loop.
            import threading

            threading.Thread(target=old.shutdown, name="wasp-tracing-shutdown", daemon=True).start()

    def stop_tracing(self) -> None:
        """Export the spans still queued (graceful stop)."""
        tracing, self.tracing = self.tracing, None
        if tracing is not None:
            tracing.shutdown()

    # ---- logging ----
    def log_access(self, conn, req: Request) -> None:
        if req.trace is not None:
            req.trace[0].end(req)
        app = req.app
        if app is None:
            return
        self.bytes_sent += logformat_sent(conn, req)
        self.bytes_received += logformat_received(req)
        if req.freb is not None:
            self._traced(conn, req)
        site = app.site
        counters = site.counters
        if counters is not None:   # metrics.enabled: counted whether the site logs or not
            elapsed = self.loop.time() - req.t0
            queue = app.queue
            counters.count(conn, req, elapsed, queue.counters if queue is not None else None)
            if not site.log_enabled:
                return
        elif not site.log_enabled:
            return
        else:
            elapsed = self.loop.time() - req.t0
        taken = int(elapsed * 1000)
        if taken < 0:
            taken = 0
        wall = self.wall
        for fmt, fields, dests in site.log_targets:
            if fmt is None:   # IIS's default fields: the fast path
                line = w3c.access_line(self.log_when, conn.s_ip, req.method, req.path, req.query, conn.s_port,
                                       req.user, req.c_ip or conn.c_ip, req.user_agent, req.referer, req.status,
                                       req.substatus, req.win32, taken)
            else:
                line = fmt.line(conn, req, self.log_when, taken, wall)
            for dest in dests:
                self.access_log.emit(dest, line, wall, fields)

    def _traced(self, conn, req: Request) -> None:
        token, answered, link = req.freb
        req.freb = None
        now = self.loop.time()
        st = req.h2
        link.send_traced(token, answered - req.t0, now - answered, st.sent if st is not None else conn._sent)

    def log_error(self, conn, req: Request | None, status: int | None, reason: str) -> None:
        """One HTTPERR line for something the front answered (or a connection it dropped)."""
        version = method = uri = None
        site_id = queue = None
        c_ip, c_port = conn.c_ip, conn.peer[1]
        if req is not None:
            if req.client is not None:
                c_ip, c_port = req.c_ip, req.client[1]
            if req.version:
                # HTTP/2 as "HTTP/2.0", the major.minor form of the field's other values.
                version = b"HTTP/2.0" if req.version == "2" else b"HTTP/" + req.version.encode()
            method = req.method or None
            if req.path:
                uri = req.path + (b"?" + req.query if req.query else b"")
            else:
                uri = req.target or None
            if req.app is not None:
                site_id = req.app.site.id
                queue = req.app.pool
                if reason in _POOL_REJECTIONS:
                    self.rejected[queue] = self.rejected.get(queue, 0) + 1
        line = w3c.httperr_line(self.log_when, c_ip, c_port, conn.s_ip, conn.local[1],
                                version, method, uri, status, site_id, reason, queue)
        self.error_log.write(line, self.wall)

    # ---- manager ----
    def _demand(self, pool: str) -> None:
        self.send({"op": "demand", "pool": pool})

    # ---- metrics.url ----
    def scrape(self, conn, req) -> None:
        """A request for metrics.url: the manager renders every front's and its own numbers
        (`metrics_scrape`); the answer comes back as `metrics_text` (`metrics_answered`).
        Only from metrics.allowed_ips (403.6 otherwise), GET and HEAD only."""
        client = req.client[0] if req.client is not None else conn.peer[0]
        if client not in self.metrics_allowed:
            conn._send_error(req, ScrapeRefused("the client may not read metrics"))
            return
        if req.method not in _SCRAPE_METHODS:
            conn._send_error(req, ScrapeMethod("metrics.url answers GET and HEAD"))
            return
        if len(self.scrapes) >= MAX_SCRAPES:   # a flood of scrapes: the manager renders each
            conn._send_error(req, AppPoolUnavailable("QueueFull"))
            return
        scrape_id = next(self._scrape_ids)
        self.scrapes[scrape_id] = (conn, req)
        self.send({"op": "metrics_scrape", "id": scrape_id})

    def metrics_answered(self, scrape_id, text) -> None:
        waiting = self.scrapes.pop(scrape_id, None)
        if waiting is None:
            return
        conn, req = waiting
        if req.stage is Stage.DONE or conn.transport is None or conn.transport.is_closing():
            return
        if not isinstance(text, str):
            conn._send_error(req, AppPoolUnavailable("N/A"))
            return
        conn._send_cached(req, Entry(None, None, 0, "", SCRAPE_HEAD, text.encode("utf-8"), 0,
                                     0.0, 0.0, ()))

    def stats(self) -> dict:
        inflight: dict[str, int] = {}
        for link in self.links.values():  # draining workers too: their requests are in flight
            inflight[link.pool_name] = inflight.get(link.pool_name, 0) + link.inflight
        pools = {}
        for name, pool in self.dispatcher.pools.items():
            pools[name] = {"queued": len(pool.queue), "inflight": inflight.get(name, 0), "served": pool.served,
                           "rejected": self.rejected.get(name, 0)}
        return {"pools": pools, "connections": len(self.connections),
                "bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received}

    def requests(self) -> list[dict]:
        """Requests in flight, for `list_requests`."""
        now = self.loop.time()
        out = []
        for conn in self.connections:
            for req in conn.pending_requests():
                if req.stage is Stage.DONE or req.app is None:
                    continue
                out.append({
                    "id": req.id,
                    "pool": req.app.pool,
                    "worker_id": req.link.worker_id if req.link is not None and req.stage >= Stage.EXECUTING else None,
                    "stream": req.stream if req.link is not None and req.stage >= Stage.EXECUTING else None,
                    "url": (req.path + (b"?" + req.query if req.query else b"")).decode("utf-8", "replace"),
                    "method": req.method.decode("latin-1"),
                    "protocol": ("HTTP/" if conn.tls is None else "HTTPS/") + (req.version or "1.1"),
                    "client": list(req.client or conn.peer),
                    "elapsed_ms": int((now - req.t0) * 1000),
                    "stage": STAGE_NAMES[req.stage],
                    "site_id": req.app.site.id,
                })
        return out

    def stop(self, handover: bool = False) -> None:
        """Stop taking new work: responses close their connections (Connection: close), idle
        ones close after STOP_IDLE_GRACE. A keep-alive client busy on its connection gets its next
        answer with Connection: close and reconnects (to the listener of the generation that
        still accepts, `wasp upgrade`) instead of racing a close of an idle connection with its
        next request, which it sees as a reset.

        On a `handover` (wasp upgrade: the new generation already accepts) an idle HTTP/1.1
        connection is not closed early at all: it keeps its own idle timeout, as on any day, so
        its client's next request, whenever it comes, is answered (Connection: close) instead of
        racing a close. The front's stop deadline still bounds the wait."""
        self.stopping = True
        for conn in list(self.connections):
            if getattr(conn, "goaway_on_stop", False):
                conn.close_if_idle()
        if not handover:
            self.loop.call_at(self.loop.time() + STOP_IDLE_GRACE, self._close_idle)

    def _close_idle(self) -> None:
        for conn in list(self.connections):
            conn.close_if_idle()


#: Seconds a stopping front leaves idle keep-alive connections open for one more request.
STOP_IDLE_GRACE = 1.0


#: The head of a metrics.url answer (the exposition format's content type; never cached).
SCRAPE_HEAD = (b"200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
               b"Cache-Control: no-store\r\n")


class ScrapeRefused(Forbidden):
    """IIS 403.6 (IP address rejected): metrics.url from an address not in metrics.allowed_ips."""

    substatus = 6


class ScrapeMethod(HttpError):
    status = 405
    reason = "Verb"
