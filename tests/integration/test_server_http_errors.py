"""httpErrors pages, existing_response, httpRedirect and httpProtocol through a real server.

Custom error pages as File (with Accept-Language folders), ExecuteURL (a static page and a Flask
page run as child requests, keeping the original status) and Redirect; an app's own 404 kept or
replaced as existing_response says; an error page that itself fails gives the plain message; a
File page cannot leave its folder (".." and a symlink out), and a web.toml cannot name a file
outside the content. httpRedirect's destination, exact destination with $S/$Q, child_only,
the four statuses and wildcard rules, with a CR LF in the URL staying encoded in Location.
httpProtocol's custom and redirect headers, Server removal, keep-alive off for one folder,
OPTIONS from the handler mapping (the app answers its own) and TRACE refused.
"""

from __future__ import annotations

import os

import pytest
import requests

CONFIG = """
{pool_timing}
[[pools]]
name = "Errs"

[[sites]]
name = "Pages"
id = 1
bindings = ["http/127.0.0.1:{port}:pages.test"]
[sites.http_errors]
error_mode = "Custom"
errors = [
  { status_code = 404, path = "errors/404.html" },
  { status_code = 403, sub_status_code = 14, path = "403.htm", prefix_language_file_path = "custerr" },
  { status_code = 405, path = "/moved-405.html", response_mode = "Redirect" },
  { status_code = 404, sub_status_code = 3, path = "/errors/exec.html", response_mode = "ExecuteURL" },
]
[[sites.applications]]
path = "/"
pool = "Errs"
physical_path = "www"
[[sites.applications]]
path = "/app"
pool = "Errs"
app = "errors_app:app"
python_path = ["{apps}"]
[sites.applications.http_errors]
errors = { clear = true, add = [
  { status_code = 404, path = "/app/errors/page", response_mode = "ExecuteURL" },
  { status_code = 500, path = "/app/errors/failing", response_mode = "ExecuteURL" },
] }
[[sites.applications]]
path = "/replace"
pool = "Errs"
physical_path = "www"    # the site's File page is relative to the application's content
app = "errors_app:app"
python_path = ["{apps}"]
[sites.applications.http_errors]
existing_response = "Replace"
[[sites.applications]]
path = "/pass"
pool = "Errs"
app = "errors_app:app"
python_path = ["{apps}"]
[sites.applications.http_errors]
existing_response = "PassThrough"

[[sites.applications]]
path = "/asgi"
pool = "Errs"
app = "errors_asgi:app"
python_path = ["{apps}"]
[sites.applications.http_errors]
existing_response = "Replace"
errors = { clear = true, add = [
  { status_code = 404, path = "{dir}/www/errors/404.html" },
  { status_code = 500, path = "/asgi/page", response_mode = "ExecuteURL" },
] }

[[sites]]
name = "Traversal"
id = 2
bindings = ["http/127.0.0.1:{port}:trav.test"]
[sites.http_errors]
error_mode = "Custom"
errors = [
  { status_code = 404, path = "../secret.txt" },
  { status_code = 403, path = "link.html" },
]
[[sites.applications]]
path = "/"
pool = "Errs"
physical_path = "trav"

[[sites]]
name = "Redirect Site"
id = 3
bindings = ["http/127.0.0.1:{port}:redir.test"]
[[sites.applications]]
path = "/"
pool = "Errs"
physical_path = "www"

[[locations]]
path = "Redirect Site/old"
[locations.http_redirect]
enabled = true
destination = "http://new.example/base"

[[locations]]
path = "Redirect Site/exact"
[locations.http_redirect]
enabled = true
exact_destination = true
destination = "/landing.html$Q"
http_response_status = "Permanent"

[[locations]]
path = "Redirect Site/child"
[locations.http_redirect]
enabled = true
child_only = true
destination = "/moved"
http_response_status = "Temporary"

[[locations]]
path = "Redirect Site/wild"
[locations.http_redirect]
enabled = true
exact_destination = true
http_response_status = "PermRedirect"
rules = [{ wildcard = "*.php", destination = "/index.html" }]

[[sites]]
name = "Proto Site"
id = 4
bindings = ["http/127.0.0.1:{port}:proto.test"]
[sites.http_protocol]
remove_server_header = true
custom_headers = [{ name = "X-Frame-Options", value = "DENY" }]
redirect_headers = [{ name = "X-Redirected", value = "yes" }]
[[sites.applications]]
path = "/"
pool = "Errs"
physical_path = "www"
[[sites.applications]]
path = "/app"
pool = "Errs"
app = "errors_app:app"
python_path = ["{apps}"]

[[locations]]
path = "Proto Site/nokeep"
[locations.http_protocol]
allow_keep_alive = false

[[locations]]
path = "Proto Site/plain"
[locations.http_protocol]
custom_headers = { remove = ["x-frame-options"], add = [{ name = "X-Plain", value = "1" }] }
"""


