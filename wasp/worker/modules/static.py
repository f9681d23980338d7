"""StaticFileModule: files from the application's physical_path, sent by the front with sendfile.

The front cooks the path already (percent-decoded, `\\` -> `/`, dot segments resolved), but the
worker does not trust it: `locate` refuses NUL, backslashes and `..` segments (404.5, IIS's "URL
sequence denied"), anything whose real path leaves the real root (a symlink out), and anything that
is not a regular file or directory.

What a file is sent with comes from the URL's effective `static_content` section (MIME map,
client cache headers, ETag, document footer), compiled once per effective configuration into a
`StaticRules` kept on it (`_static_content`). A file with a footer is read and sent by the
worker; every other file keeps the front's sendfile path.
"""

from __future__ import annotations

import logging
import os
import stat as stat_mod
import zlib
from email.utils import parsedate_to_datetime
from urllib.parse import quote

from wasp.errors import Forbidden, HttpError, NotFound
from wasp.wire.http import http_date as imf_fixdate
from wasp.worker.errorpages import MethodNotAllowed, RangeNotSatisfiable
from wasp.worker.modules.mime import content_type, table_of
from wasp.worker.registry import FINISH, Module, Phase, register

log = logging.getLogger("wasp.worker")

# Windows FILETIME (100 ns ticks since 1601) of the Unix epoch: IIS builds ETags from FILETIMEs.
_FILETIME_EPOCH = 116444736000000000


class UnsafePath(NotFound):
    substatus = 5  # IIS request filtering: URL sequence denied


class HiddenSegment(NotFound):
    substatus = 8  # IIS request filtering: hidden segment (web.config; here web.toml)


#: Path segments never served, compared without regard to case (IIS's hiddenSegments has web.config).
HIDDEN_SEGMENTS = frozenset({"web.toml"})


def app_relative(ctx) -> bytes:
    """The cooked path below the application's path ("/x" for "/api/x" in "/api")."""
    path = ctx.head.path
    prefix = ctx.app.prefix_len
    return path[prefix:] if prefix else path


def check_path(rel: bytes) -> list[str]:
    """The path's segments, or UnsafePath. Pure: unit-tested without a file system."""
    if b"\x00" in rel:
        raise UnsafePath("NUL in path")
    if b"\\" in rel:
        raise UnsafePath("backslash in path")
    segments = []
    for raw in rel.split(b"/"):
        if raw == b"..":
            raise UnsafePath("'..' segment in path")
        if raw and raw != b".":
            segment = os.fsdecode(raw)
            if len(segment) == 8 and segment.lower() in HIDDEN_SEGMENTS:
                raise HiddenSegment("web.toml is never served")
            segments.append(segment)
    return segments


def _inside(root: str, real: str) -> bool:
    return real == root or real.startswith(root + os.sep) or root == os.sep


def _usable(st: os.stat_result) -> bool:
    return stat_mod.S_ISREG(st.st_mode) or stat_mod.S_ISDIR(st.st_mode)


def safe_stat(root: str, candidate: str) -> tuple[str, os.stat_result] | None:
    """(real path, stat) of `candidate` when it resolves inside `root` (a real path), else None."""
    real = os.path.realpath(candidate)
    if not _inside(root, real):
        return None
    try:
        st = os.stat(real)
    except (OSError, ValueError):
        return None
    return (real, st) if _usable(st) else None


def resolve(root: str, base: str, segments: list[str]) -> tuple[str, os.stat_result] | None:
    """Like safe_stat(root, base/segments...) for a real `base` inside `root`, with one lstat
    per segment instead of realpath's walk from "/"; a symlink on the way falls back to
    realpath and the containment check."""
    path = base
    st = None
    last = len(segments) - 1
    for i, segment in enumerate(segments):
        path = path + segment if path.endswith(os.sep) else path + os.sep + segment
        try:
            st = os.lstat(path)
        except (OSError, ValueError):
            return None
        if stat_mod.S_ISLNK(st.st_mode):
            return safe_stat(root, os.path.join(path, *segments[i + 1:]))
        if i < last and not stat_mod.S_ISDIR(st.st_mode):
            return None
    if st is None:
        try:
            st = os.stat(path)
        except OSError:
            return None
    return (path, st) if _usable(st) else None


