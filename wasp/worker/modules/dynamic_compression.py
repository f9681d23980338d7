"""DynamicCompressionModule: a Python app's response (or an error page) compressed as it goes out.

At PRE_EXECUTE_REQUEST_HANDLER, for a request not served by the static_file handler, the module
negotiates a scheme (wasp/worker/encoding.py: Accept-Encoding with q-values, HTTP/1.0, Via,
Range) and leaves a `DynamicOffer` on the request (`ctx.compression`). The context hands it the
response head when the response starts (`RequestContext.respond` / `start_response`): the offer
compresses when the status has a body (not 1xx, 204, 206, 304), the response carries no
Content-Encoding already (never twice), its Content-Type is in `dynamic_types` and its length,
when known, is at least `min_file_size_for_comp`. HEAD is never compressed.

- A whole response (one RESPONSE frame) is compressed at once and keeps a Content-Length.
- A streamed one loses its Content-Length (the front frames it chunked, or as HTTP/2 DATA); each
  body write (a WSGI `write()` or yielded chunk, an ASGI `http.response.body`) is compressed in
  pieces of at most `dynamic_compression_buffer_limit` bytes and flushed at its end (zlib
  Z_SYNC_FLUSH, brotli flush, zstd block flush), so a server-sent event reaches the client when
  the app sends it and memory stays bounded. END sends the coding's trailer.
- A response of a compressible type and size says `Vary: Accept-Encoding` (added to the app's
  Vary if it has one), compressed or not; its ETag, if any, gets the coding's suffix.
- A dynamically compressed response is not front-cached (HTTP.sys refuses it, KB 817445 rule 3)
  unless `url_compression.dynamic_compression_before_cache` is true.
- Above `dynamic_compression_disable_cpu_usage` % CPU no offer is made, until CPU use is below
  `dynamic_compression_enable_cpu_usage` %.
"""

from __future__ import annotations

from wasp.worker.encoding import (
    CpuGate, TypeList, compress_all, cpu_monitor, new_encoder, not_for_bits, request_coding,
    variant_etag,
)
from wasp.worker.modules.http_cache import NOT_FOR
from wasp.worker.registry import CONTINUE, Module, Phase, register

_NO_BODY = (b"204", b"206", b"304")


class DynamicOffer:
    """What one request may get: `coding` at `level`, or only a Vary (coding None). The context
    calls `whole` or `begin` once; `begin` returns the streaming encoder (or None)."""

    __slots__ = ("module", "coding", "level", "before_cache")

    def __init__(self, module, coding, level, before_cache):
        self.module = module
        self.coding = coding
        self.level = level
        self.before_cache = before_cache

    def whole(self, ctx, block: bytes, body, content_length):
        """-> (block, body, content_length) of a response sent in one frame."""
        if ctx.freb is not None:
            out = self._whole(ctx, block, body, content_length)
            self._trace(ctx, block, content_length if content_length is not None else len(body),
                        out[1] is not body)
            return out
        return self._whole(ctx, block, body, content_length)

    def begin(self, ctx, block: bytes, content_length: int):
        """-> (block, content_length, encoder or None) of a response whose body follows."""
        out = self._begin(ctx, block, content_length)
        if ctx.freb is not None:
            self._trace(ctx, block, content_length, out[2] is not None)
        return out

    def _trace(self, ctx, block: bytes, length: int, done: bool) -> None:
        """FREB's DYNAMIC_COMPRESSION_* events, with IIS's reason when nothing was compressed."""
        trace = ctx.freb
        trace.emit("DYNAMIC_COMPRESSION_START", ())
        if done:
            trace.emit("DYNAMIC_COMPRESSION_SUCCESS", (("Encoding", self.coding),))
        else:
            trace.emit("DYNAMIC_COMPRESSION_NOT_SUCCESS", (("Reason", self._why_not(ctx, block, length)),))
        trace.emit("DYNAMIC_COMPRESSION_END", ())

    def _why_not(self, ctx, block: bytes, length: int) -> str:
        if ctx.head_only:
            return "HEAD_REQUEST"
        status = block[:3]
        if status < b"200" or status in _NO_BODY:
            return "NO_RESPONSE_BODY"
        content_type = None
        for line in block.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-encoding":
                return "ALREADY_CONTENT_ENCODED"
            if name == b"content-type":
                content_type = value.strip()
        if not self.module.types.allows(content_type):
            return "NO_MATCHING_CONTENT_TYPE"
        if 0 <= length < self.module.min_size:
            return "NOT_ENOUGH_BYTES"  # wasp's minimum size; IIS compresses any dynamic body
        if self.coding is None:
            return "NO_ACCEPT_ENCODING"
        return "NO_COMPRESSION_STREAMING"

    def _whole(self, ctx, block: bytes, body, content_length):
        if ctx.head_only:
            return block, body, content_length
        size = len(body) if content_length is None else content_length
        if size != len(body):
            return block, body, content_length  # a HEAD-like answer with a promised length
        edited = self._edit(block, size)
        if edited is None:
            return block, body, content_length
        block, compress = edited
        if not compress:
            return block, body, content_length
        packed = compress_all(self.coding, self.level, body)
        if not self.before_cache:
            ctx.cache = None
        elif ctx.cache is not None:
            items = ctx.items
            if items is None:
                items = ctx.items = {}
            items[NOT_FOR] = self.module.not_for
        return block + b"Content-Length: %d\r\n" % len(packed), packed, len(packed)

    def _begin(self, ctx, block: bytes, content_length: int):
        if ctx.head_only:
            return block, content_length, None
        edited = self._edit(block, content_length)
        if edited is None:
            return block, content_length, None
        block, compress = edited
        if not compress:
            return block, content_length, None
        ctx.cache = None
        return block, -1, Streaming(new_encoder(self.coding, self.level), self.module.buffer_limit)

    def _edit(self, block: bytes, length: int):
        """(new block, compress?) or None when the response is none of ours to touch."""
        status = block[:3]
        if status < b"200" or status in _NO_BODY:
            return None
        module = self.module
        if 0 <= length < module.min_size:
            return None  # too small to compress, whatever its type: no need to read the head
        lines = block.split(b"\r\n")
        content_type = vary = None
        etag_at = -1
        for i, line in enumerate(lines[1:], 1):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-encoding":
                return None  # already encoded (or says identity on purpose): never twice
            if name == b"content-type":
                content_type = value.strip()
            elif name == b"vary":
                vary = i
            elif name == b"etag":
                etag_at = i
        if not module.types.allows(content_type):
            # Not compressible: the same bytes for every client (no Vary, so a cache keeps one
            # copy for all of them; a body under min_size is left alike, above).
            return None
        if vary is not None:
            value = lines[vary].partition(b":")[2]
            items = [v.strip().lower() for v in value.split(b",")]
            if b"*" not in items and b"accept-encoding" not in items:
                lines[vary] = lines[vary] + b", Accept-Encoding"
        else:
            lines.insert(len(lines) - 1, b"Vary: Accept-Encoding")
        compress = self.coding is not None
        if compress:
            if etag_at >= 0:
                etag = lines[etag_at].partition(b":")[2].decode("latin-1")
                lines[etag_at] = b"ETag: " + variant_etag(etag, self.coding).encode("latin-1")
            lines = [line for line in lines if line[:15].lower() != b"content-length:"]
            extra = [b"Content-Encoding: " + self.coding.encode("ascii")]
            if module.cache_headers:
                extra += module.cache_headers
            lines[-1:-1] = extra
        return b"\r\n".join(lines), compress


