"""The request half of an HTTP/2 connection: a stream's header list as the same `Request` an
HTTP/1.1 connection builds (HTTP.sys's limits, routing, access, the response cache's key, an
RFC 8441 WebSocket turned into the HTTP/1.1 upgrade the worker speaks), and its DATA to the worker
within the worker's stream window, each byte given back to the client's windows once forwarded.

`H2RequestReader` is mixed into `Http2Connection` (h2conn.py), which owns the state it uses, as
`H2ResponseWriter` (h2response.py) is for the response half.
"""

from __future__ import annotations

import base64
import os

from wasp.errors import BadRequest
from wasp.front.request import ConnState, Request, Stage
from wasp.front.routing import ACCESS_REQUIRE_CERT, ACCESS_SSL
from wasp.wire.h2rules import request_fields, websocket_request
from wasp.wire.http import (CertRequired, EntityTooLarge, FieldTooLong, RequestTooLong, SslRequired,
                            UrlTooLong)
from wasp.wire.urls import cook_target

_FORWARDED = {b"forwarded": 0, b"x-forwarded-for": 1, b"x-forwarded-proto": 2}
#: Request fields that keep a request out of the response cache, as over HTTP/1.1 (connection.py).
_NO_CACHE = frozenset({b"authorization", b"range", b"if-range", b"translate"})
_OPEN = ConnState.OPEN


