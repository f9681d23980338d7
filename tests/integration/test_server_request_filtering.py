"""Request filtering through a real server (issue 9 items 4 and 8): every rule applies alike to a
static file, a default document, a redirect and the Python app; the substatus reaches the W3C
log; bypass attempts over a real socket; what the front refuses first (400) versus the module
(404.x); a chunked body over the limit; and the rules per location and in web.toml."""

from __future__ import annotations

import pytest

CONFIG = """
{pool_timing}
[http_errors]
error_mode = "Detailed"
[request_filtering]
deny_url_sequences = ["forbidden"]
[request_filtering.verbs]
verbs = [{ verb = "DELETE", allowed = false }]

[[pools]]
name = "Filt"

[[sites]]
name = "F"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "Filt"
physical_path = "www"
app = "filter_app:app"
python_path = ["{apps}"]

[[locations]]
path = "F/small"
[locations.request_filtering.request_limits]
max_allowed_content_length = 100

[[locations]]
path = "F/legacy"
[locations.request_filtering]
legacy_status_codes = true
[locations.request_filtering.request_limits]
max_allowed_content_length = 100
header_limits = [{ header = "X-Big", size_limit = 10 }]

[[locations]]
path = "F/modern"
[locations.request_filtering.request_limits]
header_limits = [{ header = "X-Big", size_limit = 10 }]

[[locations]]
path = "F/open"
[locations.request_filtering.hidden_segments]
segments = { remove = ["bin"] }
"""


def write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture(scope="module")
def server(wasp_module_server):
    d = wasp_module_server.dir
    for rel in ("www/index.html", "www/page.html", "www/forbidden.html", "www/forbiddendir/index.html",
                "www/bin/a.txt", "www/dir/index.html", "www/x.config", "www/open/bin/a.txt",
                "www/strict/page.html", "www/App_Data/db.txt"):
        write(d / rel, rel)
    write(d / "www/strict/web.toml", '[request_filtering.verbs]\nallow_unlisted = false\n'
                                     'verbs = [{ verb = "GET", allowed = true }]\n')
    server = wasp_module_server(CONFIG)
    server.wait_until = wasp_module_server.wait_until
    return server


def raw(server, request: bytes, method: str = "GET"):
    with server.connect() as conn:
        conn.send(request)
        return conn.read_response(method)


def get(server, target: str, method: str = "GET", headers: str = ""):
    return raw(server, f"{method} {target} HTTP/1.1\r\nHost: f.test\r\n{headers}\r\n".encode("latin-1"),
               method)


def test_the_server_serves_what_no_rule_denies(server):
    assert (get(server, "/page.html").status, get(server, "/page.html").body) == (200, b"www/page.html")
    assert get(server, "/dir/").body == b"www/dir/index.html"        # default document
    assert get(server, "/dir").status == 301                          # redirect to the slash
    assert get(server, "/app/echo").body == b"app /app/echo"          # the Python app
    assert get(server, "/open/bin/a.txt").body == b"www/open/bin/a.txt"  # a location loosens


@pytest.mark.parametrize("target, what, expected", [
    ("/forbidden.html", "static file", "404.5"),
    ("/forbiddendir/", "default document", "404.5"),
    ("/forbiddendir", "redirect", "404.5"),
    ("/app/forbidden", "Python app", "404.5"),
    ("/bin/a.txt", "static file", "404.8"),
    ("/bin", "redirect", "404.8"),
    ("/bin/", "directory", "404.8"),
    ("/bin/echo", "Python app", "404.8"),
    ("/x.config", "static file", "404.7"),
    ("/app/echo.config", "Python app", "404.7"),
    ("/a+b.html", "Python app", "404.11"),
])
def test_every_rule_applies_to_every_kind_of_answer(server, target, what, expected):
    r = get(server, target)
    assert r.status == 404 and f"HTTP Error {expected}".encode() in r.body, (what, r.status, r.body[:300])
    assert b"request_filtering" in r.body and b"BeginRequest" in r.body


@pytest.mark.parametrize("method, target, headers", [
    ("DELETE", "/page.html", ""),
    ("DELETE", "/app/echo", ""),
    ("POST", "/app/echo", "X-HTTP-Method-Override: DELETE\r\nContent-Length: 0\r\n"),
])
def test_a_denied_verb_is_404_6_even_tunnelled(server, method, target, headers):
    r = get(server, target, method, headers)
    assert r.status == 404 and b"HTTP Error 404.6" in r.body, r.body[:300]


@pytest.mark.parametrize("target, status", [
    ("/WEB.TOML", 404), ("/Bin/a.txt", 404), ("/bin%2fa.txt", 404), ("/b%69n/a.txt", 404),
    ("/bin;x/a.txt", 404), ("/x.config.", 404), ("/x.config%20", 404), ("/x.CONFIG", 404),
    ("/a.config;.png", 404), ("/x%EF%BC%8Econfig", 404), ("/App_Data/db.txt", 404),
    ("/%252e%252e/web.toml", 404), ("/strict/../bin/a.txt", 404),
    ("/bin\\a.txt", 404), ("/a%5c..%5cbin/a.txt", 404),
    # the front refuses these itself (400, HTTPERR reason URL) before any worker sees them
    ("/x.config%00.txt", 400), ("/a%0d%0ab", 400), ("/bad%zz", 400), ("/../../etc/passwd", 400),
])
def test_bypass_attempts_over_a_real_socket(server, target, status):
    r = get(server, target)
    assert r.status == status, (target, r.status, r.body[:200])
    assert b"www/" not in r.body and b"app " not in r.body


