"""ip_restriction and dynamic_ip_restriction in a compiled pipeline with fake channels: they stay
out of an application that never names their section, deny with IIS's statuses, mark what they
judge private, abort without a response, and count per client."""

from __future__ import annotations

import pytest

from wasp.worker import modules  # noqa: F401  (registers the built-in modules)
from wasp.worker.pipeline import Pipeline

from worker_fakes import make_app, make_ctx


def pipeline_for(tables, **fields):
    app = make_app(tables=tables, **fields)
    app.pipeline = Pipeline(app)
    return app


def run(app, client="10.1.2.3", headers=(), path="/x"):
    ctx = make_ctx(app, path=path, client=(client, 4000), headers=headers)
    app.pipeline.run_sync(ctx)
    return ctx, ctx.channel.response()


def test_modules_stay_out_of_an_application_that_never_names_their_sections():
    app = pipeline_for({})
    assert "ip_restriction" not in app.pipeline.active
    assert "dynamic_ip_restriction" not in app.pipeline.active
    app = pipeline_for({"server": {"ip_security": {"allow_unlisted": True}}})
    assert "ip_restriction" in app.pipeline.active
    app = pipeline_for({"sites": {"1": {"dynamic_ip_security": {}}}})
    assert "dynamic_ip_restriction" in app.pipeline.active


@pytest.mark.parametrize("action, status", [("Forbidden", 403), ("Unauthorized", 401), ("NotFound", 404)])
def test_deny_actions(action, status):
    app = pipeline_for({"server": {"ip_security": {"deny_action": action,
                                                   "entries": [{"ip_address": "10.0.0.0/8"}]}}})
    ctx, (got, sub, _h, _b, kind, _x) = run(app)
    assert (got, sub, kind) == (status, 503, "response") and ctx.private
    ctx, (got, *_rest) = run(app, client="192.0.2.1")
    assert got == 404 and ctx.private   # let through (nothing to serve), still private


def test_abort_request_sends_abort_0_with_the_substatus():
    app = pipeline_for({"server": {"ip_security": {"deny_action": "AbortRequest",
                                                   "entries": [{"ip_address": "::ffff:10.0.0.0/104"}]}}})
    ctx, (status, _sub, _h, body, kind, _x) = run(app, client="::ffff:10.9.9.9")
    assert (status, kind, body) == (0, "abort", b"") and ctx.substatus == 503


def test_proxy_mode_checks_every_forwarded_address():
    app = pipeline_for({"server": {"ip_security": {"enable_proxy_mode": True,
                                                   "entries": [{"ip_address": "203.0.113.0/24"}]}}})
    assert run(app, headers=[("X-Forwarded-For", "198.51.100.1, 203.0.113.4")])[1][:2] == (403, 503)
    assert run(app, headers=[("X-Forwarded-For", "198.51.100.1")])[1][0] == 404
    assert run(app, headers=[("X-Forwarded-For", "not-an-address")])[1][:2] == (400, 10)


def test_dynamic_rate_per_client():
    app = pipeline_for({"server": {"dynamic_ip_security": {"deny_by_request_rate": {
        "enabled": True, "max_requests": 2, "request_interval_ms": 60000}}}})
    assert [run(app)[1][:2] for _ in range(3)] == [(404, 0), (404, 0), (403, 502)]
    assert run(app, client="10.9.9.9")[1][:2] == (404, 0)


def test_dynamic_concurrency_releases_at_end_request():
    app = pipeline_for({"server": {"dynamic_ip_security": {"deny_by_concurrent_requests": {
        "enabled": True, "max_concurrent_requests": 1}}}})
    for _ in range(3):   # each request ends (END_REQUEST) before the next: never two in flight
        ctx, response = run(app)
        assert response[:2] == (404, 0) and ctx.private
    assert len(app.pipeline.modules[[m.id for m in app.pipeline.modules].index(
        "dynamic_ip_restriction")].table._clients["10.1.2.3"].inflight) == 0
