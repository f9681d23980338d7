"""FREB's StaticFile and Compression events (issue 11 item 5): emitted only for a traced request,
with IIS's names, and a reason when a response was not compressed."""

from __future__ import annotations

import pytest

from wasp.worker import modules  # noqa: F401  (registers the built-in modules)
from wasp.worker import freb as tracing
from wasp.worker.pipeline import Pipeline
from wasp.worker.registry import CONTINUE, Phase

import test_freb
from test_freb import run, temp_modules  # noqa: F401  (the fixture)


def make_app(tmp_path, rules, physical_path=None, monkeypatch=None):
    if physical_path is None:
        return test_freb.make_app(tmp_path, rules)
    base = test_freb.BASE
    try:
        test_freb.BASE = base.replace('physical_path = "/tmp"', f'physical_path = "{physical_path}"')
        return test_freb.make_app(tmp_path, rules)
    finally:
        test_freb.BASE = base

CATCH_ALL = """
[[sites.trace_failed_requests]]
path = "*"
failure_definitions = { status_codes = "100-999" }
"""


def events_of(ctx):
    return [(e[2], dict(e[3])) for e in ctx.freb.record().events]


def opcodes(events, prefix):
    return [op for op, _data in events if op.startswith(prefix)]


@pytest.fixture
def submitted(monkeypatch):
    found = []
    monkeypatch.setattr(tracing, "submit", found.append)
    return found


def test_a_404_static_file_shows_the_handler_and_why(tmp_path, submitted):
    app = make_app(tmp_path, CATCH_ALL, physical_path=str(tmp_path))
    ctx = run(app, app.pipeline, path="/missing.txt")
    assert ctx.status == 404 and ctx.freb.matched
    events = events_of(ctx)
    assert opcodes(events, "STATIC_FILE_") == ["STATIC_FILE_START", "STATIC_FILE_END"]
    start = next(d for op, d in events if op == "STATIC_FILE_START")
    end = next(d for op, d in events if op == "STATIC_FILE_END")
    assert start["Handler"] == "static_file" and start["RequestURL"] == "/missing.txt"
    assert end["Successful"] == "false" and end["HttpStatus"] == 404


def test_a_served_file_shows_its_name_and_size(tmp_path, submitted):
    (tmp_path / "a.txt").write_bytes(b"x" * 10)
    app = make_app(tmp_path, CATCH_ALL, physical_path=str(tmp_path))
    ctx = run(app, app.pipeline, path="/a.txt")
    assert ctx.status == 200
    end = next(d for op, d in events_of(ctx) if op == "STATIC_FILE_END")
    assert end["Successful"] == "true" and end["FileSize"] == 10
    assert end["FileName"].endswith("a.txt")


def test_static_compression_says_why_it_did_not_compress(tmp_path, submitted):
    (tmp_path / "small.txt").write_bytes(b"x" * 10)
    (tmp_path / "big.txt").write_bytes(b"y" * 100_000)
    app = make_app(tmp_path, CATCH_ALL, physical_path=str(tmp_path))
    small = events_of(run(app, app.pipeline, path="/small.txt", **{"Accept-Encoding": "gzip"}))
    assert opcodes(small, "STATIC_COMPRESSION_") == [
        "STATIC_COMPRESSION_START", "STATIC_COMPRESSION_NOT_SUCCESS", "STATIC_COMPRESSION_END"]
    assert dict(small)["STATIC_COMPRESSION_NOT_SUCCESS"]["Reason"] == "FILE_TOO_SMALL"
    plain = dict(events_of(run(app, app.pipeline, path="/big.txt")))
    assert plain["STATIC_COMPRESSION_NOT_SUCCESS"]["Reason"] == "NO_ACCEPT_ENCODING"
    first = dict(events_of(run(app, app.pipeline, path="/big.txt", **{"Accept-Encoding": "gzip"})))
    assert first["STATIC_COMPRESSION_NOT_SUCCESS"]["Reason"] in (
        "NOT_FREQUENTLY_HIT", "COMPRESSED_COPY_NOT_READY")


