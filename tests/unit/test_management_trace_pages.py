"""The management site's FREB pages: parsing a trace safely, the timeline and the escaping
(wasp/management/freb_view.py), and the admin API's single-trace read with its file-name checks
(wasp/manager/traces.py)."""

from __future__ import annotations

import asyncio
import os
import types

import pytest

from wasp.common import freb
from wasp.management import freb_view
from wasp.manager import traces
from wasp.manager.admin import RouteError, Text, route

T0 = 1_780_000_000_000_000_000


def trace_bytes(url="http://127.0.0.1:8080/a.py", events=None) -> bytes:
    if events is None:
        events = [
            (T0, 7, "FRONT_REQUEST_RECEIVED", (("FrontTimeBeforeWorker", "0.2"),)),
            (T0 + 1000, 7, "GENERAL_REQUEST_START", (("RequestURL", url), ("RequestVerb", "GET"))),
            (T0 + 10_000, 7, "NOTIFY_MODULE_START", (("ModuleName", "request_filtering"),
                                                     ("Notification", 1), ("fIsPostNotification", "false"))),
            (T0 + 60_000, 7, "NOTIFY_MODULE_END", (("ModuleName", "request_filtering"), ("Notification", 1),
                                                   ("fIsPostNotification", "false"),
                                                   ("NotificationStatus", "NOTIFICATION_CONTINUE"))),
            (T0 + 100_000, 7, "NOTIFY_MODULE_START", (("ModuleName", "python_app"), ("Notification", 0x80),
                                                      ("fIsPostNotification", "false"))),
            (T0 + 100_500, 7, "MODULE_SET_RESPONSE_ERROR_STATUS", (("ModuleName", "python_app"),
                                                                   ("Notification", 0x80), ("HttpStatus", 500))),
            (T0 + 2_100_000, 7, "NOTIFY_MODULE_END", (("ModuleName", "python_app"), ("Notification", 0x80),
                                                      ("fIsPostNotification", "false"),
                                                      ("NotificationStatus", "NOTIFICATION_CONTINUE"))),
            (T0 + 2_200_000, 7, "GENERAL_RESPONSE_HEADERS", (("Headers", "Content-Type: text/html\r\nX-A: <b>\r\n"),)),
            (T0 + 3_000_000, 7, "FRONT_RESPONSE_SENT", (("FrontTimeBeforeWorker", "0.2"), ("WorkerTime", "2.1"),
                                                        ("FrontTimeAfterWorker", "0.3 ms"))),
        ]
    attributes = [("url", url), ("siteId", 1), ("appPoolId", "Pool<1>"), ("processId", 42),
                  ("verb", "GET"), ("failureReason", "STATUS_CODE"), ("statusCode", "500"),
                  ("triggerStatusCode", "500"), ("timeTaken", 3)]
    record = freb.TraceRecord(attributes, events, "{00000000-0000-0000-0001-000000000001}", 42, 1,
                              "/nowhere", 50, 1024 * 1024)
    return freb.render(record)


def test_parse_reads_attributes_and_events():
    trace = freb_view.parse(trace_bytes())
    assert trace.attributes["url"] == "http://127.0.0.1:8080/a.py"
    assert trace.attributes["appPoolId"] == "Pool<1>"
    assert [e.opcode for e in trace.events][:3] == ["FRONT_REQUEST_RECEIVED", "GENERAL_REQUEST_START",
                                                    "NOTIFY_MODULE_START"]
    assert trace.events[0].provider == "wasp front" and trace.events[1].provider == "WWW Server"
    assert trace.events[1].t_ns - trace.events[0].t_ns == 1000


def test_spans_pair_enter_and_leave_per_notification():
    spans = freb_view.spans(freb_view.parse(trace_bytes()))
    assert [(s["module"], s["notification"], s["start"], s["end"]) for s in spans] == [
        ("request_filtering", "BEGIN_REQUEST", 10_000, 60_000),
        ("python_app", "EXECUTE_REQUEST_HANDLER", 100_000, 2_100_000)]
    assert spans[0]["status"] == "NOTIFICATION_CONTINUE"


