"""ProtocolSupportModule: the URL's `http_protocol` section, and the OPTIONS and TRACE verbs.

Headers: at BEGIN_REQUEST the module adds a send filter (RQ_SEND_RESPONSE) carrying the URL's
compiled lines, so whatever answers the request (the handler, an error page, a redirect) gets
them: `custom_headers` on every response, `redirect_headers` on 3xx ones. Two lines are for the
front, which owns the connection and the Server header: `Connection: close` when
allow_keep_alive is false (the front closes after the response, docs/front.md) and an empty
`Server:` when remove_server_header is true (the front then sends no Server header at all). The
module sits before request_filtering in the default order so that even a request filtering
rejection carries them (IIS applies them at SEND_RESPONSE, whoever answered).

Verbs (MAP_REQUEST_HANDLER, IIS's OPTIONSVerbHandler and TRACEVerbHandler):
- OPTIONS for a URL the Python app does not take (static content): 200 with `Allow` from the
  handler mapping (GET, HEAD, OPTIONS for static files). A URL the app takes gets the app's
  answer, so a CORS preflight reaches the framework.
- TRACE: 405 with `Allow` unless allow_trace, for every URL, before any app sees it (cross-site
  tracing); with allow_trace, 200 `message/http` echoing the request head without Cookie,
  Authorization and Proxy-Authorization.
"""

from __future__ import annotations

from wasp.errors import HttpError
from wasp.worker.errorpages import MethodNotAllowed
from wasp.worker.registry import CONTINUE, FINISH, Module, Phase, register

_STATIC_VERBS = ("GET", "HEAD", "OPTIONS")
_ANY_VERBS = ("OPTIONS", "TRACE", "GET", "HEAD", "POST")
_TRACE_HIDDEN = frozenset({b"cookie", b"authorization", b"proxy-authorization"})
TRACE_LIMIT = 64 * 1024
COMPILED_LIMIT = 1024


class HeaderFilter:
    """One effective http_protocol's lines, as a send filter."""

    __slots__ = ("section", "always", "redirect")

    def __init__(self, section):
        self.section = section
        lines = [f"{h.name}: {h.value}\r\n" for h in section.custom_headers]
        if not section.allow_keep_alive:
            lines.append("Connection: close\r\n")
        if section.remove_server_header:
            lines.append("Server: \r\n")
        self.always = "".join(lines).encode("latin-1")
        self.redirect = "".join(f"{h.name}: {h.value}\r\n" for h in section.redirect_headers
                                ).encode("latin-1")

    @property
    def needed(self) -> bool:
        return bool(self.always or self.redirect)

    def __call__(self, ctx, block: bytes, body, length: int) -> bytes:
        if self.redirect and block[:1] == b"3":
            return block + self.always + self.redirect
        return block + self.always


def allowed_verbs(ctx, pipeline, allow_trace: bool) -> list[str]:
    """The verbs the handler mapping takes for this URL (what OPTIONS and a 405 list)."""
    mapping_list = pipeline.map_for(ctx.config.handlers).mappings
    path = ctx.head.path
    rel = path[ctx.app.prefix_len:] or b"/"
    name = rel[rel.rfind(b"/") + 1:]
    verbs: set[str] = set()
    for mapping in mapping_list:
        if mapping.match is not None and not mapping.match(rel, name):
            continue
        if mapping.verbs is not None:
            verbs |= mapping.verbs
        elif mapping.handler.id == "static_file":
            verbs |= set(_STATIC_VERBS)
        else:
            verbs |= set(_ANY_VERBS)
            break
    verbs.add("OPTIONS")
    if allow_trace:
        verbs.add("TRACE")
    else:
        verbs.discard("TRACE")
    order = {v: i for i, v in enumerate(_ANY_VERBS)}
    return sorted(verbs, key=lambda v: (order.get(v, 99), v))


def trace_echo(head) -> bytes:
    lines = [f"{head.method} ".encode("latin-1") + head.target + f" HTTP/{head.version}".encode("latin-1")]
    for name, value in head.headers:
        if name.lower() not in _TRACE_HIDDEN:
            lines.append(name + b": " + value)
    return b"\r\n".join(lines)[:TRACE_LIMIT] + b"\r\n\r\n"


@register("protocol_support", phases=(Phase.BEGIN_REQUEST, Phase.MAP_REQUEST_HANDLER))
class ProtocolSupportModule(Module):
    def setup(self, app) -> None:
        self.compiled: dict[int, HeaderFilter] = {}
        # One configuration for every URL with no header to add: no BEGIN_REQUEST step.
        sections_ = getattr(app, "sections", None)
        self.headers = getattr(app, "urls", None) is not None or sections_ is None \
            or HeaderFilter(sections_.http_protocol).needed

    def wants(self, phase) -> bool:
        return self.headers or phase is not Phase.BEGIN_REQUEST

    def filter_for(self, section) -> HeaderFilter:
        found = self.compiled.get(id(section))
        if found is None or found.section is not section:
            if len(self.compiled) >= COMPILED_LIMIT:
                self.compiled.clear()
            found = self.compiled[id(section)] = HeaderFilter(section)
        return found

    def begin_request(self, ctx):
        send_filter = self.filter_for(ctx.config.http_protocol)
        if send_filter.needed:
            ctx.add_filter(send_filter)
        return CONTINUE

    def map_request_handler(self, ctx):
        method = ctx.head.method
        if method != "OPTIONS" and method != "TRACE":
            return CONTINUE
        section = ctx.config.http_protocol
        pipeline = ctx.config.pipeline or ctx.app.pipeline
        if method == "TRACE":
            if not section.allow_trace:
                raise MethodNotAllowed(", ".join(allowed_verbs(ctx, pipeline, False)),
                                       "TRACE is not allowed (http_protocol.allow_trace)")
            if ctx.body is not None or ctx.head.content_length > 0:
                raise HttpError("a TRACE request has no body", status=400)
            body = trace_echo(ctx.head)
            ctx.respond(b"200 OK\r\nContent-Type: message/http\r\nContent-Length: %d\r\n" % len(body), body)
            return FINISH
        handler = pipeline.mapped(ctx)
        if handler is not None and (handler.managed or getattr(handler, "answers_options", False)):
            # The app answers its own OPTIONS (a CORS preflight); so does WebDAV (its DAV
            # classes and methods), whose entry IIS lists before OPTIONSVerbHandler.
            return CONTINUE
        ctx.handler = None
        allow = ", ".join(allowed_verbs(ctx, pipeline, section.allow_trace))
        ctx.respond(f"200 OK\r\nAllow: {allow}\r\nContent-Length: 0\r\n".encode("latin-1"))
        return FINISH