def test_dynamic_compression_success_and_not_success(tmp_path, submitted, temp_modules):
    app = make_app(tmp_path, CATCH_ALL)
    body = b"<p>hello</p>" * 1000

    def execute(ctx):
        ctx.respond(b"200 OK\r\nContent-Type: text/html\r\n", body)
        return CONTINUE
    temp_modules("t.page", (Phase.MAP_REQUEST_HANDLER, Phase.EXECUTE_REQUEST_HANDLER), {
        Phase.MAP_REQUEST_HANDLER: lambda ctx: setattr(ctx, "handler", pipeline.modules[-1]) or CONTINUE,
        Phase.EXECUTE_REQUEST_HANDLER: execute})
    pipeline = Pipeline(app, ("dynamic_compression", "t.page"))
    done = dict(events_of(run(app, pipeline, path="/p", **{"Accept-Encoding": "gzip"})))
    assert done["DYNAMIC_COMPRESSION_SUCCESS"]["Encoding"] == "gzip"
    assert "DYNAMIC_COMPRESSION_NOT_SUCCESS" not in done
    plain = events_of(run(app, pipeline, path="/p"))
    assert opcodes(plain, "DYNAMIC_COMPRESSION_") == [
        "DYNAMIC_COMPRESSION_START", "DYNAMIC_COMPRESSION_NOT_SUCCESS", "DYNAMIC_COMPRESSION_END"]
    assert dict(plain)["DYNAMIC_COMPRESSION_NOT_SUCCESS"]["Reason"] == "NO_ACCEPT_ENCODING"


def test_an_area_left_out_of_the_rule_records_none_of_its_events(tmp_path, submitted):
    rule = CATCH_ALL + 'trace_areas = [{ provider = "WWW Server", areas = ["Authentication"], verbosity = "Verbose" }]\n'
    app = make_app(tmp_path, rule, physical_path=str(tmp_path))
    events = events_of(run(app, app.pipeline, path="/missing.txt"))
    assert not opcodes(events, "STATIC_") and not opcodes(events, "DYNAMIC_")


def test_an_untraced_request_gets_no_trace_at_all(tmp_path):
    app = make_app(tmp_path, "", physical_path=str(tmp_path))
    ctx = run(app, app.pipeline, path="/missing.txt")
    assert ctx.status == 404 and ctx.freb is None


AUTH = """[sites.applications.anonymous_authentication]
enabled = false
[sites.applications.basic_authentication]
enabled = true
"""


def test_a_401_shows_the_authentication_area(tmp_path, submitted):
    app = make_app(tmp_path, AUTH + CATCH_ALL, physical_path=str(tmp_path))
    ctx = run(app, app.pipeline, path="/a.txt", Authorization="Bearer abc")
    assert ctx.status == 401
    events = events_of(ctx)
    kinds = opcodes(events, "AUTH_")
    assert kinds[0] == "AUTH_REQUEST_AUTH_TYPE" and kinds.count("AUTH_REQUEST_AUTH_TYPE") == 1
    assert dict(events)["AUTH_REQUEST_AUTH_TYPE"]["RequestAuthType"] == "Bearer"
    started = [d["AuthTypeSupported"] for op, d in events if op == "AUTH_START"]
    ended = [d for op, d in events if op == "AUTH_END"]
    assert "basic_authentication" in started and len(started) == len(ended)
    assert all(d["UserSet"] == "false" for d in ended)
    status = next(d for op, d in events if op == "MODULE_SET_RESPONSE_ERROR_STATUS")
    assert status["HttpStatus"] == 401
    assert "abc" not in str(events)  # the credentials themselves never go in a trace


def test_auth_end_of_a_pending_check_comes_when_the_check_resolves(tmp_path, submitted, temp_modules):
    """A module whose check goes pending (a password check on a thread, an LDAP bind): AUTH_END
    after the user is set, saying so, not when the step handed back its wait."""
    import asyncio

    from worker_fakes import make_ctx

    async def check(ctx):
        await asyncio.sleep(0)
        ctx.set_user("alice", "Basic")
        return CONTINUE

    temp_modules("t.slow_auth", (Phase.AUTHENTICATE_REQUEST,),
                 {Phase.AUTHENTICATE_REQUEST: lambda ctx: check(ctx)})
    (tmp_path / "a.txt").write_text("a")
    app = make_app(tmp_path, CATCH_ALL, physical_path=str(tmp_path))
    pipeline = Pipeline(app, ("t.slow_auth", "static_file"))
    ctx = make_ctx(app, path="/a.txt")
    asyncio.run(pipeline.run_async(ctx))
    events = [op for op, _d in events_of(ctx) if op in ("AUTH_START", "USER_SET", "AUTH_END")]
    assert events == ["AUTH_START", "USER_SET", "AUTH_END"]
    assert dict(events_of(ctx))["AUTH_END"] == {"AuthTypeSupported": "t.slow_auth", "UserSet": "true"}
