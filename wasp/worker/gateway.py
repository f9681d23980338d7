"""What the CGI and FastCGI handlers share: the script a request runs, its RFC 3875 meta-variables,
the request body, and relaying the script's response with back-pressure.

The script is the URL the handler mapping matched (`ctx.script`: "/index.php", or with
allow_path_info the part of "/index.php/a/b" up to the script); it must be a regular file inside
the application's physical_path, found with the same checks as static files (NUL, "\\", ".."
refused with 404.5, no symlink out of the root). A script that is not there is 404 and never
reaches PHP: "/upload.jpg/x.php" names the file upload.jpg/x.php, which does not exist (the
cgi.fix_pathinfo hole nginx configurations keep reopening).

Values are str decoded from the request's bytes as UTF-8 with surrogateescape: a CGI process's
environment and the FastCGI params encode them back the same way, so every byte arrives as sent.

Meta-variables: RFC 3875 §4.1 plus what PHP and IIS add (SCRIPT_FILENAME, REQUEST_URI,
DOCUMENT_ROOT, REDIRECT_STATUS=200 for php-cgi's cgi.force_redirect, HTTPS, APPL_PHYSICAL_PATH).
Request headers become HTTP_* except `Proxy` (httpoxy: HTTP_PROXY would become a script's outgoing
proxy) and names with "_" (X_Forwarded_For must not pass for X-Forwarded-For); Content-Length
and Content-Type are CONTENT_LENGTH and CONTENT_TYPE.
"""

from __future__ import annotations

import os
import stat as stat_mod

from wasp.errors import HttpError, NotFound
from wasp.wire.cgi import CgiHeadError, HeadParser
from wasp.worker.context import Cancelled
from wasp.worker.hosting.wsgi import split_host
from wasp.worker.modules.static import app_relative, check_path, resolve

#: Script output held before the response head goes out: a response that fits is sent in one
#: frame, and stderr written meanwhile can still turn it into a 500 (stderr_mode).
RESPONSE_BUFFER = 64 * 1024
#: A body without Content-Length (chunked) is read whole first, since CGI needs CONTENT_LENGTH;
#: request filtering's max_allowed_content_length (30 MB by default) bounds it before this does.
MAX_UNSIZED_BODY = 64 * 1024 * 1024


class GatewayError(HttpError):
    """The script failed: its status is what the handler answers (502.1, 502.2, 500, ...)."""

    reason = "Internal"


class Script:
    __slots__ = ("url", "path", "path_info", "root")

    def __init__(self, url: bytes, path: str, path_info: bytes, root: str):
        self.url = url              # app-relative URL of the script ("/index.php")
        self.path = path            # its real file path
        self.path_info = path_info  # what the URL has after it ("/a/b"), b"" for none
        self.root = root


def find_script(ctx, root: str) -> Script:
    """The mapped script as a regular file under `root`, else NotFound (404.5 for bad bytes)."""
    rel = app_relative(ctx) or b"/"
    url = ctx.script if ctx.script is not None else rel
    if url.endswith(b"/"):
        raise NotFound("the script is a directory")
    found = ctx.file_path if ctx.located and not ctx.is_dir else None
    if found is not None and (url == rel or (rel.endswith(b"/") and url == rel + os.path.basename(
            found).encode("utf-8", "surrogateescape"))):
        # the handler mapping located this file already (default_document may have chosen it)
        return Script(url, found, b"", root)
    segments = check_path(url)
    found = resolve(root, root, segments)
    if found is None or not stat_mod.S_ISREG(found[1].st_mode):
        raise NotFound("the script does not exist")
    path_info = rel[len(url):] if rel.startswith(url + b"/") else b""
    check_path(path_info)
    return Script(url, found[0], path_info, root)


def split_processor(value: str) -> tuple[str, str]:
    """ "/usr/bin/php-cgi|-d x=1" -> ("/usr/bin/php-cgi", "-d x=1")."""
    path, _bar, arguments = value.partition("|")
    return path.strip(), arguments.strip()


