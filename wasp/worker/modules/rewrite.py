"""RewriteModule: IIS URL Rewrite's distributed rules at BEGIN_REQUEST, outbound rules on the
response (docs/rewrite.md). The rules engine is wasp/wire/rewrite.py (shared with the front,
which runs the server's `global_rules` before routing).

Inbound. The URL's effective `rewrite.rules` are compiled once per effective section (kept by its
identity) and run over the request's path. A Rewrite swaps `ctx.head` for one with the new path
and query, so every later step (handler mapping, default document, static file, the app's
PATH_INFO / SCRIPT_NAME) sees the new URL, looks up the new URL's configuration, and adds
`X-Original-URL` (IIS's HTTP_X_ORIGINAL_URL: the request target as sent) to the headers. The
front logs what the client asked for (cs-uri-stem), as IIS logs the original URL. A rewrite to an
absolute http(s) URL is a reverse proxy: `ctx.proxy_url` is set and the reverse proxy handler,
when the pool has it, serves the request (404.4 otherwise, as IIS without ARR).
Redirect, CustomResponse and AbortRequest answer at once.

Outbound. When the URL has outbound rules, `ctx.outbound` holds an `Outbound` that the context's
answering methods hand every response to: response headers named by `server_variable` rules are
rewritten, and an HTML body (text/html, not compressed) goes through the streaming tag rewriter.
"""

from __future__ import annotations

import logging
import os
import re

import msgspec

from wasp.config.sections.rewrite import compile_section
from wasp.errors import HttpError, NotFound
from wasp.wire import rewrite as engine
from wasp.wire.htmlrewrite import HtmlRewriter
from wasp.wire.http import InvalidUrl, reason_phrase
from wasp.wire.urls import cook_path
from wasp.worker import errorpages
from wasp.worker.freb import url_of
from wasp.worker.modules.ip_restriction import mentioned
from wasp.worker.registry import CONTINUE, FINISH, Module, ModuleError, Phase, register

log = logging.getLogger("wasp.worker.rewrite")

_COMPILED_LIMIT = 256
#: A static HTML file at most this large is read and rewritten when outbound HTML rules apply
#: (the front would otherwise send it with sendfile, untouched); larger ones go out untouched.
OUTBOUND_FILE_LIMIT = 1024 * 1024
_ORIGINAL = b"x-original-url"
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
#: Headers a client may send to steer an app that trusts IIS's rewrite headers; dropped from a
#: request the rewrite module looks at, so only wasp's own X-Original-URL reaches the app.
_SPOOFABLE = (b"x-original-url", b"x-rewrite-url")


class RewriteFailed(HttpError):
    """IIS's 500.50: a rule's execution failed (a pattern ran out of time, a URL that is no URL)."""

    status = 500
    substatus = 50
    reason = "Internal"


class OutboundFailed(RewriteFailed):
    substatus = 52


class Compiled:
    __slots__ = ("inbound", "outbound", "error")

    def __init__(self, section):
        self.error = None
        try:
            self.inbound, self.outbound = compile_section(section)
        except engine.RewriteConfigError as exc:
            self.inbound = self.outbound = None
            self.error = str(exc)
            log.error("rewrite configuration: %s; its URLs are answered 500.50", exc)


