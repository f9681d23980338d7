"""A fake worker for testing and measuring the front: speaks the data-channel frames, runs no app.

    python tests/integration/front_fake_worker.py --fd N --worker-id K [--capacity C]

It answers by the request path:
  /echo          the request body (read with WINDOW acknowledgements), FIN response
  /info          JSON of the RequestHead it received
  /stream?n=K    K body frames of "chunk NNNN\\n", content length -1 (the front chunks it)
  /big?n=BYTES   a streamed body of BYTES bytes in 64 KiB frames, honouring the front's WINDOW
  /file?p=PATH   a FILE frame for the whole file
  /slow?ms=M     "slow" after M milliseconds
  /abort         ABORT 500
  /crash         exits at once (a crashed worker)
  /ws            101, then echoes tunnel bytes until END
  anything else  "hello" (one FIN frame; prebuilt, so the front is what a benchmark measures)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys

import msgspec

from wasp.wire import frames as fr
from wasp.wire.frames import FLAG_FIN, FrameType

HELLO_BLOCK = b"200 OK\r\nContent-Type: text/plain\r\n"


class FakeWorker(asyncio.Protocol):
    def __init__(self, worker_id: int, capacity: int, done: asyncio.Future):
        self.worker_id = worker_id
        self.capacity = capacity
        self.done = done
        self.reader = fr.FrameReader()
        self.bodies: dict[int, bytearray] = {}
        self.heads: dict[int, fr.RequestHead] = {}
        self.windows: dict[int, int] = {}
        self.pending_big: dict[int, int] = {}
        self.tunnels: set[int] = set()
        self.draining = False
        self.inflight = 0
        self.hello_fin = {}

    def connection_made(self, transport):
        self.transport = transport
        transport.write(fr.pack_hello(fr.Hello(self.worker_id, os.getpid(), self.capacity)))

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(0)

    def data_received(self, data):
        out = []
        for ftype, flags, sid, payload in self.reader.feed(data):
            if ftype == FrameType.REQUEST:
                self.on_request(sid, payload, flags & FLAG_FIN, out)
            elif ftype == FrameType.BODY:
                if sid in self.tunnels:
                    out.append(fr.pack_window(sid, len(payload)))
                    out.append(fr.pack_body(sid, payload))
                elif sid in self.bodies:
                    self.bodies[sid] += payload
                    out.append(fr.pack_window(sid, len(payload)))
            elif ftype == FrameType.END:
                if sid in self.tunnels:
                    self.tunnels.discard(sid)
                    out.append(fr.pack_end(sid))
                    self.finished()
                elif sid in self.bodies:
                    self.respond(sid, self.heads.pop(sid), bytes(self.bodies.pop(sid)), out)
            elif ftype == FrameType.WINDOW:
                if sid in self.pending_big:
                    self.windows[sid] = self.windows.get(sid, 0) + fr.unpack_window(payload)
                    self.send_big(sid, out)
            elif ftype == FrameType.CANCEL:
                if self.bodies.pop(sid, None) is not None or self.pending_big.pop(sid, None) is not None \
                        or sid in self.tunnels:
                    self.tunnels.discard(sid)
                    self.finished()
            elif ftype == FrameType.DRAIN:
                self.draining = True
                if not self.inflight:
                    self.transport.close()
        if out:
            self.transport.write(b"".join(out))

    def finished(self):
        self.inflight -= 1
        if self.draining and not self.inflight:
            self.transport.close()

    def on_request(self, sid, payload, fin, out):
        head = fr.unpack_request(payload)
        self.inflight += 1
        path = head.path
        if path == b"/crash":
            os._exit(1)
        if head.websocket and path == b"/ws":
            self.tunnels.add(sid)
            out.append(fr.pack_response(sid, b"101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                             b"Connection: Upgrade\r\n", -1))
            return
        if fin:
            self.respond(sid, head, b"", out)
        else:
            self.heads[sid] = head
            self.bodies[sid] = bytearray()

    def respond(self, sid, head, body, out):
        path = head.path
        query = dict(p.split(b"=", 1) for p in head.query.split(b"&") if b"=" in p)
        if path == b"/echo":
            out.append(fr.pack_response(sid, HELLO_BLOCK, len(body), body=body if head.method != "HEAD" else b""))
        elif path == b"/info":
            info = msgspec.json.encode({
                "app": head.app, "method": head.method, "target": head.target.decode("latin-1"),
                "path": head.path.decode("latin-1"), "query": head.query.decode("latin-1"),
                "version": head.version, "content_length": head.content_length,
                "websocket": head.websocket, "client": list(head.client), "server": list(head.server),
                "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in head.headers],
                "body": len(body)})
            out.append(fr.pack_response(sid, b"200 OK\r\nContent-Type: application/json\r\n", len(info),
                                        body=info if head.method != "HEAD" else b""))
        elif path == b"/stream":
            n = int(query.get(b"n", b"3"))
            out.append(fr.pack_response(sid, HELLO_BLOCK, -1))
            for i in range(n):
                out.append(fr.pack_body(sid, b"chunk %04d\n" % i))
            out.append(fr.pack_end(sid))
        elif path == b"/big":
            self.pending_big[sid] = int(query.get(b"n", b"1048576"))
            self.windows[sid] = fr.INITIAL_WINDOW
            out.append(fr.pack_response(sid, HELLO_BLOCK, self.pending_big[sid]))
            self.send_big(sid, out)
            return
        elif path == b"/file":
            name = query[b"p"].decode()
            size = os.path.getsize(name)
            out.append(fr.pack_file(sid, fr.FileSpan(b"200 OK\r\nContent-Type: application/octet-stream\r\n",
                                                     name, 0, size)))
        elif path == b"/slow":
            ms = int(query.get(b"ms", b"100"))
            asyncio.get_running_loop().call_later(ms / 1000, self.late, sid)
            return
        elif path == b"/abort":
            out.append(fr.pack_abort(sid, 500))
        else:
            out.append(fr.pack_response(sid, HELLO_BLOCK, 5, body=b"hello" if head.method != "HEAD" else b""))
        self.finished()

    def send_big(self, sid, out):
        left = self.pending_big[sid]
        window = self.windows[sid]
        while left and window:
            n = min(left, window, 65536)
            out.append(fr.pack_body(sid, b"x" * n))
            left -= n
            window -= n
        self.windows[sid] = window
        if left:
            self.pending_big[sid] = left
        else:
            del self.pending_big[sid]
            out.append(fr.pack_end(sid))
            self.finished()

    def late(self, sid):
        self.transport.write(fr.pack_response(sid, HELLO_BLOCK, 4, body=b"slow"))
        self.finished()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--worker-id", type=int, default=1)
    parser.add_argument("--capacity", type=int, default=64)
    args = parser.parse_args()

    import uvloop

    async def run():
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        sock = socket.socket(fileno=args.fd)
        await loop.create_unix_connection(lambda: FakeWorker(args.worker_id, args.capacity, done), sock=sock)
        return await done

    return uvloop.run(run())


if __name__ == "__main__":
    sys.exit(main())
