"""ServerSideIncludeModule: *.shtml, *.shtm and *.stm documents with their directives expanded.

The handler list maps the three extensions here (IIS's SSINC-shtml/-shtm/-stm entries,
resourceType File). Directives (parsed in wasp/worker/ssi.py):

- `#include file="x"`: a file relative to the including file's folder; `#include virtual="/x"`:
  a URL of this application (absolute, or relative to the including document's URL), mapped to
  its file below physical_path. Either way the file must stay inside the application's root (its
  real path, so no symlink out), may not be a hidden segment (web.toml, request filtering's list)
  or a denied extension, and is expanded itself; nesting stops at MAX_DEPTH and a file that
  includes itself (directly or not) is an error. A virtual include is not a child request: a URL
  the Python app answers cannot be included.
- `#echo var="NAME"`: DOCUMENT_NAME (the file name), DOCUMENT_URI, DATE_LOCAL, DATE_GMT,
  LAST_MODIFIED, QUERY_STRING_UNESCAPED and the server variables (REMOTE_ADDR, HTTP_USER_AGENT,
  ...); the value is HTML-escaped (a header or query string is the client's text).
- `#config timefmt|sizefmt|errmsg`, `#fsize` and `#flastmod` (file= or virtual=, the same rules).
- `#exec cmd="..."` / `#exec cgi="/x.cgi"`: only when the URL's `server_side_include.
  ssi_exec_disable` is false. They run as the worker, i.e. the pool's identity, in the
  document's folder, with CGI variables, stdin closed, output capped, killed with their process
  group after `ssi_exec_timeout`.

A directive that fails shows the error message (`#config errmsg`) in its place; the rest of the
page is still sent. The response is never cached by the front (it depends on the request).
"""

from __future__ import annotations

import html
import logging
import os
import posixpath
import signal
import stat
import subprocess
import time
from urllib.parse import unquote_to_bytes

from wasp.errors import NotFound
from wasp.worker.errorpages import MethodNotAllowed
from wasp.worker.modules.static import HIDDEN_SEGMENTS, UnsafePath, check_path, header, http_date, \
    locate, resolve
from wasp.worker.registry import FINISH, Module, Phase, register
from wasp.worker.ssi import MAX_TIMEFMT, Directive, Settings, format_size, format_time, \
    header_split, parse

log = logging.getLogger("wasp.worker")

#: Includes nested deeper than this are an error (IIS has a limit too; the number is wasp's).
MAX_DEPTH = 8
#: One document or included file larger than this is not read.
MAX_FILE = 4 * 1024 * 1024
#: The whole expanded page may not grow past this (includes repeated many times).
MAX_OUTPUT = 16 * 1024 * 1024
#: What one #exec may write.
MAX_EXEC_OUTPUT = 1024 * 1024


class IncludeError(Exception):
    """A directive cannot be carried out: its place shows the error message."""


class Document:
    """One file being expanded: its real path and its URL (app-relative path bytes)."""

    __slots__ = ("path", "url", "st")

    def __init__(self, path: str, url: bytes, st: os.stat_result):
        self.path = path
        self.url = url
        self.st = st


