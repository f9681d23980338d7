"""Failed Request Tracing: rule matching (status codes with substatus and ranges, paths, time
taken, verbosity), the traced pipeline's events, the XML's shape, file numbering and rotation,
masking, the TRACE/TRACED frames and `wasp list traces`' reading and lines."""

from __future__ import annotations

import os
import time
import xml.etree.ElementTree as ET

import pytest

from wasp.cli import output
from wasp.common import freb
from wasp.config import model
from wasp.config.load import load_text
from wasp.config.sections.trace_failed_requests import parse_status_codes, status_matches
from wasp.errors import ConfigError, HttpError
from wasp.wire import frames
from wasp.wire.frames import FrameType
from wasp.worker import modules  # noqa: F401  (registers the built-in modules)
from wasp.worker import freb as tracing
from wasp.worker.application import Application, load_modules
from wasp.worker.pipeline import Pipeline
from wasp.worker.registry import CONTINUE, Phase, register, unregister

from worker_fakes import make_ctx

EV = "{http://schemas.microsoft.com/win/2004/08/events/event}"

BASE = """
[[pools]]
name = "P"

[[sites]]
name = "S"
id = 1
bindings = ["http/*:8080:"]
[sites.trace_failed_requests_logging]
enabled = true
directory = "/tmp/freb-never-written"
[[sites.applications]]
path = "/"
pool = "P"
physical_path = "/tmp"
"""


# ---- status codes ----

def test_status_codes_with_substatus_and_ranges():
    codes = parse_status_codes("404.2, 500 ,400-403")
    assert codes == ((404, 404, 2), (500, 500, -1), (400, 403, -1))
    assert status_matches(codes, 404, 2) and not status_matches(codes, 404, 3)
    assert status_matches(codes, 500, 0) and status_matches(codes, 500, 19)
    assert status_matches(codes, 401, 1) and status_matches(codes, 403, 14)
    assert not status_matches(codes, 404, 0) and not status_matches(codes, 200, 0)
    assert status_matches(parse_status_codes("404.0"), 404, 0)
    assert not status_matches(parse_status_codes("404.0"), 404, 2)
    assert parse_status_codes("") == ()


@pytest.mark.parametrize("bad", ["40x", "1000", "99", "404.1000", "500-400", "404.2-405",
                                 "404,,500", "4 04", "404;500"])
def test_bad_status_codes_are_refused(bad):
    with pytest.raises(ValueError):
        parse_status_codes(bad)


def test_a_bad_rule_names_its_dotted_key():
    text = BASE + '[[sites.trace_failed_requests]]\npath = "*"\nfailure_definitions = { status_codes = "40x" }\n'
    with pytest.raises(ConfigError) as err:
        load_text(text)
    assert "sites[0].trace_failed_requests.rules[0].failure_definitions.status_codes" in str(err.value)
    text = BASE + '[[sites.trace_failed_requests]]\npath = "*"\ntrace_areas = [{ areas = ["Nope"] }]\n'
    with pytest.raises(ConfigError) as err:
        load_text(text)
    assert "trace_areas[0].areas[0]" in str(err.value) and "Nope" in str(err.value)
    text = BASE.replace('directory = "/tmp/freb-never-written"', "max_log_files = 0")
    with pytest.raises(ConfigError) as err:
        load_text(text)
    assert "sites[0].trace_failed_requests_logging.max_log_files" in str(err.value)


def test_the_trace_directory_defaults_to_the_log_dir():
    config = load_text(BASE.replace('directory = "/tmp/freb-never-written"\n', ""))
    assert config.sites[0].trace_failed_requests_logging.directory == os.path.join(
        config.server.log_dir, "FailedReqLogFiles")


# ---- the worker: tracer per URL, traced pipeline ----

def make_app(tmp_path, rules: str, enabled: bool = True, **app_fields) -> Application:
    text = BASE.replace("/tmp/freb-never-written", str(tmp_path / "freb"))
    if not enabled:
        text = text.replace("enabled = true", "enabled = false")
    text += "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in app_fields.items())
    text += rules
    config = load_text(text)
    app = Application(config.sites[0], config.sites[0].applications[0], config.sections)
    load_modules(app)
    return app


