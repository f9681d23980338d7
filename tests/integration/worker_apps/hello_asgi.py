"""ASGI apps for the worker tests (no framework)."""


async def hello(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"Hello, world!"})


async def no_lifespan(scope, receive, send):
    assert scope["type"] == "http", "only http"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"no lifespan"})


async def failing_startup(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
        return
    raise AssertionError("never serves")


async def stream(scope, receive, send):
    """Echoes the request body back as a stream, and streams ?n= bytes after it."""
    if scope["type"] != "http":
        return
    n = int(scope["query_string"].decode().partition("=")[2] or 0)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")]})
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        total += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.body", "body": f"{total}\n".encode(), "more_body": True})
    block = bytes(range(256)) * 256
    while n > 0:
        piece = block[:min(n, len(block))]
        n -= len(piece)
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def echo_scope(scope, receive, send):
    if scope["type"] != "http":
        return
    body = repr({k: scope[k] for k in ("path", "raw_path", "root_path", "query_string", "method",
                                       "http_version", "scheme")}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def marks_shutdown(scope, receive, send):
    """Writes "startup" / "shutdown" to the file named by $MARKER (a pool environment variable)."""
    import os

    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            with open(os.environ["MARKER"], "a") as f:
                f.write(message["type"].split(".")[1] + "\n")
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"up"})
