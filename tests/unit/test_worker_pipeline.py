"""The worker's pipeline and module registry, with in-memory fakes."""

from __future__ import annotations

import asyncio

import pytest

from wasp.errors import HttpError, NotFound
from wasp.worker import modules  # noqa: F401  (registers the built-in modules)
from wasp.worker.pipeline import DEFAULT_MODULES, Pipeline
from wasp.worker.registry import (CONTINUE, FINISH, Module, ModuleError, Phase, lookup, register,
                                  registered, unregister)

from worker_fakes import make_app, make_ctx

ALL = tuple(Phase)


@pytest.fixture
def temp_modules():
    made = []

    def make(module_id, phases, behaviour=None, log=None):
        behaviour = behaviour or {}

        def method_for(phase):
            def step(self, ctx):
                (log if log is not None else []).append((phase.name, module_id))
                action = behaviour.get(phase)
                if callable(action):
                    return action(ctx)
                return action or CONTINUE
            return step

        cls = type(module_id, (Module,), {p.method: method_for(p) for p in phases})
        register(module_id, phases=phases)(cls)
        made.append(module_id)
        return cls

    yield make
    for module_id in made:
        unregister(module_id)


def answer(ctx):
    ctx.respond(b"200 OK\r\nContent-Length: 2\r\n", b"ok")
    return FINISH


def test_phases_are_in_iis_order():
    assert [p.name for p in Phase] == [
        "BEGIN_REQUEST", "AUTHENTICATE_REQUEST", "AUTHORIZE_REQUEST", "RESOLVE_REQUEST_CACHE",
        "MAP_REQUEST_HANDLER", "ACQUIRE_REQUEST_STATE", "PRE_EXECUTE_REQUEST_HANDLER",
        "EXECUTE_REQUEST_HANDLER", "RELEASE_REQUEST_STATE", "UPDATE_REQUEST_CACHE", "LOG_REQUEST",
        "END_REQUEST"]
    assert Phase.EXECUTE_REQUEST_HANDLER.title == "ExecuteRequestHandler"


def test_registry_refuses_duplicates_unknown_ids_and_missing_methods(temp_modules):
    temp_modules("t.dup", (Phase.BEGIN_REQUEST,))
    with pytest.raises(ModuleError, match="twice"):
        temp_modules("t.dup", (Phase.BEGIN_REQUEST,))
    with pytest.raises(ModuleError, match="unknown module 't.nope'"):
        lookup("t.nope")
    with pytest.raises(ModuleError, match="no end_request"):
        register("t.bad", phases=(Phase.END_REQUEST,))(type("Bad", (Module,), {}))
    assert set(DEFAULT_MODULES) <= set(registered())


def test_unknown_or_repeated_module_fails_compilation():
    app = make_app()
    with pytest.raises(ModuleError):
        Pipeline(app, ("static_file", "no_such_module"))
    with pytest.raises(ModuleError):
        Pipeline(app, ("static_file", "static_file"))


def test_steps_run_in_phase_order_then_config_order(temp_modules):
    log = []
    temp_modules("t.b", (Phase.END_REQUEST, Phase.BEGIN_REQUEST), log=log)
    temp_modules("t.a", (Phase.BEGIN_REQUEST, Phase.LOG_REQUEST, Phase.AUTHORIZE_REQUEST), log=log)
    temp_modules("t.h", (Phase.MAP_REQUEST_HANDLER, Phase.EXECUTE_REQUEST_HANDLER), log=log,
                 behaviour={Phase.MAP_REQUEST_HANDLER: lambda ctx: setattr(ctx, "handler", lookup_h(ctx)) or CONTINUE,
                            Phase.EXECUTE_REQUEST_HANDLER: answer})
    pipeline = Pipeline(make_app(), ("t.b", "t.a", "t.h"))

    def lookup_h(ctx):
        return pipeline.modules[2]
    ctx = make_ctx(pipeline.app)
    pipeline.run_sync(ctx)
    assert log == [("BEGIN_REQUEST", "t.b"), ("BEGIN_REQUEST", "t.a"), ("AUTHORIZE_REQUEST", "t.a"),
                   ("MAP_REQUEST_HANDLER", "t.h"), ("EXECUTE_REQUEST_HANDLER", "t.h"),
                   ("LOG_REQUEST", "t.a"), ("END_REQUEST", "t.b")]
    assert ctx.channel.response()[:4] == (200, 0, {"content-length": "2"}, b"ok")
    assert ctx.channel.finished == [ctx]


