"""One request as the front sees it, from its first byte to the access-log line.

A Request lives on its connection's pipeline and, while it waits for a worker, in its pool's queue.
It is a plain slotted object: the per-request path creates one of these and nothing dict-heavy.
"""

from __future__ import annotations

from enum import Enum, IntEnum


class Stage(IntEnum):
    PARSING = 0     # head (or body) still arriving
    WAITING = 1     # parsed, behind an earlier request of the same connection (pipelining)
    QUEUED = 2      # in its pool's queue, no worker yet
    EXECUTING = 3   # dispatched to a worker, no response yet (IIS: ExecuteRequestHandler)
    SENDING = 4     # response head written, body on its way (IIS: SendResponse)
    DONE = 5


# Legal moves. PARSING -> EXECUTING/QUEUED: the head-of-line request is submitted as soon as its
# head is complete, its body streams afterwards. Any stage may end (DONE): errors, cancels.
_MOVES: tuple[frozenset, ...] = (
    frozenset({Stage.WAITING, Stage.QUEUED, Stage.EXECUTING, Stage.SENDING, Stage.DONE}),  # PARSING
    frozenset({Stage.QUEUED, Stage.EXECUTING, Stage.SENDING, Stage.DONE}),                 # WAITING
    frozenset({Stage.EXECUTING, Stage.SENDING, Stage.DONE}),                               # QUEUED
    frozenset({Stage.SENDING, Stage.DONE}),                                                # EXECUTING
    frozenset({Stage.DONE}),                                                               # SENDING
    frozenset(),                                                                           # DONE
)

#: How `list_requests` names a stage (IIS's request pipeline names where they exist).
STAGE_NAMES = {
    Stage.PARSING: "Queued", Stage.WAITING: "Queued", Stage.QUEUED: "Queued",
    Stage.EXECUTING: "ExecuteRequestHandler", Stage.SENDING: "SendResponse", Stage.DONE: "Done",
}


#: Python 3.11 looks an enum member up on its class at the cost of a function call: the stages
#: the per-request path names are module globals.
_PARSING = Stage.PARSING


class IllegalMove(RuntimeError):
    pass


class ConnState(Enum):
    """A client connection's state (the request states are per request, above)."""

    OPEN = "Open"
    TUNNEL = "Tunnel"       # after a 101: raw bytes both ways
    CLOSING = "Closing"     # last response written, write side shut, discarding input
    CLOSED = "Closed"


CONN_MOVES = {
    ConnState.OPEN: {ConnState.TUNNEL, ConnState.CLOSING, ConnState.CLOSED},
    ConnState.TUNNEL: {ConnState.CLOSING, ConnState.CLOSED},
    ConnState.CLOSING: {ConnState.CLOSED},
    ConnState.CLOSED: set(),
}


class IllegalConnMove(RuntimeError):
    pass


class Request:
    __slots__ = (
        # identity and timing
        "conn", "id", "stage", "t0", "queued_at",
        # the head
        "method", "target", "version", "headers", "path", "query", "host", "user_agent", "referer",
        "content_length", "chunked", "expect", "upgrade", "websocket", "keep_alive", "is_head",
        "head_bytes", "headers_done", "body_done", "received",
        # routing and dispatch
        "app", "pool", "link", "stream", "window", "body_buf", "body_buffered",
        # the response
        "status", "substatus", "win32", "chunked_out", "close_after", "unacked", "no_body",
        "error", "file", "acme", "resp_headers",
        # the response cache: key (None: never cached), frequently hit, the worker's CACHE hint,
        # and the request's validators (If-None-Match, If-Modified-Since)
        "cache_key", "cache_admit", "cache_hint", "no_cache", "inm", "ims",
        # the client behind a trusted proxy (None: the connection's), forwarding headers seen
        "client", "c_ip", "scheme", "forwarded",
        # who the worker ran the request as (USER frame; b"" = anonymous or none): cs-username
        "user",
        # the modules the worker ran it through (MODULES frame), for the WASP_MODULES log field
        "modules",
        # HTTP/2: the stream's H2Stream (None over HTTP/1.1)
        "h2",
        # URL Rewrite's global rules (front/rewriting.py): path/query were rewritten; the
        # absolute URL a rule proxies to; the front's own answer (a redirect, a custom response,
        # or rewriting.ABORT)
        "rewritten", "proxy_url", "answer",
        # OpenTelemetry (front/tracing.py): (tracing, span, traceparent, tracestate); None = off
        "trace",
        # a FREB rule traces it: (token, loop time of the worker's last frame) from the TRACE
        # frame, or None; the front answers TRACED with its times once it logged the request
        "freb",
    )

    def __init__(self, conn, rid: int, t0: float):
        self.conn = conn
        self.id = rid
        self.stage = _PARSING
        self.t0 = t0
        self.queued_at = 0.0
        self.freb = None
        self.method = b""
        self.target = b""
        self.version = ""
        self.headers: list[tuple[bytes, bytes]] = []
        self.path = b""
        self.query = b""
        self.host: bytes | None = None
        self.user_agent: bytes | None = None
        self.referer: bytes | None = None
        self.content_length = -1
        self.chunked = False
        self.expect = False
        self.upgrade = False
        self.websocket = False
        self.keep_alive = True
        self.is_head = False
        self.head_bytes = 0
        self.headers_done = False
        self.body_done = False
        self.received = 0       # body bytes so far (where a Content-Length body ends)
        self.app = None
        self.pool = None
        self.link = None
        self.stream = 0
        self.window = 0
        self.body_buf: list[bytes] | None = None
        self.body_buffered = 0
        self.status = 0
        self.substatus = 0
        self.win32 = 0
        self.chunked_out = False
        self.close_after = False
        self.unacked = 0
        self.no_body = False
        self.error = None
        self.file = None
        self.cache_key = None
        self.cache_admit = False
        self.cache_hint = None
        self.user = b""
        self.modules = None
        self.no_cache = False
        self.inm = None
        self.ims = None
        self.client: tuple[str, int] | None = None
        self.c_ip: bytes | None = None
        self.scheme: str | None = None
        self.forwarded: list | None = None  # [Forwarded, X-Forwarded-For, X-Forwarded-Proto] values
        self.acme: bytes | None = None   # the key authorization of an HTTP-01 challenge it asks for
        # The response's headers for a custom log field (logformat.py): the worker's block over
        # HTTP/1.1, the header list sent over HTTP/2; None for the front's own answers.
        self.resp_headers: bytes | list | None = None
        self.h2 = None
        self.rewritten = False
        self.proxy_url = ""
        self.answer = None
        self.trace = None

    def move(self, stage: Stage) -> None:
        if stage not in _MOVES[self.stage]:
            raise IllegalMove(f"request {self.id}: {self.stage.name} -> {stage.name}")
        self.stage = stage

    @property
    def has_body(self) -> bool:
        return self.chunked or self.content_length > 0

    def take_window(self) -> list:
        """The buffered body chunks that fit the worker's window for this stream, taken off
        `body_buf` (the last one split when it does not fit whole); `window` and `body_buffered`
        drop by their bytes. HTTP/1.1 bodies, tunnels and HTTP/2 streams all send with it."""
        buf = self.body_buf
        window = self.window
        taken = []
        while buf and window > 0:
            chunk = buf[0]
            if len(chunk) <= window:
                buf.pop(0)
            else:
                buf[0] = chunk[window:]
                chunk = chunk[:window]
            window -= len(chunk)
            taken.append(chunk)
        self.body_buffered -= self.window - window
        self.window = window
        return taken
