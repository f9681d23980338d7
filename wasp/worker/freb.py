"""Failed Request Tracing in the worker (IIS's FailedRequestsTracingModule): buffer a request's
events cheaply while it runs, and when a rule's failure definition matches at its end, have the
file written off the request's thread.

Cost model. Whether tracing is possible at all is decided once per effective configuration (a
directory of an application): `compile_tracer` returns None unless the site's
`trace_failed_requests_logging.enabled` is on and some `trace_failed_requests` rule exists, and a
request then pays one attribute test (`ctx.freb is None`) in its context and in the pipeline's
loops. When a tracer exists, a request whose file name matches a rule's path gets a `Trace`; its
pipeline runs the traced copies of the compiled steps (`traced_steps`: each module's step
wrapped in NOTIFY_MODULE_START/END), built once per pipeline. Events are tuples appended to a
list (bounded by MAX_EVENTS, and the module events by the compiled steps); what needs formatting
(the URL, the headers) is formatted only when the trace is written. At the request's last frame the failure definition is evaluated
(`decide`): status codes, time taken, the worst event level. Only then, and only for a match,
does the worker ask the front for its times (a TRACE frame; the front answers TRACED once the
response's last byte is written), and hands the trace to the writer thread, which renders the
XML and writes W3SVC<id>/frNNNNNN.xml (wasp/common/freb.py). A front that never answers (the
client went away, the front restarted) costs the trace its front times after FRONT_WAIT, not the
trace itself.

Safety: Authorization, Proxy-Authorization, Cookie and Set-Cookie values are masked (IIS writes
them as sent; wasp chooses safe), header dumps are bounded, file names come from a counter
(never from the request), and a trace file is bounded by the site's max_log_file_size_kb.
"""

from __future__ import annotations

import getpass
import itertools
import logging
import os
import queue
import threading
import time

from wasp.common import freb
from wasp.config.sections.http_redirect import wildcard_regex
from wasp.config.sections.trace_failed_requests import (AREA_VERBOSITY, FAILURE_VERBOSITY,
                                                        WWW_AREAS, parse_status_codes,
                                                        status_matches)
from wasp.worker.registry import FINISH, Phase, Status

log = logging.getLogger("wasp.worker")

#: Events one trace keeps; later ones are counted (EVENTS_DROPPED) and left out.
MAX_EVENTS = 20000
#: A header value longer than this is cut in a trace, and a header dump at HEADERS_LIMIT.
HEADER_VALUE_LIMIT = 4096
HEADERS_LIMIT = 65536
#: Seconds a finished trace waits for the front's TRACED before it is written without it.
FRONT_WAIT = 2.0
#: Traces waiting for the writer thread; past it a new one is dropped (and logged).
QUEUE_LIMIT = 256
PENDING_LIMIT = 10000

MASKED = freb.MASKED
MASK = freb.MASK

_CORE = "IIS Web Core"
_tokens = itertools.count(1)
_activities = itertools.count(1)
_PID = os.getpid()
_perf_ns = time.perf_counter_ns
_get_ident = threading.get_ident
try:
    _TOKEN_USER = getpass.getuser()
except Exception:  # no passwd entry for the uid
    _TOKEN_USER = str(os.getuid())


