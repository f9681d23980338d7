"""Send filters on the request context (RQ_SEND_RESPONSE), the custom error module's
existing_response, and ExecuteURL child requests through a compiled pipeline."""

from __future__ import annotations

from worker_fakes import make_app, make_ctx

from wasp.worker import modules  # noqa: F401  (registers the built-in modules)
from wasp.worker.modules.custom_error import existing_response
from wasp.worker.pipeline import Pipeline


def app_with(tmp_path, http_errors: dict):
    (tmp_path / "e.html").write_text("<p>error page</p>")
    (tmp_path / "ok.html").write_text("<p>ok</p>")
    app = make_app(physical_path=str(tmp_path), tables={"server": {"http_errors": http_errors}})
    app.pipeline = Pipeline(app)
    return app


def test_filters_run_in_order_and_one_that_answers_drops_the_handlers_response(tmp_path):
    app = make_app()
    ctx = make_ctx(app)
    seen = []
    ctx.add_filter(lambda c, block, body, length: seen.append("a") or block + b"X-A: 1\r\n")

    def answer(c, block, body, length):
        seen.append("b")
        c.respond(b"418 Teapot\r\nContent-Length: 2\r\n", b"no")
        return None
    ctx.add_filter(answer)
    ctx.add_filter(lambda c, block, body, length: seen.append("c") or block)
    ctx.start_response(b"200 OK\r\n", -1)
    ctx.send_body(b"dropped")
    ctx.end()
    assert seen == ["a", "b", "c"]  # the answer went through the filter after "b"
    status, _sub, headers, body, kind, _ = ctx.channel.response()
    assert (status, body, kind) == (418, b"no", "response") and "x-a" not in headers
    assert len(ctx.channel.frames()) == 1


def test_replace_swaps_a_streamed_app_404(tmp_path):
    app = app_with(tmp_path, {"error_mode": "Custom", "existing_response": "Replace",
                              "errors": [{"status_code": 404, "path": "e.html"}]})
    ctx = make_ctx(app, path="/app")
    ctx.add_filter(existing_response)
    ctx.start_response(b"404 NOT FOUND\r\nContent-Type: text/plain\r\n", -1)
    ctx.send_body(b"the app's own")
    ctx.end()
    status, _sub, _headers, body, kind, _ = ctx.channel.response()
    assert (status, body, kind) == (404, b"<p>error page</p>", "response")


def test_auto_keeps_a_body_and_replaces_an_empty_response(tmp_path):
    app = app_with(tmp_path, {"error_mode": "Custom", "errors": [{"status_code": 404, "path": "e.html"}]})
    kept = make_ctx(app, path="/app")
    kept.add_filter(existing_response)
    kept.respond(b"404 Not Found\r\nContent-Length: 4\r\n", b"mine")
    assert kept.channel.response()[3] == b"mine"
    empty = make_ctx(app, path="/app")
    empty.add_filter(existing_response)
    empty.respond(b"404 Not Found\r\nContent-Length: 0\r\n", b"")
    assert empty.channel.response()[3] == b"<p>error page</p>"
    challenged = make_ctx(app, path="/app")
    challenged.add_filter(existing_response)
    challenged.respond(b"401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nX-Own: 1\r\n"
                       b"Content-Length: 0\r\n", b"")
    _status, _sub, headers, body, _kind, _ = challenged.channel.response()
    assert headers["www-authenticate"] == "Bearer" and "x-own" not in headers and body
    passed = app_with(tmp_path, {"error_mode": "Custom", "existing_response": "PassThrough"})
    ctx = make_ctx(passed, path="/app")
    ctx.add_filter(existing_response)
    ctx.respond(b"500 Internal Server Error\r\nContent-Length: 0\r\n", b"")
    assert ctx.channel.response()[:4:3] == (500, b"")


def test_execute_url_runs_the_page_with_the_original_status(tmp_path):
    app = app_with(tmp_path, {"error_mode": "Custom", "errors": [
        {"status_code": 404, "path": "/e.html", "response_mode": "ExecuteURL"}]})
    ctx = make_ctx(app, path="/missing.html", headers=[("If-None-Match", "*")])
    app.pipeline.run_sync(ctx)
    status, _sub, headers, body, _kind, _ = ctx.channel.response()
    assert status == 404 and body == b"<p>error page</p>" and "etag" not in headers
    assert headers["content-type"].startswith("text/html")


def test_a_failing_execute_url_page_gives_the_plain_message(tmp_path):
    app = app_with(tmp_path, {"error_mode": "Custom", "errors": [
        {"status_code": 404, "path": "/also-missing.html", "response_mode": "ExecuteURL"}]})
    ctx = make_ctx(app, path="/missing.html")
    app.pipeline.run_sync(ctx)
    status, _sub, _headers, body, _kind, _ = ctx.channel.response()
    assert status == 404 and body.startswith(b"The page cannot be displayed because an error has occurred (404")


def test_detailed_mode_ignores_the_entries(tmp_path):
    app = app_with(tmp_path, {"error_mode": "Detailed", "errors": [{"status_code": 404, "path": "e.html"}]})
    ctx = make_ctx(app, path="/missing.html")
    app.pipeline.run_sync(ctx)
    assert b"HTTP Error 404.0" in ctx.channel.response()[3]
