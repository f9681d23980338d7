"""A plain WSGI app that makes its own OpenTelemetry span with the API alone (as an app would
with wasp's provider installed) and answers what it saw: the traceparent in its environ, the
span that was current when it was called and its own span's ids (test_server_tracing.py)."""

import json

from opentelemetry import trace

tracer = trace.get_tracer("otel_app")


def app(environ, start_response):
    current = trace.get_current_span().get_span_context()
    with tracer.start_as_current_span("app.work", attributes={"app.path": environ["PATH_INFO"]}) as span:
        mine = span.get_span_context()
        body = json.dumps({
            "traceparent": environ.get("HTTP_TRACEPARENT"),
            "tracestate": environ.get("HTTP_TRACESTATE"),
            "current_span_id": f"{current.span_id:016x}",
            "current_trace_id": f"{current.trace_id:032x}",
            "span_id": f"{mine.span_id:016x}",
            "trace_id": f"{mine.trace_id:032x}",
        }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


async def asgi_app(scope, receive, send):
    """The same answer from an ASGI app: its span is made in the request's task."""
    if scope["type"] != "http":
        return
    current = trace.get_current_span().get_span_context()
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    with tracer.start_as_current_span("app.asgi_work") as span:
        mine = span.get_span_context()
        body = json.dumps({
            "traceparent": headers.get("traceparent"),
            "current_span_id": f"{current.span_id:016x}",
            "span_id": f"{mine.span_id:016x}",
            "trace_id": f"{mine.trace_id:032x}",
        }).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
