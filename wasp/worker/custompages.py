"""IIS CustomErrorModule's pages: the `http_errors.errors` entry of an error and its response.

`custom_response(ctx, status, substatus)` -> (block, body) for Custom mode:
- the entry for (status, substatus), else (status, -1), else `default_path` in
  `default_response_mode`, else wasp's built-in page (IIS's custerr en-US text, or one line);
- File: the file's bytes, found under `prefix_language_file_path/<language>/` for the client's
  Accept-Language tags (then en-US), or under the application's physical_path. The real path must
  stay inside that folder (no "..", no symlink out), be a regular file and at most PAGE_LIMIT;
- Redirect: 302 to the configured URL (validated at load: no control character, no "//host");
- ExecuteURL: a child request for the URL, run through the application's pipeline on the calling
  thread with GET (HEAD for HEAD), the original status on its response. Child requests never get
  custom errors themselves: one that fails, or that answers anything but 2xx, gives IIS's plain
  one-line message, so an error page that errors cannot loop.
A page that cannot be used (missing file, a path outside its folder) also gives the plain message,
and the reason goes to the worker log once per page.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
from urllib.parse import unquote_to_bytes

from wasp.wire.http import reason_phrase
from wasp.worker.context import RequestContext
from wasp.worker.registry import FINISH, Status

log = logging.getLogger("wasp.worker")

#: The largest custom error file (or child response) sent; a bigger one gives the plain message.
PAGE_LIMIT = 1024 * 1024
#: Accept-Language tags tried, at most (then en-US).
LANGUAGES = 4
_TAG = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")
_FALLBACK_LANGUAGE = "en-US"
#: Request headers a child request does not inherit: it asks for the whole page.
_CHILD_DROPS = frozenset({b"range", b"if-range", b"if-none-match", b"if-modified-since",
                          b"if-match", b"if-unmodified-since", b"content-length",
                          b"transfer-encoding", b"expect"})
#: Child response headers that describe the child's own resource, not the error.
_CHILD_HEADER_DROPS = frozenset({b"etag", b"last-modified", b"accept-ranges", b"content-length",
                                 b"content-range", b"location", b"set-cookie"})

_warned: set = set()
_warn_lock = threading.Lock()


def plain_page(status: int) -> str:
    """IIS's basic one-line message (no entry, or the entry's page failed)."""
    return f"The page cannot be displayed because an error has occurred ({status} {reason_phrase(status)}).\r\n"


def find_entry(section, status: int, substatus: int):
    """(mode, path, prefix) of the page for status.substatus, or None for the built-in page."""
    wildcard = None
    for entry in section.errors:
        if entry.status_code != status:
            continue
        if entry.sub_status_code == substatus:
            return entry.response_mode, entry.path, entry.prefix_language_file_path
        if entry.sub_status_code == -1 and wildcard is None:
            wildcard = entry
    if wildcard is not None:
        return wildcard.response_mode, wildcard.path, wildcard.prefix_language_file_path
    if section.default_path:
        return section.default_response_mode, section.default_path, ""
    return None


def languages(head) -> list[str]:
    """Accept-Language tags by preference (q > 0), at most LANGUAGES, each a plain tag."""
    value = b""
    for name, v in head.headers:
        if name.lower() == b"accept-language":
            value = v if not value else value + b"," + v
    tags = []
    for order, item in enumerate(value.decode("latin-1").split(",")):
        tag, _, params = item.strip().partition(";")
        tag = tag.strip()
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                continue
        if q > 0 and _TAG.match(tag):
            tags.append((-q, order, tag))
    tags.sort()
    return [tag for _q, _o, tag in tags[:LANGUAGES]]


def _inside(folder: str, path: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def file_candidates(ctx, path: str, prefix: str) -> list[tuple[str, str]]:
    """(folder the page must stay in, file) pairs to try, in order."""
    physical = ctx.app.config.physical_path
    root = os.path.realpath(physical) if physical else None
    if prefix:
        base = prefix if os.path.isabs(prefix) else (os.path.join(root, prefix) if root else None)
        if base is None:
            return []
        base = os.path.realpath(base)
        folders: list[str] = []
        for tag in [*languages(ctx.head), _FALLBACK_LANGUAGE]:
            language, _, region = tag.partition("-")
            usual = f"{language.lower()}-{region.upper()}" if region else language.lower()
            for name in (tag, usual, tag.lower()):  # as sent, IIS's "fr-FR", lower case
                folder = os.path.join(base, name)
                if folder not in folders:
                    folders.append(folder)
        found = [(folder, os.path.join(folder, path)) for folder in folders]
        found.append((base, os.path.join(base, path)))
        return found
    if os.path.isabs(path):
        return [(os.path.dirname(os.path.realpath(path)), path)]
    return [(root, os.path.join(root, path))] if root else []


def read_page(folder: str, file: str) -> bytes | None:
    """The file's bytes when it is a regular file inside `folder` (after symlinks), else None."""
    real = os.path.realpath(file)
    if not _inside(folder, real):
        _warn(file, f"custom error page {file} is outside {folder}: ignored")
        return None
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > PAGE_LIMIT:
            _warn(file, f"custom error page {file} is not a regular file of at most {PAGE_LIMIT} bytes")
            return None
        chunks, left = [], st.st_size
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _warn(key: str, message: str) -> None:
    with _warn_lock:
        if key in _warned or len(_warned) > 1024:
            return
        _warned.add(key)
    log.warning("%s", message)


