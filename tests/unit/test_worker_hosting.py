"""WSGI environ and responses, request-body flow control, ASGI scope and responses."""

from __future__ import annotations

import asyncio
import threading
import types

import pytest

from wasp.wire import frames
from wasp.wire.frames import FrameType
from wasp.worker.application import detect_interface, import_callable
from wasp.worker.context import Cancelled
from wasp.worker.flow import ACK_BATCH, AsyncBody, BlockingBody
from wasp.worker.hosting import asgi, wsgi
from wasp.worker.hosting.websocket import accept_key

from worker_fakes import FakeChannel, make_app, make_ctx


def environ_for(path="/", app_path="/", **kw):
    app = make_app(app_path)
    host = wsgi.WSGIHost(app, None)
    return host.environ(make_ctx(app, path=path, **kw))


# ---- environ ----

def test_environ_basics():
    env = environ_for("/a/b", query=b"x=1&y=%20", headers=[("Content-Type", "text/plain")],
                      method="POST", content_length=5)
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == "" and env["PATH_INFO"] == "/a/b"
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["CONTENT_TYPE"] == "text/plain" and env["CONTENT_LENGTH"] == "5"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["SERVER_NAME"] == "example.test" and env["SERVER_PORT"] == "80"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "10.1.2.3" and env["REMOTE_PORT"] == "4000"
    assert env["wsgi.version"] == (1, 0) and env["wsgi.url_scheme"] == "http"
    assert env["wsgi.input"].read() == b""
    assert env["wsgi.input_terminated"] is True and env["wsgi.file_wrapper"] is wsgi.FileWrapper


def test_environ_script_name_and_path_info_for_a_sub_application():
    env = environ_for("/api/v1/users", app_path="/api")
    assert env["SCRIPT_NAME"] == "/api" and env["PATH_INFO"] == "/v1/users"
    env = environ_for("/api", app_path="/api")
    assert env["SCRIPT_NAME"] == "/api" and env["PATH_INFO"] == ""


def test_environ_path_info_is_latin1_of_utf8_bytes():
    env = environ_for("/caf\u00e9/\u2603")
    assert env["PATH_INFO"] == "/caf\u00e9/\u2603".encode("utf-8").decode("latin-1")
    assert env["PATH_INFO"].encode("latin-1").decode("utf-8") == "/caf\u00e9/\u2603"


def test_environ_repeated_headers_and_cookies():
    env = environ_for(headers=[("Accept", "a"), ("accept", "b"), ("Cookie", "x=1"), ("Cookie", "y=2"),
                               ("X_Forwarded_For", "evil"), ("X-Forwarded-For", "1.2.3.4")])
    assert env["HTTP_ACCEPT"] == "a, b"
    assert env["HTTP_COOKIE"] == "x=1; y=2"
    assert env["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"  # the underscore spelling is dropped


@pytest.mark.parametrize("host,expected", [("example.test:8080", ("example.test", "8080")),
                                           ("[::1]:9000", ("[::1]", "9000")), ("[::1]", ("[::1]", "80")),
                                           ("plain", ("plain", "80"))])
def test_split_host(host, expected):
    assert wsgi.split_host(host, "80") == expected


def test_server_name_without_host_header():
    app = make_app()
    ctx = make_ctx(app)
    ctx.head.headers = []
    env = wsgi.WSGIHost(app, None).environ(ctx)
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("127.0.0.1", "8080")


# ---- WSGI responses ----

def run_wsgi(app_callable, method="GET", **kw):
    app = make_app()
    host = wsgi.WSGIHost(app, app_callable)
    ctx = make_ctx(app, method=method, **kw)
    host.execute(ctx)
    return ctx.channel


def test_small_list_is_one_frame_with_content_length_added():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Connection", "close"),
                                  ("Transfer-Encoding", "chunked")])
        return [b"Hello, ", b"world"]
    channel = run_wsgi(app)
    assert len(channel.frames()) == 1
    status, _s, headers, body, kind, length = channel.response()
    assert (status, body, kind, length) == (200, b"Hello, world", "response", 12)
    assert headers == {"content-type": "text/plain", "content-length": "12"}