def test_finish_skips_to_log_and_end(temp_modules):
    log = []
    temp_modules("t.early", (Phase.BEGIN_REQUEST, Phase.END_REQUEST), log=log,
                 behaviour={Phase.BEGIN_REQUEST: answer})
    temp_modules("t.late", ALL[1:-1], log=log)
    pipeline = Pipeline(make_app(), ("t.early", "t.late"))
    ctx = make_ctx(pipeline.app)
    pipeline.run_sync(ctx)
    assert log == [("BEGIN_REQUEST", "t.early"), ("LOG_REQUEST", "t.late"), ("END_REQUEST", "t.early")]


def test_http_error_becomes_one_response_and_log_end_still_run(temp_modules):
    log = []

    def deny(ctx):
        raise HttpError("nope", status=403, substatus=6)
    temp_modules("t.deny", (Phase.AUTHORIZE_REQUEST, Phase.LOG_REQUEST, Phase.END_REQUEST), log=log,
                 behaviour={Phase.AUTHORIZE_REQUEST: deny})
    temp_modules("t.after", (Phase.RESOLVE_REQUEST_CACHE,), log=log)
    pipeline = Pipeline(make_app(), ("t.deny", "t.after"))
    ctx = make_ctx(pipeline.app)
    pipeline.run_sync(ctx)
    assert log == [("AUTHORIZE_REQUEST", "t.deny"), ("LOG_REQUEST", "t.deny"), ("END_REQUEST", "t.deny")]
    assert len(ctx.channel.frames()) == 1
    status, sub, headers, body, kind, _ = ctx.channel.response()
    assert (status, sub, kind) == (403, 6, "response")
    assert b"403 - Forbidden: Access is denied." in body  # remote client: custom error page
    assert headers["content-type"] == "text/html" and int(headers["content-length"]) == len(body)


def test_unexpected_exception_is_500_and_logged(temp_modules, caplog):
    temp_modules("t.crash", (Phase.BEGIN_REQUEST,),
                 behaviour={Phase.BEGIN_REQUEST: lambda ctx: 1 / 0})
    pipeline = Pipeline(make_app(), ("t.crash",))
    ctx = make_ctx(pipeline.app, client=("127.0.0.1", 1))
    pipeline.run_sync(ctx)
    status, sub, _h, body, _k, _ = ctx.channel.response()
    assert (status, sub) == (500, 0)
    assert b"HTTP Error 500.0 - Internal Server Error" in body and b"BeginRequest" in body
    assert "ZeroDivisionError" in caplog.text


def test_error_after_response_started_is_abort(temp_modules):
    def half(ctx):
        ctx.start_response(b"200 OK\r\n")
        raise RuntimeError("half way")
    temp_modules("t.half", (Phase.BEGIN_REQUEST,), behaviour={Phase.BEGIN_REQUEST: half})
    pipeline = Pipeline(make_app(), ("t.half",))
    ctx = make_ctx(pipeline.app)
    pipeline.run_sync(ctx)
    kinds = [f[0] for f in ctx.channel.frames()]
    assert kinds == [5, 10]  # RESPONSE, then ABORT


def test_error_in_log_request_does_not_answer_twice(temp_modules):
    def bad_log(ctx):
        raise RuntimeError("log failed")
    temp_modules("t.ok", (Phase.BEGIN_REQUEST,), behaviour={Phase.BEGIN_REQUEST: answer})
    temp_modules("t.badlog", (Phase.LOG_REQUEST,), behaviour={Phase.LOG_REQUEST: bad_log})
    pipeline = Pipeline(make_app(), ("t.ok", "t.badlog"))
    ctx = make_ctx(pipeline.app)
    pipeline.run_sync(ctx)
    assert len(ctx.channel.frames()) == 1 and ctx.channel.response()[0] == 200


def test_unanswered_request_is_500(temp_modules):
    cls = temp_modules("t.silent", (Phase.MAP_REQUEST_HANDLER, Phase.EXECUTE_REQUEST_HANDLER))
    cls.catch_all = True
    pipeline = Pipeline(make_app(), ("t.silent",))
    ctx = make_ctx(pipeline.app)
    pipeline.run_sync(ctx)
    assert ctx.channel.response()[0] == 500


