"""Error pages per httpErrors errorMode: what a client sees of a failed request, and what it never
sees (physical paths, module and handler names, tracebacks) unless errors are detailed for it."""

from __future__ import annotations

import pytest

from wasp.config import model
from wasp.errors import Forbidden, HttpError, NotFound
from wasp.worker import errorpages, modules  # noqa: F401  (registers the built-in modules)
from wasp.worker.errorpages import MethodNotAllowed, is_local
from wasp.worker.pipeline import Pipeline
from wasp.worker.registry import Phase

from worker_fakes import make_app, make_ctx

PHYSICAL = "/srv/www/site-7f3a/secret/data.unknownext"
LOOPBACK = ("127.0.0.1", 50000)
REMOTE = ("203.0.113.9", 50000)


def failed_ctx(mode: str, client=LOOPBACK, headers=()):
    app = make_app("/", physical_path="/srv/www/site-7f3a",
                   http_errors=model.HttpErrors(error_mode=mode),
                   tables={"server": {"http_errors": {"error_mode": mode}}})
    ctx = make_ctx(app, path="/secret/data.unknownext", client=client, headers=headers)
    ctx.phase = Phase.EXECUTE_REQUEST_HANDLER
    ctx.module = "static_file"
    ctx.file_path = PHYSICAL
    return ctx


ERRORS = [NotFound("no MIME map entry for the extension", substatus=3),
          Forbidden("directory listing denied", substatus=14),
          MethodNotAllowed("GET, HEAD"),
          NotFound("no such file"),
          HttpError(f"RuntimeError: cannot open {PHYSICAL}", status=500),
          HttpError("odd", status=418)]


def page(exc, ctx) -> str:
    block, body = errorpages.render(exc, ctx)
    assert block.startswith(f"{exc.status} ".encode())
    assert f"Content-Length: {len(body)}\r\n".encode() in block
    return body.decode("latin-1")


@pytest.mark.parametrize("exc", ERRORS, ids=lambda e: f"{e.status}.{e.substatus}")
@pytest.mark.parametrize("client", [LOOPBACK, REMOTE])
def test_custom_shows_no_path_module_handler_or_substatus(exc, client):
    text = page(exc, failed_ctx("Custom", client))
    for leak in ("/srv/www", "site-7f3a", "static_file", "Physical Path", "Module", "Handler",
                 "ExecuteRequestHandler", "data.unknownext", "RuntimeError", "Traceback",
                 f"{exc.status}.{exc.substatus}"):
        assert leak not in text, (leak, text)
    assert str(exc.status) in text


@pytest.mark.parametrize("exc", ERRORS[:3], ids=lambda e: f"{e.status}.{e.substatus}")
@pytest.mark.parametrize("client", [LOOPBACK, REMOTE])
def test_detailed_shows_the_detail_to_everyone(exc, client):
    text = page(exc, failed_ctx("Detailed", client))
    assert f"HTTP Error {exc.status}.{exc.substatus}" in text
    assert PHYSICAL in text and "static_file" in text and "ExecuteRequestHandler" in text
    assert "RuntimeError" not in text and "Traceback" not in text  # no exception text either


@pytest.mark.parametrize("client, headers, detailed", [
    (LOOPBACK, (), True),
    (("127.8.9.10", 1), (), True),
    (("::1", 1), (), True),
    (("::ffff:127.0.0.1", 1), (), True),
    (REMOTE, (), False),
    (("10.0.0.5", 1), (), False),
    (("::ffff:10.0.0.5", 1), (), False),
    (("2001:db8::1", 1), (), False),
    (("", 0), (), False),
    (("not an address", 0), (), False),
    # a local reverse proxy that says whom it forwards for: not a local request
    (LOOPBACK, (("X-Forwarded-For", "198.51.100.7"),), False),
    (LOOPBACK, (("x-forwarded-for", "127.0.0.1"),), False),
    (LOOPBACK, (("Forwarded", "for=198.51.100.7"),), False),
    (LOOPBACK, (("X-Real-IP", "198.51.100.7"),), False),
])
def test_detailed_local_only_is_detailed_for_a_local_request_only(client, headers, detailed):
    ctx = failed_ctx("DetailedLocalOnly", client, headers)
    assert is_local(ctx.head) is detailed
    text = page(ERRORS[0], ctx)
    assert (PHYSICAL in text) is detailed
    assert ("404 - File or directory not found." in text) is not detailed