class CompiledRule:
    __slots__ = ("path", "match", "codes", "time_taken", "failure_level", "levels", "notify",
                 "table")

    def __init__(self, rule):
        self.path = rule.path
        pattern = rule.path
        if pattern == "/":
            self.match = lambda name, rel: name == ""
        elif "/" in pattern:
            regex = wildcard_regex(pattern.lstrip("/"))
            self.match = lambda name, rel: regex.match(rel) is not None
        elif pattern == "*":
            self.match = lambda name, rel: True
        else:
            regex = wildcard_regex(pattern)
            self.match = lambda name, rel: regex.match(name) is not None
        definitions = rule.failure_definitions
        self.codes = parse_status_codes(definitions.status_codes)
        self.time_taken = float(definitions.time_taken)
        self.failure_level = FAILURE_VERBOSITY[definitions.verbosity]
        # area bit -> the most detailed level recorded for it
        levels: dict[int, int] = {}
        areas = [a for a in rule.trace_areas if a.provider == "WWW Server"]
        if not rule.trace_areas:
            levels = {bit: AREA_VERBOSITY["Verbose"] for bit in WWW_AREAS.values()}
        for area in areas:
            bits = [WWW_AREAS[a] for a in area.areas] if area.areas else list(WWW_AREAS.values())
            for bit in bits:
                levels[bit] = max(levels.get(bit, -1), AREA_VERBOSITY[area.verbosity])
        self.levels = levels
        self.notify = levels.get(freb.REQUEST_NOTIFICATIONS, -1) >= freb.VERBOSE
        # opcode -> (level, recorded?): what `Trace.emit` asks, worked out once per rule.
        self.table = {opcode: (level, not keyword or level <= levels.get(keyword, -1))
                      for opcode, (_number, level, keyword) in freb.EVENTS.items()}


class Tracer:
    """What one effective configuration traces: its rules and where its site's files go."""

    __slots__ = ("rules", "directory", "max_files", "max_bytes", "site_id", "pool", "prefix_len",
                 "every")

    def __init__(self, app, section, logging_):
        self.rules = [CompiledRule(rule) for rule in section.rules]
        self.directory = logging_.directory or os.path.join(
            getattr(app, "log_dir", "") or "logs", "FailedReqLogFiles")
        self.max_files = logging_.max_log_files
        self.max_bytes = (logging_.max_log_file_size_kb or 1024) * 1024
        self.site_id = app.site.id
        self.pool = app.config.pool
        self.prefix_len = app.prefix_len
        # The first rule is "*": every request is its, without looking at the path.
        self.every = self.rules[0] if self.rules[0].path == "*" else None

    def start(self, ctx):
        """The request's Trace when a rule's path matches it, else None."""
        if self.every is not None:
            return Trace(self, self.every, ctx)
        path = ctx.head.path
        rel = path[self.prefix_len:].decode("utf-8", "replace").lower()
        name = rel[rel.rfind("/") + 1:]
        rel = rel.lstrip("/")
        for rule in self.rules:
            if rule.match(name, rel):
                return Trace(self, rule, ctx)
        return None


def compile_tracer(app, config):
    """The Tracer of an effective configuration, or None when nothing can be traced there."""
    section = getattr(config, "trace_failed_requests", None)
    logging_ = getattr(app.site, "trace_failed_requests_logging", None)
    if section is None or not section.rules or logging_ is None or not logging_.enabled:
        return None
    return Tracer(app, section, logging_)