class Streaming:
    """A streamed body's encoder: each write comes out compressed and flushed."""

    __slots__ = ("encoder", "limit")

    def __init__(self, encoder, limit: int):
        self.encoder = encoder
        self.limit = limit

    def feed(self, data):
        """The compressed pieces of one write, the last one flushed."""
        encoder = self.encoder
        view = memoryview(data)
        limit = self.limit
        while len(view) > limit:
            piece = encoder.compress(view[:limit])
            if piece:
                yield piece
            view = view[limit:]
        piece = encoder.compress(view) + encoder.flush()
        if piece:
            yield piece

    def finish(self) -> bytes:
        return self.encoder.finish()


@register("dynamic_compression", phases=(Phase.PRE_EXECUTE_REQUEST_HANDLER,))
class DynamicCompressionModule(Module):
    def setup(self, app) -> None:
        settings = self.settings = app.sections.http_compression
        self.schemes = {s.name: s.dynamic_compression_level for s in settings.schemes
                        if s.do_dynamic_compression}
        self.offered = tuple(self.schemes)
        self.types = TypeList(settings.dynamic_types)
        self.min_size = int(settings.min_file_size_for_comp)
        self.buffer_limit = int(settings.dynamic_compression_buffer_limit)
        self.cache_headers = [f"Expires: {settings.expires_header}".encode("latin-1"),
                              f"Cache-Control: {settings.cache_control_header}".encode("latin-1")] \
            if settings.send_cache_headers else []
        self.not_for = not_for_bits(settings)
        self.gate = CpuGate(settings.dynamic_compression_disable_cpu_usage,
                            settings.dynamic_compression_enable_cpu_usage)
        self.on = bool(self.offered)
        if self.on:
            cpu_monitor().watch(self.gate)

    def wants(self, phase) -> bool:
        return self.on

    def pre_execute_request_handler(self, ctx):
        handler = ctx.handler
        if (handler is not None and handler.id == "static_file") or ctx.head_only \
                or ctx.head.websocket:
            return CONTINUE
        urls = ctx.config.url_compression
        if not urls.do_dynamic_compression:
            return CONTINUE
        coding = request_coding(ctx.head, self.settings, self.offered) if self.gate.on else None
        if coding == "":
            ctx.cache = None  # HTTP/1.0 or Via: its identity response must not answer others
            coding = None
        if coding is not None:
            ctx.compression = DynamicOffer(self, coding, self.schemes[coding],
                                           urls.dynamic_compression_before_cache)
        elif ctx.cache is not None:
            # The front may keep this response: it must say it varies by Accept-Encoding.
            ctx.compression = DynamicOffer(self, None, 0, False)
        elif ctx.freb is not None:  # FREB: nothing will look at the response; say why now
            ctx.freb.emit("DYNAMIC_COMPRESSION_START", ())
            ctx.freb.emit("DYNAMIC_COMPRESSION_NOT_SUCCESS", (
                ("Reason", "NO_ACCEPT_ENCODING" if self.gate.on else "CPU_LIMIT_REACHED"),))
            ctx.freb.emit("DYNAMIC_COMPRESSION_END", ())
        return CONTINUE