def test_a_start_without_end_runs_to_the_last_event():
    events = [(T0, 1, "NOTIFY_MODULE_START", (("ModuleName", "m"), ("Notification", 1),
                                              ("fIsPostNotification", "false"))),
              (T0 + 5000, 1, "GENERAL_REQUEST_END", (("HttpStatus", 500),))]
    spans = freb_view.spans(freb_view.parse(trace_bytes(events=events)))
    assert spans == [{"module": "m", "notification": "BEGIN_REQUEST", "post": False, "start": 0,
                      "end": 5000, "status": ""}]


def test_summary_names_the_module_that_set_the_status_and_the_times():
    rows = dict(freb_view.summary(freb_view.parse(trace_bytes())))
    assert rows["Status"] == "500" and rows["App pool"] == "Pool<1>"
    assert rows["Status set by"] == "python_app (EXECUTE_REQUEST_HANDLER)"
    assert rows["App's time"] == "2.000 ms"
    assert rows["Front before worker"] == "0.2 ms" and rows["Front after worker"] == "0.3 ms"
    assert rows["Worker"] == "2.1 ms" and rows["Time taken"] == "3 ms"


def test_page_has_the_timeline_and_escapes_everything():
    url = 'http://h/<script>alert(1)</script>?"x"'
    html = freb_view.page(freb_view.parse(trace_bytes(url=url)), "1", "fr000001.xml",
                          "/trace/raw?site=1&name=fr000001.xml")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Pool&lt;1&gt;" in html and "X-A: &lt;b&gt;" in html
    assert '<svg id="timeline"' in html and html.count('<rect class=') == 2
    assert 'class="bar-app"' in html
    assert 'href="/trace/raw?site=1&amp;name=fr000001.xml"' in html


def test_unknown_events_are_listed_generically():
    data = trace_bytes().replace(b"<Opcode>GENERAL_RESPONSE_HEADERS</Opcode>",
                                 b"<Opcode>SOME_NEW_EVENT</Opcode>")
    html = freb_view.page(freb_view.parse(data), "1", "fr000001.xml", "/x")
    assert "SOME_NEW_EVENT" in html and "Content-Type: text/html" in html


def test_no_module_events_says_so():
    events = [(T0, 1, "GENERAL_REQUEST_START", (("RequestURL", "/"),))]
    html = freb_view.page(freb_view.parse(trace_bytes(events=events)), "1", "fr000001.xml", "/x")
    assert 'id="timeline-empty"' in html


@pytest.mark.parametrize("data", [
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><failedRequest url="&b;"/>',
    b'<?xml version="1.0"?><!DOCTYPE r SYSTEM "file:///etc/passwd"><failedRequest/>',
    b'<?xml version="1.0"?>\n<!doctype failedRequest><failedRequest/>',
    b"<failedRequest url='x'>",  # not well-formed
    b"<html><body/></html>",  # not a trace
    b"",
])
def test_bad_or_hostile_xml_is_refused(data):
    with pytest.raises(freb_view.BadTrace):
        freb_view.parse(data)


# ---- the admin API: GET /traces/<site>/<file> ----

def test_route_for_one_trace():
    assert route("GET", "/traces/1/fr000001.xml") == ("trace_file", {"site": "1", "file": "fr000001.xml"})
    with pytest.raises(RouteError):
        route("POST", "/traces/1/fr000001.xml")


def config_for(tmp_path):
    site = types.SimpleNamespace(id=3, name="S", trace_failed_requests_logging=types.SimpleNamespace(
        directory=str(tmp_path / "FailedReqLogFiles")))
    return types.SimpleNamespace(sites=[site])


def test_one_trace_is_read_by_site_id_or_name(tmp_path):
    folder = tmp_path / "FailedReqLogFiles" / "W3SVC3"
    folder.mkdir(parents=True)
    (folder / "fr000001.xml").write_bytes(trace_bytes())
    for site in ("3", "S"):
        status, payload = asyncio.run(traces.one(config_for(tmp_path), site, "fr000001.xml"))
        assert status == 200 and isinstance(payload, Text)
        assert payload.content_type.startswith("application/xml")
        assert payload.body.encode() == trace_bytes()
    assert asyncio.run(traces.one(config_for(tmp_path), "9", "fr000001.xml"))[0] == 404
    assert asyncio.run(traces.one(config_for(tmp_path), "3", "fr000002.xml"))[0] == 404


