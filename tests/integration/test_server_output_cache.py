"""The worker's output cache (IIS's user-mode OutputCache) through a real server, with a Flask
app that counts its calls: a response shows the call number that made it, so one served from a
cache repeats an old number.

Query-string variants by vary_by_query_string, request headers by vary_by_headers, HEAD from a
GET's entry; never Set-Cookie, Cache-Control no-store, Vary: *, an Authorization request, or a
response the app says "X-Wasp-Output-Cache: no" of; location Client is not held and gets its
Cache-Control; what the front holds (no query string) the worker does not hold too, while
ServerAndClient and enable_kernel_cache = false leave it to the worker.
"""

from __future__ import annotations

import pytest
import requests

PROFILE = """
[[sites.applications.caching.profiles]]
extension = "*"
policy = "CacheForTimePeriod"
duration = "1h"
vary_by_query_string = ["id"]
vary_by_headers = ["Accept-Language"]
"""

CONFIG = """
{pool_timing}
[cache]
frequent_hit_time_period = "60s"

[[pools]]
name = "OC"

[[sites]]
name = "Output Cache"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "OC"
app = "errors_app:app"
python_path = ["{apps}"]
""" + PROFILE + """
[[sites.applications]]
path = "/client"
pool = "OC"
app = "errors_app:app"
python_path = ["{apps}"]
""" + PROFILE.replace('duration = "1h"', 'duration = "1h"\nlocation = "Client"') + """
[[sites.applications]]
path = "/sac"
pool = "OC"
app = "errors_app:app"
python_path = ["{apps}"]
""" + PROFILE.replace('duration = "1h"', 'duration = "1h"\nlocation = "ServerAndClient"') + """
[[sites.applications]]
path = "/nokernel"
pool = "OC"
app = "errors_app:app"
python_path = ["{apps}"]
[sites.applications.caching]
enable_kernel_cache = false
""" + PROFILE


@pytest.fixture(scope="module")
def server(wasp_module_server):
    return wasp_module_server(CONFIG)


def get(server, path: str, method: str = "GET", **headers) -> requests.Response:
    r = requests.request(method, server.url + path, headers=headers, timeout=30)
    assert r.status_code == 200, (path, r.status_code, r.text[:300], server.diagnostics())
    return r


def calls(server) -> int:
    return get(server, "/calls").json().get("cached", 0)


def test_query_variants_are_served_without_the_app(server):
    first = get(server, "/cached?id=1").text
    assert get(server, "/cached?id=1").text == first
    assert get(server, "/cached?other=x&id=1").text.split(" q=")[0] == first.split(" q=")[0]
    assert get(server, "/cached?id=2").text != first


def test_head_is_answered_from_the_get_entry(server):
    get(server, "/cached?id=10")
    before = calls(server)
    r = get(server, "/cached?id=10", "HEAD")
    assert r.content == b"" and int(r.headers["Content-Length"]) > 0
    assert calls(server) == before


def test_vary_by_headers(server):
    en = get(server, "/cached?id=3", **{"Accept-Language": "en"}).text
    fr = get(server, "/cached?id=3", **{"Accept-Language": "fr"}).text
    assert en != fr and "lang=fr" in fr
    assert get(server, "/cached?id=3", **{"Accept-Language": "en"}).text == en


@pytest.mark.parametrize("query", ["cc=no-store", "cc=private", "cookie=1", "vary=*", "wasp=no"])
def test_responses_the_cache_must_not_keep(server, query):
    first = get(server, f"/cached?id=x{query}&{query}").text
    assert get(server, f"/cached?id=x{query}&{query}").text != first


def test_the_app_can_shorten_or_set_a_lifetime_and_the_header_does_not_leak(server):
    r = get(server, "/cached?id=11&wasp=120")
    assert "X-Wasp-Output-Cache" not in r.headers
    assert get(server, "/cached?id=11&wasp=120").text == r.text


def test_an_authorization_request_is_neither_served_nor_stored(server):
    first = get(server, "/cached?id=12").text
    auth = get(server, "/cached?id=12", Authorization="Basic dXNlcjpwYXNz").text
    assert auth != first
    assert get(server, "/cached?id=12").text == first


def test_location_client_is_not_held_and_says_so(server):
    r = get(server, "/client/cached?id=1")
    assert r.headers["Cache-Control"] == "private, max-age=3600"
    assert get(server, "/client/cached?id=1").text != r.text


def test_the_front_holds_what_it_can_and_the_worker_does_not_hold_it_too(server):
    first, second, third = (get(server, "/cached").text for _ in range(3))
    assert first != second       # not the worker's: the front admits it at its second hit
    assert third == second       # the front's entry
    assert "X-Wasp-Output-Cache" not in get(server, "/cached").headers


@pytest.mark.parametrize("prefix", ["/sac", "/nokernel"])
def test_what_the_front_does_not_hold_the_worker_does(server, prefix):
    first = get(server, f"{prefix}/cached").text
    assert get(server, f"{prefix}/cached").text == first
    r = get(server, f"{prefix}/cached?id=1")
    assert get(server, f"{prefix}/cached?id=1").text == r.text
    if prefix == "/sac":
        assert r.headers["Cache-Control"] == "private, max-age=3600"


def test_a_large_response_is_not_kept(server):
    before = get(server, "/calls").json().get("big", 0)
    get(server, "/big?id=1")
    get(server, "/big?id=1")
    assert get(server, "/calls").json()["big"] == before + 2