@pytest.fixture(scope="module")
def server(wasp_module_server):
    base = wasp_module_server.dir
    www = base / "www"
    for folder in ("errors", "custerr/en-US", "custerr/fr-FR", "listing", "nokeep", "old/a",
                   "child", "wild", "dir", "delegated", "exact", "plain"):
        (www / folder).mkdir(parents=True, exist_ok=True)
    (www / "page.html").write_text("<p>page</p>")
    (www / "index.html").write_text("<p>index</p>")
    (www / "nokeep" / "page.html").write_text("<p>nokeep</p>")
    (www / "plain" / "page.html").write_text("<p>plain</p>")
    (www / "wild" / "web.toml").write_text(
        '[http_redirect]\nrules = [{ wildcard = "*.asp", destination = "/asp.html" }]\n')
    (www / "dir" / "index.html").write_text("<p>dir</p>")
    (www / "data.unknownext").write_text("x")
    (www / "errors" / "404.html").write_text("<h1>custom-404-file</h1>")
    (www / "errors" / "exec.html").write_text("<h1>executed-static-page</h1>")
    (www / "custerr" / "en-US" / "403.htm").write_text("english-403-14")
    (www / "custerr" / "fr-FR" / "403.htm").write_text("french-403-14")
    (www / "delegated" / "web.toml").write_text(
        '[http_errors]\nerrors = [{ status_code = 404, path = "/etc/passwd" }]\n')
    trav = base / "trav"
    trav.mkdir()
    (base / "secret.txt").write_text("top-secret-outside")
    os.symlink(base / "secret.txt", trav / "link.html")
    (trav / "listing").mkdir()
    return wasp_module_server(CONFIG)


def fetch(server, host: str, path: str, method: str = "GET", **headers: str) -> requests.Response:
    return requests.request(method, server.url + path, headers={"Host": host, **headers},
                            timeout=30, allow_redirects=False)


# ---- httpErrors -------------------------------------------------------------------------------

def test_a_file_page_replaces_the_404_and_keeps_the_status(server):
    r = fetch(server, "pages.test", "/nope.html")
    assert r.status_code == 404, server.diagnostics()
    assert r.text == "<h1>custom-404-file</h1>" and r.headers["Content-Type"] == "text/html"


def test_head_of_a_custom_page_has_its_length_and_no_body(server):
    r = fetch(server, "pages.test", "/nope.html", "HEAD")
    assert r.status_code == 404 and r.content == b""
    assert r.headers["Content-Length"] == str(len("<h1>custom-404-file</h1>"))


def test_a_substatus_entry_picks_the_accept_language_folder(server):
    assert fetch(server, "pages.test", "/listing/").text == "english-403-14"
    r = fetch(server, "pages.test", "/listing/", **{"Accept-Language": "fr-FR,en;q=0.5"})
    assert r.status_code == 403 and r.text == "french-403-14"
    assert fetch(server, "pages.test", "/listing/", **{"Accept-Language": "fr-fr"}).text == "french-403-14"
    # A tag that tries to climb out of the folder is not a language: en-US it is.
    r = fetch(server, "pages.test", "/listing/", **{"Accept-Language": "../../etc"})
    assert r.status_code == 403 and r.text == "english-403-14"


def test_a_redirect_page_sends_302_to_the_configured_url(server):
    r = fetch(server, "pages.test", "/page.html", "POST")
    assert r.status_code == 302 and r.headers["Location"] == "/moved-405.html"