class Trace:
    """One request's buffered events and, at its end, the decision."""

    # Class attributes are the defaults (no __slots__): a Trace sets only what differs, since
    # every request of a traced URL makes one and most are dropped at their end.
    wall0 = 0               # wall-clock ns at t0, worked out when the trace is written
    worst = 9               # the most severe level seen (1 CriticalError ... 5 Verbose)
    dropped = 0
    matched = None          # None: not decided yet; then True / False
    reason = ""
    trigger = ""
    token = 0               # TRACE frame token once the front was asked for its times
    front = None            # (until_answer_us, after_us, bytes sent) from TRACED
    ended = False
    lock = None             # made when the rule matched: the front's answer races the end
    error = None            # what an exception said, for the status event that follows
    answered_ns = 0
    attributes = None
    loop = None
    activity = ""
    auth_seen = False       # AUTH_REQUEST_AUTH_TYPE was recorded

    def __init__(self, tracer: Tracer, rule: CompiledRule, ctx):
        self.tracer = tracer
        self.rule = rule
        self.t0 = self.mark = _perf_ns()
        self.loop_thread = _get_ident()  # ctx.thread 0 means this one
        # Module enter/leave events are recorded (RequestNotifications at Verbose): the traced
        # steps test this one flag and append prebuilt tuples (tracing's hot path).
        self.notify = rule.notify
        self.head = ctx.head
        # The request's own events, formatted only if the trace is written (`record`).
        self.events = [(self.t0, 0, "", ctx.sid)]

    # ---- recording (the request's thread) ----
    def emit(self, opcode: str, data) -> None:
        """Buffer one event: a tuple, its data formatted later when `data` is a callable."""
        level, recorded = self.rule.table[opcode]
        if level < self.worst:
            self.worst = level
        if not recorded:
            return
        events = self.events
        if len(events) >= MAX_EVENTS:
            self.dropped += 1
            return
        events.append((_perf_ns(), _get_ident(), opcode, data))

    def records(self, opcode: str) -> bool:
        """Whether the rule keeps `opcode`: a module tests it before building an event's data."""
        return self.rule.table[opcode][1]

    def response(self, ctx, block: bytes, substatus: int) -> None:
        """The response head goes out (ctx._mark): its headers, and who set an error status."""
        status = ctx.status
        end = block.find(b"\r\n")
        lines = block[end + 2:] if end >= 0 else b""
        self.emit("GENERAL_RESPONSE_HEADERS", lambda: (("Headers", dump_block(lines)),))
        if status >= 400:
            self.set_error_status(ctx, status, substatus, block[4:end].decode("latin-1", "replace"))

    def set_error_status(self, ctx, status: int, substatus: int, reason: str) -> None:
        phase = ctx.phase
        error, self.error = self.error, None
        self.emit("MODULE_SET_RESPONSE_ERROR_STATUS", (
            ("ModuleName", ctx.module or _CORE),
            ("Notification", freb.NOTIFICATIONS[int(phase)][1] if phase else 1),
            ("HttpStatus", status), ("HttpReason", reason), ("HttpSubStatus", substatus),
            ("ErrorCode", 0 if error is None else 0x80004005),
            ("ConfigExceptionInfo", error or "")))

    def failed(self, ctx, exc: BaseException, http: bool) -> None:
        """pipeline.fail: an exception ends the request. Not an HttpError: an Error event."""
        text = f"{type(exc).__name__}: {exc}"[:HEADER_VALUE_LIMIT]
        self.error = text
        if not http:
            phase = ctx.phase
            self.emit("MODULE_ERROR", (
                ("ModuleName", ctx.module or _CORE),
                ("Notification", freb.NOTIFICATIONS[int(phase)][1] if phase else 1),
                ("ErrorText", text)))

    def user_set(self, name: str, auth_type: str) -> None:
        self.emit("USER_SET", (("AuthType", auth_type or "anonymous"), ("UserName", name),
                               ("SupportsIsInRole", "false")))
        if name:
            self.emit("AUTH_SUCCEEDED", (("AuthType", auth_type), ("RemoteUserName", name),
                                         ("AuthUserName", name)))

    def file_missing(self, ctx, handler: str) -> None:
        """The handler map found no file for a handler that needs one (IIS's StaticFile 404)."""
        self.emit("STATIC_FILE_START", (("RequestURL", ctx.head.path.decode("utf-8", "replace")),
                                        ("Handler", handler)))
        self.emit("STATIC_FILE_END", (("FileName", ctx.file_path or ""), ("Successful", "false"),
                                      ("HttpStatus", 404), ("HttpSubStatus", 0),
                                      ("Reason", "FILE_NOT_FOUND")))

    # ---- the decision (at the last frame) ----
    def decide(self, ctx, cacheable: bool | None) -> int:
        """Evaluate the failure definition; returns the TRACE token to send (0: none)."""
        if self.matched is not None:
            return 0
        if cacheable is not None:
            self.emit("HTTPSYS_CACHEABLE", (
                ("HttpsysCacheable", "true" if cacheable else "false"),
                ("Reason", "OK" if cacheable else ("RESPONSE_IS_PRIVATE" if ctx.private else
                                                   "NO_CACHE_RULE" if ctx.cache is None else
                                                   "NOT_CACHEABLE"))))
        now = _perf_ns()
        self.answered_ns = now
        rule = self.rule
        status, sub = ctx.status, ctx.substatus
        reason = ""
        if rule.codes and status_matches(rule.codes, status, sub):
            reason = "STATUS_CODE"
        elif rule.time_taken > 0 and (now - self.t0) / 1e9 >= rule.time_taken:
            reason = "TIME_TAKEN"
        elif rule.failure_level and self.worst <= rule.failure_level:
            reason = "VERBOSITY"
        self.matched = bool(reason)
        if not reason:
            return 0
        self.reason = reason
        self.trigger = f"{status}.{sub}" if sub else str(status)
        self.lock = threading.Lock()
        channel = ctx.channel
        self.loop = getattr(channel, "loop", None)
        if not hasattr(channel, "sock"):
            return 0  # a warm-up request: no front to ask
        token = next(_tokens) & 0xFFFFFFFF or next(_tokens)
        self.token = token
        if len(PENDING) >= PENDING_LIMIT:
            try:  # the oldest waits longest: it would have expired first
                PENDING.pop(next(iter(PENDING)), None)
            except (StopIteration, RuntimeError):  # the loop took one meanwhile
                pass
        PENDING[token] = self
        return token

    def finish(self, ctx) -> None:
        """The pipeline ended (after END_REQUEST)."""
        self.emit("GENERAL_REQUEST_END", (("BytesReceived", ctx.head.content_length
                                           if ctx.head.content_length >= 0 else 0),
                                          ("HttpStatus", ctx.status),
                                          ("HttpSubStatus", ctx.substatus)))
        if self.matched is None:
            self.decide(ctx, None)  # cancelled, or ended without a last frame
        if not self.matched:
            return
        self.attributes = self._attributes(ctx)
        if not self.token:
            submit(self)
            return
        with self.lock:
            self.ended = True
            ready = self.front is not None
        if ready:
            submit(self)
        elif self.loop is not None:
            try:
                self.loop.call_soon_threadsafe(self.loop.call_later, FRONT_WAIT, expire, self.token)
            except RuntimeError:  # the loop is closed: the worker is leaving
                PENDING.pop(self.token, None)
                submit(self)

    def resume(self) -> None:
        """The request goes on after a wait that is no module's (a WSGI thread took it)."""
        self.mark = time.perf_counter_ns()

    def _start_events(self, sid: int):
        head, tracer = self.head, self.tracer
        yield "GENERAL_REQUEST_START", (
            ("SiteId", tracer.site_id), ("AppPoolId", tracer.pool), ("ConnId", sid),
            ("RawConnId", 0), ("RequestURL", request_url(head)), ("RequestVerb", head.method))
        yield "GENERAL_ENDPOINT_INFORMATION", (
            ("RemoteAddress", head.client[0]), ("RemotePort", head.client[1]),
            ("LocalAddress", head.server[0]), ("LocalPort", head.server[1]))
        yield "GENERAL_REQUEST_HEADERS", (("Headers", dump_headers(head.headers)),)
        if head.rewritten:  # a global rule in the front changed the URL before routing
            yield "URL_CHANGED", (("OldUrl", head.target.decode("utf-8", "replace")),
                                  ("NewUrl", url_of(head)), ("Scope", "Global"))

    def _attributes(self, ctx) -> list:
        user = ctx.user or ""
        self.activity = "{00000000-0000-0000-%04X-%012X}" % (_PID & 0xFFFF, next(_activities))
        return [("url", request_url(ctx.head)), ("siteId", self.tracer.site_id),
                ("appPoolId", self.tracer.pool), ("processId", _PID), ("verb", ctx.head.method),
                ("remoteUserName", user), ("userName", user), ("tokenUserName", _TOKEN_USER),
                ("authenticationType", ctx.auth_type or ("anonymous" if ctx.user == "" else
                                                         "NOT_AVAILABLE")),
                ("activityId", self.activity), ("failureReason", self.reason),
                ("statusCode", f"{ctx.status}.{ctx.substatus}" if ctx.substatus else str(ctx.status)),
                ("triggerStatusCode", self.trigger)]

    def record(self) -> freb.TraceRecord:
        """The events in wall-clock time, with the front's before and after."""
        # Wall-clock time of the monotonic stamps: the two clocks' offset now (they do not
        # drift apart measurably during one request).
        shift = time.time_ns() - time.perf_counter_ns()
        self.wall0 = self.t0 + shift
        events = []
        loop_thread = self.loop_thread
        for event in self.events:
            if len(event) == 5:  # a module step: (start, thread, prebuilt data, end, 1 | 2)
                t, thread, prebuilt, end, status = event
                thread = thread or loop_thread
                events.append((t + shift, thread, "NOTIFY_MODULE_START", prebuilt[0]))
                events.append((end + shift, thread, "NOTIFY_MODULE_END", prebuilt[status]))
                continue
            t, thread, opcode, data = event
            thread = thread or loop_thread
            if not opcode:  # the request's start: its events from the head, formatted now
                events.extend((t + shift, thread, op, d) for op, d in self._start_events(data)
                              if self.records(op))
            else:
                events.append((t + shift, thread, opcode, data() if callable(data) else data))
        # A step's tuple is appended when it ends, after what happened inside it: in time order
        # (perf_counter_ns is one clock for every thread; the sort is stable for equal stamps).
        events.sort(key=_first)
        worker_us = (self.answered_ns - self.t0) // 1000
        taken_ms = (time.perf_counter_ns() - self.t0) // 1_000_000
        attributes = list(self.attributes)
        if self.front is not None:
            until_answer_us, after_us, sent = self.front
            before_us = max(0, until_answer_us - worker_us)
            start = self.wall0 - before_us * 1000
            events.insert(0, (start, 0, "FRONT_REQUEST_RECEIVED", (
                ("FrontTimeBeforeWorker", f"{before_us / 1000:.3f} ms"),
                ("Protocol", "HTTP/" + self.head.version))))
            end = self.wall0 + (self.answered_ns - self.t0) + after_us * 1000
            events.append((max(end, events[-1][0]), 0, "FRONT_RESPONSE_SENT", (
                ("FrontTimeBeforeWorker", f"{before_us / 1000:.3f} ms"),
                ("WorkerTime", f"{worker_us / 1000:.3f} ms"),
                ("FrontTimeAfterWorker", f"{after_us / 1000:.3f} ms"),
                ("BytesSent", sent))))
            taken_ms = (until_answer_us + after_us) // 1000
        if self.dropped:
            events.append((events[-1][0], 0, "EVENTS_DROPPED", (("Dropped", self.dropped),)))
        attributes.append(("timeTaken", taken_ms))
        tracer = self.tracer
        return freb.TraceRecord(attributes, events, self.activity, _PID, tracer.site_id,
                                tracer.directory, tracer.max_files, tracer.max_bytes)


