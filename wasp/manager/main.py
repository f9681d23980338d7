"""The manager (IIS WAS): `wasp serve` runs `serve()` in the foreground.

It owns the listening sockets, starts and supervises the front and the workers, serves the admin
API and writes the event log. Every decision is the `Supervisor`'s; this module is the I/O around
it: one queue of inputs (control messages, process exits, signals, admin commands) drained by one
loop that also wakes at the supervisor's next deadline. Signal handlers only enqueue.

This module is the process and its loop: start-up (`serve`; the checks before it are startup.py),
the inputs and what each is handed to, and reload. The supervisor's actions are carried out by
executor.py, the admin API is answered by api.py; both are mixins of `Manager`.
"""

from __future__ import annotations

import asyncio
import copy
import mmap
import os
import signal
import sys
import time
from typing import Callable, TextIO

import psutil

from wasp.common import journal, scoreboard
from wasp.common.proctitle import set_title
from wasp.config import rundir
from wasp.config.model import Config, encode
from wasp.errors import ConfigError
from wasp.manager import activation, admin, environment, listeners, sites, systemd
from wasp.manager.api import AdminApi
from wasp.manager.metrics import FrontTotals, ManagerCounters
from wasp.manager.metrics_api import MetricsApi
from wasp.manager.mgmtops import MgmtOps
from wasp.manager.isolation import Isolation
from wasp.manager.processes import Child, PassedFds, Reaper
from wasp.manager.certificates import Certificates
from wasp.manager.events import EventLog
from wasp.manager.executor import Executor
from wasp.manager.startup import StartupError, cpu_count, prepare_dirs
from wasp.manager.reloader import CodeWatcher, pool_roots
from wasp.manager.services import ServiceActivation
from wasp.manager.deploys import FileWatcher, watched
from wasp.config import services as service_config
from wasp.manager.supervisor import CommandError, Supervisor, front_count
from wasp.manager import upgrade as upgrade_mod

#: Longest the loop sleeps without an input, so a wall-clock jump still reaches the schedule.
MAX_WAIT = 30.0


