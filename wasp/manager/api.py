"""The admin API's handlers: what `admin.serve` dispatches each request to, and their views.

`AdminApi` is a mixin of `Manager` (main.py). A handler runs as a coroutine beside the main loop;
whatever changes state goes through the loop's queue (`_call`), so the supervisor is only ever
touched from the loop. A question for the front or the workers waits at most a few seconds for its
answer (`waiters`, resolved as the answers arrive); a command that waits for an outcome, like
appcmd's /wait, waits on a predicate checked after each input the loop handles (`_wait_for`).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Callable

import psutil

import wasp
from wasp.common.exposition import CONTENT_TYPE
from wasp.config.bindings import binding_text
from wasp.config.model import Config, encode
from wasp.manager import admin, listeners, sites
from wasp.manager.inflight import merge as merge_requests
from wasp.manager.supervisor import CommandError

if TYPE_CHECKING:
    from wasp.manager.certificates import Certificates
    from wasp.manager.events import EventLog
    from wasp.manager.listeners import ListenerSet
    from wasp.manager.processes import Child
    from wasp.manager.supervisor import Supervisor

FRONT_QUERY_TIMEOUT = 5.0
#: Admin actions written to the event log with the user (event 9075); configuration changes
#: have their own events (config_api.py).
AUDITED = frozenset({"recycle_pool", "stop_pool", "start_pool", "start_site", "stop_site",
                     "reload", "cache_flush", "stacks", "management_token"})
#: Events `wasp status` shows.
STATUS_EVENTS = 5


class AdminApi:
    """`Manager`'s admin API handlers; the attributes below are the manager's (main.py)."""

    config: Config
    config_bytes: bytes
    site_overrides: dict[str, bool]
    sup: Supervisor
    events: EventLog
    listeners: ListenerSet
    certificates: Certificates
    queue: asyncio.Queue
    loop: asyncio.AbstractEventLoop
    fronts: dict[int, Child]
    front_stats: dict[int, dict]
    workers: dict[int, Child]
    waiters: dict[int, asyncio.Future]
    waiter_fronts: dict[int, int]
    _watchers: list[tuple[Callable[[], bool], asyncio.Future]]
    _execute: Callable[[list], None]  # executor.py
    _config_message: Callable[[], tuple[dict, list[int]]]  # executor.py
    _send_fronts: Callable[..., list[int]]  # executor.py
    reload: Callable[[float], list[str]]  # main.py

    async def _call(self, fn: Callable[[float], object]):
        future = self.loop.create_future()
        self.queue.put_nowait(("call", fn, future))
        return await future

    async def _wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until `predicate()` holds after some input was handled, or the timeout passes."""
        if predicate():
            return True
        future = self.loop.create_future()
        self._watchers.append((predicate, future))
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except asyncio.TimeoutError:
            return False

    def _check_watchers(self) -> None:
        keep = []
        for predicate, future in self._watchers:
            if future.done():
                continue
            if predicate():
                future.set_result(True)
            else:
                keep.append((predicate, future))
        self._watchers = keep

    async def _ask_fronts(self, message: dict) -> dict[int, dict]:
        """Every running front's answer to `message`, by front index; a front that does not
        answer within FRONT_QUERY_TIMEOUT (or dies meanwhile) is left out."""
        asked = {}
        for index, child in list(self.fronts.items()):
            ping_id = self.sup.new_ping_id()
            future = self.loop.create_future()
            self.waiters[ping_id] = future
            self.waiter_fronts[ping_id] = index
            child.channel.send(dict(message, id=ping_id))
            asked[index] = (ping_id, future)
        if asked:
            await asyncio.wait([f for _, f in asked.values()], timeout=FRONT_QUERY_TIMEOUT)
        answers = {}
        for index, (ping_id, future) in asked.items():
            self.waiters.pop(ping_id, None)
            self.waiter_fronts.pop(ping_id, None)
            if future.done() and not future.cancelled() and future.exception() is None:
                answers[index] = future.result()
        return answers

    def _front_stats(self, answers: dict[int, dict]) -> dict:
        """The fronts' `pong` numbers summed (the last pong of a front that did not answer)."""
        pools: dict[str, dict] = {}
        connections = 0
        traffic = {"bytes_sent": 0, "bytes_received": 0}
        for index in set(self.fronts) | set(answers):
            stats = answers.get(index) or self.front_stats.get(index) or {}
            connections += int(stats.get("connections", 0) or 0)
            for key in traffic:
                traffic[key] += int(stats.get(key, 0) or 0)
            for name, numbers in (stats.get("pools") or {}).items():
                row = pools.setdefault(name, {"queued": 0, "inflight": 0, "served": 0, "rejected": 0})
                for key in row:
                    row[key] += int(numbers.get(key, 0) or 0)
        return {"pools": pools, "connections": connections, **traffic}

    async def _ask_workers(self) -> dict[int, list]:
        """Each live worker's requests in flight (`list_requests`); a worker that does not answer
        within a second is left out."""
        waits = {}
        for wid, child in list(self.workers.items()):
            ping_id = self.sup.new_ping_id()
            waits[wid] = (ping_id, self.loop.create_future())
            self.waiters[ping_id] = waits[wid][1]
            child.channel.send({"op": "list_requests", "id": ping_id})
        if waits:
            await asyncio.wait([f for _, f in waits.values()], timeout=1.0)
        answers = {}
        for wid, (ping_id, future) in waits.items():
            self.waiters.pop(ping_id, None)
            if future.done() and not future.cancelled() and future.exception() is None:
                answers[wid] = future.result().get("requests", [])
        return answers

    def _resolve(self, message: dict) -> None:
        future = self.waiters.pop(message.get("id"), None)
        if future is not None and not future.done():
            future.set_result(message)

    def _fail_waiters(self, index: int) -> None:
        """Front `index` went away: its unanswered questions fail now."""
        for ping_id in [p for p, i in self.waiter_fronts.items() if i == index]:
            del self.waiter_fronts[ping_id]
            future = self.waiters.pop(ping_id, None)
            if future is not None and not future.done():
                future.set_exception(ConnectionError("the front went away"))

    async def dispatch(self, name: str, args: dict, request: admin.AdminRequest) -> tuple[int, object]:
        status, payload = await self._dispatch(name, args, request)
        if name in AUDITED:  # every admin action in the event log, with who did it
            from wasp.manager.config_api import audit
            audit(self, name, args, request, status, payload)
        return status, payload

    async def _dispatch(self, name: str, args: dict, request: admin.AdminRequest) -> tuple[int, object]:
        if name == "sites":
            return 200, self.site_rows()
        if name == "apps":
            return 200, self.app_rows()
        if name == "pools":
            return 200, self.pool_rows(self._front_stats(await self._ask_fronts({"op": "ping"})))
        if name == "wp":
            return 200, self.wp_rows()
        if name == "requests":
            answers = await self._ask_fronts({"op": "list_requests"})
            if not answers:
                return 503, {"error": "the front did not answer"}
            rows = [dict(row, front=index) for index, answer in sorted(answers.items())
                    for row in answer.get("requests", []) if isinstance(row, dict)]
            return 200, merge_requests(rows, await self._ask_workers())
        if name == "cache":
            answers = await self._ask_fronts({"op": "list_cache"})
            if not answers:
                return 503, {"error": "the front did not answer"}
            return 200, [dict(entry, front=index) for index, answer in sorted(answers.items())
                         for entry in answer.get("entries", []) if isinstance(entry, dict)]
        if name == "cache_flush":
            site, url = request.query.get("site", ""), request.query.get("url", "")
            answers = await self._ask_fronts({"op": "cache_flush", "site": site, "url": url})
            if not answers:
                return 503, {"error": "the front did not answer"}
            errors = [a["error"] for a in answers.values() if a.get("error")]
            if errors:
                return 404, {"error": errors[0]}
            flushed = sum(int(a.get("flushed", 0) or 0) for a in answers.values())
            return 200, {"flushed": flushed, "message": f"flushed {flushed} cached response"
                                                        f"{'' if flushed == 1 else 's'}"}
        if name == "status":
            return 200, await self.status_summary()
        if name == "upgrade":
            return await self.upgrade()  # upgrade.py
        if name == "metrics":
            return 200, admin.Text(await self.metrics_text(), CONTENT_TYPE)
        if name == "traces":
            from wasp.manager import traces

            return await traces.answer(self.config, request.query)
        if name == "trace_file":
            from wasp.manager import traces

            return await traces.one(self.config, args["site"], args["file"])
        if name == "events":
            try:
                since = int(request.query.get("since", "0"))
            except ValueError:
                return 400, {"error": "since must be an integer"}
            return 200, self.events.since(since)
        if name == "reload":
            problems = await self._call(self.reload)
            if problems:
                return 400, {"error": "configuration reload rejected", "problems": problems}
            return 200, {"ok": True, "message": "configuration reloaded"}
        if name in ("recycle_pool", "stop_pool", "start_pool"):
            return await self._pool_command(name, args["name"])
        if name in ("start_site", "stop_site"):
            return await self._call(lambda now: self.site_command(name[:-5], args["name"]))
        if name == "logs":
            return self.logs_rows(request)
        if name == "stacks":
            return await self.worker_stacks(args["pid"])
        if name == "management_token":
            return self.management_token()
        if name == "pool_settings":
            return self.pool_settings(args["name"])
        if name.startswith(("config_", "backup_")):
            from wasp.manager import config_api
            return await config_api.dispatch(self, name, args, request)
        return 404, {"error": f"no such resource: {request.path}"}

    async def _pool_command(self, name: str, pool: str) -> tuple[int, object]:
        method = getattr(self.sup, name)
        before: dict = {}

        def run(now: float) -> None:
            rec = self.sup.pools.get(pool)
            if rec is not None:
                before["old"] = {w.worker_id for w in self.sup.workers_of(pool)
                                 if w.state.value == "Ready"}
                before["failures"] = rec.start_failures
            self._execute(method(pool, now))

        try:
            await self._call(run)
        except CommandError as exc:
            status = 404 if str(exc).startswith("Cannot find") else 409
            return status, {"error": str(exc)}
        if name == "recycle_pool":
            # Like appcmd's /wait: answer once the new workers are ready, or a replacement failed.
            reason = await self._wait_recycled(pool, before["old"], before["failures"])
            if reason:
                return 500, {"error": f'"{pool}" could not be recycled: {reason}', "reason": reason}
        if name == "stop_pool":
            # Like appcmd's default /wait: answer once the pool's workers are gone.
            rec = self.sup.pools.get(pool)
            limit = rec.settings.process_model.shutdown_time_limit if rec else 0
            await self._wait_for(lambda: not self.sup.workers_of(pool), limit + 5)
        verb = {"recycle_pool": "recycled", "stop_pool": "stopped", "start_pool": "started"}[name]
        return 200, {"ok": True, "message": f'"{pool}" successfully {verb}'}

    async def _wait_recycled(self, pool: str, old: set[int], failures: int) -> str:
        rec = self.sup.pools.get(pool)
        pm = rec.settings.process_model if rec else None
        limit = (pm.startup_time_limit or 600.0) if pm else 0.0
        if rec and rec.settings.recycling.disallow_overlapping_rotation:
            limit += pm.shutdown_time_limit or 600.0  # the old workers exit first
        outcome: list = []

        def settled() -> bool:
            outcome[:] = [self.sup.recycle_outcome(pool, old, failures)]
            return outcome[0] is not None

        if not await self._wait_for(settled, limit + 5):
            return f"the new worker was not ready within {limit + 5:g} seconds"
        return outcome[0]

    def site_command(self, verb: str, name: str) -> tuple[int, object]:
        """Start or stop listening for a site (wasp/manager/sites.py); the pools are untouched."""
        try:
            overrides = sites.command(self.config, self.site_overrides, verb, name)
            effective = sites.effective(self.config, overrides)
            self.listeners.apply(listeners.plan(effective))
        except sites.SiteCommandError as exc:
            return exc.status, {"error": str(exc)}
        except (listeners.BindError, ValueError) as exc:
            return 409, {"error": f"Command execution failed. {exc}"}
        self.site_overrides = overrides
        self.config_bytes = encode(effective)
        self.certificates.apply(effective)
        message, fds = self._config_message()
        self._send_fronts(message, fds)
        return 200, {"ok": True, "message": f'"{name}" successfully {verb}ped.' if verb == "stop"
                     else f'"{name}" successfully {verb}ed.'}

    # ------------------------------------------------------------------ views
    async def status_summary(self) -> dict:
        """`wasp status`: the server, its sites, pools and workers, the cache and the last
        events; the fronts are asked for their numbers and their cache at the same time."""
        pings, cached = await asyncio.gather(self._ask_fronts({"op": "ping"}),
                                             self._ask_fronts({"op": "list_cache"}))
        stats = self._front_stats(pings)
        entries = [e for answer in cached.values() for e in answer.get("entries", [])
                   if isinstance(e, dict)]
        return {
            "server": {"version": wasp.__version__, "pid": os.getpid(),
                       "uptime_s": round(time.monotonic() - self.started, 3),
                       "config_file": self.config_file or "", "run_dir": self.run_dir,
                       "log_dir": self.log_dir, "state": "Stopping" if self.sup.shutting_down
                       else "Started", "fronts": self.front_count,
                       "fronts_answering": len(pings), "connections": stats["connections"],
                       "bytes_sent": stats["bytes_sent"], "bytes_received": stats["bytes_received"]},
            "sites": self.site_rows(),
            "pools": self.pool_rows(stats),
            "workers": self.wp_rows(),
            "cache": {"entries": len(entries), "bytes": sum(int(e.get("size", 0) or 0)
                                                            for e in entries)},
            "events": self.events.since(0)[-STATUS_EVENTS:],
        }

    def site_rows(self) -> list[dict]:
        return [{"name": s.name, "id": s.id, "bindings": [binding_text(b) for b in s.bindings],
                 "state": "Started" if sites.is_started(self.config, self.site_overrides, s.name) else "Stopped"}
                for s in self.config.sites]

    def app_rows(self) -> list[dict]:
        return [{"site": s.name, "site_id": s.id, "path": a.path, "pool": a.pool,
                 "physical_path": a.physical_path, "app": a.app, "key": f"{s.id}{a.path}"}
                for s in self.config.sites for a in s.applications]

    def pool_rows(self, stats: dict) -> list[dict]:
        front_pools = stats.get("pools", {}) if isinstance(stats, dict) else {}
        rows = self.sup.pool_rows(time.monotonic())
        for row in rows:
            numbers = front_pools.get(row["name"], {})
            row["queue"] = int(numbers.get("queued", 0))
            row["inflight"] = int(numbers.get("inflight", 0))
            row["served"] = int(numbers.get("served", 0))
            row["rejected"] = int(numbers.get("rejected", 0))
        return rows

    def wp_rows(self) -> list[dict]:
        rows = self.sup.worker_rows(time.monotonic())
        for row in rows:
            try:
                row["rss"] = psutil.Process(row["pid"]).memory_info().rss
            except (psutil.Error, ValueError):
                row["rss"] = 0
        return rows