def _first(event) -> int:
    return event[0]


def url_of(head) -> str:
    """The request's path and query as the pipeline sees them now (after any rewrite)."""
    return (head.path + (b"?" + head.query if head.query else b"")).decode("utf-8", "replace")


def request_url(head) -> str:
    host = ""
    for name, value in head.headers:
        if name.lower() == b"host":
            host = value.decode("latin-1", "replace")
            break
    if not host:
        host = f"{head.server[0]}:{head.server[1]}"
    elif ":" not in host.rpartition("]")[2]:
        host = f"{host}:{head.server[1]}"
    return f"{head.scheme}://{host}{head.target.decode('utf-8', 'replace')}"[:HEADERS_LIMIT]


def dump_headers(headers) -> str:
    out = []
    size = 0
    for name, value in headers:
        line = name.decode("latin-1") + ": " + (
            MASK if name.lower() in MASKED else value[:HEADER_VALUE_LIMIT].decode("latin-1"))
        size += len(line) + 2
        if size > HEADERS_LIMIT:
            out.append("...")
            break
        out.append(line)
    return "\r\n".join(out)


def dump_block(lines: bytes) -> str:
    """A response header block ("Name: value\\r\\n..."), masked like the request's."""
    pairs = []
    for line in lines.split(b"\r\n"):
        if line:
            name, _, value = line.partition(b":")
            pairs.append((name, value.strip()))
    return dump_headers(pairs)