def locate(ctx, root: str) -> None:
    """Fill ctx.file_path / file_stat / is_dir once per request (None when nothing is there)."""
    if ctx.located:
        return
    ctx.located = True
    found = resolve(root, root, check_path(app_relative(ctx)))
    if found is None:
        return
    ctx.file_path, ctx.file_stat = found
    ctx.is_dir = stat_mod.S_ISDIR(ctx.file_stat.st_mode)


def redirect_to_slash(ctx) -> None:
    """301 to the directory with a trailing slash, keeping the query (IIS's "Object Moved")."""
    location = quote(ctx.head.path, safe="/:@!$&'()*+,;=-._~") + "/"
    if ctx.head.query:
        location += "?" + ctx.head.query.decode("latin-1")
    body = (f'<head><title>Document Moved</title></head>\n<body><h1>Object Moved</h1>'
            f'This document may be found <a HREF="{location}">here</a></body>').encode("latin-1")
    block = (f"301 Moved Permanently\r\nContent-Type: text/html; charset=UTF-8\r\n"
             f"Location: {location}\r\nContent-Length: {len(body)}\r\n").encode("latin-1")
    ctx.respond(block, body)


def header(head, name: bytes) -> bytes | None:
    for key, value in head.headers:
        if len(key) == len(name) and key.lower() == name:
            return value
    return None


_DATES: dict[int, str] = {}


def http_date(seconds: int) -> str:
    date = _DATES.get(seconds)
    if date is None:
        if len(_DATES) > 4096:
            _DATES.clear()
        date = _DATES[seconds] = imf_fixdate(seconds).decode("ascii")
    return date


def etag_of(st: os.stat_result) -> str:
    filetime = st.st_mtime_ns // 100 + _FILETIME_EPOCH
    return f'"{filetime:x}:{st.st_size:x}"'


def _etag_matches(value: bytes, etag: str) -> bool:
    text = value.decode("latin-1").strip()
    if text == "*":
        return True
    weak = etag[2:] if etag.startswith("W/") else etag
    for item in text.split(","):
        item = item.strip()
        if item.startswith("W/"):
            item = item[2:]
        if item == weak:
            return True
    return False


