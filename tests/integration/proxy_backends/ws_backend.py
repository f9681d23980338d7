"""A WebSocket echo backend (websockets): `python ws_backend.py PORT`; replies "echo:<msg>"."""

import asyncio
import sys

from websockets.asyncio.server import serve


async def echo(ws):
    async for message in ws:
        await ws.send("echo:" + message if isinstance(message, str) else message)


async def main(port: int):
    async with serve(echo, "127.0.0.1", port):
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
