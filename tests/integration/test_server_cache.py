"""The front's response cache with a real server: static files cached until they change, WSGI
pages cached by a profile for a time, HTTP.sys's refusal rules, 304s from the cache, `wasp list
cache`, `wasp cache flush`, and hits in the W3C log. The app counts the requests that reach it,
so a response the worker never saw shows an old count."""

from __future__ import annotations

import time

import pytest
import requests

from h2_support import H2Client

CONFIG = """
{pool_timing}
[cache]
frequent_hit_time_period = "60s"   # the 1st and 2nd request of a test always fall in one window

[[pools]]
name = "Cached"

[[sites]]
name = "Cache Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]

[[sites.applications]]
path = "/"
pool = "Cached"
physical_path = "www"
app = "cache_app:application"
python_path = ["{apps}"]
[[sites.applications.caching.profiles]]
extension = "*"
kernel_caching_policy = "CacheForTimePeriod"
duration = "1h"

[[sites.applications]]
path = "/timed"
pool = "Cached"
app = "cache_app:application"
python_path = ["{apps}"]
[[sites.applications.caching.profiles]]
extension = "*"
kernel_caching_policy = "CacheForTimePeriod"
duration = "2s"

[[sites.applications]]
path = "/nocache"
pool = "Cached"
app = "cache_app:application"
python_path = ["{apps}"]
[sites.applications.caching]
enable_kernel_cache = false
"""

DURATION = 2.0


@pytest.fixture(scope="module")
def server(wasp_module_server):
    www = wasp_module_server.dir / "www"
    www.mkdir()
    for name in ("style.css", "change.css", "etag.css", "logged.css", "flush.css", "h2.css"):
        (www / name).write_text(f"/* {name} */ body {{ color: #123; }}\n")
    return wasp_module_server(CONFIG)


def get(server, path: str, method: str = "GET", **kwargs) -> requests.Response:
    response = requests.request(method, server.url + path, timeout=30, **kwargs)
    assert response.status_code in (200, 304), (path, response.status_code, response.text[:300],
                                                server.diagnostics())
    return response


def count(response: requests.Response) -> int:
    return int(response.text.split()[1])


def entry(server, url_path: str) -> dict | None:
    for row in server.list_json("cache"):
        if row["url"].endswith(url_path):
            return row
    return None


# ---- static files ----

def test_a_static_file_is_served_from_the_cache_from_the_third_request(server):
    bodies = [get(server, "/style.css").text for _ in range(3)]
    assert len(set(bodies)) == 1 and "style.css" in bodies[0]
    row = entry(server, "/style.css")
    assert row is not None, server.list_json("cache")
    # The 1st request is counted, the 2nd's response is stored, the 3rd is the front's alone.
    assert row["hits"] == 1 and row["policy"] == "CacheUntilChange" and row["expires_in"] is None
    assert row["size"] == len(bodies[0].encode()) and row["site"] == "Cache Site"
    lines = server.cli("list", "cache").stdout.splitlines()
    assert any(line.startswith('CACHE "http://127.0.0.1:') and "/style.css" in line
               and "policy:CacheUntilChange" in line for line in lines), lines


def test_a_changed_file_is_never_served_stale(server):
    path = server.dir / "www" / "change.css"
    for _ in range(3):
        get(server, "/change.css")
    assert entry(server, "/change.css")["hits"] == 1
    for i in range(3):
        path.write_text(f"/* version {i} */\n")
        assert get(server, "/change.css").text == f"/* version {i} */\n"
    replacement = server.dir / "www" / "change.tmp"
    replacement.write_text("/* renamed over */\n")
    replacement.replace(path)
    assert get(server, "/change.css").text == "/* renamed over */\n"
    path.unlink()
    assert get(server, "/change.css").text == "/change.css 1 -"   # no file: the app answers


