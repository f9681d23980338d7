"""`wasp list requests` shows where a dispatched request is in the worker's pipeline: the manager
asks the front (url, client, time, worker and stream) and each worker (stage, module, thread) and
joins the two, printed the way appcmd prints a request."""

from __future__ import annotations

import re

from exec_support import exec_config, in_background

LINE = re.compile(r'^REQUEST "\d+" \(url:GET /wait, time:\d+ msec, client:127\.0\.0\.1, '
                  r'stage:ExecuteRequestHandler, module:python_app\)$')


def _release_and_check(server, outcome) -> None:
    (server.dir / "release").write_text("go")
    server.wait_until(lambda: outcome, 30, what="the released request")
    assert outcome == {"status": 200}


def test_list_requests_shows_the_worker_stage_and_module(wasp_server):
    server = wasp_server(exec_config("execwsgi:app"))
    outcome = in_background(server, "/wait")

    def executing():
        rows = [r for r in server.list_json("requests") if r.get("url") == "/wait"]
        return rows if rows and rows[0].get("module") == "python_app" else None

    [row] = server.wait_until(executing, 15, what=lambda: server.list_json("requests"))
    assert row["stage"] == "ExecuteRequestHandler"
    assert row["worker_id"] is not None and row["stream"]
    assert row["thread"].startswith("wsgi-")
    assert row["pool"] == "P" and row["method"] == "GET"
    # The application's module list (no content: no static file or default document).
    assert row["modules"] == ("protocol_support,request_filtering,dynamic_compression,"
                              "anonymous_authentication,custom_error,python_app")

    text = server.cli("list", "requests").stdout.strip().splitlines()
    assert any(LINE.match(line) for line in text), text
    _release_and_check(server, outcome)
    server.wait_until(lambda: server.list_json("requests") == [], 15, what="no request in flight")


def test_list_requests_for_an_asgi_app(wasp_server):
    server = wasp_server(exec_config("execasgi:app"))
    outcome = in_background(server, "/wait")

    def executing():
        rows = [r for r in server.list_json("requests") if r.get("url") == "/wait"]
        return rows if rows and rows[0].get("module") == "python_app" else None

    [row] = server.wait_until(executing, 15, what=lambda: server.list_json("requests"))
    assert row["stage"] == "ExecuteRequestHandler" and row["thread"] == ""
    text = server.cli("list", "requests").stdout.strip().splitlines()
    assert any(LINE.match(line) for line in text), text
    _release_and_check(server, outcome)
