"""StaticCompressionModule: a static file's compressed copy, sent with sendfile like the file.

For a request the static_file handler serves, the module leaves an offer on the request (at
PRE_EXECUTE_REQUEST_HANDLER); `static.serve_file` calls it with the file it found. The offer
answers when the file's type is in `http_compression.static_types`, it is at least
`min_file_size_for_comp` bytes, the request negotiated a scheme (Accept-Encoding, HTTP/1.0,
Via, Range: wasp/worker/encoding.py) and a fresh copy is in the pool's compressed-file directory
(wasp/worker/compressed_files.py). Without a copy the file goes out as it is and, once it is
frequently hit and CPU use allows, a copy is made in the background (IIS, scheme.md).

Every response of a compressible file, compressed or not, says `Vary: Accept-Encoding`, so the
front's cache and any other keep one copy per Accept-Encoding. A compressed response has its own
ETag (the file's with "-gzip", "-br" or "-zstd" inside the quotes), so If-None-Match and If-Range
compare validators of the representation actually sent. The identity response of a file whose
copy is on its way is kept out of the front's cache: else the front would answer every later
request of that Accept-Encoding with it.
"""

from __future__ import annotations

import os

from wasp.config.sections.http_compression import compression_root
from wasp.worker.compressed_files import store_for
from wasp.worker.encoding import (
    CpuGate, TypeList, cpu_monitor, not_for_bits, request_coding, variant_etag,
)
from wasp.worker.modules.http_cache import NOT_FOR
from wasp.worker.modules.static import etag_of, rules_of, serve_representation
from wasp.worker.registry import CONTINUE, Module, Phase, register


def compression_directory(app, settings) -> str:
    return compression_root(settings.directory, getattr(app, "source", ""),
                            getattr(app, "run_dir", ""), app.config.pool)


@register("static_compression", phases=(Phase.PRE_EXECUTE_REQUEST_HANDLER,))
class StaticCompressionModule(Module):
    def setup(self, app) -> None:
        settings = self.settings = app.sections.http_compression
        self.schemes = {s.name: s.static_compression_level for s in settings.schemes
                        if s.do_static_compression}
        self.offered = tuple(self.schemes)
        self.types = TypeList(settings.static_types)
        self.min_size = int(settings.min_file_size_for_comp)
        self.ignore_frequency = settings.static_compression_ignore_hit_frequency
        self.cache_headers = (
            f"Expires: {settings.expires_header}\r\nCache-Control: {settings.cache_control_header}\r\n"
            if settings.send_cache_headers else "")
        self.not_for = not_for_bits(settings)
        self.gate = CpuGate(settings.static_compression_disable_cpu_usage,
                            settings.static_compression_enable_cpu_usage)
        self.on = bool(app.config.physical_path) and bool(self.offered)
        self.store = None
        if self.on:
            threshold, period = getattr(app, "frequent_hit", (2, 10.0))
            self.store = store_for(compression_directory(app, settings),
                                   max_bytes=int(settings.max_disk_space_usage),
                                   limit_disk=settings.do_disk_space_limiting,
                                   threshold=threshold, period=period)
            cpu_monitor().watch(self.gate)

    def wants(self, phase) -> bool:
        return self.on

    def cleanup(self) -> None:
        if self.store is not None:
            self.store.close()

    def pre_execute_request_handler(self, ctx):
        handler = ctx.handler
        if handler is not None and handler.id == "static_file" \
                and ctx.config.url_compression.do_static_compression:
            items = ctx.items
            if items is None:
                items = ctx.items = {}
            items["static_compression"] = self.offer
        return CONTINUE

    def offer(self, ctx, path: str, st: os.stat_result, mime: str) -> bool:
        """Answer with the compressed copy of `path` when there is one; False: the caller sends
        the file itself."""
        trace = ctx.freb
        if trace is None:
            return not self._offer(ctx, path, st, mime)
        trace.emit("STATIC_COMPRESSION_START", (("FileName", path),))
        reason = self._offer(ctx, path, st, mime)
        if reason:
            trace.emit("STATIC_COMPRESSION_NOT_SUCCESS", (("Reason", reason),))
        else:
            trace.emit("STATIC_COMPRESSION_SUCCESS", (("FileName", path),))
        trace.emit("STATIC_COMPRESSION_END", ())
        return not reason

    def _offer(self, ctx, path: str, st: os.stat_result, mime: str) -> str:
        """"" when the compressed copy answered, else IIS's reason it did not."""
        if st.st_size < self.min_size:
            return "FILE_TOO_SMALL"
        if not self.types.allows(mime):
            return "NO_MATCHING_CONTENT_TYPE"
        ctx.add_header("Vary", "Accept-Encoding")
        if ctx.head.method != "GET":
            return "NOT_GET_REQUEST"
        coding = request_coding(ctx.head, self.settings, self.offered)
        if not coding:
            if coding is not None:
                ctx.cache = None  # HTTP/1.0 or Via: not this identity response for gzip clients
                return "HTTP_1_0_OR_PROXY_REQUEST"
            return "NO_ACCEPT_ENCODING"
        store = self.store
        if not store.usable:
            return "COMPRESSION_DIRECTORY_UNUSABLE"
        found = store.lookup(path, st, coding)
        if found is None:
            if store.hopeless(path, st, coding):
                return "COMPRESSION_FAILED"  # no copy will come: the file itself may be front-cached
            if self.gate.on:
                if self.ignore_frequency or store.frequently_hit(path):
                    store.schedule(path, st, coding, self.schemes[coding])
                    reason = "COMPRESSED_COPY_NOT_READY"
                else:
                    reason = "NOT_FREQUENTLY_HIT"
                ctx.cache = None  # a compressed copy is coming: do not let the front keep this one
                return reason
            return "CPU_LIMIT_REACHED"
        copy, size = found
        ctx.items[NOT_FOR] = self.not_for
        serve_representation(ctx, copy, size, variant_etag(etag_of(st), coding), int(st.st_mtime),
                             mime, f"Content-Encoding: {coding}\r\n{self.cache_headers}",
                             rules=rules_of(ctx.config))
        return ""
