"""Static and dynamic compression through a real server (docs/compression.md): Accept-Encoding
negotiation, Vary, the rules that turn it off (HTTP/1.0, Via, Range, size, types, already
encoded, 204, HEAD), the compressed-file cache directory (frequent hits, a changed file, disk
limit, concurrent first hits), ETags of compressed variants, the front's cache keeping one copy
per coding, HTTP/2, and an SSE stream read one event at a time through the compressor."""

from __future__ import annotations

import concurrent.futures
import gzip
import hashlib
import os
import pathlib
import socket
import sys
import time
import zlib

import brotli
import pytest
import requests
import zstandard

from h2_support import H2Client

sys.path.insert(0, str(pathlib.Path(__file__).parent / "apps"))
from comp_app import DATA, PAGE  # noqa: E402  (what the app sends, to compare with)

CONFIG = """
{pool_timing}
[cache]
frequent_hit_time_period = "60s"

[http_compression]
max_disk_space_usage = "256KiB"
dynamic_types = [ { mime_type = "application/json" } ]

[[pools]]
name = "Comp"

[[sites]]
name = "Comp Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]

[[sites.applications]]
path = "/"
pool = "Comp"
physical_path = "www"
app = "comp_app:application"
python_path = ["{apps}"]

[[sites.applications]]
path = "/asgi"
pool = "Comp"
app = "comp_app:asgi"
interface = "asgi"
python_path = ["{apps}"]

[[sites.applications]]
path = "/plain"
pool = "Comp"
physical_path = "www"
app = "comp_app:application"
python_path = ["{apps}"]
[sites.applications.url_compression]
do_dynamic_compression = false
do_static_compression = false
"""

CSS = ("".join(f".rule-{i} {{ color: #{i:06x}; margin: {i}px; }}\n" for i in range(400))).encode()
GZ = {"Accept-Encoding": "gzip"}


@pytest.fixture(scope="module")
def server(wasp_module_server):
    www = wasp_module_server.dir / "www"
    www.mkdir()
    for name in ("style.css", "br.css", "zstd.css", "etag.css", "range.css", "rules.css",
                 "change.css", "front.css", "h2.css", "race.css"):
        (www / name).write_bytes(CSS)
    (www / "tiny.css").write_bytes(b"p { margin: 0 }\n")
    (www / "image.png").write_bytes(b"\x89PNG" + CSS)
    return wasp_module_server(CONFIG)


def get(server, path: str, headers=None, method: str = "GET") -> requests.Response:
    # requests would ask for gzip itself and decode it: ask for exactly what the test says.
    sent = {"Accept-Encoding": "identity"}
    sent.update(headers or {})
    response = requests.request(method, server.url + path, headers=sent, timeout=30, stream=True)
    response.raw.decode_content = False
    response.body = response.raw.read() if method != "HEAD" else b""
    return response


def decode(coding: str | None, body: bytes) -> bytes:
    if coding == "gzip":
        return gzip.decompress(body)
    if coding == "br":
        return brotli.decompress(body)
    if coding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    return body


def vary_names(response) -> set[str]:
    return {v.strip().lower() for v in response.headers.get("Vary", "").split(",") if v.strip()}


def compressed(server, path: str, headers=GZ, want: str = "gzip") -> requests.Response:
    """Ask until the compressed copy is there (the 2nd request makes it; a thread writes it)."""
    for _ in range(200):
        response = get(server, path, headers)
        assert response.status_code == 200, (response.status_code, server.diagnostics())
        if response.headers.get("Content-Encoding") == want:
            return response
        time.sleep(0.05)
    raise AssertionError(f"{path} never came {want}-compressed: {server.diagnostics()}")


def copies(server) -> list[str]:
    root = server.dir / "run" / "compressed" / "Comp"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# ---- static files ----

