"""The worker process's life (IIS w3wp): load the pool's apps, warm them up, serve, drain, exit.

Its state is one Enum with a transition table. Control messages come from the manager, frames
from the front; both arrive on the event loop. Every request's pipeline runs on the loop up to its
handler; only a WSGI app's handler goes to one of `pool.threads` threads that block on a
SimpleQueue, so static files, default documents and error pages never wait for a thread.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import queue
import socket
import threading
import time
from enum import Enum

from wasp.common.channel import ControlChannel
from wasp.config import model
from wasp.errors import AppLoadError
from wasp.wire import frames
from wasp.worker import app_offline, eager, watchdog
from wasp.worker.application import Application, LoadFailure, load, pool_applications
from wasp.worker.context import RequestContext
from wasp.worker.datachannel import DataChannel
from wasp.worker.flow import AsyncBody, BlockingBody
from wasp.worker.urlconfig import WEB_TOML_POLL

log = logging.getLogger("wasp.worker")

EXIT_OK = 0
EXIT_LOAD_FAILED = 4
LIFESPAN_SHUTDOWN_LIMIT = 30.0
_FIN = frames.FLAG_FIN


class State(Enum):
    STARTING = "Starting"    # waiting for `init`
    LOADING = "Loading"      # importing apps, lifespan startup, warm-up
    READY = "Ready"          # serving
    STOPPING = "Stopping"    # `stop` came: serving until DRAIN or close on every data channel
    DRAINING = "Draining"    # no new requests: finishing the ones in flight
    EXITING = "Exiting"      # lifespan shutdown, then exit


TRANSITIONS = {
    State.STARTING: {State.LOADING, State.EXITING},
    State.LOADING: {State.READY, State.DRAINING, State.EXITING},
    State.READY: {State.STOPPING, State.DRAINING, State.EXITING},
    State.STOPPING: {State.DRAINING, State.EXITING},
    State.DRAINING: {State.EXITING},
    State.EXITING: set(),
}


class IllegalTransition(RuntimeError):
    pass


class Stats:
    """Requests served and in flight; `begin` on the loop, `end` on whichever thread finished.
    The requests themselves are kept too, for the execution limit and `list_requests`."""

    def __init__(self):
        self.lock = threading.Lock()
        self.inflight = 0
        self.served = 0
        self.expired = 0   # in flight but already cut by execution_timeout
        self.last = time.monotonic()
        self.running: dict = {}  # RequestContext -> None, oldest first
        # recycling.requests: `on_limit` is called once, by the end that reaches it (any thread).
        self.limit = 0
        self.on_limit = None

    def begin(self, ctx=None) -> None:
        # `last` only matters while nothing is in flight (idle_seconds), so only the end that
        # empties the worker stamps it: no clock read per begin.
        with self.lock:
            self.inflight += 1
            if ctx is not None:
                self.running[ctx] = None

    def end(self, ctx=None) -> int:
        with self.lock:
            inflight = self.inflight = self.inflight - 1
            self.served += 1
            reached = self.served == self.limit
            if not inflight:
                self.last = time.monotonic()
            if ctx is not None and self.running.pop(ctx, 0) is None and ctx.expired_at:
                self.expired -= 1
        if reached and self.on_limit is not None:
            self.on_limit()
        return inflight

    def expire(self, ctx, now: float) -> bool:
        """Mark a request cut by its execution limit; False when it already ended."""
        with self.lock:
            if ctx not in self.running or ctx.expired_at:
                return False
            ctx.expired_at = now
            self.expired += 1
            return True

    def snapshot(self) -> list:
        with self.lock:
            return list(self.running)

    @property
    def live(self) -> int:
        """Requests a graceful stop waits for: those cut by their execution limit are over for
        their clients, and their threads may never come back."""
        return self.inflight - self.expired

    def idle_seconds(self) -> float:
        return 0.0 if self.inflight else round(time.monotonic() - self.last, 3)


class PingJob:
    """A `ping` queued behind the requests for the WSGI threads: the thread that takes it has the
    loop send the pong. When every thread is stuck no pong goes out, and the manager replaces the
    worker after ping_response_time, as IIS's pings find a w3wp whose threads are all blocked."""

    __slots__ = ("id",)

    def __init__(self, ping_id):
        self.id = ping_id


