"""IP and domain restrictions and dynamic IP restrictions through a real server: 403.503 for a
static file, the WSGI app and a redirect alike; allow_unlisted = false; a location loosening a
deny; IPv4-mapped entries; the deny actions (401/404 .503, AbortRequest closing the connection,
seen with a raw socket); proxy mode (a forged X-Forwarded-For can add a denial, never remove
one; a malformed one is 400.10); reverse DNS (127.0.0.1 -> localhost, forward-confirmed);
request rate 403.502 then recovery; concurrency 403.501 with requests held by the app;
logging-only mode; the substatus in the W3C log."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests
from h2_support import H2Client

CONFIG = """
{pool_timing}
[http_errors]
error_mode = "Detailed"

[[pools]]
name = "Ip"
threads = 8

[[sites]]
name = "Ip Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "Ip"
physical_path = "www"
app = "blocking:app"
python_path = ["{apps}"]
[[sites.applications]]
path = "/rate"
pool = "Ip"
app = "blocking:app"
python_path = ["{apps}"]
[sites.applications.dynamic_ip_security.deny_by_request_rate]
enabled = true
max_requests = 3
request_interval_ms = 3000
[[sites.applications]]
path = "/conc"
pool = "Ip"
app = "blocking:app"
python_path = ["{apps}"]
[sites.applications.dynamic_ip_security.deny_by_concurrent_requests]
enabled = true
max_concurrent_requests = 2
[[sites.applications]]
path = "/logonly"
pool = "Ip"
app = "blocking:app"
python_path = ["{apps}"]
[sites.applications.dynamic_ip_security]
enable_logging_only_mode = true
[sites.applications.dynamic_ip_security.deny_by_request_rate]
enabled = true
max_requests = 1
request_interval_ms = 60000

[[locations]]
path = "Ip Site/deny"
ip_security = [{ ip_address = "127.0.0.1" }]

[[locations]]
path = "Ip Site/deny/open"
[locations.ip_security]
clear = true

[[locations]]
path = "Ip Site/only"
[locations.ip_security]
allow_unlisted = false
add = [{ ip_address = "10.0.0.0", subnet_mask = "255.0.0.0", allowed = true }]

[[locations]]
path = "Ip Site/onlylocal"
[locations.ip_security]
allow_unlisted = false
add = [{ ip_address = "127.0.0.0/8", allowed = true }]

[[locations]]
path = "Ip Site/mapped"
ip_security = [{ ip_address = "::ffff:127.0.0.0", subnet_mask = "104" }]

[[locations]]
path = "Ip Site/notfound"
[locations.ip_security]
deny_action = "NotFound"
add = [{ ip_address = "127.0.0.1" }]

[[locations]]
path = "Ip Site/unauth"
[locations.ip_security]
deny_action = "Unauthorized"
add = [{ ip_address = "127.0.0.1" }]

[[locations]]
path = "Ip Site/abort"
[locations.ip_security]
deny_action = "AbortRequest"
add = [{ ip_address = "127.0.0.1" }]

[[locations]]
path = "Ip Site/proxy"
[locations.ip_security]
enable_proxy_mode = true
add = [{ ip_address = "203.0.113.0/24" }]

[[locations]]
path = "Ip Site/proxyonly"
[locations.ip_security]
enable_proxy_mode = true
allow_unlisted = false
add = [{ ip_address = "10.0.0.1", allowed = true }]

[[locations]]
path = "Ip Site/dns"
[locations.ip_security]
enable_reverse_dns = true
add = [{ domain_name = "localhost" }]

[[locations]]
path = "Ip Site/wt"
override_mode = "Allow"
[locations.ip_security]

