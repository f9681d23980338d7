"""The embedded Default Web Site: the welcome page and the WSGI demo app."""

from __future__ import annotations

import io
import json
import os
import re
import wsgiref.validate

from wasp.config.defaults import default_site_dir
from wasp.default_site.demo import app


def call(path="/", method="GET", body=b"", headers=None, script_name="/demo"):
    environ = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": script_name, "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body), "wsgi.errors": io.StringIO(), "wsgi.multithread": True,
        "wsgi.multiprocess": True, "wsgi.run_once": False, "CONTENT_LENGTH": str(len(body)) if body else "",
    }
    environ.update(headers or {})
    seen = {}

    def start_response(status, response_headers, exc_info=None):
        seen["status"], seen["headers"] = status, dict(response_headers)
        return lambda data: None

    result = wsgiref.validate.validator(app)(environ, start_response)
    try:
        data = b"".join(result)
    finally:
        result.close()
    return seen["status"], seen["headers"], data


def test_request_page_shows_pid_and_pool(monkeypatch):
    monkeypatch.setenv("WASP_POOL", "DefaultAppPool")
    status, headers, body = call("/", headers={"HTTP_USER_AGENT": "test-agent"})
    assert status == "200 OK"
    assert headers["Content-Type"].startswith("text/html")
    text = body.decode()
    assert str(os.getpid()) in text and "DefaultAppPool" in text and "test-agent" in text
    assert int(headers["Content-Length"]) == len(body)


def test_empty_path_info_is_the_index():
    assert call("")[0] == "200 OK"


def test_request_page_escapes_what_it_echoes():
    _, _, body = call("/", headers={"HTTP_X_EVIL": "<script>alert(1)</script>"})
    assert b"<script>alert" not in body and b"&lt;script&gt;" in body


def test_not_found_escapes_the_path():
    status, _, body = call("/<img>")
    assert status == "404 Not Found"
    assert b"<img>" not in body and b"&lt;img&gt;" in body


def test_echo_raw_is_text_plain_whatever_the_sender_says():
    status, headers, body = call("/echo", "POST", b"<b>hi</b>", {"CONTENT_TYPE": "text/html"})
    assert (status, body) == ("200 OK", b"<b>hi</b>")
    assert headers["Content-Type"].startswith("text/plain")
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_echo_for_a_browser_is_escaped_html():
    status, headers, body = call("/echo", "POST", b"<b>hi</b>", {"HTTP_ACCEPT": "text/html"})
    assert headers["Content-Type"].startswith("text/html")
    assert b"&lt;b&gt;hi&lt;/b&gt;" in body and b"<b>hi" not in body


def test_echo_form_and_method():
    assert call("/echo")[0] == "200 OK"
    status, headers, _ = call("/echo", "PUT", b"x")
    assert status.startswith("405") and "POST" in headers["Allow"]


def test_time_is_json():
    status, headers, body = call("/time")
    assert headers["Content-Type"] == "application/json"
    data = json.loads(body)
    assert data["pid"] == os.getpid() and "utc" in data


def test_links_are_under_the_script_name():
    _, _, body = call("/", script_name="/demo")
    assert b'href="/demo/echo"' in body


def test_welcome_page_is_self_contained():
    page = open(os.path.join(default_site_dir(), "index.html"), encoding="utf-8").read()
    assert "wasp is running" in page and "Default Web Site" in page
    assert "wasp serve myproject.wsgi:application" in page and "wasp serve -c wasp.toml" in page
    assert 'href="/demo/"' in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page), "no external resources"