class Expansion:
    """The expansion of one request's document (and what it includes)."""

    def __init__(self, module, ctx):
        self.module = module
        self.ctx = ctx
        self.root = module.root
        self.settings = Settings()
        self.section = ctx.config.server_side_include
        self.size = 0
        self.stack: list[str] = []
        filtering = getattr(ctx.config, "request_filtering", None)
        hidden = set(HIDDEN_SEGMENTS)
        denied: set[str] = set()
        if filtering is not None:
            hidden.update(s.lower() for s in filtering.hidden_segments.segments)
            denied = {e.file_extension.lower() for e in filtering.file_extensions.extensions
                      if not e.allowed}
        self.hidden = hidden
        self.denied = denied

    # ---- files ----
    def read(self, path: str) -> bytes:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE + 1)
        if len(data) > MAX_FILE:
            raise IncludeError(f"{path} is over {MAX_FILE} bytes")
        return data

    def allowed(self, path: str) -> None:
        """Refuse a hidden segment or a denied extension anywhere below the root."""
        rel = os.path.relpath(path, self.root)
        for segment in rel.split(os.sep):
            if segment.lower() in self.hidden:
                raise IncludeError(f"{segment} is a hidden segment")
        name = os.path.basename(path).lower()
        for ext in self.denied:
            if name.endswith(ext):
                raise IncludeError(f"the extension {ext} is denied")

    def by_file(self, doc: Document, value: str) -> Document:
        """`file=`: relative to the including file's folder, never absolute, never out of root."""
        if not value or value.startswith("/") or "\x00" in value or "\\" in value:
            raise IncludeError(f"file={value!r} must be a relative path")
        candidate = os.path.normpath(os.path.join(os.path.dirname(doc.path), value))
        real = os.path.realpath(candidate)
        if not (real == self.root or real.startswith(self.root + os.sep)):
            raise IncludeError(f"file={value!r} is outside the application")
        try:
            st = os.stat(real)
        except OSError:
            raise IncludeError(f"file={value!r} does not exist") from None
        if not stat.S_ISREG(st.st_mode):
            raise IncludeError(f"file={value!r} is not a file")
        self.allowed(real)
        url_dir = doc.url[:doc.url.rfind(b"/") + 1]
        url = posixpath.normpath((url_dir + os.fsencode(value)).decode("latin-1")).encode("latin-1")
        return Document(real, url, st)

    def by_virtual(self, doc: Document, value: str) -> Document:
        """`virtual=`: a URL path of this application, absolute or relative to the document's."""
        raw = unquote_to_bytes(value.encode("utf-8", "surrogateescape"))
        if not raw or b"\x00" in raw or b"\\" in raw or b"?" in raw:
            raise IncludeError(f"virtual={value!r} is not a URL path")
        app_path = self.ctx.head.path[:self.ctx.app.prefix_len]
        if raw.startswith(b"/"):
            if app_path and not (raw.lower().startswith(app_path.lower() + b"/")):
                raise IncludeError(f"virtual={value!r} is outside the application")
            rel = raw[len(app_path):]
        else:
            rel = doc.url[:doc.url.rfind(b"/") + 1] + raw
        normal = posixpath.normpath(rel.decode("latin-1")).encode("latin-1")
        if not normal.startswith(b"/") or normal.startswith(b"//"):
            raise IncludeError(f"virtual={value!r} is outside the application")
        try:
            segments = check_path(normal)
        except UnsafePath as exc:
            raise IncludeError(f"virtual={value!r}: {exc}") from None
        except NotFound:
            raise IncludeError(f"virtual={value!r} is a hidden segment") from None
        found = resolve(self.root, self.root, segments)
        if found is None or not stat.S_ISREG(found[1].st_mode):
            raise IncludeError(f"virtual={value!r} does not name a file")
        self.allowed(found[0])
        return Document(found[0], normal, found[1])

    def target(self, doc: Document, directive: Directive) -> Document:
        for name, value in directive.attributes:
            if name == "file":
                return self.by_file(doc, value)
            if name == "virtual":
                return self.by_virtual(doc, value)
        raise IncludeError(f"#{directive.name} needs file= or virtual=")

    # ---- expansion ----
    def expand(self, doc: Document, data: bytes, out: list) -> None:
        if len(self.stack) >= MAX_DEPTH:
            raise IncludeError(f"includes nested more than {MAX_DEPTH} deep")
        self.stack.append(doc.path)
        try:
            for part in parse(data):
                if part.__class__ is bytes:
                    self.emit(out, part)
                    continue
                try:
                    self.directive(doc, part, out)
                except OutputTooLarge:
                    raise
                except IncludeError as exc:
                    log.info("SSI %s in %s: %s", part.name, doc.path, exc)
                    self.emit(out, self.settings.errmsg.encode("utf-8", "replace"))
        finally:
            self.stack.pop()

    def emit(self, out: list, data: bytes) -> None:
        self.size += len(data)
        if self.size > MAX_OUTPUT:
            raise OutputTooLarge(f"the page grows past {MAX_OUTPUT} bytes")
        out.append(data)

    def directive(self, doc: Document, d: Directive, out: list) -> None:
        name = d.name
        if name == "include":
            target = self.target(doc, d)
            if target.path in self.stack:
                raise IncludeError(f"{target.path} includes itself")
            try:
                data = self.read(target.path)
            except OSError as exc:
                raise IncludeError(f"cannot read {target.path}: {exc.strerror}") from None
            self.expand(target, data, out)
        elif name == "echo":
            var = next((v for k, v in d.attributes if k == "var"), None)
            if var is None:
                raise IncludeError("#echo needs var=")
            self.emit(out, html.escape(self.variable(doc, var)).encode("utf-8", "replace"))
        elif name == "config":
            for key, value in d.attributes:
                if key == "errmsg":
                    self.settings.errmsg = value
                elif key == "timefmt":
                    if len(value) > MAX_TIMEFMT:
                        raise IncludeError("timefmt is too long")
                    self.settings.timefmt = value
                elif key == "sizefmt":
                    if value.lower() not in ("bytes", "abbrev"):
                        raise IncludeError(f"sizefmt={value!r}: bytes or abbrev")
                    self.settings.sizefmt = value.lower()
                else:
                    raise IncludeError(f"#config has no {key}")
        elif name == "fsize":
            target = self.target(doc, d)
            self.emit(out, format_size(target.st.st_size, self.settings.sizefmt).encode("ascii"))
        elif name == "flastmod":
            target = self.target(doc, d)
            text = format_time(target.st.st_mtime, self.settings.timefmt)
            self.emit(out, html.escape(text).encode("utf-8", "replace"))
        elif name == "exec":
            if self.section.ssi_exec_disable:
                raise IncludeError("#exec is disabled (server_side_include.ssi_exec_disable)")
            self.emit(out, self.execute(doc, d))
        else:
            raise IncludeError(f"unknown directive #{name}")

    # ---- #echo ----
    def variable(self, doc: Document, name: str) -> str:
        key = name.upper()
        now = time.time()
        if key == "DOCUMENT_NAME":
            return os.path.basename(doc.path)
        if key == "DOCUMENT_URI":
            return self.ctx.head.path.decode("utf-8", "replace")
        if key == "DATE_LOCAL":
            return format_time(now, self.settings.timefmt)
        if key == "DATE_GMT":
            return format_time(now, self.settings.timefmt, utc=True)
        if key == "LAST_MODIFIED":
            return format_time(doc.st.st_mtime, self.settings.timefmt)
        if key == "QUERY_STRING_UNESCAPED":
            return unquote_to_bytes(self.ctx.head.query).decode("utf-8", "replace")
        value = server_variables(self.ctx, doc).get(key)
        return "(none)" if value is None else value

    # ---- #exec ----
    def execute(self, doc: Document, d: Directive) -> bytes:
        attributes = dict(d.attributes)
        env = server_variables(self.ctx, doc)
        env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
        cwd = os.path.dirname(doc.path)
        if "cmd" in attributes:
            argv = ["/bin/sh", "-c", attributes["cmd"]]
            cgi = False
        elif "cgi" in attributes:
            target = self.by_virtual(doc, attributes["cgi"])
            if not os.access(target.path, os.X_OK):
                raise IncludeError(f"cgi={attributes['cgi']!r} is not executable")
            argv = [target.path]
            env.update(GATEWAY_INTERFACE="CGI/1.1", SCRIPT_FILENAME=target.path,
                       SCRIPT_NAME=target.url.decode("latin-1"))
            cwd = os.path.dirname(target.path)
            cgi = True
        else:
            raise IncludeError("#exec needs cmd= or cgi=")
        output = run(argv, cwd, env, float(self.section.ssi_exec_timeout))
        return header_split(output) if cgi else output


