"""ASGI app for the health tests: /pid, and /block?s= which blocks the worker's event loop (a
synchronous sleep inside an async app: the worker cannot even answer a ping meanwhile)."""

import os
import time


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/block":
        seconds = float(dict(p.split("=") for p in scope["query_string"].decode().split("&") if p).get("s", "5"))
        time.sleep(seconds)
        body = b"unblocked"
    else:
        body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