RULES = """
[[sites.trace_failed_requests]]
path = "*.php"
failure_definitions = { status_codes = "404.0, 500-599" }
[[sites.trace_failed_requests]]
path = "*"
failure_definitions = { status_codes = "403.14", time_taken = "1h" }
"""


def test_no_rules_or_logging_off_means_no_tracer(tmp_path):
    assert make_app(tmp_path, "").sections.tracer is None
    assert make_app(tmp_path, RULES, enabled=False).sections.tracer is None
    ctx = make_ctx(make_app(tmp_path, ""), path="/x.php")
    assert ctx.freb is None


def test_the_first_rule_whose_path_matches_is_the_request_s(tmp_path):
    app = make_app(tmp_path, RULES)
    tracer = app.sections.tracer
    assert tracer is not None and [r.path for r in tracer.rules] == ["*.php", "*"]
    assert make_ctx(app, path="/a/INDEX.PHP").freb.rule.path == "*.php"
    assert make_ctx(app, path="/a/b.html").freb.rule.path == "*"
    slash = make_app(tmp_path, '[[sites.trace_failed_requests]]\npath = "/"\n'
                     'failure_definitions = { status_codes = "500" }\n')
    assert make_ctx(slash, path="/dir/").freb is not None
    assert make_ctx(slash, path="/dir/x").freb is None
    sub = make_app(tmp_path, '[[sites.trace_failed_requests]]\npath = "api/*"\n'
                   'failure_definitions = { status_codes = "500" }\n')
    assert make_ctx(sub, path="/api/v1/x").freb is not None
    assert make_ctx(sub, path="/web/api/x").freb is None


@pytest.fixture
def temp_modules():
    made = []

    def make(module_id, phases, behaviour):
        cls = type(module_id, (), {})
        from wasp.worker.registry import Module
        cls = type(module_id.replace(".", "_"), (Module,), {
            phase.method: (lambda self, ctx, p=phase: behaviour.get(p, lambda c: CONTINUE)(ctx))
            for phase in phases})
        register(module_id, phases=phases)(cls)
        made.append(module_id)
        return cls
    yield make
    for module_id in made:
        unregister(module_id)


def answer(status, body=b"ok"):
    def execute(ctx):
        ctx.respond(f"{status}\r\nContent-Length: {len(body)}\r\nSet-Cookie: s=top-secret\r\n".encode(), body)
        return CONTINUE
    return execute


def run(app, pipeline, path="/x.php", **headers):
    ctx = make_ctx(app, path=path, headers=tuple(headers.items()))
    pipeline.run_sync(ctx)
    return ctx