def test_no_handler_is_404_4(temp_modules):
    temp_modules("t.nothing", (Phase.BEGIN_REQUEST,))
    pipeline = Pipeline(make_app(), ("t.nothing",))
    ctx = make_ctx(pipeline.app)
    pipeline.run_sync(ctx)
    assert ctx.channel.response()[:2] == (404, 4)


def test_async_steps_are_awaited_and_stage_is_kept(temp_modules):
    seen = []

    async def slow(ctx):
        seen.append(ctx.stage)
        await asyncio.sleep(0)
        return answer(ctx)
    temp_modules("t.async", (Phase.MAP_REQUEST_HANDLER, Phase.EXECUTE_REQUEST_HANDLER),
                 behaviour={Phase.MAP_REQUEST_HANDLER: lambda ctx: CONTINUE,
                            Phase.EXECUTE_REQUEST_HANDLER: slow})
    pipeline = Pipeline(make_app(), ("t.async",))
    pipeline.modules[0].catch_all = True
    pipeline.catch_all = pipeline.modules[0]
    ctx = make_ctx(pipeline.app, threaded=False)
    asyncio.run(pipeline.run_async(ctx))
    assert seen == ["ExecuteRequestHandler (t.async)"]
    assert ctx.channel.response()[0] == 200 and ctx.channel.finished == [ctx]


def test_default_pipeline_maps_with_the_handler_list(tmp_path):
    def map_steps(pipeline):
        return [name for p, name, _ in pipeline.main if p is Phase.MAP_REQUEST_HANDLER]

    def mapped(pipeline):
        return pipeline.map_for(pipeline.app.sections.handlers).names
    app = make_app()
    pipeline = Pipeline(app)
    assert [m.id for m in pipeline.modules] == list(DEFAULT_MODULES)
    # the handler list, after the modules' steps (OPTIONS and TRACE first)
    assert map_steps(pipeline) == ["protocol_support", "IIS Web Core"]
    assert mapped(pipeline) == ["StaticFile"]  # no physical_path, no app: static_file says 404
    ctx = make_ctx(app)
    pipeline.run_sync(ctx)
    assert ctx.channel.response()[:2] == (404, 0)
    content = Pipeline(make_app(physical_path=str(tmp_path)))
    assert map_steps(content) == ["protocol_support", "http_redirect", "default_document",
                                  "IIS Web Core"]
    ssinc = ["SSINC-stm", "SSINC-shtm", "SSINC-shtml"]  # server_side_include, with content only
    assert mapped(content) == [*ssinc, "StaticFile"]
    with_app = make_app(physical_path=str(tmp_path))
    with_app.host = object()
    assert mapped(Pipeline(with_app)) == ["PythonApp", *ssinc, "StaticFile"]


def test_not_found_defaults():
    assert (NotFound().status, NotFound().substatus) == (404, 0)


def test_native_modules_of_the_modules_section_are_the_registered_ones_in_iis_order():
    # The `modules` section's default names only modules that exist: every native module
    # registered in the worker, in IIS's order (wasp/config/sections/modules.py).
    from wasp.config.sections.modules import NATIVE_MODULES
    assert set(NATIVE_MODULES) == {m for m in registered() if not m.startswith("t.")}
    assert DEFAULT_MODULES == NATIVE_MODULES


def test_the_modules_section_decides_the_pipeline(tmp_path):
    tables = {"server": {"modules": {"remove": ["http_cache"]}},
              "applications": {"1/": {"modules": {"remove": ["default_document"]}}}}
    app = make_app(physical_path=str(tmp_path), tables=tables)
    security = ["anonymous_authentication", "url_authorization", "basic_authentication",
                "windows_authentication", "digest_authentication",
                "client_certificate_mapping_authentication", "ip_restriction",
                "dynamic_ip_restriction",
                "web_dav", "cgi", "fast_cgi"]
    compression = ["dynamic_compression", "static_compression"]
    assert [m.id for m in Pipeline(app).modules] == [
        "protocol_support", "request_filtering", *compression, "http_redirect",
        "directory_listing", "server_side_include", "static_file", *security, "custom_error",
        "rewrite", "reverse_proxy", "python_app"]
    other = make_app("/other", physical_path=str(tmp_path), tables=tables)
    assert [m.id for m in Pipeline(other).modules] == [
        "protocol_support", "request_filtering", *compression, "http_redirect",
        "default_document", "directory_listing", "server_side_include", "static_file", *security,
        "custom_error", "rewrite", "reverse_proxy", "python_app"]


