"""ASGI app for the several-fronts tests (tests/integration/test_multifront.py).

/conc?s= sleeps s seconds and counts how many requests the worker runs at once (the app sees every
request the worker took: an ASGI-only pool's capacity is max_concurrent_requests); /max answers
the most seen at once since the last /max and starts over. /hold?release= waits (at most 60 s)
until the file `release` exists.
"""

import asyncio
import os
import time

state = {"now": 0, "max": 0}


def _query(scope) -> dict:
    out = {}
    for part in scope.get("query_string", b"").decode().split("&"):
        key, _, value = part.partition("=")
        if key:
            out[key] = value
    return out


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
    q = _query(scope)
    if path.endswith("/conc"):
        state["now"] += 1
        state["max"] = max(state["max"], state["now"])
        try:
            await asyncio.sleep(float(q.get("s", "0.2")))
        finally:
            state["now"] -= 1
        body = b"done"
    elif path.endswith("/max"):
        body = str(state["max"]).encode()
        state["max"] = state["now"]
    elif path.endswith("/hold"):
        deadline = time.monotonic() + 60
        while not os.path.exists(q["release"]) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        body = b"released"
    else:
        body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
