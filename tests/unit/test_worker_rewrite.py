"""The worker's rewrite module in a compiled pipeline with fake channels: what a rewrite changes
for the later steps, the answers it gives itself, and outbound rules on every way a response
leaves the worker (one frame, a stream, a FILE)."""

from __future__ import annotations

import pytest

from wasp.worker import modules  # noqa: F401  (registers the built-in modules)
from wasp.worker.pipeline import Pipeline
from wasp.worker.modules.rewrite import set_length

from worker_fakes import make_app, make_ctx


def app_with(tmp_path, rewrite: dict, path="/", **sections):
    (tmp_path / "www").mkdir(exist_ok=True)
    app = make_app(path=path, physical_path=str(tmp_path / "www"),
                   tables={"sites": {"1": {"rewrite": rewrite, **sections}}})
    app.pipeline = Pipeline(app)
    return app


def run(app, path="/x", query=b"", headers=()):
    ctx = make_ctx(app, path=path, query=query, headers=headers)
    app.pipeline.run_sync(ctx)
    return ctx, ctx.channel.response()


def rule(name, url, action, **extra):
    return {"name": name, "match": {"url": url}, "action": action, **extra}


def test_the_module_stays_out_without_rules_or_web_toml():
    app = make_app(tables={})
    assert "rewrite" not in Pipeline(app).active
    app = make_app(tables={"server": {"rewrite": {"rules": []}}})
    assert "rewrite" in Pipeline(app).active


def test_a_rewrite_is_what_static_file_serves_and_the_original_is_kept(tmp_path):
    app = app_with(tmp_path, {"rules": [rule("r", "^pretty/(\\w+)$",
                                             {"type": "Rewrite", "url": "/files/{R:1}.txt"})]})
    (tmp_path / "www/files").mkdir()
    (tmp_path / "www/files/doc.txt").write_text("doc")
    ctx, (status, _sub, _h, _b, kind, span) = run(app, "/pretty/doc", b"v=1")
    assert (status, kind) == (200, "file") and span.path.endswith("/www/files/doc.txt")
    assert ctx.head.path == b"/files/doc.txt" and ctx.head.query == b"v=1"
    assert ctx.head.target == b"/pretty/doc?v=1"
    assert (b"X-Original-URL", b"/pretty/doc?v=1") in ctx.head.headers


def test_a_spoofed_x_original_url_is_dropped(tmp_path):
    app = app_with(tmp_path, {"rules": [rule("n", "^nothing$", {"type": "None"})]})
    ctx, _ = run(app, "/x", headers=[("X-Original-URL", "/admin"), ("x-rewrite-url", "/admin")])
    assert [n for n, _v in ctx.head.headers if n.lower() in (b"x-original-url", b"x-rewrite-url")] == []


def test_redirect_custom_response_and_abort(tmp_path):
    app = app_with(tmp_path, {"rules": [
        rule("r", "^old$", {"type": "Redirect", "url": "/new", "redirect_type": "Temporary"}),
        rule("c", "^teapot$", {"type": "CustomResponse", "status_code": 418, "sub_status_code": 3,
                               "status_description": "short and stout"}),
        rule("a", "^bye$", {"type": "AbortRequest"})]})
    _ctx, (status, _sub, headers, body, *_r) = run(app, "/old", b"q=1")
    assert (status, headers["location"]) == (307, "/new?q=1") and b"Object Moved" in body
    _ctx, (status, sub, headers, body, *_r) = run(app, "/teapot")
    assert (status, sub, body) == (418, 3, b"short and stout")
    _ctx, (status, _sub, _h, body, kind, _x) = run(app, "/bye")
    assert (status, kind) == (0, "abort")


def test_rules_reading_request_headers_make_the_response_private(tmp_path):
    app = app_with(tmp_path, {"rules": [rule("ua", ".*", {"type": "None"}, conditions={
        "entries": [{"input": "{HTTP_USER_AGENT}", "pattern": "bot"}]})]})
    ctx, _ = run(app, "/x")
    assert ctx.private
    app = app_with(tmp_path, {"rules": [rule("host", ".*", {"type": "None"}, conditions={
        "entries": [{"input": "{HTTP_HOST}", "pattern": "x"}]})]})
    ctx, _ = run(app, "/x")
    assert not ctx.private