def test_a_python_module_entry_that_does_not_import_names_entry_type_and_cause():
    tables = {"server": {"modules": [{"name": "api_key", "type": "no_such_package.mods:ApiKey"}]}}
    with pytest.raises(ModuleError, match="module 'api_key' \\(type = 'no_such_package.mods:ApiKey'\\) "
                                          "cannot be imported: ModuleNotFoundError"):
        Pipeline(make_app(tables=tables))


def test_ctx_config_is_the_application_s_effective_sections():
    tables = {"server": {"default_document": {"files": ["home.html"]}},
              "sites": {"1": {"http_errors": {"error_mode": "Custom"}}}}
    app = make_app(tables=tables, default_documents=None)
    ctx = make_ctx(app)
    assert ctx.config is app.sections
    assert ctx.config.default_document.files[0] == "home.html"
    assert ctx.config.http_errors.error_mode == "Custom"


def test_a_bad_table_the_loader_never_sent_is_a_load_failure():
    from wasp.errors import AppLoadError
    with pytest.raises(AppLoadError, match="default_document.enabled"):
        make_app(tables={"server": {"default_document": {"enabled": "yes"}}})


def pending_setup(temp_modules, log, blocking, fail=False):
    """A module whose AUTHENTICATE step is pending (returns a coroutine), and a handler."""
    async def later(ctx):
        await asyncio.sleep(0)
        log.append("resumed")
        if fail:
            raise HttpError("refused", status=401, substatus=1)
        ctx.set_user("alice", "Test")  # else the core check after the phase answers 401.2
        return CONTINUE

    temp_modules("t.pend", (Phase.AUTHENTICATE_REQUEST,), log=log,
                 behaviour={Phase.AUTHENTICATE_REQUEST: later})
    temp_modules("t.after", (Phase.AUTHORIZE_REQUEST, Phase.END_REQUEST), log=log)
    handler = temp_modules("t.h2", (Phase.MAP_REQUEST_HANDLER, Phase.EXECUTE_REQUEST_HANDLER), log=log,
                           behaviour={Phase.MAP_REQUEST_HANDLER: lambda ctx: CONTINUE,
                                      Phase.EXECUTE_REQUEST_HANDLER: answer})
    handler.blocking = blocking
    handler.catch_all = True
    return Pipeline(make_app(), ("t.pend", "t.after", "t.h2"))


@pytest.mark.parametrize("blocking", [False, True])
def test_a_pending_step_resumes_the_request_on_the_loop(temp_modules, blocking):
    log, handed = [], []

    async def main():
        pipeline = pending_setup(temp_modules, log, blocking)
        pipeline.hand_off = handed.append
        ctx = make_ctx(pipeline.app)
        assert pipeline.run_front(ctx) is False      # pending: nothing answered yet
        assert ctx.channel.written == [] and ctx.task is not None
        await ctx.task
        return pipeline, ctx

    pipeline, ctx = asyncio.run(main())
    assert log[:3] == [("AUTHENTICATE_REQUEST", "t.pend"), "resumed", ("AUTHORIZE_REQUEST", "t.after")]
    if blocking:  # the handler blocks: the resumed request goes to a thread, which finishes it
        assert handed == [ctx] and ctx.channel.finished == []
        pipeline.run_handler_sync(ctx)
    else:
        assert handed == []
    assert ctx.channel.response()[:2] == (200, 0) and ctx.channel.finished == [ctx]
    assert ctx.channel.user() == ("alice", "Test")
    assert log[-1] == ("END_REQUEST", "t.after")


def test_a_pending_step_that_raises_becomes_its_error_page(temp_modules):
    log = []

    async def main():
        pipeline = pending_setup(temp_modules, log, blocking=False, fail=True)
        ctx = make_ctx(pipeline.app)
        pipeline.run_front(ctx)
        await ctx.task
        return ctx

    ctx = asyncio.run(main())
    assert ctx.channel.response()[:2] == (401, 1) and ctx.channel.finished == [ctx]
    assert ("AUTHORIZE_REQUEST", "t.after") not in log and log[-1] == ("END_REQUEST", "t.after")
