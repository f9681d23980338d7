"""The handler mapping list through a real server: IIS's order (a location's entries before the
inherited ones), a path whose verb is not listed going on to the next entry and 405 with Allow,
404.4 when nothing is mapped, 403.2 when the access policy does not grant Read, the default
list (existing files static, the rest to the app), and `handlers` locked for web.toml."""

from __future__ import annotations

import pytest
import requests

CONFIG = """
{pool_timing}
[http_errors]
error_mode = "Detailed"

[[pools]]
name = "Handlers"

[[sites]]
name = "Handler Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "Handlers"
app = "flask_app:app"
physical_path = "www"
python_path = ["{apps}"]
[[sites.applications.handlers]]
name = "TxtReadOnly"
path = "*.txt"
verb = "GET,HEAD"
modules = "static_file"
resource_type = "File"
require_access = "Read"

[[locations]]
path = "Handler Site/api"
[[locations.handlers]]
name = "ApiToApp"
path = "*"
modules = "python_app"

[[locations]]
path = "Handler Site/noread"
[locations.handlers]
access_policy = ["Script"]

[[locations]]
path = "Handler Site/none"
[locations.handlers]
clear = true
"""


def write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture(scope="module")
def server(wasp_module_server):
    d = wasp_module_server.dir
    for name in ("hello.txt", "api/hello.txt", "noread/x.txt", "none/x.txt", "locked/x.txt"):
        write(d / "www" / name, f"www/{name}")
    write(d / "www/locked/web.toml", '[handlers]\naccess_policy = ["Read"]\n')
    return wasp_module_server(CONFIG)


def call(server, method: str, path: str) -> requests.Response:
    return requests.request(method, server.url + path, timeout=30)


def test_the_default_list_serves_existing_files_and_sends_the_rest_to_the_app(server):
    assert call(server, "GET", "/hello.txt").text == "www/hello.txt"
    assert call(server, "GET", "/echo?a=1").text == "|/echo|a=1"
    r = call(server, "GET", "/missing.css")
    assert r.status_code == 404 and "The requested URL was not found on the server" in r.text  # Flask's


def test_a_verb_the_entry_does_not_list_goes_on_down_the_list(server):
    # TxtReadOnly takes GET only; POST goes on (PythonApp passes over an existing file) to
    # StaticFile, whose handler allows GET and HEAD: 405 with Allow.
    r = call(server, "POST", "/hello.txt")
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD", (r.status_code, r.headers)
    r = call(server, "POST", "/missing.txt")  # no file: PythonApp takes it (Flask's 405 for no route)
    assert r.status_code in (404, 405) and "HTTP Error" not in r.text


def test_a_location_s_entries_come_before_the_inherited_ones(server):
    r = call(server, "GET", "/api/hello.txt")   # the file exists, but the location maps the app
    assert r.status_code == 404 and "The requested URL was not found on the server" in r.text, r.text[:300]


def test_access_policy_without_read_is_403_2(server):
    r = call(server, "GET", "/noread/x.txt")
    assert r.status_code == 403 and "HTTP Error 403.2" in r.text, r.text[:300]


def test_no_handler_is_404_4(server):
    r = call(server, "GET", "/none/x.txt")
    assert r.status_code == 404 and "HTTP Error 404.4" in r.text, r.text[:300]


def test_handlers_are_locked_for_web_toml(server):
    r = call(server, "GET", "/locked/x.txt")
    assert r.status_code == 500 and "HTTP Error 500.19" in r.text and "0x80070021" in r.text