def environ(ctx, script: Script) -> dict[str, str]:
    head = ctx.head
    app = ctx.app
    prefix = head.path[:app.prefix_len].decode("utf-8", "surrogateescape") if app.prefix_len else ""
    env = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": "wasp",
        "SERVER_PROTOCOL": "HTTP/" + head.version,
        "REQUEST_METHOD": head.method,
        "QUERY_STRING": head.query.decode("utf-8", "surrogateescape"),
        "REQUEST_URI": head.target.decode("utf-8", "surrogateescape"),
        "SCRIPT_NAME": prefix + script.url.decode("utf-8", "surrogateescape"),
        "SCRIPT_FILENAME": script.path,
        "DOCUMENT_ROOT": script.root,
        "APPL_PHYSICAL_PATH": script.root + os.sep,
        "REMOTE_ADDR": head.client[0],
        "REMOTE_HOST": head.client[0],
        "REMOTE_PORT": str(head.client[1]),
        "REDIRECT_STATUS": "200",
        "HTTPS": "on" if head.tls is not None else "off",
        "REQUEST_SCHEME": head.scheme,
    }
    if head.server:
        env["SERVER_ADDR"] = head.server[0]
    if script.path_info:
        info = script.path_info.decode("utf-8", "surrogateescape")
        env["PATH_INFO"] = info
        env["PATH_TRANSLATED"] = script.root + info
    else:
        env["PATH_INFO"] = ""
    if head.content_length >= 0:
        env["CONTENT_LENGTH"] = str(head.content_length)
    for name, value in head.headers:
        lower = name.lower()
        if b"_" in name or lower == b"proxy" or lower == b"content-length":
            continue
        text = value.decode("utf-8", "surrogateescape")
        if lower == b"content-type":
            env["CONTENT_TYPE"] = text
            continue
        key = "HTTP_" + name.decode("ascii", "replace").upper().replace("-", "_")
        if key in env:
            env[key] += ("; " if key == "HTTP_COOKIE" else ", ") + text
        else:
            env[key] = text
    host = env.get("HTTP_HOST")
    if host:
        env["SERVER_NAME"], env["SERVER_PORT"] = split_host(host, "443" if head.scheme == "https" else "80")
    else:
        env["SERVER_NAME"] = head.server[0]
        env["SERVER_PORT"] = str(head.server[1])
    if head.server:
        env["SERVER_PORT"] = str(head.server[1])
    if ctx.user:
        env["REMOTE_USER"] = env["LOGON_USER"] = env["AUTH_USER"] = ctx.user
        env["AUTH_TYPE"] = ctx.auth_type
    if any("\x00" in v for v in env.values()):
        raise NotFound("a NUL in a meta-variable", substatus=5)
    return env


async def read_unsized(ctx) -> bytes:
    """The whole body of a request without Content-Length (413 past MAX_UNSIZED_BODY)."""
    parts = []
    size = 0
    body = ctx.body
    while body is not None:
        data, more = await body.take()
        size += len(data)
        if size > MAX_UNSIZED_BODY:
            raise HttpError("request body too large for a CGI script", status=413)
        parts.append(data)
        if not more:
            break
    return b"".join(parts)


class Relay:
    """The script's stdout to the client: the head parsed and checked (`bad_head` answered when
    it is not a valid CGI head), up to RESPONSE_BUFFER bytes held, then streamed with the
    front's flow control (an await per chunk: a slow client slows the reads from the script)."""

    __slots__ = ("ctx", "parser", "head", "held", "size", "sent", "bad_head", "streaming", "length")

    def __init__(self, ctx, bad_head: GatewayError):
        self.ctx = ctx
        self.parser = HeadParser()
        self.head = None
        self.held = []
        self.size = 0
        self.sent = 0
        self.bad_head = bad_head
        self.streaming = False
        self.length = -1

    def _bad(self, exc: Exception) -> GatewayError:
        error = self.bad_head
        return type(error)(f"{error.detail}: {exc}", status=error.status, substatus=error.substatus)

    @property
    def started(self) -> bool:
        return self.streaming

    async def feed(self, data: bytes) -> None:
        if self.head is None:
            try:
                head = self.parser.feed(data)
            except CgiHeadError as exc:
                raise self._bad(exc) from None
            if head is None:
                return
            self.head = head
            data = head.body
            head.body = b""
            if head.content_length >= 0 and not self.ctx.head_only:
                self.length = head.content_length
        if not data:
            return
        if self.streaming:
            await self._send(data)
            return
        self.held.append(data)
        self.size += len(data)
        if self.size > RESPONSE_BUFFER:
            await self._start()

    async def _send(self, data: bytes) -> None:
        if self.length >= 0:
            room = self.length - self.sent
            if room <= 0:
                return
            data = data[:room]
        self.sent += len(data)
        await self.ctx.send_body_async(data)

    def _block(self, length: int) -> bytes:
        head = self.head
        lines = [b"%d %s\r\n" % (head.status, head.reason)]
        for name, value in head.headers:
            if name.lower() != b"content-length":
                lines.append(name + b": " + value + b"\r\n")
        if length >= 0 and head.status not in (204, 304):
            lines.append(b"Content-Length: %d\r\n" % length)
        return b"".join(lines)

    async def _start(self) -> None:
        self.streaming = True
        self.ctx.start_response(self._block(self.length), self.length)
        held, self.held = self.held, []
        for data in held:
            await self._send(data)

    async def finish(self) -> None:
        """The script's output ended normally."""
        if self.head is None:
            try:
                self.head = self.parser.finish()
            except CgiHeadError as exc:
                raise self._bad(exc) from None
            self.held.append(self.head.body)
        ctx = self.ctx
        if self.streaming:
            if self.length >= 0 and self.sent < self.length:
                raise Cancelled("the script sent less than its Content-Length")
            ctx.end()
            return
        body = b"".join(self.held)
        status = self.head.status
        if status in (204, 304) or status < 200:
            ctx.respond(self._block(-1), b"", content_length=0)
            return
        if ctx.head_only and self.length < 0 and self.head.content_length >= 0:
            length = self.head.content_length
        else:
            if self.length >= 0:
                body = body[:self.length]
            length = len(body)
        ctx.respond(self._block(length), body, content_length=length)


def discard_stream(ctx) -> bool:
    """Whether nothing more can reach the client (it went away)."""
    return ctx.cancelled or ctx.finished
