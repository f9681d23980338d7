"""WSGI (PEP 3333) hosting on the worker's threads.

The event loop only decodes frames and queues the request; a WSGI thread runs the whole pipeline,
calls the app and writes the response frames to the data channel itself (under the channel's lock),
so a request costs no loop round trip. The common case, a body whose size is known when the app
returns, leaves as one RESPONSE frame with FIN; larger or streamed bodies go out as BODY frames
within the stream's WINDOW credit, the thread sleeping while the front is behind.
"""

from __future__ import annotations

import logging
import os
import stat as stat_mod

from wasp.wire.frames import INITIAL_WINDOW
from wasp.worker.context import Cancelled
from wasp.worker.flow import EMPTY_INPUT
from wasp.worker.registry import FINISH

log = logging.getLogger("wasp.worker")
app_log = logging.getLogger("wasp.app")

#: Hop-by-hop headers are the front's business (docs/internals.md, "The response block").
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding"})
_NO_BODY = (204, 304)

_SMALL = INITIAL_WINDOW  # a complete body up to this size travels inside the RESPONSE frame


class ErrorStream:
    """wsgi.errors: lines written by the app go to the worker log."""

    def __init__(self):
        self._partial = ""

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            text = str(text)
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            app_log.warning("%s", line)
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._partial:
            app_log.warning("%s", self._partial)
            self._partial = ""


class FileWrapper:
    """wsgi.file_wrapper. When the app returns one around a real file, the front sends the file."""

    def __init__(self, filelike, blksize: int = 65536):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration


# header name as sent -> environ key (None: not passed on), shared by every request and thread
_HEADER_KEYS: dict[bytes, str | None] = {}
_HEADER_KEYS_MAX = 2048


def _environ_key(name: bytes) -> str | None:
    key = _HEADER_KEYS.get(name, False)
    if key is not False:
        return key
    text = name.decode("latin-1")
    upper = text.upper()
    if "_" in text:
        key = None  # X_Forwarded_For must not pass for X-Forwarded-For (as nginx and gunicorn do)
    elif upper == "CONTENT-LENGTH":
        key = None  # from the head's content_length, which the front validated
    elif upper == "CONTENT-TYPE":
        key = "CONTENT_TYPE"
    else:
        key = "HTTP_" + upper.replace("-", "_")
    if len(_HEADER_KEYS) < _HEADER_KEYS_MAX:
        _HEADER_KEYS[name] = key
    return key


def split_host(host: str, default_port: str) -> tuple[str, str]:
    """"example.test:8080" / "[::1]:80" / "example.test" -> (name, port)."""
    if host.startswith("["):
        end = host.find("]")
        if end > 0:
            rest = host[end + 1:]
            return host[:end + 1], rest[1:] if rest.startswith(":") and rest[1:].isdigit() else default_port
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and name:
        return name, port
    return host, default_port


