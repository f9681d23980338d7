"""Failed Request Tracing (FREB) through a real server: rules per path with status codes and
time taken produce W3SVC<id>/frNNNNNN.xml with module events, the front's times, masked secrets;
max_log_files rotates; a rule that matches nothing writes nothing; `wasp list traces`."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
import requests

EV = "{http://schemas.microsoft.com/win/2004/08/events/event}"

CONFIG = """
{pool_timing}
[[pools]]
name = "Traced"

[[sites]]
name = "Traced Site"
id = 3
bindings = ["http/127.0.0.1:{port}:"]
[sites.trace_failed_requests_logging]
enabled = true
directory = "{dir}/freb"
max_log_files = 4
[[sites.trace_failed_requests]]
path = "*"
failure_definitions = { status_codes = "404.0, 500-599", time_taken = "300ms" }
[[sites.trace_failed_requests]]
path = "*.never"
failure_definitions = { status_codes = "200" }
[[sites.rewrite.rules]]
name = "moved"
match = { url = "^moved/(.*)$" }
action = { type = "Rewrite", url = "/gone-{R:1}" }
[[sites.applications]]
path = "/"
pool = "Traced"
physical_path = "www"
[[sites.applications]]
path = "/app"
pool = "Traced"
app = "freb_app:app"
python_path = ["{apps}"]
[[sites.applications]]
path = "/asgi"
pool = "Traced"
app = "freb_app:asgi"
python_path = ["{apps}"]