def test_generator_is_streamed_with_end():
    def app(environ, start_response):
        start_response("200 OK", [])
        yield b"a"
        yield b""
        yield b"b"
    channel = run_wsgi(app)
    kinds = [f[0] for f in channel.frames()]
    assert kinds == [FrameType.RESPONSE, FrameType.BODY, FrameType.BODY, FrameType.END]
    assert channel.response()[3] == b"ab" and channel.response()[5] == -1


def test_iterable_whose_first_chunk_is_the_announced_length_is_one_frame():
    closed = []

    class Body:
        def __iter__(self):
            yield b"12345"

        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "5")])
        return Body()
    channel = run_wsgi(app)
    assert len(channel.frames()) == 1 and channel.response()[3] == b"12345" and closed == [True]


def test_write_callable_then_iterable():
    def app(environ, start_response):
        write = start_response("200 OK", [])
        write(b"w;")
        return [b"r"]
    assert run_wsgi(app).response()[3] == b"w;r"


def test_head_sends_no_body_but_keeps_length():
    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"abc"]
    status, _s, headers, body, _k, length = run_wsgi(app, method="HEAD").response()
    assert (body, length, headers["content-length"]) == (b"", 3, "3")


def test_no_body_statuses_get_no_content_length():
    def app(environ, start_response):
        start_response("204 No Content", [])
        return [b""]
    _st, _s, headers, body, _k, _l = run_wsgi(app).response()
    assert "content-length" not in headers and body == b""


def test_start_response_exc_info_semantics():
    def app(environ, start_response):
        start_response("200 OK", [])
        try:
            raise ValueError("x")
        except ValueError:
            import sys
            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"err"]
    assert run_wsgi(app).response()[0] == 500

    def twice(environ, start_response):
        start_response("200 OK", [])
        start_response("200 OK", [])
        return []
    with pytest.raises(AssertionError):
        run_wsgi(twice)

    def late(environ, start_response):
        write = start_response("200 OK", [])
        write(b"sent")
        try:
            raise KeyError("late")
        except KeyError:
            import sys
            start_response("500 Internal Server Error", [], sys.exc_info())
        return []
    with pytest.raises(KeyError):
        run_wsgi(late)


def test_large_body_is_split_within_the_window():
    size = frames.INITIAL_WINDOW * 2 + 10

    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"x" * size]
    app_ = make_app()
    host = wsgi.WSGIHost(app_, app)
    ctx = make_ctx(app_)
    thread = threading.Thread(target=host.execute, args=(ctx,))
    thread.start()
    thread.join(0.5)
    assert thread.is_alive()  # waiting for WINDOW after INITIAL_WINDOW bytes
    sent = sum(len(p) for t, _f, _s, p in ctx.channel.frames() if t == FrameType.BODY)
    assert sent == frames.INITIAL_WINDOW
    ctx.on_window(frames.INITIAL_WINDOW * 2)
    thread.join(5)
    assert not thread.is_alive()
    assert len(ctx.channel.response()[3]) == size


def test_cancel_wakes_a_thread_waiting_for_credit():
    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"x" * (frames.INITIAL_WINDOW + 1)]
    app_ = make_app()
    host = wsgi.WSGIHost(app_, app)
    ctx = make_ctx(app_)
    errors = []

    def run():
        try:
            host.execute(ctx)
        except Cancelled as exc:
            errors.append(exc)
    thread = threading.Thread(target=run)
    thread.start()
    thread.join(0.3)
    ctx.cancel()
    thread.join(5)
    assert errors and not thread.is_alive()


def test_file_wrapper_becomes_a_file_frame(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        f = open(path, "rb")
        f.seek(3)
        return environ["wsgi.file_wrapper"](f)
    status, _s, headers, _b, kind, span = run_wsgi(app).response()
    assert (kind, span.path, span.offset, span.length) == ("file", str(path), 3, 7)
    assert headers["content-length"] == "7"


def test_file_wrapper_around_a_non_file_is_iterated():
    import io

    def app(environ, start_response):
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"abc"), 2)
    assert run_wsgi(app).response()[3] == b"abc"


# ---- request bodies ----

def _acks(channel):
    return [frames.unpack_window(p) for t, _f, _s, p in channel.frames() if t == FrameType.WINDOW]


