"""OpenTelemetry tracing without processes: the sampler, the request frame's size with tracing
off, `[tracing]` validation, the front's server span and the worker's traced steps (with the
SDK's in-memory exporter), and that nothing imports opentelemetry while tracing is off."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from types import SimpleNamespace

import msgspec
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import SpanKind

from wasp.common import otel
from wasp.config.model import Tracing
from wasp.errors import NotFound
from wasp.wire import frames
from wasp.wire.tracecontext import parse_traceparent

TRACE = 0x0AF7651916CD43DD8448EB211C80319C
SPAN = 0xB7AD6B7169203331
CLIENT = f"00-{TRACE:032x}-{SPAN:016x}-01".encode()


# ---- the sampler ----------------------------------------------------------------------------

def _decide(ratio, parent_flags=None, trace_id=TRACE):
    parent = None
    if parent_flags is not None:
        parent = otel.remote_parent(TRACE, SPAN, parent_flags)
    return otel.sampler(ratio).should_sample(parent, trace_id, "GET /").decision


def test_a_new_trace_is_sampled_by_ratio():
    assert _decide(1.0) is Decision.RECORD_AND_SAMPLE
    assert _decide(0.0) is Decision.DROP
    # TraceIdRatioBased compares the low 64 bits of the id with ratio * 2**64.
    assert _decide(0.5, trace_id=1) is Decision.RECORD_AND_SAMPLE
    assert _decide(0.5, trace_id=(1 << 64) - 1) is Decision.DROP


def test_a_remote_parent_s_flag_decides_whatever_the_ratio():
    assert _decide(0.0, parent_flags=1) is Decision.RECORD_AND_SAMPLE
    assert _decide(1.0, parent_flags=0) is Decision.DROP


# ---- the request frame ----------------------------------------------------------------------

class _HeadBefore(msgspec.Struct, array_like=True):
    """RequestHead as it was before tracing (every field encoded)."""
    app: str
    method: str
    target: bytes
    path: bytes
    query: bytes
    version: str
    headers: list[tuple[bytes, bytes]]
    client: tuple[str, int]
    server: tuple[str, int]
    scheme: str = "http"
    content_length: int = -1
    websocket: bool = False
    warmup: bool = False
    tls: frames.TlsInfo | None = None
    proxied: bool = False
    rewritten: bool = False
    proxy_url: str = ""


_ARGS = ("1/", "GET", b"/x", b"/x", b"", "1.1", [(b"Host", b"a")], ("127.0.0.1", 5), ("127.0.0.1", 80))


@pytest.mark.parametrize("extra", [{}, {"content_length": 5, "proxy_url": "http://b/"},
                                   {"scheme": "https", "rewritten": True}])
def test_the_request_frame_is_unchanged_while_tracing_is_off(extra):
    now = frames.pack_request(3, frames.RequestHead(*_ARGS, **extra), False)
    before = msgspec.msgpack.encode(_HeadBefore(*_ARGS, **extra))
    assert now[frames.HEADER_SIZE:] == before
    assert frames.HEADER.unpack_from(now)[2] == frames.FLAG_FIN


def test_the_request_frame_carries_the_trace_when_on():
    head = frames.RequestHead(*_ARGS, proxy_url="http://b/")
    packed = frames.pack_traced_request(3, head, True, CLIENT.decode(), "a=1")
    length, ftype, flags, stream = frames.HEADER.unpack_from(packed)
    assert (ftype, flags, stream) == (frames.FrameType.REQUEST, frames.FLAG_TRACE, 3)
    back = frames.unpack_request(packed[frames.HEADER_SIZE:], flags)
    assert isinstance(back, frames.RequestHead) and back.proxy_url == "http://b/"
    assert back.trace == CLIENT.decode() and back.tracestate == "a=1"
    # Without the flag it is read as a plain head: no trace context is taken from it.
    assert not isinstance(frames.unpack_request(packed[frames.HEADER_SIZE:]), frames.TracedHead)


# ---- [tracing] validation -------------------------------------------------------------------

def _problems(text):
    from wasp.config.load import load_text
    from wasp.errors import ConfigError

    try:
        load_text(text + '\n[[pools]]\nname = "P"\n[[sites]]\nname = "S"\nid = 1\n'
                  'bindings = ["http/127.0.0.1:1:"]\n[[sites.applications]]\npool = "P"\n'
                  'physical_path = "."\n')
    except ConfigError as exc:
        return str(exc)
    return ""


def test_tracing_settings_are_strict_with_dotted_paths():
    out = _problems('[tracing]\nendpoint = "file:///etc/passwd"\nsampler_ratio = 1.5\n'
                    'client_context_from = ["x"]\nheaders = { "a b" = "1", k = "v\\r\\nX: y" }\n'
                    'protocol = "udp"\nwat = 1\nexport_interval = "0s"\n')
    for path in ("tracing.endpoint", "tracing.sampler_ratio", "tracing.client_context_from[0]",
                 "tracing.headers.a b", "tracing.headers.k", "tracing.protocol", "tracing.wat",
                 "tracing.export_interval"):
        assert path in out, out
    assert _problems('[tracing]\nenabled = true\n') == ""


def test_validate_names_a_missing_extra(monkeypatch):
    from wasp.config import validate

    assert validate.missing_tracing_packages("http/protobuf") == []
    monkeypatch.setattr(validate, "missing_tracing_packages", lambda protocol: ["opentelemetry-sdk"])
    out = _problems('[tracing]\nenabled = true\n')
    assert "tracing.enabled" in out and "wasp-server[otel]" in out
    assert _problems('[tracing]\nenabled = false\n') == ""   # off: nothing is needed


# ---- the front's span -----------------------------------------------------------------------

class _Loop:
    def time(self):
        return 100.0


def _front(**settings):
    from wasp.front.tracing import FrontTracing

    exporter = InMemorySpanExporter()
    return FrontTracing(Tracing(enabled=True, **settings), _Loop(), span_exporter=exporter), exporter


def _req(headers, peer="127.0.0.1"):
    site = SimpleNamespace(id=1, name="Site")
    app = SimpleNamespace(path="/api", site=site, pool="P")
    conn = SimpleNamespace(peer=(peer, 4000), local=("127.0.0.1", 8080), scheme="http")
    return SimpleNamespace(conn=conn, app=app, method=b"GET", client=None, scheme=None,
                           path=b"/api/x", query=b"a=1", version="1.1", host=b"example.test:8080",
                           user_agent=b"ua", id=7, t0=99.5, headers=list(headers), trace=None,
                           status=0, substatus=0)


def _finish(tracing, exporter, req, status=200):
    req.status = status
    req.sent = req.trace     # end() clears req.trace
    tracing.end(req)
    assert req.trace is None
    tracing.provider.force_flush()
    spans = exporter.get_finished_spans()
    assert len(spans) == 1
    return spans[0]


def test_the_front_continues_a_client_trace_and_hands_its_own_span_on():
    tracing, exporter = _front()
    req = _req([(b"Host", b"example.test:8080"), (b"traceparent", CLIENT), (b"tracestate", b"a=1")])
    tracing.start(req)
    span = _finish(tracing, exporter, req, 503)
    assert span.kind is SpanKind.SERVER and span.name == "GET /api"
    assert span.context.trace_id == TRACE and span.parent.span_id == SPAN and span.parent.is_remote
    attrs = span.attributes
    assert attrs["http.request.method"] == "GET" and attrs["http.route"] == "/api"
    assert attrs["url.path"] == "/api/x" and attrs["url.query"] == "a=1"
    assert attrs["server.address"] == "example.test" and attrs["client.address"] == "127.0.0.1"
    assert attrs["http.response.status_code"] == 503 and attrs["wasp.app_pool"] == "P"
    assert attrs["wasp.site.name"] == "Site" and not span.status.is_ok
    # The span started when the head was parsed (half a second before "now" on the loop clock).
    assert span.end_time - span.start_time >= 400_000_000
    sent = [v for n, v in req.headers if n.lower() == b"traceparent"]
    assert sent == [req.sent[2].encode()]
    assert parse_traceparent(sent[0]) == (TRACE, span.context.span_id, 1)
    assert (b"tracestate", b"a=1") in req.headers and req.sent[3] == "a=1"


def test_an_untrusted_peer_s_context_is_replaced_by_a_new_trace():
    tracing, exporter = _front(client_context_from=["10.0.0.0/8"])
    req = _req([(b"traceparent", CLIENT), (b"tracestate", b"a=1")], peer="192.0.2.9")
    tracing.start(req)
    span = _finish(tracing, exporter, req)
    assert span.parent is None and span.context.trace_id != TRACE and span.status.is_ok
    assert (b"tracestate", b"a=1") not in req.headers
    assert [v for n, v in req.headers if n == b"traceparent"] == [req.sent[2].encode()]
    trusted, exporter = _front(client_context_from=["10.0.0.0/8"])
    req = _req([(b"traceparent", CLIENT)], peer="10.1.2.3")
    trusted.start(req)
    assert _finish(trusted, exporter, req).context.trace_id == TRACE


def test_accept_client_context_false_ignores_everyone():
    tracing, exporter = _front(accept_client_context=False)
    req = _req([(b"traceparent", CLIENT)])
    tracing.start(req)
    assert _finish(tracing, exporter, req).parent is None


def test_an_unsampled_request_still_hands_a_traceparent_on_but_exports_nothing():
    tracing, exporter = _front(sampler_ratio=0.0)
    req = _req([])
    tracing.start(req)
    sent = req.trace
    tracing.start(req)       # submitted again: the same span
    assert req.trace is sent
    req.status = 200
    tracing.end(req)
    tracing.provider.force_flush()
    assert exporter.get_finished_spans() == ()
    assert not parse_traceparent(sent[2]).sampled


# ---- the worker's steps ---------------------------------------------------------------------

@pytest.fixture
def worker_tracing():
    from wasp.worker.tracing import WorkerTracing

    exporter = InMemorySpanExporter()
    tracing = WorkerTracing(Tracing(enabled=True), "P", 1, span_exporter=exporter)
    yield tracing, exporter
    tracing.provider.shutdown()


def _ctx(traceparent=CLIENT.decode()):
    head = SimpleNamespace(trace=traceparent, tracestate="", headers=[(b"traceparent", b"front")])
    return SimpleNamespace(head=head, trace=None, module="")


def _spans(tracing, exporter):
    tracing.provider.force_flush()
    return {s.name: s for s in exporter.get_finished_spans()}


def test_each_step_gets_a_span_under_the_front_s_and_the_handler_s_is_current(worker_tracing):
    from wasp.worker.registry import CONTINUE, FINISH, Phase

    tracing, exporter = worker_tracing
    seen = {}

    def handler(ctx):
        ctx.module = "python_app"
        seen["current"] = trace.get_current_span().get_span_context().span_id
        seen["header"] = ctx.head.headers
        return FINISH

    ctx = _ctx()
    assert tracing.wrap(Phase.BEGIN_REQUEST, "request_filtering", lambda c: CONTINUE)(ctx) is CONTINUE
    assert tracing.wrap(Phase.EXECUTE_REQUEST_HANDLER, "", handler)(ctx) is FINISH
    spans = _spans(tracing, exporter)
    assert set(spans) == {"BeginRequest request_filtering", "ExecuteRequestHandler python_app"}
    for span in spans.values():
        assert span.context.trace_id == TRACE and span.parent.span_id == SPAN
    execute = spans["ExecuteRequestHandler python_app"]
    assert seen["current"] == execute.context.span_id
    assert seen["header"] == [(b"traceparent", f"00-{TRACE:032x}-{execute.context.span_id:016x}-01".encode())]


def test_core_steps_and_unsampled_requests_get_no_span(worker_tracing):
    from wasp.worker.registry import CONTINUE, Phase

    tracing, exporter = worker_tracing
    step = lambda c: CONTINUE  # noqa: E731
    assert tracing.wrap(Phase.BEGIN_REQUEST, "IIS Web Core", step) is step
    traced = tracing.wrap(Phase.BEGIN_REQUEST, "rewrite", step)
    for ctx in (_ctx(f"00-{TRACE:032x}-{SPAN:016x}-00"), _ctx(""), _ctx("bogus")):
        assert traced(ctx) is CONTINUE
    assert _spans(tracing, exporter) == {}


def test_module_spans_false_keeps_only_the_handler_s():
    from wasp.worker.registry import CONTINUE, Phase
    from wasp.worker.tracing import WorkerTracing

    tracing = WorkerTracing(Tracing(enabled=True, module_spans=False), "P", 1,
                            span_exporter=InMemorySpanExporter())
    step = lambda c: CONTINUE  # noqa: E731
    assert tracing.wrap(Phase.BEGIN_REQUEST, "rewrite", step) is step
    assert tracing.wrap(Phase.EXECUTE_REQUEST_HANDLER, "", step) is not step
    tracing.provider.shutdown()


def test_a_pending_step_s_span_lasts_until_it_resolves_and_errors_are_recorded(worker_tracing):
    from wasp.worker.registry import CONTINUE, Phase

    tracing, exporter = worker_tracing

    async def later():
        await asyncio.sleep(0)
        return trace.get_current_span().get_span_context().span_id

    ctx = _ctx()
    pending = tracing.wrap(Phase.AUTHENTICATE_REQUEST, "basic_authentication", lambda c: later())(ctx)
    assert _spans(tracing, exporter) == {}     # not ended while pending
    current = asyncio.run(pending)
    span = _spans(tracing, exporter)["AuthenticateRequest basic_authentication"]
    assert current == span.context.span_id

    def missing(c):
        raise NotFound("no", substatus=0)

    def broken(c):
        raise RuntimeError("bug")

    with pytest.raises(NotFound):
        tracing.wrap(Phase.MAP_REQUEST_HANDLER, "static_file", missing)(ctx)
    with pytest.raises(RuntimeError):
        tracing.wrap(Phase.BEGIN_REQUEST, "broken", broken)(ctx)
    spans = _spans(tracing, exporter)
    assert spans["MapRequestHandler static_file"].status.is_ok      # a 404 is an answer
    assert spans["MapRequestHandler static_file"].attributes["http.response.status_code"] == 404
    assert not spans["BeginRequest broken"].status.is_ok
    assert spans["BeginRequest broken"].events[0].name == "exception"
    assert tracing.wrap(Phase.BEGIN_REQUEST, "x", lambda c: CONTINUE)(ctx) is CONTINUE


# ---- free when off --------------------------------------------------------------------------

def test_nothing_imports_opentelemetry_while_tracing_is_off(tmp_path):
    code = """