def test_a_static_file_is_compressed_once_frequently_hit_and_sent_from_the_cache_dir(server):
    first = get(server, "/style.css", GZ)
    assert first.status_code == 200 and "Content-Encoding" not in first.headers
    assert first.body == CSS and "accept-encoding" in vary_names(first)
    response = compressed(server, "/style.css")
    assert gzip.decompress(response.body) == CSS and len(response.body) < len(CSS) // 3
    assert int(response.headers["Content-Length"]) == len(response.body)
    assert "accept-encoding" in vary_names(response)
    # Its own validator: the identity ETag with -gzip inside the quotes.
    assert response.headers["ETag"] == first.headers["ETag"][:-1] + '-gzip"'
    assert response.headers["Last-Modified"] == first.headers["Last-Modified"]
    # The copy is in <run>/compressed/<pool>/, named by a hash, never by the URL.
    real = os.path.realpath(server.dir / "www" / "style.css")
    digest = hashlib.sha256(real.encode()).hexdigest()[:40]
    names = [n for n in copies(server) if digest in n]
    assert len(names) == 1 and names[0].startswith(digest[:2] + "/") and names[0].endswith(".gz")
    # A client that accepts nothing gets the file itself.
    plain = get(server, "/style.css")
    assert plain.body == CSS and "Content-Encoding" not in plain.headers


@pytest.mark.parametrize("path, accept, coding", [
    ("/br.css", "gzip;q=0.5, br", "br"),
    ("/zstd.css", "zstd, gzip;q=0.9", "zstd"),
])
def test_q_values_pick_the_scheme(server, path, accept, coding):
    response = compressed(server, path, {"Accept-Encoding": accept}, want=coding)
    assert decode(coding, response.body) == CSS


def test_conditional_requests_compare_the_variant_etag(server):
    response = compressed(server, "/etag.css")
    etag = response.headers["ETag"]
    again = get(server, "/etag.css", {**GZ, "If-None-Match": etag})
    assert again.status_code == 304 and again.headers["ETag"] == etag
    assert "accept-encoding" in vary_names(again)
    # The identity ETag does not validate the gzip representation, and the other way round.
    identity = get(server, "/etag.css").headers["ETag"]
    assert identity != etag
    other = get(server, "/etag.css", {**GZ, "If-None-Match": identity})
    assert other.status_code == 200 and other.headers["Content-Encoding"] == "gzip"
    plain = get(server, "/etag.css", {"If-None-Match": etag})
    assert plain.status_code == 200 and plain.body == CSS


def test_a_range_request_gets_the_file_itself(server):
    compressed(server, "/range.css")
    part = get(server, "/range.css", {**GZ, "Range": "bytes=0-99"})
    assert part.status_code == 206 and part.body == CSS[:100]
    assert "Content-Encoding" not in part.headers


@pytest.mark.parametrize("headers", [
    {"Accept-Encoding": "gzip;q=0"},
    {"Accept-Encoding": "*;q=0"},
    {"Accept-Encoding": "identity"},
    {"Accept-Encoding": "deflate, compress"},
    {"Accept-Encoding": "gzip", "Via": "1.1 proxy.example"},
], ids=["gzip-q0", "star-q0", "identity", "unknown", "via"])
def test_rules_that_keep_a_file_uncompressed(server, headers):
    compressed(server, "/rules.css")
    response = get(server, "/rules.css", headers)
    assert response.status_code == 200 and response.body == CSS
    assert "Content-Encoding" not in response.headers


@pytest.mark.parametrize("accept", ["*", "identity;q=0, gzip", "x-gzip"])
def test_star_and_identity_q0_still_compress(server, accept):
    response = compressed(server, "/rules.css", {"Accept-Encoding": accept},
                          want="br" if accept == "*" else "gzip")
    assert decode(response.headers["Content-Encoding"], response.body) == CSS