@pytest.mark.parametrize("name", ["../fr000001.xml", "..", "/etc/passwd", "fr000001.xml\x00",
                                  "fr000001.xml\n", "fr1.xml", "W3SVC3/fr000001.xml", "freb.xsl",
                                  "FR000001.XML", "fr000001.xml/..", "", ".fr-1-2.tmp"])
def test_bad_file_names_are_refused(tmp_path, name):
    assert asyncio.run(traces.one(config_for(tmp_path), "3", name))[0] == 400
    with pytest.raises(ValueError):
        traces.read_trace(str(tmp_path), name)


def test_a_symlink_out_of_the_folder_is_not_followed(tmp_path):
    folder = tmp_path / "FailedReqLogFiles" / "W3SVC3"
    folder.mkdir(parents=True)
    secret = tmp_path / "secret.xml"
    secret.write_bytes(b"<failedRequest secret='1'/>")
    os.symlink(secret, folder / "fr000001.xml")
    os.mkdir(folder / "fr000002.xml")  # not a regular file either
    for name in ("fr000001.xml", "fr000002.xml"):
        assert asyncio.run(traces.one(config_for(tmp_path), "3", name))[0] == 404


def test_listing_has_dates(tmp_path):
    folder = tmp_path / "FailedReqLogFiles" / "W3SVC3"
    folder.mkdir(parents=True)
    (folder / "fr000001.xml").write_bytes(trace_bytes())
    status, rows = asyncio.run(traces.answer(config_for(tmp_path), {}))
    assert status == 200 and rows[0]["date"].endswith("Z") and rows[0]["statuscode"] == "500"


def test_a_utf16_doctype_cannot_slip_past():
    data = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY a "x">]><failedRequest/>'
    with pytest.raises(freb_view.BadTrace):
        freb_view.parse(data.encode("utf-16"))


# ---- the management app: /api/traces (filter, newest first, pages) and /trace ----

class FakeAdmin:
    """The admin API as the manager answers it (wasp/manager/traces.py) over the trace folder
    of `config`; trace files are read for real."""

    def __init__(self, config, raw=(200, "application/xml", b"")):
        self.config = config
        self.raw = raw
        self.calls = []

    def call(self, method, target, body=None):
        import urllib.parse

        self.calls.append(target)
        path, _, query = target.partition("?")
        assert method == "GET" and path == "/traces"
        return asyncio.run(traces.answer(self.config, dict(urllib.parse.parse_qsl(query))))

    def call_raw(self, target):
        self.calls.append(target)
        return self.raw


def app_with(config, raw=(200, "application/xml", b"")):
    from wasp.management.app import ManagementApp

    app = ManagementApp({"run_dir": "/nonexistent"})
    app.admin = FakeAdmin(config, raw)
    return app


def listing(app, query=""):
    import json

    status, body = app.traces({"QUERY_STRING": query})
    return status, json.loads(body)


def write_traces(folder, n, t0=1_790_000_000):
    """n trace files fr000001..: odd numbers 404.2, even 500, written one second apart."""
    folder.mkdir(parents=True, exist_ok=True)
    data = trace_bytes()
    bodies = {"500": data, "404.2": data.replace(b'statusCode="500"', b'statusCode="404.2"', 1)}
    assert bodies["404.2"] != data
    for i in range(1, n + 1):
        path = folder / f"fr{i:06d}.xml"
        path.write_bytes(bodies["404.2" if i % 2 else "500"])
        os.utime(path, (t0 + i, t0 + i))


def traced(tmp_path, n):
    config = config_for(tmp_path)
    write_traces(tmp_path / "FailedReqLogFiles" / "W3SVC3", n)
    traces.HEADS.clear()
    return config


