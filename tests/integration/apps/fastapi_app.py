"""FastAPI app for the end-to-end tests: ASGI hosting, lifespan and WebSocket.

The lifespan sets `app.state.started`, which "/" reports, so a test proves startup ran before the
first request.
"""

from __future__ import annotations

import contextlib
import os

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.started = True
    app.state.pid_at_startup = os.getpid()
    yield
    app.state.started = False


app = FastAPI(lifespan=lifespan)


@app.get("/")
async def root(request: Request):
    return {
        "framework": "fastapi",
        "started": getattr(request.app.state, "started", False),
        "root_path": request.scope.get("root_path", ""),
    }


@app.get("/pid")
async def pid():
    return {"pid": os.getpid()}


@app.get("/items/{item_id}")
async def item(item_id: int, q: str | None = None):
    return {"id": item_id, "q": q}


@app.websocket("/ws")
async def ws_echo(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text("echo:" + message["text"])
            elif message.get("bytes") is not None:
                await websocket.send_bytes(b"echo:" + message["bytes"])
    except WebSocketDisconnect:
        return