def _block(status: int, content_type: str, extra: str = "") -> str:
    return f"{status} {reason_phrase(status)}\r\nContent-Type: {content_type}\r\n{extra}"


def file_response(ctx, status: int, path: str, prefix: str):
    for folder, file in file_candidates(ctx, path, prefix):
        body = read_page(folder, file)
        if body is not None:
            ext = os.path.splitext(file)[1].lower()
            kind = "text/html" if ext in (".htm", ".html", "") else _mime(file)
            return (_block(status, kind) + f"Content-Length: {len(body)}\r\n").encode("latin-1"), body
    _warn(f"missing:{path}:{prefix}", f"custom error page {path!r} (prefix {prefix!r}) of "
                                      f"application {ctx.app.key} not found")
    return None


def _mime(file: str) -> str:
    from wasp.worker.modules.mime import content_type

    return content_type(file) or "application/octet-stream"


def redirect_response(status_unused: int, url: str):
    body = (f'<head><title>Document Moved</title></head>\n<body><h1>Object Moved</h1>'
            f'This document may be found <a HREF="{_attr(url)}">here</a></body>').encode("utf-8")
    block = (f"302 Found\r\nContent-Type: text/html; charset=UTF-8\r\nLocation: {url}\r\n"
             f"Content-Length: {len(body)}\r\n").encode("utf-8")
    return block, body


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def custom_response(ctx, status: int, substatus: int):
    """(block, body) of the Custom-mode page, or None for the built-in one."""
    found = find_entry(ctx.config.http_errors, status, substatus)
    if found is None:
        return None
    mode, path, prefix = found
    if isinstance(ctx, ChildContext):
        answer = None  # an error inside an error page: no page of its own (no loop)
    elif mode == "File":
        answer = file_response(ctx, status, path, prefix)
    elif mode == "Redirect":
        answer = redirect_response(status, path)
    else:
        answer = execute_url(ctx, status, path)
    if answer is None:
        body = plain_page(status).encode("latin-1")
        answer = ((_block(status, "text/html") + f"Content-Length: {len(body)}\r\n").encode("latin-1"),
                  body)
    return answer


# ---- ExecuteURL: a child request ----

class _ChildChannel:
    """Where a child request's frames would go: nowhere; its context keeps the response."""

    initial_window = 1 << 62

    def __init__(self, parent):
        self.loop = parent.loop
        self.cond = threading.Condition()
        self.lock = threading.Lock()
        self.closed = False

    def send_frame(self, ctx, data) -> bool:
        return not ctx.finished

    def send_final(self, ctx, data) -> bool:
        if ctx.finished:
            return False
        ctx.finished = True
        return True

    def done(self, ctx) -> None:
        pass


