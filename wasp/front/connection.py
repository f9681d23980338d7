"""One client connection: HTTP/1.x in, frames to a worker, the worker's response out.

httptools parses; its callbacks fill a slotted Request. Requests are answered strictly in order:
only the oldest request of a connection (`_pending[0]`) is submitted to its pool; later pipelined
ones are parsed ahead and wait (reading pauses when too many wait or too much body is buffered).

Back-pressure both ways uses the WINDOW frames of docs/internals.md: request body bytes go to the
worker only within the stream's window, else they are buffered and the client is not read; response
bytes are acknowledged to the worker only while the client transport is not over its high-water
mark, else when `resume_writing` says it drained.

Errors the front answers itself (HTTP.sys's: bad requests, limits, 503s) are HttpErrors turned into
an HTTP.sys error page in `_send_error`, the one place that does it.
"""

from __future__ import annotations

import asyncio
from collections import deque

from httptools import HttpParserCallbackError, HttpParserError, HttpParserInvalidMethodError, \
    HttpParserInvalidURLError, HttpParserUpgrade, HttpRequestParser

from wasp.config.model import UNIX_PREFIX
from wasp.errors import BadRequest, HttpError
from wasp.front import rewriting
from wasp.front.challenges import PREFIX as _HTTP01, http01_answer, http01_response
from wasp.front.h2conn import Http2Connection
from wasp.front.qos import MIN_RATE_TIMER, QosMixin, proxy_key
from wasp.front.endings import RequestEndings
from wasp.front.request import CONN_MOVES, ConnState, IllegalConnMove, Request, Stage
from wasp.front.response import ResponseWriter
from wasp.front.routing import ACCESS_REQUIRE_CERT, ACCESS_SSL
from wasp.front.tls import connection_facts
from wasp.wire import w3c
from wasp.wire.chunked import ChunkScanner, head_end
from wasp.wire.h2rules import PREFACE
from wasp.wire.heads import HeadScanner
from wasp.wire.http import (AppPoolUnavailable, CertRequired, EntityTooLarge, FieldTooLong,
                            InvalidHeader, InvalidHostname, InvalidUrl, InvalidVerb,
                            RequestTooLong, SslRequired, UnknownEncoding, UrlTooLong,
                            VersionNotSupported, error_response)
from wasp.wire.urls import cook_target

#: Request body bytes the front holds for one connection before it stops reading the client.
BODY_BUFFER_LIMIT = 64 * 1024
#: Parsed requests waiting behind the one being answered before the front stops reading.
MAX_PIPELINE = 16
#: After a protocol error: how long to read and discard what the client still sends before closing,
#: so the error page is not lost to a reset.
LINGER = 2.0

_HOST, _CONTENT_LENGTH, _TRANSFER_ENCODING, _EXPECT, _UPGRADE, _USER_AGENT, _REFERER, _NO_CACHE, \
    _INM, _IMS = range(1, 11)
_FORWARDED, _X_FORWARDED_FOR, _X_FORWARDED_PROTO = range(11, 14)
_SPECIAL = {b"host": _HOST, b"content-length": _CONTENT_LENGTH, b"transfer-encoding": _TRANSFER_ENCODING,
            b"expect": _EXPECT, b"upgrade": _UPGRADE, b"user-agent": _USER_AGENT, b"referer": _REFERER,
            # HTTP.sys never answers these from its cache: authenticated, partial, source requests
            b"authorization": _NO_CACHE, b"range": _NO_CACHE, b"if-range": _NO_CACHE,
            b"translate": _NO_CACHE,
            b"if-none-match": _INM, b"if-modified-since": _IMS,
            # forwarding headers: taken from server.trusted_proxies peers only (qos.py)
            b"forwarded": _FORWARDED, b"x-forwarded-for": _X_FORWARDED_FOR,
            b"x-forwarded-proto": _X_FORWARDED_PROTO}


def _canonical(name: bytes) -> bytes:
    return b"-".join(part.capitalize() for part in name.split(b"-"))


#: The header names as clients usually spell them (as listed, lower case, or Canonical-Case) ->
#: their _SPECIAL kind, 0 for common names that are none: one lookup of the name as sent instead
#: of lower() and a lookup. A name not here (any other spelling) goes through lower() as before.
_KIND = {spelling: kind for name, kind in list(_SPECIAL.items()) + [(n, 0) for n in (
    b"accept", b"accept-encoding", b"accept-language", b"cache-control", b"connection", b"cookie",
    b"content-type", b"origin", b"pragma", b"priority", b"dnt", b"upgrade-insecure-requests",
    b"sec-fetch-dest", b"sec-fetch-mode", b"sec-fetch-site", b"sec-fetch-user", b"sec-ch-ua",
    b"sec-ch-ua-mobile", b"sec-ch-ua-platform", b"te", b"keep-alive", b"x-requested-with")]
    for spelling in (name, _canonical(name))}