def test_a_conditional_request_is_answered_304_from_the_cache(server):
    first = get(server, "/etag.css")
    get(server, "/etag.css")
    hits = entry(server, "/etag.css")["hits"]
    r = get(server, "/etag.css", headers={"If-None-Match": first.headers["ETag"]})
    assert r.status_code == 304 and r.content == b"" and r.headers["ETag"] == first.headers["ETag"]
    r = get(server, "/etag.css", headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert r.status_code == 304
    assert entry(server, "/etag.css")["hits"] == hits + 2
    head = get(server, "/etag.css", method="HEAD")
    assert head.content == b"" and head.headers["Content-Length"] == first.headers["Content-Length"]
    assert entry(server, "/etag.css")["hits"] == hits + 3


def test_hits_are_written_to_the_w3c_log(server):
    for _ in range(4):
        get(server, "/logged.css")
    assert entry(server, "/logged.css")["hits"] == 2

    def logged():
        lines = [line for path in (server.logs / "W3SVC1").glob("*.log")
                 for line in path.read_text().splitlines() if " GET /logged.css - " in line]
        return len(lines) == 4 and all(" 200 0 0 " in line for line in lines)
    server.wait_until(logged, 10, what="four W3C lines for /logged.css")


# ---- app responses ----

def test_a_profile_makes_a_wsgi_page_cacheable(server):
    assert [count(get(server, "/page")) for _ in range(4)] == [1, 2, 2, 2]
    row = entry(server, "/page")
    assert row["policy"] == "CacheForTimePeriod" and row["expires_in"] > 3000


def test_a_time_period_entry_expires(server):
    assert [count(get(server, "/timed/t")) for _ in range(2)] == [1, 2]
    stored = time.monotonic()
    third = count(get(server, "/timed/t"))
    if time.monotonic() - stored < DURATION:
        assert third == 2      # within its duration the worker is not asked
    time.sleep(max(0.0, stored + DURATION + 0.2 - time.monotonic()))
    assert count(get(server, "/timed/t")) == 3   # past it, the worker is


def test_vary_by_the_responses_vary_header(server):
    def lang(value):
        return get(server, "/lang", headers={"Accept-Language": value}).text
    assert [lang("en"), lang("en"), lang("en")] == ["/lang 1 en", "/lang 2 en", "/lang 2 en"]
    assert [lang("de"), lang("de"), lang("en")] == ["/lang 3 de", "/lang 3 de", "/lang 2 en"]


@pytest.mark.parametrize("path,kwargs", [
    ("/r-query?x=1", {}),
    ("/r-auth", {"headers": {"Authorization": "Basic dXNlcjpwdw=="}}),
    ("/r-body", {"data": b"payload"}),
    ("/r-range", {"headers": {"Range": "bytes=0-3"}}),
    ("/r-ifrange", {"headers": {"If-Range": '"x"'}}),
    ("/cookie", {}),
    ("/varystar", {}),
    ("/private", {}),
    ("/nostore", {}),
    ("/nocache", {}),
    ("/nocache/page", {}),
], ids=["query", "authorization", "body", "range", "if-range", "set-cookie", "vary-star", "private",
        "no-store", "no-cache", "kernel-cache-off"])
def test_what_is_never_cached_always_reaches_the_app(server, path, kwargs):
    counts = [count(get(server, path, **kwargs)) for _ in range(3)]
    assert counts == [1, 2, 3]
    assert entry(server, path.split("?")[0]) is None


# ---- HTTP/2 streams (h2c with prior knowledge on the same port) ----

def h2_get(server, path: str, method: str = "GET", extra=()) -> dict:
    with H2Client(server.port) as client:
        response = client.get(path, authority=f"127.0.0.1:{server.port}", method=method, extra=extra)
    assert response["ended"], response
    return response


def test_http2_streams_are_served_from_and_stored_in_the_same_cache(server):
    # Stored from two h2 streams; then a hit for HTTP/1.1 and for h2 alike (one key: no version).
    assert [int(h2_get(server, "/h2page")["body"].split()[1]) for _ in range(2)] == [1, 2]
    assert count(get(server, "/h2page")) == 2
    hit = h2_get(server, "/h2page")
    assert int(hit["body"].split()[1]) == 2 and hit["headers"][b":status"] == b"200"
    # A static file stored over HTTP/1.1 answers h2: the body, HEAD's head, a 304.
    first = get(server, "/h2.css")
    get(server, "/h2.css")
    hits = entry(server, "/h2.css")["hits"]
    hit = h2_get(server, "/h2.css")
    assert hit["body"] == first.content
    assert hit["headers"][b"content-length"] == first.headers["Content-Length"].encode()
    head = h2_get(server, "/h2.css", method="HEAD")
    assert head["body"] == b"" and head["headers"][b"content-length"] == first.headers["Content-Length"].encode()
    etag = first.headers["ETag"].encode()
    cond = h2_get(server, "/h2.css", extra=[(b"if-none-match", etag)])
    assert cond["headers"][b":status"] == b"304" and cond["body"] == b"" and cond["headers"][b"etag"] == etag
    assert entry(server, "/h2.css")["hits"] == hits + 3


# ---- administration ----

def test_cache_flush_all_a_site_or_one_url(server):
    for _ in range(3):
        get(server, "/flush.css")
        get(server, "/flushme")
    assert entry(server, "/flush.css") and entry(server, "/flushme")
    out = server.cli("cache", "flush", "Cache Site", "/flushme").stdout
    assert "flushed 1 cached response" in out
    assert entry(server, "/flushme") is None and entry(server, "/flush.css") is not None
    assert count(get(server, "/flushme")) == 3            # the worker answers again
    bad = server.cli("cache", "flush", "No Such Site", check=False)
    assert bad.returncode == 1 and "No Such Site" in bad.stderr
    server.cli("cache", "flush")
    assert server.list_json("cache") == []