class Manager(Executor, AdminApi, MetricsApi, ServiceActivation, MgmtOps, upgrade_mod.UpgradeOps):
    def __init__(self, config: Config, config_file: str | None, listener_set: listeners.ListenerSet,
                 run_dir: str, log_dir: str, stderr: TextIO, reload_code: bool = False,
                 notifier: systemd.Notifier | None = None,
                 service_listeners: listeners.ListenerSet | None = None):
        self.config = config
        #: sd_notify (systemd.py): a no-op unless systemd gave us NOTIFY_SOCKET.
        self.notifier = notifier or systemd.Notifier(systemd.SystemdEnvironment())
        self.request_rate = systemd.RequestRate()
        self._stopping_sent = False
        # tcp pools (services.py): their sockets, bound by serve(), and which pool has which.
        self.services = service_listeners or listeners.ListenerSet()
        self.service_plan = service_config.plan(config)
        self._service_modes: dict[str, str | None] = {}
        #: `wasp serve --reload`: recycle a pool when its Python files change (reloader.py).
        self.code_watcher = CodeWatcher(self._post_threadsafe) if reload_code else None
        #: recycling.monitor_changes_to (deploys.py).
        self.file_watcher = FileWatcher(self._post_threadsafe)
        self.config_bytes = encode(config)
        self.pool_secrets: dict[str, bytes] = {}  # Executor.pool_secret
        self.client_boards: dict[str, tuple[int, int]] = {}  # Executor.client_board: (fd, columns)
        self.site_overrides: dict[str, bool] = {}  # `wasp start|stop site`: name -> started?
        self.config_file = config_file
        self.listeners = listener_set
        self.run_dir = run_dir
        self.log_dir = log_dir
        self.stderr = stderr
        self.admin_path = os.path.join(run_dir, "admin.sock")
        self.pid_path = os.path.join(run_dir, "wasp.pid")
        #: Started by `wasp upgrade` (upgrade.py): its own admin socket until it is ready.
        self.upgrade_child = upgrade_mod.child()
        if self.upgrade_child.active:
            self.admin_path = os.path.join(run_dir, upgrade_mod.CHILD_ADMIN)
        self.events = EventLog(os.path.join(log_dir, "events.jsonl"), stderr)
        self.cpu_count = cpu_count()
        self.front_count = front_count(config, self.cpu_count)
        self.sup = Supervisor(config, cpu_count=self.cpu_count, fronts=self.front_count)
        self.isolation = Isolation(self.events, self.cpu_count, os.getpid())
        self.queue: asyncio.Queue = asyncio.Queue()
        self.fronts: dict[int, Child] = {}          # front index -> its process
        self.front_generations: dict[int, int] = {}  # front index -> its current generation
        self.front_generation = 0
        self.front_stats: dict[int, dict] = {}        # front index -> its last pong
        self.metric_counters = ManagerCounters()      # APP_POOL_WAS counters (metrics.py)
        self.front_totals = FrontTotals()             # the fronts' metrics snapshots, summed
        self._scrape_tasks: set = set()               # metrics_scrape answers under way
        self.acme_acked: dict[int, int] = {}          # front index -> the last acme id it took
        # The fronts' shared scoreboard (wasp/common/scoreboard.py): made once, for the
        # manager's life; every front maps it and writes its own column.
        self.scoreboard_fd = os.memfd_create("wasp-scoreboard")
        size = scoreboard.size_for(self.front_count)
        os.ftruncate(self.scoreboard_fd, size)
        self.scoreboard = mmap.mmap(self.scoreboard_fd, size)
        scoreboard.initialize(self.scoreboard, self.front_count)
        self.slots = scoreboard.SlotTable()
        self.slot_map = self._assign_slots(config)
        self.workers: dict[int, Child] = {}
        self.waiters: dict[int, asyncio.Future] = {}
        self.waiter_fronts: dict[int, int] = {}     # question id -> the front asked
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
        self._send_fronts(message)

    def _assign_slots(self, config: Config) -> dict:
        return self.slots.configure([p.name for p in config.pools], [s.id for s in config.sites])

    # ------------------------------------------------------------------ the loop
    async def run(self) -> int:
        self.loop = asyncio.get_running_loop()
        self.reaper = Reaper(self.loop, self.queue.put_nowait)
        self.passed_fds = PassedFds(self.loop)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
            self.loop.add_signal_handler(signum, self.queue.put_nowait, ("signal", signum))
        self.loop.add_signal_handler(signal.SIGUSR2, self.queue.put_nowait, ("signal", signal.SIGUSR2))
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
            self.prepare_management(self.stderr)
            if self.code_watcher is not None:
                self.code_watcher.watch(pool_roots(self.config, self.config_file))
                self.code_watcher.start()
            self.file_watcher.watch(watched(self.config))
            self.file_watcher.start()
            while not self._exit:
                self._notify_systemd()
                self.upgrade_child_tick()
                now = time.monotonic()
                deadline = self.sup.next_deadline(now, time.time())
                renewal = self.certificates.next_deadline(now, time.time())
                if renewal is not None and (deadline is None or renewal < deadline):
                    deadline = renewal
                for due in (self.notifier.watchdog_due(now), self._ready_cap(), self.notifier.retry_due(now)):
                    if due is not None and (deadline is None or due < deadline):
                        deadline = due
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
            if self.code_watcher is not None:
                self.code_watcher.close()
            self.file_watcher.close()
            server.close()
            self.reaper.close()
            for child in [*self.fronts.values(), *self.workers.values()]:
                child.kill()
            for path in (() if self.handed_over else (self.admin_path, self.pid_path)):
                try:
                    os.unlink(path)
                except OSError:
                    pass
            self.listeners.close()
            self._services_close()
            self.isolation.close()
            self.events.write(9003)
            self.events.close()
            self.notifier.close()
            self.scoreboard.close()
            os.close(self.scoreboard_fd)
        return 0

    # ------------------------------------------------------------------ systemd
    def _status(self) -> str:
        return systemd.status_line(self.sup, self.request_rate.rate, self.notifier.ready_sent)

    def _ready_cap(self) -> float | None:
        """Until READY=1 is sent: when the longest startup_time_limit ends (startup_done)."""
        if not self.notifier.active or self.notifier.ready_sent:
            return None
        limits = [float(r.settings.process_model.startup_time_limit) for r in self.sup.pools.values()
                  if r.always_running]
        return self.started + max(limits) if limits else None

    def _notify_systemd(self) -> None:
        notifier = self.notifier
        if not notifier.active:
            return
        now = time.monotonic()
        if self.sup.shutting_down:
            if not self._stopping_sent:
                self._stopping_sent = True
                notifier.stopping("Stopping: draining requests and workers")
        elif not notifier.ready_sent and systemd.startup_done(self.sup, now, self.started):
            notifier.ready(self._status())
        notifier.tick(now, self._status())

    def _handle(self, item: tuple) -> None:
        kind = item[0]
        now = time.monotonic()
        if kind == "signal":
            self._on_signal(item[1], now)
        elif kind == "front":
            _, index, generation, message, fds = item
            self._close_fds(fds)
            if generation == self.front_generations.get(index):
                self._on_front_message(index, message, now)
        elif kind == "worker":
            _, wid, message, fds = item
            self._close_fds(fds)
            self._on_worker_message(wid, message, now)
        elif kind == "front_exit":
            _, index, generation, pid, code = item
            if generation == self.front_generations.get(index):
                self.fronts.pop(index, None)
                self.front_stats.pop(index, None)
                self.front_totals.exited(index)
                self.acme_acked.pop(index, None)
                # Its writer is gone: what it published (queued, in flight, connections) with it.
                scoreboard.zero_column(self.scoreboard, index)
                self._fail_waiters(index)
                self._acme_progress()
                self._execute(self.sup.front_exited(code, pid, now, index))
        elif kind == "worker_exit":
            _, wid, code = item
            self.workers.pop(wid, None)
            self.slots.release_worker(wid)
            self._execute(self.sup.worker_exited(wid, code, now))
        elif kind == "not_started":
            self.workers.pop(item[1], None)
            self.slots.release_worker(item[1])
            self._execute(self.sup.worker_not_started(item[1], now, item[2], item[3]))
        elif kind == "service_demand":
            self._execute(self.sup.front_demand(item[1], now))
        elif kind == "acme":
            self.certificates.handle(item)
        elif kind == "code_changed":
            self._code_changed(item[1], item[2], now)
        elif kind == "files_changed":
            self._code_changed(item[1], item[2], now, event_id=9023)
        elif kind == "code_watch_limit":
            self.stderr.write(f"wasp: --reload watches only the first {item[2]} Python files of "
                              f"application pool '{item[1]}'\n")
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

    def _code_changed(self, pool: str, files: list[str], now: float, event_id: int = 9022) -> None:
        shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
        try:
            self._execute(self.sup.recycle_pool(pool, now, event_id=event_id, files=shown))
        except CommandError:
            pass  # stopped, starting or shutting down: its next workers load the new code anyway

    def _on_signal(self, signum: int, now: float) -> None:
        if signum == signal.SIGHUP:
            self.reload(now)
            return
        if signum == signal.SIGUSR2:
            self.upgrade_signal()
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

    # ------------------------------------------------------------------ processes
    @staticmethod
    def _close_fds(fds: list[int]) -> None:
        for fd in fds:  # nobody sends the manager descriptors; don't leak ones that arrive
            try:
                os.close(fd)
            except OSError:
                pass

    # ------------------------------------------------------------------ messages
    def _on_front_message(self, index: int, message: dict, now: float) -> None:
        op = message.get("op")
        if op == "demand":
            self._execute(self.sup.front_demand(str(message.get("pool", "")), now))
        elif op == "acme_ack":
            self.acme_acked[index] = max(self.acme_acked.get(index, 0), int(message.get("id") or 0))
            self._acme_progress()
        elif op == "pong":
            self.sup.front_pong(now, index)
            self.front_stats[index] = message
            self._resolve(message)
            if self.notifier.active:
                self.request_rate.update(now, self.front_stats)
                self.notifier.send(STATUS=self._status())
        elif op == "requests" or op == "cache":
            self._resolve(message)
        elif op == "metrics":
            self.front_totals.answered(index, message)
            self._resolve(message)
        elif op == "metrics_scrape":
            task = self.loop.create_task(self.answer_scrape(index, message.get("id")))
            self._scrape_tasks.add(task)
            task.add_done_callback(self._scrape_tasks.discard)

    def _acme_progress(self) -> None:
        """An `acme` message is in force once every running front has acknowledged it (or a
        later one): only then may the CA validate."""
        if self.fronts:
            self.certificates.acked(min(self.acme_acked.get(i, 0) for i in self.fronts))

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
        elif op == "requests" or op == "stacks":
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
        if self.notifier.active and self.notifier.ready_sent and not self.sup.shutting_down:
            self.notifier.reloading()
            try:
                return self._reload(now)
            finally:
                self.notifier.ready(self._status())
        return self._reload(now)

    def _reload(self, now: float) -> list[str]:
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
        if front_count(new, self.cpu_count) != self.front_count:
            return self._reject([f"server.front_processes: the server runs {self.front_count} "
                                 f"front process{'es' if self.front_count != 1 else ''}; a reload "
                                 "cannot change that: restart the server (the running "
                                 "configuration keeps serving)"])
        slots = copy.deepcopy(self.slots)  # taken only once the reload is certain
        try:
            slot_map = slots.configure([p.name for p in new.pools], [s.id for s in new.sites])
        except scoreboard.ScoreboardError as exc:
            return self._reject([str(exc)])
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
        try:
            service_plan = self._services_reconfigure(new)
        except (listeners.BindError, ValueError) as exc:
            # A tcp pool's port cannot be bound: put the HTTP listeners back as they were.
            try:
                self.listeners.apply(listeners.plan(sites.effective(self.config, self.site_overrides)))
            except (listeners.BindError, ValueError) as again:
                self.stderr.write(f"wasp: the previous listeners could not be restored: {again}\n")
            return self._reject([str(exc)])
        self.service_plan = service_plan
        self.site_overrides = overrides
        self.slots, self.slot_map = slots, slot_map
        if new.server.run_dir != self.config.server.run_dir or new.server.log_dir != self.config.server.log_dir:
            self.stderr.write("wasp: server.run_dir and server.log_dir changes take effect at the "
                              "next start\n")
        old = self.config
        self.config = new
        self.config_bytes = encode(sites.effective(new, overrides))
        self.certificates.apply(sites.effective(new, overrides))
        self.isolation.forget()
        message, fds = self._config_message()
        self._send_fronts(message, fds)
        self._execute(self.sup.reconfigure(new, changed_pools(old, new), now, time.time()))
        self.events.write(9004, data={"source": self.config_file})
        if self.code_watcher is not None:
            self.code_watcher.watch(pool_roots(new, self.config_file))
        self.file_watcher.watch(watched(new))
        return []

    def _reject(self, problems: list[str]) -> list[str]:
        for problem in problems:
            self.stderr.write(f"config reload rejected: {problem}\n")
        self.events.write(9005, data={"problems": "; ".join(problems)})
        return problems