[[locations]]
path = "Ip Site/dnswild"
[locations.ip_security]
enable_reverse_dns = true
allow_unlisted = false
add = [{ domain_name = "*.example.invalid", allowed = true }]
"""

FOLDERS = ["deny", "deny/open", "only", "onlylocal", "mapped", "notfound", "unauth", "abort", "proxy",
           "proxyonly", "dns", "dnswild", "open", "deny/dir", "wt", "wt/bad", "locked"]


@pytest.fixture(scope="module")
def server(wasp_module_server):
    d = wasp_module_server.dir
    for folder in FOLDERS:
        (d / "www" / folder).mkdir(parents=True, exist_ok=True)
        (d / "www" / folder / "file.txt").write_text(f"CONTENT-OF:{folder}")
    (d / "www/wt/web.toml").write_text('[ip_security]\nallow_unlisted = false\n')
    (d / "www/wt/bad/web.toml").write_text('[ip_security]\n\nentries = [{ ip_address = "10.0.0.0/40" }]\n')
    (d / "www/locked/web.toml").write_text('[ip_security]\nallow_unlisted = false\n')
    server = wasp_module_server(CONFIG)
    server.wait_until = wasp_module_server.wait_until
    r = requests.get(server.url + "/open/file.txt", timeout=30)
    assert r.status_code == 200, server.diagnostics()
    return server


def get(server, path, **kw):
    return requests.get(server.url + path, timeout=30, allow_redirects=False, **kw)


def code(r) -> str:
    for status in ("401", "403", "404", "400"):
        for sub in ("503", "504", "501", "502", "10"):
            if f"HTTP Error {status}.{sub}" in r.text:
                return f"{r.status_code}.{sub}"
    return str(r.status_code)


@pytest.mark.parametrize("path, expect", [
    ("/deny/file.txt", "403.503"),          # static file
    ("/deny/nothing-here", "403.503"),      # the WSGI app
    ("/deny/dir", "403.503"),               # a redirect (directory without its slash)
    ("/DENY/file.txt", "403.503"),          # locations compare without case
    ("/deny/open/file.txt", "200"),         # a location below loosens it (clear)
    ("/open/file.txt", "200"),
    ("/open/nothing-here", "200"),
    ("/only/file.txt", "403.503"),          # allow_unlisted = false, 127.0.0.1 not allowed
    ("/only/app", "403.503"),
    ("/onlylocal/file.txt", "200"),
    ("/mapped/file.txt", "403.503"),        # an IPv4-mapped entry is the IPv4 network
    ("/notfound/file.txt", "404.503"),
    ("/unauth/file.txt", "401.503"),
    ("/dns/file.txt", "403.504"),           # 127.0.0.1 -> localhost, forward-confirmed
    ("/dnswild/file.txt", "403.503"),       # no name under the allowed domain: unlisted
])
def test_restrictions(server, path, expect):
    r = get(server, path)
    assert code(r) == expect, (r.status_code, r.text[:400])


@pytest.mark.parametrize("xff, expect", [
    ("203.0.113.5", "403.503"),                   # any listed address denies
    ("198.51.100.1, 203.0.113.77", "403.503"),
    ("[::ffff:203.0.113.9]:80", "403.503"),
    ("198.51.100.1", "200"),
    ("garbage", "400.10"),
    ("198.51.100.1, unknown", "400.10"),
])
def test_proxy_mode(server, xff, expect):
    r = get(server, "/proxy/file.txt", headers={"X-Forwarded-For": xff})
    assert code(r) == expect, (r.status_code, r.text[:400])


def test_proxy_mode_never_admits_by_a_forged_header(server):
    # allow_unlisted = false allows only 10.0.0.1: a client saying it forwards for 10.0.0.1 is
    # still 127.0.0.1 itself, which is checked too.
    r = get(server, "/proxyonly/file.txt", headers={"X-Forwarded-For": "10.0.0.1"})
    assert code(r) == "403.503"
    assert code(get(server, "/proxy/file.txt", headers={"X-Forwarded-For": "10.0.0.1"})) == "200"


def test_web_toml(server):
    # unlocked by a location: a web.toml may restrict its folder
    assert code(get(server, "/wt/file.txt")) == "403.503"
    # a bad entry is a 500.19 naming the key and line
    r = get(server, "/wt/bad/file.txt")
    assert r.status_code == 500 and "HTTP Error 500.19" in r.text, r.text[:300]
    assert "ip_security.entries[0].ip_address" in r.text and "line 3" in r.text, r.text
    # locked by default (IIS: overrideModeDefault Deny)
    r = get(server, "/locked/file.txt")
    assert r.status_code == 500 and "HTTP Error 500.19" in r.text and "locked" in r.text, r.text[:300]


def test_a_restricted_url_is_never_answered_from_the_front_cache(server):
    # Allowed three times (a cacheable static file), then asked by a client proxy mode denies:
    # the front must not hand it the copy the allowed client fetched.
    for _ in range(3):
        assert code(get(server, "/proxy/file.txt")) == "200"
    r = get(server, "/proxy/file.txt", headers={"X-Forwarded-For": "203.0.113.5"})
    assert code(r) == "403.503", r.text[:300]


def test_abort_request_closes_without_a_response(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"GET /abort/file.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data == b""
    # the connection is gone, the server is fine
    assert get(server, "/open/file.txt").status_code == 200


def logged(server, stem):
    lines = [line.split(" ") for path in (server.dir / "logs").rglob("u_ex*.log")
             for line in path.read_text().splitlines() if not line.startswith("#")]
    return [(f[11], f[12]) for f in lines if f[4] == stem]


def test_substatus_reaches_the_w3c_log(server):
    get(server, "/unauth/file.txt")
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"GET /abort/file.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.recv(10)
    server.wait_until(lambda: logged(server, "/unauth/file.txt") and logged(server, "/abort/file.txt"),
                      what="the denials in the W3C log")
    assert ("401", "503") in logged(server, "/unauth/file.txt")
    assert ("0", "503") in logged(server, "/abort/file.txt")


def test_request_rate_then_recovery(server):
    codes = [code(get(server, f"/rate/x{i}")) for i in range(6)]
    assert codes[:3] == ["200"] * 3 and "403.502" in codes[3:], codes
    time.sleep(6.5)   # two intervals with nothing: the client's window is empty again
    assert code(get(server, "/rate/again")) == "200"


def test_logging_only_mode_lets_everything_through(server):
    codes = [code(get(server, f"/logonly/x{i}")) for i in range(4)]
    assert codes == ["200"] * 4
    server.wait_until(lambda: "would deny 127.0.0.1 in 1/logonly" in server.stderr_path.read_text(),
                      what="the logging-only line")


def test_concurrency_limit(server):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    held, results = [], []

    def hold():
        results.append(get(server, f"/conc/block?port={port}"))

    threads = [threading.Thread(target=hold) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        for _ in range(2):
            conn, _ = listener.accept()
            assert conn.recv(2) == b"in"
            held.append(conn)
        r = get(server, "/conc/other")
        assert code(r) == "403.501", r.text[:300]
        for conn in held:
            conn.sendall(b"x")
        for t in threads:
            t.join(30)
        assert [r.status_code for r in results] == [200, 200]
        assert code(get(server, "/conc/other")) == "200"
    finally:
        for conn in held:
            conn.close()
        listener.close()


def raw_get(server, target: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk


@pytest.mark.parametrize("target", [
    b"/deny/file.txt",
    b"/%64eny/file.txt",            # percent-encoded
    b"/%2564eny/file.txt",          # double-encoded: must not reach the file either
    b"/DeNy/file.txt",              # case
    b"/./deny/file.txt",            # dot segments
    b"/open/../deny/file.txt",
    b"//deny/file.txt",             # empty segment
    b"/deny//file.txt",
    b"/deny/./file.txt",
    b"/deny/file.txt?x=1",          # a query
    b"/deny/file.txt;x=1",          # a path parameter
    b"/deny;x/file.txt",
    b"/deny\\file.txt",             # backslash
    b"/deny/file.txt.",             # trailing dot
    b"/deny/file.txt%20",
    b"http://x/deny/file.txt",      # absolute form
    b"///deny///file.txt",
    b"/open/..//deny/file.txt",
])
def test_no_spelling_of_a_denied_url_gets_the_file(server, target):
    data = raw_get(server, target)
    status = data.split(b" ", 2)[1] if data else b"-"
    assert b"CONTENT-OF:deny" not in data, (target, data[:300])
    # Denied, refused, or (a path naming no file: "deny;x", "%64eny") the app's answer.
    assert status in (b"403", b"404", b"400") or b"app answered" in data, (target, data[:300])


def test_abort_request_over_http2_resets_the_stream_only(server):
    with H2Client(server.port) as client:
        denied = client.get("/abort/file.txt")
        assert denied["reset"] is not None and denied["headers"] == {} and denied["body"] == b""
        allowed = client.get("/open/file.txt")   # the connection's other streams go on
        assert allowed["headers"][b":status"] == b"200" and allowed["body"] == b"CONTENT-OF:open"