@register("rewrite", phases=(Phase.BEGIN_REQUEST,))
class RewriteModule(Module):
    def setup(self, app) -> None:
        self.app = app
        self.compiled: dict[int, tuple[object, Compiled]] = {}
        # Rules may come from wasp.toml or (the section is not locked, as in IIS) a web.toml.
        self.needed = mentioned(app.tables, "rewrite") or app.urls is not None
        physical = getattr(app.config, "physical_path", "")
        self.root = os.path.realpath(physical) if physical else ""
        self.site_id = app.site.id
        self.app_path = app.script_name  # "" for "/"
        self.app_paths = {a.path.rstrip("/").lower().encode("utf-8") for a in app.site.applications
                          if a is not None} | {self.app_path.lower().encode("utf-8")}

    def validate(self) -> None:
        # What only the merged section shows (a rule naming a map no level defines): the
        # application's own URLs would all be 500.50, so it fails to load, naming the rule.
        if self.needed:
            compiled = self.compiled_for(self.app.sections.rewrite)
            if compiled.error is not None:
                raise ModuleError(f"application {self.app.key}: rewrite: {compiled.error}")

    def wants(self, phase) -> bool:
        return self.needed

    def app_of(self, path: bytes) -> bytes:
        """The path of the site's application a URL belongs to (longest prefix, b"" for "/")."""
        best = b""
        path = path.lower()   # the front routes without regard to case
        for prefix in self.app_paths:
            if len(prefix) > len(best) and (path == prefix or path.startswith(prefix + b"/")):
                best = prefix
        return best

    def compiled_for(self, section) -> Compiled:
        found = self.compiled.get(id(section))
        if found is not None and found[0] is section:
            return found[1]
        if len(self.compiled) >= _COMPILED_LIMIT:
            self.compiled.clear()
        compiled = Compiled(section)
        self.compiled[id(section)] = (section, compiled)
        return compiled

    def begin_request(self, ctx):
        if ctx.head.proxy_url:
            # A global rule (the front) sent it to another server: the reverse proxy serves it.
            return self._proxy(ctx, ctx.head.proxy_url)
        section = ctx.config.rewrite
        if not section.rules and not section.outbound_rules:
            return CONTINUE
        compiled = self.compiled_for(section)
        if compiled.error is not None:
            raise RewriteFailed(f"rewrite configuration: {compiled.error}")
        head = ctx.head
        if not head.rewritten and _spoofed(head.headers):
            # Only wasp's own X-Original-URL may reach the app (the front's, after a global rule).
            head = ctx.head = msgspec.structs.replace(
                head, headers=[(n, v) for n, v in head.headers if n.lower() not in _SPOOFABLE])
        if compiled.outbound:
            ctx.outbound = Outbound(compiled.outbound, ctx, self)
        inbound = compiled.inbound
        if not inbound:
            return CONTINUE
        variables = Variables(ctx, self)
        path = head.path.decode("utf-8", "surrogateescape")
        trace = ctx.freb
        emit = trace.emit if trace is not None and trace.records("RULE_EVALUATION_START") else None
        try:
            result = inbound.evaluate(path, head.query.decode("latin-1"), variables.get, variables,
                                      emit)
        except engine.RuleTimeout as exc:
            log.warning("rewrite rule failed for %s: %s", path[:200], exc)
            raise RewriteFailed(str(exc)) from None
        if inbound.varies:
            ctx.private = True  # the answer depends on more than the front's cache key
        if result.variables:
            self._set_variables(ctx, result.variables)
        kind = result.kind
        if kind == engine.NONE:
            return CONTINUE
        if kind == engine.REWRITE:
            if result.proxy:
                return self._proxy(ctx, result.proxy)
            self._rewrite(ctx, result)
            return CONTINUE
        if kind == engine.REDIRECT:
            redirect(ctx, result.status, result.location)
            return FINISH
        if kind == engine.CUSTOM:
            custom_response(ctx, result)
            return FINISH
        ctx.abort(0)
        return FINISH

    def _rewrite(self, ctx, result) -> None:
        head = ctx.head
        try:
            raw = result.path.encode("utf-8", "surrogateescape")
            path = cook_path(raw)
        except (InvalidUrl, UnicodeEncodeError) as exc:
            raise HttpError(f"rewritten URL {result.path[:200]!r}: {exc}", status=400,
                            reason="BadRequest") from None
        if _CONTROL.search(path):
            # What the front refuses in a request's URL (HTTP.sys's restricted characters).
            raise HttpError("rewritten URL with a control character", status=400, reason="BadRequest")
        if self.app_of(path) != self.app_path.lower().encode("utf-8"):
            raise RewriteFailed(f"rewrite of {head.path[:200]!r} to {path[:200]!r} leaves the "
                                f"application {self.app_path}/: use rewrite.global_rules (the front "
                                "routes those to any application)")
        query = engine.safe_query(result.query).encode("utf-8", "surrogateescape")
        headers = [(n, v) for n, v in head.headers if n.lower() != _ORIGINAL]
        headers.append((b"X-Original-URL", head.target))
        ctx.head = msgspec.structs.replace(head, path=path, query=query, headers=headers)
        if ctx.freb is not None:
            ctx.freb.emit("URL_CHANGED", (("OldUrl", url_of(head)), ("NewUrl", url_of(ctx.head)),
                                          ("Scope", "Distributed")))
        urls = ctx.app.urls
        if urls is not None:
            ctx.config = urls.lookup(path)
        ctx.located = False
        ctx.file_path = ctx.file_stat = None
        ctx.is_dir = False
        ctx.handler = None

    def _set_variables(self, ctx, variables) -> None:
        """The server variables the applied rules set: HTTP_* request headers (what the app, the
        handler and the reverse proxy see), RESPONSE_* headers on whatever response goes out."""
        head = ctx.head
        headers = engine.set_headers(list(head.headers), variables)
        ctx.head = msgspec.structs.replace(head, headers=headers)
        for name, value, _replace in variables:
            if name.startswith("RESPONSE_"):
                try:
                    ctx.add_header(engine.header_name(name), value)
                except ValueError:
                    log.warning("rewrite: %s is not a header value: %r", name, value[:100])

    def _proxy(self, ctx, url: str):
        ctx.proxy_url = url
        pipeline = ctx.config.pipeline or ctx.app.pipeline
        handlers = getattr(pipeline, "handlers", {}) or {}
        if not any(type(h).__module__.endswith(".reverse_proxy") for h in handlers.values()):
            raise NotFound(f"rewrite to {url[:200]} needs the reverse_proxy handler, which this "
                           "application does not have", substatus=4)
        ctx.handler = None
        return CONTINUE


