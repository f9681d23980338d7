"""PHP and CGI scripts keep running in a folder with WebDAV authoring on (issue 10).

web_dav's handler blocks, so it makes a static application threaded; cgi and fast_cgi run on the
loop there anyway (flow.to_async moves the request body over), as IIS runs a folder's PHP for
GET and POST while WebDAV takes only its own verbs. Real php-cgi (CGI and wasp-managed FastCGI),
a real php-fpm, a real CGI script.
"""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest
import requests

from php_support import PHP_APPS, PHP_CGI, PHP_FPM, start_fpm, stop_fpm

pytestmark = pytest.mark.skipif(not os.path.exists(PHP_CGI) or not PHP_FPM,
                                reason="php-cgi and php-fpm (Debian php-cgi, php-fpm) are needed")

CGI_APPS = os.path.join(os.path.dirname(__file__), "cgi_apps")


def app(path: str, handlers: str) -> str:
    return f"""
[[sites.applications]]
path = "{path}"
pool = "Dav"
physical_path = "www"
cgi_restriction = [ {{ path = "{{dir}}/www/cgi-bin/" }}, {{ path = "%(cgi)s" }} ]
[sites.applications.web_dav_authoring]
enabled = true
properties = {{ allow_anonymous_propfind = true }}
[sites.applications.web_dav_authoring_rules]
rules = [ {{ users = "*", path = "*", access = ["Read"] }} ]
[sites.applications.handlers]
access_policy = ["Read", "Script", "Execute"]
add = [
{handlers}
]
"""


CONFIG = """
[http_errors]
error_mode = "Detailed"

[[fast_cgi]]
full_path = "%(cgi)s"

[[pools]]
name = "Dav"

[[sites]]
name = "Dav Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
""" + app("/", """
  { name = "CGI-py", path = "*.py", verb = "GET,POST", modules = "cgi", resource_type = "File", require_access = "Execute" },
  { name = "PHP-CGI", path = "*.php", verb = "GET,HEAD,POST", modules = "cgi", script_processor = "%(cgi)s", resource_type = "File" },
""") + app("/fcgi", """
  { name = "PHP_via_FastCGI", path = "*.php", verb = "GET,HEAD,POST", modules = "fast_cgi", script_processor = "%(cgi)s", resource_type = "File" },
""") + app("/fpm", """
  { name = "PHP_via_FPM", path = "*.php", verb = "GET,HEAD,POST", modules = "fast_cgi", script_processor = "unix:{dir}/fpm.sock", resource_type = "File" },
""")


@pytest.fixture(scope="module")
def server(wasp_module_server):
    d = wasp_module_server.dir
    shutil.copytree(CGI_APPS, d / "www", dirs_exist_ok=True)
    shutil.copy(PHP_APPS / "echo.php", d / "www" / "echo.php")
    shutil.copy(PHP_APPS / "hello.php", d / "www" / "hello.php")
    fpm = start_fpm(d)
    try:
        yield wasp_module_server(CONFIG % {"cgi": PHP_CGI})
    finally:
        wasp_module_server.stop_all()
        stop_fpm(fpm)


PREFIXES = ["", "/fcgi", "/fpm"]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_php_get_runs_in_a_web_dav_folder(server, prefix):
    r = requests.get(server.url + f"{prefix}/echo.php?a=1", timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["get"] == {"a": "1"}
    assert "<?php" not in r.text  # executed, not the source


@pytest.mark.parametrize("prefix", PREFIXES)
def test_php_post_body_reaches_the_script(server, prefix):
    r = requests.post(server.url + f"{prefix}/echo.php", data={"name": "wasp"}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["post"] == {"name": "wasp"}
    blob = os.urandom(200_000)
    for data in (blob, iter([blob[:1000], blob[1000:]])):  # sized, then chunked
        r = requests.post(server.url + f"{prefix}/echo.php", data=data, timeout=30,
                          headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 200, r.text
        assert r.json()["raw_len"] == len(blob) and r.json()["raw_md5"] == hashlib.md5(blob).hexdigest()


def test_cgi_script_post_in_a_web_dav_folder(server):
    blob = os.urandom(100_000)
    r = requests.post(server.url + "/cgi-bin/post.py", data=blob, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["X-Len"] == str(len(blob)) and r.text == hashlib.md5(blob).hexdigest()


@pytest.mark.parametrize("prefix", PREFIXES)
def test_propfind_still_answers_there(server, prefix):
    r = requests.request("PROPFIND", server.url + f"{prefix}/", headers={"Depth": "1"}, timeout=30)
    assert r.status_code == 207, r.text
    assert "echo.php" in r.text and "hello.php" in r.text