# ---------------------------------------------------------------------- start-up

def serve(config: Config, config_file: str | None = None, stderr: TextIO | None = None,
          reload_code: bool = False) -> int:
    """Run the server until it is stopped. Returns the exit code: 0, or 1 when it cannot start."""
    # systemd's variables are for this process only: taken before any child is started.
    under_systemd = systemd.take_environment()
    if stderr is None:
        journal.install()
    stderr = stderr or sys.stderr
    run_dir = os.path.abspath(config.server.run_dir)
    log_dir = os.path.abspath(config.server.log_dir)
    listener_set = listeners.ListenerSet()
    service_set = listeners.ListenerSet()
    try:
        prepare_dirs(run_dir, log_dir, os.getppid() if upgrade_mod.child().active else None)
        planned = listeners.plan(config)
        if under_systemd.listen_fds:
            _adopt(config, planned, listener_set, under_systemd, stderr, service_set)
        listener_set.apply(planned)
        service_set.apply([a for pool in service_config.plan(config).values() for a in pool])
    except (StartupError, rundir.RunDirError, listeners.BindError, OSError, ValueError) as exc:
        listener_set.close()
        service_set.close()
        stderr.write(f"wasp: {exc}\n")
        return 1
    admin_path = os.path.join(run_dir, "admin.sock")
    if len(admin_path.encode()) > 100:
        listener_set.close()
        stderr.write(f"wasp: the admin socket path is too long for a Unix socket: {admin_path}\n")
        return 1
    if not upgrade_mod.child().active:  # a new generation writes it once it is ready
        with open(os.path.join(run_dir, "wasp.pid"), "w") as f:
            f.write(f"{os.getpid()}\n")
    set_title(f"wasp: manager {config_file or ''}".rstrip())
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run

    async def main() -> int:
        notifier = systemd.Notifier(under_systemd)
        notifier.socket_text = under_systemd.notify_socket  # for a new generation (upgrade.py)
        manager = Manager(config, config_file, listener_set, run_dir, log_dir, stderr,
                          reload_code=reload_code, notifier=notifier,
                          service_listeners=service_set)
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
        service_set.close()


