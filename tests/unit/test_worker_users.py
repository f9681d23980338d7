"""Users in the pipeline: ctx.set_user, the USER frame, the 401.2 core check and the challenges,
and what the apps and the front see of the user."""

from __future__ import annotations

import pytest

from wasp.wire import frames
from wasp.worker import modules  # noqa: F401  (registers the built-in modules)
from wasp.worker.authn import BASIC, DIGEST, NEGOTIATE, add_challenge, unauthorized
from wasp.worker.pipeline import CORE, Pipeline
from wasp.worker.registry import CONTINUE, Module, Phase, register, unregister

from worker_fakes import make_app, make_ctx

OK = b"200 OK\r\nContent-Length: 2\r\n"


def test_user_frame_round_trips_and_refuses_garbage():
    data = frames.pack_user(3, "zoë", "Basic")
    [(ftype, _flags, sid, payload)] = frames.FrameReader().feed(data)
    assert (ftype, sid) == (frames.FrameType.USER, 3)
    assert frames.unpack_user(payload) == ("zoë", "Basic")
    for bad in (b"", b"Basic", b"Basic\0", b"Basic\0\xff\xfe"):
        with pytest.raises(frames.ProtocolError):
            frames.unpack_user(bad)


def test_a_named_user_goes_to_the_front_with_the_response_and_is_never_cached():
    app = make_app()
    ctx = make_ctx(app)

    class Rule:  # http_cache's rule: would let the front cache anything
        def response_hint(self, *_):
            return frames.CacheHint(kind=1, duration=10.0, vary=[], etag="", last_modified="")

    ctx.cache = Rule()
    ctx.set_user("alice", "Basic")
    assert ctx.private
    ctx.respond(OK, b"ok")
    assert ctx.channel.user() == ("alice", "Basic")
    assert ctx.channel.cache_hint() is None
    assert ctx.channel.response()[:2] == (200, 0)


def test_anonymous_sends_no_user_frame_and_stays_cacheable():
    ctx = make_ctx(make_app())
    ctx.set_user("", "Basic")
    assert (ctx.user, ctx.auth_type, ctx.private) == ("", "", False)
    ctx.start_response(OK)
    assert ctx.channel.user() is None


def test_streamed_and_file_responses_carry_the_user(tmp_path):
    ctx = make_ctx(make_app())
    ctx.set_user("bob", "Negotiate")
    ctx.start_response(b"200 OK\r\n")
    assert ctx.channel.user() == ("bob", "Negotiate")
    page = tmp_path / "p.txt"
    page.write_bytes(b"hi")
    ctx = make_ctx(make_app())
    ctx.set_user("carol", "Digest")
    ctx.send_file(b"200 OK\r\n", str(page), 0, 2)
    assert ctx.channel.user() == ("carol", "Digest")


@pytest.mark.parametrize("name", ["a\r\nb", "a\x00", "tab\there", "del\x7f"])
def test_set_user_refuses_control_characters(name):
    # A module that copies a user name from a header must not smuggle a line into the log.
    with pytest.raises(ValueError):
        make_ctx(make_app()).set_user(name, "Basic")


def test_challenges_go_out_strongest_first_whatever_the_module_order():
    ctx = make_ctx(make_app())
    add_challenge(ctx, BASIC, 'Basic realm="r", charset="UTF-8"')
    add_challenge(ctx, NEGOTIATE, "Negotiate")
    add_challenge(ctx, DIGEST, 'Digest realm="r"')
    exc = unauthorized(ctx, 1)
    assert (exc.status, exc.substatus) == (401, 1)
    assert [v for _n, v in exc.headers] == ["Negotiate", 'Digest realm="r"',
                                            'Basic realm="r", charset="UTF-8"']


@pytest.fixture
def challenger():
    """A throw-away authentication module that only challenges, like Basic without credentials."""
    class Challenger(Module):
        def authenticate_request(self, ctx):
            add_challenge(ctx, BASIC, 'Basic realm="t"')
            return CONTINUE

        def execute_request_handler(self, ctx):
            ctx.respond(OK, b"ok")
            return CONTINUE

        def map_request_handler(self, ctx):
            ctx.handler = self
            return CONTINUE

    register("t.challenger", phases=(Phase.AUTHENTICATE_REQUEST, Phase.MAP_REQUEST_HANDLER,
                                     Phase.EXECUTE_REQUEST_HANDLER))(Challenger)
    yield
    unregister("t.challenger")


def test_no_user_after_authentication_is_401_2_with_the_challenges(challenger):
    tables = {"server": {"anonymous_authentication": {"enabled": False}}}
    app = make_app(tables=tables)
    pipeline = Pipeline(app, ["anonymous_authentication", "t.challenger"])
    assert (Phase.AUTHENTICATE_REQUEST, CORE) in [(p, n) for p, n, _ in pipeline.main]
    ctx = make_ctx(app)
    pipeline.run_sync(ctx)
    status, sub, headers, body, _kind, _ = ctx.channel.response()
    assert (status, sub) == (401, 2)
    assert headers["www-authenticate"] == 'Basic realm="t"'


def test_anonymous_lets_the_request_through_as_the_anonymous_user(challenger):
    app = make_app()
    pipeline = Pipeline(app, ["anonymous_authentication", "t.challenger"])
    ctx = make_ctx(app)
    pipeline.run_sync(ctx)
    assert ctx.channel.response()[:2] == (200, 0)
    assert ctx.user == "" and ctx.channel.user() is None


def test_without_authentication_modules_there_is_no_user_check(challenger):
    # The check belongs to the authentication phase: a pipeline with no module there has none.
    unregister("t.challenger")

    class Plain(Module):
        def map_request_handler(self, ctx):
            ctx.handler = self
            return CONTINUE

        def execute_request_handler(self, ctx):
            ctx.respond(OK, b"ok")
            return CONTINUE

    register("t.challenger", phases=(Phase.MAP_REQUEST_HANDLER, Phase.EXECUTE_REQUEST_HANDLER))(Plain)
    app = make_app()
    pipeline = Pipeline(app, ["t.challenger"])
    assert CORE not in [n for _p, n, _ in pipeline.main if _p is Phase.AUTHENTICATE_REQUEST]
    ctx = make_ctx(app)
    pipeline.run_sync(ctx)
    assert ctx.user is None and ctx.channel.response()[:2] == (200, 0)


def test_apps_see_the_user(tmp_path):
    from wasp.worker.hosting.asgi import build_scope
    from wasp.worker.hosting.wsgi import WSGIHost
    app = make_app()
    ctx = make_ctx(app)
    ctx.set_user("alice", "Basic")
    scope = build_scope(ctx, {})
    assert scope["extensions"]["user"] == {"name": "alice", "auth_type": "Basic"}
    host = WSGIHost(app, lambda environ, start_response: [])
    env = host.environ(ctx)
    assert (env["REMOTE_USER"], env["AUTH_TYPE"]) == ("alice", "Basic")
    anon = make_ctx(app)
    anon.set_user("", "")
    assert "REMOTE_USER" not in host.environ(anon)
    assert "user" not in build_scope(anon, {}).get("extensions", {})