def test_execute_url_runs_a_static_page_with_the_original_status(server):
    r = fetch(server, "pages.test", "/data.unknownext")
    assert r.status_code == 404 and "executed-static-page" in r.text, r.text
    assert "ETag" not in r.headers and "Last-Modified" not in r.headers


def test_execute_url_runs_the_flask_page_for_a_missing_file_and_an_empty_404(server):
    before = fetch(server, "pages.test", "/app/calls").json().get("errors/page", 0)
    r = fetch(server, "pages.test", "/app/empty404")  # Auto: an empty app 404 is replaced
    assert r.status_code == 404 and "flask-error-page" in r.text and "method=GET" in r.text
    assert "Set-Cookie" not in r.headers  # the child's cookie stays with the child
    r = fetch(server, "pages.test", "/app/no/such/route")  # Flask's own 404 has a body: kept
    assert r.status_code == 404 and "flask-error-page" not in r.text
    after = fetch(server, "pages.test", "/app/calls").json()["errors/page"]
    assert after == before + 1


def test_auto_keeps_an_app_404_with_a_body(server):
    r = fetch(server, "pages.test", "/app/own404")
    assert r.status_code == 404 and r.text == "flask-own-404-body"
    r = fetch(server, "pages.test", "/app/stream404")
    assert r.status_code == 404 and r.text == "streamed-404"


def test_replace_swaps_the_app_404_for_the_site_page(server):
    for path in ("/replace/own404", "/replace/stream404", "/replace/empty404"):
        r = fetch(server, "pages.test", path)
        assert r.status_code == 404 and r.text == "<h1>custom-404-file</h1>", (path, r.text)


def test_replace_swaps_a_streamed_asgi_404_for_an_absolute_file_page(server):
    r = fetch(server, "pages.test", "/asgi/own404")
    assert r.status_code == 404 and r.text == "<h1>custom-404-file</h1>", r.text


def test_pass_through_keeps_even_an_empty_app_404(server):
    r = fetch(server, "pages.test", "/pass/empty404")
    assert r.status_code == 404 and r.content == b""
    assert fetch(server, "pages.test", "/pass/own404").text == "flask-own-404-body"


def test_an_error_page_that_fails_gives_the_plain_message(server):
    r = fetch(server, "pages.test", "/app/boom")
    assert r.status_code == 500
    assert r.text.startswith("The page cannot be displayed because an error has occurred (500")
    assert "secret" not in r.text and "fails" not in r.text


def test_a_file_page_cannot_leave_its_folder(server):
    r = fetch(server, "trav.test", "/missing.html")  # path = "../secret.txt"
    assert r.status_code == 404 and "top-secret" not in r.text
    assert r.text.startswith("The page cannot be displayed")
    r = fetch(server, "trav.test", "/listing/")      # path = a symlink to the same file
    assert r.status_code == 403 and "top-secret" not in r.text


