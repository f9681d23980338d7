"""The manager's hands: it carries out the actions the supervisor returns (`actions.py`).

`Executor` is a mixin of `Manager` (main.py): one `_do_<Action>` method per action type, found by
name, each turning a decision into I/O on the manager's processes, channels and event log. A
spawn that fails is fed back into the queue as an input ("front_exit", "not_started"), never
decided here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import socket
from typing import TYPE_CHECKING, TextIO

from wasp.common import clientboard
from wasp.common.channel import ControlChannel
from wasp.common.scoreboard import SlotTable
from wasp.manager import actions as A
from wasp.manager import spawn
from wasp.manager.processes import Child

log = logging.getLogger("wasp.manager")

if TYPE_CHECKING:
    from wasp.config.model import Config
    from wasp.manager.certificates import Certificates
    from wasp.manager.events import EventLog
    from wasp.manager.isolation import Isolation
    from wasp.manager.listeners import ListenerSet
    from wasp.manager.processes import PassedFds, Reaper
    from wasp.manager.supervisor import Supervisor


class Executor:
    """`Manager`'s action executors; the attributes below are the manager's (main.py)."""

    config: Config
    config_bytes: bytes
    sup: Supervisor
    events: EventLog
    stderr: TextIO
    listeners: ListenerSet
    isolation: Isolation
    certificates: Certificates
    queue: asyncio.Queue
    loop: asyncio.AbstractEventLoop
    reaper: Reaper
    passed_fds: PassedFds
    fronts: dict[int, Child]
    front_generations: dict[int, int]
    front_generation: int
    front_stats: dict[int, dict]
    front_count: int
    scoreboard_fd: int
    slots: SlotTable
    slot_map: dict
    workers: dict[int, Child]
    _exit: bool

    def _execute(self, actions: list) -> None:
        observe = self.metric_counters.observe   # APP_POOL_WAS counters (metrics.py)
        for action in actions:
            observe(action)
            method = getattr(self, "_do_" + type(action).__name__)
            method(action)
        self.passed_fds.release()
        self._sync_services()

    def _do_Event(self, a: A.Event) -> None:
        self.events.write(a.event_id, a.pool, a.pid, a.data)

    def _do_Exit(self, a: A.Exit) -> None:
        self._exit = True

    # ---- the fronts ----
    def _config_message(self) -> tuple[dict, list[int]]:
        """`config` for a front: the config, the listening sockets, the scoreboard slots."""
        names, fds = self.listeners.ordered()
        return {"op": "config", "config": self.config_bytes, "listeners": names,
                "slots": self.slot_map}, fds

    def _send_fronts(self, message: dict, fds: list[int] | None = None) -> list[int]:
        """Send every running front `message`; returns their indices."""
        sent = []
        for index, child in list(self.fronts.items()):
            child.channel.send(message, fds or [])
            sent.append(index)
        return sent

    def _do_SpawnFront(self, a: A.SpawnFront) -> None:
        index = a.index
        message, fds = self._config_message()
        self.front_generation += 1
        generation = self.front_generation
        try:
            proc, sock = spawn.spawn_front(fds, index, self.front_count, self.scoreboard_fd)
        except OSError as exc:
            self.stderr.write(f"wasp: cannot start front {index}: {exc}\n")
            self.front_generations[index] = generation
            self.queue.put_nowait(("front_exit", index, generation, 0, -1))
            return
        self.front_generations[index] = generation
        channel = ControlChannel(
            sock, lambda m, f: self.queue.put_nowait(("front", index, generation, m, f)),
            lambda: None, self.loop)
        self.fronts[index] = child = Child(proc, channel)
        self.reaper.watch(child, lambda code: ("front_exit", index, generation, proc.pid, code))
        self.front_stats.pop(index, None)
        channel.send(message, fds)
        if self.certificates.hosts:
            channel.send(self.certificates.front_message())  # the challenges pending, if any

    def _do_StopFront(self, a: A.StopFront) -> None:
        child = self.fronts.get(a.index)
        if child is not None:
            child.channel.send({"op": "stop", "handover": a.handover} if a.handover else {"op": "stop"})

    def _do_KillFront(self, a: A.KillFront) -> None:
        child = self.fronts.get(a.index)
        if child is not None:
            child.kill()

    def _do_PingFront(self, a: A.PingFront) -> None:
        child = self.fronts.get(a.index)
        if child is not None:
            child.channel.send({"op": "ping", "id": a.ping_id})

    def _do_SetPoolState(self, a: A.SetPoolState) -> None:
        message = {"op": "pool_state", "pool": a.pool, "state": a.state, "reason": a.reason}
        if a.front is None:
            self._send_fronts(message)
        elif a.front in self.fronts:
            self.fronts[a.front].channel.send(message)

    def _do_PoolUnhosted(self, a: A.PoolUnhosted) -> None:
        self._send_fronts({"op": "pool_unhosted", "pool": a.pool, "reason": a.reason})

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
            if settings is not None:
                self.isolation.prepare_compression(self.config, settings, account)
            proc, sock = spawn.spawn_worker(a.worker_id, a.pool, variables,
                                            python=getattr(settings, "python", "") or None,
                                            account=account,
                                            virtualenv=getattr(settings, "virtualenv", "") or None,
                                            service=self.is_service_pool(a.pool))
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
        if self.is_service_pool(a.pool):
            # A tcp pool's worker gets the listening sockets and accepts on them (services.py).
            channel.send({"op": "init", "config": self.config_bytes, "pool": a.pool,
                          "listeners": len(self.service_fds(a.pool))}, self.service_fds(a.pool))
            return
        board = self.client_board(a.pool, settings.max_processes if settings is not None else 1)
        channel.send({"op": "init", "config": self.config_bytes, "pool": a.pool,
                      "secret": self.pool_secret(a.pool)}, [board] if board is not None else [])

    def client_board(self, pool: str, max_processes: int) -> int | None:
        """The pool's shared dynamic-IP counters (wasp/common/clientboard.py): a memfd made once
        per manager run (again only when a reload gave the pool more workers than it has
        columns for), passed to each of its workers in `init`."""
        columns = clientboard.columns_for(max_processes)
        found = self.client_boards.get(pool)
        if found is not None and found[1] >= columns:
            return found[0]
        try:
            fd = clientboard.create(columns)
        except OSError as exc:
            log.warning("pool %s: no shared client counters (%s): dynamic_ip_security counts per "
                        "worker", pool, exc)
            return None
        if found is not None:
            os.close(found[0])
        self.client_boards[pool] = (fd, columns)
        return fd

    def pool_secret(self, pool: str) -> bytes:
        """The pool's secret: made once per manager run, the same for every worker of the pool
        and for the workers that replace them (the HMAC key of Digest nonces). It goes over the
        control socketpair, never the environment (which children, CGI among them, inherit)."""
        secret = self.pool_secrets.get(pool)
        if secret is None:
            secret = self.pool_secrets[pool] = os.urandom(32)
        return secret

    def _spawn_failed(self, a: A.SpawnWorker, error: str, permanent: bool = False) -> None:
        # One event that says why; no 5009 for a process that never ran (it would have pid 0).
        self.events.write(9012, a.pool, data={"error": error})
        self.queue.put_nowait(("not_started", a.worker_id, permanent, error))

    def _do_AttachWorker(self, a: A.AttachWorker) -> None:
        """One data channel per (worker, front index): the worker's `attach` names the front,
        and replaces only that front's older channel."""
        worker = self.workers.get(a.worker_id)
        rec = self.sup.workers.get(a.worker_id)
        if worker is None or rec is None or self.is_service_pool(rec.pool):
            return  # a tcp pool's worker takes its connections from its own listening sockets
        # A front that starts later gets every ready worker then.
        targets = list(self.fronts) if a.front is None else [a.front] if a.front in self.fronts else []
        slot = self.slots.worker(a.worker_id)
        for index in targets:
            front = self.fronts[index]
            ours_w, ours_f = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            worker.channel.send({"op": "attach", "front": index}, [ours_w.fileno()])
            front.channel.send({"op": "worker_add", "pool": rec.pool, "worker_id": a.worker_id,
                                "pid": worker.pid, "slot": slot}, [ours_f.fileno()])
            self.passed_fds.hold(worker.channel, [ours_w])
            self.passed_fds.hold(front.channel, [ours_f])

    def _drain_in_fronts(self, worker_id: int) -> None:
        """Tell the fronts to send the worker nothing more (a tcp pool's worker has no fronts)."""
        rec = self.sup.workers.get(worker_id)
        if not (rec is not None and self.is_service_pool(rec.pool)):
            self._send_fronts({"op": "worker_drain", "worker_id": worker_id})

    def _do_StopWorker(self, a: A.StopWorker) -> None:
        if a.drain:
            self._drain_in_fronts(a.worker_id)
        worker = self.workers.get(a.worker_id)
        if worker is not None:
            worker.channel.send({"op": "stop"})

    def _do_KillWorker(self, a: A.KillWorker) -> None:
        worker = self.workers.get(a.worker_id)
        if worker is None:
            return
        # The fronts hear first, so a request that arrives between the decision and the death
        # waits for the replacement instead of going to a worker that is about to be killed.
        self._drain_in_fronts(a.worker_id)
        worker.kill()

    def _do_OrphanWorker(self, a: A.OrphanWorker) -> None:
        worker = self.workers.pop(a.worker_id, None)
        self.slots.release_worker(a.worker_id)
        self._send_fronts({"op": "worker_drain", "worker_id": a.worker_id})
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


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
