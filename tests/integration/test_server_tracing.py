"""OpenTelemetry tracing through a real server (docs/tracing.md): the front and the worker export
OTLP/HTTP to a receiver this test runs (a small HTTP server decoding ExportTraceServiceRequest
with opentelemetry-proto), which checks the span tree: the front's server span -> the worker's
module spans -> the app's own span (made with the API alone), a client's traceparent honoured
as the parent (or not, from an untrusted address; malformed ones ignored), and tracing off
sending nothing."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import threading

import pytest
import requests

pytest.importorskip("opentelemetry.sdk")
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest, ExportTraceServiceResponse)

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"
CLIENT = f"00-{TRACE}-{PARENT}-01"

SITE = """
{pool_timing}
[tracing]
enabled = true
endpoint = "http://127.0.0.1:%(receiver)d/v1/traces"
headers = { "x-api-key" = "k123" }
service_name = "wasp-test"
export_interval = "%(interval)s"
%(extra)s

[[pools]]
name = "Traced"

[[sites]]
name = "Traced Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "Traced"
app = "otel_app:app"
physical_path = "www"
python_path = ["{apps}"]
[[sites.applications]]
path = "/asgi"
pool = "Traced"
app = "otel_app:asgi_app"
python_path = ["{apps}"]
"""


class Receiver:
    """An OTLP/HTTP trace receiver on an ephemeral port: every span it is sent, decoded."""

    def __init__(self):
        self.spans: list[dict] = []
        self.posts: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = ExportTraceServiceRequest.FromString(body)
                with receiver.lock:
                    receiver.posts.append({"path": self.path, "headers": dict(self.headers)})
                    for rs in request.resource_spans:
                        resource = {a.key: _value(a.value) for a in rs.resource.attributes}
                        for ss in rs.scope_spans:
                            for s in ss.spans:
                                receiver.spans.append({
                                    "name": s.name, "kind": s.kind, "trace_id": s.trace_id.hex(),
                                    "span_id": s.span_id.hex(), "parent": s.parent_span_id.hex(),
                                    "attributes": {a.key: _value(a.value) for a in s.attributes},
                                    "resource": resource, "scope": ss.scope.name,
                                    "status": s.status.code, "start": s.start_time_unix_nano,
                                    "end": s.end_time_unix_nano})
                out = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def of_trace(self, trace_id: str) -> list[dict]:
        with self.lock:
            return [s for s in self.spans if s["trace_id"] == trace_id]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


def _start(factory, receiver, extra="", interval="100ms"):
    www = factory.dir / "www"
    www.mkdir(exist_ok=True)
    (www / "hello.txt").write_text("hello\n")
    return factory(SITE % {"receiver": receiver.port, "extra": extra, "interval": interval})


@pytest.fixture(scope="module")
def server(wasp_module_server, receiver):
    return _start(wasp_module_server, receiver)


def _tree(server, receiver, trace_id, want):
    """The spans of `trace_id` once the front's, the handler's and (`want`) more have arrived."""
    def complete():
        spans = receiver.of_trace(trace_id)
        names = {s["name"] for s in spans}
        return want <= names
    server.wait_until(complete, 30, what=lambda: f"spans {want} of {trace_id}: "
                      f"{[s['name'] for s in receiver.of_trace(trace_id)]}\n{server.diagnostics()}")
    return {s["name"]: s for s in receiver.of_trace(trace_id)}


def test_a_client_traceparent_is_the_parent_of_the_front_span_and_the_tree_nests(server, receiver):
    r = requests.get(server.url + "/work?x=1", timeout=20,
                     headers={"traceparent": CLIENT, "tracestate": "congo=t61rcWkgMzE"})
    assert r.status_code == 200, r.text
    seen = r.json()
    spans = _tree(server, receiver, TRACE, {"GET /", "ExecuteRequestHandler python_app", "app.work",
                                           "BeginRequest request_filtering"})
    front = spans["GET /"]
    assert front["parent"] == PARENT                      # the client's span is its parent
    assert front["kind"] == 2                             # SPAN_KIND_SERVER
    assert front["resource"]["wasp.process"] == "front"
    assert front["resource"]["service.name"] == "wasp-test"
    attrs = front["attributes"]
    assert attrs["http.request.method"] == "GET" and attrs["http.route"] == "/"
    assert attrs["url.path"] == "/work" and attrs["url.query"] == "x=1"
    assert attrs["url.scheme"] == "http" and attrs["http.response.status_code"] == 200
    assert attrs["client.address"] == "127.0.0.1" and attrs["server.port"] == server.port
    assert attrs["wasp.site.name"] == "Traced Site" and attrs["wasp.app_pool"] == "Traced"
    # Every worker span is a child of the front's; the app's is the handler's child.
    workers = [s for s in spans.values() if s["resource"]["wasp.process"] == "worker"
               and s["scope"] == "wasp"]
    assert len(workers) >= 5
    for span in workers:
        assert span["parent"] == front["span_id"], span["name"]
        assert span["resource"]["wasp.app_pool"] == "Traced"
    handler = spans["ExecuteRequestHandler python_app"]
    app = spans["app.work"]
    assert app["parent"] == handler["span_id"] and app["scope"] == "otel_app"
    assert app["attributes"]["app.path"] == "/work"
    # What the app saw: wasp's handler span in HTTP_TRACEPARENT and as its current span, the
    # client's tracestate passed on.
    assert seen["traceparent"] == f"00-{TRACE}-{handler['span_id']}-01"
    assert seen["current_span_id"] == handler["span_id"] and seen["span_id"] == app["span_id"]
    assert seen["tracestate"] == "congo=t61rcWkgMzE"
    # The exporter's configuration: the traces path and the extra header.
    assert receiver.posts[0]["path"] == "/v1/traces"
    assert receiver.posts[0]["headers"].get("x-api-key") == "k123"


def test_an_asgi_app_s_spans_nest_under_its_handler_span(server, receiver):
    trace_id = "7" * 32
    r = requests.get(server.url + "/asgi/x", timeout=20, headers={"traceparent": f"00-{trace_id}-{PARENT}-01"})
    assert r.status_code == 200, r.text
    seen = r.json()
    spans = _tree(server, receiver, trace_id, {"GET /asgi", "app.asgi_work"})
    front = spans["GET /asgi"]
    assert front["parent"] == PARENT and front["attributes"]["http.route"] == "/asgi"
    handler = next(s for s in spans.values() if s["name"].startswith("ExecuteRequestHandler"))
    assert handler["parent"] == front["span_id"]
    assert spans["app.asgi_work"]["parent"] == handler["span_id"] == seen["current_span_id"]
    assert seen["traceparent"] == f"00-{trace_id}-{handler['span_id']}-01"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_an_http2_request_has_its_span(server, receiver):
    trace_id = "8" * 32
    out = subprocess.run(["curl", "-s", "--max-time", "20", "--http2-prior-knowledge", "-H",
                          f"traceparent: 00-{trace_id}-{PARENT}-01", server.url + "/h2"],
                         capture_output=True, text=True, timeout=30)
    seen = json.loads(out.stdout)
    spans = _tree(server, receiver, trace_id, {"GET /", "ExecuteRequestHandler python_app", "app.work"})
    front = spans["GET /"]
    assert front["parent"] == PARENT and front["attributes"]["network.protocol.version"] == "2"
    assert seen["traceparent"] == f"00-{trace_id}-{spans['ExecuteRequestHandler python_app']['span_id']}-01"


def test_a_request_without_context_starts_a_new_trace(server, receiver):
    r = requests.get(server.url + "/hello.txt", timeout=20)
    assert r.status_code == 200 and r.text == "hello\n"
    r = requests.get(server.url + "/fresh", timeout=20)
    seen = r.json()
    trace_id = seen["trace_id"]
    assert trace_id != TRACE
    spans = _tree(server, receiver, trace_id, {"GET /", "app.work"})
    assert spans["GET /"]["parent"] == ""


@pytest.mark.parametrize("value", [
    f"00-{TRACE.upper()}-{PARENT}-01",
    f"00-{'0' * 32}-{PARENT}-01",
    f"ff-{TRACE}-{PARENT}-01",
    f"00-{TRACE}-{PARENT}-01-extra",
    "x" * 4000,
])
def test_a_malformed_traceparent_is_ignored_and_replaced(server, receiver, value):
    r = requests.get(server.url + "/bad", timeout=20, headers={"traceparent": value,
                                                               "tracestate": "a=1"})
    assert r.status_code == 200
    seen = r.json()
    assert seen["trace_id"] != TRACE
    assert seen["traceparent"].startswith("00-" + seen["trace_id"])
    assert seen["tracestate"] is None          # not carried over without its traceparent
    spans = _tree(server, receiver, seen["trace_id"], {"GET /", "app.work"})
    assert spans["GET /"]["parent"] == ""


def test_a_static_file_has_its_handler_span(server, receiver):
    tp = f"00-{'1' * 32}-{PARENT}-01"
    assert requests.get(server.url + "/hello.txt", timeout=20, headers={"traceparent": tp}).status_code == 200
    spans = _tree(server, receiver, "1" * 32, {"GET /", "ExecuteRequestHandler static_file"})
    assert spans["ExecuteRequestHandler static_file"]["parent"] == spans["GET /"]["span_id"]


def test_an_unsampled_client_trace_exports_nothing_but_still_propagates(server, receiver):
    trace_id = "2" * 32
    r = requests.get(server.url + "/quiet", timeout=20, headers={"traceparent": f"00-{trace_id}-{PARENT}-00"})
    seen = r.json()
    assert seen["trace_id"] == trace_id and seen["traceparent"].startswith(f"00-{trace_id}-")
    assert not seen["traceparent"].endswith("-01")
    # A sampled request after it arrives; the unsampled one never does.
    requests.get(server.url + "/after", timeout=20, headers={"traceparent": f"00-{'3' * 32}-{PARENT}-01"})
    _tree(server, receiver, "3" * 32, {"GET /", "app.work"})
    assert receiver.of_trace(trace_id) == []


def test_client_context_from_untrusted_addresses_is_ignored(wasp_server, receiver):
    server = _start(wasp_server, receiver, 'client_context_from = ["10.0.0.0/8"]\nmodule_spans = false')
    r = requests.get(server.url + "/untrusted", timeout=20,
                     headers={"traceparent": f"00-{'4' * 32}-{PARENT}-01", "tracestate": "a=1"})
    seen = r.json()
    assert seen["trace_id"] != "4" * 32 and seen["tracestate"] is None
    spans = _tree(server, receiver, seen["trace_id"], {"GET /", "ExecuteRequestHandler python_app", "app.work"})
    assert spans["GET /"]["parent"] == ""
    # module_spans = false: only the handler's span in the worker.
    assert {s["name"] for s in spans.values()} == {"GET /", "ExecuteRequestHandler python_app", "app.work"}
    assert receiver.of_trace("4" * 32) == []


def test_tracing_off_sends_nothing_and_leaves_the_client_s_header_alone(wasp_server, receiver):
    text = (SITE % {"receiver": receiver.port, "extra": "", "interval": "100ms"}).replace(
        "enabled = true", "enabled = false")
    www = wasp_server.dir / "www"
    www.mkdir(exist_ok=True)
    (www / "hello.txt").write_text("hello\n")
    server = wasp_server(text)
    trace_id = "5" * 32
    tp = f"00-{trace_id}-{PARENT}-01"
    r = requests.get(server.url + "/off", timeout=20, headers={"traceparent": tp})
    assert r.status_code == 200
    assert r.json()["traceparent"] == tp                 # passed through untouched
    assert requests.get(server.url + "/hello.txt", timeout=20).status_code == 200
    server.stop()                                        # a graceful stop would flush spans
    assert receiver.of_trace(trace_id) == []
    assert not [s for s in receiver.spans if s["attributes"].get("url.path") in ("/off",)]


def test_a_graceful_stop_flushes_the_spans_still_queued(wasp_server, receiver):
    # Spans would wait ten minutes for their batch: only the flush on stop can send them.
    server = _start(wasp_server, receiver, interval="10m")
    trace_id = "6" * 32
    r = requests.get(server.url + "/flush", timeout=20, headers={"traceparent": f"00-{trace_id}-{PARENT}-01"})
    assert r.status_code == 200
    assert receiver.of_trace(trace_id) == []
    assert server.stop() == 0
    names = {s["name"] for s in receiver.of_trace(trace_id)}
    assert {"GET /", "ExecuteRequestHandler python_app", "app.work"} <= names, names
