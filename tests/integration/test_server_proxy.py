"""The reverse proxy (IIS ARR) through a real server, against real backends started here:
gunicorn instances, nginx, a websockets server and a misbehaving raw-socket server.

Round robin, weights, least requests and cookie affinity; a health check that takes a backend
out and brings it back; a backend killed mid-test with no idempotent request failing; retries
on connect failure (and 502.3 for a POST), 502.4 with no server; X-Forwarded-* / Forwarded,
hop-by-hop headers, Host and Location rewriting; streaming upload and download; keep-alive reuse
(nginx's $connection); a WebSocket tunnel; and the attacks: response splitting, CL+TE and endless
heads from the backend, slowloris and stalled bodies (timeouts), a close mid-response (a cut, not
a hang), request smuggling from the client, and SSRF by absolute-form target or Host.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
import time

import pytest
import requests

import proxy_support as ps

CONFIG = """
{pool_timing}
[http_errors]
error_mode = "Detailed"

[[pools]]
name = "Proxy"

[[web_farms]]
name = "rr"
[[web_farms.servers]]
address = "127.0.0.1"
http_port = {A}
[[web_farms.servers]]
address = "127.0.0.1"
http_port = {B}

[[web_farms]]
name = "weighted"
[[web_farms.servers]]
address = "127.0.0.1"
http_port = {A}
weight = 300
[[web_farms.servers]]
address = "127.0.0.1"
http_port = {B}

[[web_farms]]
name = "least"
application_request_routing.load_balancing.algorithm = "LeastRequests"
[[web_farms.servers]]
address = "127.0.0.1"
http_port = {A}
[[web_farms.servers]]
address = "127.0.0.1"
http_port = {B}

[[web_farms]]
name = "sticky"
application_request_routing.affinity.use_cookie = true
[[web_farms.servers]]
address = "127.0.0.1"
http_port = {A}
[[web_farms.servers]]
address = "127.0.0.1"
http_port = {B}

[[web_farms]]
name = "hc"
[web_farms.application_request_routing.health_check]
url = "http://hc/health"
interval = "1s"
timeout = "2s"
response_match = "healthy"
[[web_farms.servers]]
address = "127.0.0.1"
http_port = {A}
[[web_farms.servers]]
address = "127.0.0.1"
http_port = {C}

[[web_farms]]
name = "kill"
[[web_farms.servers]]
address = "127.0.0.1"
http_port = {K1}
[[web_farms.servers]]
address = "127.0.0.1"
http_port = {K2}

[[web_farms]]
name = "retryget"
[[web_farms.servers]]
address = "127.0.0.1"
http_port = {DEAD}
[[web_farms.servers]]
address = "127.0.0.1"
http_port = {A}

[[web_farms]]
name = "retrypost"
[[web_farms.servers]]
address = "127.0.0.1"
http_port = {DEAD}
[[web_farms.servers]]
address = "127.0.0.1"
http_port = {A}

[[web_farms]]
name = "off"
enabled = false
[[web_farms.servers]]
address = "127.0.0.1"
http_port = {A}

[[web_farms]]
name = "ngx"
[[web_farms.servers]]
address = "127.0.0.1"
http_port = {N}

[[sites]]
name = "Proxy Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "Proxy"
physical_path = "www"

[[sites.applications]]
path = "/mixed"
pool = "Proxy"
app = "flask_app:app"
python_path = ["{apps}"]

[proxy]
enabled = true
timeout = "2s"

[[locations]]
path = "Proxy Site/mixed/px"
proxy.url = "http://127.0.0.1:{A}"