def _spoofed(headers) -> bool:
    for name, _value in headers:
        if len(name) in (14, 13) and name.lower() in _SPOOFABLE:
            return True
    return False


def redirect(ctx, status: int, location: str) -> None:
    body = (f'<head><title>Document Moved</title></head>\n<body><h1>Object Moved</h1>'
            f'This document may be found <a HREF="{_attr(location)}">here</a></body>').encode("latin-1")
    block = (f"{status} {reason_phrase(status)}\r\nContent-Type: text/html; charset=UTF-8\r\n"
             f"Location: {location}\r\nContent-Length: {len(body)}\r\n").encode("latin-1")
    ctx.respond(block, body)


def custom_response(ctx, result) -> None:
    status = result.status
    reason = result.reason or reason_phrase(status)
    body = b"" if status < 200 or status in (204, 304) else result.description.encode("utf-8")
    block = (f"{status} {reason}\r\n".encode("latin-1", "replace")
             + (b"Content-Type: text/plain; charset=utf-8\r\n" if body else b"")
             + b"Content-Length: %d\r\n" % len(body))
    ctx.respond(block, body, substatus=result.substatus)


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


class Variables:
    """IIS's server variables of a request, computed when a rule asks; also the rules' file
    system (IsFile / IsDirectory, {REQUEST_FILENAME})."""

    __slots__ = ("ctx", "module", "url")

    def __init__(self, ctx, module: RewriteModule):
        self.ctx = ctx
        self.module = module
        self.url = ""

    def get(self, name: str) -> str:
        head = self.ctx.head
        if name[:5] == "HTTP_" and name != "HTTP_URL":
            return header_value(head.headers, name[5:])
        getter = _VARIABLES.get(name)
        return getter(self, head) if getter is not None else ""

    # ---- the rules' file system ----
    def filename(self, url: str) -> str:
        """The physical path a URL maps to in this application ("" when it has no content)."""
        root = self.module.root
        if not root:
            return ""
        raw = url.encode("utf-8", "surrogateescape")
        prefix = self.ctx.app.prefix_len
        if prefix:
            if raw[:prefix] != self.ctx.head.path[:prefix]:
                return ""
            raw = raw[prefix:]
        rel = raw.lstrip(b"/")
        if b"\x00" in rel or any(seg == b".." for seg in rel.split(b"/")):
            return ""
        return os.fsdecode(os.path.join(os.fsencode(root), rel)) if rel else root + "/"

    def is_file(self, path: str) -> bool:
        return self._inside(path) and os.path.isfile(path)

    def is_dir(self, path: str) -> bool:
        return self._inside(path) and os.path.isdir(path)

    def _inside(self, path: str) -> bool:
        # A condition may test any template; only paths below the application's content are
        # looked at, so a rule cannot be made to probe the rest of the file system.
        root = self.module.root
        if not root or "\x00" in path:
            return False
        real = os.path.realpath(path)
        return real == root or real.startswith(root + "/")


def _server_name(v, head) -> str:
    host = header_value(head.headers, "HOST")
    if not host:
        return head.server[0]
    if host.startswith("[") and "]" in host:
        return host[:host.index("]") + 1]
    return host.rsplit(":", 1)[0] if ":" in host else host