def test_traces_are_newest_first_in_pages_of_50(tmp_path):
    app = app_with(traced(tmp_path, 120))
    status, body = listing(app)
    assert status == "200 OK" and body["total"] == 120 and body["per_page"] == 50
    assert body["rows"][0]["file"] == "fr000120.xml" and len(body["rows"]) == 50
    assert [r["file"] for r in body["rows"][:2]] == ["fr000120.xml", "fr000119.xml"]
    assert all("path" not in r and r["date"].endswith("Z") and r["site_id"] == 3 for r in body["rows"])
    assert listing(app, "page=3")[1]["rows"][-1]["file"] == "fr000001.xml"
    assert len(listing(app, "page=3")[1]["rows"]) == 20
    assert listing(app, "page=4")[1]["rows"] == []


def test_traces_filter_by_status_and_pass_the_site_on(tmp_path):
    app = app_with(traced(tmp_path, 10))
    assert listing(app, "status=404")[1]["total"] == 5
    assert listing(app, "status=404.2")[1]["total"] == 5
    assert {r["statuscode"] for r in listing(app, "status=404.2")[1]["rows"]} == {"404.2"}
    assert listing(app, "status=404.1")[1]["total"] == 0
    assert listing(app, "status=5")[1]["total"] == 5
    assert listing(app, "status=50")[1]["total"] == 5
    assert listing(app, "status=500")[1]["total"] == 5
    assert listing(app, "status=40")[1]["rows"][0]["file"] == "fr000009.xml"
    assert listing(app, "site=S")[1]["total"] == 10
    assert app.admin.calls[-1] == "/traces?page=1&per_page=50&site=S"
    status, body = listing(app, "site=S%20x")
    assert status.startswith("404") and app.admin.calls[-1] == "/traces?page=1&per_page=50&site=S+x"


def test_a_page_reads_only_its_own_heads(tmp_path, monkeypatch):
    """5000 traces: a page reads 50 heads; a status filter reads every head once, then the cache
    answers until a file changes (mtime, size)."""
    import time

    config = traced(tmp_path, 5000)
    read = []
    real = freb.read_root
    monkeypatch.setattr(freb, "read_root", lambda path: read.append(path) or real(path))
    app = app_with(config)
    began = time.perf_counter()
    status, body = listing(app, "page=2")
    first_page = time.perf_counter() - began
    assert body["total"] == 5000 and body["rows"][0]["file"] == "fr004950.xml" and len(read) == 50
    read.clear()
    listing(app, "page=100")
    assert len(read) == 50 and listing(app, "page=100")[1]["rows"][-1]["file"] == "fr000001.xml"
    traces.HEADS.clear()
    read.clear()
    began = time.perf_counter()
    body = listing(app, "status=404.2")[1]
    filtered_cold = time.perf_counter() - began
    assert body["total"] == 2500 and len(read) == 5000 and body["rows"][0]["file"] == "fr004999.xml"
    read.clear()
    began = time.perf_counter()
    body = listing(app, "status=404.2&page=50")[1]
    filtered_warm = time.perf_counter() - began
    assert len(read) == 0 and body["rows"][-1]["file"] == "fr000001.xml"
    changed = tmp_path / "FailedReqLogFiles" / "W3SVC3" / "fr004999.xml"
    changed.write_bytes(changed.read_bytes().replace(b'statusCode="404.2"', b'statusCode="500"', 1))
    body = listing(app, "status=404.2")[1]
    assert body["total"] == 2499 and read == [str(changed)]
    print(f"\n5000 traces: page 2 {first_page * 1000:.1f} ms, status filter cold "
          f"{filtered_cold * 1000:.1f} ms, warm {filtered_warm * 1000:.1f} ms")