def _http_date_seconds(value: bytes) -> int | None:
    try:
        return int(parsedate_to_datetime(value.decode("latin-1")).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def not_modified(head, etag: str | None, mtime: int) -> bool:
    """Whether the client's copy is current (etag None: no ETag is sent, so If-None-Match
    matches only "*")."""
    inm = header(head, b"if-none-match")
    if inm is not None:
        if etag is None:
            return inm.strip() == b"*"
        return _etag_matches(inm, etag)
    ims = header(head, b"if-modified-since")
    if ims is not None:
        since = _http_date_seconds(ims)
        return since is not None and mtime <= since
    return False


def parse_range(value: bytes, size: int):
    """One byte range of a `Range` header -> (start, end inclusive); "unsatisfiable"; or None when
    the header is to be ignored (malformed, another unit, or several ranges: the whole file)."""
    text = value.decode("latin-1").strip()
    unit, _, spec = text.partition("=")
    if unit.strip().lower() != "bytes" or not spec:
        return None
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if len(parts) != 1:
        return None
    first, dash, last = parts[0].partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    if not first:
        if not last.isdigit():
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size - 1
    if not first.isdigit() or (last and not last.isdigit()):
        return None
    start = int(first)
    end = int(last) if last else None
    if end is not None and end < start:
        return None
    if start >= size:
        return "unsatisfiable"
    if end is None:
        end = size - 1
    return start, min(end, size - 1)


def _range_applies(head, etag: str, last_modified: str) -> bool:
    value = header(head, b"if-range")
    if value is None:
        return True
    text = value.decode("latin-1").strip()
    if text.startswith('"') or text.startswith("W/"):
        return text == etag  # If-Range needs a strong match
    return text == last_modified


#: A file with a footer is read into memory; a bigger one is sent as it is (with sendfile).
FOOTER_FILE_LIMIT = 4 * 1024 * 1024
#: A footer file bigger than this is not read (the footer is then left out, with a log line).
FOOTER_LIMIT = 64 * 1024


class StaticRules:
    """One effective `static_content` section, compiled: what serve_file needs per request."""

    __slots__ = ("types", "cache_lines", "set_etag", "footer_text", "footer_file")

    def __init__(self, section):
        self.types = table_of(section.mime_map)
        self.cache_lines = cache_headers(section.client_cache)
        self.set_etag = section.client_cache.set_e_tag
        self.footer_text = b""
        self.footer_file = None
        if section.enable_doc_footer and section.default_doc_footer:
            if section.is_doc_footer_file_name:
                if os.path.isabs(section.default_doc_footer):
                    self.footer_file = section.default_doc_footer
                else:  # IIS wants a full path too; a relative one would depend on the cwd
                    log.warning("static_content: default_doc_footer %r is not an absolute path; "
                                "no footer", section.default_doc_footer)
            else:
                self.footer_text = section.default_doc_footer.encode("utf-8")

    def footer(self) -> bytes:
        """The footer's bytes (a footer file is read each time: it may change without a reload)."""
        if self.footer_file is None:
            return self.footer_text
        try:
            with open(self.footer_file, "rb") as f:
                data = f.read(FOOTER_LIMIT + 1)
        except OSError as exc:
            log.warning("static_content: the footer file %s cannot be read: %s", self.footer_file, exc)
            return b""
        if len(data) > FOOTER_LIMIT:
            log.warning("static_content: the footer file %s is over %d bytes; left out",
                        self.footer_file, FOOTER_LIMIT)
            return b""
        return data


def cache_headers(client_cache) -> str:
    """IIS clientCache -> the header lines it adds to a static file's response."""
    mode = client_cache.cache_control_mode
    custom = client_cache.cache_control_custom.strip()
    directives = []
    lines = ""
    if mode == "DisableCache":
        directives.append("no-cache")
    elif mode == "UseMaxAge":
        directives.append(f"max-age={int(client_cache.cache_control_max_age)}")
    elif mode == "UseExpires" and client_cache.http_expires:
        lines = f"Expires: {client_cache.http_expires}\r\n"
    if custom:
        directives.append(custom)
    if directives:
        lines = f"Cache-Control: {', '.join(directives)}\r\n" + lines
    return lines


def rules_of(config) -> StaticRules:
    """The compiled static_content of an effective configuration (kept on it)."""
    rules = config.__dict__.get("_static_content")
    if rules is None:
        rules = config._static_content = StaticRules(config.static_content)
    return rules


def _footer_applies(mime: str) -> bool:
    """IIS appends the footer to the documents StaticFileModule serves; wasp to HTML only, so a
    footer (an HTML fragment) never corrupts an image or a script."""
    return mime.startswith("text/html")


def serve_file(ctx, path: str, st: os.stat_result, mime: str, rules: StaticRules | None = None) -> None:
    size = st.st_size
    etag = etag_of(st)
    mtime = int(st.st_mtime)
    if rules is not None and (rules.footer_text or rules.footer_file) and _footer_applies(mime) \
            and size <= FOOTER_FILE_LIMIT:
        footer = rules.footer()
        if footer:
            # The footer is part of the entity: its validator changes with it (and the body is
            # made here, so no compressed copy of the file on disk stands for it).
            etag = f'{etag[:-1]}:{zlib.crc32(footer):x}"'
            serve_representation(ctx, path, size, etag, mtime, mime, rules=rules, footer=footer)
            return
    items = ctx.items
    if items is not None:
        # static_compression left its offer: it answers with the compressed copy when it can
        # (and otherwise may add Vary: Accept-Encoding to the identity response below).
        offer = items.get("static_compression")
        if offer is not None and offer(ctx, path, st, mime):
            return
    serve_representation(ctx, path, size, etag, mtime, mime, rules=rules)


def serve_representation(ctx, path: str, size: int, etag: str, mtime: int, mime: str,
                         extra_headers: str = "", rules: StaticRules | None = None,
                         footer: bytes = b"") -> None:
    """One representation of a file: `size` bytes of `path` (the file itself, or its compressed
    copy with `extra_headers` saying so), with its validators and static_content's client-cache
    lines; 304, 206 or 200."""
    head = ctx.head
    last_modified = http_date(mtime)
    send_etag = rules is None or rules.set_etag
    tag_line = f"ETag: {etag}\r\n" if send_etag else ""
    extra_lines = rules.cache_lines if rules is not None else ""
    if not_modified(head, etag if send_etag else None, mtime):
        ctx.respond(f"304 Not Modified\r\nLast-Modified: {last_modified}\r\n{tag_line}{extra_lines}"
                    .encode("latin-1"))
        return
    if footer:
        serve_with_footer(ctx, path, mime, last_modified, tag_line + extra_lines, footer)
        return
    common = (f"Content-Type: {mime}\r\n{extra_headers}Last-Modified: {last_modified}\r\n"
              f"Accept-Ranges: bytes\r\n{tag_line}{extra_lines}")
    status, start, length, extra = "200 OK", 0, size, ""
    value = header(head, b"range")
    if value is not None and _range_applies(head, etag, last_modified):
        wanted = parse_range(value, size)
        if wanted == "unsatisfiable":
            raise RangeNotSatisfiable(size)
        if wanted is not None:
            start, end = wanted
            length = end - start + 1
            status = "206 Partial Content"
            extra = f"Content-Range: bytes {start}-{end}/{size}\r\n"
    block = f"{status}\r\n{common}{extra}Content-Length: {length}\r\n".encode("latin-1")
    if ctx.head_only or length == 0:
        ctx.respond(block, content_length=length)
    elif not path.isascii() and not _utf8(path):
        # A name with bytes that are not UTF-8 cannot travel in a FILE frame (its path is a
        # msgpack str): the worker reads such a file itself, up to a bound.
        if length > UNNAMEABLE_LIMIT:
            raise HttpError(f"{length} bytes under a file name that is not UTF-8", status=500)
        try:
            with open(path, "rb") as f:
                f.seek(start)
                body = f.read(length)
        except OSError:
            raise NotFound("the file cannot be read") from None
        ctx.respond(block, body)
    else:
        ctx.send_file(block, path, start, length)


#: The largest file whose non-UTF-8 name makes the worker send it itself.
UNNAMEABLE_LIMIT = 16 * 1024 * 1024


def _utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def serve_with_footer(ctx, path: str, mime: str, last_modified: str, lines: str, footer: bytes) -> None:
    """The file and the footer in one body (no ranges: the entity is not the file on disk)."""
    try:
        with open(path, "rb") as f:
            data = f.read(FOOTER_FILE_LIMIT + 1)
    except OSError:
        raise NotFound("the file cannot be read") from None
    body = data + footer
    block = (f"200 OK\r\nContent-Type: {mime}\r\nLast-Modified: {last_modified}\r\n{lines}"
             f"Content-Length: {len(body)}\r\n").encode("latin-1")
    ctx.respond(block, body)


@register("static_file", phases=(Phase.EXECUTE_REQUEST_HANDLER,))
class StaticFileModule(Module):
    """The handler of IIS's `StaticFile path="*"` entry, the last of the default handler list."""

    #: Mapped even without a physical_path: it answers 404.0 then (there is no such file), where
    #: a handler list without it would say 404.4.
    answers_without_content = True

    def setup(self, app) -> None:
        physical = app.config.physical_path
        self.root = os.path.realpath(physical) if physical else None
        self.has_app = bool(app.config.app)

    def wants(self, phase) -> bool:
        return self.root is not None  # without content there is nothing to map

    def execute_request_handler(self, ctx):
        if ctx.freb is not None:
            return self._traced(ctx)
        return self._execute(ctx)

    def _traced(self, ctx):
        """FREB's StaticFile events around the handler (only for a traced request)."""
        trace = ctx.freb
        trace.emit("STATIC_FILE_START", (("RequestURL", ctx.head.path.decode("utf-8", "replace")),
                                         ("Handler", "static_file")))
        try:
            status = self._execute(ctx)
        except HttpError as exc:
            trace.emit("STATIC_FILE_END", (
                ("FileName", ctx.file_path or ""), ("Successful", "false"),
                ("HttpStatus", exc.status), ("HttpSubStatus", exc.substatus),
                ("Reason", str(exc)[:200])))
            raise
        st = ctx.file_stat
        trace.emit("STATIC_FILE_END", (
            ("FileName", ctx.file_path or ""), ("Successful", "true"),
            ("FileSize", st.st_size if st is not None else 0), ("HttpStatus", ctx.status)))
        return status

    def _execute(self, ctx):
        if self.root is None:
            raise NotFound("the application has no physical_path")
        locate(ctx, self.root)
        if ctx.file_path is None:
            raise NotFound("no such file")
        if ctx.is_dir:
            if not ctx.head.path.endswith(b"/"):
                redirect_to_slash(ctx)
                return FINISH
            raise Forbidden("directory listing denied", substatus=14)
        rules = rules_of(ctx.config)
        mime = content_type(ctx.file_path, rules.types)
        if mime is None:
            raise NotFound("no MIME map entry for the extension", substatus=3)
        if ctx.head.method not in ("GET", "HEAD"):
            raise MethodNotAllowed("GET, HEAD")
        serve_file(ctx, ctx.file_path, ctx.file_stat, mime, rules)
        return FINISH