# ---- the traced copies of a pipeline's steps ----

def traced_steps(steps, pipeline) -> list:
    return [(phase, name, wrap(phase, name, step, pipeline)) for phase, name, step in steps]


def wrap(phase: Phase, name: str, step, pipeline):
    notification = freb.NOTIFICATIONS[int(phase)][1]
    if name == _CORE:
        if getattr(step, "__func__", None) is type(pipeline)._map:
            return _mapping(step)
        return step
    catch_all = pipeline.catch_all
    if not name:
        handlers: dict = {}

        def traced_handler(ctx):
            handler = ctx.handler or catch_all
            module = handler.id if handler is not None else ""
            data = handlers.get(module)
            if data is None:
                data = handlers[module] = _data_of(module, notification)
            return _run_step(ctx, step, data)
        return traced_handler
    data = _data_of(name, notification)
    if phase == Phase.AUTHENTICATE_REQUEST:
        return _authenticating(name, step, data)

    def traced(ctx):
        trace = ctx.freb
        if not trace.notify:
            return step(ctx)
        try:
            status = step(ctx)
        except BaseException:
            _ended(trace, ctx, data, 2)
            raise
        if status.__class__ is not Status:
            return _finish_later(trace, ctx, data, status)
        now = _perf_ns()  # _ended, inline: this runs for every module of a traced request
        trace.events.append((trace.mark, ctx.thread, data, now, 2 if status is FINISH else 1))
        trace.mark = now
        return status
    return traced