def test_blocking_body_read_readline_and_acks():
    channel = FakeChannel()
    ctx = make_ctx(make_app(), channel=channel)
    body = BlockingBody(ctx)
    body.feed(b"line one\nline two\nrest")
    assert body.readline() == b"line one\n"
    assert body.readline(4) == b"line"
    assert body.read(5) == b" two\n"
    body.end()
    assert body.read() == b"rest"
    assert body.read() == b"" and body.readline() == b""
    assert sum(_acks(channel)) <= len(b"line one\nline two\nrest")


def test_blocking_body_acks_everything_before_it_waits():
    channel = FakeChannel()
    ctx = make_ctx(make_app(), channel=channel)
    body = BlockingBody(ctx)
    body.feed(b"x" * 100)
    got = []
    reader = threading.Thread(target=lambda: got.append(body.read(150)))
    reader.start()
    reader.join(0.2)
    assert reader.is_alive() and _acks(channel) == [100]
    body.feed(b"y" * 50)
    body.end()
    reader.join(5)
    assert got == [b"x" * 100 + b"y" * 50]


def test_blocking_body_batches_acks_while_data_is_buffered():
    channel = FakeChannel()
    body = BlockingBody(make_ctx(make_app(), channel=channel))
    body.feed(b"z" * (ACK_BATCH * 2))
    for _ in range(ACK_BATCH // 1024):
        body.read(1024)
    assert _acks(channel) == [ACK_BATCH]


def test_blocking_body_cancel_raises_in_the_reader():
    body = BlockingBody(make_ctx(make_app()))
    errors = []

    def read():
        try:
            body.read(10)
        except Cancelled as exc:
            errors.append(exc)
    reader = threading.Thread(target=read)
    reader.start()
    reader.join(0.1)
    body.cancel()
    reader.join(5)
    assert errors


def test_blocking_body_iteration_and_readlines():
    body = BlockingBody(make_ctx(make_app()))
    body.feed(b"a\nb\nc")
    body.end()
    assert list(body) == [b"a\n", b"b\n", b"c"]
    body = BlockingBody(make_ctx(make_app()))
    body.feed(b"a\nb\n")
    body.end()
    assert body.readlines() == [b"a\n", b"b\n"]


# ---- ASGI ----

def _loop_channel(loop):
    channel = FakeChannel()
    channel.loop = loop
    return channel


def test_asgi_scope():
    app = make_app("/api")
    app.state["db"] = "conn"
    ctx = make_ctx(app, path="/api/caf\u00e9", query=b"q=1", headers=[("X-Thing", "v")])
    ctx.head.target = b"/api/caf%C3%A9?q=1"
    scope = asgi.build_scope(ctx, app.state)
    assert scope["type"] == "http" and scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["path"] == "/api/caf\u00e9" and scope["root_path"] == "/api"
    assert scope["raw_path"] == b"/api/caf%C3%A9" and scope["query_string"] == b"q=1"
    assert (b"x-thing", b"v") in scope["headers"] and (b"host", b"example.test") in scope["headers"]
    assert scope["client"] == ("10.1.2.3", 4000) and scope["server"] == ("127.0.0.1", 8080)
    assert scope["state"] == {"db": "conn"} and scope["state"] is not app.state
    assert scope["method"] == "GET" and scope["http_version"] == "1.1"


def test_asgi_single_frame_fast_path_and_streaming():
    async def run(app_callable, **kw):
        loop = asyncio.get_running_loop()
        app = make_app()
        ctx = make_ctx(app, channel=_loop_channel(loop), threaded=False, **kw)
        ctx.body = AsyncBody(ctx, eof=True)
        await asgi.ASGIHost(app, app_callable).execute(ctx)
        return ctx.channel

    async def small(scope, receive, send):
        assert (await receive()) == {"type": "http.request", "body": b"", "more_body": False}
        await send({"type": "http.response.start", "status": 201, "headers": [(b"x-a", b"1"), (b"connection", b"x")]})
        await send({"type": "http.response.body", "body": b"done"})

    async def streamed(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})
        assert (await receive())["type"] == "http.request"
        assert (await receive())["type"] == "http.disconnect"  # response complete

    channel = asyncio.run(run(small))
    assert len(channel.frames()) == 1
    status, _s, headers, body, kind, length = channel.response()
    assert (status, body, kind, length) == (201, b"done", "response", 4)
    assert headers == {"x-a": "1", "content-length": "4"}
    channel = asyncio.run(run(streamed))
    assert [f[0] for f in channel.frames()] == [FrameType.RESPONSE, FrameType.BODY, FrameType.BODY, FrameType.END]


