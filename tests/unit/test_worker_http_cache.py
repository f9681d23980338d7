"""http_cache (IIS HttpCacheModule): which responses the worker lets the front cache."""

from __future__ import annotations

import pytest

from wasp.config import model
from wasp.wire.frames import CACHE_FOR_TIME_PERIOD, CACHE_UNTIL_CHANGE
from wasp.worker import modules  # noqa: F401
from wasp.worker.hosting import wsgi
from wasp.worker.modules.http_cache import profile_policy, response_hint
from wasp.worker.pipeline import Pipeline

from worker_fakes import make_app, make_ctx


@pytest.fixture
def root(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    (www / "a.css").write_text("body{}")
    (www / "page.html").write_text("<p>hi</p>")
    (www / "empty.txt").write_text("")
    (www / "docs").mkdir()
    (www / "docs" / "index.html").write_text("<h1>docs</h1>")
    return www


def run(app, path="/", method="GET", headers=(), query=b"", content_length=-1):
    pipeline = Pipeline(app)
    ctx = make_ctx(app, method=method, path=path, headers=headers, query=query,
                   content_length=content_length)
    if pipeline.run_front(ctx):
        pipeline.run_handler_sync(ctx)
    return ctx.channel


def static_app(root, **caching):
    return make_app(physical_path=str(root), caching=model.Caching(**caching))


def wsgi_app(callable_, *profiles, **caching):
    app = make_app(app="m:app", caching=model.Caching(profiles=list(profiles), **caching))
    app.interface = "wsgi"
    app.host = wsgi.WSGIHost(app, callable_)
    return app


def page(status="200 OK", headers=(("Content-Type", "text/html"),), body=b"<p>page</p>"):
    def app(environ, start_response):
        start_response(status, list(headers))
        return [body]
    return app


FOR_10S = model.CacheProfile(extension="*", kernel_caching_policy="CacheForTimePeriod", duration=10)


# ---- static files ----

def test_a_static_file_may_be_cached_until_it_changes(root):
    channel = run(static_app(root), "/a.css")
    hint = channel.cache_hint()
    assert hint.policy == CACHE_UNTIL_CHANGE and hint.duration == 0 and hint.vary == []
    assert hint.mtime_ns == (root / "a.css").stat().st_mtime_ns
    assert channel.response()[4] == "file"


@pytest.mark.parametrize("kwargs", [
    dict(query=b"v=1"),
    dict(headers=[("Authorization", "Basic dTpw")]),
    dict(headers=[("Range", "bytes=0-1")]),
    dict(headers=[("If-Range", '"x"')]),
    dict(headers=[("Translate", "f")]),
    dict(method="HEAD"),
], ids=["query", "authorization", "range", "if-range", "translate", "head"])
def test_requests_that_are_never_cached(root, kwargs):
    assert run(static_app(root), "/a.css", **kwargs).cache_hint() is None


def test_a_304_or_an_error_is_not_cacheable(root):
    etag = run(static_app(root), "/a.css").response()[2]["etag"]
    assert run(static_app(root), "/a.css", headers=[("If-None-Match", etag)]).cache_hint() is None
    assert run(static_app(root), "/missing.css").cache_hint() is None


def test_an_empty_file_and_a_default_document_are_not_cached(root):
    assert run(static_app(root), "/empty.txt").cache_hint() is None
    assert run(static_app(root), "/docs/").response()[0] == 200
    assert run(static_app(root), "/docs/").cache_hint() is None      # HTTP.sys: "/" is not cached
    assert run(static_app(root), "/docs/index.html").cache_hint() is not None


def test_caching_switched_off_for_the_application(root):
    assert run(static_app(root, enabled=False), "/a.css").cache_hint() is None
    assert run(static_app(root, enable_kernel_cache=False), "/a.css").cache_hint() is None


def test_profile_disable_cache_for_static_files_and_a_time_period_is_for_apps(root):
    off = model.CacheProfile(extension=".CSS", policy="DisableCache")
    assert run(static_app(root, profiles=[off]), "/a.css").cache_hint() is None
    assert run(static_app(root, profiles=[off]), "/page.html").cache_hint() is not None
    timed = model.CacheProfile(extension="*", kernel_caching_policy="CacheForTimePeriod", duration=5)
    hint = run(static_app(root, profiles=[timed]), "/a.css").cache_hint()
    assert (hint.policy, hint.duration) == (CACHE_UNTIL_CHANGE, 0.0)   # watched: until it changes
    nowhere = model.CacheProfile(extension=".css", kernel_caching_policy="CacheUntilChange", location="Client")
    assert run(static_app(root, profiles=[nowhere]), "/a.css").cache_hint() is None


# ---- app responses ----

def test_an_app_response_needs_a_profile():
    assert run(wsgi_app(page()), "/p").cache_hint() is None
    hint = run(wsgi_app(page(), FOR_10S), "/p").cache_hint()
    assert (hint.policy, hint.duration, hint.vary) == (CACHE_FOR_TIME_PERIOD, 10.0, [])


def test_an_app_without_content_or_an_app_profile_skips_the_phase(root):
    # Nothing it serves could be cached: the module takes no part in its requests.
    def phases(app):
        return [name for _phase, name, _step in Pipeline(app).before]

    assert "http_cache" not in phases(wsgi_app(page()))
    off = model.CacheProfile(extension=".css", policy="DisableCache")
    assert "http_cache" not in phases(wsgi_app(page(), off))
    assert "http_cache" in phases(wsgi_app(page(), FOR_10S))
    assert "http_cache" in phases(static_app(root))
    with_content = wsgi_app(page())
    with_content.config.physical_path = str(root)
    assert "http_cache" in phases(with_content)


def test_profiles_match_by_extension_before_star():
    html = model.CacheProfile(extension=".html", kernel_caching_policy="CacheUntilChange")
    dont = model.CacheProfile(extension=".json", kernel_caching_policy="DontCache")
    app = wsgi_app(page(), html, dont, FOR_10S)
    assert run(app, "/x/index.HTML").cache_hint().policy == CACHE_UNTIL_CHANGE
    assert run(app, "/data.json").cache_hint() is None
    assert run(app, "/x.y/z").cache_hint().policy == CACHE_FOR_TIME_PERIOD  # no extension: "*"


def test_output_cache_policy_is_used_when_the_kernel_policy_is_dont_cache():
    profile = model.CacheProfile(extension="*", policy="CacheForTimePeriod", duration=7)
    assert run(wsgi_app(page(), profile), "/p").cache_hint().duration == 7.0
    profile = model.CacheProfile(extension="*", policy="CacheUntilChange", kernel_caching_policy="DisableCache")
    assert run(wsgi_app(page(), profile), "/p").cache_hint() is None


@pytest.mark.parametrize("headers", [
    [("Set-Cookie", "s=1")],
    [("Vary", "Accept, *")],
    [("Cache-Control", "private")],
    [("Cache-Control", "public, no-store")],
    [("cache-control", "No-Cache")],
    [("Cache-Control", "max-age=0")],
    [("Cache-Control", "max-age=soon")],
], ids=["set-cookie", "vary-star", "private", "no-store", "no-cache", "max-age-0", "bad-max-age"])
def test_responses_that_refuse_to_be_cached(headers):
    assert run(wsgi_app(page(headers=headers), FOR_10S), "/p").cache_hint() is None


def test_only_a_non_empty_200_is_cached():
    assert run(wsgi_app(page(status="404 Not Found"), FOR_10S), "/p").cache_hint() is None
    assert run(wsgi_app(page(status="201 Created"), FOR_10S), "/p").cache_hint() is None
    assert run(wsgi_app(page(body=b""), FOR_10S), "/p").cache_hint() is None


def test_max_age_and_s_maxage_shorten_the_duration():
    hint = run(wsgi_app(page(headers=[("Cache-Control", "public, max-age=3")]), FOR_10S), "/p").cache_hint()
    assert hint.duration == 3.0
    hint = run(wsgi_app(page(headers=[("Cache-Control", "max-age=3, s-maxage=8")]), FOR_10S), "/p").cache_hint()
    assert hint.duration == 8.0
    hint = run(wsgi_app(page(headers=[("Cache-Control", "max-age=60")]), FOR_10S), "/p").cache_hint()
    assert hint.duration == 10.0
    until = model.CacheProfile(extension="*", kernel_caching_policy="CacheUntilChange")
    hint = run(wsgi_app(page(headers=[("Cache-Control", "max-age=4")]), until), "/p").cache_hint()
    assert (hint.policy, hint.duration) == (CACHE_UNTIL_CHANGE, 4.0)


def test_vary_names_join_the_profiles_and_the_responses():
    profile = model.CacheProfile(extension="*", kernel_caching_policy="CacheUntilChange",
                                 vary_by_headers=["Accept-Language"])
    hint = run(wsgi_app(page(headers=[("Vary", "Accept-Encoding, cookie")]), profile), "/p").cache_hint()
    assert hint.vary == ["accept-encoding", "accept-language", "cookie"]


def test_a_post_or_a_request_with_a_body_is_not_cached():
    assert run(wsgi_app(page(), FOR_10S), "/p", method="POST", content_length=0).cache_hint() is None


def test_pure_helpers():
    assert profile_policy(model.CacheProfile(extension="*", location="None",
                                             kernel_caching_policy="CacheUntilChange")) == "DisableCache"
    assert response_hint((CACHE_UNTIL_CHANGE, 0.0), (), b"200 OK\r\n", 1).policy == CACHE_UNTIL_CHANGE
    assert response_hint((0, 0.0), (), b"200 OK\r\n", 1) is None


def test_a_request_with_a_client_certificate_is_not_cached(root):
    from wasp.wire.frames import TlsInfo
    app = static_app(root)
    pipeline = Pipeline(app)
    ctx = make_ctx(app, path="/a.css")
    ctx.head.tls = TlsInfo("TLSv1.3", "TLS_AES_128_GCM_SHA256", 0x1301, "", "-----BEGIN CERTIFICATE-----")
    pipeline.run_sync(ctx)
    assert ctx.channel.response()[0] == 200 and ctx.channel.cache_hint() is None
    ctx = make_ctx(app, path="/a.css")
    ctx.head.tls = TlsInfo("TLSv1.3", "TLS_AES_128_GCM_SHA256", 0x1301)
    pipeline.run_sync(ctx)
    assert ctx.channel.cache_hint() is not None