def test_several_sites_are_merged_newest_first(tmp_path):
    site = types.SimpleNamespace(id=4, name="T", trace_failed_requests_logging=types.SimpleNamespace(
        directory=str(tmp_path / "FailedReqLogFiles")))
    config = config_for(tmp_path)
    config.sites.append(site)
    for site_id, offset in ((3, 0), (4, 5)):   # S's files at t+10, +20, +30; T's at +15, +25, +35
        folder = tmp_path / "FailedReqLogFiles" / f"W3SVC{site_id}"
        write_traces(folder, 3)
        for i in (1, 2, 3):
            os.utime(folder / f"fr{i:06d}.xml", (1_790_000_000 + 10 * i + offset,) * 2)
    traces.HEADS.clear()
    status, body = asyncio.run(traces.answer(config, {"page": "1", "per_page": "4"}))
    assert status == 200 and body["total"] == 6
    assert [r["name"] for r in body["rows"]] == ["T/fr000003.xml", "S/fr000003.xml", "T/fr000002.xml",
                                                 "S/fr000002.xml"]
    body = asyncio.run(traces.answer(config, {"page": "2", "per_page": "4"}))[1]
    assert [r["name"] for r in body["rows"]] == ["T/fr000001.xml", "S/fr000001.xml"]
    # The CLI's listing (no page) is still every trace, oldest first, per site.
    rows = asyncio.run(traces.answer(config, {}))[1]
    assert [r["name"] for r in rows][:2] == ["S/fr000001.xml", "S/fr000002.xml"] and len(rows) == 6


@pytest.mark.parametrize("query", [{"page": "0"}, {"page": "x"}, {"page": "1", "per_page": "501"},
                                   {"page": "1", "per_page": "0"}, {"page": "1", "status": "4x"},
                                   {"page": "1", "status": "600"}])
def test_bad_paged_queries_are_400_at_the_admin_api(tmp_path, query):
    assert asyncio.run(traces.answer(traced(tmp_path, 1), query))[0] == 400


def test_a_file_that_is_not_a_trace_or_a_symlink_is_left_out_of_the_page(tmp_path):
    config = traced(tmp_path, 3)
    folder = tmp_path / "FailedReqLogFiles" / "W3SVC3"
    (folder / "fr000004.xml").write_bytes(b"not a trace")
    (tmp_path / "outside.xml").write_bytes(trace_bytes())
    (folder / "fr000005.xml").symlink_to(tmp_path / "outside.xml")
    body = asyncio.run(traces.answer(config, {"page": "1"}))[1]
    assert [r["file"] for r in body["rows"]] == ["fr000003.xml", "fr000002.xml", "fr000001.xml"]


@pytest.mark.parametrize("query", ["status=abc", "status=404;x", "page=0", "page=x", "status=%00"])
def test_bad_traces_queries_are_400(tmp_path, query):
    from wasp.management.app import Response

    with pytest.raises(Response) as info:
        app_with(traced(tmp_path, 1)).traces({"QUERY_STRING": query})
    assert info.value.status.startswith("400")


@pytest.mark.parametrize("query", ["site=1&name=../fr000001.xml", "site=1&name=fr000001.xml%00",
                                   "site=../1&name=fr000001.xml", "site=1&name=%2Fetc%2Fpasswd",
                                   "site=1", "name=fr000001.xml"])
def test_the_trace_page_checks_its_query_before_asking(query):
    from wasp.management.app import Response

    app = app_with(None)
    with pytest.raises(Response) as info:
        app.trace_page({"QUERY_STRING": query}, "GET", raw=False)
    assert info.value.status.startswith("400") and app.admin.calls == []


def test_the_trace_page_renders_and_the_raw_is_an_attachment():
    from wasp.management.app import Response

    data = trace_bytes(url="http://h/<script>x</script>")
    app = app_with(None, raw=(200, "application/xml", data))
    status, body, kind = app.trace_page({"QUERY_STRING": "site=1&name=fr000001.xml"}, "GET", raw=False)
    assert status == "200 OK" and kind.startswith("text/html") and b"&lt;script&gt;x" in body
    assert app.admin.calls == ["/traces/1/fr000001.xml"]
    with pytest.raises(Response) as info:
        app.trace_page({"QUERY_STRING": "site=1&name=fr000001.xml"}, "GET", raw=True)
    assert info.value.body == data and ("Content-Disposition", 'attachment; filename="fr000001.xml"') in info.value.headers
    hostile = app_with(None, raw=(200, "application/xml", b'<!DOCTYPE x [<!ENTITY a "b">]><failedRequest/>'))
    with pytest.raises(Response) as info:
        hostile.trace_page({"QUERY_STRING": "site=1&name=fr000001.xml"}, "GET", raw=False)
    assert info.value.status.startswith("422")