def test_http_10_gets_the_file_itself(server):
    compressed(server, "/rules.css")
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(b"GET /rules.css HTTP/1.0\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"content-encoding" not in head.lower()
    assert body == CSS


def test_small_files_other_types_and_urls_without_compression(server):
    for _ in range(3):
        tiny = get(server, "/tiny.css", GZ)
        png = get(server, "/image.png", GZ)
        off = get(server, "/plain/style.css", GZ)
    assert "Content-Encoding" not in tiny.headers and "Vary" not in tiny.headers
    assert "Content-Encoding" not in png.headers and png.body.startswith(b"\x89PNG")
    assert "Content-Encoding" not in off.headers and off.body == CSS


def test_a_changed_file_is_never_served_from_a_stale_copy(server):
    path = server.dir / "www" / "change.css"
    compressed(server, "/change.css")
    for i in range(3):
        text = CSS + f"/* version {i} */\n".encode() * (i + 1)
        path.write_bytes(text)
        response = get(server, "/change.css", GZ)
        assert decode(response.headers.get("Content-Encoding"), response.body) == text
        response = compressed(server, "/change.css")
        assert gzip.decompress(response.body) == text
    # The old copies went when the new one landed.
    digest = hashlib.sha256(os.path.realpath(path).__str__().encode()).hexdigest()[:40]
    assert len([n for n in copies(server) if digest in n and n.endswith(".gz")]) == 1


def test_concurrent_first_hits_make_one_copy(server):
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(lambda _: get(server, "/race.css", GZ).body, range(16)))
    assert all(decode(None, b) == CSS or gzip.decompress(b) == CSS for b in bodies)
    compressed(server, "/race.css")
    digest = hashlib.sha256(os.path.realpath(server.dir / "www" / "race.css").encode()).hexdigest()[:40]
    assert len([n for n in copies(server) if digest in n]) == 1
    assert not [n for n in copies(server) if ".tmp" in n]


def test_the_front_keeps_one_copy_per_coding(server):
    # The classic bug: a cached gzip body served to a client that did not ask for it.
    response = compressed(server, "/front.css")
    for _ in range(3):
        response = get(server, "/front.css", GZ)
        assert response.headers["Content-Encoding"] == "gzip"
    rows = [r for r in server.list_json("cache") if r["url"].endswith("/front.css")]
    assert any(r["vary"].get("accept-encoding") == "gzip" for r in rows), rows
    for _ in range(3):
        plain = get(server, "/front.css")
        assert "Content-Encoding" not in plain.headers and plain.body == CSS
        bare = requests.get(server.url + "/front.css", headers={"Accept-Encoding": None}, timeout=30,
                            stream=True)
        assert "Content-Encoding" not in bare.headers and bare.raw.read() == CSS
    # A change of the file itself drops the cached gzip copy (it is the copy's file the front sends).
    path = server.dir / "www" / "front.css"
    path.write_bytes(CSS + b"/* changed */\n")
    response = get(server, "/front.css", GZ)
    assert decode(response.headers.get("Content-Encoding"), response.body) == CSS + b"/* changed */\n"


def test_http2_gets_the_compressed_copy(server):
    compressed(server, "/h2.css")
    with H2Client(server.port) as client:
        response = client.get("/h2.css", authority=f"127.0.0.1:{server.port}",
                              extra=[(b"accept-encoding", b"gzip")])
    assert response["headers"][b":status"] == b"200"
    assert response["headers"][b"content-encoding"] == b"gzip"
    assert gzip.decompress(response["body"]) == CSS


def test_the_disk_limit_evicts_and_refuses_what_cannot_fit(server):
    www = server.dir / "www"
    # Random hex compresses to about half: 2 MB makes ~1 MB, over the 256 KiB limit.
    huge = www / "huge.txt"
    huge.write_bytes(os.urandom(1024 * 1024).hex().encode())
    for _ in range(4):
        response = get(server, "/huge.txt", GZ)
        assert "Content-Encoding" not in response.headers and len(response.body) == 2 * 1024 * 1024
    # Files that compress to ~40 KB each: more of them than 90 % of 256 KiB holds.
    for i in range(10):
        (www / f"fill{i}.txt").write_bytes(os.urandom(40 * 1024).hex().encode())
        compressed(server, f"/fill{i}.txt")
    root = server.dir / "run" / "compressed" / "Comp"
    wait = server.wait_until
    wait(lambda: sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) <= 0.9 * 256 * 1024,
         timeout=20, what="the copies to fit in 90 % of the limit")
    assert not [n for n in copies(server) if ".tmp" in n]
    assert gzip.decompress(compressed(server, "/fill9.txt").body) == (www / "fill9.txt").read_bytes()


