"""FREB's Rewrite and Security areas (issue 11 item 5): URL Rewrite's rule-by-rule events (pattern,
conditions, action, whether processing stopped), URL_CHANGED, and what request filtering, URL
authorization and the IP restrictions decided, recorded only for a traced request and only when
the rule's trace areas include them."""

from __future__ import annotations

from test_freb_events import CATCH_ALL, events_of, make_app, opcodes, submitted  # noqa: F401
from test_freb import run, temp_modules  # noqa: F401  (the fixture)

FRONT_CONTROLLER = """
[[sites.rewrite.rules]]
name = "api"
match = { url = "^api/(.*)" }
action = { type = "CustomResponse", status_code = 410 }

[[sites.rewrite.rules]]
name = "spa"
match = { url = ".*" }
conditions = { entries = [
  { input = "{REQUEST_FILENAME}", match_type = "IsFile", negate = true } ] }
action = { type = "Rewrite", url = "/index.html" }
"""


def _rewrite_events(events):
    return [(op, d) for op, d in events
            if op in ("URL_REWRITE_START", "URL_REWRITE_END", "URL_CHANGED", "PATTERN_MATCH",
                      "SET_SERVER_VARIABLE")
            or op.startswith(("RULE_EVALUATION", "CONDITION", "REWRITE_ACTION", "REDIRECT_ACTION",
                              "CUSTOM_RESPONSE_ACTION", "ABORT_REQUEST_ACTION"))]


def test_a_rewrite_shows_each_rule_its_pattern_conditions_action_and_the_url_change(tmp_path, submitted):
    (tmp_path / "index.html").write_text("<p>app</p>")
    app = make_app(tmp_path, CATCH_ALL + FRONT_CONTROLLER, physical_path=str(tmp_path))
    ctx = run(app, app.pipeline, path="/orders/7")
    assert ctx.status == 200 and ctx.freb.matched
    events = _rewrite_events(events_of(ctx))
    assert [op for op, _d in events] == [
        "URL_REWRITE_START",
        "RULE_EVALUATION_START", "PATTERN_MATCH", "RULE_EVALUATION_END",
        "RULE_EVALUATION_START", "PATTERN_MATCH",
        "CONDITIONS_EVALUATION_START", "CONDITION_EVALUATION", "CONDITIONS_EVALUATION_END",
        "REWRITE_ACTION", "RULE_EVALUATION_END",
        "URL_REWRITE_END", "URL_CHANGED"]
    data = [d for _op, d in events]
    assert data[0] == {"RequestURL": "/orders/7", "Scope": "Distributed", "Type": "Inbound"}
    assert data[1]["RuleName"] == "api"
    assert data[2] == {"Pattern": "^api/(.*)", "Input": "orders/7", "Negate": "false", "Matched": "false"}
    assert data[3]["Succeeded"] == "false"
    assert data[5]["Matched"] == "true"
    assert data[6] == {"LogicalGrouping": "MatchAll"}
    condition = data[7]
    assert condition["Input"] == "{REQUEST_FILENAME}" and condition["MatchType"] == "IsFile"
    assert condition["ExpandedInput"].endswith("orders/7")
    assert condition["Negate"] == "true" and condition["Succeeded"] == "true"
    assert data[8] == {"Succeeded": "true"}
    assert data[9]["Substitution"] == "/index.html" and data[9]["RewriteURL"] == "/index.html"
    assert data[10] == {"RuleName": "spa", "RequestURL": "orders/7", "Scope": "Distributed",
                        "Type": "Inbound", "Succeeded": "true", "StopProcessing": "false"}
    assert data[11] == {"RequestURL": "/index.html"}
    assert data[12] == {"OldUrl": "/orders/7", "NewUrl": "/index.html", "Scope": "Distributed"}


def test_a_custom_response_rule_stops_processing_and_is_the_trace_s_status(tmp_path, submitted):
    app = make_app(tmp_path, CATCH_ALL + FRONT_CONTROLLER, physical_path=str(tmp_path))
    ctx = run(app, app.pipeline, path="/api/v1")
    assert ctx.status == 410
    events = _rewrite_events(events_of(ctx))
    assert [op for op, _d in events][-3:] == ["CUSTOM_RESPONSE_ACTION", "RULE_EVALUATION_END",
                                              "URL_REWRITE_END"]
    assert events[-3][1]["StatusCode"] == 410
    assert events[-2][1]["StopProcessing"] == "true"
    assert not [op for op, _d in events if op == "URL_CHANGED"]


def test_a_redirect_rule_names_its_location_and_status(tmp_path, submitted):
    rules = CATCH_ALL + """
[[sites.rewrite.rules]]
name = "old"
match = { url = "^old/(.*)" }
action = { type = "Redirect", url = "/new/{R:1}", redirect_type = "Found" }
"""
    app = make_app(tmp_path, rules, physical_path=str(tmp_path))
    ctx = run(app, app.pipeline, path="/old/page")
    assert ctx.status == 302
    action = dict(_rewrite_events(events_of(ctx)))["REDIRECT_ACTION"]
    assert action == {"Substitution": "/new/{R:1}", "RedirectURL": "/new/page",
                      "AppendQueryString": "true", "StatusCode": 302}