#: IIS's server variables (besides HTTP_*), computed when a rule asks: name -> (Variables, head).
_VARIABLES = {
    "HTTPS": lambda v, head: "on" if head.scheme == "https" else "off",
    "SERVER_PORT_SECURE": lambda v, head: "1" if head.scheme == "https" else "0",
    "REQUEST_SCHEME": lambda v, head: head.scheme,
    "QUERY_STRING": lambda v, head: head.query.decode("latin-1"),
    "REQUEST_URI": lambda v, head: original_target(head).decode("latin-1"),
    "UNENCODED_URL": lambda v, head: original_target(head).decode("latin-1"),
    "HTTP_URL": lambda v, head: original_target(head).decode("latin-1"),
    "URL": lambda v, head: head.path.decode("utf-8", "surrogateescape"),
    "PATH_INFO": lambda v, head: head.path.decode("utf-8", "surrogateescape"),
    "REQUEST_FILENAME": lambda v, head: v.filename(head.path.decode("utf-8", "surrogateescape")),
    "REQUEST_METHOD": lambda v, head: head.method,
    "REMOTE_ADDR": lambda v, head: head.client[0],
    "REMOTE_HOST": lambda v, head: head.client[0],
    "REMOTE_PORT": lambda v, head: str(head.client[1]),
    "SERVER_ADDR": lambda v, head: head.server[0],
    "SERVER_PORT": lambda v, head: str(head.server[1]),
    "SERVER_NAME": _server_name,
    "SERVER_PROTOCOL": lambda v, head: "HTTP/" + head.version,
    "CACHE_URL": lambda v, head: (f"{head.scheme}://{header_value(head.headers, 'HOST') or head.server[0]}"
                                  f"{original_target(head).decode('latin-1')}"),
    "SCRIPT_NAME": lambda v, head: v.module.app_path,
    "APPL_PHYSICAL_PATH": lambda v, head: v.module.root + "/" if v.module.root else "",
    "APPL_MD_PATH": lambda v, head: f"/LM/W3SVC/{v.module.site_id}/ROOT{v.module.app_path}",
    "INSTANCE_ID": lambda v, head: str(v.module.site_id),
    "CONTENT_LENGTH": lambda v, head: str(head.content_length) if head.content_length >= 0 else "",
    "CONTENT_TYPE": lambda v, head: header_value(head.headers, "CONTENT_TYPE"),
    "AUTH_USER": lambda v, head: v.ctx.user or "",
    "LOGON_USER": lambda v, head: v.ctx.user or "",
    "REMOTE_USER": lambda v, head: v.ctx.user or "",
    "AUTH_TYPE": lambda v, head: v.ctx.auth_type,
}


def header_value(headers, name: str) -> str:
    """A request header by IIS's variable spelling (USER_AGENT for User-Agent), several values
    joined by ", "."""
    wanted = name.replace("_", "-").lower().encode("latin-1")
    found = [v for n, v in headers if n.lower() == wanted]
    if not found:
        return ""
    return b", ".join(found).decode("latin-1")


def original_target(head) -> bytes:
    """The request target as the client sent it (the front keeps `target` as sent; a rewrite
    changes path and query only)."""
    return head.target


# ================================================================ outbound

_HTML_TYPES = (b"text/html", b"application/xhtml+xml")