# ---- dynamic responses ----

def test_a_whole_json_response_is_compressed_with_a_content_length(server):
    response = get(server, "/json", GZ)
    assert response.headers["Content-Encoding"] == "gzip"
    assert int(response.headers["Content-Length"]) == len(response.body)
    assert gzip.decompress(response.body) == DATA and "accept-encoding" in vary_names(response)
    plain = get(server, "/json")
    assert plain.body == DATA and "Content-Encoding" not in plain.headers


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_a_streamed_response_is_compressed_chunked(server, coding):
    response = get(server, "/stream", {"Accept-Encoding": coding})
    assert response.headers["Content-Encoding"] == coding
    assert "Content-Length" not in response.headers
    assert response.headers["Transfer-Encoding"] == "chunked"
    expected = b"".join(b"line %d of a streamed body\n" % i for i in range(2000))
    assert decode(coding, response.body) == expected


def test_a_write_then_iterable_response_and_app_headers(server):
    written = get(server, "/write", GZ)
    assert written.headers["Content-Encoding"] == "gzip" and gzip.decompress(written.body) == PAGE
    page = get(server, "/page", GZ)
    assert gzip.decompress(page.body) == PAGE
    assert page.headers["ETag"] == '"page-v1-gzip"'
    assert vary_names(page) == {"cookie", "accept-encoding"}