def test_a_matching_request_has_module_events_and_masked_headers(tmp_path, temp_modules, monkeypatch):
    submitted = []
    monkeypatch.setattr(tracing, "submit", submitted.append)
    app = make_app(tmp_path, RULES)
    temp_modules("t.first", (Phase.BEGIN_REQUEST,), {})
    temp_modules("t.handler", (Phase.MAP_REQUEST_HANDLER, Phase.EXECUTE_REQUEST_HANDLER), {
        Phase.MAP_REQUEST_HANDLER: lambda ctx: setattr(ctx, "handler", pipeline.modules[1]) or CONTINUE,
        Phase.EXECUTE_REQUEST_HANDLER: answer("404 Not Found")})
    pipeline = Pipeline(app, ("t.first", "t.handler"))
    ctx = run(app, pipeline, Authorization="Basic c2VjcmV0", Cookie="a=b")
    trace = ctx.freb
    assert trace.matched and trace.reason == "STATUS_CODE" and trace.trigger == "404"
    trace.events = trace.record().events
    opcodes = [e[2] for e in trace.events]
    assert opcodes[:3] == ["GENERAL_REQUEST_START", "GENERAL_ENDPOINT_INFORMATION",
                           "GENERAL_REQUEST_HEADERS"]
    modules_seen = [(e[2], dict(e[3])["ModuleName"]) for e in trace.events if e[2].startswith("NOTIFY_")]
    assert modules_seen == [("NOTIFY_MODULE_START", "t.first"), ("NOTIFY_MODULE_END", "t.first"),
                            ("NOTIFY_MODULE_START", "t.handler"), ("NOTIFY_MODULE_END", "t.handler"),
                            ("NOTIFY_MODULE_START", "t.handler"), ("NOTIFY_MODULE_END", "t.handler")]
    status = next(dict(e[3]) for e in trace.events if e[2] == "MODULE_SET_RESPONSE_ERROR_STATUS")
    assert status["ModuleName"] == "t.handler" and status["HttpStatus"] == 404
    assert status["Notification"] == 0x80  # EXECUTE_REQUEST_HANDLER
    headers = next(dict(e[3])["Headers"] for e in trace.events if e[2] == "GENERAL_REQUEST_HEADERS")
    assert "c2VjcmV0" not in headers and "a=b" not in headers and tracing.MASK in headers
    response = next(dict(e[3])["Headers"] for e in trace.events if e[2] == "GENERAL_RESPONSE_HEADERS")
    assert "top-secret" not in response
    # FakeChannel has no socket (like a warm-up request's): no front to ask, written at once.
    assert FrameType.TRACE not in [f[0] for f in ctx.channel.frames()]
    assert trace.token == 0 and submitted == [trace]


def test_a_request_that_matches_no_definition_leaves_nothing(tmp_path, temp_modules, monkeypatch):
    submitted = []
    monkeypatch.setattr(tracing, "submit", submitted.append)
    app = make_app(tmp_path, RULES)
    temp_modules("t.handler", (Phase.MAP_REQUEST_HANDLER, Phase.EXECUTE_REQUEST_HANDLER), {
        Phase.MAP_REQUEST_HANDLER: lambda ctx: setattr(ctx, "handler", pipeline.modules[0]) or CONTINUE,
        Phase.EXECUTE_REQUEST_HANDLER: answer("200 OK")})
    pipeline = Pipeline(app, ("t.handler",))
    ctx = run(app, pipeline)
    assert ctx.freb.matched is False and submitted == []
    assert FrameType.TRACE not in [f[0] for f in ctx.channel.frames()]
    # An untraced URL runs the plain steps: the traced copies are not even built.
    plain = Pipeline(make_app(tmp_path, ""), ("t.handler",))
    run(plain.app, plain)
    assert plain._traced is None


def test_time_taken_and_error_verbosity_are_failures(tmp_path, temp_modules, monkeypatch):
    submitted = []
    monkeypatch.setattr(tracing, "submit", submitted.append)
    app = make_app(tmp_path, """
[[sites.trace_failed_requests]]
path = "slow"
failure_definitions = { time_taken = "50ms" }
[[sites.trace_failed_requests]]
path = "*"
failure_definitions = { verbosity = "Error" }
""")

    def execute(ctx):
        if ctx.head.path == b"/slow":
            time.sleep(0.06)
            return answer("200 OK")(ctx)
        if ctx.head.path == b"/boom":
            raise RuntimeError("kaput")
        if ctx.head.path == b"/denied":
            raise HttpError("no", status=403, substatus=6)
        return answer("200 OK")(ctx)
    temp_modules("t.handler", (Phase.MAP_REQUEST_HANDLER, Phase.EXECUTE_REQUEST_HANDLER), {
        Phase.MAP_REQUEST_HANDLER: lambda ctx: setattr(ctx, "handler", pipeline.modules[0]) or CONTINUE,
        Phase.EXECUTE_REQUEST_HANDLER: execute})
    pipeline = Pipeline(app, ("t.handler",))
    assert run(app, pipeline, path="/slow").freb.reason == "TIME_TAKEN"
    boom = run(app, pipeline, path="/boom").freb
    assert boom.reason == "VERBOSITY" and boom.trigger == "500"
    boom.events = boom.record().events
    error = next(dict(e[3]) for e in boom.events if e[2] == "MODULE_ERROR")
    assert error["ModuleName"] == "t.handler" and "kaput" in error["ErrorText"]
    status = next(dict(e[3]) for e in boom.events if e[2] == "MODULE_SET_RESPONSE_ERROR_STATUS")
    assert "kaput" in status["ConfigExceptionInfo"]
    # A 403 is a Warning, not an Error: not failed by verbosity = "Error".
    assert run(app, pipeline, path="/denied").freb.matched is False
    assert run(app, pipeline, path="/fine").freb.matched is False
    assert len(submitted) == 2


