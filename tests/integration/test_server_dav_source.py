"""WebDAV's `Translate: f` through a real server (IIS WebDAVModule's Source access).

A GET with `Translate: f` from an author whose authoring rules grant Source (and Read) gets the
file as it is, a .php's source, instead of the handler's output; anyone else is mapped as usual
and the script runs: IIS's "If Translate:f AND Source is enabled, handle with the Static File
Handler, else continue processing normally" (docs/webdav.md cites it). Real php-cgi (CGI) and a
real php-fpm run the scripts; path tricks and header spellings never get the source out.
"""

from __future__ import annotations

import http.client
import os
import subprocess

import pytest
import requests
from requests.auth import HTTPBasicAuth

from php_support import PHP_CGI, PHP_FPM, start_fpm, stop_fpm

pytestmark = pytest.mark.skipif(not os.path.exists(PHP_CGI) or not PHP_FPM,
                                reason="php-cgi and php-fpm (Debian php-cgi, php-fpm) are needed")

SCRIPT = b'<?php\n$marker = "SOURCE" . "-MARKER";\necho "ran:" . strlen($marker);\n'
RAN = "ran:13"


def app(path: str, folder: str, handler: str) -> str:
    return f"""
[[sites.applications]]
path = "{path}"
pool = "Dav"
physical_path = "{folder}"
cgi_restriction = [ {{ path = "%(cgi)s" }} ]
[sites.applications.web_dav_authoring]
enabled = true
[sites.applications.basic_authentication]
enabled = true
user_file = "{{dir}}/users.htpasswd"
[sites.applications.web_dav_authoring_rules]
rules = [ {{ users = "alice", path = "*", access = ["Read", "Write", "Source"] }},
          {{ users = "bob", path = "*", access = ["Read", "Write"] }},
          {{ users = "carol", path = "*", access = ["Read"] }},
          {{ users = "carol", path = "*.txt", access = ["Source"] }},
          {{ users = "dave", path = "*", access = ["Source"] }},
          {{ users = "?", path = "*", access = ["Read"] }} ]
[sites.applications.handlers]
access_policy = ["Read", "Script"]
add = [ {handler} ]
"""


CONFIG = """
{pool_timing}
[http_errors]
error_mode = "Detailed"
[basic_authentication]
max_failed_logons = 0

[[fast_cgi]]
full_path = "%(cgi)s"

[[pools]]
name = "Dav"

[[sites]]
name = "Dav Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
""" + app("/", "www", '{ name = "PHP-CGI", path = "*.php", verb = "GET,HEAD,POST", modules = "cgi", '
                      'script_processor = "%(cgi)s", resource_type = "File" }') \
    + app("/fpm", "fpmroot", '{ name = "PHP_via_FPM", path = "*.php", verb = "GET,HEAD,POST", '
                             'modules = "fast_cgi", script_processor = "unix:{dir}/fpm.sock", '
                             'resource_type = "File" }')

CONFIG += """
[[sites.applications]]
path = "/plain"
pool = "Dav"
physical_path = "plainroot"
cgi_restriction = [ { path = "%(cgi)s" } ]
[sites.applications.basic_authentication]
enabled = true
user_file = "{dir}/users.htpasswd"
[sites.applications.web_dav_authoring_rules]
rules = [ { users = "alice", path = "*", access = ["Read", "Write", "Source"] } ]
[sites.applications.handlers]
access_policy = ["Read", "Script"]
add = [ { name = "PHP-CGI", path = "*.php", verb = "GET,HEAD,POST", modules = "cgi", script_processor = "%(cgi)s", resource_type = "File" } ]
"""

PASSWORDS = {"alice": "alice pw", "bob": "bob pw", "carol": "carol pw", "dave": "dave pw"}


@pytest.fixture(scope="module")
def server(wasp_module_server):
    d = wasp_module_server.dir
    users = d / "users.htpasswd"
    users.touch()
    for user, password in PASSWORDS.items():
        subprocess.run(["htpasswd", "-b", "-B", str(users), user, password], check=True,
                       capture_output=True)
    for folder in ("www", "fpmroot", "plainroot"):
        (d / folder).mkdir(parents=True, exist_ok=True)
        (d / folder / "secret.php").write_bytes(SCRIPT)
        (d / folder / "notes.txt").write_bytes(b"plain notes\n")
    fpm = start_fpm(d)
    try:
        yield wasp_module_server(CONFIG % {"cgi": PHP_CGI})
    finally:
        wasp_module_server.stop_all()
        stop_fpm(fpm)


def get(server, path, user=None, translate="f", method="GET"):
    headers = {} if translate is None else {"Translate": translate}
    auth = HTTPBasicAuth(user, PASSWORDS[user]) if user else None
    return requests.request(method, server.url + path, headers=headers, auth=auth, timeout=30,
                            allow_redirects=False)