import sys
import wasp.front.main, wasp.front.server, wasp.front.connection, wasp.front.h2conn
import wasp.worker.worker, wasp.manager.main, wasp.cli.main
from wasp.config.load import load_text
load_text('[[pools]]\\nname = "P"\\n[[sites]]\\nname = "S"\\nid = 1\\nbindings = ["http/127.0.0.1:1:"]\\n'
          '[[sites.applications]]\\npool = "P"\\nphysical_path = "."\\n')
found = sorted(m for m in sys.modules if m.startswith("opentelemetry") or m.endswith("tracing") or m == "wasp.common.otel")
assert not found, found
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_an_unsampled_request_s_handler_runs_in_the_front_s_context(worker_tracing):
    from wasp.worker.registry import FINISH, Phase

    tracing, exporter = worker_tracing
    seen = {}

    def handler(ctx):
        sc = trace.get_current_span().get_span_context()
        seen["ids"] = (sc.trace_id, sc.span_id, sc.trace_flags.sampled)
        return FINISH

    ctx = _ctx(f"00-{TRACE:032x}-{SPAN:016x}-00")
    assert tracing.wrap(Phase.EXECUTE_REQUEST_HANDLER, "", handler)(ctx) is FINISH
    assert seen["ids"] == (TRACE, SPAN, False)
    assert trace.get_current_span().get_span_context().trace_id != TRACE   # detached after
    assert _spans(tracing, exporter) == {}


def test_a_tracing_change_recycles_every_pool():
    from wasp.config.diff import changed_pools
    from wasp.config.load import load_text

    base = ('[[pools]]\nname = "A"\n[[pools]]\nname = "B"\n[[sites]]\nname = "S"\nid = 1\n'
            'bindings = ["http/127.0.0.1:1:"]\n[[sites.applications]]\npool = "A"\nphysical_path = "."\n')
    off = load_text(base)
    assert changed_pools(off, load_text(base)) == set()
    assert changed_pools(off, load_text('[tracing]\nenabled = true\n' + base)) == {"A", "B"}
