"""URL Rewrite through a real server (issue 10 item 3): the common recipes (HTTP -> HTTPS over
real TLS, canonical host, trailing slash, front controller, SPA fallback, reverse proxy), global
rules in the front sending a URL to another pool, rewrite maps, custom responses and aborts,
outbound rules on headers and on HTML (a static file and a streamed app response), what the W3C
log and the app see, and attacks: escaping the content root with `../`, CR LF from a
back-reference into Location, open redirects, spoofed X-Original-URL, ReDoS, huge URLs."""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import threading

import pytest

from tls_support import CA

CONFIG = """
{pool_timing}
[http_errors]
error_mode = "Detailed"
[request_filtering]
allow_double_escaping = true
[proxy]
enabled = true   # ARR's proxy is off by default, as in IIS

[rewrite]
global_rules = [
  { name = "legacy-api", match = { url = "^legacy/(.*)" }, action = { type = "Rewrite", url = "/api/{R:1}" } },
  { name = "global-moved", match = { url = "^moved-global$" }, action = { type = "Redirect", url = "/page.html", redirect_type = "Found" } },
  { name = "global-drop", match = { url = "^drop-global$" }, action = { type = "AbortRequest" } },
  { name = "asgi-legacy", match = { url = "^asgi-legacy/(.*)" }, action = { type = "Rewrite", url = "/asgi/{R:1}" } },
  { name = "global-proxy", match = { url = "^gproxy/(.*)" }, action = { type = "Rewrite", url = "http://127.0.0.1:@BACKEND@/g/{R:1}" } },
]

[[pools]]
name = "Rw"
[[pools]]
name = "Api"

[[sites]]
name = "R"
id = 1
bindings = [
  "http/127.0.0.1:{port}:",
  { binding = "https/127.0.0.1:@TLS@:", certificate = "@CERTS@/secure.test.pem", key = "@CERTS@/secure.test.key" },
]
[[sites.applications]]
path = "/"
pool = "Rw"
physical_path = "www"
app = "rewrite_app:app"
python_path = ["{apps}"]
[[sites.applications]]
path = "/api"
pool = "Api"
app = "rewrite_app:api"
python_path = ["{apps}"]

[[sites.applications]]
path = "/asgi"
pool = "Api"
app = "rewrite_app:asgi"
python_path = ["{apps}"]

[sites.rewrite]
rewrite_maps = [ { name = "Legacy", entries = [ { key = "/old-page", value = "/page.html" } ] } ]
preconditions = [ { name = "IsHTML", entries = [ { input = "{RESPONSE_CONTENT_TYPE}", pattern = "^text/html" } ] } ]

[[sites.rewrite.rules]]
name = "http-to-https"
match = { url = "(.*)" }
conditions = { entries = [ { input = "{HTTPS}", pattern = "^OFF$" }, { input = "{HTTP_HOST}", pattern = "^secure\\\\.test$" } ] }
action = { type = "Redirect", url = "https://{HTTP_HOST}/{R:1}", redirect_type = "Permanent" }

[[sites.rewrite.rules]]
name = "canonical-host"
match = { url = "(.*)" }
conditions = { entries = [ { input = "{HTTP_HOST}", pattern = "^example\\\\.test$" } ] }
action = { type = "Redirect", url = "http://www.example.test/{R:1}" }

[[sites.rewrite.rules]]
name = "trailing-slash"
match = { url = "^(blog/[^.]*[^/])$" }
conditions = { entries = [ { input = "{REQUEST_FILENAME}", match_type = "IsFile", negate = true } ] }
action = { type = "Redirect", url = "/{R:1}/" }

[[sites.rewrite.rules]]
name = "front-controller"
stop_processing = true
match = { url = "^shop/(.*)$" }
conditions = { entries = [
  { input = "{REQUEST_FILENAME}", match_type = "IsFile", negate = true },
  { input = "{REQUEST_FILENAME}", match_type = "IsDirectory", negate = true },
] }
action = { type = "Rewrite", url = "index.php?route={R:1}" }

[[sites.rewrite.rules]]
name = "spa"
stop_processing = true
match = { url = "^spa/" }
conditions = { logical_grouping = "MatchAll", entries = [
  { input = "{REQUEST_FILENAME}", match_type = "IsFile", negate = true },
  { input = "{REQUEST_FILENAME}", match_type = "IsDirectory", negate = true },
] }
action = { type = "Rewrite", url = "/spa/index.html" }

[[sites.rewrite.rules]]
name = "proxy"
match = { url = "^proxy/(.*)" }
action = { type = "Rewrite", url = "http://127.0.0.1:@BACKEND@/{R:1}" }

[[sites.rewrite.rules]]
name = "legacy-map"
match = { url = ".*" }
conditions = { entries = [ { input = "{Legacy:{REQUEST_URI}}", pattern = "(.+)" } ] }
action = { type = "Redirect", url = "{C:1}", append_query_string = false }

[[sites.rewrite.rules]]
name = "private"
match = { url = "^private/" }
action = { type = "CustomResponse", status_code = 403, sub_status_code = 99, status_reason = "Go Away", status_description = "not here" }

[[sites.rewrite.rules]]
name = "drop"
match = { url = "^drop$" }
action = { type = "AbortRequest" }

[[sites.rewrite.rules]]
name = "go"
match = { url = "^go/(.*)" }
action = { type = "Redirect", url = "{R:1}" }

[[sites.rewrite.rules]]
name = "crlf"
match = { url = "^crlf/(.*)" }
action = { type = "Redirect", url = "/x/{UrlDecode:{R:1}}" }

[[sites.rewrite.rules]]
name = "host-redirect"
match = { url = "^hr/(.*)" }
conditions = { entries = [ { input = "{HTTP_HOST}", pattern = "^(.+)$" } ] }
action = { type = "Redirect", url = "https://{C:1}/{R:1}" }

[[sites.rewrite.rules]]
name = "downloads"
match = { url = "^dl/(.*)" }
action = { type = "Rewrite", url = "/downloads/{UrlDecode:{R:1}}" }

[[sites.rewrite.rules]]
name = "redos"
match = { url = "^redos/(a|aa)+$" }
action = { type = "Rewrite", url = "/page.html" }

[[sites.rewrite.rules]]
name = "to-other-app"
match = { url = "^other/(.*)" }
action = { type = "Rewrite", url = "/api/{R:1}" }

[[sites.rewrite.rules]]
name = "out-rewrite"
match = { url = "^o/(.*)" }
action = { type = "Rewrite", url = "/out/{R:1}" }

[[sites.rewrite.outbound_rules]]
name = "backend-links"
precondition = "IsHTML"
match = { filter_by_tags = "A, Img", pattern = "^http://backend\\\\.internal/(.*)" }
action = { type = "Rewrite", value = "/{R:1}" }

[[sites.rewrite.outbound_rules]]
name = "backend-location"
match = { server_variable = "RESPONSE_Location", pattern = "^http://backend\\\\.internal/(.*)" }
action = { type = "Rewrite", value = "https://{HTTP_HOST}/{R:1}" }
"""