def test_a_proxy_rewrite_without_the_reverse_proxy_handler_is_404_4(tmp_path):
    app = app_with(tmp_path, {"rules": [rule("p", "^api/(.*)", {"type": "Rewrite",
                                                                 "url": "http://10.0.0.5:8080/{R:1}"})]})
    ctx, (status, sub, *_r) = run(app, "/api/users", b"a=1")
    assert ctx.proxy_url == "http://10.0.0.5:8080/users?a=1"
    assert (status, sub) == (404, 4)


def test_request_filename_is_below_the_application_root(tmp_path):
    app = app_with(tmp_path, {"rules": [rule("f", ".*", {"type": "CustomResponse", "status_code": 200,
                                                         "status_description": "{REQUEST_FILENAME}"})]},
                   path="/app")
    _ctx, (_s, _sub, _h, body, *_r) = run(app, "/app/a/b.txt")
    assert body.decode() == str(tmp_path / "www" / "a/b.txt")


def test_a_rule_that_times_out_is_500_50(tmp_path):
    app = app_with(tmp_path, {"rules": [rule("slow", "^(a|aa)+$", {"type": "AbortRequest"})]})
    _ctx, (status, sub, *_r) = run(app, "/" + "a" * 4000 + "!")
    assert (status, sub) == (500, 50)


# ---- outbound ----

OUTBOUND = {
    "preconditions": [{"name": "html", "entries": [{"input": "{RESPONSE_CONTENT_TYPE}",
                                                    "pattern": "^text/html"}]}],
    "outbound_rules": [
        {"name": "links", "precondition": "html",
         "match": {"filter_by_tags": "A", "pattern": "^http://in/(.*)"},
         "action": {"type": "Rewrite", "value": "/{R:1}"}},
        {"name": "loc", "match": {"server_variable": "RESPONSE_Location", "pattern": "^http://in/(.*)"},
         "action": {"type": "Rewrite", "value": "https://{HTTP_HOST}/{R:1}"}},
    ],
}


def outbound_ctx(tmp_path):
    app = app_with(tmp_path, OUTBOUND)
    ctx = make_ctx(app, path="/x")
    app.pipeline.modules[[m.id for m in app.pipeline.modules].index("rewrite")].begin_request(ctx)
    assert ctx.outbound is not None
    return ctx


def test_outbound_one_frame_html_body_and_its_length(tmp_path):
    ctx = outbound_ctx(tmp_path)
    body = b'<a href="http://in/page">p</a>'
    ctx.respond(b"200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n" % len(body), body)
    status, _sub, headers, got, kind, length = ctx.channel.response()
    assert got == b'<a href="/page">p</a>' and int(headers["content-length"]) == len(got) == length


def test_outbound_stream_is_rewritten_across_chunks_and_sent_without_a_length(tmp_path):
    ctx = outbound_ctx(tmp_path)
    ctx.start_response(b"200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 40\r\n", 40)
    for chunk in (b'<p><a hr', b'ef="http://in/', b'deep">x</a', b'><a href="http://in/last'):
        ctx.send_body(chunk)
    ctx.end()
    status, _sub, headers, body, kind, length = ctx.channel.response()
    assert (kind, length) == ("stream", -1) and "content-length" not in headers
    assert body == b'<p><a href="/deep">x</a><a href="http://in/last'   # the unfinished tag, as sent


def test_outbound_header_rewrite_on_any_type(tmp_path):
    ctx = outbound_ctx(tmp_path)
    ctx.respond(b"302 Found\r\nLocation: http://in/next?a=1\r\nContent-Length: 0\r\n")
    _status, _sub, headers, *_r = ctx.channel.response()
    assert headers["location"] == "https://example.test/next?a=1"