_KIND[b"TE"] = _KIND[b"DNT"] = 0
_GET = b"GET"
_HEAD = b"HEAD"

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

#: Errors that IIS logs in the site's W3C log (they happen after routing, in IIS proper);
#: every other error the front answers goes to HTTPERR like HTTP.sys's.
_W3C_REASONS = frozenset({"EntityTooLarge", "Internal", "WorkerAbort", "SslRequired", "CertRequired"})

_OPEN = ConnState.OPEN
_TUNNEL = ConnState.TUNNEL
_CLOSING = ConnState.CLOSING
_CLOSED = ConnState.CLOSED
_DONE = Stage.DONE   # a global: an enum member lookup costs a call on Python 3.11


class _Stopped(Exception):
    """Raised in a parser callback to stop parsing a connection that is closing."""


class _Feed:
    """The one httptools callbacks object of the process: `conn` is the connection whose bytes
    llhttp is being fed (set around each feed_data), each callback is a plain function that hands
    the event to it. A parser built on the connection itself would hold six bound methods, a
    reference cycle per connection that only the cyclic GC frees, and six more objects for each
    full collection to walk (with 10,000 idle connections, about a third of the front's objects)."""

    __slots__ = ("conn", "on_message_begin", "on_url", "on_header", "on_headers_complete", "on_body",
                 "on_message_complete")

    def __init__(self):
        self.conn = None
        self.on_message_begin = lambda: self.conn.on_message_begin()
        self.on_url = lambda url: self.conn.on_url(url)
        self.on_header = lambda name, value: self.conn.on_header(name, value)
        self.on_headers_complete = lambda: self.conn.on_headers_complete()
        self.on_body = lambda data: self.conn.on_body(data)
        self.on_message_complete = lambda: self.conn.on_message_complete()


_FEED = _Feed()


def classify(exc: Exception) -> HttpError:
    """The HttpError for an httptools exception (ours, raised in a callback, or llhttp's)."""
    if isinstance(exc, HttpParserCallbackError):
        inner = exc.__context__
        if isinstance(inner, HttpError):
            return inner
        return HttpError(f"parser callback failed: {inner!r}", status=500, reason="Internal")
    if isinstance(exc, HttpParserInvalidMethodError):
        return InvalidVerb(str(exc))
    if isinstance(exc, HttpParserInvalidURLError):
        return InvalidUrl(str(exc))
    message = str(exc)
    if message == "Invalid HTTP version":
        return VersionNotSupported(message)
    if "header token" in message:
        return InvalidHeader(message)
    if "Transfer-Encoding" in message and "Content-Length" not in message:
        return UnknownEncoding(message)
    return BadRequest(message)