class Outbound:
    """One response's outbound rewriting. The context calls `respond`, `start`, `body`, `tail`,
    and `file` with what would go to the front."""

    __slots__ = ("rules", "ctx", "module", "html", "chosen_tags")

    def __init__(self, rules: engine.OutboundSet, ctx, module):
        self.rules = rules
        self.ctx = ctx
        self.module = module
        self.html: HtmlRewriter | None = None
        self.chosen_tags = None

    # ---- headers ----
    def _head(self, block: bytes) -> tuple[bytes, bool]:
        """The block with its headers rewritten, and whether the body is HTML to rewrite."""
        lines = block.split(b"\r\n")
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if sep:
                headers.setdefault(name.strip().lower().decode("latin-1"), value.strip().decode("latin-1"))
        request = Variables(self.ctx, self.module)

        def variable(name: str) -> str:
            if name == "RESPONSE_STATUS":
                return lines[0][:3].decode("latin-1")
            if name.startswith("RESPONSE_"):
                return headers.get(name[9:].replace("_", "-").lower(), "")
            return request.get(name)

        try:
            chosen = self.rules.select(variable)
            header_rules: dict[str, list] = {}
            tag_rules = []
            for rule in chosen:
                if rule.variable:
                    header_rules.setdefault(rule.variable[9:].replace("_", "-").lower(), []).append(rule)
                else:
                    tag_rules.append(rule)
            changed = False
            if header_rules:
                out = [lines[0]]
                for line in lines[1:]:
                    name, sep, value = line.partition(b":")
                    rules = header_rules.get(name.strip().lower().decode("latin-1")) if sep else None
                    if rules:
                        new = self.rules.rewrite_value(rules, value.strip().decode("latin-1"), variable)
                        if new is not None:
                            line = name + b": " + engine.safe_header(new).encode("latin-1", "replace")
                            changed = True
                    out.append(line)
                if changed:
                    block = b"\r\n".join(out)
        except engine.RuleTimeout as exc:
            self.ctx.outbound = None  # the 500.52 page itself goes out unrewritten
            raise OutboundFailed(str(exc)) from None
        html = False
        if tag_rules:
            ctype = headers.get("content-type", "").encode("latin-1").lower()
            encoding = headers.get("content-encoding", "identity").strip().lower()
            # A part of a body (206, Content-Range) cannot be rewritten: its range names the
            # original bytes. Ranges of a rewritten body are not offered (Accept-Ranges dropped).
            html = (ctype.split(b";")[0].strip() in _HTML_TYPES and encoding in ("", "identity")
                    and lines[0][:3] != b"206" and "content-range" not in headers)
            if html:
                self.chosen_tags = (tag_rules, variable)
        return block, html

    def _rewriter(self) -> HtmlRewriter:
        rules, variable = self.chosen_tags
        attrs = {}
        for rule in rules:
            for tag in rule.tags:
                attrs[tag] = engine.TAG_ATTRIBUTES[tag]
        outbound = self.rules

        def rewrite(tag: str, attr: str, value: str):
            wanted = [r for r in rules if tag in r.tags]
            try:
                return outbound.rewrite_value(wanted, value, variable)
            except engine.RuleTimeout as exc:
                log.warning("outbound rule failed on <%s %s>: %s", tag, attr, exc)
                return None

        return HtmlRewriter(rewrite, attrs)

    # ---- what the context calls ----
    def respond(self, block: bytes, body, content_length):
        try:
            block, html = self._head(block)
        except OutboundFailed as exc:
            # Answered in place: this may be the pipeline's own error page already.
            log.warning("outbound rule failed for %s: %s", self.ctx.head.path[:200], exc)
            block, body = errorpages.render(exc, self.ctx)
            return block, body, len(body), exc.substatus
        if html and self.ctx.head_only:
            # The GET's body would be rewritten to a length nobody computed: say none.
            return set_length(block, None), body, -1, None
        if html and body and (content_length is None or content_length == len(body)):
            rewriter = self._rewriter()
            body = rewriter.feed(bytes(body)) + rewriter.close()
            block = set_length(block, len(body))
            content_length = len(body)
        return block, body, content_length, None

    def start(self, block: bytes, content_length: int):
        block, html = self._head(block)
        if html:
            self.html = self._rewriter()
            block = set_length(block, None)
            content_length = -1
        return block, content_length

    def body(self, data):
        return self.html.feed(data) if self.html is not None else data

    def tail(self) -> bytes:
        if self.html is None:
            return b""
        rest = self.html.close()
        self.html = None
        return rest

    def file(self, block: bytes, path: str, offset: int, length: int):
        """A FILE answer: None to send it as it is, else (block, body) to respond with."""
        probe, html = self._head(block)
        if not html or length > OUTBOUND_FILE_LIMIT:
            return (probe, None) if probe is not block else None
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(length)
        except OSError:
            return None
        rewriter = self._rewriter()
        body = rewriter.feed(data) + rewriter.close()
        return set_length(probe, len(body)), body


def set_length(block: bytes, length: int | None) -> bytes:
    """The block without its Content-Length (and ETag, which named the bytes before rewriting),
    with `length` when given."""
    lines = [line for line in block.split(b"\r\n")
             if line.split(b":", 1)[0].strip().lower() not in (b"content-length", b"etag", b"accept-ranges")]
    while lines and lines[-1] == b"":
        lines.pop()
    if length is not None:
        lines.append(b"Content-Length: %d" % length)
    return b"\r\n".join(lines) + b"\r\n"
