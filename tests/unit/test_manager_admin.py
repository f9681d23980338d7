"""The admin API's HTTP parsing, routing and rendering (no sockets)."""

from __future__ import annotations

import json

import pytest

from wasp.manager.admin import (
    AdminProtocolError, BodyTooLarge, RequestParser, RouteError, render, route,
)


def test_parses_a_request_fed_in_pieces():
    parser = RequestParser()
    raw = b"POST /pools/My%20Pool/recycle?x=1 HTTP/1.1\r\nHost: wasp\r\nContent-Length: 2\r\n\r\n{}"
    for i in range(len(raw) - 1):
        assert parser.feed(raw[i:i + 1]) is None
    request = parser.feed(raw[-1:])
    assert request.method == "POST"
    assert request.path == "/pools/My Pool/recycle"
    assert request.query == {"x": "1"}
    assert request.headers["host"] == "wasp"
    assert request.body == b"{}"


def test_curl_style_get():
    request = RequestParser().feed(b"GET /events?since=12 HTTP/1.1\r\nHost: wasp\r\n"
                                   b"User-Agent: curl/8\r\nAccept: */*\r\n\r\n")
    assert (request.method, request.path, request.query) == ("GET", "/events", {"since": "12"})


def test_garbage_is_a_protocol_error():
    with pytest.raises(AdminProtocolError):
        RequestParser().feed(b"\x00\x01 nonsense\r\n\r\n")


def test_body_limit():
    with pytest.raises(BodyTooLarge) as info:
        RequestParser().feed(b"POST /reload HTTP/1.1\r\nContent-Length: 200000\r\n\r\n" + b"x" * 70000)
    assert info.value.status == 413


@pytest.mark.parametrize("method,path,expected", [
    ("GET", "/pools", ("pools", {})),
    ("GET", "/wp/", ("wp", {})),
    ("GET", "/requests", ("requests", {})),
    ("GET", "/events", ("events", {})),
    ("GET", "/sites", ("sites", {})),
    ("GET", "/apps", ("apps", {})),
    ("POST", "/reload", ("reload", {})),
    ("POST", "/pools/DefaultAppPool/recycle", ("recycle_pool", {"name": "DefaultAppPool"})),
    ("POST", "/pools/A B/stop", ("stop_pool", {"name": "A B"})),
    ("POST", "/pools/X/start", ("start_pool", {"name": "X"})),
])
def test_routes(method, path, expected):
    assert route(method, path) == expected


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/nope", 404),
    ("GET", "/pools/X/explode", 404),
    ("POST", "/pools", 405),
    ("GET", "/reload", 405),
    ("GET", "/pools/X/recycle", 405),
])
def test_route_errors(method, path, status):
    with pytest.raises(RouteError) as info:
        route(method, path)
    assert info.value.status == status


def test_render():
    data = render(200, [{"name": "P"}])
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close" in head and f"Content-Length: {len(body)}".encode() in head
    assert json.loads(body) == [{"name": "P"}]
    assert render(404, {}, head_only=True).endswith(b"\r\n\r\n")


def test_cache_routes():
    assert route("GET", "/cache") == ("cache", {})
    assert route("POST", "/cache/flush") == ("cache_flush", {})
    with pytest.raises(RouteError) as info:
        route("GET", "/cache/flush")
    assert info.value.status == 405
