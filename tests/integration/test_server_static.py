"""Static files from an application's physical_path: types, validators, ranges, and no way out of
the root (dot segments in every spelling, backslashes, symlinks, NUL bytes)."""

from __future__ import annotations

import os
import socket
import threading

import pytest
import requests

CONFIG = """
{pool_timing}
[[pools]]
name = "Static"

[[sites]]
name = "Static Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "Static"
physical_path = "www"
"""

INDEX = "<!DOCTYPE html><html><body><h1>static index</h1></body></html>\n"
CSS = "body { color: #123456; }\n" * 40
PAGE = "<html><body>nested page</body></html>\n"
SECRET = "TOP-SECRET-0xDEADBEEF outside the web root\n"


@pytest.fixture(scope="module")
def server(wasp_module_server):
    root = wasp_module_server.dir / "www"
    (root / "sub" / "dir").mkdir(parents=True)
    (root / "index.html").write_text(INDEX)
    (root / "style.css").write_text(CSS)
    (root / "sub" / "dir" / "page.html").write_text(PAGE)
    (wasp_module_server.dir / "secret.txt").write_text(SECRET)
    outside = wasp_module_server.dir / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    os.symlink(wasp_module_server.dir / "secret.txt", root / "link.txt")
    os.symlink(outside, root / "linkdir")
    return wasp_module_server(CONFIG)


def get(server, path: str, **headers: str) -> requests.Response:
    return requests.get(server.url + path, headers=headers, timeout=30)


def test_default_document(server):
    r = get(server, "/")
    assert r.status_code == 200, (r.status_code, r.text[:300], server.diagnostics())
    assert r.text == INDEX
    assert r.headers["Content-Type"].startswith("text/html")


def test_nested_file(server):
    r = get(server, "/sub/dir/page.html")
    assert (r.status_code, r.text) == (200, PAGE)
    assert r.headers["Content-Type"].startswith("text/html")


def test_missing_file_is_404(server):
    assert get(server, "/nope.html").status_code == 404


def test_css_type_etag_and_304(server):
    r = get(server, "/style.css")
    assert r.status_code == 200 and r.text == CSS
    assert r.headers["Content-Type"].startswith("text/css")
    assert int(r.headers["Content-Length"]) == len(CSS)
    etag = r.headers.get("ETag")
    assert etag, f"no ETag: {dict(r.headers)}"
    assert r.headers.get("Last-Modified")
    again = get(server, "/style.css", **{"If-None-Match": etag})
    assert again.status_code == 304, again.status_code
    assert again.content == b""
    assert again.headers.get("ETag") == etag
    other = get(server, "/style.css", **{"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.text == CSS


def test_range_206_and_416(server):
    size = len(CSS)
    r = get(server, "/style.css", Range="bytes=0-9")
    assert r.status_code == 206, r.status_code
    assert r.content == CSS[:10].encode()
    assert r.headers["Content-Range"] == f"bytes 0-9/{size}"
    r = get(server, "/style.css", Range="bytes=-5")
    assert r.status_code == 206 and r.content == CSS[-5:].encode()
    assert r.headers["Content-Range"] == f"bytes {size - 5}-{size - 1}/{size}"
    r = get(server, "/style.css", Range=f"bytes={size + 10}-")
    assert r.status_code == 416, r.status_code
    assert r.headers.get("Content-Range") == f"bytes */{size}"


def test_head_of_a_file(server):
    r = requests.head(server.url + "/style.css", timeout=30)
    assert r.status_code == 200
    assert int(r.headers["Content-Length"]) == len(CSS)
    assert r.content == b""


ESCAPES = [
    "/../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/..%2fsecret.txt",
    "/..%2Fsecret.txt",
    "/%2e%2e%2fsecret.txt",
    "/sub/../../secret.txt",
    "/sub/dir/../../../secret.txt",
    "/%5c..%5csecret.txt",
    "/..%5csecret.txt",
    "/..\\secret.txt",
    "/.%2e/secret.txt",
    "/%252e%252e/secret.txt",
    "/link.txt",
    "/linkdir/secret.txt",
    "/index.html%00.txt",
    "/secret.txt%00",
    "/%00/../secret.txt",
]


@pytest.mark.parametrize("target", ESCAPES)
def test_no_escape_from_the_root(server, target):
    with server.connect() as conn:
        conn.send(server.build_request("GET", target, {"Connection": "close"}))
        try:
            response = conn.read_response()
        except ConnectionError:
            return  # the server closed the connection: nothing leaked
    assert SECRET.encode() not in response.body, f"{target} leaked the secret: {response.status}"
    assert response.status in (400, 403, 404), f"{target} -> {response.status} {response.body[:200]!r}"


BUSY_CONFIG = """
{pool_timing}
[[pools]]
name = "Busy"
threads = 2
[pools.process_model]
ping_response_time = "120s"  # held threads answer no ping: keep the worker while the test holds them

[[sites]]
name = "Busy Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "Busy"
physical_path = "www"
app = "blocking:app"
python_path = ["{apps}"]
"""


def test_static_files_do_not_wait_for_busy_app_threads(wasp_server):
    """Both WSGI threads of the pool are held by app requests; a static file, a default document
    and a 304 of the same application are answered while those requests are still running."""
    root = wasp_server.dir / "www"
    root.mkdir()
    (root / "index.html").write_text(INDEX)
    (root / "style.css").write_text(CSS)
    server = wasp_server(BUSY_CONFIG)
    warm = get(server, "/hello")
    assert (warm.status_code, warm.text) == (200, "app answered /hello"), server.diagnostics()

    held: list = []
    results: dict[int, object] = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(30)
        port = listener.getsockname()[1]

        def block(i: int) -> None:
            try:
                r = requests.get(f"{server.url}/block?port={port}", timeout=90)
                results[i] = (r.status_code, r.text)
            except requests.RequestException as exc:
                results[i] = repr(exc)

        clients = [threading.Thread(target=block, args=(i,), daemon=True) for i in range(2)]
        for t in clients:
            t.start()
        try:
            for _ in clients:  # each accepted "in" is one WSGI thread now held by the app
                conn, _addr = listener.accept()
                held.append(conn)
                conn.settimeout(30)
                assert conn.recv(2) == b"in"
            css = requests.get(server.url + "/style.css", timeout=20)
            index = requests.get(server.url + "/", timeout=20)
            cached = requests.get(server.url + "/style.css", timeout=20,
                                  headers={"If-None-Match": css.headers.get("ETag", "")})
            # Nothing was released yet: both app requests are still in flight.
            assert results == {} and all(t.is_alive() for t in clients), results
        finally:
            for conn in held:
                conn.sendall(b"x")
                conn.close()
            for t in clients:
                t.join(60)
    assert (css.status_code, css.text) == (200, CSS)
    assert (index.status_code, index.text) == (200, INDEX)
    assert cached.status_code == 304
    assert results == {0: (200, "released"), 1: (200, "released")}, (results, server.diagnostics())