def test_outbound_html_file_is_read_rewritten_and_sent_as_a_body(tmp_path):
    ctx = outbound_ctx(tmp_path)
    page = tmp_path / "www/p.html"
    page.write_bytes(b'<a href="http://in/f">f</a>')
    ctx.send_file(b'200 OK\r\nContent-Type: text/html\r\nContent-Length: 27\r\nETag: "x"\r\n',
                  str(page), 0, 27)
    _status, _sub, headers, body, kind, _x = ctx.channel.response()
    assert (kind, body) == ("response", b'<a href="/f">f</a>')
    assert "etag" not in headers and headers["content-length"] == str(len(body))


def test_outbound_leaves_a_non_html_file_to_sendfile(tmp_path):
    ctx = outbound_ctx(tmp_path)
    page = tmp_path / "www/p.txt"
    page.write_bytes(b'<a href="http://in/f">f</a>')
    ctx.send_file(b"200 OK\r\nContent-Type: text/plain\r\nContent-Length: 27\r\n", str(page), 0, 27)
    assert ctx.channel.response()[4] == "file"


def test_outbound_rule_timeout_is_500_52_and_its_page_is_not_rewritten(tmp_path):
    app = app_with(tmp_path, {"outbound_rules": [
        {"name": "slow", "match": {"server_variable": "RESPONSE_X_Long", "pattern": "^(a|aa)+$"},
         "action": {"type": "Rewrite", "value": "x"}}]})
    ctx = make_ctx(app, path="/x")
    from wasp.errors import HttpError
    app.pipeline.modules[[m.id for m in app.pipeline.modules].index("rewrite")].begin_request(ctx)
    ctx.respond(b"200 OK\r\nX-Long: " + b"a" * 4000 + b"!\r\n", b"")
    status, sub, headers, body, *_r = ctx.channel.response()
    assert (status, sub) == (500, 52) and ctx.outbound is None and "x-long" not in headers
    # A streamed response: the failure reaches the pipeline, whose error page goes out as is.
    ctx = make_ctx(app, path="/x")
    app.pipeline.modules[[m.id for m in app.pipeline.modules].index("rewrite")].begin_request(ctx)
    with pytest.raises(HttpError) as caught:
        ctx.start_response(b"200 OK\r\nX-Long: " + b"a" * 4000 + b"!\r\n", -1)
    assert (caught.value.status, caught.value.substatus) == (500, 52) and not ctx.started


def test_set_length_replaces_length_and_drops_validators():
    block = b"200 OK\r\nContent-Length: 10\r\nETag: \"a\"\r\nAccept-Ranges: bytes\r\nX: y\r\n"
    assert set_length(block, 4) == b"200 OK\r\nX: y\r\nContent-Length: 4\r\n"
    assert set_length(block, None) == b"200 OK\r\nX: y\r\n"


def test_outbound_on_the_loop_path_of_an_asgi_response(tmp_path):
    import asyncio
    app = app_with(tmp_path, OUTBOUND)
    ctx = make_ctx(app, path="/x", threaded=False)
    app.pipeline.modules[[m.id for m in app.pipeline.modules].index("rewrite")].begin_request(ctx)

    async def answer():
        ctx.start_response(b"200 OK\r\nContent-Type: text/html\r\n", -1)
        for chunk in (b"<a href='http", b"://in/async'>a</a><a hre", b'f="http://in/b">'):
            await ctx.send_body_async(chunk)
        ctx.end()
    asyncio.run(answer())
    _status, _sub, _headers, body, kind, _length = ctx.channel.response()
    assert (kind, body) == ("stream", b'<a href="/async">a</a><a href="/b">')


def test_head_request_gets_rewritten_headers_and_no_body(tmp_path):
    app = app_with(tmp_path, OUTBOUND)
    ctx = make_ctx(app, path="/x", method="HEAD")
    app.pipeline.modules[[m.id for m in app.pipeline.modules].index("rewrite")].begin_request(ctx)
    ctx.respond(b"301 Moved\r\nLocation: http://in/y\r\nContent-Type: text/html\r\nContent-Length: 22\r\n",
                b"<a href='http://in/z'>")
    _status, _sub, headers, body, _kind, length = ctx.channel.response()
    assert headers["location"] == "https://example.test/y" and body == b""
    assert "content-length" not in headers and length == -1   # the GET's length would differ


