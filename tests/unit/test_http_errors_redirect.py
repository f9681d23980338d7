"""Matching logic of httpErrors pages, httpRedirect locations and httpProtocol headers, and the
config checks that keep CR/LF and other hosts out of them."""

from __future__ import annotations

import os
import types

import pytest

from wasp.config.load import load_text
from wasp.config.sections.http_errors import delegation_problems, url_problem
from wasp.config.sections.http_protocol import HeaderEntry, HttpProtocol
from wasp.config.sections.http_redirect import HttpRedirect, RedirectRule
from wasp.config.model import ErrorPage, HttpErrors
from wasp.errors import ConfigError
from wasp.worker import custompages
from wasp.worker.modules.http_redirect import location_for
from wasp.worker.modules.protocol_support import HeaderFilter, trace_echo

BASE = """
[[sites]]
name = "S"
id = 1
bindings = ["http/*:8080:"]
[[sites.applications]]
path = "/"
"""


def head(headers=(), method="GET", path=b"/", target=None):
    return types.SimpleNamespace(headers=list(headers), method=method, path=path,
                                 target=target or path, version="1.1")


# ---- httpErrors ----

def test_entry_lookup_prefers_the_substatus_then_any_then_default_path():
    section = HttpErrors(errors=[ErrorPage(status_code=404, path="any.html"),
                                 ErrorPage(status_code=404, sub_status_code=3, path="three.html",
                                           response_mode="Redirect")],
                         default_path="/errors/default", default_response_mode="ExecuteURL")
    assert custompages.find_entry(section, 404, 3) == ("Redirect", "three.html", "")
    assert custompages.find_entry(section, 404, 0) == ("File", "any.html", "")
    assert custompages.find_entry(section, 500, 0) == ("ExecuteURL", "/errors/default", "")
    assert custompages.find_entry(HttpErrors(), 500, 0) is None


def test_languages_by_q_and_only_plain_tags():
    h = head([(b"Accept-Language", b"de;q=0.2, fr-FR, ../x, en;q=0, it;q=0.9, a_b")])
    assert custompages.languages(h) == ["fr-FR", "it", "de"]
    many = b",".join(b"l%c" % c for c in b"abcdefgh")
    assert len(custompages.languages(head([(b"accept-language", many)]))) == custompages.LANGUAGES


def test_file_pages_stay_inside_their_folder(tmp_path):
    inside = tmp_path / "www"
    inside.mkdir()
    (inside / "ok.html").write_text("ok")
    (tmp_path / "secret").write_text("secret")
    os.symlink(tmp_path / "secret", inside / "link.html")
    folder = os.path.realpath(inside)
    assert custompages.read_page(folder, str(inside / "ok.html")) == b"ok"
    assert custompages.read_page(folder, str(inside / ".." / "secret")) is None
    assert custompages.read_page(folder, str(inside / "link.html")) is None
    assert custompages.read_page(folder, str(inside)) is None  # a directory


@pytest.mark.parametrize("mode, path, bad", [
    ("Redirect", "http://example.com/x", False), ("Redirect", "/local", False),
    ("Redirect", "//evil.example/", True), ("Redirect", "/\\evil.example", True),
    ("Redirect", "javascript:alert(1)", True), ("Redirect", "/x\r\nSet-Cookie: a=1", True),
    ("ExecuteURL", "/errors/404", False), ("ExecuteURL", "http://x/", True),
    ("ExecuteURL", "/a/../b", True), ("File", "404.html", False), ("File", "a\x00b", True),
])
def test_page_urls(mode, path, bad):
    assert (url_problem(mode, path) is not None) is bad


def test_a_crlf_in_a_redirect_page_is_a_config_error_naming_the_key():
    text = BASE + """[sites.http_errors]
errors = [{ status_code = 404, path = "/x\\r\\nSet-Cookie: a=1", response_mode = "Redirect" }]
"""
    with pytest.raises(ConfigError) as info:
        load_text(text)
    assert "sites[0].http_errors.errors[0].path" in str(info.value)


def test_what_a_web_toml_may_not_say():
    assert delegation_problems({"default_path": "x"}, True)[0][0] == "http_errors.default_path"
    table = {"errors": [{"status_code": 404, "path": "/etc/passwd"},
                        {"status_code": 403, "path": "../up.html"},
                        {"status_code": 401, "path": "p.html", "prefix_language_file_path": "/srv"},
                        {"status_code": 500, "path": "/e", "response_mode": "ExecuteURL"},
                        {"status_code": 502, "path": "fine.html"}]}
    assert [p for p, _ in delegation_problems(table, False)] == [
        "http_errors.errors[0].path", "http_errors.errors[1].path",
        "http_errors.errors[2].prefix_language_file_path"]
    assert delegation_problems(table, True) == []


