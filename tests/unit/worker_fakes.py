"""In-memory stand-ins for the worker's data channel, for unit tests of the pipeline and modules."""

from __future__ import annotations

import threading

from wasp.config import model
from wasp.wire import frames
from wasp.wire.frames import FLAG_FIN, FrameType
from wasp.worker.application import Application
from wasp.worker.context import RequestContext


class FakeChannel:
    initial_window = frames.INITIAL_WINDOW

    def __init__(self):
        self.lock = threading.Lock()
        self.cond = threading.Condition()
        self.streams = {}
        self.closed = False
        self.loop = None
        self.written: list[bytes] = []
        self.finished: list = []

    def send_frame(self, ctx, data) -> bool:
        if ctx.cancelled or ctx.finished:
            return False
        self.written.append(_joined(data))
        return True

    def send_final(self, ctx, data) -> bool:
        if ctx.cancelled or ctx.finished:
            return False
        ctx.finished = True
        self.written.append(_joined(data))
        return True

    def done(self, ctx) -> None:
        self.finished.append(ctx)

    def frames(self):
        reader = frames.FrameReader()
        return reader.feed(b"".join(self.written))

    def response(self):
        """-> (status, substatus, headers dict (lower-case names), body, kind) of the one answer."""
        out = [f for f in self.frames() if f[0] not in (FrameType.CACHE, FrameType.USER)]
        ftype, flags, _sid, payload = out[0]
        if ftype == FrameType.FILE:
            span = frames.unpack_file(payload)
            status, headers = _parse(span.status_and_headers)
            return status, 0, headers, b"", "file", span
        if ftype == FrameType.ABORT:
            return (frames.unpack_abort(payload), 0, {}, b"", "abort", None)
        sub, length, block, body = frames.unpack_response(payload)
        status, headers = _parse(block)
        if not flags & FLAG_FIN:
            body = b"".join(p for t, _f, _s, p in out[1:] if t == FrameType.BODY)
        return status, sub, headers, body, "response" if flags & FLAG_FIN else "stream", length


    def user(self):
        """(name, auth_type) of the USER frame sent before the answer, or None."""
        for ftype, _flags, _sid, payload in self.frames():
            if ftype == FrameType.USER:
                return frames.unpack_user(payload)
        return None

    def cache_hint(self):
        """The CacheHint sent before the answer, or None (the front may not cache it)."""
        out = [f for f in self.frames() if f[0] != FrameType.USER]
        if out and out[0][0] == FrameType.CACHE:
            return frames.unpack_cache(out[0][3])
        return None


def _joined(data) -> bytes:
    """A frame as the data channel takes it: bytes, or a tuple of parts sent with one sendmsg."""
    return b"".join(data) if isinstance(data, tuple) else bytes(data)


def _parse(block: bytes):
    lines = block.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return int(lines[0][:3]), headers


def make_app(path="/", tables=None, **fields) -> Application:
    """An application of site 1; `tables` is a Config.sections (the raw section tables)."""
    site = model.Site(name="S", id=1, bindings=["http/*:80:"])
    return Application(site, model.Application(path=path, **fields), tables)


def make_ctx(app, method="GET", path="/", query=b"", headers=(), client=("10.1.2.3", 4000),
             channel=None, threaded=True, content_length=-1):
    channel = channel or FakeChannel()
    raw_path = path.encode("utf-8") if isinstance(path, str) else path
    head = frames.RequestHead(
        app=app.key, method=method, target=raw_path + (b"?" + query if query else b""),
        path=raw_path, query=query, version="1.1",
        headers=[(b"Host", b"example.test")] + [(k.encode(), v.encode()) for k, v in headers],
        client=client, server=("127.0.0.1", 8080), content_length=content_length)
    return RequestContext(channel, 7, head, app, threaded)