def test_a_decoded_back_reference_cannot_put_controls_in_the_path_or_query(tmp_path):
    app = app_with(tmp_path, {"rules": [
        rule("p", "^p/(.*)", {"type": "Rewrite", "url": "/x/{UrlDecode:{R:1}}"}),
        rule("q", "^q/(.*)", {"type": "Rewrite", "url": "/x?v={UrlDecode:{R:1}}"})]},
        # The fake's path is not cooked: request filtering would take its "%" for double escaping.
        request_filtering={"allow_double_escaping": True})
    _ctx, (status, *_r) = run(app, "/p/a%0d%0ab")
    assert status == 400
    ctx, _ = run(app, "/q/a%0d%0a b")
    assert ctx.head.query == b"v=a%0D%0A%20b"


def test_a_rule_naming_a_map_no_level_defines_fails_the_application_load(tmp_path):
    from wasp.worker.registry import ModuleError
    with pytest.raises(ModuleError, match="rule 'm'.*Nope"):
        app_with(tmp_path, {"rules": [rule("m", ".*", {"type": "Rewrite", "url": "/{Nope:{R:0}}"})]})


def test_a_global_rules_proxy_target_is_never_served_as_the_original_url(tmp_path):
    import msgspec
    app = make_app(physical_path=str(tmp_path), tables={"server": {"rewrite": {"global_rules": []}}})
    app.pipeline = Pipeline(app)
    ctx = make_ctx(app, path="/x")
    ctx.head = msgspec.structs.replace(ctx.head, proxy_url="http://10.0.0.9/x")
    ctx.proxy_url = ctx.head.proxy_url
    app.pipeline.run_sync(ctx)
    assert ctx.channel.response()[:2] == (404, 4)


def test_server_variables_set_request_and_response_headers_when_allowed(tmp_path):
    tables = {"server": {"rewrite": {"allowed_server_variables": ["HTTP_X_FORWARDED_PROTO",
                                                                  "RESPONSE_X_Rewritten"]}},
              "sites": {"1": {"rewrite": {"rules": [rule(
                  "proxy-headers", "(.*)", {"type": "None"}, server_variables=[
                      {"name": "HTTP_X_FORWARDED_PROTO", "value": "{REQUEST_SCHEME}"},
                      {"name": "RESPONSE_X_Rewritten", "value": "yes {R:1}"}])]}}}}
    (tmp_path / "www").mkdir()
    app = make_app(physical_path=str(tmp_path / "www"), tables=tables)
    app.pipeline = Pipeline(app)
    ctx, (status, _sub, headers, *_r) = run(app, "/a", headers=[("X-Forwarded-Proto", "https")])
    assert [v for n, v in ctx.head.headers if n.lower() == b"x-forwarded-proto"] == [b"http"]
    assert headers["x-rewritten"] == "yes a"   # on the 404 that answered it


def test_a_server_variable_not_allowed_is_refused(tmp_path):
    from wasp.worker.registry import ModuleError
    with pytest.raises(ModuleError, match="allowed_server_variables"):
        app_with(tmp_path, {"rules": [rule("s", ".*", {"type": "None"}, server_variables=[
            {"name": "HTTP_X_EVIL", "value": "1"}])]})


def test_a_range_of_an_html_file_is_sent_untouched(tmp_path):
    ctx = outbound_ctx(tmp_path)
    page = tmp_path / "www/p.html"
    page.write_bytes(b'<a href="http://in/f">f</a>')
    ctx.send_file(b"206 Partial Content\r\nContent-Type: text/html\r\nContent-Range: bytes 0-9/27\r\n"
                  b"Content-Length: 10\r\n", str(page), 0, 10)
    assert ctx.channel.response()[4] == "file"
