"""ASGI app for the test_exec_*.py tests.

/pid     the worker's pid
/hang    awaits forever; when its task is cancelled it writes the file $EXEC_CANCELLED
/block   blocks the event loop (a synchronous sleep in async code) until $EXEC_RELEASE exists
/stubborn  swallows the cancellation of its task and awaits on, in `refuse_to_stop`
/wait    awaits (without blocking the loop) until $EXEC_RELEASE exists, at most 120 s
"""

import asyncio
import os
import pathlib
import time


async def refuse_to_stop():
    for _ in range(100_000):
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            continue


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/hang":
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pathlib.Path(os.environ["EXEC_CANCELLED"]).write_text("cancelled")
            raise
        body = b"never"
    elif path == "/stubborn":
        await refuse_to_stop()
        body = b"never"
    elif path == "/wait":
        release = os.environ.get("EXEC_RELEASE", "")
        for _ in range(2400):
            if release and os.path.exists(release):
                break
            await asyncio.sleep(0.05)
        body = b"released"
    elif path == "/block":
        release = os.environ.get("EXEC_RELEASE", "")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (release and os.path.exists(release)):
            time.sleep(0.05)
        body = b"released"
    else:
        body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