# ---- httpRedirect ----

def redirect(**kw):
    return HttpRedirect(enabled=True, **kw)


def test_destination_gets_the_path_below_the_base_and_the_query():
    section = redirect(destination="http://new.example/base/")
    assert location_for(section, b"/old", b"/old/a/b.html", b"x=1") == \
        "http://new.example/base/a/b.html?x=1"
    assert location_for(section, b"/old", b"/old", b"") == "http://new.example/base/"
    assert location_for(section, b"", b"/a b\r\n", b"") == "http://new.example/base/a%20b%0D%0A"


def test_child_only_and_exact_destination_variables():
    child = redirect(destination="/moved", child_only=True)
    assert location_for(child, b"/c", b"/c/", b"") is None
    assert location_for(child, b"/c", b"/c", b"") is None
    assert location_for(child, b"/c", b"/c/x", b"") == "/moved/x"
    exact = redirect(destination="/to?s=$S&p=$P&v=$V$Q", exact_destination=True)
    assert location_for(exact, b"/e", b"/e/f.html", b"a=1") == "/to?s=/f.html&p=a=1&v=/e/f.html?a=1"
    assert location_for(exact, b"/e", b"/e/f", b"") == "/to?s=/f&p=&v=/e/f"


def test_never_protocol_relative_and_never_a_loop():
    assert location_for(redirect(destination="/site"), b"", b"//evil.example/x", b"") == \
        "/site/evil.example/x"
    exact = redirect(destination="/$S", exact_destination=True)
    assert location_for(exact, b"/e", b"/e//evil.example/x", b"") == "/evil.example/x"
    assert location_for(redirect(destination="/"), b"", b"/x", b"") is None  # itself: a loop
    assert location_for(redirect(destination="/new"), b"", b"/new/x", b"") is None
    assert location_for(redirect(destination="/new"), b"", b"/other", b"") == "/new/other"


def test_wildcard_rules_first_then_destination():
    section = redirect(rules=[RedirectRule(wildcard="*.php", destination="/php.html"),
                              RedirectRule(wildcard="/img/*", destination="http://cdn.example/")],
                       exact_destination=True)
    assert location_for(section, b"", b"/a/B.PHP", b"") == "/php.html"
    assert location_for(section, b"", b"/img/x.png", b"") == "http://cdn.example/"
    assert location_for(section, b"", b"/a.html", b"") is None


def test_a_redirect_destination_to_another_host_by_slashes_is_refused_at_load():
    with pytest.raises(ConfigError) as info:
        load_text(BASE + '[sites.http_redirect]\nenabled = true\ndestination = "//evil.example"\n')
    assert "sites[0].http_redirect.destination" in str(info.value)


# ---- httpProtocol ----

def test_header_filter_lines():
    section = HttpProtocol(custom_headers=[HeaderEntry(name="X-A", value="1")],
                           redirect_headers=[HeaderEntry(name="X-R", value="r")],
                           allow_keep_alive=False, remove_server_header=True)
    f = HeaderFilter(section)
    assert f(None, b"200 OK\r\n", b"", 0) == b"200 OK\r\nX-A: 1\r\nConnection: close\r\nServer: \r\n"
    assert f(None, b"301 Moved\r\n", b"", 0).endswith(b"Server: \r\nX-R: r\r\n")
    assert not HeaderFilter(HttpProtocol()).needed


@pytest.mark.parametrize("entry, key", [
    ('{ name = "Content-Length", value = "1" }', "name"),
    ('{ name = "X-A", value = "a\\r\\nSet-Cookie: x" }', "value"),
    ('{ name = "X A", value = "a" }', "name"),
])
def test_bad_custom_headers_name_their_key(entry, key):
    with pytest.raises(ConfigError) as info:
        load_text(BASE + f"[sites.http_protocol]\ncustom_headers = [{entry}]\n")
    assert f"http_protocol.custom_headers[0].{key}" in str(info.value)


def test_trace_echo_hides_credentials():
    h = head([(b"Host", b"x"), (b"Cookie", b"s=1"), (b"Authorization", b"Basic x")], "TRACE",
             b"/p", b"/p?q")
    assert trace_echo(h) == b"TRACE /p?q HTTP/1.1\r\nHost: x\r\n\r\n"
