"""URL Rewrite's global rules in the front, before routing (IIS's GL_PRE_BEGIN_REQUEST).

The server's `rewrite.global_rules` (wasp.toml's top-level `[rewrite]` only) run on every
request of every site right after the target is cooked and before the binding/site/application
is chosen, with the engine the workers use for distributed rules (wasp/wire/rewrite.py). So a
rule can send a URL to another application, and so another pool, which distributed rules (run in
a worker that already has the request) cannot.

- Rewrite: the request is routed by the new path, the worker sees the new path and query, the
  target as sent (REQUEST_URI) and `X-Original-URL` with it; `RequestHead.rewritten` tells it so.
  The access log has the URL as sent (IIS logs the original cs-uri-stem).
- Rewrite to an absolute http(s) URL: routed by the original path, with `RequestHead.proxy_url`
  set; the application's reverse proxy handler serves it (404.4 without one).
- Redirect, CustomResponse: the front answers itself (`Request.answer`), logged in the W3C log of
  the site the original URL routes to. AbortRequest: the connection is closed (an HTTP/2 stream
  reset), logged with status 0.
- A rule that fails (a pattern over its time, an unsafe URL): 500, substatus 51 (IIS's 500.51,
  "URL rewrite error in GL_PRE_BEGIN_REQUEST").

Server variables the front has: HTTP_*, HTTPS, QUERY_STRING, REQUEST_URI, UNENCODED_URL, URL,
REQUEST_METHOD, REMOTE_ADDR/PORT (the connection's peer), SERVER_ADDR/PORT/NAME,
SERVER_PROTOCOL, CACHE_URL. The front opens no files: {REQUEST_FILENAME} is empty and IsFile /
IsDirectory conditions never hold in global rules (use distributed rules for those).
"""

from __future__ import annotations

import logging

from wasp.config import sections
from wasp.config.sections.rewrite import compile_global
from wasp.errors import HttpError
from wasp.wire import rewrite as engine
from wasp.wire.http import reason_phrase
from wasp.wire.urls import InvalidUrl, cook_path

log = logging.getLogger("wasp.front.rewrite")

#: Request.answer for AbortRequest.
ABORT = "abort"
_SPOOFABLE = (b"x-original-url", b"x-rewrite-url")


class GlobalRuleFailed(HttpError):
    status = 500
    substatus = 51
    reason = "Internal"


def compile_config(config):
    """The server's compiled global rules, or None when it has none."""
    tables = (config.sections or {}).get("server") or {}
    raw = tables.get("rewrite")
    if not raw or "global_rules" not in raw:
        return None
    effective, _ = sections.resolve([("", {"rewrite": raw})], lambda path, message: None)
    try:
        rules = compile_global(effective.rewrite)
    except engine.RewriteConfigError as exc:
        log.error("rewrite.global_rules: %s; every request is answered 500.51", exc)
        return Broken(str(exc))
    return GlobalRules(rules) if rules else None


class Broken:
    """Global rules that did not compile (a map they name is missing): fail closed."""

    def __init__(self, why: str):
        self.why = why

    def apply(self, req, conn, host, path: bytes, query: bytes) -> bytes:
        raise GlobalRuleFailed(self.why)