def test_asgi_receive_body_chunks_with_acks_and_disconnect_on_cancel():
    async def main():
        loop = asyncio.get_running_loop()
        app = make_app()
        ctx = make_ctx(app, channel=_loop_channel(loop), threaded=False, method="POST")
        ctx.body = AsyncBody(ctx)
        cycle = asgi.HTTPCycle(ctx)
        loop.call_soon(ctx.feed, b"abc")
        first = await cycle.receive()
        loop.call_soon(ctx.feed, b"de")
        loop.call_soon(ctx.feed_end)
        second = await cycle.receive()
        waiter = loop.create_task(cycle.receive())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        ctx.cancel()
        return first, second, await waiter, ctx.channel
    first, second, third, channel = asyncio.run(main())
    assert first == {"type": "http.request", "body": b"abc", "more_body": True}
    assert second == {"type": "http.request", "body": b"de", "more_body": False}
    assert third == {"type": "http.disconnect"}
    assert _acks(channel) == [3]  # the last bytes (END already seen) need no WINDOW


def test_interface_detection_and_import(tmp_path):
    async def asgi_fn(scope, receive, send):
        pass

    class AsgiObj:
        async def __call__(self, scope, receive, send):
            pass

    def wsgi_fn(environ, start_response):
        pass
    assert detect_interface(asgi_fn) == "asgi" and detect_interface(AsgiObj()) == "asgi"
    assert detect_interface(wsgi_fn) == "wsgi"
    (tmp_path / "factmod.py").write_text(
        "class Holder:\n    def app(self, e, s):\n        pass\nholder = Holder()\n"
        "def make(greeting='hi', n=1):\n    def app(e, s):\n        return [greeting.encode() * n]\n    return app\n")
    made = import_callable("factmod:make('yo', n=2)", [str(tmp_path)])
    assert made(None, None) == [b"yoyo"]
    assert isinstance(import_callable("factmod:holder.app", [str(tmp_path)]), types.MethodType)
    with pytest.raises(AttributeError):
        import_callable("factmod:missing", [str(tmp_path)])
    with pytest.raises(ValueError):
        import_callable("factmod:make(open('x'))", [str(tmp_path)])


def test_websocket_accept_key():
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


# ---- response splitting: an app's header may never add a header or end the head ----

SPLITTING = [
    ("X-Note", "a\r\nSet-Cookie: evil=1"),
    ("X-Note", "a\nSet-Cookie: evil=1"),
    ("X-Note", "a\rb"),
    ("X-Note", "a\x00b"),
    ("X-Evil\r\nSet-Cookie", "evil=1"),
]


@pytest.mark.parametrize("name,value", SPLITTING)
def test_a_wsgi_header_with_cr_lf_or_nul_is_refused_before_anything_is_sent(name, value):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), (name, value)])
        return [b"body"]
    # Raised before anything is sent: the pipeline turns it into the 500 (one place for errors).
    app_ = make_app()
    ctx = make_ctx(app_)
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        wsgi.WSGIHost(app_, app).execute(ctx)
    assert ctx.channel.frames() == []


def test_a_wsgi_status_with_a_line_break_is_refused():
    def app(environ, start_response):
        start_response("200 OK\r\nSet-Cookie: evil=1", [])
        return [b"body"]
    # Raised before anything is sent: the pipeline turns it into the 500 (one place for errors).
    app_ = make_app()
    ctx = make_ctx(app_)
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        wsgi.WSGIHost(app_, app).execute(ctx)
    assert ctx.channel.frames() == []


@pytest.mark.parametrize("name,value", SPLITTING)
def test_an_asgi_header_with_cr_lf_or_nul_is_refused(name, value):
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        asgi.response_block(200, [(b"content-type", b"text/plain"),
                                  (name.encode("latin-1"), value.encode("latin-1"))])
