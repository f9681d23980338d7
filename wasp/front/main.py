"""The front process (IIS's HTTP.sys): `python -m wasp.front --control-fd N --listen-fds A,B,...
[--front-index I --front-count N] [--scoreboard-fd S]`.

With `front_processes = N` the manager runs N of these on the same listening sockets (a shared
accept: each front accepts from the same descriptors), each with its index (its scoreboard column)
and the scoreboard memfd (wasp/common/scoreboard.py).

It serves on the listening sockets the manager bound, answers the manager's control messages
(docs/internals.md), and talks to workers over the data channels the manager hands it. SIGTERM is
a graceful stop, SIGINT is ignored (the manager decides), and a closed control channel (the
manager died) ends the process.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import logging
import mmap
import os
import signal
import socket
import sys
import traceback

import hpack.hpack

from wasp.common import journal
from wasp.common.channel import ControlChannel
from wasp.common.scoreboard import Scoreboard, ScoreboardError
from wasp.config import model
from wasp.config.model import UNIX_PREFIX
from wasp.front.accept import ACCEPT_BATCH, SHARED_ACCEPT_BATCH, Acceptor
from wasp.front import metrics as front_metrics
from wasp.front.connection import HttpConnection
from wasp.front.challenges import pending_from_message
from wasp.front.server import Server
from wasp.front.tls import quiet_bad_server_names
from wasp.front.watch import FileWatcher
from wasp.front.workers import WorkerLink
from wasp.errors import HttpError
from wasp.wire.http import AppPoolUnavailable

BACKLOG = 2048
#: Longest a graceful stop waits for in-flight requests when no pool names a shutdown limit.
DEFAULT_STOP_LIMIT = 90.0

Address = tuple[str, int]


def _address(sock: socket.socket) -> Address:
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:  # a Unix socket binding: ("unix:/path", 0), as in the config
        return (UNIX_PREFIX + (name.decode("utf-8", "surrogateescape") if isinstance(name, bytes) else name), 0)
    return (str(name[0]), int(name[1]))


class Front:
    def __init__(self, loop: asyncio.AbstractEventLoop, control_fd: int, listen_fds: list[int],
                 board: Scoreboard | None = None):
        self.loop = loop
        self.board = board
        self.server: Server | None = None
        self.channel: ControlChannel | None = None
        self.stopping = False
        self._handover = False  # the stop hands the traffic to a new generation (wasp upgrade)
        self._control_fd = control_fd
        self._listen_fds = listen_fds
        self._inherited: dict[Address, socket.socket] = {}
        self._listeners: dict[Address, list] = {}   # address -> [socket, Acceptor | None, SSLContext | None]
        self._done: asyncio.Future = loop.create_future()
        self._tick_handle = None
        self._stop_deadline = 0.0
        self._handlers = {
            "config": self._on_config,
            "pool_state": self._on_pool_state,
            "pool_unhosted": self._on_pool_unhosted,
            "worker_add": self._on_worker_add,
            "worker_drain": self._on_worker_drain,
            "list_requests": self._on_list_requests,
            "list_cache": self._on_list_cache,
            "cache_flush": self._on_cache_flush,
            "stop": lambda msg, fds: self.begin_stop(bool(msg.get("handover"))),
            "ping": self._on_ping,
            "acme": self._on_acme,
            "metrics": self._on_metrics,
            "metrics_text": self._on_metrics_text,
        }

    # ---- lifecycle ----
    async def run(self) -> int:
        sock = socket.socket(fileno=self._control_fd)
        self.channel = ControlChannel(sock, self._on_message, self._on_control_closed, self.loop)
        for fd in self._listen_fds:
            try:
                listener = socket.socket(fileno=fd)
                self._inherited[_address(listener)] = listener
            except OSError as exc:
                print(f"wasp.front: listening descriptor {fd} is unusable: {exc}", file=sys.stderr)
        self.loop.add_signal_handler(signal.SIGTERM, self.begin_stop)
        self._tick_handle = self.loop.call_later(1.0, self._tick)
        code = await self._done
        self._shutdown()
        return code

    def begin_stop(self, handover: bool = False) -> None:
        if self.stopping:
            return
        self._handover = self._handover or handover
        server = self.server
        delay = float(server.config.server.shutdown_delay) if server is not None else 0.0
        if delay > 0 and not server.leaving:
            # Lame duck: health URLs say 503 while everything else is served as before.
            server.leaving = True
            self.loop.call_later(delay, self.begin_stop, handover)
            return
        self.stopping = True
        for address in list(self._listeners):
            self._unlisten(address)
        if server is None:
            self._finish(0)
            return
        limits = [float(p.process_model.shutdown_time_limit) for p in server.config.pools]
        self._stop_deadline = self.loop.time() + (max(limits) if limits else DEFAULT_STOP_LIMIT)
        server.stop(handover=self._handover)
        self._check_stopped()

    def _check_stopped(self) -> None:
        server = self.server
        if not server.connections or self.loop.time() >= self._stop_deadline:
            self._finish(0)

    def _finish(self, code: int) -> None:
        if not self._done.done():
            self._done.set_result(code)

    def _tick(self) -> None:
        self._tick_handle = self.loop.call_later(1.0, self._tick)
        server = self.server
        if server is not None:
            server.tick()
            if self.stopping:
                self._check_stopped()

    def _shutdown(self) -> None:
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        for address in list(self._listeners):
            self._unlisten(address)
        for sock in self._inherited.values():
            sock.close()
        self._inherited.clear()
        server = self.server
        if server is not None:
            for conn in list(server.connections):
                if conn.transport is not None:
                    conn.transport.close()
            for link in list(server.links.values()):
                link.close()
            server.close_logs()
            server.stop_tracing()
            if server.watcher is not None:
                server.watcher.close()
            for message in server.log_writer.errors:
                print(f"wasp.front: {message}", file=sys.stderr)
        if self.channel is not None:
            self.channel.close()

    # ---- control channel ----
    def _send(self, message: dict) -> None:
        if self.channel is not None:
            self.channel.send(message)

    def _on_control_closed(self) -> None:
        # The manager is gone: nobody supervises the workers or can restart us. Leave now.
        self._finish(0)

    def _on_message(self, message: dict, fds: list[int]) -> None:
        handler = self._handlers.get(message.get("op"))
        if handler is None:
            for fd in fds:
                os.close(fd)
            return
        try:
            handler(message, fds)
        except Exception as exc:  # a bad message must not take the front down
            print(f"wasp.front: control message {message.get('op')!r} failed: {exc!r}", file=sys.stderr)

    def _on_config(self, message: dict, fds: list[int]) -> None:
        config = model.decode(message["config"])
        slots = message.get("slots") if isinstance(message.get("slots"), dict) else None
        first = self.server is None
        if first:
            self.server = Server(self.loop, config, self._send, _report_notice, self.board, slots)
            self.server.on_fault = _report_fault
            self._watch_files(self.server)
        else:
            self.server.apply_config(config, slots)
        self._set_listeners(fds)
        if first:
            # What start-up made (modules, the first config's tables) lives as long as the process:
            # out of the cyclic GC's way, so no full collection walks it again.
            gc.collect()
            gc.freeze()

    def _on_pool_state(self, message: dict, fds: list[int]) -> None:
        server = self.server
        if server is None:
            return
        name = message["pool"]
        reason = message.get("reason") or ""
        pool = server.dispatcher.pools.get(name)
        for req in server.dispatcher.set_state(name, message["state"], reason):
            req.conn.reject(req, AppPoolUnavailable(pool.reason, close=pool.tcp_level))

    def _on_pool_unhosted(self, message: dict, fds: list[int]) -> None:
        server = self.server
        if server is None:
            return
        name = message["pool"]
        reason = message.get("reason") or "AppOffline"
        pool = server.dispatcher.pools.get(name)
        for req in server.dispatcher.unhosted(name, reason):
            req.conn.reject(req, AppPoolUnavailable(reason, close=pool.tcp_level))

    def _on_worker_add(self, message: dict, fds: list[int]) -> None:
        if not fds:
            return
        if self.server is None:
            for fd in fds:
                os.close(fd)
            return
        for fd in fds[1:]:
            os.close(fd)
        server = self.server
        worker_id = int(message["worker_id"])
        # A new worker may run new code or see other files: what the pool's workers answered
        # before is not served from the cache any more (IIS: a recycle flushes the pool's entries).
        server.cache.drop_pool(message["pool"])
        slot = message.get("slot")
        link = WorkerLink(server, message["pool"], worker_id, int(message.get("pid") or 0),
                          int(slot) if slot is not None else None)
        old = server.links.get(worker_id)
        if old is not None:
            old.close()
        server.links[worker_id] = link
        sock = socket.socket(fileno=fds[0])
        self.loop.create_task(self._connect(link, sock))

    async def _connect(self, link: WorkerLink, sock: socket.socket) -> None:
        try:
            await self.loop.create_unix_connection(lambda: link, sock=sock)
        except OSError as exc:
            print(f"wasp.front: data channel of worker {link.worker_id} failed: {exc}", file=sys.stderr)
            sock.close()
            if self.server is not None and self.server.links.get(link.worker_id) is link:
                del self.server.links[link.worker_id]

    def _on_worker_drain(self, message: dict, fds: list[int]) -> None:
        if self.server is not None:
            link = self.server.links.get(int(message["worker_id"]))
            if link is not None:
                link.drain()

    def _on_list_requests(self, message: dict, fds: list[int]) -> None:
        requests = self.server.requests() if self.server is not None else []
        self._send({"op": "requests", "id": message.get("id"), "requests": requests,
                    "front": self.server.front_index if self.server is not None else 0})

    def _on_list_cache(self, message: dict, fds: list[int]) -> None:
        entries = self.server.cache_rows() if self.server is not None else []
        self._send({"op": "cache", "id": message.get("id"), "entries": entries})

    def _on_cache_flush(self, message: dict, fds: list[int]) -> None:
        answer = {"op": "cache", "id": message.get("id")}
        try:
            answer["flushed"] = self.server.cache_flush(message.get("site") or None,
                                                        message.get("url") or None) if self.server else 0
        except (LookupError, ValueError, HttpError) as exc:
            answer["error"] = str(exc)
        self._send(answer)

    def _watch_files(self, server: Server) -> None:
        cache = server.cache
        watcher = FileWatcher(self.loop, cache.invalidate,
                              lambda wd: cache.invalidate_where(lambda token: token[0] == wd),
                              cache.drop_files)
        if watcher.available:
            server.watcher = watcher
        else:
            print(f"wasp.front: static files are not cached: {watcher.error}", file=sys.stderr)

    def _on_ping(self, message: dict, fds: list[int]) -> None:
        stats = self.server.stats() if self.server is not None else {"pools": {}, "connections": 0}
        self._send({"op": "pong", "id": message.get("id"), **stats})

    def _on_metrics(self, message: dict, fds: list[int]) -> None:
        snap = front_metrics.snapshot(self.server) if self.server is not None else {}
        self._send({"op": "metrics", "id": message.get("id"), **snap})

    def _on_metrics_text(self, message: dict, fds: list[int]) -> None:
        if self.server is not None:
            self.server.metrics_answered(message.get("id"), message.get("text"))

    def _on_acme(self, message: dict, fds: list[int]) -> None:
        """The ACME challenges now pending, and a nudge to re-read certificate files the manager
        just wrote (docs/internals.md). Answered with `acme_ack` once in force."""
        server = self.server
        if server is not None:
            server.acme_http01 = pending_from_message(message.get("http01"))
            challenges = message.get("tls_alpn01")
            server.tls.set_challenges({str(h): (str(v[0]), str(v[1])) for h, v in challenges.items()
                                       if isinstance(v, (list, tuple)) and len(v) == 2}
                                      if isinstance(challenges, dict) else {})
            server.tls.poll()
        self._send({"op": "acme_ack", "id": message.get("id")})

    # ---- listeners ----
    def _set_listeners(self, fds: list[int]) -> None:
        """Serve exactly the sockets of the latest `config`: keep the ones already served, start
        the new ones, stop the ones no longer listed. Duplicated descriptors are closed."""
        wanted: dict[Address, socket.socket | None] = {}
        for fd in fds:
            try:
                sock = socket.socket(fileno=fd)
            except OSError:
                os.close(fd)
                continue
            try:
                address = _address(sock)
            except OSError:
                sock.close()
                continue
            if address in self._listeners or address in wanted:
                sock.close()
                wanted.setdefault(address, None)
                continue
            inherited = self._inherited.pop(address, None)
            if inherited is not None:
                sock.close()
                sock = inherited
            wanted[address] = sock
        for address in [a for a in self._listeners if a not in wanted]:
            self._unlisten(address)
        for sock in self._inherited.values():
            sock.close()
        self._inherited.clear()
        if self.stopping:
            for sock in wanted.values():
                if sock is not None:
                    sock.close()
            return
        tls = self.server.tls
        for address, sock in wanted.items():
            if sock is not None:
                context = tls.listener_context(address[1])
                self._listeners[address] = [sock, None, context]
                self._listen(address, sock, context)
            elif self._listeners[address][2] is not tls.listener_context(address[1]):
                self._relisten(address, tls.listener_context(address[1]))

    def _relisten(self, address: Address, context) -> None:
        """Serve a socket already served with another TLS context (the port's client CA changed,
        or the port turned TLS or plain). Connections already open keep theirs."""
        record = self._listeners[address]
        try:
            sock = socket.socket(fileno=os.dup(record[0].fileno()))
        except OSError as exc:
            print(f"wasp.front: cannot re-listen on {address[0]}:{address[1]}: {exc}", file=sys.stderr)
            return
        self._unlisten(address)
        self._listeners[address] = [sock, None, context]
        self._listen(address, sock, context)

    def _listen(self, address: Address, sock: socket.socket, context=None) -> None:
        server = self.server
        # A TLS handshake that does not finish within the header wait timeout is dropped
        # (slowloris over TLS), as is anything that is not TLS on a TLS port.
        tls = {} if context is None else {"ssl": context, "ssl_handshake_timeout": server.header_wait}
        try:
            sock.listen(BACKLOG)
            acceptor = Acceptor(self.loop, sock, lambda: HttpConnection(server),
                                lambda exc, delay: _report_pause(address, exc, delay), tls,
                                SHARED_ACCEPT_BATCH if server.board.shared else ACCEPT_BATCH,
                                server.over_accept_share if server.board.shared else None)
        except OSError as exc:
            print(f"wasp.front: cannot serve {address[0]}:{address[1]}: {exc}", file=sys.stderr)
            self._listeners.pop(address, None)
            sock.close()
            return
        self._listeners[address][1] = acceptor

    def _unlisten(self, address: Address) -> None:
        record = self._listeners.pop(address, None)
        if record is None:
            return
        sock, acceptor, _ = record
        if acceptor is not None:
            acceptor.close()  # closes the socket too
        else:
            sock.close()


def _report_notice(message: str) -> None:
    print(f"wasp.front: {message}", file=sys.stderr, flush=True)


def _report_pause(address: Address, exc: OSError, delay: float) -> None:
    print(f"wasp.front: accept on {address[0]}:{address[1]} failed ({exc.strerror}); "
          f"pausing it for {delay:.1f}s", file=sys.stderr)


def _report_fault(exc: BaseException) -> None:
    print("wasp.front: internal error, connection closed:", file=sys.stderr)
    traceback.print_exception(exc, file=sys.stderr)


#: glibc's mallopt parameters, and the front's values for them.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: Blocks up to this size come from the heap, not from a fresh mmap each time (glibc's default
#: is 128 KiB, raised as mmapped blocks are freed): response bodies, worker reads, file chunks.
MMAP_THRESHOLD = 1 << 20
#: Freed heap kept for reuse before it is handed back to the kernel (glibc's default: 128 KiB).
TRIM_THRESHOLD = 8 << 20


def tune_malloc() -> bool:
    """Keep freed memory for the next response instead of returning it to the kernel at once.
    With glibc's defaults every 100 KiB body the front relays is a block that is freed, trimmed
    off the heap and faulted in again, page by page, for the next one. -> whether it applied
    (glibc only; elsewhere the allocator's defaults stay)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


class _Silent:
    """A logger that drops DEBUG records without looking at its level (hpack's only calls)."""

    __slots__ = ()

    def debug(self, *args, **kwargs) -> None:
        pass


def quiet_hpack() -> bool:
    """hpack logs every integer and header it codes at DEBUG through the stdlib `logging` (about
    20 `Logger.debug` calls per HTTP/2 request, each asking `isEnabledFor`), and the front never
    turns DEBUG on for it: unless something already has, its module logger becomes a no-op.
    -> whether it applied."""
    log = getattr(hpack.hpack, "log", None)
    if not isinstance(log, logging.Logger) or log.isEnabledFor(logging.DEBUG):
        return False
    hpack.hpack.log = _Silent()
    return True


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m wasp.front", description="wasp front process")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--listen-fds", default="", help="comma-separated listening socket descriptors")
    parser.add_argument("--front-index", type=int, default=0, help="this front's index, 0..count-1")
    parser.add_argument("--front-count", type=int, default=1, help="how many fronts serve the sockets")
    parser.add_argument("--scoreboard-fd", type=int, default=None,
                        help="the fronts' shared scoreboard (a memfd), mapped read-write")
    return parser.parse_args(argv)