class GlobalRules:
    def __init__(self, rules: engine.RuleSet):
        self.rules = rules

    def apply(self, req, conn, host: bytes | None, path: bytes, query: bytes) -> bytes:
        """Run the rules for a request whose head is parsed; returns the path to route by. Sets
        `req.path`/`req.query`/`req.headers`/`req.rewritten`, `req.proxy_url` or `req.answer`."""
        if req.forwarded is not None and conn.server.trusted and req.client is None:
            # Behind a trusted proxy, {HTTPS} and {REMOTE_ADDR} are what it says (routing does
            # the same a moment later): an HTTP -> HTTPS rule must not loop behind a TLS proxy.
            conn._forwarded(req)
        variables = _Variables(req, conn, host)
        text = path.decode("utf-8", "surrogateescape")
        try:
            result = self.rules.evaluate(text, query.decode("latin-1"), variables.get, None)
        except engine.RuleTimeout as exc:
            log.warning("global rewrite rule failed for %s: %s", text[:200], exc)
            raise GlobalRuleFailed(str(exc)) from None
        if result.variables:
            req.headers = engine.set_headers(list(req.headers), result.variables)
        kind = result.kind
        if kind == engine.NONE:
            return path
        if self.rules.varies:
            req.no_cache = True   # the answer depends on more than the cache key
        if kind == engine.REWRITE:
            if result.proxy:
                req.proxy_url = result.proxy
                return path
            try:
                new = cook_path(result.path.encode("utf-8", "surrogateescape"))
            except (InvalidUrl, UnicodeEncodeError) as exc:
                raise GlobalRuleFailed(f"rewritten URL {result.path[:200]!r}: {exc}") from None
            if any(c < 0x20 or c == 0x7f for c in new):
                raise GlobalRuleFailed("rewritten URL with a control character")
            headers = [(n, v) for n, v in req.headers if n.lower() not in _SPOOFABLE]
            headers.append((b"X-Original-URL", req.target))
            req.headers = headers
            req.path = new
            req.query = engine.safe_query(result.query).encode("utf-8", "surrogateescape")
            req.rewritten = True
            return new
        req.no_cache = True
        if kind == engine.REDIRECT:
            location = result.location.encode("latin-1")
            body = (b'<head><title>Document Moved</title></head>\n<body><h1>Object Moved</h1>'
                    b'This document may be found <a HREF="' + _attr(location) + b'">here</a></body>')
            req.answer = (result.status, 0, [(b"Location", location),
                                             (b"Content-Type", b"text/html; charset=UTF-8")]
                          + _response_headers(result.variables), body)
        elif kind == engine.CUSTOM:
            status = result.status
            body = b"" if status in (204, 304) else result.description.encode("utf-8")
            headers = ([(b"Content-Type", b"text/plain; charset=utf-8")] if body else []) \
                + _response_headers(result.variables)
            req.answer = (status, result.substatus, headers, body,
                          (result.reason or reason_phrase(status)).encode("latin-1", "replace"))
        else:
            req.answer = ABORT
        return path


def _response_headers(variables) -> list:
    """RESPONSE_* variables the rules set, as header lines of the front's own answer (a routed
    request's response comes from its worker: the front does not add to it)."""
    return [(engine.header_name(name).encode("latin-1"), value.encode("latin-1", "replace"))
            for name, value, _replace in variables if name.startswith("RESPONSE_")]


def _attr(value: bytes) -> bytes:
    return value.replace(b"&", b"&amp;").replace(b'"', b"&quot;").replace(b"<", b"&lt;")


def status_line(answer) -> bytes:
    status = answer[0]
    reason = answer[4] if len(answer) > 4 else reason_phrase(status).encode("latin-1")
    return b"%d %s" % (status, reason)


class _Variables:
    __slots__ = ("req", "conn", "host")

    def __init__(self, req, conn, host):
        self.req = req
        self.conn = conn
        self.host = host

    def get(self, name: str) -> str:
        req, conn = self.req, self.conn
        if name == "HTTP_HOST":
            return (self.host or b"").decode("latin-1")
        if name.startswith("HTTP_") and name != "HTTP_URL":
            wanted = name[5:].replace("_", "-").lower().encode("latin-1")
            found = [v for n, v in req.headers if n.lower() == wanted]
            return b", ".join(found).decode("latin-1")
        secure = (req.scheme or ("https" if conn.tls is not None else "http")) == "https"
        if name == "HTTPS":
            return "on" if secure else "off"
        if name == "SERVER_PORT_SECURE":
            return "1" if secure else "0"
        if name == "REQUEST_SCHEME":
            return "https" if secure else "http"
        if name in ("REQUEST_URI", "UNENCODED_URL", "HTTP_URL"):
            return req.target.decode("latin-1")
        if name == "REQUEST_METHOD":
            method = req.method
            return method.decode("latin-1") if isinstance(method, bytes) else method
        peer = req.client or conn.peer
        if name in ("REMOTE_ADDR", "REMOTE_HOST"):
            return str(peer[0]) if peer else ""
        if name == "REMOTE_PORT":
            return str(peer[1]) if peer else ""
        local = conn.local
        if name == "SERVER_ADDR":
            return str(local[0])
        if name == "SERVER_PORT":
            return str(local[1])
        if name == "SERVER_NAME":
            host = (self.host or b"").decode("latin-1")
            if host.startswith("["):
                return host[:host.find("]") + 1]
            return host.rsplit(":", 1)[0] if host else str(local[0])
        if name == "SERVER_PROTOCOL":
            return "HTTP/" + (req.version or "1.1")
        if name == "CACHE_URL":
            scheme = "https" if secure else "http"
            return f"{scheme}://{(self.host or b'').decode('latin-1')}{req.target.decode('latin-1')}"
        return ""