class HttpConnection(ResponseWriter, RequestEndings, QosMixin, asyncio.Protocol):
    __slots__ = ("server", "transport", "parser", "state", "peer", "local", "table", "c_ip", "s_ip",
                 "s_port", "deadline", "timer", "_cur", "_pending", "_in_head", "_heads", "_head_scan",
                 "_scan", "_tail",
                 "_read_paused", "_write_paused", "_buffered", "_broken", "_eof", "_upgrading",
                 "_early", "_sockfd", "tls", "_refused",
                 # QoS and proxies (qos.py)
                 "scheme", "proxied", "site_id", "_idle", "_proxy", "_buckets", "_chunk",
                 "_throttled", "_turn", "_tpaused", "_sent", "_send_t0", "_held", "_drain_close")

    def __init__(self, server):
        self.server = server
        self.transport = None
        self.parser = HttpRequestParser(_FEED)
        # HTTP.sys accepts bare LF line ends (reference §5.4); llhttp needs both flags for the
        # request line too. Bare CR inside the header block stays an error.
        self.parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True,
                                             lenient_optional_lf_after_cr=True)
        self.state = _OPEN
        self.peer = ("", 0)
        self.local = ("", 0)
        self.table = None
        self.c_ip = self.s_ip = b"-"
        self.s_port = b"0"
        self.deadline = 0.0
        self.timer = ""
        self._cur: Request | None = None
        self._pending: deque[Request] = deque()
        self._in_head = False
        self._heads = 0
        # The raw bytes of the head being read, held to the limits whatever the reads.
        self._head_scan = HeadScanner(server.max_field_length,
                                      server.max_request_bytes + server.max_field_length)
        self._scan: ChunkScanner | None = None   # the framing limits of the chunked body being read
        self._tail = b""    # the last bytes of a read that ended inside a head
        self._read_paused = False
        self._write_paused = False
        self._buffered = 0
        self._broken = False
        self._eof = False
        self._upgrading = False
        self._early: list[bytes] | None = None   # tunnel bytes that came before the 101
        self._sockfd = -1
        self._refused = False
        self.tls = None   # TlsInfo of a TLS connection
        self.scheme = "http"
        self.proxied = False        # peer/scheme named by a trusted PROXY header
        self.site_id = 0            # the site this connection is counted for (0: none yet)
        self._idle = server.idle_timeout
        self._proxy: bytes | None = None     # PROXY header bytes so far, while awaiting it
        self._buckets = None        # bandwidth buckets to spend from; None: no limit
        self._chunk = 0
        self._throttled = False     # waiting for its turn at the bandwidth: writing paused
        self._turn = False          # a bucket gave it its turn: the next piece goes out
        self._held = None           # limited: response bytes waiting for their turn (response.py)
        self._drain_close = False   # limited: close once the held bytes are written
        self._tpaused = False       # the transport is over its high-water mark
        self._sent = 0              # bytes of the current response written
        self._send_t0 = 0.0         # when the current response started

    def move(self, state: ConnState) -> None:
        if state not in CONN_MOVES[self.state]:
            raise IllegalConnMove(f"connection {self.peer}: {self.state.value} -> {state.value}")
        self.state = state

    # ================================================================ asyncio callbacks
    def connection_made(self, transport) -> None:
        self.transport = transport
        server = self.server
        peer = transport.get_extra_info("peername") or ("", 0)
        local = transport.get_extra_info("sockname") or ("", 0)
        self.peer = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else ("", 0)
        self.local = (str(local[0]), int(local[1])) if isinstance(local, tuple) else ("", 0)
        if isinstance(local, (str, bytes)) and local:
            # A Unix socket binding: routed by its path (the Binding's "unix:/path", port 0); the
            # client is on this machine and has no address, so it is 127.0.0.1 (port 0).
            path = local.decode("utf-8", "surrogateescape") if isinstance(local, bytes) else local
            self.local = (UNIX_PREFIX + path, 0)
            self.peer = ("127.0.0.1", 0)
        self.c_ip = self.peer[0].encode() or b"-"
        self.s_ip = self.local[0].encode() or b"-"
        self.s_port = b"%d" % self.local[1]
        sock = transport.get_extra_info("socket")
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            if getattr(ssl_object, "wasp_acme", False):
                # A TLS-ALPN-01 validation: the handshake was the answer (RFC 8737 §3).
                transport.close()
                return
            # The bytes on the socket are TLS records: files go through the transport.
            sock = None
            self.tls = connection_facts(ssl_object)
            self.scheme = "https"
            alpn_h2 = ssl_object.selected_alpn_protocol() == "h2"
        else:
            alpn_h2 = False
        if sock is not None:
            try:
                self._sockfd = sock.fileno()
            except (OSError, AttributeError):
                self._sockfd = -1
        self.table = server.router.table(self.local[0], self.local[1])
        server.connections.add(self)
        self.deadline = server.loop.time() + server.idle_timeout
        self.timer = "Timer_ConnectionIdle"
        if server.over_connection_limit():
            server.refused += 1
            self._refused = True
            self._error_before_request(AppPoolUnavailable("ConnLimit"))
            return
        self._buckets = server.buckets_for(0)
        if self._buckets is not None:
            self._chunk = server.chunk_for(self._buckets)
        proxy_keys = server.router.proxy_keys
        if proxy_keys and proxy_key(self.local) in proxy_keys and not self._start_proxy():
            return
        only = self.table.only
        if only is not None:
            try:
                self._join_site(only)
            except AppPoolUnavailable as err:
                self._error_before_request(err)
                return
        if alpn_h2:
            self._to_h2(b"")   # the TLS handshake chose HTTP/2 (the site count goes with it)

    def data_received(self, data: bytes) -> None:
        state = self.state
        if state is not _OPEN or self._drain_close:
            if state is _TUNNEL:
                self._tunnel_in(data)
            return
        if self._upgrading:
            if self._early is None:
                self._early = []
            self._early.append(data)
            self._buffered += len(data)
            self._flow()
            return
        if self._broken:
            return
        if self._proxy is not None:
            data = self._proxy_in(data)
            if not data:
                return
        if not self._heads and PREFACE.startswith(data[:24]) and len(data) > 3 and self.table.http2:
            self._to_h2(data)   # h2c with prior knowledge
            return
        heads = self._heads
        self._parse(data)
        if self.state is not _OPEN:
            return
        server = self.server
        if self._in_head:
            if heads != self._heads:
                self.deadline = server.loop.time() + server.header_wait
                self.timer = "Timer_HeaderWait"
        elif self._cur is not None:
            self.deadline = server.loop.time() + self._idle
            self.timer = "Timer_EntityBody"
        elif self._pending:
            self.deadline = 0.0
        if self._read_paused or self._buffered > BODY_BUFFER_LIMIT or len(self._pending) > MAX_PIPELINE \
                or self._broken:
            self._flow()

    def _to_h2(self, data: bytes) -> None:
        """The connection began with the HTTP/2 preface: the h2 protocol takes the transport."""
        h2conn = Http2Connection(self.server)
        self.state = _CLOSED
        self.transport.set_protocol(h2conn)
        h2conn.adopt(self.transport, self, data)

    def _parse(self, data: bytes) -> None:
        """Feed llhttp, cut where a head ends and where a chunked body ends, so that the
        ChunkScanner of a chunked body walks exactly the bytes llhttp takes as that body (and
        walks them first: a limit stops the connection before llhttp or httptools buffer them)."""
        n = len(data)
        pos = 0
        while pos < n:
            scan = self._scan
            req = self._cur
            over = None
            claimed = False
            if scan is not None:
                try:
                    end = scan.feed(data, pos)
                except HttpError as err:
                    self._parse_failed(err)
                    return
            elif req is None and pos == 0 and n < self._head_scan.max_line and data[n - 1] == 10 \
                    and data.find(b"\n\r") == n - 3 and data.find(b"\n\n") < 0:
                # The common read: one whole head with CRLF line ends and nothing after it. Its only
                # empty line is the last (what head_end would find: every end it looks for starts
                # with an LF and then a CR or LF), and it is shorter than one header line may be,
                # so no HeadScanner limit can be reached (the scanner restarts at the next head).
                end = n
                claimed = True
            elif req is None or self._in_head:
                # The previous read's tail only when a head is in progress: CRs and LFs before a
                # request line (which llhttp skips) end no head.
                end = head_end(data, pos, self._tail if pos == 0 and self._in_head else b"")
                claimed = end >= 0
                if end < 0:
                    end = n
                if req is None:
                    self._head_scan.reset()
                cut, over = self._head_scan.feed(data, pos, end)
                if over is not None:
                    end = cut  # llhttp gets the bytes before the limit: an earlier fault is its
                    claimed = False
                elif claimed and end == pos:
                    self._parse_failed(BadRequest("bare CR ends the request head"))
                    return
            else:
                # A Content-Length body: cut where it ends, a pipelined chunked request may follow.
                left = req.content_length - req.received
                end = pos + left if 0 < left < n - pos else n
            piece = data if pos == 0 and end == n else data[pos:end]
            feed = _FEED
            outer = feed.conn
            feed.conn = self
            try:
                self.parser.feed_data(piece)
            except HttpParserUpgrade as exc:
                if not self._upgraded(data[pos:] if pos else data, exc.args[0]):
                    return
                # An Upgrade wasp does not speak: the rest is HTTP/1.1 again (a loop, not a
                # recursion: one read may hold thousands of such requests).
                pos += exc.args[0]
                if self.state is not _OPEN or self._broken:
                    return
                continue
            except HttpParserError as exc:
                if self.state is _OPEN:
                    self._parse_failed(classify(exc))
                return
            finally:
                feed.conn = outer
            if self.state is not _OPEN or self._broken:
                return
            if over is not None:
                self._parse_failed(over)
                return
            if claimed and self._in_head:
                # llhttp ends a head at a CR without its LF only when it sees the next byte, the
                # body's, so no ChunkScanner could walk that body. A bare CR ends no line (RFC 9112
                # §2.2): refuse it.
                self._parse_failed(BadRequest("bare CR ends the request head"))
                return
            if scan is None and self._scan is not None:
                cur = self._cur
                if cur is None or cur.received or cur.body_done:
                    # llhttp went past the head into a chunked body in the piece cut as the head.
                    self._parse_failed(BadRequest("chunked framing out of step"))
                    return
            if scan is not None and (req.received != scan.data_bytes or scan.done != req.body_done):
                # llhttp and the scanner disagree on where the body is: refuse rather than guess.
                self._parse_failed(BadRequest("chunked framing out of step"))
                return
            if scan is not None and scan.done:
                self._scan = None
            pos = end
        if self._cur is None or self._in_head:
            # The last two bytes read of the head, even when this read held fewer.
            self._tail = data[-2:] if n >= 2 else (self._tail + data)[-2:]
        else:
            self._tail = b""

    def eof_received(self):
        state = self.state
        if state is _TUNNEL:
            req = self._pending[0] if self._pending else None
            if req is not None and req.link is not None and req.link.owns(req):
                req.link.send_end(req)
                return True
            return False
        if state is _OPEN and (self._pending or self._held) and self._cur is None and not self._in_head:
            # A client may shut down its side once it has sent its request(s): answer, then close.
            # (With a request still incomplete, the client gave up on it: close, which cancels.)
            # On a limited connection the last response may be answered and logged already while
            # its bytes still wait for bandwidth (`_held`): they go out first, then the close.
            self._eof = True
            if self._buckets is not None:
                self._watch_hangup()   # or it closed: a throttled response would not tell (qos.py)
            if not self._pending:
                self._close()
            return True
        return False

    def connection_lost(self, exc) -> None:
        if self.state is _CLOSED:
            return
        self.state = _CLOSED
        server = self.server
        server.connections.discard(self)
        server.hangup_watch.discard(self)
        self._held = None
        if self._refused:
            server.refused -= 1
        server.connection_closed()
        self._leave_site()
        pending = self._pending
        while pending:
            req = pending.popleft()
            self._drop(req)
        self._cur = None

    def pause_writing(self) -> None:
        self._write_paused = True
        self._tpaused = True
        self._arm_min_rate()

    def resume_writing(self) -> None:
        self._tpaused = False
        if self.timer is MIN_RATE_TIMER:
            if self.idle:
                self.deadline = self.server.loop.time() + self._idle
                self.timer = "Timer_ConnectionIdle"
            else:
                self.deadline = 0.0
                self.timer = ""
        if self._throttled:
            return  # in bandwidth debt: _unthrottle resumes
        self._write_paused = False
        self._writable()

    def _writable(self) -> None:
        """Writing may go on: held bytes, the next file chunk, or the acknowledgements held back."""
        if self._held:
            self._release()
            if self._held or self._write_paused:
                return
        if not self._pending:
            return
        req = self._pending[0]
        if req.file is not None:
            self._pump_file(req)
        elif req.unacked:
            n = req.unacked
            req.unacked = 0
            if req.link is not None:
                req.link.send_window(req, n)

    # ================================================================ httptools callbacks
    def on_message_begin(self) -> None:
        server = self.server
        self._cur = Request(self, next(server.ids), server.loop.time())
        self._in_head = True
        self._heads += 1

    def on_url(self, url: bytes) -> None:
        req = self._cur
        req.target += url
        if len(req.target) > self.server.max_url:
            raise UrlTooLong("request target over max_url")

    def on_header(self, name: bytes, value: bytes) -> None:
        req = self._cur
        if req.headers_done:
            return  # trailer fields of a chunked body: not passed on
        server = self.server
        size = len(name) + len(value)
        if size + 2 > server.max_field_length:
            raise FieldTooLong("header line over max_field_length")
        req.head_bytes += size + 4
        if req.head_bytes + len(req.target) > server.max_request_bytes:
            raise RequestTooLong("request head over max_request_bytes")
        req.headers.append((name, value))
        kind = _KIND.get(name)
        if kind is None:
            kind = _SPECIAL.get(name.lower())
            if kind is None:
                return
        elif not kind:
            return
        if kind == _HOST:
            if req.host is not None:
                raise InvalidHostname("more than one Host header")
            req.host = value
        elif kind == _CONTENT_LENGTH:
            try:
                req.content_length = int(value)
            except ValueError:
                raise BadRequest("bad Content-Length") from None
        elif kind == _TRANSFER_ENCODING:
            if value.strip().lower() != b"chunked":
                raise UnknownEncoding("Transfer-Encoding other than chunked")
            req.chunked = True
        elif kind == _EXPECT:
            req.expect = value.strip().lower() == b"100-continue"
        elif kind == _UPGRADE:
            req.upgrade = b"websocket" in value.lower()
        elif kind == _USER_AGENT:
            req.user_agent = value
        elif kind == _REFERER:
            req.referer = value
        elif kind == _NO_CACHE:
            req.no_cache = True
        elif kind == _INM:
            req.inm = value
        elif kind == _IMS:
            req.ims = value
        else:
            seen = req.forwarded
            if seen is None:
                seen = req.forwarded = [None, None, None]
            i = kind - _FORWARDED
            if seen[i] is None:
                seen[i] = [value]
            else:
                seen[i].append(value)

    def on_headers_complete(self) -> None:
        if self.state is not _OPEN:
            raise _Stopped()  # closing after an earlier answer: parse no further requests
        req = self._cur
        self._in_head = False
        parser = self.parser
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise VersionNotSupported(f"HTTP/{version}")
        req.version = version
        method = parser.get_method()
        req.method = method
        req.is_head = method == b"HEAD"
        req.keep_alive = parser.should_keep_alive()
        path, query, authority = cook_target(req.target)
        req.path = path
        req.query = query
        host = authority if authority is not None else req.host
        if host is None and version == "1.1":
            raise InvalidHostname("HTTP/1.1 request without Host")
        server = self.server
        if server.acme_http01 and path.startswith(_HTTP01) and host is not None \
                and not req.chunked and req.content_length <= 0:
            req.acme = http01_answer(server.acme_http01, method, path, query, host)
            if req.acme is not None:  # answered by the front itself, before routing to a pool
                req.headers_done = req.body_done = True
                self._pending.append(req)
                if len(self._pending) == 1:
                    self._start(req)
                else:
                    req.move(Stage.WAITING)
                return
        rules = server.global_rules
        if rules is not None:
            route_path = rules.apply(req, self, host, path, query)
            if req.rewritten:
                path, query = req.path, req.query
        else:
            route_path = path
        site, app = self.table.route(host, route_path)
        req.app = app
        req.pool = app.queue
        if req.answer is not None:
            # A global rule answers (redirect, custom response, abort): no body is waited for.
            if not self.site_id:
                self._join_site(site)
            req.headers_done = True
            self._pending.append(req)
            if len(self._pending) == 1:
                self._start(req)
            else:
                req.move(Stage.WAITING)
            return
        if app.access:
            self._check_access(app.access)
        if req.forwarded is not None and server.trusted:
            self._forwarded(req)
        if not self.site_id:
            self._join_site(site)
        limit = server.max_content
        if limit and req.content_length > limit:
            raise EntityTooLarge("Content-Length over max_allowed_content_length")
        if req.upgrade and parser.should_upgrade():
            req.websocket = True
        if app.cache and not req.no_cache and not query and not req.chunked and req.content_length <= 0 \
                and not req.upgrade and (method == _GET or method == _HEAD):
            # The site (by the application's key), the scheme and Host as sent, the path as routed.
            # A client certificate authenticates the request: never cached (HTTP.sys rule 8).
            # The scheme is the one the app will see: a trusted proxy's (PROXY TLV, forwarding
            # headers) or the connection's.
            tls = self.tls
            if tls is not None and tls.client_cert:
                pass
            elif (req.scheme or ("https" if tls is not None else self.scheme)) != "https":
                req.cache_key = (app.key, host.lower() if host is not None else b"", path)
            else:
                req.cache_key = (app.key, b"https://" + (host.lower() if host is not None else b""), path)
        req.headers_done = True
        if req.chunked:
            self._scan = ChunkScanner(limit, server.max_field_length,
                                      server.max_request_bytes - req.head_bytes - len(req.target))
        if not req.chunked and req.content_length <= 0:
            req.body_done = True  # nothing follows the head: answers need not wait for the parser
        pending = self._pending
        pending.append(req)
        if len(pending) == 1:
            self._start(req)
        else:
            req.move(Stage.WAITING)

    def _check_access(self, access: int) -> None:
        """IIS's security/access sslFlags for the routed application (403.4 / 403.7)."""
        tls = self.tls
        if access & ACCESS_SSL and tls is None:
            raise SslRequired("the application requires SSL")
        if access & ACCESS_REQUIRE_CERT and (tls is None or not tls.client_cert):
            raise CertRequired("the application requires a client certificate")

    def on_body(self, data: bytes) -> None:
        req = self._cur
        req.received += len(data)
        if req.link is not None and not req.body_buf and req.window >= len(data) \
                and req.link.owns(req):
            req.window -= len(data)
            req.link.send_body(req, data)
            return
        if req.stage is Stage.DONE:
            return  # already answered (e.g. 503): the rest of the body is read and dropped
        if req.body_buf is None:
            req.body_buf = [data]
        else:
            req.body_buf.append(data)
        req.body_buffered += len(data)
        self._buffered += len(data)
        if req.link is not None:
            self._push_body(req)

    def on_message_complete(self) -> None:
        req = self._cur
        self._cur = None
        req.body_done = True
        if req.link is not None and req.has_body and not req.body_buf and req.link.owns(req):
            req.link.send_end(req)
        if self._eof:
            return

    # ================================================================ request side
    def _start(self, req: Request) -> None:
        """The oldest request's turn: submit it to its pool (or answer its error)."""
        if req.acme is not None:
            self._answer_http01(req)
            return
        if req.answer is not None:
            self._answer_rewrite(req)
            return
        if req.error is not None:
            self._send_error(req, req.error)
            return
        if req.pool is None:
            self._send_error(req, AppPoolUnavailable("N/A"))
            return
        self._submit(req)

    def _answer_http01(self, req: Request) -> None:
        """An HTTP-01 challenge's key authorization. Not in the W3C log: it is the front's own
        answer, not a site's."""
        server = self.server
        req.status = 200
        close = not (req.body_done and req.keep_alive) or server.stopping
        if self.state is _OPEN:
            data = http01_response(req.acme, server=server.server_header, date=server.date,
                                   close=close, head_only=req.is_head)
            if self._buckets is None:
                self.transport.write(data)
            else:
                self._put(data)
        req.close_after = close
        self._finish(req, log=False)

    def _answer_rewrite(self, req: Request) -> None:
        """A global URL Rewrite rule's redirect or custom response (or abort), in the site's log."""
        server = self.server
        answer = req.answer
        if answer == rewriting.ABORT:
            req.status, req.substatus, req.win32 = 0, 0, 64
            server.log_access(self, req)
            req.stage = Stage.DONE
            self._abort_connection()
            return
        req.status, req.substatus = answer[0], answer[1]
        # The body of the request (if any) was not read: close after answering, as HTTP.sys does.
        close = not (req.body_done and req.keep_alive) or server.stopping or req.has_body
        if self.state is _OPEN:
            body = answer[3]
            lines = [b"HTTP/1.1 " + rewriting.status_line(answer) + b"\r\n"]
            lines += [name + b": " + value + b"\r\n" for name, value in answer[2]]
            if server.server_header:
                lines.append(server.server_line)
            lines.append(server.date_line)
            if close:
                lines.append(b"Connection: close\r\n")
            lines.append(b"Content-Length: %d\r\n\r\n" % len(body))
            if not req.is_head:
                lines.append(body)
            data = b"".join(lines)
            self._sent = len(data)
            if self._buckets is None:
                self.transport.write(data)
            else:
                self._put(data)
        req.close_after = close
        self._finish(req)

    def dispatched(self, req: Request) -> None:
        """Called by the worker link right after the REQUEST frame went out."""
        if req.expect and not req.body_done and req.version == "1.1" and self.state is _OPEN:
            if self._buckets is None:
                self.transport.write(_CONTINUE)
            else:
                self._put(_CONTINUE)
        if req.body_buf:
            self._push_body(req)
        elif req.body_done and req.has_body:
            req.link.send_end(req)

    def _push_body(self, req: Request) -> None:
        """Send buffered body bytes within the stream's window; END once all is sent."""
        link = req.link
        before = req.body_buffered
        for chunk in req.take_window():
            link.send_body(req, chunk)
        self._buffered -= before - req.body_buffered
        if not req.body_buf and req.body_done and self.state is _OPEN:
            link.send_end(req)
        if self._read_paused:
            self._flow()

    def on_window(self, req: Request, increment: int) -> None:
        req.window += increment
        if req.body_buf:
            if self.state is _TUNNEL:
                self._push_tunnel(req)
            else:
                self._push_body(req)

    def _flow(self) -> None:
        """Pause or resume reading the client as buffers and the pipeline require."""
        state = self.state
        if state is _CLOSING or state is _CLOSED:
            return
        want = (self._buffered > BODY_BUFFER_LIMIT or len(self._pending) > MAX_PIPELINE
                or (self._broken and state is _OPEN))
        if want and not self._read_paused:
            self._read_paused = True
            self.transport.pause_reading()
        elif not want and self._read_paused:
            self._read_paused = False
            self.transport.resume_reading()

    def _upgraded(self, data: bytes, offset: int) -> bool:
        """llhttp stopped at an Upgrade; data[offset:] follows it. -> parse on as HTTP/1.1?"""
        req = self._pending[-1] if self._pending else None
        rest = data[offset:]
        if req is not None and req.websocket and req.stage is not Stage.DONE:
            self._upgrading = True
            if rest:
                if self._early is None:
                    self._early = []
                self._early.append(rest)
                self._buffered += len(rest)
            return False
        # An Upgrade wasp does not speak (h2c, ...): carry on with HTTP/1.1.
        return bool(rest)

    def _parse_failed(self, err: HttpError) -> None:
        self._broken = True
        self._scan = None
        req = self._cur
        self._cur = None
        self._in_head = False
        if req is None or not req.headers_done:
            if req is None:
                server = self.server
                req = Request(self, next(server.ids), server.loop.time())
            req.error = err
            req.keep_alive = False
            self._pending.append(req)
            if len(self._pending) == 1:
                self._send_error(req, err)
            else:
                req.move(Stage.WAITING)
        else:
            # The head was fine, the body is not (bad chunk framing, ...).
            req.keep_alive = False
            stage = req.stage
            if stage is Stage.WAITING:
                req.error = err
            elif stage is Stage.QUEUED:
                self.server.dispatcher.withdraw(req)
                self._send_error(req, err)
            elif stage is Stage.EXECUTING:
                req.link.cancel(req)
                self._send_error(req, err)
            elif stage is Stage.SENDING:
                self._cut(req)
        self._flow()

    # ================================================================ endings

    def _send_error(self, req: Request, err: HttpError) -> None:
        """The one place an HttpError becomes a response."""
        server = self.server
        req.status = err.status
        req.substatus = err.substatus
        if req.stage is Stage.QUEUED:
            server.dispatcher.withdraw(req)
        elif req.link is not None and req.link.owns(req):
            req.link.cancel(req)
        if isinstance(err, AppPoolUnavailable):
            if err.close:
                # tcp_level: the load balancer sees a closed connection, not a 503.
                server.log_error(self, req, None, err.reason)
                req.stage = Stage.DONE
                self._abort_connection()
                return
            close = (not (req.body_done and req.keep_alive) or server.stopping
                     or (self._upgrading and req.websocket))
        else:
            close = True
        if self.state is _OPEN:
            page = error_response(err.status, err.reason, server=server.server_header, date=server.date,
                                  close=close, head_only=req.is_head)
            self._sent = len(page)
            if self._buckets is None:
                self.transport.write(page)
            else:
                self._put(page)
        req.close_after = close
        if err.reason in _W3C_REASONS:
            self._finish(req)
        else:
            server.log_error(self, req, err.status, err.reason)
            self._finish(req, log=False)

    def _error_before_request(self, err: HttpError) -> None:
        server = self.server
        req = Request(self, next(server.ids), server.loop.time())
        req.keep_alive = False
        self._broken = True
        self._pending.append(req)
        self._send_error(req, err)

    def _finish(self, req: Request, log: bool = True) -> None:
        """The oldest request is answered: log it, then the next one's turn, or close."""
        req.stage = _DONE
        server = self.server
        if log:
            server.log_access(self, req)
        pending = self._pending
        if pending and pending[0] is req:
            pending.popleft()
        if self.state is _CLOSED:
            return
        if req.close_after or self._eof and not pending:
            self._close()
            return
        if req.body_buf:
            self._buffered -= req.body_buffered
            req.body_buf = None
        if pending:
            self._start(pending[0])
        elif self.state is _OPEN and not self._in_head and self._cur is None \
                and self.timer is not MIN_RATE_TIMER:  # (a client not taking the response: that timer)
            self.deadline = server.loop.time() + self._idle
            self.timer = "Timer_ConnectionIdle"
        if self._read_paused:
            self._flow()

    def _drop(self, req: Request, dropped: bool = True) -> None:
        """The client is gone (or was cut, `dropped` False: the cut's reason is logged already):
        stop the request wherever it is."""
        stage = req.stage
        if stage is Stage.DONE:
            return
        if stage is Stage.QUEUED:
            self.server.dispatcher.withdraw(req)
        link = req.link
        if link is not None and link.owns(req):
            link.cancel(req)
        if req.file is not None:
            req.file.close()
            req.file = None
        req.stage = Stage.DONE
        if stage is Stage.SENDING:
            req.win32 = w3c.ERROR_NETNAME_DELETED
            self.server.log_access(self, req)
        elif dropped and (stage is Stage.QUEUED or stage is Stage.EXECUTING):
            self.server.log_error(self, req, None, "Connection_Dropped")

    def _cut(self, req: Request, logged: bool = False) -> None:
        """A response that cannot be completed: the client sees the connection close mid-body."""
        link = req.link
        if link is not None and link.owns(req):
            link.cancel(req)
        if req.file is not None:
            req.file.close()
            req.file = None
        req.stage = Stage.DONE
        if not logged:
            req.win32 = w3c.ERROR_NETNAME_DELETED
            self.server.log_access(self, req)
        if self._pending and self._pending[0] is req:
            self._pending.popleft()
        self._abort_connection()

    def _abort_connection(self) -> None:
        """Close now (whatever is buffered is still flushed). Nothing more is written or read."""
        if self.state is not _CLOSED and self.state is not _CLOSING:
            self.state = _CLOSING
            self.deadline = 0.0
            self._held = None
            self._drain_close = False
            self.transport.close()
            # Stop what is still in flight now, not when connection_lost comes: a worker's answer
            # may arrive before it.
            pending = self._pending
            while pending:
                self._drop(pending.popleft())

    def abort(self) -> None:
        self._abort_connection()

    def _close(self) -> None:
        """Close after the last response: at once when nothing is left unread, else shut down
        writing and discard input for a while, so the client reads the response, not a reset."""
        if self.state is _CLOSED or self.state is _CLOSING:
            return
        if self._held:
            # Limited: the response's last bytes still wait for their turn; close after them.
            self._drain_close = True
            self.deadline = self.server.loop.time() + self._idle
            self.timer = ""
            return
        transport = self.transport
        unread = self._cur is not None or self._in_head or self._pending or self._broken \
            or self._upgrading
        if not unread or not transport.can_write_eof():
            self.state = _CLOSING
            transport.close()
            return
        self.move(_CLOSING)
        transport.write_eof()
        if self._read_paused:
            self._read_paused = False
            transport.resume_reading()
        self.deadline = self.server.loop.time() + LINGER
        self.timer = ""

    # ================================================================ timers and stop
    def on_timer(self, now: float) -> None:
        """The sweep found this connection past its deadline."""
        self.deadline = 0.0
        if self.state is _CLOSING:
            self.transport.close()
            return
        if self.state is not _OPEN:
            return
        reason = self.timer
        if reason == "Timer_EntityBody" and self._read_paused:
            # The front stopped reading (the worker is slow to take the body): not the client's fault.
            self.deadline = now + self._idle
            return
        if reason is MIN_RATE_TIMER and not self._min_rate_timer(now):
            return
        if reason:
            req = self._cur
            if reason is MIN_RATE_TIMER and self._pending:
                req = self._pending[0]
            self.server.log_error(self, req, None, reason)
            if req is not None and self._pending and self._pending[0] is req:
                self._pending.popleft()
                self._drop(req, dropped=False)  # one line per cut: the timer's
        self._abort_connection()

    def pending_requests(self) -> list[Request]:
        return list(self._pending)

    @property
    def idle(self) -> bool:
        return (self.state is _OPEN and not self._pending and self._cur is None
                and not self._in_head and not self._held)

    def close_if_idle(self) -> None:
        # A connection that has not begun a request yet was accepted just before the listener
        # closed (a graceful stop, `wasp upgrade`): its request is on its way, so it is served
        # once, with Connection: close, rather than reset (its header wait still bounds it).
        if self.idle and self._heads:
            self._abort_connection()

