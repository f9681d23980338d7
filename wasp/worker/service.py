"""A tcp pool's worker (WAS's listener adapters, docs/services.md): it runs a non-HTTP service
on the listening sockets the manager hands it in `init`.

`service.app` is one of three forms, detected (`service.kind = "auto"`) or declared:

* `protocol`: an asyncio protocol factory (a Protocol class, or a function of no arguments);
  each connection gets `loop.connect_accepted_socket(factory, sock)`.
* `stream`: `async def handler(reader, writer)`, as `asyncio.start_server` takes.
* `socket`: `def handler(sock, address)`, run on one of `pool.threads` threads per connection
  with a blocking socket; a connection waits in the kernel's backlog while every thread is busy.

The protocol and stream forms hold at most `pool.max_concurrent_requests` connections open at
once; past it (or past `threads` for the socket form) the worker accepts nothing more until one
closes, so a flood of connections waits in the kernel's backlog instead of exhausting the worker.

Life: `init` -> import the app (a failure is `load_failed` + exit 4, as for HTTP pools) -> `ready`
-> accept. `ping` is answered from the event loop with `served` (connections accepted),
`inflight` (connections open) and `idle_s` (seconds since the last one closed, 0 while one is
open), which is what the supervisor's idle timeout and recycling read. `stop` (recycle, idle,
shutdown) closes this worker's copies of the listening sockets at once, so new connections go to
the new worker, and exits when its open connections have closed (the manager kills it at
shutdown_time_limit). EOF on the control channel does the same.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import socket
import threading
import time
import traceback
import types

from wasp.common.channel import ControlChannel
from wasp.config import model
from wasp.worker.application import import_callable

log = logging.getLogger("wasp.worker.service")

EXIT_OK = 0
EXIT_LOAD_FAILED = 4


def detect_kind(obj, declared: str = "auto") -> str:
    """"protocol", "stream" or "socket" for `obj`; ValueError when it fits none (or not the
    declared one)."""
    if declared != "auto":
        if not callable(obj):
            raise ValueError(f"the service app is a {type(obj).__name__}, not a callable")
        return declared
    if isinstance(obj, type):
        if issubclass(obj, asyncio.BaseProtocol):
            return "protocol"
        raise ValueError(f"class {obj.__name__} is not an asyncio protocol (asyncio.Protocol)")
    if not callable(obj):
        raise ValueError(f"the service app is a {type(obj).__name__}, not a callable")
    target = obj if inspect.isfunction(obj) or inspect.ismethod(obj) else getattr(obj, "__call__", obj)
    if inspect.iscoroutinefunction(target):
        return "stream"
    try:
        params = [p for p in inspect.signature(obj).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    except (TypeError, ValueError):
        return "protocol"
    if not params:
        return "protocol"
    if len(params) == 2:
        return "socket"
    raise ValueError(f"cannot tell how to call {getattr(obj, '__name__', obj)!r}: a protocol factory "
                     "takes no argument, a socket handler two (sock, address), a streams handler "
                     "is async def (reader, writer); or set service.kind")


class _Counted(asyncio.Protocol):
    """Wraps the app's protocol to count the connection's end."""

    def __init__(self, inner: asyncio.BaseProtocol, on_close):
        self.inner = inner
        self.on_close = on_close

    def connection_made(self, transport):
        self.inner.connection_made(transport)

    def data_received(self, data):
        self.inner.data_received(data)

    def eof_received(self):
        return self.inner.eof_received() if hasattr(self.inner, "eof_received") else None

    def pause_writing(self):
        self.inner.pause_writing()

    def resume_writing(self):
        self.inner.resume_writing()

    def connection_lost(self, exc):
        try:
            self.inner.connection_lost(exc)
        finally:
            self.on_close()


class _CountedBuffered(_Counted, asyncio.BufferedProtocol):
    def get_buffer(self, sizehint):
        return self.inner.get_buffer(sizehint)

    def buffer_updated(self, nbytes):
        self.inner.buffer_updated(nbytes)


class ServiceWorker:
    def __init__(self, worker_id: int, pool: str, control_sock: socket.socket):
        self.worker_id = worker_id
        self.pool_name = pool
        self._control_sock = control_sock
        self.control: ControlChannel | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._exit: asyncio.Future | None = None
        self.listeners: list[socket.socket] = []
        self.accepting: list[asyncio.Task] = []
        self.app = None
        self.kind = ""
        self.threads: asyncio.Semaphore | None = None
        self.open = 0
        self.served = 0
        self.last = time.monotonic()
        self.state = "starting"
        self.stopping = False
        self.connections: set = set()   # transports / sockets open, closed at exit

    @property
    def stats(self) -> types.SimpleNamespace:
        """What main.py logs at exit, as it does for an HTTP worker."""
        return types.SimpleNamespace(served=self.served)

    async def run(self) -> int:
        self.loop = asyncio.get_running_loop()
        self._exit = self.loop.create_future()
        self.control = ControlChannel(self._control_sock, self._on_control, self._on_control_close)
        return await self._exit

    def request_stop(self) -> None:
        self.stopping = True
        if self.state in ("starting", "loading"):
            if self.state == "starting":
                self._finish(EXIT_OK)
            return
        self._stop_accepting()
        self._maybe_done()

    # ---- control ----
    def _on_control(self, message: dict, fds: list[int]) -> None:
        op = message.get("op")
        if op == "init" and self.state == "starting":
            self.state = "loading"
            self.listeners = [socket.socket(fileno=fd) for fd in fds]
            for sock in self.listeners:
                sock.setblocking(False)
            self._load(message)
        elif op == "ping":
            self.control.send({"op": "pong", "id": message.get("id"), "served": self.served,
                               "inflight": self.open, "idle_s": self._idle_s()})
        elif op == "stop":
            self.request_stop()
        else:
            for fd in fds:
                os.close(fd)

    def _on_control_close(self) -> None:
        self.request_stop()

    def _idle_s(self) -> float:
        return 0.0 if self.open else round(time.monotonic() - self.last, 3)

    # ---- load ----
    def _load(self, message: dict) -> None:
        try:
            config = model.decode(message["config"])
            pool = next((p for p in config.pools if p.name == (message.get("pool") or self.pool_name)), None)
            if pool is None or pool.protocol != "tcp":
                raise ValueError(f"pool {self.pool_name!r} is not a tcp pool of the configuration")
            os.environ.update(pool.environment_variables)
            self.app = import_callable(pool.service.app, pool.service.python_path)
            self.kind = detect_kind(self.app, pool.service.kind)
        except BaseException as exc:  # the app's import may raise anything, SystemExit included
            error = f"{type(exc).__name__}: {exc}"
            trace = traceback.format_exc()
            log.error("service load failed: %s\n%s", error, trace)
            self.control.send({"op": "load_failed", "error": error, "traceback": trace})
            self._finish(EXIT_LOAD_FAILED)
            return
        if not self.listeners:
            log.error("init came without listening sockets")
            self.control.send({"op": "load_failed", "error": "no listening socket from the manager",
                               "traceback": ""})
            self._finish(EXIT_LOAD_FAILED)
            return
        # Connections open at once: `threads` for a socket handler (a thread each), else
        # `max_concurrent_requests`; past it the next connections wait in the kernel's backlog.
        self.threads = asyncio.Semaphore(pool.threads if self.kind == "socket"
                                         else pool.max_concurrent_requests)
        self.state = "ready"
        if self.stopping:
            self._stop_accepting()
            self._maybe_done()
            return
        self.control.send({"op": "ready", "pid": os.getpid()})
        self.accepting = [self.loop.create_task(self._accept(sock)) for sock in self.listeners]
        log.info("ready: service %s (%s) on %d socket(s)", pool.service.app, self.kind, len(self.listeners))

    # ---- connections ----
    async def _accept(self, listener: socket.socket) -> None:
        loop = self.loop
        while not self.stopping:
            if self.threads is not None:
                await self.threads.acquire()  # a free slot (a thread, for a socket handler) first
                if self.stopping:
                    self.threads.release()
                    return
            try:
                conn, address = await loop.sock_accept(listener)
            except asyncio.CancelledError:
                if self.threads is not None:
                    self.threads.release()
                raise
            except OSError as exc:
                if self.threads is not None:
                    self.threads.release()
                if self.stopping:
                    return
                log.warning("accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            self.open += 1
            self.served += 1
            try:
                await self._serve(conn, address)
            except Exception:
                log.exception("service: the app failed on a new connection")
                conn.close()
                self._closed()

    async def _serve(self, conn: socket.socket, address) -> None:
        if self.kind == "protocol":
            inner = self.app()
            wrapper = (_CountedBuffered if isinstance(inner, asyncio.BufferedProtocol) else _Counted)(
                inner, self._closed)
            transport, _ = await self.loop.connect_accepted_socket(lambda: wrapper, conn)
            self.connections.add(transport)
        elif self.kind == "stream":
            reader, writer = await asyncio.open_connection(sock=conn)
            self.connections.add(writer)
            self.loop.create_task(self._run_stream(reader, writer))
        else:
            conn.setblocking(True)
            self.connections.add(conn)
            threading.Thread(target=self._run_socket, args=(conn, address), daemon=True,
                             name=f"service-{self.served}").start()

    async def _run_stream(self, reader, writer) -> None:
        try:
            await self.app(reader, writer)
        except Exception:
            log.exception("service: the streams handler failed")
        finally:
            writer.close()
            self.connections.discard(writer)
            self._closed()

    def _run_socket(self, conn: socket.socket, address) -> None:
        try:
            self.app(conn, address)
        except Exception:
            log.exception("service: the socket handler failed")
        finally:
            try:
                conn.close()
            except OSError:
                pass
            self.loop.call_soon_threadsafe(self._thread_done, conn)

    def _thread_done(self, conn) -> None:
        self.connections.discard(conn)
        self._closed()

    def _closed(self) -> None:
        if self.threads is not None:
            self.threads.release()
        self.open -= 1
        if not self.open:
            self.last = time.monotonic()
        self._maybe_done()

    # ---- stop ----
    def _stop_accepting(self) -> None:
        # Our copies only: the manager's (and the new worker's) stay open. Each is closed once
        # its accept task has really stopped waiting on it.
        tasks = dict(zip(self.listeners, self.accepting))
        for sock in self.listeners:
            task = tasks.get(sock)
            if task is None or task.done():
                sock.close()
            else:
                task.add_done_callback(lambda _t, s=sock: s.close())
                task.cancel()
        self.accepting = []
        self.listeners = []

    def _maybe_done(self) -> None:
        if self.stopping and self.state == "ready" and self.open <= 0:
            self._finish(EXIT_OK)

    def _finish(self, code: int) -> None:
        self.state = "exiting"
        if self._exit is not None and not self._exit.done():
            self._exit.set_result(code)