def test_the_default_mode_is_detailed_local_only():
    app = make_app("/", physical_path="/srv/www/site-7f3a")
    assert app.config.http_errors.error_mode == "DetailedLocalOnly"


def crashing_app(tmp_path, mode: str):
    (tmp_path / "crashapp.py").write_text(
        "def app(environ, start_response):\n"
        f"    raise RuntimeError('cannot read {PHYSICAL}')\n")
    from wasp.worker.application import load
    app = make_app("/", physical_path=str(tmp_path), app="crashapp:app",
                   python_path=[str(tmp_path)], http_errors=model.HttpErrors(error_mode=mode),
                   tables={"server": {"http_errors": {"error_mode": mode}}})
    load(app, threads=1, multiprocess=False)
    return app


@pytest.mark.parametrize("mode", ["Custom", "DetailedLocalOnly", "Detailed"])
def test_an_app_exception_is_500_without_its_message_or_traceback(tmp_path, mode, caplog):
    app = crashing_app(tmp_path, mode)
    ctx = make_ctx(app, path="/boom", client=LOOPBACK)
    assert app.pipeline.run_front(ctx) is True
    app.pipeline.run_handler_sync(ctx)
    status, _sub, _headers, body, kind, _ = ctx.channel.response()
    assert (status, kind) == (500, "response")
    text = body.decode("latin-1")
    assert PHYSICAL not in text and "RuntimeError" not in text and "Traceback" not in text
    assert (str(tmp_path) in text) is False  # the app's own folder is no physical path of a file
    assert ("python_app" in text) is (mode != "Custom")
    assert "RuntimeError: cannot read" in caplog.text  # the operator still gets it, in the log


def test_static_errors_in_custom_mode_through_the_pipeline(tmp_path):
    root = tmp_path / "www"
    (root / "dir").mkdir(parents=True)
    (root / "data.unknownext").write_text("x")
    (root / "page.html").write_text("<p>hi</p>")
    app = make_app("/", physical_path=str(root), http_errors=model.HttpErrors(error_mode="Custom"),
                   tables={"server": {"http_errors": {"error_mode": "Custom"}}})
    pipeline = Pipeline(app)
    for path, method, status in (("/data.unknownext", "GET", 404), ("/dir/", "GET", 403),
                                 ("/page.html", "POST", 405), ("/nope.html", "GET", 404),
                                 ("/a/../../x", "GET", 404)):
        ctx = make_ctx(app, path=path, method=method, client=LOOPBACK)
        pipeline.run_sync(ctx)
        got, _sub, _h, body, _k, _ = ctx.channel.response()
        assert got == status, path
        assert str(tmp_path).encode() not in body and b"static_file" not in body, (path, body)


@pytest.mark.parametrize("client, headers, detailed", [
    # the front resolved the client from a trusted proxy (head.proxied): its address decides
    (("198.51.100.7", 0), (("X-Forwarded-For", "198.51.100.7"),), False),
    (("127.0.0.1", 0), (("X-Forwarded-For", "127.0.0.1"),), True),
    (("::1", 0), (("Forwarded", "for=\"[::1]\""),), True),
    (("10.0.0.5", 0), (), False),
])
def test_a_client_named_by_a_trusted_proxy_is_local_by_its_own_address(client, headers, detailed):
    ctx = failed_ctx("DetailedLocalOnly", client, headers)
    ctx.head.proxied = True
    assert is_local(ctx.head) is detailed