def test_one_big_write_is_compressed_in_pieces(server):
    response = get(server, "/big", {"Accept-Encoding": "gzip"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(response.body) == b"0123456789abcdef" * (512 * 1024)


@pytest.mark.parametrize("path, method, headers", [
    ("/encoded", "GET", GZ),          # already encoded: never twice
    ("/png", "GET", GZ),              # not a dynamic type
    ("/small", "GET", GZ),            # under min_file_size_for_comp
    ("/nocontent", "GET", GZ),        # 204
    ("/page", "HEAD", GZ),            # HEAD
    ("/page", "GET", {"Accept-Encoding": "gzip", "Via": "1.0 cache"}),
    ("/plain/page", "GET", GZ),       # url_compression.do_dynamic_compression = false
], ids=["encoded", "png", "small", "204", "head", "via", "url-off"])
def test_dynamic_responses_left_alone(server, path, method, headers):
    response = get(server, path, headers, method=method)
    if path == "/encoded":
        assert response.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(response.body) == PAGE  # once, not twice
        return
    assert "Content-Encoding" not in response.headers, response.headers


def test_an_asgi_response_is_compressed(server):
    response = get(server, "/asgi/page", {"Accept-Encoding": "br"})
    assert response.headers["Content-Encoding"] == "br" and brotli.decompress(response.body) == PAGE


@pytest.mark.parametrize("path", ["/asgi/sse", "/sse"], ids=["asgi", "wsgi"])
def test_server_sent_events_arrive_one_at_a_time_through_gzip(server, tmp_path, path):
    """Event 1 must be decodable before the app sends event 2 (it waits for the flag the test
    creates only after decoding event 1): each app write is flushed through the compressor."""
    flag = tmp_path / "flag"
    _pending["data"] = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n"
                     f"X-Flag: {flag}\r\n\r\n".encode())
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            buffer += sock.recv(65536)
        head, _, rest = buffer.partition(b"\r\n\r\n")
        assert b"content-encoding: gzip" in head.lower() and b"chunked" in head.lower()
        inflater = zlib.decompressobj(31)
        decoded = b""
        raw = rest
        for _ in range(1000):
            decoded += inflater.decompress(_dechunk(raw))
            raw = b""
            if b"data: first event\n\n" in decoded:
                break
            raw = sock.recv(65536)
            assert raw, "closed before the first event"
        assert decoded == b"data: first event\n\n"
        flag.write_text("go")
        for _ in range(1000):
            raw = sock.recv(65536)
            assert raw, "closed before the second event"
            decoded += inflater.decompress(_dechunk(raw))
            if b"second event" in decoded:
                break
        assert decoded.endswith(b"data: second event\n\n")


_pending = {"data": b""}


def _dechunk(data: bytes) -> bytes:
    """The payload of whole chunks received so far (keeps a partial one for the next call)."""
    buf = _pending["data"] + data
    out = b""
    while True:
        line, sep, rest = buf.partition(b"\r\n")
        if not sep:
            break
        size = int(line.split(b";")[0], 16)
        if len(rest) < size + 2:
            break
        out += rest[:size]
        buf = rest[size + 2:]
        if size == 0:
            break
    _pending["data"] = buf
    return out


def test_http2_dynamic_response_is_compressed(server):
    with H2Client(server.port) as client:
        response = client.get("/json", authority=f"127.0.0.1:{server.port}",
                              extra=[(b"accept-encoding", b"gzip, br;q=0.1")])
        streamed = client.get("/stream", authority=f"127.0.0.1:{server.port}",
                              extra=[(b"accept-encoding", b"zstd")])
    assert response["headers"][b"content-encoding"] == b"gzip"
    assert gzip.decompress(response["body"]) == DATA
    assert streamed["headers"][b"content-encoding"] == b"zstd"
    assert decode("zstd", streamed["body"]).startswith(b"line 0 of a streamed body\n")


def test_a_path_that_tries_to_leave_the_site_is_refused_and_copies_stay_in_their_folder(server):
    before = copies(server)
    for target in ("/..%2f..%2fetc%2fpasswd", "/%2e%2e/%2e%2e/etc/passwd", "/style.css%00.gz",
                   "/../run/compressed/Comp/x.gz"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
            sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n"
                         f"Connection: close\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        status = int(data.split(b" ", 2)[1])
        assert status in (400, 404), (target, data[:200])
        assert b"root:" not in data
    root = server.dir / "run" / "compressed" / "Comp"
    assert all((root / name).resolve().is_relative_to(root.resolve()) for name in copies(server))
    assert set(before) <= set(copies(server))


def test_an_incompressible_file_is_front_cached_as_it_is(server):
    path = server.dir / "www" / "noise.txt"
    path.write_bytes(os.urandom(20000))
    for _ in range(4):
        response = get(server, "/noise.txt", GZ)
        assert "Content-Encoding" not in response.headers and len(response.body) == 20000
    server.wait_until(lambda: get(server, "/noise.txt", GZ) is not None and any(
        r["url"].endswith("/noise.txt") for r in server.list_json("cache")), timeout=20,
        what="the identity copy of an incompressible file in the front's cache")


def test_server_sent_events_over_http2_through_brotli(server, tmp_path):
    flag = tmp_path / "flag"
    with H2Client(server.port) as client:
        sid = client.request([(b":method", b"GET"), (b":scheme", b"http"),
                              (b":authority", f"127.0.0.1:{server.port}".encode()),
                              (b":path", b"/asgi/sse"), (b"accept-encoding", b"br"),
                              (b"x-flag", str(flag).encode())])
        decoder = brotli.Decompressor()
        decoded, used = b"", 0
        for _ in range(1000):
            client.read()
            entry = client.responses.get(sid, {"body": b""})
            decoded += decoder.process(entry["body"][used:])
            used = len(entry["body"])
            if b"first event" in decoded:
                break
        assert entry["headers"][b"content-encoding"] == b"br"
        assert decoded == b"data: first event\n\n" and not entry["ended"]
        flag.write_text("go")
        entry = client.response(sid)
        decoded += decoder.process(entry["body"][used:])
        assert decoded == b"data: first event\n\ndata: second event\n\n"
