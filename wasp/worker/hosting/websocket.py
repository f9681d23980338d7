"""ASGI websocket scope over the data channel.

The front hands over the Upgrade request; the worker answers the handshake itself (RESPONSE 101
with Sec-WebSocket-Accept) when the app accepts, then speaks the WebSocket protocol with wsproto
over BODY frames. The front's bytes are acknowledged (WINDOW) once the app has taken the messages
they carried, so a slow app slows the client. A close before accept is a 403, as ASGI asks.
"""

from __future__ import annotations

import base64
import collections
import hashlib

from wsproto import ConnectionType
from wsproto.connection import Connection, ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from wasp.errors import HttpError
from wasp.wire import frames
from wasp.worker.context import Cancelled
from wasp.worker.registry import FINISH

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: IIS webSocket receiveBufferLimit: a larger message closes the connection with 1009.
MAX_MESSAGE = 4 * 1024 * 1024


def accept_key(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key.strip() + _GUID).digest())


class WebSocketCycle:
    def __init__(self, ctx, scope):
        self.ctx = ctx
        self.scope = scope
        self.conn: Connection | None = None
        self.connect_sent = False
        self.accepted = False
        self.closed = False          # no more messages for the app (it got websocket.disconnect)
        self.ended = False           # END sent: the tunnel is closed on our side
        self.messages: collections.deque = collections.deque()
        self.unacked = 0
        self.parts: list = []
        self.part_size = 0
        key = None
        for name, value in ctx.head.headers:
            if name.lower() == b"sec-websocket-key":
                key = value
        if not key:
            raise HttpError("missing Sec-WebSocket-Key", status=400, substatus=11)
        self.key = key

    # ---- app side ----
    async def receive(self) -> dict:
        if not self.connect_sent:
            self.connect_sent = True
            return {"type": "websocket.connect"}
        body = self.ctx.body
        while True:
            if self.messages:
                message = self.messages.popleft()
                if not self.messages and self.unacked:
                    self._ack()
                return message
            if self.closed:
                return {"type": "websocket.disconnect", "code": 1006}
            if self.ctx.cancelled or (body.done and self.accepted) or self.ended:
                self._gone(1006)
                continue
            if body.buffered and self.conn is not None:
                self._process()
                continue
            await body.wait()

    async def send(self, message: dict) -> None:
        kind = message["type"]
        ctx = self.ctx
        if kind == "websocket.accept" and not self.accepted and not self.ended:
            await self._accept(message)
        elif kind == "websocket.send" and self.accepted and not self.ended:
            text = message.get("text")
            data = self.conn.send(Message(data=text if text is not None else message.get("bytes") or b""))
            await ctx.send_body_async(data)
        elif kind == "websocket.close" and not self.ended:
            if not self.accepted:
                self._deny()
                return
            code = message.get("code") or 1000
            reason = message.get("reason") or ""
            await self._close(code, reason)
        elif self.ended or ctx.cancelled:
            raise Cancelled("the websocket is closed")
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} in a websocket scope")

    # ---- protocol ----
    async def _accept(self, message: dict) -> None:
        lines = [b"101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
                 b"Sec-WebSocket-Accept: " + accept_key(self.key) + b"\r\n"]
        subprotocol = message.get("subprotocol")
        if subprotocol:
            lines.append(b"Sec-WebSocket-Protocol: " + subprotocol.encode("latin-1") + b"\r\n")
        for name, value in message.get("headers") or ():
            if name.lower() not in (b"connection", b"upgrade", b"sec-websocket-accept",
                                    b"sec-websocket-protocol", b"transfer-encoding"):
                lines.append(b"%s: %s\r\n" % (name, value))
        self.ctx.start_response(b"".join(lines), -1)
        self.conn = Connection(ConnectionType.SERVER)
        self.accepted = True

    def _deny(self) -> None:
        self.ended = self.closed = True
        self.ctx.respond(b"403 Forbidden\r\nContent-Length: 0\r\n")

    async def _close(self, code: int, reason: str) -> None:
        if self.conn.state is ConnectionState.OPEN or self.conn.state is ConnectionState.REMOTE_CLOSING:
            try:
                data = self.conn.send(CloseConnection(code=code, reason=reason))
            except LocalProtocolError:
                data = b""
            if data:
                await self.ctx.send_body_async(data)
        self._end()

    def _end(self) -> None:
        if not self.ended:
            self.ended = True
            try:
                self.ctx.end()
            except Cancelled:
                pass

    def _gone(self, code: int, reason: str = "") -> None:
        if not self.closed:
            self.closed = True
            self.messages.append({"type": "websocket.disconnect", "code": code, "reason": reason})

    def _ack(self) -> None:
        n, self.unacked = self.unacked, 0
        self.ctx.channel.send_frame(self.ctx, frames.pack_window(self.ctx.sid, n))

    def _process(self) -> None:
        """Feed the buffered tunnel bytes to wsproto and queue what the app should see."""
        data = self.ctx.body.drain()
        self.unacked += len(data)
        conn = self.conn
        try:
            conn.receive_data(data)
            for event in conn.events():
                if isinstance(event, Message):
                    self._message(event)
                elif isinstance(event, Ping):
                    self._write(conn.send(event.response()))
                elif isinstance(event, CloseConnection):
                    if conn.state is ConnectionState.REMOTE_CLOSING:
                        self._write(conn.send(event.response()))
                    self._gone(event.code, event.reason or "")
                    self._end()
        except RemoteProtocolError as exc:
            try:
                self._write(conn.send(exc.event_hint) if exc.event_hint else b"")
            except LocalProtocolError:
                pass
            self._gone(1002)
            self._end()
        if not self.messages and self.unacked:
            self._ack()

    def _message(self, event) -> None:
        self.parts.append(event.data)
        self.part_size += len(event.data)
        if self.part_size > MAX_MESSAGE:
            self._write(self.conn.send(CloseConnection(code=1009, reason="message too big")))
            self._gone(1009)
            self._end()
            return
        if not event.message_finished:
            return
        if isinstance(event, TextMessage):
            self.messages.append({"type": "websocket.receive", "text": "".join(self.parts)})
        elif isinstance(event, BytesMessage):
            self.messages.append({"type": "websocket.receive", "bytes": b"".join(self.parts)})
        self.parts = []
        self.part_size = 0

    def _write(self, data: bytes) -> None:
        # Control replies (pong, close) are small and not worth waiting for credit on.
        if data and not self.ended:
            self.ctx.channel.send_frame(self.ctx, frames.pack_body(self.ctx.sid, data))


async def run_websocket(app, ctx, scope):
    cycle = WebSocketCycle(ctx, scope)
    subprotocols = []
    for name, value in ctx.head.headers:
        if name.lower() == b"sec-websocket-protocol":
            subprotocols.extend(p.strip() for p in value.decode("latin-1").split(",") if p.strip())
    scope["subprotocols"] = subprotocols
    try:
        await app(scope, cycle.receive, cycle.send)
    except BaseException:
        # Before accept the pipeline answers 500; after, the peer gets 1011 (internal error).
        if cycle.accepted and not cycle.ended and not ctx.cancelled:
            try:
                await cycle._close(1011, "")
            except Cancelled:
                pass
        raise
    if not ctx.finished and not ctx.cancelled and not ctx.started:
        cycle._deny()
    elif cycle.accepted and not cycle.ended and not ctx.cancelled:
        try:
            await cycle._close(1000, "")
        except Cancelled:
            pass
    return FINISH
