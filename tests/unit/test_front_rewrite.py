"""URL Rewrite's global rules in the front (wasp/front/rewriting.py), without sockets: routed
by the rewritten URL, the worker told what was rewritten, the front's own redirect, custom
response and abort, pipelined requests kept in order, and 500.51 for a rule that fails."""

from __future__ import annotations

from wasp.config import model

from front_fakes import FrontRig, make_config, split_responses

RULES = [
    {"name": "legacy", "match": {"url": "^legacy/(.*)"}, "action": {"type": "Rewrite", "url": "/api/{R:1}?from=legacy"}},
    {"name": "moved", "match": {"url": "^moved$"}, "action": {"type": "Redirect", "url": "/new", "redirect_type": "SeeOther"}},
    {"name": "gone", "match": {"url": "^gone$"}, "action": {"type": "CustomResponse", "status_code": 410,
                                                           "sub_status_code": 2, "status_reason": "Gone Away",
                                                           "status_description": "bye"}},
    {"name": "drop", "match": {"url": "^drop$"}, "action": {"type": "AbortRequest"}},
    {"name": "proxy", "match": {"url": "^ext/(.*)"}, "action": {"type": "Rewrite", "url": "http://10.0.0.9:81/{R:1}"}},
    {"name": "slow", "match": {"url": "^slow/(a|aa)+$"}, "action": {"type": "AbortRequest"}},
]


def rig(tmp_path):
    pools = [model.Pool(name="P"), model.Pool(name="Api")]
    sites = [model.Site(name="S", id=1, bindings=["http/*:8080:"],
                        applications=[model.Application(path="/", pool="P"),
                                      model.Application(path="/api", pool="Api")])]
    config = make_config(tmp_path, pools=pools, sites=sites)
    config.sections = {"server": {"rewrite": {"global_rules": RULES}}, "sites": {}, "applications": {}}
    return FrontRig(tmp_path, config)


def send(r, conn, transport, target: bytes, extra: bytes = b""):
    conn.data_received(b"GET " + target + b" HTTP/1.1\r\nHost: s.test\r\n" + extra + b"\r\n")
    r.loop.run_soon()


def test_a_rewrite_is_routed_by_its_new_url_to_another_pool(tmp_path):
    r = rig(tmp_path)
    api = r.worker("Api", 2)
    conn, transport = r.connect()
    send(r, conn, transport, b"/legacy/users?id=1", b"X-Original-URL: /admin\r\n")
    (sid, head, _fin), = api.requests()
    assert (head.app, head.path, head.query, head.target) == ("1/api", b"/api/users",
                                                              b"from=legacy&id=1", b"/legacy/users?id=1")
    assert head.rewritten and head.proxy_url == ""
    originals = [v for n, v in head.headers if n.lower() == b"x-original-url"]
    assert originals == [b"/legacy/users?id=1"]   # the client's is gone, the front's is there


def test_a_proxy_rewrite_is_routed_by_the_original_url_with_its_target(tmp_path):
    r = rig(tmp_path)
    root = r.worker("P", 1)
    conn, transport = r.connect()
    send(r, conn, transport, b"/ext/a?b=1")
    (sid, head, _fin), = root.requests()
    assert (head.app, head.path, head.proxy_url) == ("1/", b"/ext/a", "http://10.0.0.9:81/a?b=1")
    assert not head.rewritten


def test_redirect_and_custom_response_are_the_fronts_own_answers_in_order(tmp_path):
    r = rig(tmp_path)
    root = r.worker("P", 1)
    conn, transport = r.connect()
    # Pipelined: an app request, then two the front answers itself; the answers keep the order.
    conn.data_received(b"GET /app HTTP/1.1\r\nHost: s.test\r\n\r\n"
                       b"GET /moved?q=1 HTTP/1.1\r\nHost: s.test\r\n\r\n"
                       b"GET /gone HTTP/1.1\r\nHost: s.test\r\n\r\n")
    r.loop.run_soon()
    assert transport.take() == b""     # the first is at the worker: nothing may overtake it
    (sid, head, _fin), = root.requests()
    root.respond(sid, b"app")
    r.loop.run_soon()
    (s1, _h1, b1), (s2, h2, b2), (s3, _h3, b3) = split_responses(transport.take())
    assert (s1, b1) == (200, b"app")
    assert (s2, h2["location"]) == (303, "/new?q=1") and b"Object Moved" in b2
    assert (s3, b3) == (410, b"bye")
    assert root.requests() == []       # the worker never saw them


def test_custom_response_reason_and_abort(tmp_path):
    r = rig(tmp_path)
    r.worker("P", 1)
    conn, transport = r.connect()
    send(r, conn, transport, b"/gone")
    assert transport.take().startswith(b"HTTP/1.1 410 Gone Away\r\n")
    conn, transport = r.connect()
    send(r, conn, transport, b"/drop")
    assert transport.take() == b"" and transport.closed


def test_a_rule_that_times_out_is_500(tmp_path):
    r = rig(tmp_path)
    r.worker("P", 1)
    conn, transport = r.connect()
    send(r, conn, transport, b"/slow/" + b"a" * 4000 + b"!")
    (status, _headers, _body), = split_responses(transport.take())
    assert status == 500


def test_no_global_rules_no_cost(tmp_path):
    assert FrontRig(tmp_path).server.global_rules is None


def test_a_global_rule_sets_a_request_header_for_the_worker(tmp_path):
    r = rig(tmp_path)
    r.server.config.sections["server"]["rewrite"] = {
        "allowed_server_variables": ["HTTP_X_FROM_FRONT"],
        "global_rules": [{"name": "mark", "match": {"url": ".*"}, "action": {"type": "None"},
                          "server_variables": [{"name": "HTTP_X_FROM_FRONT", "value": "{HTTPS}"}]}]}
    r.server.apply_config(r.server.config)
    root = r.worker("P", 1)
    conn, transport = r.connect()
    send(r, conn, transport, b"/x", b"X-From-Front: forged\r\n")
    (sid, head, _fin), = root.requests()
    assert [v for n, v in head.headers if n.lower() == b"x-from-front"] == [b"off"]


def test_behind_a_trusted_tls_proxy_https_is_on_for_global_rules(tmp_path):
    pools = [model.Pool(name="P")]
    sites = [model.Site(name="S", id=1, bindings=["http/*:8080:"],
                        applications=[model.Application(path="/", pool="P")])]
    config = make_config(tmp_path, pools=pools, sites=sites, trusted_proxies=["127.0.0.1"])
    config.sections = {"server": {"rewrite": {"global_rules": [
        {"name": "https", "match": {"url": "(.*)"},
         "conditions": {"entries": [{"input": "{HTTPS}", "pattern": "^off$"}]},
         "action": {"type": "Redirect", "url": "https://{HTTP_HOST}/{R:1}"}}]}},
        "sites": {}, "applications": {}}
    r = FrontRig(tmp_path, config)
    root = r.worker("P", 1)
    conn, transport = r.connect()
    send(r, conn, transport, b"/a", b"X-Forwarded-Proto: https\r\nX-Forwarded-For: 203.0.113.9\r\n")
    (sid, head, _fin), = root.requests()       # not redirected: the proxy spoke TLS
    assert head.scheme == "https"
    conn, transport = r.connect()
    send(r, conn, transport, b"/a")
    (status, headers, _body), = split_responses(transport.take())
    assert (status, headers["location"]) == (301, "https://s.test/a")
