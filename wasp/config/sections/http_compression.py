"""IIS system.webServer/httpCompression (AppHostOnly) and urlCompression (iis-behaviour.md §2.9,
§2.10). The static_compression and dynamic_compression modules read them
(wasp/worker/modules/static_compression.py, dynamic_compression.py; docs/compression.md).

`http_compression` is IIS's AppHostOnly section: it may be written at server level only
(`[http_compression]` in wasp.toml). A site, an application, a location or a web.toml that sets
it is a configuration error naming its key. `url_compression` is per URL like any section.

Where wasp differs from IIS, the doc says so: `schemes` are the content codings wasp has built
(gzip with zlib, br with brotli, zstd with zstandard; IIS installs gzip.dll, and iisbrotli adds
br), `directory` is relative to the config file, and `dynamic_compression_buffer_limit` bounds
the bytes compressed in one go rather than IIS's buffer before the first write.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

from msgspec import Meta, Struct, field

from wasp.config.model import Size, doc
from wasp.config.sections import Section, collection, section

Percent = Annotated[int, Meta(ge=0, le=100)]
#: A MIME type pattern as IIS writes it: "text/*", "application/atom+xml", "*/*".
MimePattern = Annotated[str, Meta(pattern=r"^(\*|[!#$%&'*+.^_`|~0-9A-Za-z-]+)/(\*|[!#$%&'*+.^_`|~0-9A-Za-z-]+)$")]


class MimeType(Struct, forbid_unknown_fields=True, kw_only=True):
    """One `<staticTypes>` / `<dynamicTypes>` `<add mimeType enabled>`."""

    mime_type: Annotated[MimePattern, doc(
        "\"type/subtype\", \"type/*\" or \"*/*\", compared without regard to case and without "
        "the Content-Type's parameters; the most specific entry wins."
    )]
    enabled: Annotated[bool, doc("true: responses of this type are compressed.")] = True


#: IIS 7/8/10's install list (iis-behaviour.md §2.9, S7) with IIS 10's application/javascript.
IIS_STATIC_TYPES = (("text/*", True), ("message/*", True), ("application/x-javascript", True),
                    ("application/javascript", True), ("application/atom+xml", True),
                    ("application/xaml+xml", True), ("*/*", False))
IIS_DYNAMIC_TYPES = (("text/*", True), ("message/*", True), ("application/x-javascript", True),
                     ("application/javascript", True), ("*/*", False))


class Scheme(Struct, forbid_unknown_fields=True, kw_only=True):
    """One `<scheme>`: a content coding the server offers."""

    name: Annotated[Literal["gzip", "br", "zstd"], doc(
        "The content coding (Accept-Encoding / Content-Encoding token): \"gzip\" (zlib), \"br\" "
        "(brotli), \"zstd\" (zstandard). IIS's `dll` has no equivalent: the library is built in."
    )]
    do_static_compression: Annotated[bool, doc("Use this scheme for static files.")] = True
    do_dynamic_compression: Annotated[bool, doc("Use this scheme for dynamic responses.")] = True
    static_compression_level: Annotated[int, Meta(ge=0, le=11, description=(
        "IIS's 0..10 (br 0..11): gzip uses zlib level max(1, min(9, n)), br the quality n, "
        "zstd the level max(1, n)."))] = 7
    dynamic_compression_level: Annotated[int, Meta(ge=0, le=11, description=(
        "As static_compression_level, for dynamic responses; IIS's 0 is the fastest "
        "level that still compresses (zlib 1, brotli 0, zstd 1)."))] = 0


def _default_schemes() -> list[Scheme]:
    # br first: with equal q-values the first scheme here wins, and browsers that send br
    # (all current ones) get the smaller body; gzip is IIS's own default scheme.
    return [Scheme(name="br", static_compression_level=9, dynamic_compression_level=1),
            Scheme(name="gzip"),
            Scheme(name="zstd", static_compression_level=10, dynamic_compression_level=1)]


@section("http_compression", override_mode_default="Deny")
class HttpCompression(Section):
    """IIS system.webServer/httpCompression (server level only)."""

    directory: Annotated[str, doc(
        "The compressed-file cache of static compression; each pool writes below "
        "`<directory>/<pool>/`. Relative to the config file; \"\" = `<server.run_dir>/compressed` "
        "(IIS: %SystemDrive%\\inetpub\\temp\\IIS Temporary Compressed Files)."
    )] = ""
    do_disk_space_limiting: Annotated[bool, doc(
        "Keep each pool's compressed files under max_disk_space_usage."
    )] = True
    max_disk_space_usage: Annotated[Size, doc(
        "Bytes of compressed files a pool may keep (IIS: 100 MB); above 90 % of it the least "
        "recently used files are deleted down to 90 %."
    )] = Size(100 * 1024 * 1024)
    min_file_size_for_comp: Annotated[Size, doc(
        "Smaller bodies are never compressed (a static file's size; a dynamic response's "
        "Content-Length when it is known)."
    )] = Size(2700)
    no_compression_for_http_10: Annotated[bool, doc("No compression for HTTP/1.0 requests.")] = True
    no_compression_for_proxies: Annotated[bool, doc(
        "No compression for requests that came through a proxy (a Via header)."
    )] = True
    no_compression_for_range: Annotated[bool, doc(
        "No compression for requests with a Range header; false: the range is of the "
        "compressed file."
    )] = True
    send_cache_headers: Annotated[bool, doc(
        "Add expires_header and cache_control_header to compressed responses."
    )] = False
    expires_header: Annotated[str, doc("The Expires value send_cache_headers adds.")] = \
        "Wed, 01 Jan 1997 12:00:00 GMT"
    cache_control_header: Annotated[str, doc("The Cache-Control value send_cache_headers adds.")] = \
        "max-age=86400"
    static_compression_ignore_hit_frequency: Annotated[bool, doc(
        "Compress a static file on its first request; false: only once it is frequently hit "
        "(cache.frequent_hit_threshold requests within cache.frequent_hit_time_period, IIS's "
        "serverRuntime frequentHit*)."
    )] = False
    static_compression_disable_cpu_usage: Annotated[Percent, doc(
        "Stop compressing static files while CPU use (averaged over 30 s) is above this."
    )] = 100
    static_compression_enable_cpu_usage: Annotated[Percent, doc(
        "Start again once CPU use is below this."
    )] = 50
    dynamic_compression_disable_cpu_usage: Annotated[Percent, doc(
        "Stop compressing dynamic responses while CPU use is above this."
    )] = 90
    dynamic_compression_enable_cpu_usage: Annotated[Percent, doc(
        "Start again once CPU use is below this."
    )] = 50
    dynamic_compression_buffer_limit: Annotated[Annotated[Size, Meta(ge=1024)], doc(
        "Most body bytes compressed in one step: a larger write is compressed and sent in "
        "pieces of this size, so memory stays bounded."
    )] = Size(65536)
    schemes: Annotated[list[Scheme], collection(key="name"), doc(
        "The offered content codings, in the server's order of preference (the first wins "
        "between equal q-values)."
    )] = field(default_factory=_default_schemes)
    static_types: Annotated[list[MimeType], collection(key="mime_type"), doc(
        "Which static files are compressed; the default is IIS's install list."
    )] = field(default_factory=lambda: [MimeType(mime_type=m, enabled=e) for m, e in IIS_STATIC_TYPES])
    dynamic_types: Annotated[list[MimeType], collection(key="mime_type"), doc(
        "Which dynamic responses are compressed; the default is IIS's install list."
    )] = field(default_factory=lambda: [MimeType(mime_type=m, enabled=e) for m, e in IIS_DYNAMIC_TYPES])


def threshold_problems(value: HttpCompression) -> list[tuple[str, str]]:
    """(key, message) for an enable threshold above its disable threshold (checked by the
    loader on the effective server-level section)."""
    found = []
    for kind in ("static", "dynamic"):
        enable = getattr(value, f"{kind}_compression_enable_cpu_usage")
        disable = getattr(value, f"{kind}_compression_disable_cpu_usage")
        if enable > disable:
            found.append((f"{kind}_compression_enable_cpu_usage",
                          f"{enable} is above {kind}_compression_disable_cpu_usage ({disable})"))
    return found


@section("url_compression")
class UrlCompression(Section):
    """IIS system.webServer/urlCompression: whether these URLs' responses are compressed."""

    do_static_compression: Annotated[bool, doc("Compress static files (static_compression).")] = True
    do_dynamic_compression: Annotated[bool, doc(
        "Compress dynamic responses (dynamic_compression; IIS 7.0's default was false)."
    )] = True
    dynamic_compression_before_cache: Annotated[bool, doc(
        "Let the front cache a dynamically compressed response (a whole one the app answered "
        "at once, under a caching profile); false: a dynamically compressed response is never "
        "cached, as HTTP.sys refuses it."
    )] = False


#: Sections IIS declares allowDefinition="AppHostOnly": the config loader refuses them at site,
#: application and location levels.
SERVER_ONLY = ("http_compression",)


def compression_root(directory: str, source: str, run_dir: str, pool: str) -> str:
    """A pool's compressed-file folder: `<directory>/<pool>`, `directory` relative to the config
    file `source` ("" = `<run_dir>/compressed`). The manager makes it (owned by the pool's
    account) before a worker starts; the worker writes in it."""
    if not directory:
        directory = os.path.join(run_dir or "run", "compressed")
    elif not os.path.isabs(directory):
        directory = os.path.join(os.path.dirname(source) if source else os.getcwd(),
                                 os.path.expanduser(directory))
    return os.path.join(os.path.normpath(directory), pool.replace("/", "_") or "_")


def server_directory(sections: dict) -> str:
    """http_compression.directory as the server level's raw table says it ("" when not set)."""
    table = (sections.get("server") or {}).get("http_compression")
    value = table.get("directory", "") if isinstance(table, dict) else ""
    return value if isinstance(value, str) else ""
