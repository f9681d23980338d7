"""Failed Request Traces on the management site through a real server: a FREB rule, a failing
request, the Traces page lists it and the trace page renders its module timeline (requests and
Playwright in Debian's Chromium); the admin API refuses file names that are not a trace's."""

from __future__ import annotations

import http.client
import os
import re
import urllib.parse

import pytest
import requests

from wasp.management.client import Admin

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"

CONFIG = """
{pool_timing}
[management]
enabled = true
bindings = ["http/127.0.0.1:MGMT_PORT:"]

[[pools]]
name = "Traced"

[[sites]]
name = "Traced Site"
id = 5
bindings = ["http/127.0.0.1:{port}:"]
[sites.trace_failed_requests_logging]
enabled = true
directory = "{dir}/freb"
[[sites.trace_failed_requests]]
path = "*"
failure_definitions = { status_codes = "500-599" }
[[sites.applications]]
path = "/"
pool = "Traced"
app = "freb_app:app"
python_path = ["{apps}"]
"""

LINK = re.compile(r"The management site is at (http://\S+/login\?token=\S+)")


@pytest.fixture(scope="module")
def server(wasp_module_server):
    mgmt_port = wasp_module_server.free_port()
    srv = wasp_module_server(CONFIG.replace("MGMT_PORT", str(mgmt_port)))
    srv.mgmt = f"http://127.0.0.1:{mgmt_port}"
    srv.wait_until(lambda: LINK.search(srv.log_tail(200)), 20, what="the login link")
    srv.wait_until(lambda: _answers(srv.mgmt + "/login"), 30, what="the management site")
    # Two failing requests: an app that raises, and one whose URL carries markup.
    assert requests.get(srv.url + "/boom", timeout=30).status_code == 500, srv.diagnostics()
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.request("GET", "/x/boom?q=<script>alert(1)</script>")
        assert conn.getresponse().status == 500, srv.diagnostics()
    finally:
        conn.close()
    folder = srv.dir / "freb" / "W3SVC5"
    srv.wait_until(lambda: len(list(folder.glob("fr*.xml"))) >= 2, 20, what="two trace files")
    return srv


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def login(server) -> requests.Session:
    link = server.cli("management", "token").stdout.split()[0]
    s = requests.Session()
    r = s.get(link, timeout=30)
    assert r.status_code == 200 and "wasp Manager" in r.text
    return s


def test_the_traces_api_lists_newest_first_and_filters(server):
    s = login(server)
    answer = s.get(server.mgmt + "/api/traces", timeout=30).json()
    assert answer["total"] == 2
    files = [row["file"] for row in answer["rows"]]
    assert files == ["fr000002.xml", "fr000001.xml"]
    assert {row["statuscode"] for row in answer["rows"]} == {"500"}
    assert all(row["site_id"] == 5 and row["date"] and "path" not in row for row in answer["rows"])
    assert s.get(server.mgmt + "/api/traces?status=404", timeout=30).json()["total"] == 0
    assert s.get(server.mgmt + "/api/traces?status=5&site=5", timeout=30).json()["total"] == 2
    assert s.get(server.mgmt + "/api/traces?status=x", timeout=30).status_code == 400
    assert s.get(server.mgmt + "/api/traces?site=99", timeout=30).status_code == 404