def raw_get(server, target, headers):
    """A request sent as written (no client normalising of the path or the headers)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest("GET", target, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def alice_auth() -> tuple[str, str]:
    import base64

    return ("Authorization", "Basic " + base64.b64encode(b"alice:alice pw").decode())


PREFIXES = ["", "/fpm"]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_without_translate_the_script_runs_even_for_a_source_author(server, prefix):
    for user in ("alice", None):
        r = get(server, f"{prefix}/secret.php", user, translate=None)
        assert r.status_code == 200 and r.text == RAN, (r.status_code, r.text[:300])


@pytest.mark.parametrize("prefix", PREFIXES)
def test_an_author_with_source_gets_the_raw_bytes(server, prefix):
    r = get(server, f"{prefix}/secret.php", "alice")
    assert r.status_code == 200, r.text[:300]
    assert r.content == SCRIPT
    assert r.headers["Content-Type"] == "application/octet-stream"
    head = get(server, f"{prefix}/secret.php", "alice", method="HEAD")
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(SCRIPT))
    assert head.content == b""


@pytest.mark.parametrize("value", ["f", "F", " f ", "f\t"])
def test_translate_f_in_any_case_asks_for_the_source(server, value):
    status, body = raw_get(server, "/secret.php", [alice_auth(), ("Translate", value)])
    assert status == 200 and body == SCRIPT


@pytest.mark.parametrize("headers", [[("Translate", "t")], [("Translate", "T")], [("Translate", "false")],
                                     [("Translate", "f, t")], [("Translate", "ff")], [("Translate", "")],
                                     [("Translate", "f"), ("Translate", "t")],
                                     [("Translate", "f"), ("Translate", "f")],
                                     [("X-Translate", "f")], [("Translate-", "f")]])
def test_other_translate_values_run_the_script(server, headers):
    status, body = raw_get(server, "/secret.php", [alice_auth()] + headers)
    assert b"MARKER" not in body and b"<?php" not in body
    assert status == 200 and body == RAN.encode()


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("user", ["bob", "carol", "dave", None])
def test_without_source_and_read_the_script_runs_and_no_source_leaks(server, prefix, user):
    """bob: Read and Write; carol: Source on *.txt only; dave: Source without Read; anonymous:
    Read. IIS continues as usual: the handler's output, 200, no refusal."""
    r = get(server, f"{prefix}/secret.php", user)
    assert b"MARKER" not in r.content and b"<?php" not in r.content
    assert r.status_code == 200 and r.text == RAN


def test_source_on_a_pattern_is_only_for_that_pattern(server):
    r = get(server, "/notes.txt", "carol")
    assert r.status_code == 200 and r.content == b"plain notes\n"
    assert r.headers["Content-Type"].startswith("text/plain")


TRICKS = ["/secret.php::$DATA", "/secret.php.", "/secret.php%2e", "/secret.php%20", "/secret.php/",
          "/secret.php/x", "/secret.php/x.txt", "/SECRET.PHP", "/secret.PHP", "/secret%2ephp",
          "/./secret.php", "/%2e/secret.php", "/x/../secret.php", "/secret.php%252e",
          "/secret.php;.txt", "/secret.php%00.txt", "/secret.php?.txt", "//secret.php",
          "/secret.p%68p", "/secret.php::%24DATA", "/secret.php%3a%3a$DATA"]


@pytest.mark.parametrize("target", TRICKS)
@pytest.mark.parametrize("user", ["bob", "carol", None])
def test_path_tricks_get_no_source(server, target, user):
    headers = [("Translate", "f")]
    if user:
        import base64

        token = base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()
        headers.append(("Authorization", "Basic " + token))
    status, body = raw_get(server, target, headers)
    assert b"MARKER" not in body and b"<?php" not in body, (status, body[:200])


@pytest.mark.parametrize("target", ["/secret.php::$DATA", "/secret.php.", "/secret.php%2e",
                                    "/secret.php/x", "/SECRET.PHP", "/secret.php%00"])
def test_path_tricks_name_no_file_for_a_source_author_either(server, target):
    status, body = raw_get(server, target, [alice_auth(), ("Translate", "f")])
    assert b"MARKER" not in body and b"<?php" not in body, (status, body[:200])
    assert status in (400, 404), status


def test_a_source_response_is_never_cached_for_others(server):
    for _ in range(4):   # past the output cache's frequent-hit threshold
        assert get(server, "/secret.php", "alice").content == SCRIPT
    for _ in range(4):
        r = get(server, "/secret.php", None, translate=None)
        assert r.status_code == 200 and r.text == RAN
        r = get(server, "/secret.php", None)
        assert r.status_code == 200 and r.text == RAN


def test_where_web_dav_is_off_translate_f_changes_nothing(server):
    """/plain has authoring rules granting alice Source, but WebDAV authoring is not enabled."""
    r = get(server, "/plain/secret.php", "alice")
    assert r.status_code == 200 and r.text == RAN, (r.status_code, r.text[:300])