def test_verbosity_of_trace_areas_filters_module_events(tmp_path, temp_modules, monkeypatch):
    monkeypatch.setattr(tracing, "submit", lambda t: None)
    app = make_app(tmp_path, """
[[sites.trace_failed_requests]]
path = "*"
trace_areas = [{ areas = ["Authentication"], verbosity = "Verbose" }]
failure_definitions = { status_codes = "200" }
""")
    temp_modules("t.handler", (Phase.MAP_REQUEST_HANDLER, Phase.EXECUTE_REQUEST_HANDLER), {
        Phase.MAP_REQUEST_HANDLER: lambda ctx: setattr(ctx, "handler", pipeline.modules[0]) or CONTINUE,
        Phase.EXECUTE_REQUEST_HANDLER: answer("200 OK")})
    pipeline = Pipeline(app, ("t.handler",))
    trace = run(app, pipeline).freb
    assert trace.matched
    opcodes = {e[2] for e in trace.record().events}
    assert "NOTIFY_MODULE_START" not in opcodes and "GENERAL_REQUEST_START" in opcodes


# ---- the XML and the files ----

def record(tmp_path, n_events=3, max_bytes=1024 * 1024, max_files=50, url="http://h:80/a?b=<c>&d"):
    now = time.time_ns()
    events = [(now + i * 1000, 7, "NOTIFY_MODULE_START",
               (("ModuleName", "static_file"), ("Notification", 0x10), ("fIsPostNotification", "false")))
              for i in range(n_events)]
    attributes = [("url", url), ("siteId", 1), ("appPoolId", "P"), ("processId", 42),
                  ("verb", "GET"), ("failureReason", "STATUS_CODE"), ("statusCode", "404.2"),
                  ("triggerStatusCode", "404.2"), ("timeTaken", 12)]
    return freb.TraceRecord(attributes, events, "{00000000-0000-0000-0001-000000000001}", 42, 1,
                            str(tmp_path), max_files, max_bytes)


def test_the_xml_has_iis_s_shape(tmp_path):
    data = freb.render(record(tmp_path))
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(data)
    assert root.tag == "failedRequest" and root.get("url") == "http://h:80/a?b=<c>&d"
    assert root.get("statusCode") == "404.2" and root.get("timeTaken") == "12"
    assert b'xmlns:freb="http://schemas.microsoft.com/win/2006/06/iis/freb"' in data
    event = root.find(f"{EV}Event")
    system = event.find(f"{EV}System")
    assert system.find(f"{EV}Provider").get("Name") == "WWW Server"
    assert system.find(f"{EV}Level").text == "5"
    assert system.find(f"{EV}Keywords").text == "0x100"
    stamp = system.find(f"{EV}TimeCreated").get("SystemTime")
    assert stamp.endswith("Z") and len(stamp.split(".")[1]) == 8  # 7 digits and Z
    assert system.find(f"{EV}Execution").get("ProcessID") == "42"
    data_ = {d.get("Name"): d.text for d in event.findall(f"{EV}EventData/{EV}Data")}
    assert data_ == {"ModuleName": "static_file", "Notification": "16", "fIsPostNotification": "false"}
    rendering = event.find(f"{EV}RenderingInfo")
    assert rendering.find(f"{EV}Opcode").text == "NOTIFY_MODULE_START"
    desc = rendering.find("{http://schemas.microsoft.com/win/2006/06/iis/freb}Description")
    assert desc.get("Data") == "Notification" and desc.text == "MAP_REQUEST_HANDLER"