[[locations]]
path = "Proxy Site/rr"
proxy.url = "http://rr"
[[locations]]
path = "Proxy Site/weighted"
proxy.url = "http://weighted"
[[locations]]
path = "Proxy Site/least"
[locations.proxy]
url = "http://least"
timeout = "20s"
[[locations]]
path = "Proxy Site/sticky"
proxy.url = "http://sticky"
[[locations]]
path = "Proxy Site/hc"
proxy.url = "http://hc"
[[locations]]
path = "Proxy Site/kill"
proxy.url = "http://kill"
[[locations]]
path = "Proxy Site/retryget"
proxy.url = "http://retryget"
[[locations]]
path = "Proxy Site/retrypost"
proxy.url = "http://retrypost"
[[locations]]
path = "Proxy Site/off"
proxy.url = "http://off"
[[locations]]
path = "Proxy Site/ngx"
proxy.url = "http://ngx"
[[locations]]
path = "Proxy Site/direct"
proxy.url = "http://127.0.0.1:{A}"
[[locations]]
path = "Proxy Site/slow"
[locations.proxy]
url = "http://127.0.0.1:{A}"
timeout = "1s"
[[locations]]
path = "Proxy Site/evil"
proxy.url = "http://127.0.0.1:{E}"
[[locations]]
path = "Proxy Site/ws"
proxy.url = "http://127.0.0.1:{W}"
[[locations]]
path = "Proxy Site/preserve"
[locations.proxy]
url = "http://127.0.0.1:{A}"
preserve_host_header = true
"""


@pytest.fixture(scope="module")
def env(wasp_module_server):
    d = wasp_module_server.dir
    (d / "www").mkdir(exist_ok=True)
    (d / "www" / "local.txt").write_text("local")
    free = wasp_module_server.free_port
    ports = {k: free() for k in ("A", "B", "C", "K1", "K2", "DEAD", "N", "E", "W")}
    backends = {}
    try:
        for name in ("A", "B", "K1", "K2"):
            backends[name] = ps.gunicorn(name, ports[name], d)
        backends["C"] = ps.gunicorn("C", ports["C"], d, env={"HEALTH_FILE": str(d / "C.sick")})
        backends["N"] = ps.nginx(ports["N"], d)
        backends["E"] = ps.script("evil_backend", ports["E"], d, env={"EVIL_LOG": str(d / "evil.log")})
        backends["W"] = ps.script("ws_backend", ports["W"], d)
        text = CONFIG
        for key, port in ports.items():
            text = text.replace("{" + key + "}", str(port))
        server = wasp_module_server(text)
        yield server, backends, d
    finally:
        for backend in backends.values():
            backend.stop()


def get(server, path, **kw):
    kw.setdefault("timeout", 30)
    return requests.get(server.url + path, **kw)


def name_of(r) -> str:
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return r.json()["name"]


def test_round_robin_alternates(env):
    server, _, _ = env
    names = [name_of(get(server, "/rr/x")) for _ in range(10)]
    assert names.count("A") == 5 and names.count("B") == 5
    assert all(a != b for a, b in zip(names, names[1:]))


def test_weights_share_requests(env):
    server, _, _ = env
    names = [name_of(get(server, "/weighted/x")) for _ in range(8)]
    assert names.count("A") == 6 and names.count("B") == 2


def test_least_requests_avoids_the_busy_server(env):
    server, backends, _ = env
    results = {}

    def busy():
        results["slow"] = get(server, "/least/slow?3")
    t = threading.Thread(target=busy)
    t.start()
    try:
        def in_flight():
            for name in ("A", "B"):
                r = requests.get(f"http://127.0.0.1:{backends[name].port}/inflight", timeout=10)
                if r.text == "1":
                    return name
            return None
        busy_name = server.wait_until(in_flight, timeout=20, what="the slow request at its backend")
        # While one backend works on the slow request, the fast ones all go to the other.
        names = [name_of(get(server, "/least/x")) for _ in range(4)]
    finally:
        t.join(30)
    assert name_of(results["slow"]) == busy_name
    assert names == [{"A": "B", "B": "A"}[busy_name]] * 4


def test_cookie_affinity_sticks(env):
    server, _, _ = env
    first = get(server, "/sticky/x")
    cookie = first.cookies.get("ARRAffinity")
    assert cookie and len(cookie) == 32
    assert "HttpOnly" in first.headers["Set-Cookie"] and "Path=/" in first.headers["Set-Cookie"]
    names = {name_of(get(server, "/sticky/x", cookies={"ARRAffinity": cookie})) for _ in range(6)}
    assert names == {first.json()["name"]}
    again = get(server, "/sticky/x", cookies={"ARRAffinity": cookie})
    assert "Set-Cookie" not in again.headers  # the cookie already names its server
    # Without the cookie the farm balances (and hands out the other server's cookie).
    others = {name_of(get(server, "/sticky/x")) for _ in range(4)}
    assert others == {"A", "B"}
    # A cookie naming no server is ignored.
    assert name_of(get(server, "/sticky/x", cookies={"ARRAffinity": "0" * 32})) in ("A", "B")


def test_health_check_takes_a_server_out_and_back(env):
    server, _, d = env
    seen = {name_of(get(server, "/hc/x")) for _ in range(4)}
    assert seen == {"A", "C"}
    (d / "C.sick").write_text("")
    try:
        def only_a():
            return all(name_of(get(server, "/hc/x")) == "A" for _ in range(4))
        server.wait_until(only_a, timeout=20, what="C taken out by its failing health check")
    finally:
        (d / "C.sick").unlink()

    def c_back():
        return "C" in {name_of(get(server, "/hc/x")) for _ in range(4)}
    server.wait_until(c_back, timeout=20, what="C back after a passing health check")


def test_backend_killed_mid_test_fails_no_idempotent_request(env):
    server, backends, _ = env
    session = requests.Session()
    names = [name_of(session.get(server.url + "/kill/x", timeout=30)) for _ in range(6)]
    assert set(names) == {"K1", "K2"}  # both have kept-alive connections in the pool now
    failures = []
    stop = threading.Event()

    def load():
        s = requests.Session()
        while not stop.is_set():
            for method in ("GET", "HEAD", "DELETE", "PUT"):
                r = s.request(method, server.url + "/kill/y", timeout=30)
                if r.status_code != 200:
                    failures.append((method, r.status_code, r.text[:200]))
    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(20):  # let the load run a little on both backends
            session.get(server.url + "/kill/x", timeout=30)
        backends["K1"].kill()
        after = [name_of(session.get(server.url + "/kill/x", timeout=30)) for _ in range(30)]
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert failures == []
    assert set(after) == {"K2"}


def test_retries_idempotent_on_connect_failure_but_not_post(env):
    server, _, _ = env
    assert name_of(get(server, "/retryget/x")) == "A"
    r = requests.post(server.url + "/retrypost/x", data=b"body", timeout=30)
    assert r.status_code == 502 and "502.3" in r.text
    # The failed server is out now: the next POST goes to the live one.
    assert requests.post(server.url + "/retrypost/x", data=b"body", timeout=30).json()["name"] == "A"


def test_no_server_available_is_502_4(env):
    server, _, _ = env
    r = get(server, "/off/x")
    assert r.status_code == 502 and "502.4" in r.text


def test_forwarding_headers_and_host(env):
    server, _, _ = env
    r = get(server, "/direct/x?q=1", headers={"X-Forwarded-For": "6.6.6.6", "Forwarded": "for=6.6.6.6",
                                              "X-Forwarded-Host": "spoof", "Connection": "X-Secret",
                                              "X-Secret": "s", "Host": "www.example.test"})
    info = r.json()
    h = info["headers"]
    assert info["path"] == "/direct/x" and info["query"] == "q=1"
    assert h["x-forwarded-for"].startswith("127.0.0.1:") and "6.6.6.6" not in json.dumps(h)
    assert h["x-forwarded-proto"] == "http" and h["x-forwarded-host"] == "www.example.test"
    assert h["forwarded"].startswith('for="127.0.0.1:') and 'host="www.example.test"' in h["forwarded"]
    assert h["x-original-url"] == "/direct/x?q=1"
    assert "x-secret" not in h
    assert h["host"].startswith("127.0.0.1:")  # preserve_host_header = false
    assert get(server, "/preserve/x", headers={"Host": "www.example.test"}).json()["headers"]["host"] \
        == "www.example.test"


def test_response_hop_by_hop_and_location_rewrite(env):
    server, _, _ = env
    r = get(server, "/evil/hop")
    assert r.text == "hop" and "X-Secret" not in r.headers and "Keep-Alive" not in r.headers
    assert "Proxy-Connection" not in r.headers
    r = get(server, "/direct/redirect", allow_redirects=False, headers={"Host": "www.example.test"})
    assert r.status_code == 302 and r.headers["Location"] == "http://www.example.test/landed"


def test_proxy_inside_an_application_with_a_wsgi_app(env):
    # The WSGI app answers its URLs on threads; the proxied location runs on the loop, its body
    # reader moved from the thread's kind to the loop's before anything read it.
    server, _, _ = env
    assert get(server, "/mixed/").text == "Hello from Flask"
    r = requests.post(server.url + "/mixed/px/upload", data=b"z" * 300_000, timeout=30)
    assert r.json() == {"name": "A", "length": 300_000, "sha256": hashlib.sha256(b"z" * 300_000).hexdigest()}
    assert get(server, "/mixed/px/x").json()["path"] == "/mixed/px/x"


def test_local_content_is_not_proxied(env):
    server, _, _ = env
    assert get(server, "/local.txt").text == "local"


def test_streaming_upload_and_download(env):
    server, _, _ = env
    blob = hashlib.sha256(b"seed").digest() * (8 * 1024 * 1024 // 32)

    def pieces():
        for i in range(0, len(blob), 100_000):
            yield blob[i:i + 100_000]
    r = requests.post(server.url + "/direct/upload", data=pieces(), timeout=60)  # chunked
    assert r.status_code == 200, server.diagnostics()
    assert r.json() == {"name": "A", "length": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
    r = requests.put(server.url + "/direct/upload", data=blob, timeout=60)  # Content-Length
    assert r.json()["length"] == len(blob)
    total = 0
    with requests.get(server.url + "/direct/big?20971520", stream=True, timeout=60) as r:
        for part in r.iter_content(65536):
            total += len(part)
    assert total == 20 * 1024 * 1024


def test_a_slow_client_holds_the_backend_back(env):
    # Back-pressure: while the client reads nothing, the backend can only fill the buffers on
    # the way (sockets, the front's window, the proxy's response_buffer_limit of 4 MiB), not
    # push its 256 MiB into the worker.
    server, _, d = env
    progress = d / "evil.log.flood"
    progress.unlink(missing_ok=True)
    with requests.get(server.url + "/evil/flood", stream=True, timeout=60) as r:
        first = r.raw.read(1 << 20)
        assert len(first) == 1 << 20

        def stalled():
            # The backend's count has stopped moving for a second (sleeps, not a timing assertion).
            if not progress.exists():
                return False
            seen = {progress.read_text()}
            for _ in range(5):
                time.sleep(0.2)
                seen.add(progress.read_text())
            return len(seen) == 1
        server.wait_until(stalled, timeout=60, what="the backend blocked by back-pressure")
        sent = int(progress.read_text() or 0)
        assert sent < 64 << 20, sent
    assert get(server, "/local.txt").text == "local"


def test_keep_alive_reuses_backend_connections(env):
    server, _, _ = env
    seen = [get(server, "/ngx/x").text.split() for _ in range(5)]
    assert all(s[0] == "nginx" for s in seen)
    connections = {s[1] for s in seen}
    assert len(connections) == 1, seen  # one backend connection carried them all
    assert [int(s[2]) for s in seen] == sorted(int(s[2]) for s in seen)
    assert int(seen[-1][2]) >= 5


def test_head_through_the_proxy(env):
    server, _, _ = env
    r = requests.head(server.url + "/direct/x", timeout=30)
    assert r.status_code == 200 and int(r.headers["Content-Length"]) > 0 and r.content == b""
    assert get(server, "/direct/x").status_code == 200  # the connection was reused sanely


def test_websocket_tunnel(env):
    server, _, _ = env
    from websockets.sync.client import connect
    try:
        ws = connect(f"ws://127.0.0.1:{server.port}/ws/echo", open_timeout=20)
    except Exception:
        raise AssertionError(server.diagnostics())
    with ws:
        ws.send("hello")
        assert ws.recv(timeout=20) == "echo:hello"
        ws.send(b"\x00\x01" * 50_000)
        assert ws.recv(timeout=20) == b"\x00\x01" * 50_000


def test_backend_timeout_is_502_3(env):
    server, _, _ = env
    r = get(server, "/slow/slow?3")
    assert r.status_code == 502 and "502.3" in r.text


@pytest.mark.parametrize("path", ["/evil/split", "/evil/cl-te", "/evil/endless-header", "/evil/slowloris",
                                  "/evil/no-response"])
def test_malicious_backend_heads_are_502_3(env, path):
    server, _, _ = env
    r = get(server, path)
    assert r.status_code == 502 and "502.3" in r.text, (path, r.status_code)
    assert "evil" not in r.cookies and "X-A" not in r.headers
    assert get(server, "/local.txt").text == "local"


@pytest.mark.parametrize("path", ["/evil/close-mid", "/evil/stall-body"])
def test_a_cut_backend_body_cuts_the_client(env, path):
    server, _, _ = env
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        r = get(server, path)
        r.content  # noqa: B018
    assert get(server, "/local.txt").text == "local"


def test_endless_backend_body_streams_and_the_client_can_leave(env):
    server, _, _ = env
    with requests.get(server.url + "/evil/endless-body", stream=True, timeout=30) as r:
        got = 0
        for part in r.iter_content(65536):
            got += len(part)
            if got > 2 * 1024 * 1024:
                break
    assert got > 2 * 1024 * 1024
    assert get(server, "/local.txt").text == "local"


def _evil_lines(d):
    p = d / "evil.log"
    return p.read_bytes().splitlines() if p.exists() else []


@pytest.mark.parametrize("raw", [
    b"POST /evil/smuggle1 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\nGET /evil/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /evil/smuggle2 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd",
    b"GET /evil/smuggle3 HTTP/1.1\r\nHost: x\r\nX-A: a\r\n folded\r\n\r\n",
])
def test_request_smuggling_never_reaches_the_backend_ambiguously(env, raw):
    server, _, d = env
    before = len(_evil_lines(d))
    with server.connect() as conn:
        conn.send(raw)
        try:
            r = conn.read_response()
            status = r.status
        except Exception:
            status = 0
    lines = _evil_lines(d)[before:]
    assert not any(b"smuggled" in line for line in lines)
    if status == 200:  # taken as one well-framed request: the backend got exactly that
        assert len(lines) == 1 and lines[0].count(b"Content-Length") <= 1
        assert b"Transfer-Encoding" not in lines[0] or b"Content-Length" not in lines[0]
    else:
        assert status in (0, 400) and lines == []


def test_ssrf_absolute_target_and_host_do_not_choose_the_backend(env):
    server, _, d = env
    before = len(_evil_lines(d))
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("GET", "http://169.254.169.254/evil/meta", headers={"Host": "169.254.169.254"})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    assert r.status == 200 and body == b"fine", server.diagnostics()
    line = _evil_lines(d)[before]
    assert line.startswith(b"GET /evil/meta HTTP/1.1|Host: 127.0.0.1:")