def test_a_web_toml_page_outside_the_content_is_a_config_error(server):
    r = fetch(server, "pages.test", "/delegated/nope.html", **{"X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 500 and "root:" not in r.text, r.text[:300]


# ---- httpRedirect -----------------------------------------------------------------------------

def test_redirect_appends_the_path_below_the_folder_and_the_query(server):
    r = fetch(server, "redir.test", "/old/a/b.html?x=1&y=%20")
    assert r.status_code == 302
    assert r.headers["Location"] == "http://new.example/base/a/b.html?x=1&y=%20"
    assert "Object Moved" in r.text
    assert fetch(server, "redir.test", "/page.html").status_code == 200  # outside the folder
    r = fetch(server, "redir.test", "/old")  # the folder's own URL: the destination itself
    assert r.status_code == 302 and r.headers["Location"] == "http://new.example/base"


def test_nothing_of_the_url_leaves_location_unencoded(server):
    r = fetch(server, "redir.test", "/old/x%0d%0aSet-Cookie:%20evil=1")
    assert "evil" not in r.headers.get("Set-Cookie", "")  # the front refuses it (400) or it is encoded
    if r.status_code == 302:
        assert r.headers["Location"] == "http://new.example/base/x%0D%0ASet-Cookie:%20evil=1"
    r = fetch(server, "redir.test", "/old//evil.example/%5Cx%20y%22")
    assert r.status_code == 302
    # ("\\" is "/" in the cooked path, and the run of "/" collapses: still new.example)
    assert r.headers["Location"] == "http://new.example/base/evil.example/x%20y%22"


def test_exact_destination_with_query_variable_and_permanent(server):
    r = fetch(server, "redir.test", "/exact/anything.html?q=2")
    assert r.status_code == 301 and r.headers["Location"] == "/landing.html?q=2"


def test_child_only_leaves_the_folder_itself(server):
    assert fetch(server, "redir.test", "/child/").status_code == 403  # 403.14: not redirected
    assert fetch(server, "redir.test", "/child").status_code == 301  # to "/child/": not ours
    r = fetch(server, "redir.test", "/child/x.html")
    assert r.status_code == 307 and r.headers["Location"] == "/moved/x.html"


def test_wildcard_rules_with_308(server):
    r = fetch(server, "redir.test", "/wild/deep/a.PHP")
    assert r.status_code == 308 and r.headers["Location"] == "/index.html"
    assert fetch(server, "redir.test", "/wild/a.html").status_code == 404
    # The folder's web.toml adds a rule to the location's (after it).
    r = fetch(server, "redir.test", "/wild/x.asp")
    assert r.status_code == 308 and r.headers["Location"] == "/asp.html"


# ---- httpProtocol -----------------------------------------------------------------------------

def test_custom_headers_everywhere_and_no_server_header(server):
    for path, status in (("/page.html", 200), ("/nope.html", 404), ("/app/own404", 404)):
        r = fetch(server, "proto.test", path)
        assert r.status_code == status
        assert r.headers["X-Frame-Options"] == "DENY", path
        assert "Server" not in r.headers and "X-Redirected" not in r.headers, (path, r.headers)
    assert fetch(server, "pages.test", "/page.html").headers.get("Server")  # other sites keep it


def test_a_folder_removes_an_inherited_custom_header_and_adds_its_own(server):
    r = fetch(server, "proto.test", "/plain/page.html")
    assert r.status_code == 200 and "X-Frame-Options" not in r.headers
    assert r.headers["X-Plain"] == "1" and "Server" not in r.headers


def test_redirect_headers_only_on_redirects(server):
    r = fetch(server, "proto.test", "/dir")
    assert r.status_code == 301 and r.headers["X-Redirected"] == "yes"
    assert r.headers["X-Frame-Options"] == "DENY"
    r = fetch(server, "proto.test", "/app/redirected")
    assert r.status_code == 302 and r.headers["X-Redirected"] == "yes"


def test_keep_alive_off_for_one_folder(server):
    with server.connect() as conn:
        r = conn.request("GET", "/page.html", host="proto.test")
        assert r.status == 200 and r.header("Connection") != "close"
        r = conn.request("GET", "/nokeep/page.html", host="proto.test")
        assert r.status == 200 and r.header_all("Connection") == ["close"]
        assert conn.read_until_close() == b""


def test_options_from_the_handler_mapping_and_from_the_app(server):
    r = fetch(server, "proto.test", "/page.html", "OPTIONS")
    assert r.status_code == 200 and r.headers["Allow"] == "OPTIONS, GET, HEAD" and r.content == b""
    r = fetch(server, "proto.test", "/app/options", "OPTIONS")
    assert r.status_code == 204 and r.headers["X-App-Options"] == "1"


def test_trace_is_refused_before_any_app(server):
    for path in ("/page.html", "/app/options"):
        r = fetch(server, "proto.test", path, "TRACE", Cookie="session=secret")
        assert r.status_code == 405 and "secret" not in r.text, path
        assert "TRACE" not in r.headers["Allow"]


def test_http2_has_the_custom_header_and_no_server_field(server):
    from h2_support import H2Client

    with H2Client(server.port) as client:
        response = client.get("/nokeep/page.html", authority="proto.test")
    assert response["ended"], response
    names = set(response["headers"])
    assert response["headers"][b":status"] == b"200"
    assert b"x-frame-options" in names and b"server" not in names and b"connection" not in names