def test_control_characters_cannot_break_the_xml(tmp_path):
    rec = record(tmp_path, url="http://h/\x00\x1b]</failedRequest><x a='\"'>\ud800")
    root = ET.fromstring(freb.render(rec))
    assert "</failedRequest>" in root.get("url")


def test_a_trace_is_cut_at_its_size_limit(tmp_path):
    data = freb.render(record(tmp_path, n_events=5000, max_bytes=64 * 1024))
    assert len(data) <= 64 * 1024
    root = ET.fromstring(data)
    last = root.findall(f"{EV}Event")[-1]
    assert last.find(f"{EV}RenderingInfo/{EV}Opcode").text == "LOG_FILE_MAX_SIZE_TRUNCATE"


def test_files_are_numbered_per_site_and_the_oldest_go(tmp_path):
    rec = record(tmp_path, max_files=3)
    paths = [freb.store(rec, freb.render(rec)) for _ in range(5)]
    folder = tmp_path / "W3SVC1"
    assert [os.path.basename(p) for p in paths] == [f"fr00000{i}.xml" for i in range(1, 6)]
    assert sorted(os.listdir(folder)) == ["fr000003.xml", "fr000004.xml", "fr000005.xml", "freb.xsl"]
    assert oct(os.stat(folder / "fr000005.xml").st_mode & 0o777) == "0o640"
    # A file someone planted under the next name is not overwritten: the number after it is used.
    (folder / "fr000006.xml").write_text("planted")
    os.unlink(folder / "fr000006.xml")
    os.symlink("/etc/passwd", folder / "fr000006.xml")
    assert os.path.basename(freb.store(rec, freb.render(rec))) == "fr000007.xml"
    assert os.path.islink(folder / "fr000006.xml")


def test_list_traces_reads_the_root_and_prints_appcmd_lines(tmp_path):
    rec = record(tmp_path)
    freb.store(rec, freb.render(rec))
    (tmp_path / "W3SVC1" / "fr000009.xml").write_text("not a trace")
    rows = freb.list_traces([(1, "Default Web Site", str(tmp_path)), (2, "Other", str(tmp_path))])
    assert len(rows) == 1
    row = rows[0]
    assert row["name"] == "Default Web Site/fr000001.xml" and row["statuscode"] == "404.2"
    assert row["url"] == "http://h:80/a?b=<c>&d" and row["wp"] == "42"
    assert output.trace_line(row) == ('TRACE "Default Web Site/fr000001.xml" '
                                      '(url:http://h:80/a?b=<c>&d,statuscode:404.2,wp:42)')
    assert output.text_view("traces", row).startswith('TRACE\n  TRACE.NAME:"Default Web Site/fr000001.xml"')


# ---- frames ----

def test_trace_and_traced_frames_round_trip():
    (ftype, _flags, sid, payload), = frames.FrameReader().feed(frames.pack_trace(9, 77))
    assert ftype == FrameType.TRACE and sid == 9 and frames.unpack_trace(payload) == 77
    (ftype, _flags, sid, payload), = frames.FrameReader().feed(frames.pack_traced(77, 1500, 20, 123))
    assert ftype == FrameType.TRACED and sid == 0
    assert frames.unpack_traced(payload) == (77, 1500, 20, 123)
    with pytest.raises(frames.ProtocolError):
        frames.unpack_trace(b"\0" * 3)
    with pytest.raises(frames.ProtocolError):
        frames.unpack_traced(b"\0" * 5)