def test_a_refusal_keeps_the_connection_usable(server):
    with server.connect() as conn:
        conn.send(b"GET /bin/a.txt HTTP/1.1\r\nHost: f.test\r\n\r\nGET /page.html HTTP/1.1\r\nHost: f.test\r\n\r\n")
        assert conn.read_response().status == 404
        second = conn.read_response()
        assert (second.status, second.body) == (200, b"www/page.html")


def test_a_web_toml_tightens_the_verbs_of_its_folder(server):
    assert get(server, "/strict/page.html").status == 200
    r = get(server, "/strict/page.html", "HEAD")
    assert r.status == 404  # HEAD is not listed in the web.toml's allow list
    assert get(server, "/page.html", "HEAD").status == 200


def test_content_length_and_chunked_bodies_over_the_limit_are_413_1(server):
    r = get(server, "/small/up", "POST", "Content-Length: 101\r\n")
    assert r.status == 413 and b"HTTP Error 413.1" in r.body, r.body[:300]
    ok = raw(server, b"POST /small/up HTTP/1.1\r\nHost: f.test\r\nContent-Length: 100\r\n\r\n" + b"x" * 100)
    assert ok.body == b"app /small/up read 100"
    chunk = b"40\r\n" + b"y" * 64 + b"\r\n"
    small = raw(server, b"POST /small/up HTTP/1.1\r\nHost: f.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                + chunk + b"0\r\n\r\n")
    assert small.body == b"app /small/up read 64"
    big = raw(server, b"POST /small/up HTTP/1.1\r\nHost: f.test\r\nTransfer-Encoding: chunked\r\n\r\n"
              + chunk * 2 + b"0\r\n\r\n")
    assert big.status == 413 and b"HTTP Error 413.1" in big.body, (big.status, big.body[:300])
    # Elsewhere IIS's 30,000,000 bytes apply.
    assert raw(server, b"POST /up HTTP/1.1\r\nHost: f.test\r\nContent-Length: 200\r\n\r\n" + b"z" * 200).body \
        == b"app /up read 200"


def test_legacy_status_codes_are_iis_7s_404_13_and_404_10(server):
    r = get(server, "/legacy/up", "POST", "Content-Length: 101\r\n")
    assert r.status == 404 and b"HTTP Error 404.13" in r.body, r.body[:300]
    assert b"Content Length Too Large" in r.body
    chunk = b"40\r\n" + b"y" * 64 + b"\r\n"
    big = raw(server, b"POST /legacy/up HTTP/1.1\r\nHost: f.test\r\nTransfer-Encoding: chunked\r\n\r\n"
              + chunk * 2 + b"0\r\n\r\n")
    assert big.status == 404 and b"HTTP Error 404.13" in big.body, (big.status, big.body[:300])
    r = get(server, "/legacy/page", "GET", "X-Big: " + "b" * 11 + "\r\n")
    assert r.status == 404 and b"HTTP Error 404.10" in r.body, r.body[:300]
    assert get(server, "/legacy/page", "GET", "X-Big: " + "b" * 10 + "\r\n").status == 200
    # IIS 10's codes without the setting.
    r = get(server, "/modern/page", "GET", "X-Big: " + "b" * 11 + "\r\n")
    assert r.status == 431 and b"HTTP Error 431" in r.body, r.body[:300]


def test_the_substatus_reaches_the_w3c_log(server):
    expected = {"/x.config": ("404", "7"), "/bin/a.txt": ("404", "8"), "/forbidden.html": ("404", "5"),
                "/a+b.html": ("404", "11")}
    for target in expected:
        get(server, target)

    def logged():
        lines = [line.split(" ") for path in (server.dir / "logs").rglob("u_ex*.log")
                 for line in path.read_text().splitlines() if not line.startswith("#")]
        found = {f[4]: (f[11], f[12]) for f in lines if f[4] in expected}
        return found if len(found) == len(expected) else None
    assert server.wait_until(logged, what="the request filtering denials in the W3C log") == expected


@pytest.mark.parametrize("request_", [
    b"GET /page.html HTTP/1.1\r\nHost: f.test\r\nX-A: a\r\n X-HTTP-Method-Override: DELETE\r\n\r\n",  # obs-fold
    b"GET /page.html HTTP/1.1\r\nHost: f.test\r\nX-A: a\rX-HTTP-Method-Override: DELETE\r\n\r\n",   # bare CR
    b"GET /page.html HTTP/1.1\r\nHost: f.test\r\nX-HTTP-Method-Override : DELETE\r\n\r\n",          # space before :
    b"GET /bin/a.txt\x00 HTTP/1.1\r\nHost: f.test\r\n\r\n",                                           # raw NUL
])
def test_header_injection_is_refused_by_the_front(server, request_):
    r = raw(server, request_)
    assert r.status == 400, (r.status, r.body[:200])


def test_an_override_header_naming_an_allowed_verb_passes(server):
    r = get(server, "/app/echo", "POST", "X-HTTP-Method-Override: PUT\r\nContent-Length: 0\r\n")
    assert (r.status, r.body) == (200, b"app /app/echo read 0")
