"""wasp.modules, the public API for Python modules: the Request surface and respond()."""

from __future__ import annotations

import pytest

from wasp.modules import FINISH, Request
from wasp.worker import modules  # noqa: F401

from worker_fakes import make_app, make_ctx


def test_request_surface():
    app = make_app("/api")
    ctx = make_ctx(app, method="POST", path="/api/x/y", query=b"a=1",
                   headers=[("X-Key", "v1"), ("x-key", "v2")], client=("10.0.0.9", 5555))
    r = Request(ctx)
    assert (r.method, r.path, r.app_path, r.query) == ("POST", "/api/x/y", "/x/y", "a=1")
    assert r.header("x-KEY") == "v1" and r.header("missing", "d") == "d"
    assert (r.client_address, r.client_port) == ("10.0.0.9", 5555)
    assert r.user is None and r.handler == ""
    r.items["k"] = 1
    assert ctx.items == {"k": 1}
    r.set_user("bob", "ApiKey")
    assert (ctx.user, ctx.auth_type, ctx.private) == ("bob", "ApiKey", True)


def test_respond_answers_and_finishes():
    ctx = make_ctx(make_app())
    assert Request(ctx).respond(201, "made", [("X-A", "1")]) is FINISH
    status, _sub, headers, body, *_ = ctx.channel.response()
    assert (status, body, headers["x-a"], headers["content-length"]) == (201, b"made", "1", "4")
    assert headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("headers", [
    [("X-A", "1\r\nSet-Cookie: evil=1")], [("X-A\r\nB", "1")], [("X A", "1")], [("X-A", "a\nb")],
    [("", "1")], [("X-A", "\0")], [("Content-Length", "99")],
])
def test_respond_refuses_header_injection(headers):
    ctx = make_ctx(make_app())
    with pytest.raises(ValueError):
        Request(ctx).respond(200, "x", headers)
    assert not ctx.started


def test_private_cannot_be_switched_off():
    ctx = make_ctx(make_app())
    r = Request(ctx)
    r.private = True
    r.private = False
    assert ctx.private is True