def test_the_front_s_times_complete_a_pending_trace(tmp_path, temp_modules, monkeypatch):
    submitted = []
    monkeypatch.setattr(tracing, "submit", submitted.append)
    app = make_app(tmp_path, RULES)
    temp_modules("t.handler", (Phase.MAP_REQUEST_HANDLER, Phase.EXECUTE_REQUEST_HANDLER), {
        Phase.MAP_REQUEST_HANDLER: lambda ctx: setattr(ctx, "handler", pipeline.modules[0]) or CONTINUE,
        Phase.EXECUTE_REQUEST_HANDLER: answer("500 Internal Server Error")})
    pipeline = Pipeline(app, ("t.handler",))

    from worker_fakes import FakeChannel

    class Loop:
        def __init__(self):
            self.later = []

        def call_soon_threadsafe(self, fn, *args):
            fn(*args)

        def call_later(self, delay, fn, *args):
            self.later.append((delay, fn, args))

    channel = FakeChannel()
    channel.sock = object()  # a real data channel: the front is asked
    channel.loop = Loop()
    ctx = make_ctx(app, path="/x.php", channel=channel)
    pipeline.run_sync(ctx)
    trace = ctx.freb
    assert trace.token and tracing.PENDING[trace.token] is trace and submitted == []
    # The TRACE frame goes right before the response, with the token the trace waits under.
    sent = channel.frames()
    assert sent[0][0] == FrameType.TRACE and frames.unpack_trace(sent[0][3]) == trace.token
    assert sent[1][0] == FrameType.RESPONSE
    assert channel.loop.later and channel.loop.later[0][0] == tracing.FRONT_WAIT
    tracing.front_times(frames.pack_traced(trace.token, 5000, 300, 99)[frames.HEADER.size:])
    assert submitted == [trace] and trace.token not in tracing.PENDING
    rec = trace.record()
    opcodes = [e[2] for e in rec.events]
    assert opcodes[0] == "FRONT_REQUEST_RECEIVED" and opcodes[-1] == "FRONT_RESPONSE_SENT"
    sent = dict(rec.events[-1][3])
    assert sent["BytesSent"] == 99 and sent["FrontTimeAfterWorker"] == "0.300 ms"
    assert dict(rec.attributes)["timeTaken"] == 5
    # The expiry timer fires later and finds nothing to do.
    _delay, fn, args = channel.loop.later[0]
    fn(*args)
    assert submitted == [trace]


# ---- bounds (a flood of failing requests, huge headers) ----

def test_header_dumps_are_bounded_and_masked():
    many = [(b"X-H%d" % i, b"v" * 10000) for i in range(100)]
    text = tracing.dump_headers([(b"Cookie", b"sid=1")] + many)
    assert len(text) <= tracing.HEADERS_LIMIT + 10 and text.endswith("...")
    assert "sid=1" not in text and "v" * (tracing.HEADER_VALUE_LIMIT + 1) not in text
    block = tracing.dump_block(b"Set-Cookie: a=b\r\nX-Ok: 1\r\n")
    assert block == f"Set-Cookie: {tracing.MASK}\r\nX-Ok: 1"


def test_the_writer_queue_is_bounded(monkeypatch, tmp_path):
    writer = tracing.Writer()
    writer.thread = object()  # nobody takes from the queue
    monkeypatch.setattr(tracing, "QUEUE_LIMIT", 3)
    for _ in range(5):
        writer.put(object())
    assert writer.queue.qsize() == 3 and writer.dropped == 2


def test_a_trace_keeps_at_most_max_events(monkeypatch, tmp_path):
    monkeypatch.setattr(tracing, "MAX_EVENTS", 10)
    app = make_app(tmp_path, RULES)
    trace = make_ctx(app, path="/x.php").freb
    for _ in range(50):
        trace.emit("USER_SET", (("AuthType", "Basic"), ("UserName", "u")))
    assert len(trace.events) == 10 and trace.dropped == 41


def test_the_style_sheet_goes_next_to_the_traces_once(tmp_path):
    rec = record(tmp_path)
    freb.store(rec, freb.render(rec))
    sheet = tmp_path / "W3SVC1" / "freb.xsl"
    assert b"xsl:stylesheet" in sheet.read_bytes()
    sheet.write_text("the admin's own")
    freb.store(rec, freb.render(rec))
    assert sheet.read_text() == "the admin's own"
    assert freb.numbers(str(tmp_path / "W3SVC1")) == [1, 2]  # not counted as a trace