class WarmupChannel:
    """Where an initialization page's response goes: nowhere, like IIS's fake request. Credit is
    unlimited so nothing waits for a front that is not there."""

    initial_window = 1 << 62

    def __init__(self, loop, future):
        self.loop = loop
        self.lock = threading.Lock()
        self.cond = threading.Condition()
        self.streams: dict = {}
        self.closed = False
        self._future = future

    def send_frame(self, ctx, data) -> bool:
        return not ctx.finished

    def send_final(self, ctx, data) -> bool:
        if ctx.finished:
            return False
        ctx.finished = True
        return True

    def done(self, ctx) -> None:
        self.loop.call_soon_threadsafe(_resolve, self._future, ctx.status)


def _resolve(future, value) -> None:
    if not future.done():
        future.set_result(value)


class Worker:
    def __init__(self, worker_id: int, pool: str, control_sock: socket.socket):
        self.worker_id = worker_id
        self.pool_name = pool
        self.state = State.STARTING
        self.stats = Stats()
        self.apps: dict[str, Application] = {}
        self.pool: model.Pool | None = None
        self.client_board_fd: int | None = None  # from `init`: the pool's shared client counters
        self.capacity = 1
        #: One data channel per front index (server.front_processes): `attach` names the front.
        self.channels: dict[int, DataChannel] = {}
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []
        self.tasks: set[asyncio.Task] = set()
        self.stop_requested = False
        self.watch_every: float | None = None  # execution_timeout checks; None: no app has one
        self._watch_timer: asyncio.TimerHandle | None = None
        self._url_configs: list = []
        self.stuck_reported = False
        self._control_sock = control_sock
        self.control: ControlChannel | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._exit: asyncio.Future | None = None
        #: OpenTelemetry (worker/tracing.py) when [tracing] is enabled and importable.
        self.tracing = None

    # ---- state ----
    def move(self, new: State) -> None:
        if new not in TRANSITIONS[self.state]:
            raise IllegalTransition(f"{self.state.name} -> {new.name}")
        log.debug("state %s -> %s", self.state.value, new.value)
        self.state = new

    async def run(self) -> int:
        self.loop = asyncio.get_running_loop()
        self._exit = self.loop.create_future()
        self.control = ControlChannel(self._control_sock, self._on_control, self._on_control_close)
        return await self._exit

    def request_stop(self) -> None:
        """`stop` from the manager or SIGTERM: graceful, as IIS's shutdown of a w3wp."""
        self.stop_requested = True
        if self.state is State.STARTING:
            self._begin_exit(EXIT_OK)
        elif self.state is State.READY:
            if self._all_drained():
                self._drain()
            else:
                self.move(State.STOPPING)

    # ---- control channel ----
    def _on_control(self, message: dict, fds: list[int]) -> None:
        op = message.get("op")
        if op == "init" and self.state is State.STARTING:
            self.move(State.LOADING)
            # The pool's shared client counters (dynamic_ip_security), when the manager sent them.
            self.client_board_fd = fds[0] if fds else None
            for fd in fds[1:]:
                os.close(fd)
            self._spawn(self._init(message))
        elif op == "attach":
            self._attach(fds, int(message.get("front") or 0))
        elif op == "ping":
            if self.threads and self.state is not State.EXITING:
                self.jobs.put(PingJob(message.get("id")))
            else:
                self._pong(message.get("id"))
        elif op == "list_requests":
            now = time.monotonic()
            running = self.stats.snapshot()
            rows = [dict(row, front=front) for front, channel in sorted(self.channels.items())
                    for row in watchdog.rows(running, channel, now)]
            self.control.send({"op": "requests", "id": message.get("id"), "requests": rows})
        elif op == "dump_stacks":  # the management site's "thread stacks" action
            self.control.send({"op": "stacks", "id": message.get("id"),
                               "stacks": watchdog.thread_stacks()})
        elif op == "stop":
            self.request_stop()
        else:
            log.warning("control: unexpected %r in state %s", op, self.state.value)
            for fd in fds:
                os.close(fd)

    def _pong(self, ping_id) -> None:
        if self.control is not None:
            self.control.send({"op": "pong", "id": ping_id, "served": self.stats.served,
                               "inflight": self.stats.inflight, "idle_s": self.stats.idle_seconds()})

    def _recycle_me(self) -> None:
        if self.control is not None and not self.control.closed:
            self.control.send({"op": "recycle_me", "reason": "requests",
                               "served": self.stats.served})

    def _on_control_close(self) -> None:
        # The manager is gone: nobody supervises this worker any more; finish and leave.
        if self.state in (State.STARTING, State.LOADING):
            self.stop_requested = True
            if self.state is State.STARTING:
                self._begin_exit(EXIT_OK)
        elif self.state in (State.READY, State.STOPPING):
            self._drain()

    async def _init(self, message: dict) -> None:
        try:
            await self._load(message)
        except LoadFailure as exc:
            self._load_failed(exc.message, exc.trace)
            return
        except AppLoadError as exc:
            self._load_failed(str(exc), "")
            return
        except Exception as exc:  # a bug of ours, still reported as a load failure
            import traceback
            self._load_failed(f"worker init failed: {type(exc).__name__}: {exc}", traceback.format_exc())
            return
        if self.stop_requested:
            self._drain()
            return
        self.move(State.READY)
        self.control.send({"op": "ready", "pid": os.getpid()})
        if self.watch_every is not None:
            self._watch_timer = self.loop.call_later(self.watch_every, self._watch)
        self._url_configs = [app.urls for app in self.apps.values() if app.urls is not None and app.urls.web]
        if self._url_configs:
            self.loop.call_later(WEB_TOML_POLL, self._poll_web_toml)
        log.info("ready: pool %s, %d application(s), capacity %d", self.pool_name, len(self.apps),
                 self.capacity)

    async def _load(self, message: dict) -> None:
        config = model.decode(message["config"])
        name = message.get("pool") or self.pool_name
        pool = next((p for p in config.pools if p.name == name), None)
        if pool is None:
            raise AppLoadError(f"pool {name!r} is not in the configuration")
        self.pool = pool
        if config.tracing.enabled and self.tracing is None:
            try:
                from wasp.worker.tracing import start as start_tracing
            except ImportError as exc:
                log.warning("tracing is enabled but this worker cannot import OpenTelemetry (%s): "
                            "its requests get no worker spans", exc)
            else:
                self.tracing = start_tracing(config.tracing, pool.name, self.worker_id)
        if pool.recycling.requests > 0:
            # The worker counts its requests itself, so the recycle comes after exactly that many
            # (the manager's pings would see the count late). It keeps serving until the manager
            # has a replacement ready, as an overlapped recycle in IIS does.
            self.stats.limit = pool.recycling.requests
            self.stats.on_limit = lambda: self.loop.call_soon_threadsafe(self._recycle_me)
        os.environ.update(pool.environment_variables)
        os.environ["WASP_POOL"] = pool.name
        os.environ["WASP_WORKER_ID"] = str(self.worker_id)
        apps = pool_applications(config, pool.name)
        secret = message.get("secret")
        for app in apps:
            if isinstance(secret, bytes) and len(secret) >= 32:
                app.pool_secret = secret  # the pool's, from the manager (Digest nonces)
            app.client_board_fd = self.client_board_fd
            app.tracing = self.tracing
            load(app, threads=pool.threads, multiprocess=pool.max_processes > 1)
            app.offline = app_offline.for_app(app.config)
            if app.threaded:  # a request pending before its handler goes to a thread from there
                app.pipeline.hand_off = self.jobs.put
            self.apps[app.key] = app
        wsgi = any(app.threaded for app in apps)
        asgi = any(app.is_asgi for app in apps)
        # A pool with a WSGI app takes twice its threads: `threads` requests run on the threads,
        # as many more may wait in this worker for one, and while they do the loop still answers
        # what needs no thread (static files, redirects, error pages) instead of the front
        # holding those in the pool's queue behind busy threads.
        self.capacity = (2 * pool.threads if wsgi else pool.threads if not asgi
                         else pool.max_concurrent_requests)
        self.watch_every = watchdog.interval(app.config.execution_timeout for app in apps)
        if wsgi:
            self._start_threads(pool.threads)
        for app in apps:
            if app.is_asgi:
                from wasp.worker.hosting.asgi import Lifespan

                app.lifespan = Lifespan(app.callable, app.key, app.state)
                await app.lifespan.startup()
        for app in apps:
            for page in app.config.initialization_pages:
                await self._warm_up(app, page)
        # The apps' modules, classes and caches live as long as the worker: keep the cyclic GC
        # from scanning them again on every full collection (and their pages shared after fork).
        gc.collect()
        gc.freeze()

    def _poll_web_toml(self) -> None:
        """web.toml pickup without a restart: drop an application's per-URL configurations when
        a web.toml they read (or looked for) changed."""
        if self.state is State.EXITING:
            return
        for urls in self._url_configs:
            if urls.changed():
                log.info("application %s: a web.toml changed; its URLs' configuration is read again",
                         urls.app.key)
        self.loop.call_later(WEB_TOML_POLL, self._poll_web_toml)

    def _load_failed(self, error: str, trace: str) -> None:
        log.error("load failed: %s\n%s", error, trace)
        self.control.send({"op": "load_failed", "error": error, "traceback": trace})
        self._begin_exit(EXIT_LOAD_FAILED, shutdown_apps=False)

    async def _warm_up(self, app: Application, page: str) -> None:
        path, _, query = page.partition("?")
        if not path.startswith("/"):
            path = "/" + path
        full = (app.script_name + path).encode("utf-8")
        head = frames.RequestHead(
            app=app.key, method="GET", target=full + (b"?" + query.encode() if query else b""),
            path=full, query=query.encode("latin-1"), version="1.1",
            headers=[(b"Host", b"localhost"), (b"User-Agent", b"IIS Application Initialization Warmup")],
            client=("127.0.0.1", 0), server=("127.0.0.1", 0), warmup=True)
        future = self.loop.create_future()
        ctx = RequestContext(WarmupChannel(self.loop, future), 0, head, app, app.threaded)
        if app.is_asgi:
            ctx.body = AsyncBody(ctx, eof=True)
        pipeline = ctx.config.pipeline or app.pipeline
        if app.threaded:
            if pipeline.run_front(ctx):
                self.jobs.put(ctx)
        elif app.is_asgi:
            self._spawn(pipeline.run_async(ctx))
        else:
            pipeline.run_sync(ctx)
        status = await future
        log.info("warm-up GET %s -> %s", full.decode("utf-8"), status)
        if not 200 <= int(status or 0) < 300:
            # A deploy whose initialization page fails is a failed start (docs/deploys.md): the
            # worker never takes traffic and the old one keeps serving.
            raise LoadFailure(f"initialization page {page} of application {app.key} answered "
                              f"{status}, not 2xx", "")

    # ---- threads ----
    def _start_threads(self, count: int) -> None:
        for n in range(count):
            thread = threading.Thread(target=self._thread_main, name=f"wsgi-{n}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def _thread_main(self) -> None:
        get = self.jobs.get
        ident = threading.get_ident()
        monotonic = time.monotonic
        while True:
            ctx = get()
            if ctx is None:
                return
            try:
                if ctx.__class__ is PingJob:
                    try:
                        self.loop.call_soon_threadsafe(self._pong, ctx.id)
                    except RuntimeError:
                        pass  # the loop is closed: the worker is leaving
                    continue
                if ctx.cancelled:  # CANCEL came while it waited in the queue: don't run the app
                    ctx.channel.done(ctx)
                    continue
                ctx.thread = ident
                # The execution limit counts from here, not from the wait for a thread.
                ctx.start_time = monotonic()
                (ctx.config.pipeline or ctx.app.pipeline).run_handler_sync(ctx)
            except BaseException:
                log.exception("request thread: unexpected error")

    # ---- data channel ----
    def _attach(self, fds: list[int], front: int = 0) -> None:
        """A data channel to front `front`: it replaces that front's older channel (cancelling
        what was in flight on it) and no other."""
        if not fds:
            log.error("attach without a descriptor")
            return
        for fd in fds[1:]:
            os.close(fd)
        if self.state not in (State.READY, State.STOPPING) or (
                self.state is State.STOPPING and front not in self.channels):
            os.close(fds[0])
            return
        old = self.channels.pop(front, None)
        if old is not None:
            old.close()
        sock = socket.socket(fileno=fds[0])
        channel = self.channels[front] = DataChannel(
            sock, self.loop, on_request=self._on_request, on_drain=self._on_drain,
            on_close=self._on_channel_close, on_done=self._on_done)
        channel.send_raw(frames.pack_hello(frames.Hello(self.worker_id, os.getpid(), self.capacity,
                                                                sorted(self.apps))))

    def _all_drained(self) -> bool:
        """Every front has sent DRAIN or closed its channel (or none is attached)."""
        return all(c.closed or c.drained for c in self.channels.values())

    def _on_request(self, channel: DataChannel, sid: int, flags: int, payload: bytes) -> None:
        try:
            head = frames.unpack_request(payload, flags)
        except Exception as exc:
            log.error("undecodable REQUEST on stream %d: %s", sid, exc)
            channel.send_raw(frames.pack_abort(sid, 500))
            return
        app = self.apps.get(head.app)
        if app is None or self.state is State.DRAINING or self.state is State.EXITING:
            if app is None:
                log.error("REQUEST for application %r, which this worker does not host", head.app)
            channel.send_raw(frames.pack_abort(sid, 503 if app is not None else 500))
            return
        threaded = app.threaded
        asgi = app.is_asgi
        ctx = RequestContext(channel, sid, head, app, threaded)
        if asgi:
            # tunnel bytes follow a websocket's 101 whatever the flags say
            ctx.body = AsyncBody(ctx, eof=(flags & _FIN) != 0 and not head.websocket)
        elif not flags & _FIN:
            ctx.body = BlockingBody(ctx) if threaded else AsyncBody(ctx)
        elif head.websocket:  # the reverse proxy tunnels it: the bytes after the 101 come as BODY
            ctx.body = AsyncBody(ctx)
        channel.streams[sid] = ctx
        self.stats.begin(ctx)
        offline = app.offline.current()
        if offline is not None:  # app_offline.htm (app_offline.py): 503 with it, no app code
            ctx.respond(*app_offline.response(offline))
            return
        # The pipeline of the URL's directory (its `modules`), cached with its configuration.
        pipeline = ctx.config.pipeline or app.pipeline
        if threaded:
            # The loop maps the handler; only the WSGI handler waits for a thread.
            if pipeline.run_front(ctx):
                self.jobs.put(ctx)
        elif asgi:
            coro = ctx.coro = pipeline.run_async(ctx)
            task = ctx.task = eager.start(self.loop, coro)
            if task is not None:  # it suspends: keep it owned until it ends
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        else:
            pipeline.run_sync(ctx)  # static only: answered without waiting on anything

    def _on_done(self, ctx) -> None:
        self.stats.end(ctx)
        if not ctx.threaded:
            # A request and its AsyncBody point at each other: unlinked here, on the loop where
            # nothing else touches the body any more (the pipeline has ended and the stream is
            # out of the table), refcounting frees the request at once instead of leaving ~9
            # objects per request to the cyclic GC.
            ctx.body = None
        if self.state is State.DRAINING and self.stats.live <= 0:
            self.loop.call_soon_threadsafe(self._check_drained)

    def _on_drain(self, channel: DataChannel) -> None:
        if self.state is State.STOPPING and self._all_drained():
            self._drain()

    def _on_channel_close(self, channel: DataChannel) -> None:
        for front, current in list(self.channels.items()):
            if current is channel:
                del self.channels[front]
                break
        else:
            return  # an older channel a new attach replaced
        if self.state is State.STOPPING and self._all_drained():
            self._drain()

    # ---- execution limits ----
    def _watch(self) -> None:
        self._watch_timer = None
        if self.state is State.EXITING:
            return
        now = time.monotonic()
        expired, stuck = watchdog.check(self.stats.snapshot(), now)
        for ctx in expired:
            if self.stats.expire(ctx, now):
                self._cut(ctx)
        for ctx in stuck:
            self._stuck(ctx, now)
        if expired and self.state is State.DRAINING:
            self._check_drained()
        if self.state is not State.EXITING:
            self._watch_timer = self.loop.call_later(self.watch_every, self._watch)

    def _cut(self, ctx) -> None:
        """503 for a request past its execution limit (a cut connection if its response had
        started); whatever its app produces afterwards goes nowhere."""
        log.warning("%s (application %s) ran past its execution limit of %gs in %s: answered 503",
                    watchdog.url_of(ctx), ctx.app.key, watchdog.limit_of(ctx), ctx.stage)
        channel = ctx.channel
        ctx.abort(503)
        with channel.lock:
            ctx.cancelled = True
            if channel.streams.get(ctx.sid) is ctx:
                del channel.streams[ctx.sid]
        ctx.cancel()
        if ctx.task is not None:
            ctx.task.cancel()

    def _stuck(self, ctx, now: float) -> None:
        """A request cut a grace period ago still runs: report every thread's stack once; the
        manager logs them and replaces this worker."""
        elapsed = round(now - ctx.start_time, 3)
        url = watchdog.url_of(ctx)
        log.error("%s (application %s) still runs %.1fs after it started, past its execution limit "
                  "and grace: this worker is stuck", url, ctx.app.key, elapsed)
        if self.stuck_reported or self.control is None:
            return
        self.stuck_reported = True
        self.control.send({
            "op": "stuck", "stream": ctx.sid, "app": ctx.app.key, "url": url, "elapsed_s": elapsed,
            "limit_s": watchdog.limit_of(ctx), "stage": ctx.stage,
            "thread": watchdog.thread_names().get(ctx.thread, "") if ctx.thread else "",
            "stacks": watchdog.thread_stacks(ctx.thread, ctx.coro),
        })

    # ---- leaving ----
    def _drain(self) -> None:
        if self.state in (State.DRAINING, State.EXITING):
            return
        self.move(State.DRAINING)
        log.info("draining: %d request(s) in flight", self.stats.inflight)
        self._check_drained()

    def _check_drained(self) -> None:
        if self.state is State.DRAINING and self.stats.live <= 0:
            self._begin_exit(EXIT_OK)

    def _begin_exit(self, code: int, shutdown_apps: bool = True) -> None:
        if self.state is State.EXITING:
            return
        self.move(State.EXITING)
        self._spawn(self._exit_sequence(code, shutdown_apps))

    async def _exit_sequence(self, code: int, shutdown_apps: bool) -> None:
        if shutdown_apps:
            for app in self.apps.values():
                if app.lifespan is not None:
                    await app.lifespan.shutdown(LIFESPAN_SHUTDOWN_LIMIT)
            for app in self.apps.values():
                app.cleanup()
        if self._watch_timer is not None:
            self._watch_timer.cancel()
        for _ in self.threads:
            self.jobs.put(None)
        # A thread running a request cut by its execution limit may never come back.
        stuck = {ctx.thread for ctx in self.stats.snapshot() if ctx.expired_at}
        deadline = time.monotonic() + 5.0
        for thread in self.threads:
            if thread.ident not in stuck:
                thread.join(max(0.0, deadline - time.monotonic()))
        from wasp.worker import freb as tracing

        tracing.flush_all()  # traces still waiting for a front's times, then the writer
        current = asyncio.current_task()
        others = [task for task in self.tasks if task is not current]
        for task in others:
            task.cancel()
        if others:
            await asyncio.wait(others, timeout=1.0)
        for task in others:
            if not task.done():
                # It swallows its cancellation (an app cut by its execution limit may): close its
                # coroutine, or the loop's own shutdown would wait for it forever.
                try:
                    task.get_coro().close()
                except RuntimeError as exc:
                    log.error("a request task cannot be stopped: %s", exc)
        if self.tracing is not None:
            # The spans still queued leave before the process does (a stop or a recycle).
            try:
                await asyncio.to_thread(self.tracing.shutdown)
            except Exception as exc:
                log.warning("tracing: the last spans were not exported: %s", exc)
        # Responses still queued for a loop's writer (a front was slow to read) leave before the
        # channels close, for up to a second in all.
        for _ in range(100):
            if not any(not c.closed and c.backlog for c in self.channels.values()):
                break
            await asyncio.sleep(0.01)
        for channel in list(self.channels.values()):
            channel.close()
        self.channels.clear()
        # Let the last control message (load_failed) leave before the socket closes.
        for _ in range(200):
            if not getattr(self.control, "pending", 0):
                break
            await asyncio.sleep(0.01)
        if self.control is not None:
            self.control.close()
        if not self._exit.done():
            self._exit.set_result(code)

    def _spawn(self, coro) -> None:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("worker task failed", exc_info=task.exception())
