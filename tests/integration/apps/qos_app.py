"""WSGI app for the QoS and proxy tests: "/who" answers REMOTE_ADDR|REMOTE_PORT|wsgi.url_scheme,
"/stream?kb=N" streams N KiB in 16 KiB pieces (other query fields tag the URL), "/boom" fails (an
error page)."""

from __future__ import annotations

from urllib.parse import parse_qs


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/who":
        body = f"{environ['REMOTE_ADDR']}|{environ['REMOTE_PORT']}|{environ['wsgi.url_scheme']}".encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/stream":
        kb = int(parse_qs(environ.get("QUERY_STRING", "")).get("kb", ["1"])[0])
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(kb * 1024))])
        piece = b"s" * 16384
        full, rest = divmod(kb * 1024, 16384)
        return [piece] * full + ([b"s" * rest] if rest else [])
    if path == "/boom":
        raise RuntimeError("boom")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