[[sites]]
name = "Quiet Site"
id = 4
bindings = ["http/127.0.0.1:{port}:quiet.test"]
[sites.trace_failed_requests_logging]
enabled = true
directory = "{dir}/freb"
[[sites.trace_failed_requests]]
path = "*.php"
failure_definitions = { status_codes = "400-599" }
[[sites.applications]]
path = "/"
pool = "Traced"
app = "freb_app:app"
python_path = ["{apps}"]
"""


@pytest.fixture(scope="module")
def server(wasp_module_server):
    www = wasp_module_server.dir / "www"
    www.mkdir()
    (www / "page.html").write_text("<p>page</p>")
    # A folder whose web.toml replaces the inherited rules: its .txt files are traced on a 200.
    (www / "sub").mkdir()
    (www / "sub" / "a.txt").write_text("sub file")
    (www / "sub" / "web.toml").write_text(
        '[trace_failed_requests]\nrules = { clear = true, add = [\n'
        '  { path = "*.txt", failure_definitions = { status_codes = "200" } } ] }\n')
    return wasp_module_server(CONFIG)


def site_dir(server, site_id: int):
    return server.dir / "freb" / f"W3SVC{site_id}"


def files(server, site_id: int) -> list[str]:
    folder = site_dir(server, site_id)
    return sorted(p.name for p in folder.glob("fr*.xml")) if folder.exists() else []


def wait_files(server, site_id: int, count: int) -> list[str]:
    server.wait_until(lambda: len(files(server, site_id)) >= count, timeout=20,
                      what=f"{count} trace files")
    return files(server, site_id)


def events(path):
    root = ET.parse(path).getroot()
    rows = []
    for event in root.findall(f"{EV}Event"):
        opcode = event.find(f"{EV}RenderingInfo/{EV}Opcode").text
        data = {d.get("Name"): d.text or "" for d in event.findall(f"{EV}EventData/{EV}Data")}
        rows.append((opcode, data))
    return root, rows


def fetch(server, path, host=None, **headers):
    if host:
        headers["Host"] = host
    return requests.get(server.url + path, headers=headers, timeout=30)


def test_a_404_and_a_slow_request_make_fr000001_and_fr000002(server):
    r = fetch(server, "/missing.html", Authorization="Basic c2VjcmV0OnB3", Cookie="sid=secret-cookie")
    assert r.status_code == 404, server.diagnostics()
    assert wait_files(server, 3, 1) == ["fr000001.xml"]
    assert fetch(server, "/app/slow").status_code == 200
    assert wait_files(server, 3, 2) == ["fr000001.xml", "fr000002.xml"]

    root, rows = events(site_dir(server, 3) / "fr000001.xml")
    assert root.tag == "failedRequest"
    assert root.get("statusCode") == "404" and root.get("triggerStatusCode") == "404"
    assert root.get("failureReason") == "STATUS_CODE"
    assert root.get("siteId") == "3" and root.get("appPoolId") == "Traced"
    assert root.get("verb") == "GET" and root.get("url").endswith("/missing.html")
    assert int(root.get("processId")) in server.worker_pids("Traced")
    opcodes = [op for op, _ in rows]
    assert opcodes[0] == "FRONT_REQUEST_RECEIVED" and opcodes[-1] == "FRONT_RESPONSE_SENT"
    assert "GENERAL_REQUEST_START" in opcodes and "GENERAL_REQUEST_END" in opcodes
    starts = [d["ModuleName"] for op, d in rows if op == "NOTIFY_MODULE_START"]
    ends = [d["ModuleName"] for op, d in rows if op == "NOTIFY_MODULE_END"]
    assert "request_filtering" in starts and starts == ends
    # IIS's own 404 for a missing file: "IIS Web Core" in MapRequestHandler (0x10).
    status = [d for op, d in rows if op == "MODULE_SET_RESPONSE_ERROR_STATUS"]
    assert status and status[0]["ModuleName"] == "IIS Web Core" and status[0]["HttpStatus"] == "404"
    assert status[0]["Notification"] == "16"
    # The StaticFile area (issue 11 item 5): the handler that lacked its file, and why.
    static = [(op, d) for op, d in rows if op.startswith("STATIC_FILE_")]
    assert [op for op, _ in static] == ["STATIC_FILE_START", "STATIC_FILE_END"]
    assert static[0][1]["Handler"] == "static_file"
    assert static[1][1]["Successful"] == "false" and static[1][1]["Reason"] == "FILE_NOT_FOUND"
    assert "AUTH_REQUEST_AUTH_TYPE" in opcodes and "c2VjcmV0OnB3" not in str(rows)
    headers = next(d["Headers"] for op, d in rows if op == "GENERAL_REQUEST_HEADERS")
    assert "secret" not in headers and "c2VjcmV0OnB3" not in headers
    assert "Authorization: [masked by wasp]" in headers
    text = (site_dir(server, 3) / "fr000001.xml").read_text()
    assert 'xmlns:freb="http://schemas.microsoft.com/win/2006/06/iis/freb"' in text
    assert "secret-cookie" not in text

    root, rows = events(site_dir(server, 3) / "fr000002.xml")
    assert root.get("failureReason") == "TIME_TAKEN" and root.get("statusCode") == "200"
    assert int(root.get("timeTaken")) >= 400
    app = [d for op, d in rows if op == "NOTIFY_MODULE_END" and d["ModuleName"] == "python_app"]
    assert app and app[0]["NotificationStatus"] in ("NOTIFICATION_CONTINUE", "NOTIFICATION_FINISH_REQUEST")
    sent = next(d for op, d in rows if op == "FRONT_RESPONSE_SENT")
    assert float(sent["WorkerTime"].split()[0]) >= 400
    assert "secret-cookie" not in (site_dir(server, 3) / "fr000002.xml").read_text()


def test_an_app_error_names_the_module_and_is_an_error_event(server):
    before = files(server, 3)
    assert fetch(server, "/app/boom").status_code == 500
    server.wait_until(lambda: files(server, 3) != before, timeout=20, what="a new trace")
    root, rows = events(site_dir(server, 3) / files(server, 3)[-1])
    assert root.get("statusCode") == "500"
    errors = [d for op, d in rows if op == "MODULE_ERROR"]
    assert errors and errors[0]["ModuleName"] == "python_app" and "boom from the app" in errors[0]["ErrorText"]


def newest_after(server, before):
    server.wait_until(lambda: files(server, 3) and files(server, 3)[-1] not in before,
                      timeout=20, what="a new trace")
    return events(site_dir(server, 3) / files(server, 3)[-1])


def test_a_web_toml_s_rules_apply_to_its_folder(server):
    before = files(server, 3)
    assert fetch(server, "/sub/a.txt").status_code == 200
    root, _rows = newest_after(server, before)
    assert root.get("url").endswith("/sub/a.txt") and root.get("statusCode") == "200"
    before = files(server, 3)
    assert fetch(server, "/sub/missing.html").status_code == 404  # the site's rules are cleared
    assert fetch(server, "/missing-marker.html").status_code == 404
    root, _rows = newest_after(server, before)
    assert root.get("url").endswith("/missing-marker.html")
    assert not any(events(site_dir(server, 3) / n)[0].get("url").endswith("/sub/missing.html")
                   for n in files(server, 3))


def test_a_rewritten_url_s_trace_shows_the_rule_and_the_url_change(server):
    """The Rewrite area (issue 11 item 5): URL Rewrite's rule-by-rule events and URL_CHANGED."""
    before = files(server, 3)
    assert fetch(server, "/moved/page.html").status_code == 404   # /gone-page.html is missing
    root, rows = newest_after(server, before)
    assert root.get("url").endswith("/moved/page.html")
    opcodes = [op for op, _ in rows]
    rewrite = [op for op in opcodes if op in (
        "URL_REWRITE_START", "RULE_EVALUATION_START", "PATTERN_MATCH", "REWRITE_ACTION",
        "RULE_EVALUATION_END", "URL_REWRITE_END", "URL_CHANGED")]
    assert rewrite == ["URL_REWRITE_START", "RULE_EVALUATION_START", "PATTERN_MATCH",
                       "REWRITE_ACTION", "RULE_EVALUATION_END", "URL_REWRITE_END", "URL_CHANGED"]
    data = dict(rows)
    assert data["RULE_EVALUATION_START"]["RuleName"] == "moved"
    assert data["PATTERN_MATCH"] == {"Pattern": "^moved/(.*)$", "Input": "moved/page.html",
                                     "Negate": "false", "Matched": "true"}
    assert data["URL_CHANGED"] == {"OldUrl": "/moved/page.html", "NewUrl": "/gone-page.html",
                                   "Scope": "Distributed"}
    # the rewrite runs in BEGIN_REQUEST, before the static file handler looks for the new URL
    assert opcodes.index("URL_CHANGED") < opcodes.index("STATIC_FILE_START")


