from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from contextlib import asynccontextmanager

events = []


@asynccontextmanager
async def lifespan(app):
    events.append("startup")
    yield {"started": True}
    events.append("shutdown")


app = FastAPI(lifespan=lifespan)


@app.get("/items/{item_id}")
async def item(item_id: int, q: str = ""):
    return {"item_id": item_id, "q": q}


@app.get("/state")
async def state(request: __import__("fastapi").Request):
    return {"started": request.state.started, "url": str(request.url),
            "root_path": request.scope["root_path"]}


@app.post("/echo")
async def echo(request: __import__("fastapi").Request):
    body = await request.body()
    return {"length": len(body)}


@app.websocket("/ws")
async def ws(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            if text == "bye":
                await websocket.close(code=1000)
                return
            await websocket.send_text("echo: " + text)
    except WebSocketDisconnect:
        pass


@app.websocket("/ws-deny")
async def ws_deny(websocket: WebSocket):
    await websocket.close()