class ChildContext(RequestContext):
    """An ExecuteURL child request: the pipeline runs it as any other, and its response is kept
    here (whole body, a file span, or streamed chunks up to PAGE_LIMIT) for the parent."""

    __slots__ = ("answer", "chunks", "size", "span")

    def __init__(self, parent, head):
        super().__init__(_ChildChannel(parent.channel), parent.sid, head, parent.app, parent.threaded)
        self.user, self.auth_type, self.private = parent.user, parent.auth_type, parent.private
        self.answer = None    # block
        self.chunks: list = []
        self.size = 0
        self.span = None      # (path, offset, length)

    def add_filter(self, send_filter) -> None:
        pass  # no custom errors, output cache or protocol headers of its own: the parent's apply

    def add_header(self, name: str, value: str) -> None:
        pass

    def respond(self, block, body=b"", content_length=None, substatus=0) -> None:
        self.started = self.finished = True
        self.status = self._code(block)
        self.answer = block
        self.chunks = [bytes(body)]

    def start_response(self, block, content_length=-1, substatus=0) -> None:
        self.started = True
        self.status = self._code(block)
        self.answer = block

    def send_file(self, block, path, offset, length) -> None:
        self.started = self.finished = True
        self.status = self._code(block)
        self.answer = block
        self.span = (path, offset, length)

    def send_body(self, data) -> None:
        if not data:
            return
        self.size += len(data)
        if self.size > PAGE_LIMIT:
            raise _TooLarge()
        self.chunks.append(bytes(data))

    async def send_body_async(self, data) -> None:
        self.send_body(data)

    def end(self) -> None:
        self.finished = True

    def abort(self, status: int = 500, substatus: int = 0) -> None:
        self.finished = True
        self.status = -1

    @staticmethod
    def _code(block: bytes) -> int:
        try:
            return int(block[:3])
        except ValueError:
            return -1


class _TooLarge(Exception):
    pass


def child_head(ctx, url: str):
    path, _, query = url.partition("?")
    head = ctx.head
    raw = path.encode("utf-8")
    return type(head)(
        head.app, "HEAD" if head.method == "HEAD" else "GET", url.encode("utf-8"),
        unquote_to_bytes(raw), query.encode("utf-8"), head.version,
        [(n, v) for n, v in head.headers if n.lower() not in _CHILD_DROPS],
        head.client, head.server, head.scheme, -1, False, head.warmup, head.tls, head.proxied)


def execute_url(ctx, status: int, url: str):
    """The child request's response under the original status, or None (plain message)."""
    app = ctx.app
    prefix = app.script_name
    if prefix and not (url == prefix or url.startswith(prefix + "/")):
        _warn(f"app:{url}", f"ExecuteURL {url} is not in application {app.key}: the plain message is sent")
        return None
    child = ChildContext(ctx, child_head(ctx, url))
    pipeline = child.config.pipeline or app.pipeline
    try:
        for phase, name, step in pipeline.before + pipeline.after:
            child.phase, child.module = phase, name
            result = step(child)
            if result.__class__ is not Status:
                close = getattr(result, "close", None)
                if close is not None:
                    close()  # an awaitable step (an ASGI app): a child runs synchronously only
                _warn(f"async:{url}", f"ExecuteURL {url} is answered asynchronously (ASGI): a child "
                                      "request runs synchronously; the plain message is sent")
                return None
            if result is FINISH:
                break
    except _TooLarge:
        return None
    except Exception as exc:  # the page itself failed: IIS's plain error, no page for the page
        log.info("ExecuteURL %s for a %d failed: %s", url, status, exc)
        return None
    if child.answer is None or not 200 <= child.status < 300 or not child.finished:
        return None
    lines = [f"{status} {reason_phrase(status)}".encode("latin-1")]
    for line in child.answer.split(b"\r\n")[1:]:
        name = line.partition(b":")[0].strip().lower()
        if line and name not in _CHILD_HEADER_DROPS:
            lines.append(line)
    if child.span is not None:
        path, offset, length = child.span
        if length > PAGE_LIMIT:
            return None
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                body = f.read(length)
        except OSError:
            return None
    else:
        body = b"".join(child.chunks)
    lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n", body
