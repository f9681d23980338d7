"""Apps for test_server_compression.py: WSGI responses of every shape and an ASGI SSE stream."""

import asyncio
import gzip
import json
import os
import time

PAGE = ("<html><body>" + "".join(f"<p>paragraph {i} of the page</p>" for i in range(400))
        + "</body></html>").encode()
DATA = json.dumps([{"id": i, "name": f"item {i}", "tags": ["a", "b", "c"]} for i in range(300)]).encode()


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/json":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [DATA]
    if path == "/page":
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("ETag", '"page-v1"'), ("Vary", "Cookie")])
        return [PAGE]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"line %d of a streamed body\n" % i for i in range(2000))
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain"),
                                          ("Content-Length", str(len(PAGE)))])
        write(PAGE[:1000])
        return [PAGE[1000:]]
    if path == "/small":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"tiny"]
    if path == "/encoded":
        body = gzip.compress(PAGE)
        start_response("200 OK", [("Content-Type", "text/html"), ("Content-Encoding", "gzip")])
        return [body]
    if path == "/png":
        start_response("200 OK", [("Content-Type", "image/png")])
        return [PAGE]
    if path == "/nocontent":
        start_response("204 No Content", [("Content-Type", "text/html")])
        return []
    if path == "/sse":
        # As the ASGI one below: event 1, then event 2 once the test has decoded event 1.
        flag = environ.get("HTTP_X_FLAG", "")
        start_response("200 OK", [("Content-Type", "text/event-stream")])

        def events():
            yield b"data: first event\n\n"
            for _ in range(600):
                if flag and os.path.exists(flag):
                    break
                time.sleep(0.05)
            yield b"data: second event\n\n"
        return events()
    if path == "/big":
        # 8 MiB from one write: compressed and sent in buffer_limit pieces.
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"0123456789abcdef" * (512 * 1024)]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no such page"]


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path.endswith("/sse"):
        # Event 1, then wait for the test to create the flag file (it does so only once it has
        # decoded event 1 from the compressed stream), then event 2 and the end.
        flag = dict(scope["headers"]).get(b"x-flag", b"").decode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
        await send({"type": "http.response.body", "body": b"data: first event\n\n", "more_body": True})
        for _ in range(600):
            if flag and os.path.exists(flag):
                break
            await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b"data: second event\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/html")]})
    await send({"type": "http.response.body", "body": PAGE[:5000], "more_body": True})
    await send({"type": "http.response.body", "body": PAGE[5000:], "more_body": False})
