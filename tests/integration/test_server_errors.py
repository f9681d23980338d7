"""httpErrors errorMode through a real server, with a loopback client: Custom pages show no
physical path, module, handler or exception; Detailed pages show the detail; DetailedLocalOnly
(the default) is detailed for a loopback client unless a proxy's forwarding header says the
request is someone else's; an application's own error_mode overrides its site's."""

from __future__ import annotations

import os

import pytest
import requests

CONFIG = """
{pool_timing}
[[pools]]
name = "Errors"

[[sites]]
name = "Custom Site"
id = 1
bindings = ["http/127.0.0.1:{port}:custom.test"]
[sites.http_errors]
error_mode = "Custom"
[[sites.applications]]
path = "/"
pool = "Errors"
physical_path = "www"
[[sites.applications]]
path = "/app"
pool = "Errors"
app = "blocking:app"
python_path = ["{apps}"]

[[sites]]
name = "Detailed Site"
id = 2
bindings = ["http/127.0.0.1:{port}:detailed.test"]
[sites.http_errors]
error_mode = "Detailed"
[[sites.applications]]
path = "/"
pool = "Errors"
physical_path = "www"
[[sites.applications]]
path = "/app"
pool = "Errors"
app = "blocking:app"
python_path = ["{apps}"]

[[sites]]
name = "Default Site"
id = 3
bindings = ["http/127.0.0.1:{port}:default.test"]
[[sites.applications]]
path = "/"
pool = "Errors"
physical_path = "www"
[[sites.applications]]
path = "/app"
pool = "Errors"
app = "blocking:app"
python_path = ["{apps}"]
[sites.applications.http_errors]
error_mode = "Custom"
"""

SECRET = "app-secret-7f3a"  # in blocking.py's exception message

# (path, method, status, detailed heading)
FAILURES = [
    ("/data.unknownext", "GET", 404, "HTTP Error 404.3"),
    ("/listing/", "GET", 403, "HTTP Error 403.14"),
    ("/page.html", "POST", 405, "HTTP Error 405.0"),
    ("/nope.html", "GET", 404, "HTTP Error 404.0"),
]


@pytest.fixture(scope="module")
def server(wasp_module_server):
    root = wasp_module_server.dir / "www"
    (root / "listing").mkdir(parents=True)
    (root / "data.unknownext").write_text("x")
    (root / "page.html").write_text("<p>hi</p>")
    server = wasp_module_server(CONFIG)
    server.www = os.path.realpath(root)
    return server


def fetch(server, host: str, path: str, method: str = "GET", **headers: str) -> requests.Response:
    return requests.request(method, server.url + path, headers={"Host": host, **headers}, timeout=30)


def assert_custom(r: requests.Response, server) -> None:
    text = r.text
    for leak in (server.www, str(server.dir), "Physical Path", "static_file", "python_app",
                 "Detailed Error", "Traceback", "RuntimeError", SECRET):
        assert leak not in text, (r.request.url, leak, text[:400])


@pytest.mark.parametrize("path, method, status, heading", FAILURES)
def test_custom_mode_shows_no_detail_to_a_loopback_client(server, path, method, status, heading):
    r = fetch(server, "custom.test", path, method)
    assert r.status_code == status, (r.status_code, r.text[:300], server.diagnostics())
    assert_custom(r, server)
    assert heading not in r.text and f"{status} - " in r.text  # IIS's custom page: "404 - File or ..."


def test_custom_mode_app_exception_is_a_bare_500(server):
    r = fetch(server, "custom.test", "/app/boom")
    assert r.status_code == 500, (r.status_code, r.text[:300], server.diagnostics())
    assert_custom(r, server)
    assert "500 - Internal server error." in r.text


@pytest.mark.parametrize("path, method, status, heading", FAILURES)
def test_detailed_mode_shows_the_detail_even_to_a_forwarded_request(server, path, method, status,
                                                                     heading):
    for headers in ({}, {"X-Forwarded-For": "198.51.100.7"}):
        r = fetch(server, "detailed.test", path, method, **headers)
        assert r.status_code == status
        assert heading in r.text, r.text[:400]
        if path != "/nope.html":  # a file that exists: its physical path is part of the detail
            assert os.path.join(server.www, path.strip("/")).rstrip("/") in r.text, r.text


def test_detailed_mode_app_exception_names_the_handler_but_not_the_exception(server):
    r = fetch(server, "detailed.test", "/app/boom")
    assert r.status_code == 500 and "HTTP Error 500.0" in r.text and "python_app" in r.text
    assert SECRET not in r.text and "Traceback" not in r.text


@pytest.mark.parametrize("path, method, status, heading", FAILURES)
def test_detailed_local_only_is_detailed_for_loopback_and_custom_when_forwarded(
        server, path, method, status, heading):
    local = fetch(server, "default.test", path, method)
    assert local.status_code == status and heading in local.text, local.text[:400]
    for headers in ({"X-Forwarded-For": "198.51.100.7"}, {"Forwarded": "for=198.51.100.7"},
                    {"X-Real-IP": "198.51.100.7"}):
        forwarded = fetch(server, "default.test", path, method, **headers)
        assert forwarded.status_code == status
        assert_custom(forwarded, server)
        assert heading not in forwarded.text, (headers, forwarded.text[:400])


def test_an_application_error_mode_overrides_its_site(server):
    r = fetch(server, "default.test", "/app/boom")  # site DetailedLocalOnly, application Custom
    assert r.status_code == 500
    assert_custom(r, server)
    assert "500 - Internal server error." in r.text