def test_rewrite_events_follow_the_rule_s_trace_areas(tmp_path, submitted):
    only_security = """
[[sites.trace_failed_requests]]
path = "*"
failure_definitions = { status_codes = "100-999" }
trace_areas = [ { provider = "WWW Server", areas = ["Security"], verbosity = "Verbose" } ]
"""
    (tmp_path / "index.html").write_text("<p>app</p>")
    app = make_app(tmp_path, only_security + FRONT_CONTROLLER, physical_path=str(tmp_path))
    ctx = run(app, app.pipeline, path="/orders/7")
    assert ctx.status == 200 and ctx.freb.matched
    events = events_of(ctx)
    assert [op for op, _d in _rewrite_events(events)] == ["URL_CHANGED"]  # General: always kept


def test_a_request_filtering_denial_says_why(tmp_path, submitted):
    app = make_app(tmp_path, CATCH_ALL, physical_path=str(tmp_path))
    ctx = run(app, app.pipeline, path="/bin/tool.txt")
    assert (ctx.status, ctx.substatus) == (404, 8)
    [denied] = [d for op, d in events_of(ctx) if op == "REQUEST_FILTERING_DENIED"]
    assert denied == {"Reason": "hidden segment", "HttpStatus": 404, "HttpSubStatus": 8}
    status = next(d for op, d in events_of(ctx) if op == "MODULE_SET_RESPONSE_ERROR_STATUS")
    assert status["ModuleName"] == "request_filtering"


def test_url_authorization_records_its_decision_both_ways(tmp_path, submitted):
    rules = CATCH_ALL + """
[[authorization.rules]]
access_type = "Deny"
users = "?"
verbs = "POST"
"""
    (tmp_path / "a.txt").write_text("a")
    app = make_app(tmp_path, rules, physical_path=str(tmp_path))
    allowed = run(app, app.pipeline, path="/a.txt")
    assert allowed.status == 200
    [decision] = [d for op, d in events_of(allowed) if op == "AUTHORIZATION_DECISION"]
    assert decision == {"ModuleName": "url_authorization", "UserName": "", "Roles": "",
                        "Verbs": "GET", "Allowed": "true"}
    from worker_fakes import make_ctx
    ctx = make_ctx(app, method="POST", path="/a.txt")
    app.pipeline.run_sync(ctx)
    assert (ctx.status, ctx.substatus) == (401, 2)
    [decision] = [d for op, d in events_of(ctx) if op == "AUTHORIZATION_DECISION"]
    assert decision["Allowed"] == "false" and decision["Verbs"] == "POST"


def test_an_ip_restriction_denial_names_the_address_and_substatus(tmp_path, submitted):
    rules = CATCH_ALL + """
[ip_security]
allow_unlisted = true
entries = [ { ip_address = "10.1.2.0/24", allowed = false } ]
"""
    app = make_app(tmp_path, rules, physical_path=str(tmp_path))
    ctx = run(app, app.pipeline, path="/a.txt")   # the fake client is 10.1.2.3
    assert (ctx.status, ctx.substatus) == (403, 503)
    [decision] = [d for op, d in events_of(ctx) if op == "IP_RESTRICTION_DECISION"]
    assert decision == {"ModuleName": "ip_restriction", "RemoteAddress": "10.1.2.3",
                        "Allowed": "false", "HttpSubStatus": 503, "DenyAction": "Forbidden"}


def test_an_untraced_request_records_nothing_and_is_answered_the_same(tmp_path, submitted):
    (tmp_path / "index.html").write_text("<p>app</p>")
    untraced = make_app(tmp_path, FRONT_CONTROLLER, physical_path=str(tmp_path))
    ctx = run(untraced, untraced.pipeline, path="/orders/7")
    assert ctx.freb is None and ctx.status == 200 and submitted == []


def test_a_global_rule_s_rewrite_shows_as_a_url_change_at_the_start(tmp_path, submitted):
    """Global rules run in the front before routing; the worker's trace shows their outcome."""
    import msgspec
    from wasp.worker.context import RequestContext
    from worker_fakes import make_ctx

    (tmp_path / "index.html").write_text("<p>app</p>")
    app = make_app(tmp_path, CATCH_ALL, physical_path=str(tmp_path))
    sent = make_ctx(app, path="/index.html")
    head = msgspec.structs.replace(sent.head, target=b"/shop/7?x=1", query=b"x=1", rewritten=True)
    ctx = RequestContext(sent.channel, 7, head, app, True)
    app.pipeline.run_sync(ctx)
    events = events_of(ctx)
    opcodes = [op for op, _d in events]
    assert opcodes.index("URL_CHANGED") == opcodes.index("GENERAL_REQUEST_HEADERS") + 1, opcodes
    assert dict(events)["URL_CHANGED"] == {"OldUrl": "/shop/7?x=1", "NewUrl": "/index.html?x=1",
                                           "Scope": "Global"}