LINKS = (b'<html><head><link href="http://backend.internal/s.css"></head><body>'
         b'<a href="http://backend.internal/doc?x=1&amp;y=2">d</a>'
         b'<img alt="logo" src="http://backend.internal/logo.png"></body></html>')


def write(path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


class Backend(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"backend": self.path, "host": self.headers.get("Host")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def backend():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def server(wasp_module_server, backend):
    d = wasp_module_server.dir
    ca = CA(d / "certs")
    ca.issue("secure.test")
    write(d / "www/page.html", "the page")
    write(d / "www/links.html", LINKS)
    write(d / "www/spa/index.html", "spa shell")
    write(d / "www/spa/app.js", "spa js")
    write(d / "www/shop/real.txt", "a real file")
    write(d / "www/blog/post/index.html", "post")
    write(d / "www/downloads/file.txt", "download")
    write(d / "secret.txt", "TOP SECRET")
    # Distributed rules in a web.toml (the rewrite section is not locked, as in IIS).
    write(d / "www/wt/web.toml", '[rewrite]\nrules = [ { name = "wt", match = { url = "^wt/(\\\\d+)$" }, '
                                 'action = { type = "Rewrite", url = "/wt/item.html?id={R:1}" } } ]\n')
    write(d / "www/wt/item.html", "item page")
    tls_port = wasp_module_server.free_port()
    text = (CONFIG.replace("@TLS@", str(tls_port)).replace("@CERTS@", str(d / "certs"))
            .replace("@BACKEND@", str(backend)))
    server = wasp_module_server(text)
    server.tls_port = tls_port
    server.ca = ca
    return server


def get(server, target: str, host: str = "r.test", headers: str = "", method: str = "GET"):
    with server.connect() as conn:
        conn.send(f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n".encode("latin-1"))
        return conn.read_response(method)


def get_tls(server, target: str, host: str = "secure.test"):
    with server.connect() as conn:
        context = ssl.create_default_context(cafile=str(server.ca.path))
        conn.sock.close()
        raw = socket.create_connection(("127.0.0.1", server.tls_port), timeout=20)
        conn.sock = context.wrap_socket(raw, server_hostname="secure.test")
        conn.send(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode("latin-1"))
        return conn.read_response()


def app_json(response) -> dict:
    assert response.status == 200, (response.status, response.body[:300])
    return json.loads(response.body)


# ---- recipes ----

def test_http_to_https_redirect_then_served_over_tls(server):
    r = get(server, "/page.html?x=1", host="secure.test")
    assert r.status == 301
    assert r.header("location") == "https://secure.test/page.html?x=1"
    tls = get_tls(server, "/page.html?x=1")
    assert (tls.status, tls.body) == (200, b"the page")   # HTTPS is on: the rule does not apply


def test_canonical_host(server):
    r = get(server, "/a/b?q=1", host="example.test")
    assert (r.status, r.header("location")) == (301, "http://www.example.test/a/b?q=1")
    assert b"Object Moved" in r.body
    assert get(server, "/page.html", host="www.example.test").status == 200


def test_trailing_slash_added_for_a_directory(server):
    r = get(server, "/blog/post")
    assert (r.status, r.header("location")) == (301, "/blog/post/")
    assert get(server, "/blog/post/").body == b"post"


def test_front_controller_rewrites_to_index_php_and_keeps_the_original_url(server):
    seen = app_json(get(server, "/shop/cart/items?page=2"))
    assert seen["path"] == "/index.php"
    assert seen["query"] == "route=cart/items&page=2"
    assert seen["original"] == "/shop/cart/items?page=2"   # HTTP_X_ORIGINAL_URL
    assert seen["request_uri"] == "/shop/cart/items?page=2"  # REQUEST_URI stays as sent (IIS)
    # A real file under shop/ is served as itself.
    assert get(server, "/shop/real.txt").body == b"a real file"


def test_front_controller_logs_the_original_url(server):
    get(server, "/shop/logged-one")

    def logged():
        for path in (server.dir / "logs").rglob("u_ex*.log"):
            for line in path.read_text().splitlines():
                if "/shop/logged-one" in line:
                    return line
        return None
    line = server.wait_until(logged, what="the rewritten request in the W3C log")
    assert "index.php" not in line


def test_spa_fallback(server):
    assert get(server, "/spa/users/42").body == b"spa shell"
    assert get(server, "/spa/app.js").body == b"spa js"
    assert get(server, "/spa/").body == b"spa shell"   # a directory without a default document


def test_reverse_proxy(server, backend):
    r = get(server, "/proxy/items?id=7")
    assert json.loads(r.body)["backend"] == "/items?id=7"
    r = get(server, "/gproxy/x?y=1")   # a global rule's proxy: RequestHead.proxy_url
    assert json.loads(r.body)["backend"] == "/g/x?y=1"


def test_rules_from_a_web_toml(server):
    assert get(server, "/wt/42").body == b"item page"
    assert get(server, "/wt/item.html").body == b"item page"


# ---- global rules (the front, before routing) ----

def test_global_rule_routes_to_another_application_in_another_pool(server):
    seen = app_json(get(server, "/legacy/users?id=1"))
    assert (seen["app"], seen["script_name"], seen["path"]) == ("api", "/api", "/users")
    assert seen["query"] == "id=1"
    assert seen["original"] == "/legacy/users?id=1"


def test_global_rule_to_an_asgi_application(server):
    seen = app_json(get(server, "/asgi-legacy/items?x=2"))
    assert (seen["app"], seen["root_path"], seen["path"], seen["query"]) == ("asgi", "/asgi", "/asgi/items", "x=2")
    assert seen["original"] == "/asgi-legacy/items?x=2"


def test_global_redirect_and_abort_answered_by_the_front(server):
    r = get(server, "/moved-global")
    assert (r.status, r.header("location")) == (302, "/page.html")
    with server.connect() as conn:
        conn.send(b"GET /drop-global HTTP/1.1\r\nHost: r.test\r\n\r\n")
        assert conn.read_until_close() == b""


def test_the_fronts_answers_are_in_the_sites_w3c_log(server):
    get(server, "/moved-global?from=log")

    def logged():
        for path in (server.dir / "logs").rglob("u_ex*.log"):
            for line in path.read_text().splitlines():
                fields = line.split(" ")
                if "/moved-global" in fields and "from=log" in fields:
                    return fields
        return None
    fields = server.wait_until(logged, what="the global redirect in the W3C log")
    assert "302" in fields


def test_distributed_rule_cannot_leave_its_application(server):
    r = get(server, "/other/x")
    assert r.status == 500 and b"500.50" in r.body


# ---- maps, custom responses, aborts ----

def test_rewrite_map_redirect(server):
    r = get(server, "/old-page")
    assert (r.status, r.header("location")) == (301, "/page.html")


def test_custom_response_and_abort(server):
    r = get(server, "/private/x")
    assert (r.status, r.reason, r.body) == (403, "Go Away", b"not here")
    with server.connect() as conn:
        conn.send(b"GET /drop HTTP/1.1\r\nHost: r.test\r\n\r\n")
        assert conn.read_until_close() == b""
    assert get(server, "/page.html").status == 200   # the server goes on


# ---- outbound ----

def test_outbound_rewrites_links_in_a_static_html_file(server):
    r = get(server, "/links.html")
    assert r.status == 200
    assert b'href="/doc?x=1&amp;y=2"' in r.body and b'src="/logo.png"' in r.body
    assert b'<link href="http://backend.internal/s.css">' in r.body   # Link is not in the rule's tags
    assert int(r.header("content-length")) == len(r.body)
    assert r.header("etag") is None   # it named the file's bytes, not these
    head = get(server, "/links.html", method="HEAD")
    assert head.status == 200 and head.body == b""
    assert head.header("content-length") in (None, str(len(r.body)))
    r2 = get(server, "/links.html")   # and the connection-level framing stayed sane
    assert r2.body == r.body


def test_outbound_rewrites_a_streamed_html_response(server):
    r = get(server, "/o/html")
    assert r.status == 200
    assert r.body == (b'<html><body><a href="/one">1</a><img src="/img.png"><a href="/local">x</a>'
                      b'<p>http://backend.internal/text-stays</p></body></html>')


def test_outbound_leaves_other_types_and_compressed_bodies_alone(server):
    assert get(server, "/o/plain").body == b'<a href="http://backend.internal/one">'
    import gzip
    assert gzip.decompress(get(server, "/o/gzip").body) == b'<a href="http://backend.internal/one">'


def test_outbound_rewrites_the_location_header(server):
    r = get(server, "/o/redirect", host="www.r.test")
    assert (r.status, r.header("location")) == (302, "https://www.r.test/after?x=1")


# ---- attacks ----

def test_spoofed_x_original_url_never_reaches_the_app(server):
    seen = app_json(get(server, "/shop/a", headers="X-Original-URL: /admin\r\nX-Rewrite-URL: /admin\r\n"))
    assert seen["original"] == "/shop/a" and seen["rewrite_url"] == ""
    seen = app_json(get(server, "/plain", headers="X-Original-URL: /admin\r\n"))
    assert seen["original"] == ""


def test_rewrite_with_dot_dot_cannot_escape_the_content_root(server):
    for target in ("/dl/%252e%252e%252f%252e%252e%252fsecret.txt", "/dl/..%252f..%252fsecret.txt",
                   "/dl/%252e%252e/secret.txt", "/dl/file.txt%2500"):
        r = get(server, target)
        assert b"TOP SECRET" not in r.body, target
        if r.status == 200:   # resolved inside the site, where only the app answers it
            assert app_json(r)["path"] == "/secret.txt", target
        else:
            assert r.status in (400, 404), (target, r.status)
    assert get(server, "/dl/file.txt").body == b"download"


def test_crlf_from_a_back_reference_does_not_split_the_response(server):
    r = get(server, "/crlf/a%250d%250aSet-Cookie:%2520pwned=1")
    assert r.status == 301
    assert r.header("set-cookie") is None
    assert r.header("location") == "/x/a%0D%0ASet-Cookie:%20pwned=1"


def test_no_open_redirect_through_a_protocol_relative_location(server):
    for target in ("/go//evil.example/x", "/go/%2f%2fevil.example", "/go/%5C%5Cevil.example"):
        r = get(server, target)
        location = r.header("location") or ""
        assert r.status == 301, (target, r.status)
        # A path on this host, never "//evil.example" (protocol-relative: another host).
        assert location.startswith("/") and location[1:2] not in ("/", "\\"), (target, location)


def test_a_host_header_cannot_smuggle_another_authority_into_location(server):
    r = get(server, "/hr/x", host="good.test")
    assert r.header("location") == "https://good.test/x"
    for host in ("evil.example@good.test", "good.test/@evil.example"):
        r = get(server, "/hr/x", host=host)
        location = r.header("location")
        assert location is None or location.startswith("https://good.test/"), (host, location)


def test_redos_input_is_a_500_50_and_the_worker_stays_responsive(server):
    r = get(server, "/redos/" + "a" * 3000 + "!")
    assert r.status == 500 and b"500.50" in r.body
    assert get(server, "/redos/aaaa").body == b"the page"
    assert get(server, "/page.html").status == 200


def test_huge_urls_are_refused_before_or_by_the_rules_and_the_server_goes_on(server):
    r = get(server, "/shop/" + "x" * 20000)
    assert r.status in (400, 404, 414)
    r = get(server, "/shop/" + "y" * 4000)   # under the limits: served by the front controller
    assert r.status == 200 and app_json(r)["query"].startswith("route=yyy")
    assert get(server, "/page.html").status == 200


def test_http2_global_redirect(server):
    h2 = pytest.importorskip("h2.connection")
    import h2.config
    import h2.events
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        conn.send_headers(1, [(":method", "GET"), (":path", "/moved-global"), (":scheme", "http"),
                              (":authority", "r.test")], end_stream=True)
        sock.sendall(conn.data_to_send())
        headers = None
        for _ in range(100):
            data = sock.recv(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    headers = dict(event.headers)
                if isinstance(event, h2.events.StreamEnded):
                    data = b""
            sock.sendall(conn.data_to_send())
            if headers is not None:
                break
    if headers is None:
        pytest.skip("no HTTP/2 over cleartext on this binding")
    assert headers[b":status"] == b"302" and headers[b"location"] == b"/page.html"