def test_an_asgi_app_s_404_has_its_handler_span(server):
    before = files(server, 3)
    assert fetch(server, "/asgi/gone").status_code == 404
    root, rows = newest_after(server, before)
    assert root.get("url").endswith("/asgi/gone") and root.get("statusCode") == "404"
    spans = [(op, d.get("ModuleName")) for op, d in rows if op.startswith("NOTIFY_MODULE")]
    assert ("NOTIFY_MODULE_START", "python_app") in spans and ("NOTIFY_MODULE_END", "python_app") in spans
    status = next(d for op, d in rows if op == "MODULE_SET_RESPONSE_ERROR_STATUS")
    assert status["ModuleName"] == "python_app"


def test_a_rule_that_matches_nothing_writes_nothing(server):
    for _ in range(3):
        assert fetch(server, "/page.html").status_code == 200
        assert fetch(server, "/missing", host="quiet.test").status_code == 200
        assert fetch(server, "/gone", host="quiet.test").status_code == 404  # not *.php
    assert fetch(server, "/x.php", host="quiet.test").status_code == 200  # *.php, but a 200
    # A traced request after them: by the time its file is there, theirs would be too.
    before = len(files(server, 3))
    assert fetch(server, "/missing2.html").status_code == 404
    server.wait_until(lambda: len(files(server, 3)) != before or len(files(server, 3)) == 4,
                      timeout=20, what="the marker trace")
    assert files(server, 4) == []


def test_max_log_files_keeps_the_newest(server):
    for i in range(6):
        assert fetch(server, f"/rot{i}.html").status_code == 404
    server.wait_until(lambda: any(events(site_dir(server, 3) / name)[0].get("url").endswith("/rot5.html")
                                  for name in files(server, 3)), timeout=20, what="the last trace")
    names = files(server, 3)
    assert len(names) == 4
    numbers = [int(n[2:8]) for n in names]
    assert numbers == list(range(numbers[0], numbers[0] + 4)) and numbers[0] > 1


def test_wasp_list_traces(server):
    rows = json.loads(server.cli("list", "traces", "--json").stdout)
    assert rows and all(r["site_name"] == "Traced Site" for r in rows)
    assert {"name", "url", "statuscode", "wp", "failure_reason", "time_taken"} <= set(rows[0])
    text = server.cli("list", "traces").stdout.splitlines()
    assert text[0].startswith('TRACE "Traced Site/fr') and "statuscode:404" in "".join(text)
    only = json.loads(server.cli("list", "traces", "--site", "Quiet Site", "--json").stdout)
    assert only == []
    assert json.loads(server.cli("list", "traces", "--site", "3", "--json").stdout) == rows
    missing = server.cli("list", "traces", "--site", "Nope", check=False)
    assert missing.returncode == 1
    assert 'Cannot find SITE object with identifier "Nope".' in missing.stderr


def test_an_http2_request_s_trace_has_the_front_s_times_and_protocol(server):
    """h2c with prior knowledge (curl): the trace comes with the front's times and says HTTP/2."""
    import subprocess
    out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null",
                          "-w", "%{http_code} %{http_version}", server.url + "/missing-h2.html"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout == "404 2", (out.stdout, out.stderr)

    def mine():
        for name in files(server, 3):
            root, rows = events(site_dir(server, 3) / name)
            if root.get("url").endswith("/missing-h2.html") and rows[-1][0] == "FRONT_RESPONSE_SENT":
                return root, rows
        return None
    server.wait_until(lambda: mine() is not None, timeout=20, what="the h2 request's trace")
    root, rows = mine()
    assert root.get("statusCode") == "404"
    received = rows[0][1]
    assert rows[0][0] == "FRONT_REQUEST_RECEIVED" and received["Protocol"] == "HTTP/2"
    sent = rows[-1][1]
    assert sent["FrontTimeAfterWorker"].endswith(" ms") and int(sent["BytesSent"]) > 0
    assert "STATIC_FILE_END" in [op for op, _ in rows]
