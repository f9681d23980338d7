"""The front's OpenTelemetry server spans (docs/tracing.md): one per routed request, from its
parsed head to its access-log line, with HTTP semantic-convention attributes.

Only imported with `[tracing] enabled`: `Server.tracing` is None otherwise, and the per-request
cost of tracing being off is that one attribute test (and `req.trace` staying None).

The span's context goes to the worker in the request frame (RequestHead.trace/tracestate), and
the request's `traceparent`/`tracestate` headers are replaced by wasp's own, so whatever the
worker hands on (a WSGI environ, an ASGI scope, a FastCGI or proxied request) continues wasp's
trace. A client's traceparent is the span's parent when `accept_client_context` allows it for
the connection's peer; otherwise the request starts a new trace.
"""

from __future__ import annotations

import time

from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

from wasp.common import otel
from wasp.wire.forwarded import TrustedProxies
from wasp.wire.tracecontext import client_context, format_traceparent, replace_headers

_SERVER = SpanKind.SERVER
_ERROR = Status(StatusCode.ERROR)


class FrontTracing:
    """The front's TracerProvider and what a request's span needs from `[tracing]`."""

    def __init__(self, settings, loop, span_exporter=None):
        self.settings = settings
        self.loop = loop
        self.provider = otel.provider(settings, "front", span_exporter=span_exporter)
        self.tracer = self.provider.get_tracer(otel.SCOPE)
        self.accept = settings.accept_client_context
        self.trusted = TrustedProxies(settings.client_context_from)
        self._root = Context()  # a parent context with no span: a new trace

    def accepts_from(self, address: str) -> bool:
        return self.accept and (not self.trusted or address in self.trusted)

    def start(self, req) -> None:
        """Open the request's server span (started when its head was parsed) and hand its
        context on in the request's headers."""
        if req.trace is not None:
            return  # already has its span (submitted again)
        conn = req.conn
        parent = self._root
        state = ""
        if self.accept and (not self.trusted or conn.peer[0] in self.trusted):
            found = client_context(req.headers)
            if found is not None:
                tp, state = found
                parent = otel.remote_parent(tp[0], tp[1], tp[2], state)
        app = req.app
        method = req.method.decode("latin-1")
        client = req.client or conn.peer
        scheme = req.scheme or conn.scheme
        attributes = {
            "http.request.method": method,
            "http.route": app.path,
            "url.path": req.path.decode("utf-8", "replace"),
            "url.scheme": scheme,
            "server.port": conn.local[1],
            "client.address": client[0],
            "client.port": client[1],
            "network.peer.address": conn.peer[0],
            "network.protocol.version": "2" if req.version == "2" else req.version or "1.1",
            "wasp.site.id": app.site.id,
            "wasp.site.name": app.site.name,
            "wasp.app_pool": app.pool,
            "wasp.request.id": req.id,
        }
        if req.query:
            attributes["url.query"] = req.query.decode("utf-8", "replace")
        if req.host:
            attributes["server.address"] = _host_only(req.host)
        if req.user_agent:
            attributes["user_agent.original"] = req.user_agent.decode("latin-1")
        # The head was parsed at req.t0 on the loop's clock: the span starts then, in wall time.
        start = time.time_ns() - int((self.loop.time() - req.t0) * 1e9)
        span = self.tracer.start_span(f"{method} {app.path}", context=parent, kind=_SERVER,
                                      attributes=attributes, start_time=start)
        sc = span.get_span_context()
        traceparent = format_traceparent(sc.trace_id, sc.span_id, int(sc.trace_flags))
        tracestate = sc.trace_state.to_header() if sc.trace_state else state
        req.headers = replace_headers(req.headers, traceparent, tracestate)
        req.trace = (self, span, traceparent, tracestate)

    def end(self, req) -> None:
        span = req.trace[1]
        req.trace = None
        if span.is_recording():
            status = req.status
            span.set_attribute("http.response.status_code", status)
            if req.substatus:
                span.set_attribute("wasp.response.sub_status", req.substatus)
            if status >= 500 or status == 0:
                span.set_attribute("error.type", str(status) if status else "aborted")
                span.set_status(_ERROR)
        span.end()

    def shutdown(self) -> None:
        otel.shutdown(self.provider)


def _host_only(host: bytes) -> str:
    text = host.decode("latin-1")
    if text.startswith("["):
        return text[1:text.find("]")] if "]" in text else text
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text