class H2RequestReader:
    """Mixin: the stream's head (`_head`) and body (`_on_data`, `_push_body`, `_on_stream_ended`),
    and the worker link's `dispatched` / `on_window`."""

    def _head(self, req: Request, headers, ended: bool) -> None:
        """The request head from the stream's header list, with HTTP.sys's limits, and routing."""
        server = self.server
        try:
            pseudo, fields, size = request_fields(headers)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        req.method = method = pseudo.get(b":method", b"")
        req.is_head = method == b"HEAD"
        req.target = target = pseudo.get(b":path", b"")
        if len(target) > server.max_url:
            raise UrlTooLong("request target over max_url")
        req.head_bytes = size
        for name, value in fields:
            if len(name) + len(value) + 2 > server.max_field_length:
                raise FieldTooLong("header field over max_field_length")
            if name == b"content-length":
                try:
                    req.content_length = int(value)
                except ValueError:
                    raise BadRequest("bad content-length") from None
            elif name == b"host":
                req.host = value
            elif name == b"user-agent":
                req.user_agent = value
            elif name == b"referer":
                req.referer = value
            elif name == b"expect":
                req.expect = value.strip().lower() == b"100-continue"
            elif name in _NO_CACHE:
                req.no_cache = True
            elif name == b"if-none-match":
                req.inm = value
            elif name == b"if-modified-since":
                req.ims = value
            elif name in _FORWARDED:
                seen = req.forwarded
                if seen is None:
                    seen = req.forwarded = [None, None, None]
                i = _FORWARDED[name]
                seen[i] = [value] if seen[i] is None else seen[i] + [value]
        if size > server.max_request_bytes:
            raise RequestTooLong("request head over max_request_bytes")
        authority = pseudo.get(b":authority")
        if req.host is None and authority is not None:
            req.host = authority
            fields.insert(0, (b"host", authority))   # the worker's HTTP_HOST, as HTTP/1.1 sends it
        if method == b"CONNECT":
            # RFC 8441: a WebSocket; the worker sees the GET + Upgrade of an HTTP/1.1 handshake.
            # A plain CONNECT (a proxy tunnel) or another :protocol is not served.
            if pseudo.get(b":protocol", b"").lower() != b"websocket" or not target:
                raise BadRequest("CONNECT is not served")
            req.method = method = b"GET"
            req.upgrade = req.websocket = True
            fields = websocket_request(fields, base64.b64encode(os.urandom(16)))
        elif not target:
            raise BadRequest("no :path")
        req.headers = fields
        path, query, _ = cook_target(target)
        req.path = path
        req.query = query
        route_path = path
        rules = server.global_rules
        if rules is not None:
            route_path = rules.apply(req, self, req.host, path, query)
            if req.rewritten:
                path, query = req.path, req.query
        site, app = self.table.route(req.host, route_path)
        req.app = app
        req.pool = app.queue
        if req.answer is not None:
            if not self.site_id:
                self._join_site(site)
            req.headers_done = True
            req.body_done = ended
            return
        if app.access:
            tls = self.tls
            if app.access & ACCESS_SSL and tls is None:
                raise SslRequired("the application requires SSL")
            if app.access & ACCESS_REQUIRE_CERT and (tls is None or not tls.client_cert):
                raise CertRequired("the application requires a client certificate")
        if req.forwarded is not None and server.trusted:
            self._forwarded(req)
        if not self.site_id:
            self._join_site(site)   # 503 ConnLimit on this stream when the site is full
        if app.cache and ended and not req.no_cache and not query and req.content_length <= 0 \
                and (method == b"GET" or method == b"HEAD"):
            # The same key as over HTTP/1.1 (connection.py): the application, the scheme the app
            # sees and the host as sent, the routed path; never the HTTP version. A client
            # certificate authenticates the request: never cached (HTTP.sys rule 8).
            tls = self.tls
            host = req.host.lower() if req.host is not None else b""
            if tls is not None and tls.client_cert:
                pass
            elif (req.scheme or ("https" if tls is not None else self.scheme)) != "https":
                req.cache_key = (app.key, host, path)
            else:
                req.cache_key = (app.key, b"https://" + host, path)
        limit = server.max_content
        if limit and req.content_length > limit:
            raise EntityTooLarge("content-length over max_allowed_content_length")
        req.headers_done = True
        if ended:
            req.body_done = True
            req.content_length = -1 if req.content_length <= 0 else req.content_length
        elif req.content_length < 0:
            req.chunked = True    # a body of unknown length: DATA frames until END_STREAM

    def dispatched(self, req: Request) -> None:
        """Called by the worker link right after the REQUEST frame went out."""
        st = req.h2
        if req.expect and not req.body_done and not self._stream_closed(st):
            self.h2.send_headers(st.sid, [(b":status", b"100")])
        if req.body_buf:
            self._push_body(req)
        elif req.body_done and req.has_body:
            req.link.send_end(req)
        self._flush()

    def on_window(self, req: Request, increment: int) -> None:
        req.window += increment
        if req.body_buf:
            self._push_body(req)
            self._flush()

    def _on_data(self, sid: int, data: bytes, flow: int, now: float) -> None:
        st = self.streams.get(sid)
        h2 = self.h2
        if st is None or st.reset_after or st.req.stage is Stage.DONE:
            if flow:
                h2.acknowledge_received_data(flow, sid)   # answered already: read and dropped
            return
        n = len(data)
        if flow > n:
            h2.acknowledge_received_data(flow - n, sid)   # padding
        if not n:
            return
        req = st.req
        req.received += n
        self._body_at = now
        limit = self.server.max_content
        if limit and req.received > limit and not req.websocket:   # (tunnel bytes are no body)
            self._send_error(req, EntityTooLarge("body over max_allowed_content_length"))
            self.h2.acknowledge_received_data(n, sid)
            return
        link = req.link
        if link is not None and not req.body_buf and req.window >= n and link.owns(req):
            req.window -= n
            link.send_body(req, data)
            self.h2.acknowledge_received_data(n, sid)
            return
        if req.body_buf is None:
            req.body_buf = [data]
        else:
            req.body_buf.append(data)
        req.body_buffered += n
        if link is not None:
            self._push_body(req)

    def _push_body(self, req: Request) -> None:
        """Buffered body bytes to the worker within its window; each sent byte is given back to
        the client's window; END once all is sent."""
        link = req.link
        if link is None or not link.owns(req):
            return
        sid = req.h2.sid
        for chunk in req.take_window():
            link.send_body(req, chunk)
            self.h2.acknowledge_received_data(len(chunk), sid)
        if not req.body_buf and req.body_done:
            link.send_end(req)

    def _on_stream_ended(self, sid: int) -> None:
        st = self.streams.get(sid)
        if st is None:
            return
        req = st.req
        req.body_done = True
        if req.link is not None and req.has_body and not req.body_buf and req.link.owns(req):
            req.link.send_end(req)