class OutputTooLarge(IncludeError):
    pass


def run(argv: list[str], cwd: str, env: dict, timeout: float) -> bytes:
    """Run a program, its output capped, its process group killed after `timeout`."""
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                start_new_session=True, close_fds=True)
    except OSError as exc:
        raise IncludeError(f"cannot run {argv[0]}: {exc.strerror}") from None
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.communicate()
        raise IncludeError(f"#exec ran past {timeout:g}s and was killed") from None
    finally:
        if proc.poll() is None:
            _kill_group(proc)
            proc.wait()
    if len(output) > MAX_EXEC_OUTPUT:
        raise IncludeError(f"#exec wrote more than {MAX_EXEC_OUTPUT} bytes")
    return output


def _kill_group(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group this child leads (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass


def server_variables(ctx, doc: Document) -> dict[str, str]:
    """IIS's server variables for #echo and #exec (CGI names), all str."""
    head = ctx.head
    env = {
        "REQUEST_METHOD": head.method, "QUERY_STRING": head.query.decode("latin-1"),
        "URL": head.path.decode("utf-8", "replace"), "PATH_INFO": head.path.decode("utf-8", "replace"),
        "SCRIPT_NAME": head.path.decode("utf-8", "replace"),
        "SERVER_PROTOCOL": "HTTP/" + head.version, "SERVER_SOFTWARE": "wasp",
        "REMOTE_ADDR": head.client[0], "REMOTE_HOST": head.client[0], "REMOTE_PORT": str(head.client[1]),
        "LOCAL_ADDR": head.server[0], "SERVER_PORT": str(head.server[1]),
        "HTTPS": "on" if head.scheme == "https" else "off",
        "AUTH_TYPE": ctx.auth_type or "", "REMOTE_USER": ctx.user or "", "LOGON_USER": ctx.user or "",
        "DOCUMENT_NAME": os.path.basename(doc.path), "DOCUMENT_URI": head.path.decode("utf-8", "replace"),
        "LAST_MODIFIED": http_date(int(doc.st.st_mtime)),
    }
    host = header(head, b"host")
    env["SERVER_NAME"] = (host.decode("latin-1").rsplit(":", 1)[0] if host and b"]" not in host
                          else host.decode("latin-1") if host else head.server[0])
    if head.content_length >= 0:
        env["CONTENT_LENGTH"] = str(head.content_length)
    for name, value in head.headers:
        key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        if not key[5:].replace("_", "").isalnum():
            continue  # a name no environment should carry
        text = value.decode("latin-1")
        env[key] = env[key] + ", " + text if key in env else text
    if "HTTP_CONTENT_TYPE" in env:
        env["CONTENT_TYPE"] = env.pop("HTTP_CONTENT_TYPE")
    env.pop("HTTP_CONTENT_LENGTH", None)
    env.pop("HTTP_PROXY", None)  # httpoxy: never hand a client's Proxy header to a program
    return env


@register("server_side_include", phases=(Phase.EXECUTE_REQUEST_HANDLER,))
class ServerSideIncludeModule(Module):
    """The handler of IIS's SSINC-shtml / SSINC-shtm / SSINC-stm entries."""

    #: #exec waits on a program: a WSGI application's worker runs the page on one of its threads.
    blocking = True

    def setup(self, app) -> None:
        physical = app.config.physical_path
        self.root = os.path.realpath(physical) if physical else None

    def wants(self, phase) -> bool:
        return self.root is not None

    def execute_request_handler(self, ctx):
        locate(ctx, self.root)
        if ctx.file_path is None or ctx.is_dir:
            raise NotFound("no such file")
        if ctx.head.method not in ("GET", "HEAD", "POST"):
            raise MethodNotAllowed("GET, HEAD, POST")
        expansion = Expansion(self, ctx)
        path = ctx.file_path
        url = ctx.head.path[ctx.app.prefix_len:] or b"/"
        doc = Document(path, url, ctx.file_stat)
        out: list[bytes] = []
        try:
            data = expansion.read(path)
        except OSError:
            raise NotFound("the document cannot be read") from None
        except IncludeError as exc:
            raise NotFound(str(exc)) from None
        try:
            expansion.expand(doc, data, out)
        except OutputTooLarge as exc:
            log.warning("SSI %s: %s", path, exc)
            out.append(expansion.settings.errmsg.encode("utf-8", "replace"))
        body = b"".join(out)
        ctx.private = True  # echo/exec depend on the request: never stored by the front
        ctx.respond(b"200 OK\r\nContent-Type: text/html\r\nCache-Control: private\r\n", body)
        return FINISH
