"""The worker's OpenTelemetry spans (docs/tracing.md): one per module notification that ran,
children of the front's server span, and the app's own spans under the handler's.

Only imported with `[tracing] enabled`. Nothing here runs per request while tracing is off: the
pipeline wraps its compiled steps with `WorkerTracing.wrap` when it is compiled for an
application that traces, and not otherwise (the flat loop itself is unchanged).

The parent comes from the request frame (RequestHead.trace, the front's span as a traceparent).
A request whose trace is not sampled runs its steps unwrapped in all but one attribute test, and
the front's traceparent (with its 00 flags) is what the app sees. A sampled one gets a span per
step (IIS Web Core's own steps excepted); the step runs with its span as the current context, so
a Python module's or the app's spans nest under it, on the WSGI thread as in an ASGI task; and
the handler's span replaces the request's `traceparent` header, so the WSGI environ's
HTTP_TRACEPARENT (an ASGI scope's, a FastCGI or proxied request's) names it.
"""

from __future__ import annotations

import logging

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from wasp.common import otel
from wasp.errors import HttpError
from wasp.wire.tracecontext import format_traceparent, parse_traceparent, replace_headers
from wasp.worker.registry import Phase
from wasp.worker.registry import Status as StepStatus

log = logging.getLogger("wasp.worker")

_INTERNAL = SpanKind.INTERNAL
_ERROR = Status(StatusCode.ERROR)
_EXECUTE = Phase.EXECUTE_REQUEST_HANDLER
#: ctx.trace for a request without trace context: its steps run untraced.
UNTRACED = False
#: ctx.trace[0]: the front's span is sampled (the steps get spans) or not (they do not, but the
#: handler still runs with the front's context current, so the app's spans follow the decision).
SAMPLED = True
UNSAMPLED = False
#: The name of IIS Web Core's own steps (pipeline.CORE): not a module, no span.
CORE = "IIS Web Core"


class WorkerTracing:
    def __init__(self, settings, pool: str, worker_id: int, span_exporter=None):
        self.settings = settings
        self.provider = otel.provider(settings, "worker", {"wasp.app_pool": pool,
                                                           "wasp.worker.id": worker_id},
                                      span_exporter=span_exporter)
        self.tracer = self.provider.get_tracer(otel.SCOPE)

    def install(self) -> None:
        """Make wasp's provider the process's global one: `trace.get_tracer()` in the app (and
        in users' modules) then exports through this worker's processor."""
        trace.set_tracer_provider(self.provider)

    def shutdown(self) -> None:
        otel.shutdown(self.provider)

    def parent(self, ctx):
        """ctx.trace: UNTRACED (no trace context came with the request), else the OpenTelemetry
        context of the front's span, with SAMPLED or UNSAMPLED first."""
        head = ctx.head
        traceparent = getattr(head, "trace", "")  # a TracedHead's (frames.FLAG_TRACE)
        found = parse_traceparent(traceparent) if traceparent else None
        if found is None:
            ctx.trace = UNTRACED
        else:
            ctx.trace = (SAMPLED if found[2] & 1 else UNSAMPLED,
                         otel.remote_parent(found[0], found[1], found[2], head.tracestate))
        return ctx.trace

    def wrap(self, phase: Phase, name: str, step):
        """`step` traced: the compiled pipeline calls this instead."""
        if name == CORE or (phase is not _EXECUTE and not self.settings.module_spans):
            return step
        tracer = self.tracer
        parent_of = self.parent
        handler = phase is _EXECUTE
        span_name = f"{phase.title} {name}"
        attributes = {"wasp.phase": phase.title, "wasp.module": name}

        def traced(ctx):
            parent = ctx.trace
            if parent is None:
                parent = parent_of(ctx)
            if parent is UNTRACED:
                return step(ctx)
            sampled, parent = parent
            if not sampled:
                if not handler:
                    return step(ctx)
                return _in_context(parent, step, ctx)
            span = tracer.start_span(span_name, context=parent, kind=_INTERNAL, attributes=attributes)
            current = trace.set_span_in_context(span, parent)
            if handler:
                _hand_on(ctx, span)
            token = otel_context.attach(current)
            try:
                status = step(ctx)
            except BaseException as exc:
                _failed(span, exc)
                span.end()
                raise
            finally:
                otel_context.detach(token)
            if handler and ctx.module and ctx.module != name:
                span.update_name(f"{phase.title} {ctx.module}")
                span.set_attribute("wasp.module", ctx.module)
            if status is not None and status.__class__ is not StepStatus:
                return _pending(span, current, status)
            span.end()
            return status
        return traced


def _in_context(current, step, ctx):
    """The handler of an unsampled request: no span, but the front's context is current."""
    token = otel_context.attach(current)
    try:
        status = step(ctx)
    finally:
        otel_context.detach(token)
    if status is not None and status.__class__ is not StepStatus:
        return _pending(None, current, status)
    return status


async def _pending(span, current, awaitable):
    """A step that returned an awaitable (IIS's pending notification): its span ends when the
    awaitable does, and the rest of its work runs with the span current."""
    token = otel_context.attach(current)
    try:
        return await awaitable
    except BaseException as exc:
        if span is not None:
            _failed(span, exc)
        raise
    finally:
        otel_context.detach(token)
        if span is not None:
            span.end()


def _failed(span, exc: BaseException) -> None:
    if isinstance(exc, HttpError):
        # An error status is the pipeline's ordinary way to answer: only 5xx is a failure.
        span.set_attribute("http.response.status_code", exc.status)
        if exc.status < 500:
            return
    span.record_exception(exc)
    span.set_status(_ERROR)


def _hand_on(ctx, span) -> None:
    """The request's traceparent names the handler's span from here on (what the app reads)."""
    sc = span.get_span_context()
    head = ctx.head
    head.headers = replace_headers(head.headers, format_traceparent(
        sc.trace_id, sc.span_id, int(sc.trace_flags)), getattr(head, "tracestate", ""))


def start(settings, pool: str, worker_id: int) -> WorkerTracing:
    """The worker's tracing, installed as the global provider."""
    tracing = WorkerTracing(settings, pool, worker_id)
    tracing.install()
    return tracing
