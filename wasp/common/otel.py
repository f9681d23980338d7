"""The OpenTelemetry SDK set up from `[tracing]` (docs/tracing.md), for the front and the workers.

Imported only when tracing is enabled: with it off no process imports opentelemetry at all.
Each process has its own TracerProvider with one BatchSpanProcessor (a thread that exports in
batches) and an OTLP exporter; `shutdown` flushes what is queued, on a graceful stop or recycle.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

#: The instrumentation scope of wasp's own spans.
SCOPE = "wasp"


def sampler(ratio: float):
    """ParentBased(TraceIdRatioBased(ratio)): a new trace is recorded with probability `ratio`;
    a request with a (remote) parent follows the parent's sampled flag."""
    return ParentBased(root=TraceIdRatioBased(ratio))


def exporter(settings):
    """The OTLP span exporter `settings.protocol` names."""
    headers = dict(settings.headers) or None
    if settings.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=settings.endpoint, headers=headers,
                                timeout=float(settings.timeout))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=settings.endpoint, headers=headers,
                            timeout=float(settings.timeout))


def provider(settings, process: str, attributes: dict | None = None,
             span_exporter=None) -> TracerProvider:
    """A TracerProvider for one wasp process ("front" or "worker"): service.name from the
    settings, the process kind and pid as resource attributes."""
    resource = Resource.create({
        "service.name": settings.service_name,
        "service.instance.id": f"{os.uname().nodename}:{os.getpid()}",
        "process.pid": os.getpid(),
        "wasp.process": process,
        **(attributes or {}),
    })
    tp = TracerProvider(resource=resource, sampler=sampler(float(settings.sampler_ratio)))
    tp.add_span_processor(BatchSpanProcessor(span_exporter or exporter(settings),
                                             schedule_delay_millis=float(settings.export_interval) * 1000,
                                             export_timeout_millis=int(float(settings.timeout) * 1000)))
    return tp


def shutdown(tp: TracerProvider, timeout: float = 5.0) -> None:
    """Export what is still queued (at most `timeout` seconds), then stop the export thread."""
    try:
        tp.force_flush(int(timeout * 1000))
    finally:
        tp.shutdown()


def remote_parent(trace_id: int, span_id: int, flags: int, tracestate: str = ""):
    """An OpenTelemetry Context whose current span is the remote parent a traceparent named."""
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

    state = TraceState.from_header([tracestate]) if tracestate else None
    ctx = SpanContext(trace_id=trace_id, span_id=span_id, is_remote=True,
                      trace_flags=TraceFlags(flags & 0xff), trace_state=state)
    return trace.set_span_in_context(NonRecordingSpan(ctx))