#: One module step in a trace's buffer: `(start, thread, data, end, 1 | 2)` (one tuple), which
#: `Trace.record` turns into NOTIFY_MODULE_START at start and NOTIFY_MODULE_END at end (with
#: data[1] NOTIFICATION_CONTINUE or data[2] NOTIFICATION_FINISH_REQUEST): one append and one
#: clock read per step. A step starts where the one before it ended (`trace.mark`): steps run
#: back to back, and where they do not (a WSGI request waiting for a thread, a pending step)
#: the mark is taken again (`resume`). The clock read is most of what a traced step costs.


def _data_of(module: str, notification: int) -> tuple:
    """The prebuilt Data of a module's enter, continue and finish events."""
    def end(status):
        return (("ModuleName", module), ("Notification", notification),
                ("fIsPostNotificationEvent", "false"), ("NotificationStatus", status))
    return ((("ModuleName", module), ("Notification", notification), ("fIsPostNotification", "false")),
            end("NOTIFICATION_CONTINUE"), end("NOTIFICATION_FINISH_REQUEST"))




def _ended(trace, ctx, data, status: int) -> None:
    now = _perf_ns()
    trace.events.append((trace.mark, ctx.thread, data, now, status))
    trace.mark = now


def _run_step(ctx, step, data):
    trace = ctx.freb
    if not trace.notify:
        return step(ctx)
    try:
        status = step(ctx)
    except BaseException:
        _ended(trace, ctx, data, 2)
        raise
    if status.__class__ is not Status:
        return _finish_later(trace, ctx, data, status)
    _ended(trace, ctx, data, 2 if status is FINISH else 1)
    return status


async def _finish_later(trace, ctx, data, awaitable):
    """A step that went pending (an ASGI app, a password check on a thread): its end event
    when it resolves, so the module's span covers the wait."""
    try:
        status = await awaitable
    except BaseException:
        _ended(trace, ctx, data, 2)
        raise
    _ended(trace, ctx, data, 2 if status is FINISH else 1)
    return status


