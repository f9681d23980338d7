"""Apps for the HTTP/2 tests (test_server_http2.py): a WSGI echo that hashes a request body as it
streams in, a WSGI app that holds each request a moment (concurrent streams), and an ASGI app of
server-sent events that arrive one by one, which is also a WebSocket echo (over HTTP/2: RFC 8441)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time


def wsgi(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/echo":
        digest = hashlib.sha256()
        size = 0
        stream = environ["wsgi.input"]
        while True:
            chunk = stream.read(65536)
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
        body = json.dumps({"size": size, "sha256": digest.hexdigest(),
                           "protocol": environ["SERVER_PROTOCOL"]}).encode()
    elif path == "/big":
        body = b"z" * (1024 * 1024)
    elif path == "/hold":
        time.sleep(float(environ.get("QUERY_STRING") or "0.5"))
        body = b"held"
    else:
        body = json.dumps({"protocol": environ["SERVER_PROTOCOL"], "path": path,
                           "host": environ.get("HTTP_HOST", "")}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


async def events(scope, receive, send):
    if scope["type"] == "websocket":
        await echo(scope, receive, send)
        return
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream"),
                            (b"x-http-version", scope["http_version"].encode())]})
    for i in range(5):
        await send({"type": "http.response.body", "body": b"data: %d\n\n" % i, "more_body": True})
        await asyncio.sleep(0.3)
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def echo(scope, receive, send):
    """Each text message back with the HTTP version and path the app saw; bytes back as they are."""
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept", "subprotocol": (scope["subprotocols"] or [None])[0]})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            if message["text"] == "bye":
                await send({"type": "websocket.close", "code": 4000, "reason": "bye"})
                return
            await send({"type": "websocket.send",
                        "text": f"{scope['http_version']} {scope['path']} {message['text']}"})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
