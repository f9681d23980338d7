"""The FastCGI processes a worker runs (IIS's FastCGI process pool in w3wp), and connections to
external FastCGI servers.

A `ProcessPool` is one `fast_cgi` application (full_path + arguments and its settings). Its
processes start on demand, up to `max_instances`: wasp binds a Unix socket of its own in a
private directory (0700) and hands the listening socket to the process as its stdin, which is how
the FastCGI specification passes it (FCGI_LISTENSOCK_FILENO; php-cgi and every libfcgi
application take it so) and how IIS does with a named pipe. wasp then keeps one connection to
each process (FCGI_KEEP_CONN), one request at a time. A process is retired after
`instance_max_requests` requests, after `idle_timeout` without one, when `monitor_changes_to`
changed, or when anything went wrong during its request (a timeout, a protocol error, stderr with
TerminateProcess). Requests that find every process busy wait in a queue of `queue_length`
(503.4 past it). A process that exits or fails to start without wasp asking counts as a rapid
fail; more than `rapid_fails_per_minute` in a minute and the pool refuses requests (503) until
the oldest of them is a minute old.

`External` is an address (php-fpm): one connection per request, closed after it (as nginx does by
default), so an idle connection never holds one of the server's children; or, with
`keep_connections`, a bounded set of kept connections per worker (see the class).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import shlex
import signal
import socket
import subprocess
import tempfile
import time

from wasp.errors import HttpError, ServiceUnavailable
from wasp.worker.fastcgi_conn import open_tcp, open_unix
from wasp.worker.procs import spawn_child

log = logging.getLogger("wasp.worker.fastcgi")


class QueueFull(ServiceUnavailable):
    substatus = 4  # IIS: FastCGI queue full


class RapidFails(ServiceUnavailable):
    substatus = 0


class FastCgiFailure(HttpError):
    """IIS's FastCgiModule errors are 500.0 with a message (exited unexpectedly, timeouts)."""

    status = 500
    reason = "Internal"


def auto_instances() -> int:
    return max(4, 2 * (os.cpu_count() or 1))


_socket_dir = None


def socket_dir() -> str:
    global _socket_dir
    if _socket_dir is None or not os.path.isdir(_socket_dir):
        _socket_dir = tempfile.mkdtemp(prefix=f"wasp-fcgi-{os.getpid()}-")
        os.chmod(_socket_dir, 0o700)
    return _socket_dir