class WSGIHost:
    def __init__(self, app, callable_, *, multithread: bool = True, multiprocess: bool = False):
        self.app = callable_
        self.key = app.key
        self.prefix_len = app.prefix_len
        self.base = {
            "SCRIPT_NAME": app.script_name,
            "SERVER_SOFTWARE": "wasp",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "wsgi.version": (1, 0),
            "wsgi.errors": ErrorStream(),
            "wsgi.multithread": multithread,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
            "wsgi.input_terminated": True,
        }
        self._hosts: dict[str, tuple[str, str]] = {}

    def environ(self, ctx) -> dict:
        head = ctx.head
        env = self.base.copy()
        path = head.path
        prefix = self.prefix_len
        if prefix:
            env["SCRIPT_NAME"] = path[:prefix].decode("latin-1")
            path = path[prefix:]
        env["REQUEST_METHOD"] = head.method
        env["PATH_INFO"] = path.decode("latin-1")
        env["QUERY_STRING"] = head.query.decode("latin-1")
        env["RAW_URI"] = env["REQUEST_URI"] = head.target.decode("latin-1")
        env["SERVER_PROTOCOL"] = "HTTP/" + head.version
        client = head.client
        env["REMOTE_ADDR"] = client[0]
        env["REMOTE_PORT"] = str(client[1])
        env["wsgi.url_scheme"] = head.scheme
        env["wsgi.input"] = ctx.body or EMPTY_INPUT
        if head.content_length >= 0:
            env["CONTENT_LENGTH"] = str(head.content_length)
        for name, value in head.headers:
            key = _HEADER_KEYS.get(name, False)
            if key is False:
                key = _environ_key(name)
            if key is None:
                continue
            if key in env:
                env[key] += ("; " if key == "HTTP_COOKIE" else ", ") + value.decode("latin-1")
            else:
                env[key] = value.decode("latin-1")
        host = env.get("HTTP_HOST")
        if host:
            server = self._hosts.get(host)
            if server is None:
                server = split_host(host, "443" if head.scheme == "https" else "80")
                if len(self._hosts) < 256:
                    self._hosts[host] = server
            env["SERVER_NAME"], env["SERVER_PORT"] = server
        else:
            env["SERVER_NAME"] = head.server[0]
            env["SERVER_PORT"] = str(head.server[1])
        if head.warmup:
            env["APP_WARMING_UP"] = "1"
        if ctx.user:  # set by an authentication module (CGI's REMOTE_USER and AUTH_TYPE)
            env["REMOTE_USER"] = ctx.user
            env["AUTH_TYPE"] = ctx.auth_type
        tls = head.tls
        if tls is not None:
            # mod_ssl's names, which WSGI apps and middleware look for.
            env["HTTPS"] = "on"
            env["SSL_PROTOCOL"] = tls.version
            env["SSL_CIPHER"] = tls.cipher
            if tls.sni:
                env["SSL_TLS_SNI"] = tls.sni
            if tls.client_cert:
                env["SSL_CLIENT_VERIFY"] = "SUCCESS"
                env["SSL_CLIENT_CERT"] = tls.client_cert
                env["SSL_CLIENT_S_DN"] = tls.client_subject
                env["SSL_CLIENT_I_DN"] = tls.client_issuer
                env["SSL_CLIENT_M_SERIAL"] = tls.client_serial
            else:
                env["SSL_CLIENT_VERIFY"] = "NONE"
        return env

    def execute(self, ctx):
        response = Response(ctx)
        result = self.app(self.environ(ctx), response.start_response)
        try:
            response.send(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return FINISH


class Response:
    """start_response, write() and the sending of one request's result."""

    __slots__ = ("ctx", "status", "headers", "sent")

    def __init__(self, ctx):
        self.ctx = ctx
        self.status = None
        self.headers = None
        self.sent = False  # the RESPONSE frame went out

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response called a second time without exc_info")
        self.status = status
        self.headers = headers
        return self.write

    def _block(self) -> tuple[bytes, int, int]:
        """-> (block, Content-Length or -1, status code)."""
        status = self.status
        if status is None:
            raise AssertionError("the app returned a body without calling start_response")
        parts = [status, "\r\n"]
        length = -1
        for name, value in self.headers:
            lower = name.lower()
            if lower in HOP_BY_HOP:
                continue
            if lower == "content-length":
                length = int(value)
            parts.append(f"{name}: {value}\r\n")
        text = "".join(parts)
        # One line end per line we wrote and no NUL: a CR or LF in a status, name or value would
        # end the head or add a header of the client's choosing (response splitting).
        lines = len(parts) - 1
        if text.count("\n") != lines or text.count("\r") != lines or "\x00" in text:
            raise ValueError("a response status or header contains CR, LF or NUL")
        return text.encode("latin-1"), length, int(status[:3])

    def _single(self, body: bytes) -> None:
        """The whole response in one frame."""
        block, length, code = self._block()
        if code in _NO_BODY or code < 200:
            body = b""
            length = 0
        elif length < 0:
            length = len(body)
            block += b"Content-Length: %d\r\n" % length
        self.sent = True
        self.ctx.respond(block, body, content_length=length)

    def write(self, data: bytes) -> None:
        ctx = self.ctx
        if not self.sent:
            block, length, _code = self._block()
            self.sent = True
            ctx.start_response(block, length)
        ctx.send_body(data)

    def send(self, result) -> None:
        ctx = self.ctx
        if ctx.cancelled:
            raise Cancelled("client went away")
        kind = type(result)
        if kind is list or kind is tuple:
            if not self.sent:
                body = result[0] if len(result) == 1 else b"".join(result)
                if len(body) <= _SMALL:
                    self._single(body)
                    return
                result = (body,)
            for chunk in result:
                self.write(chunk)
            self._end()
            return
        if kind is FileWrapper and not self.sent and self._send_file(result):
            return
        for chunk in result:
            if not chunk:
                continue
            if not self.sent:
                # The app announced this chunk's size as the whole body: nothing else may follow.
                _block, length, _code = self._block()
                if length == len(chunk) and length <= _SMALL:
                    self._single(chunk)
                    return
            self.write(chunk)
        self._end()

    def _end(self) -> None:
        if self.sent:
            self.ctx.end()
        else:
            self._single(b"")

    def _send_file(self, wrapper: FileWrapper) -> bool:
        """Answer with a FILE frame when the wrapped object is a regular file the front can open
        by name (same device and inode as our descriptor); else the caller iterates it."""
        filelike = wrapper.filelike
        try:
            fd = filelike.fileno()
            st = os.fstat(fd)
            name = getattr(filelike, "name", None)
            if not isinstance(name, str) or not os.path.isabs(name) or not stat_mod.S_ISREG(st.st_mode):
                return False
            by_name = os.stat(name)
            if (by_name.st_dev, by_name.st_ino) != (st.st_dev, st.st_ino):
                return False
            offset = filelike.tell()
        except (AttributeError, OSError, ValueError):
            return False
        block, length, code = self._block()
        available = max(0, st.st_size - offset)
        if length < 0:
            length = available
            block += b"Content-Length: %d\r\n" % length
        else:
            length = min(length, available)
        self.sent = True
        if self.ctx.head_only or length == 0 or code in _NO_BODY:
            self.ctx.respond(block, content_length=length)
        else:
            self.ctx.send_file(block, name, offset, length)
        return True


__all__ = ["WSGIHost", "FileWrapper", "ErrorStream", "split_host", "HOP_BY_HOP"]
