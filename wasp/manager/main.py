"""The manager (IIS WAS): `wasp serve` runs `serve()` in the foreground.

It owns the listening sockets, starts and supervises the front and the workers, serves the admin
API and writes the event log. Every decision is the `Supervisor`'s; this module is the I/O around
it: one queue of inputs (control messages, process exits, signals, admin commands) drained by one
loop that also wakes at the supervisor's next deadline. Signal handlers only enqueue.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import signal
import socket
import sys
import time
from typing import Callable, TextIO

import psutil

from wasp.common.channel import ControlChannel
from wasp.common.proctitle import set_title
from wasp.common.unixsock import answers
from wasp.config import rundir
from wasp.config.bindings import binding_text
from wasp.config.model import Config, encode
from wasp.errors import ConfigError
from wasp.manager import actions as A
from wasp.manager import admin, environment, listeners, sites, spawn
from wasp.manager.isolation import Isolation
from wasp.manager.processes import Child, PassedFds, Reaper
from wasp.manager.certificates import Certificates
from wasp.manager.events import EventLog
from wasp.manager.supervisor import CommandError, Supervisor
from wasp.manager.inflight import merge as merge_requests

#: Longest the loop sleeps without an input, so a wall-clock jump still reaches the schedule.
MAX_WAIT = 30.0
FRONT_QUERY_TIMEOUT = 5.0


class StartupError(Exception):
    """The server cannot start (a port is taken, the run_dir is in use ...)."""


class Manager:
    def __init__(self, config: Config, config_file: str | None, listener_set: listeners.ListenerSet,
                 run_dir: str, log_dir: str, stderr: TextIO):
        self.config = config
        self.config_bytes = encode(config)
        self.site_overrides: dict[str, bool] = {}  # `wasp start|stop site`: name -> started?
        self.config_file = config_file
        self.listeners = listener_set
        self.run_dir = run_dir
        self.log_dir = log_dir
        self.stderr = stderr
        self.admin_path = os.path.join(run_dir, "admin.sock")
        self.pid_path = os.path.join(run_dir, "wasp.pid")
        self.events = EventLog(os.path.join(log_dir, "events.jsonl"), stderr)
        self.cpu_count = _cpu_count()
        self.sup = Supervisor(config, cpu_count=self.cpu_count)
        self.isolation = Isolation(self.events, self.cpu_count, os.getpid())
        self.queue: asyncio.Queue = asyncio.Queue()
        self.front: Child | None = None
        self.front_generation = 0
        self.front_stats: dict = {}
        self.workers: dict[int, Child] = {}
        self.waiters: dict[int, asyncio.Future] = {}
        self._signals = 0
        self._watchers: list[tuple[Callable[[], bool], asyncio.Future]] = []
        self._exit = False
        self.started = time.monotonic()
        self.certificates = Certificates(self._post_threadsafe, self._send_front,
                                         lambda event_id, data: self.events.write(event_id, data=data),
                                         lambda line: self.stderr.write(line + "\n"))

    def _post_threadsafe(self, item: tuple) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def _send_front(self, message: dict) -> None:
        if self.front is not None:
            self.front.channel.send(message)

    # ------------------------------------------------------------------ the loop
    async def run(self) -> int:
        self.loop = asyncio.get_running_loop()
        self.reaper = Reaper(self.loop, self.queue.put_nowait)
        self.passed_fds = PassedFds(self.loop)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
            self.loop.add_signal_handler(signum, self.queue.put_nowait, ("signal", signum))
        server = await admin.serve(self.admin_path, self.dispatch)
        try:
            # Before the front exists: the manager may have to move itself into a leaf cgroup.
            for pool in self.config.pools:
                self.isolation.cgroup(pool)
            for line in self.isolation.other_accounts(self.config):
                self.stderr.write(line + "\n")
            self.certificates.apply(self.config)  # temporary certificates before the front starts
            self._execute(self.sup.start(time.monotonic(), time.time()))
            addresses = ", ".join(ip if ip.startswith("unix:") else f"{ip}:{port}" for ip, port in self.listeners.sockets)
            self.events.write(9001, pid=os.getpid(), data={"listeners": addresses or "nothing"})
            while not self._exit:
                now = time.monotonic()
                deadline = self.sup.next_deadline(now, time.time())
                renewal = self.certificates.next_deadline(now, time.time())
                if renewal is not None and (deadline is None or renewal < deadline):
                    deadline = renewal
                timeout = MAX_WAIT if deadline is None else min(MAX_WAIT, max(0.0, deadline - now))
                try:
                    item = await asyncio.wait_for(self.queue.get(), timeout)
                except asyncio.TimeoutError:
                    item = None
                if item is not None:
                    self._handle(item)
                while not self.queue.empty() and not self._exit:
                    self._handle(self.queue.get_nowait())
                if not self._exit:
                    self._execute(self.sup.tick(time.monotonic(), time.time()))
                    self.certificates.tick(time.time())
                self._check_watchers()
        finally:
            server.close()
            self.reaper.close()
            for child in [self.front, *self.workers.values()]:
                if child is not None:
                    child.kill()
            for path in (self.admin_path, self.pid_path):
                try:
                    os.unlink(path)
                except OSError:
                    pass
            self.listeners.close()
            self.isolation.close()
            self.events.write(9003)
            self.events.close()
        return 0

    def _handle(self, item: tuple) -> None:
        kind = item[0]
        now = time.monotonic()
        if kind == "signal":
            self._on_signal(item[1], now)
        elif kind == "front":
            _, generation, message, fds = item
            self._close_fds(fds)
            if generation == self.front_generation:
                self._on_front_message(message, now)
        elif kind == "worker":
            _, wid, message, fds = item
            self._close_fds(fds)
            self._on_worker_message(wid, message, now)
        elif kind == "front_exit":
            _, generation, pid, code = item
            if generation == self.front_generation:
                self.front = None
                self._fail_waiters()
                self._execute(self.sup.front_exited(code, pid, now))
        elif kind == "worker_exit":
            _, wid, code = item
            self.workers.pop(wid, None)
            self._execute(self.sup.worker_exited(wid, code, now))
        elif kind == "not_started":
            self.workers.pop(item[1], None)
            self._execute(self.sup.worker_not_started(item[1], now, item[2], item[3]))
        elif kind == "acme":
            self.certificates.handle(item)
        elif kind == "reaped":
            pass  # a command we ran for the admin; its outcome is its own business
        elif kind == "call":
            _, fn, future = item
            try:
                result = fn(now)
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)

    def _on_signal(self, signum: int, now: float) -> None:
        if signum == signal.SIGHUP:
            self.reload(now)
            return
        # Service managers repeat SIGTERM (and send it to the whole group): it never escalates.
        # Only SIGQUIT, or a second SIGINT (Ctrl-C twice), stops at once.
        name = signal.Signals(signum).name
        if signum == signal.SIGINT:
            self._signals += 1
        if signum == signal.SIGQUIT or self._signals >= 2:
            self.stderr.write(f"wasp: {name}: stopping at once\n")
            self._execute(self.sup.shutdown(now))
            self._execute(self.sup.kill_everything())
        elif not self.sup.shutting_down:
            again = " (Ctrl-C again or SIGQUIT to stop at once)"
            self.stderr.write(f"wasp: {name}: stopping gracefully{again}\n")
            self._execute(self.sup.shutdown(now))

    # ------------------------------------------------------------------ actions
    def _execute(self, actions: list) -> None:
        for action in actions:
            method = getattr(self, "_do_" + type(action).__name__)
            method(action)
        self.passed_fds.release()

    def _do_Event(self, a: A.Event) -> None:
        self.events.write(a.event_id, a.pool, a.pid, a.data)

    def _do_Exit(self, a: A.Exit) -> None:
        self._exit = True

    def _do_SpawnFront(self, a: A.SpawnFront) -> None:
        names, fds = self.listeners.ordered()
        try:
            proc, sock = spawn.spawn_front(fds)
        except OSError as exc:
            self.stderr.write(f"wasp: cannot start the front: {exc}\n")
            self.queue.put_nowait(("front_exit", self.front_generation, 0, -1))
            return
        self.front_generation += 1
        generation = self.front_generation
        channel = ControlChannel(
            sock, lambda m, f: self.queue.put_nowait(("front", generation, m, f)), lambda: None,
            self.loop)
        self.front = Child(proc, channel)
        self.reaper.watch(self.front, lambda code: ("front_exit", generation, proc.pid, code))
        self.front_stats = {}
        channel.send({"op": "config", "config": self.config_bytes, "listeners": names}, fds)
        if self.certificates.hosts:
            channel.send(self.certificates.front_message())  # the challenges pending, if any

    def _do_StopFront(self, a: A.StopFront) -> None:
        if self.front is not None:
            self.front.channel.send({"op": "stop"})

    def _do_KillFront(self, a: A.KillFront) -> None:
        if self.front is not None:
            self.front.kill()

    def _do_PingFront(self, a: A.PingFront) -> None:
        if self.front is not None:
            self.front.channel.send({"op": "ping", "id": a.ping_id})

    def _do_SetPoolState(self, a: A.SetPoolState) -> None:
        if self.front is not None:
            self.front.channel.send({"op": "pool_state", "pool": a.pool, "state": a.state,
                                     "reason": a.reason})

    def _do_SpawnWorker(self, a: A.SpawnWorker) -> None:
        rec = self.sup.pools.get(a.pool)
        settings = rec.settings if rec else None
        variables = dict(settings.environment_variables) if settings else {}
        try:
            account = self.isolation.account(self.config, settings) if settings else None
            problem = self.isolation.runtime_problem(settings, account) if settings else None
            if problem:
                self._spawn_failed(a, problem, permanent=True)
                return
            proc, sock = spawn.spawn_worker(a.worker_id, a.pool, variables,
                                            python=getattr(settings, "python", "") or None,
                                            account=account,
                                            virtualenv=getattr(settings, "virtualenv", "") or None)
        except KeyError as exc:
            self._spawn_failed(a, f"no such user or group: {exc.args[0] if exc.args else exc}", True)
            return
        except (FileNotFoundError, PermissionError) as exc:
            self._spawn_failed(a, str(exc), permanent=True)
            return
        except (OSError, ValueError) as exc:
            self._spawn_failed(a, str(exc))
            return
        if settings is not None:
            self.isolation.place(settings, proc.pid)
        user = account.user if account else _user_name(os.geteuid())
        self.events.write(9013, a.pool, proc.pid, {"user": user, "worker_id": a.worker_id})
        wid = a.worker_id
        eof = asyncio.Event()
        channel = ControlChannel(
            sock, lambda m, f: self.queue.put_nowait(("worker", wid, m, f)), eof.set, self.loop)
        self.workers[wid] = child = Child(proc, channel)
        self.reaper.watch(child, lambda code: ("worker_exit", wid, code), eof)
        self.sup.worker_spawned(wid, proc.pid)
        channel.send({"op": "init", "config": self.config_bytes, "pool": a.pool})

    def _spawn_failed(self, a: A.SpawnWorker, error: str, permanent: bool = False) -> None:
        # One event that says why; no 5009 for a process that never ran (it would have pid 0).
        self.events.write(9012, a.pool, data={"error": error})
        self.queue.put_nowait(("not_started", a.worker_id, permanent, error))

    def _do_AttachWorker(self, a: A.AttachWorker) -> None:
        worker = self.workers.get(a.worker_id)
        rec = self.sup.workers.get(a.worker_id)
        if worker is None or rec is None or self.front is None:
            return  # a front that starts later gets every ready worker then
        ours_w, ours_f = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        worker.channel.send({"op": "attach"}, [ours_w.fileno()])
        self.front.channel.send({"op": "worker_add", "pool": rec.pool, "worker_id": a.worker_id,
                                 "pid": worker.pid}, [ours_f.fileno()])
        self.passed_fds.hold(worker.channel, [ours_w])
        self.passed_fds.hold(self.front.channel, [ours_f])

    def _do_StopWorker(self, a: A.StopWorker) -> None:
        if a.drain and self.front is not None:
            self.front.channel.send({"op": "worker_drain", "worker_id": a.worker_id})
        worker = self.workers.get(a.worker_id)
        if worker is not None:
            worker.channel.send({"op": "stop"})

    def _do_KillWorker(self, a: A.KillWorker) -> None:
        worker = self.workers.get(a.worker_id)
        if worker is not None:
            worker.kill()

    def _do_OrphanWorker(self, a: A.OrphanWorker) -> None:
        worker = self.workers.pop(a.worker_id, None)
        if self.front is not None:
            self.front.channel.send({"op": "worker_drain", "worker_id": a.worker_id})
        if worker is not None:
            worker.channel.close()
            self.stderr.write(f"wasp: worker {a.worker_id} (pid {worker.pid}) orphaned; "
                              "it is left running\n")
        if a.command:
            self._do_RunCommand(A.RunCommand(a.command))

    def _do_RunCommand(self, a: A.RunCommand) -> None:
        try:
            proc = spawn.run_command(a.command)
        except (OSError, ValueError) as exc:
            self.stderr.write(f"wasp: cannot run {a.command!r}: {exc}\n")
            return
        self.reaper.watch(Child(proc), lambda code: ("reaped", proc.pid, code))

    def _do_PingWorker(self, a: A.PingWorker) -> None:
        worker = self.workers.get(a.worker_id)
        if worker is not None:
            worker.channel.send({"op": "ping", "id": a.ping_id})

    # ------------------------------------------------------------------ processes
    @staticmethod
    def _close_fds(fds: list[int]) -> None:
        for fd in fds:  # nobody sends the manager descriptors; don't leak ones that arrive
            try:
                os.close(fd)
            except OSError:
                pass

    # ------------------------------------------------------------------ messages
    def _on_front_message(self, message: dict, now: float) -> None:
        op = message.get("op")
        if op == "demand":
            self._execute(self.sup.front_demand(str(message.get("pool", "")), now))
        elif op == "acme_ack":
            self.certificates.acked(int(message.get("id") or 0))
        elif op == "pong":
            self.sup.front_pong(now)
            self.front_stats = message
            self._resolve(message)
        elif op == "requests" or op == "cache":
            self._resolve(message)

    def _resolve(self, message: dict) -> None:
        future = self.waiters.pop(message.get("id"), None)
        if future is not None and not future.done():
            future.set_result(message)

    def _fail_waiters(self) -> None:
        for future in self.waiters.values():
            if not future.done():
                future.set_exception(ConnectionError("the front went away"))
        self.waiters.clear()

    def _on_worker_message(self, wid: int, message: dict, now: float) -> None:
        op = message.get("op")
        if op == "ready":
            self._execute(self.sup.worker_ready(wid, now))
        elif op == "load_failed":
            self.sup.worker_load_failed(wid, str(message.get("error", "")),
                                        str(message.get("traceback", "")))
        elif op == "stuck":
            self._execute(self.sup.worker_stuck(wid, now, message))
        elif op == "recycle_me":
            self._execute(self.sup.worker_recycle_me(wid, str(message.get("reason", "")), now))
        elif op == "requests":
            self._resolve(message)
        elif op == "pong":
            vms = uss = 0
            rec = self.sup.workers.get(wid)
            pool = self.sup.pools.get(rec.pool) if rec else None
            cpu_s = 0.0
            child = self.workers.get(wid)
            if pool is not None and child is not None:
                recycling = pool.settings.recycling
                try:
                    p = psutil.Process(child.pid)
                    if recycling.memory:
                        vms = p.memory_info().vms
                    if recycling.private_memory:
                        uss = p.memory_full_info().uss
                    if pool.settings.cpu.limit:
                        times = p.cpu_times()
                        cpu_s = times.user + times.system
                except psutil.Error:
                    pass
            self._execute(self.sup.worker_pong(
                wid, now, served=int(message.get("served", 0)), inflight=int(message.get("inflight", 0)),
                idle_s=float(message.get("idle_s", 0.0)), vms=vms, uss=uss, cpu_s=cpu_s))

    # ------------------------------------------------------------------ reload
    def reload(self, now: float) -> list[str]:
        """Re-read the config file. Returns the problems (empty when it was applied)."""
        from wasp.config.diff import changed_pools
        from wasp.config.load import load

        if self.sup.shutting_down:
            return self._reject(["the server is shutting down"])
        if not self.config_file:
            problems = ["there is no configuration file to re-read "
                        "(serving the embedded default site or a single app)"]
            return self._reject(problems)
        try:
            new = load(self.config_file)
        except ConfigError as exc:
            return self._reject([str(p) for p in exc.problems])
        except OSError as exc:
            return self._reject([f"{self.config_file}: {exc.strerror or exc}"])
        problems = environment.check(new, identities=os.geteuid() == 0)
        if problems:
            return self._reject([str(p) for p in problems])
        try:
            overrides = sites.forget_missing(new, self.site_overrides)
            planned = listeners.plan(sites.effective(new, overrides))
            if not planned and self.listeners.sockets:
                # Applied, it would close every port and stop every worker: never silently.
                return self._reject(["the new configuration listens on nothing (no started site "
                                     "has a binding); the running configuration keeps serving"])
            self.listeners.apply(planned)
        except (listeners.BindError, ValueError) as exc:
            return self._reject([str(exc)])
        self.site_overrides = overrides
        if new.server.run_dir != self.config.server.run_dir or new.server.log_dir != self.config.server.log_dir:
            self.stderr.write("wasp: server.run_dir and server.log_dir changes take effect at the "
                              "next start\n")
        old = self.config
        self.config = new
        self.config_bytes = encode(sites.effective(new, overrides))
        self.certificates.apply(sites.effective(new, overrides))
        self.isolation.forget()
        if self.front is not None:
            names, fds = self.listeners.ordered()
            self.front.channel.send({"op": "config", "config": self.config_bytes, "listeners": names}, fds)
        self._execute(self.sup.reconfigure(new, changed_pools(old, new), now, time.time()))
        self.events.write(9004, data={"source": self.config_file})
        return []

    def _reject(self, problems: list[str]) -> list[str]:
        for problem in problems:
            self.stderr.write(f"config reload rejected: {problem}\n")
        self.events.write(9005, data={"problems": "; ".join(problems)})
        return problems

    # ------------------------------------------------------------------ admin API
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

    async def _ask_front(self, message: dict) -> dict | None:
        if self.front is None:
            return None
        ping_id = self.sup.new_ping_id()
        future = self.loop.create_future()
        self.waiters[ping_id] = future
        self.front.channel.send(dict(message, id=ping_id))
        try:
            return await asyncio.wait_for(future, FRONT_QUERY_TIMEOUT)
        except (asyncio.TimeoutError, ConnectionError):
            self.waiters.pop(ping_id, None)
            return None

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

    async def dispatch(self, name: str, args: dict, request: admin.AdminRequest) -> tuple[int, object]:
        if name == "sites":
            return 200, self.site_rows()
        if name == "apps":
            return 200, self.app_rows()
        if name == "pools":
            stats = await self._ask_front({"op": "ping"}) or self.front_stats
            return 200, self.pool_rows(stats)
        if name == "wp":
            return 200, self.wp_rows()
        if name == "requests":
            answer = await self._ask_front({"op": "list_requests"})
            if answer is None:
                return 503, {"error": "the front did not answer"}
            return 200, merge_requests(list(answer.get("requests", [])), await self._ask_workers())
        if name == "cache":
            answer = await self._ask_front({"op": "list_cache"})
            if answer is None:
                return 503, {"error": "the front did not answer"}
            return 200, list(answer.get("entries", []))
        if name == "cache_flush":
            site, url = request.query.get("site", ""), request.query.get("url", "")
            answer = await self._ask_front({"op": "cache_flush", "site": site, "url": url})
            if answer is None:
                return 503, {"error": "the front did not answer"}
            if answer.get("error"):
                return 404, {"error": answer["error"]}
            flushed = int(answer.get("flushed", 0))
            return 200, {"flushed": flushed, "message": f"flushed {flushed} cached response"
                                                        f"{'' if flushed == 1 else 's'}"}
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
        if self.front is not None:
            names, fds = self.listeners.ordered()
            self.front.channel.send({"op": "config", "config": self.config_bytes, "listeners": names}, fds)
        return 200, {"ok": True, "message": f'"{name}" successfully {verb}ped.' if verb == "stop"
                     else f'"{name}" successfully {verb}ed.'}

    # ------------------------------------------------------------------ views
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
        return rows

    def wp_rows(self) -> list[dict]:
        rows = self.sup.worker_rows(time.monotonic())
        for row in rows:
            try:
                row["rss"] = psutil.Process(row["pid"]).memory_info().rss
            except (psutil.Error, ValueError):
                row["rss"] = 0
        return rows


# ---------------------------------------------------------------------- start-up

def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what this process may use (cpusets, containers)
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def prepare_dirs(run_dir: str, log_dir: str) -> None:
    """Create run_dir (0700) and log_dir; refuse a run_dir another live server uses, or one that
    is not ours and private (wasp/config/rundir.py: a local user may have pre-created it).

    A live server is one answering on its admin socket: a pid file alone may be stale, its pid
    reused by an unrelated process."""
    base = rundir.run_dir_base()
    fallback = os.path.dirname(run_dir) == base
    if fallback:  # a fallback run dir: the shared base must be ours and private too
        rundir.private_dir(base)
    os.makedirs(os.path.dirname(run_dir), exist_ok=True)
    # One the config names may be readable (0755), never writable, by others.
    rundir.private_dir(run_dir, forbidden=0o077 if fallback else 0o022)
    os.makedirs(log_dir, exist_ok=True)
    if answers(os.path.join(run_dir, "admin.sock"), timeout=2.0):
        try:
            with open(os.path.join(run_dir, "wasp.pid")) as f:
                pid = f.read().strip()
        except OSError:
            pid = "?"
        raise StartupError(f"wasp is already running with run_dir {run_dir} (pid {pid})")


def serve(config: Config, config_file: str | None = None, stderr: TextIO | None = None) -> int:
    """Run the server until it is stopped. Returns the exit code: 0, or 1 when it cannot start."""
    stderr = stderr or sys.stderr
    run_dir = os.path.abspath(config.server.run_dir)
    log_dir = os.path.abspath(config.server.log_dir)
    listener_set = listeners.ListenerSet()
    try:
        prepare_dirs(run_dir, log_dir)
        listener_set.apply(listeners.plan(config))
    except (StartupError, rundir.RunDirError, listeners.BindError, OSError, ValueError) as exc:
        listener_set.close()
        stderr.write(f"wasp: {exc}\n")
        return 1
    admin_path = os.path.join(run_dir, "admin.sock")
    if len(admin_path.encode()) > 100:
        listener_set.close()
        stderr.write(f"wasp: the admin socket path is too long for a Unix socket: {admin_path}\n")
        return 1
    with open(os.path.join(run_dir, "wasp.pid"), "w") as f:
        f.write(f"{os.getpid()}\n")
    set_title(f"wasp: manager {config_file or ''}".rstrip())
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run

    async def main() -> int:
        manager = Manager(config, config_file, listener_set, run_dir, log_dir, stderr)
        return await manager.run()

    try:
        return runner(main())
    except OSError as exc:  # the admin socket or the event log could not be set up
        stderr.write(f"wasp: {exc}\n")
        try:
            os.unlink(os.path.join(run_dir, "wasp.pid"))
        except OSError:
            pass
        return 1
    finally:
        listener_set.close()