class Instance:
    __slots__ = ("pool", "number", "proc", "path", "conn", "served", "last_used",
                 "retiring", "closed", "request_id", "killed", "counted")

    def __init__(self, pool, number: int):
        self.pool = pool
        self.number = number
        self.proc = None
        self.path = ""
        self.conn = None
        self.served = 0
        self.last_used = time.monotonic()
        self.retiring = False
        self.closed = False
        self.request_id = 0
        self.killed = False      # wasp signalled it: its exit is no failure
        self.counted = False     # its failure was counted (once per process)

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    async def start(self) -> None:
        pool = self.pool
        self.path = os.path.join(socket_dir(), f"{id(pool) & 0xffffff:x}-{self.number}.sock")
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self.path)
            listener.listen(16)
            self.proc = await spawn_child(pool.argv, env=pool.env, cwd=pool.cwd, stdin=listener,
                                          stdout=subprocess.DEVNULL, stderr=None)
        finally:
            listener.close()
        asyncio.ensure_future(self._watch())
        # The listen backlog takes the connection even before the process reached accept().
        self.conn = await open_unix(self.path)

    async def _watch(self) -> None:
        code = await self.proc.wait()
        if not self.killed:
            log.warning("FastCGI process %d of %s exited unexpectedly (status %s)", self.pid,
                        self.pool.name, code)
            self.fail()
            self.close()

    def fail(self) -> None:
        """The process died under wasp (or never served): one rapid fail per process."""
        if not self.counted:
            self.counted = True
            self.pool.failed()

    def next_id(self) -> int:
        self.request_id = self.request_id % 0xFFFF + 1
        return self.request_id

    def close(self) -> None:
        """Retire: kill the process (SIGTERM first when signal_before_terminate_seconds)."""
        if self.closed:
            return
        self.closed = True
        self.pool.forget(self)
        if self.conn is not None:
            self.conn.close()
        proc = self.proc
        if proc is not None and proc.returncode is None:
            self.killed = True
            grace = self.pool.settings.signal_before_terminate_seconds
            try:
                os.killpg(proc.pid, signal.SIGTERM if grace else signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if grace:
                asyncio.get_running_loop().call_later(grace, _kill_group, proc)
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def kill_now(self) -> None:
        self.closed = self.killed = True
        if self.proc is not None and self.proc.returncode is None:
            _kill_group(self.proc)
        try:
            os.unlink(self.path)
        except OSError:
            pass


def _kill_group(proc) -> None:
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class ProcessPool:
    def __init__(self, settings, cwd: str | None = None):
        self.settings = settings
        self.name = settings.full_path + (("|" + settings.arguments) if settings.arguments else "")
        self.argv = [settings.full_path, *shlex.split(settings.arguments)]
        env = dict(os.environ)
        env.setdefault("PHP_FCGI_CHILDREN", "0")  # php-cgi serves on its own, no forks
        # php-cgi exits by itself after this many; one more than wasp recycles at, so it never
        # exits under a request (an exit wasp did not ask for counts as a rapid fail)
        env["PHP_FCGI_MAX_REQUESTS"] = str(settings.instance_max_requests + 1)
        for var in settings.environment_variables:
            env[var.name] = var.value
        self.env = env
        self.cwd = cwd
        self.limit = settings.max_instances or auto_instances()
        self.instances: set[Instance] = set()
        self.idle: list[Instance] = []
        self.waiters: collections.deque = collections.deque()
        self.fails: collections.deque = collections.deque()
        self.starting = 0
        self.numbers = 0
        self._reaper = None
        self._watched = None
        self._watch_checked = 0.0

    # ---- rapid-fail protection ----
    def failed(self) -> None:
        now = time.monotonic()
        self.fails.append(now)
        self._expire_fails(now)
        if len(self.fails) > self.settings.rapid_fails_per_minute:
            log.error("FastCGI application %s failed %d times in a minute: refusing requests",
                      self.name, len(self.fails))

    def _expire_fails(self, now: float) -> None:
        while self.fails and now - self.fails[0] >= 60:
            self.fails.popleft()

    def tripped(self) -> bool:
        if not self.fails:
            return False
        self._expire_fails(time.monotonic())
        return len(self.fails) > self.settings.rapid_fails_per_minute

    # ---- instances ----
    def forget(self, inst: Instance) -> None:
        self.instances.discard(inst)
        if inst in self.idle:
            self.idle.remove(inst)
        self._wake_one()

    def _wake_one(self) -> None:
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def _check_monitor(self) -> None:
        path = self.settings.monitor_changes_to
        if not path:
            return
        now = time.monotonic()
        if now - self._watch_checked < 1.0:
            return
        self._watch_checked = now
        try:
            st = os.stat(path)
            mark = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            mark = None
        if self._watched is None:
            self._watched = (mark,)
        elif self._watched != (mark,):
            self._watched = (mark,)
            log.info("%s changed: recycling the processes of %s", path, self.name)
            for inst in list(self.instances):
                if inst in self.idle:
                    inst.close()
                else:
                    inst.retiring = True

    async def acquire(self, deadline: float) -> Instance:
        if self.tripped():
            raise RapidFails(f"FastCGI application {self.name} is failing rapidly")
        self._check_monitor()
        loop = asyncio.get_running_loop()
        while True:
            while self.idle:
                inst = self.idle.pop()
                if not inst.closed:
                    return inst
            if len(self.instances) + self.starting < self.limit:
                return await self._start()
            if len(self.waiters) >= self.settings.queue_length:
                raise QueueFull(f"the queue of FastCGI application {self.name} is full")
            fut = loop.create_future()
            self.waiters.append(fut)
            try:
                await asyncio.wait_for(fut, max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise FastCgiFailure("the request waited for a FastCGI process past request_timeout") from None
            finally:
                _forget(self.waiters, fut)
            if self.tripped():
                raise RapidFails(f"FastCGI application {self.name} is failing rapidly")

    async def _start(self) -> Instance:
        self.numbers += 1
        inst = Instance(self, self.numbers)
        self.starting += 1
        try:
            await inst.start()
        except OSError as exc:
            inst.fail()
            inst.kill_now()
            raise FastCgiFailure(f"the FastCGI process {self.name} could not start: {exc}") from None
        finally:
            self.starting -= 1
        self.instances.add(inst)
        if self._reaper is None:
            self._reaper = asyncio.ensure_future(self._reap())
        return inst

    def release(self, inst: Instance, healthy: bool) -> None:
        inst.served += 1
        inst.last_used = time.monotonic()
        if not healthy or inst.retiring or inst.closed \
                or inst.served >= self.settings.instance_max_requests:
            inst.close()
            return
        self.idle.append(inst)
        self._wake_one()

    async def _reap(self) -> None:
        """Stop processes idle for idle_timeout (checked a few times per timeout)."""
        timeout = float(self.settings.idle_timeout)
        try:
            while True:
                await asyncio.sleep(min(max(timeout / 4, 1.0), 30.0))
                now = time.monotonic()
                for inst in list(self.idle):
                    if now - inst.last_used >= timeout:
                        log.info("FastCGI process %d of %s idle for %gs: stopped", inst.pid, self.name, timeout)
                        inst.close()
        except asyncio.CancelledError:
            pass

    def shutdown(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for inst in list(self.instances):
            inst.kill_now()
        self.instances.clear()
        self.idle.clear()

    def pids(self) -> list[int]:
        return sorted(inst.pid for inst in self.instances)


class External:
    """An external FastCGI server: "unix:/path", "host:port", "[v6]:port".

    With `keep_connections` 0 every request opens its own connection and closes it after (nginx's
    default). With N > 0 the worker keeps its connections (FCGI_KEEP_CONN) and never has more than
    N open to the server, busy or idle: a request that finds all N busy waits for one (at most
    `queue_length` wait: 503.4) instead of opening another. A php-fpm child serves one connection
    until it closes, so an extra connection past the children that kept ones hold would wait in
    the listen backlog until an idle one timed out; with workers x N <= pm.max_children it never
    does. An idle connection is closed after `idle_timeout`, and dropped as soon as the server
    closes it (php-fpm does when a child reaches pm.max_requests)."""

    def __init__(self, address: str, settings):
        self.address = address
        self.settings = settings
        self.name = address
        self.keep = settings.keep_connections
        self.idle: collections.deque = collections.deque()   # (conn, last used), oldest first
        self.open = 0            # connections counted against keep (idle and busy)
        self.waiters: collections.deque = collections.deque()
        self.reused = 0          # requests sent on a kept connection (tests, diagnostics)
        self._reaper = None

    async def connect(self):
        address = self.address
        if address.startswith("unix:"):
            return await open_unix(address[5:])
        host, _colon, port = address.rpartition(":")
        return await open_tcp(host.strip("[]"), int(port))

    def take_idle(self):
        """An idle kept connection still open, or None."""
        idle = self.idle
        while idle:
            conn, _used = idle.pop()     # the most recent: the likeliest still open
            if not conn.closed and not conn.eof:
                self.reused += 1
                return conn
            conn.close()
            self.open -= 1
        return None

    async def acquire(self, deadline: float, fresh: bool = False):
        """-> (connection, reused): an idle kept connection (unless `fresh`), else a new one
        within the bound."""
        if not self.keep:
            return await self.connect(), False
        conn = None if fresh else self.take_idle()
        if conn is not None:
            return conn, True
        loop = asyncio.get_running_loop()
        while self.open >= self.keep:
            if len(self.waiters) >= self.settings.queue_length:
                raise QueueFull(f"the queue of FastCGI server {self.name} is full")
            fut = loop.create_future()
            self.waiters.append(fut)
            try:
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    conn = await fut
            except asyncio.TimeoutError:
                raise FastCgiFailure("the request waited for a connection to the FastCGI server "
                                     f"{self.name} past request_timeout") from None
            finally:
                _forget(self.waiters, fut)
            if conn is not None:          # handed over by release
                if not fresh and not conn.closed and not conn.eof:
                    self.reused += 1
                    return conn, True
                conn.close()
                self.open -= 1
        self.open += 1
        try:
            conn = await self.connect()
        except BaseException:
            self.open -= 1
            self._wake(None)
            raise
        return conn, False

    def release(self, conn, reusable: bool) -> None:
        if not self.keep:
            conn.close()
            return
        if not reusable or conn.closed or conn.eof:
            conn.close()
            self.open -= 1
            self._wake(None)
            return
        if self._wake(conn):
            return
        self.idle.append((conn, time.monotonic()))
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().call_later(
                min(max(float(self.settings.idle_timeout) / 4, 1.0), 30.0), self._reap)

    def _wake(self, conn) -> bool:
        """Hand `conn` (or, for None, a free place under the bound) to the oldest waiter."""
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(conn)
                return True
        return False

    def _reap(self) -> None:
        self._reaper = None
        timeout = float(self.settings.idle_timeout)
        now = time.monotonic()
        idle = self.idle
        while idle and (now - idle[0][1] >= timeout or idle[0][0].closed or idle[0][0].eof):
            conn, _used = idle.popleft()
            conn.close()
            self.open -= 1
        if idle:
            self._reaper = asyncio.get_running_loop().call_later(
                min(max(timeout / 4, 1.0), 30.0), self._reap)

    def shutdown(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        while self.idle:
            self.idle.popleft()[0].close()


def _forget(waiters: collections.deque, fut) -> None:
    """Cancel a waiter that is still pending and take it out of `waiters`. One that `_wake` gave
    a result was popped already; asking the deque to remove it anyway would cost a ValueError
    whose message formats the future's repr (its callbacks, its task: ~3% of a worker's CPU on
    a PHP hello whose requests wait for a kept connection)."""
    if not fut.done():
        fut.cancel()
    if fut.cancelled() and fut in waiters:   # `in` compares by identity for futures: no repr
        waiters.remove(fut)


def is_address(value: str) -> bool:
    if value.startswith("unix:"):
        return True
    host, colon, port = value.rpartition(":")
    return bool(colon and host and port.isdigit() and "/" not in host)


#: Every process pool of this worker, by its settings (shared by its applications).
POOLS: dict = {}


def pool_for(settings, cwd: str | None = None) -> ProcessPool:
    key = (settings.full_path, settings.arguments, repr(settings))
    pool = POOLS.get(key)
    if pool is None:
        pool = POOLS[key] = ProcessPool(settings, cwd)
    return pool


def shutdown_all() -> None:
    for pool in list(POOLS.values()):
        pool.shutdown()
    POOLS.clear()