def test_the_trace_page_renders_the_timeline_and_escapes_the_url(server):
    s = login(server)
    page = s.get(server.mgmt + "/trace?site=5&name=fr000001.xml", timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert '<svg id="timeline"' in page.text and "python_app" in page.text
    assert "EXECUTE_REQUEST_HANDLER" in page.text and "MODULE_ERROR" in page.text
    assert "Front before worker" in page.text
    marked = s.get(server.mgmt + "/trace?site=5&name=fr000002.xml", timeout=30).text
    assert "<script>alert(1)" not in marked and "&lt;script&gt;alert(1)&lt;/script&gt;" in marked
    raw = s.get(server.mgmt + "/trace/raw?site=5&name=fr000001.xml", timeout=30)
    assert raw.status_code == 200 and raw.headers["Content-Disposition"].startswith("attachment")
    assert raw.content == (server.dir / "freb" / "W3SVC5" / "fr000001.xml").read_bytes()


@pytest.mark.parametrize("name", ["../../wasp.toml", "/etc/passwd", "fr000001.xml%00", "freb.xsl",
                                  "fr000001.xml%0a", "..%2Ffr000001.xml"])
def test_bad_trace_names_are_refused(server, name):
    s = login(server)
    r = s.get(server.mgmt + f"/trace?site=5&name={name}", timeout=30)
    assert r.status_code == 400
    r = s.get(server.mgmt + f"/trace/raw?site=5&name={name}", timeout=30)
    assert r.status_code == 400


def test_the_admin_api_refuses_paths_and_symlinks(server, tmp_path):
    folder = server.dir / "freb" / "W3SVC5"
    secret = tmp_path / "secret.xml"
    secret.write_text("<failedRequest url='secret'/>")
    link = folder / "fr000999.xml"
    os.symlink(secret, link)
    try:
        s = login(server)
        r = s.get(server.mgmt + "/trace?site=5&name=fr000999.xml", timeout=30)
        assert r.status_code == 404 and "secret" not in r.text
        admin = Admin(str(server.run_dir))
        assert admin.call_raw("/traces/5/fr000999.xml")[0] == 404  # the symlink is not followed
        assert admin.call_raw("/traces/5/fr000001.xml")[0] == 200
        for target in ("/traces/5/fr000001.xml%00", "/traces/5/fr000001.xml%0A",
                       "/traces/5/%2e%2e", "/traces/5/fr000001.xml%20"):
            assert admin.call_raw(target)[0] == 400, target
        # A "/" decoded from %2F makes more path segments: no route at all.
        for target in ("/traces/5/..%2f..%2fwasp.toml", "/traces/5/W3SVC5%2Ffr000001.xml", "/traces/5/" + urllib.parse.quote(str(secret), safe="")):
            assert admin.call_raw(target)[0] == 404, target
        assert admin.call_raw("/traces/99/fr000001.xml")[0] == 404
    finally:
        link.unlink()


def test_no_login_no_trace(server):
    r = requests.get(server.mgmt + "/trace?site=5&name=fr000001.xml", timeout=30, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/login"


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")
def test_in_the_browser_open_traces_then_the_trace_and_see_the_timeline(server):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            pg = context.new_page()
            pg.set_default_timeout(30000)
            pg.goto(server.cli("management", "token").stdout.split()[0])
            pg.wait_for_selector("#overview-pools")
            pg.click("nav a[data-page=traces]")
            pg.wait_for_selector("#traces")
            assert "fr000002.xml" in pg.inner_text("#traces")
            assert "<script>alert(1)</script>" in pg.inner_text("#traces")  # shown as text
            pg.fill("#trace-status", "404")
            pg.press("#trace-status", "Enter")
            pg.wait_for_selector("#no-traces")
            pg.fill("#trace-status", "500")
            pg.press("#trace-status", "Enter")
            pg.wait_for_selector("#traces")
            if os.environ.get("WASP_SCREENSHOTS"):
                pg.screenshot(path=os.path.join(os.environ["WASP_SCREENSHOTS"], "traces.png"))
            pg.locator("a.trace-link", has_text="/boom").last.click()
            pg.wait_for_selector("#timeline")
            assert pg.locator("#timeline rect").count() >= 5
            assert "python_app" in pg.text_content("#timeline")
            assert "MODULE_ERROR" in pg.inner_text("#events")
            if os.environ.get("WASP_SCREENSHOTS"):
                pg.screenshot(path=os.path.join(os.environ["WASP_SCREENSHOTS"], "trace.png"), full_page=False)
            # The trace page has no script of its own: the URL's <script> must not become one.
            pg.goto(server.mgmt + "/trace?site=5&name=fr000002.xml")
            pg.wait_for_selector("#summary")
            assert pg.evaluate("() => document.querySelectorAll('script').length") == 0
            assert "<script>alert(1)</script>" in pg.inner_text("#summary")
            context.close()
        finally:
            browser.close()
