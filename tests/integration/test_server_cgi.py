"""CGI (RFC 3875) through a real server: shell and Python scripts run by the cgi handler as the
worker's user, the meta-variables, a streamed POST body, cgi.timeout (502.1), a script exiting
before its head (502.2), the restriction list (404.2), allow_path_info, php-cgi as a CGI
script_processor, and what a script must not get past the head parser (a CR in a value,
a huge head)."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
from pathlib import Path

import pytest
import requests

from php_support import PHP_APPS, PHP_CGI

CGI_APPS = Path(__file__).parent / "cgi_apps"

CONFIG = """
{pool_timing}
[http_errors]
error_mode = "Detailed"

[[pools]]
name = "Cgi"

[[sites]]
name = "Cgi Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]

[[sites.applications]]
path = "/"
pool = "Cgi"
physical_path = "www"
cgi_restriction = [ { path = "{dir}/www/cgi-bin/" }, { path = "%(cgi)s" } ]
[sites.applications.handlers]
access_policy = ["Read", "Script", "Execute"]
add = [
  { name = "CGI-sh", path = "*.sh", modules = "cgi", resource_type = "File", require_access = "Execute", allow_path_info = true },
  { name = "CGI-py", path = "*.py", verb = "GET,POST", modules = "cgi", resource_type = "File", require_access = "Execute" },
  { name = "PHP-CGI", path = "*.php", modules = "cgi", script_processor = "%(cgi)s", resource_type = "File" },
]

[[locations]]
path = "Cgi Site/cgi-bin/sleep.sh"
cgi = { timeout = "1s" }
"""


@pytest.fixture(scope="module")
def server(wasp_module_server):
    d = wasp_module_server.dir
    shutil.copytree(CGI_APPS, d / "www", dirs_exist_ok=True)
    shutil.copy(PHP_APPS / "hello.php", d / "www" / "hello.php")
    shutil.copy(PHP_APPS / "echo.php", d / "www" / "echo.php")
    return wasp_module_server(CONFIG % {"cgi": PHP_CGI})


def get(server, path, **kw):
    return requests.get(server.url + path, timeout=30, **kw)


def env_of(text: str) -> dict:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_the_script_gets_rfc3875_meta_variables(server):
    r = get(server, "/cgi-bin/env.sh?q=1&x=%20y", headers={"X-Custom": "v", "Cookie": "a=1"})
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/plain"
    env = env_of(r.text)
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1" and env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == "/cgi-bin/env.sh" and env["QUERY_STRING"] == "q=1&x=%20y"
    assert env["SCRIPT_FILENAME"] == str(server.dir / "www/cgi-bin/env.sh")
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1" and env["SERVER_PORT"] == str(server.port)
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["HTTP_X_CUSTOM"] == "v" and env["HTTP_COOKIE"] == "a=1"
    assert env["PATH_INFO"] == "" and "PATH_TRANSLATED" not in env
    # nothing of the worker's own environment but PATH
    assert not any(k.startswith("WASP_") for k in env)


def test_httpoxy_and_underscore_headers_do_not_reach_the_script(server):
    r = get(server, "/cgi-bin/env.sh", headers={"Proxy": "http://evil.test:3128", "X_Forwarded_For": "6.6.6.6"})
    env = env_of(r.text)
    assert "HTTP_PROXY" not in env and "HTTP_X_FORWARDED_FOR" not in env


def test_allow_path_info(server):
    env = env_of(get(server, "/cgi-bin/env.sh/extra/path").text)
    assert env["SCRIPT_NAME"] == "/cgi-bin/env.sh" and env["PATH_INFO"] == "/extra/path"
    assert env["PATH_TRANSLATED"] == str(server.dir / "www") + "/extra/path"
    # CGI-py has allow_path_info = false (IIS's default): the URL does not map to the script
    assert get(server, "/cgi-bin/post.py/extra").status_code == 404


def test_a_post_body_streams_to_stdin(server):
    blob = os.urandom(2_000_000)
    r = requests.post(server.url + "/cgi-bin/post.py", data=blob, timeout=60)
    assert r.status_code == 200 and r.headers["X-Len"] == str(len(blob))
    assert r.text == hashlib.md5(blob).hexdigest()
    r = requests.post(server.url + "/cgi-bin/post.py", data=iter([blob[:10], blob[10:1000]]), timeout=60)
    assert r.headers["X-Len"] == "1000" and r.text == hashlib.md5(blob[:1000]).hexdigest()


def test_status_and_location_from_the_script(server):
    r = get(server, "/cgi-bin/status.sh", allow_redirects=False)
    assert r.status_code == 201 and r.reason == "Made It" and r.headers["Location"] == "/made/1"
    assert r.text == "created" and r.headers.get("Connection", "") != "close"


def test_timeout_is_502_1(server):
    r = get(server, "/cgi-bin/sleep.sh")
    assert r.status_code == 502 and "502.1" in r.text


def test_premature_exit_is_502_2(server):
    r = get(server, "/cgi-bin/exit.sh")
    assert r.status_code == 502 and "502.2" in r.text
    r = get(server, "/cgi-bin/nohead.sh")
    assert r.status_code == 502 and "502.2" in r.text


def test_a_script_outside_the_restriction_list_is_404_2(server):
    r = get(server, "/other/env.sh")
    assert r.status_code == 404 and "404.2" in r.text


def test_header_injection_and_huge_heads_are_refused(server):
    r = get(server, "/cgi-bin/inject.sh")
    assert r.status_code == 502 and "evil" not in r.headers.get("Set-Cookie", "")
    r = get(server, "/cgi-bin/huge.sh")
    assert r.status_code == 502
    assert get(server, "/cgi-bin/env.sh").status_code == 200  # the server is fine


def raw_status(server, target: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n")[0]


def test_path_tricks(server):
    for target in (b"/cgi-bin/../other/env.sh", b"/cgi-bin/%2e%2e/other/env.sh", b"/cgi-bin/env.sh%00.txt",
                   b"/other/../../../bin/sh.sh"):
        status = raw_status(server, target)
        assert status.split()[1] in (b"400", b"404"), (target, status)
    # .. resolved by the front to /other/env.sh: still the restriction list's 404.2, never run
    r = get(server, "/cgi-bin/../other/env.sh")
    assert r.status_code == 404


def test_php_cgi_as_a_cgi_script_processor(server):
    assert get(server, "/hello.php").text == "hello"
    r = requests.post(server.url + "/echo.php?a=1", data={"f": "v"}, timeout=30)
    assert r.json()["post"] == {"f": "v"} and r.json()["get"] == {"a": "1"}
    assert get(server, "/missing.php").status_code == 404