def _adopt(config: Config, planned: list, listener_set: listeners.ListenerSet,
           env: systemd.SystemdEnvironment, stderr: TextIO,
           service_set: listeners.ListenerSet | None = None) -> None:
    """Socket activation: hand the sockets systemd passed to the addresses they serve. A tcp
    pool's socket an upgrading manager handed over (named upgrade-tcp) goes to the pool's
    address it was bound for, so the new generation's service keeps the same socket (and its
    backlog) instead of failing to bind a port the old one still holds."""
    taken, problems = activation.inherit(env.listen_fds, env.listen_fdnames)
    if service_set is not None:
        wanted = {a for pool in service_config.plan(config).values() for a in pool}
        services = {}
        for item, sock in list(taken):
            if item.name == upgrade_mod.SERVICE_NAME:
                taken.remove((item, sock))
                if item.address in wanted:
                    services[item.address] = sock
                else:
                    problems.append(f"upgrade: the tcp socket on {item.address} serves no tcp pool "
                                    "of this config; closed")
                    sock.close()
        service_set.adopt(services)
    matched, unused = activation.match(config, planned, [item for item, _ in taken])
    listener_set.adopt({address: taken[i][1] for address, i in matched.items()})
    def where(address) -> str:
        return address[0] if address[0].startswith("unix:") else f"{address[0]}:{address[1]}"

    for item in unused:
        problems.append(f"socket activation: the socket on {where(item.address)} ({item.name or 'unnamed'}) "
                        "matches no binding of a started site; closed")
    for item, sock in taken:
        if item in unused:
            sock.close()
    for line in problems:
        stderr.write(f"wasp: {line}\n")
    for address, i in matched.items():
        item = taken[i][0]
        stderr.write(f"wasp: socket activation: {where(address)} is served from "
                     f"systemd's socket {item.name or 'unnamed'} (descriptor {item.fd})\n")