def _authenticating(name: str, step, data):
    """An authentication module's traced step: IIS's Authentication area around it (AUTH_START,
    AUTH_REQUEST_AUTH_TYPE once per request, AUTH_END with what it left). USER_SET and
    AUTH_SUCCEEDED come from ctx.set_user; a 401 shows as MODULE_SET_RESPONSE_ERROR_STATUS."""
    def traced_auth(ctx):
        trace = ctx.freb
        if trace.rule.table["AUTH_START"][1]:
            if not trace.auth_seen:
                trace.auth_seen = True
                scheme = ""
                for header, value in ctx.head.headers:
                    if header.lower() == b"authorization":
                        scheme = value.split(b" ", 1)[0][:32].decode("latin-1")
                        break
                trace.emit("AUTH_REQUEST_AUTH_TYPE", (("RequestAuthType", scheme or "anonymous"),))
            trace.emit("AUTH_START", (("AuthTypeSupported", name),))
            try:
                status = _run_step(ctx, step, data)
            except BaseException:
                _auth_end(trace, ctx, name)
                raise
            if status.__class__ is not Status:
                return _auth_end_later(trace, ctx, name, status)
            _auth_end(trace, ctx, name)
            return status
        return _run_step(ctx, step, data)
    return traced_auth


def _auth_end(trace, ctx, name: str) -> None:
    trace.emit("AUTH_END", (("AuthTypeSupported", name),
                            ("UserSet", "true" if ctx.user is not None else "false")))


async def _auth_end_later(trace, ctx, name: str, awaitable):
    """A module whose check went pending (a password check on a thread): AUTH_END when it
    resolves, with the user it set."""
    try:
        return await awaitable
    finally:
        _auth_end(trace, ctx, name)


def _mapping(step):
    def traced_map(ctx):
        old = ctx.handler
        status = step(ctx)
        new = ctx.handler
        if new is not old and new is not None:
            ctx.freb.emit("HANDLER_CHANGED", (
                ("OldHandlerName", old.id if old is not None else ""),
                ("NewHandlerName", new.id), ("NewHandlerModules", new.id),
                ("NewHandlerScriptProcessor", ""), ("NewHandlerType", "")))
        return status
    return traced_map


# ---- the front's answer and the writer thread ----

#: token -> Trace waiting for the front's TRACED.
PENDING: dict[int, Trace] = {}


def front_times(payload) -> None:
    """A TRACED frame (on the loop): the front's times for a trace."""
    from wasp.wire import frames

    token, until_answer, after, sent = frames.unpack_traced(payload)
    trace = PENDING.pop(token, None)
    if trace is None:
        return  # expired already, or not ours
    with trace.lock:
        trace.front = (until_answer, after, sent)
        ready = trace.ended
    if ready:
        submit(trace)


def expire(token: int) -> None:
    trace = PENDING.pop(token, None)
    if trace is not None:
        submit(trace)


class Writer:
    """The worker's trace-writer thread: renders and stores, so no request waits on a disk."""

    def __init__(self):
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = None
        self.lock = threading.Lock()
        self.written = 0
        self.dropped = 0

    def put(self, trace: Trace) -> None:
        if self.queue.qsize() >= QUEUE_LIMIT:
            self.dropped += 1
            log.warning("failed request trace dropped: %d traces wait for the writer already",
                        QUEUE_LIMIT)
            return
        self.queue.put(trace)
        if self.thread is None:
            with self.lock:
                if self.thread is None:
                    self.thread = threading.Thread(target=self._run, name="freb-writer", daemon=True)
                    self.thread.start()

    def _run(self) -> None:
        while True:
            trace = self.queue.get()
            if trace is None:
                return
            try:
                record = trace.record()
                freb.store(record, freb.render(record))
                self.written += 1
            except Exception:
                log.exception("writing a failed request trace failed")

    def flush(self, timeout: float = 5.0) -> None:
        """At worker exit: let the traces queued so far be written (bounded)."""
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join(timeout)


WRITER = Writer()


def flush_all(timeout: float = 2.0) -> None:
    """At worker exit: write what is pending without the front's times, then wait (bounded)."""
    for token in list(PENDING):
        trace = PENDING.pop(token, None)
        if trace is not None and trace.ended:
            submit(trace)
    WRITER.flush(timeout)


def submit(trace: Trace) -> None:
    WRITER.put(trace)