def map_scoreboard(fd: int, index: int, count: int) -> Scoreboard:
    """The manager's scoreboard memfd as front `index` of `count`. Raises ScoreboardError or
    OSError for a descriptor that is not one."""
    size = os.fstat(fd).st_size
    region = mmap.mmap(fd, size)
    board = Scoreboard(region, index, lock_fd=fd)   # the fd stays open: exact reservations lock it
    if board.fronts != count:
        raise ScoreboardError(f"the scoreboard holds {board.fronts} fronts, not {count}")
    return board


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    journal.install()  # stderr is the journal's stream: lines get priorities
    listen_fds = [int(x) for x in args.listen_fds.split(",") if x.strip()]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tune_malloc()
    quiet_hpack()
    try:
        os.fstat(args.control_fd)
    except OSError:
        print(f"wasp.front: control descriptor {args.control_fd} is not open", file=sys.stderr)
        return 3
    board = None
    if args.scoreboard_fd is not None:
        try:
            board = map_scoreboard(args.scoreboard_fd, args.front_index, args.front_count)
        except (OSError, ValueError) as exc:
            print(f"wasp.front: scoreboard descriptor {args.scoreboard_fd}: {exc}", file=sys.stderr)
            return 3
    elif args.front_count != 1 or args.front_index != 0:
        print("wasp.front: --front-count above 1 needs --scoreboard-fd", file=sys.stderr)
        return 3
    try:
        from wasp.common.proctitle import set_title
        set_title("wasp: front" if args.front_count == 1 else f"wasp: front {args.front_index}")
    except ImportError:
        pass
    import uvloop

    quiet_bad_server_names()

    async def run() -> int:
        return await Front(asyncio.get_running_loop(), args.control_fd, listen_fds, board).run()

    return uvloop.run(run())
