"""HttpRedirectionModule: the URL's `http_redirect` section sends the client elsewhere.

It runs in MAP_REQUEST_HANDLER, after authentication and authorization (a protected folder's
redirect is not a way to learn what it holds) and before a handler is chosen. Where the section
is configured (its "base", needed to know the part of the URL below it) is the shallowest folder
of the application whose effective `http_redirect` equals the URL's; it is found once per folder.

Nothing of the request reaches the Location unescaped: the path below the base is percent-encoded
(a "\\", CR, LF or space included) with runs of "/" collapsed, the query string is encoded except
for its delimiters and existing escapes, and a result that would start with "//" (another host)
is made a path of this site. A relative destination the request is already under is not
redirected again (no loop of /new -> /new/new).
"""

from __future__ import annotations

import re
from urllib.parse import quote

from wasp.config.sections.http_redirect import STATUS, wildcard_regex
from wasp.worker.registry import CONTINUE, FINISH, Module, Phase, register

_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_QUERY_SAFE = "&=;+%/?:@!$'()*,-._~"
_SLASHES = re.compile(rb"/{2,}")
_VARIABLE = re.compile(r"\$[SQPV]")
BASE_CACHE_LIMIT = 4096


def location_for(section, base: bytes, path: bytes, query: bytes, matchers=None) -> str | None:
    """Where a request for `path`?`query` goes, or None. `base`: the site path where the section
    is configured, without its trailing "/" (b"" for the root)."""
    rel = _SLASHES.sub(b"/", path[len(base):]) if path[:len(base)].lower() == base.lower() else b""
    if section.child_only and rel in (b"", b"/"):
        return None
    suffix = quote(rel, safe=_PATH_SAFE)
    rel_text = rel.decode("utf-8", "replace") or "/"
    destination = section.destination
    if section.rules:
        matchers = matchers or [(wildcard_regex(r.wildcard), r.destination) for r in section.rules]
        for regex, target in matchers:
            if regex.match(rel_text):
                destination = target
                break
    if not destination:
        return None
    encoded_query = quote(query, safe=_QUERY_SAFE) if query else ""
    if section.exact_destination:
        values = {"$S": suffix, "$Q": "?" + encoded_query if encoded_query else "",
                  "$P": encoded_query, "$V": quote(_SLASHES.sub(b"/", path), safe=_PATH_SAFE)}
        location = _VARIABLE.sub(lambda m: values[m.group(0)], destination)
    else:
        location = destination
        if suffix:
            location = location.rstrip("/") + suffix  # suffix starts with "/"
        if encoded_query:
            location += ("&" if "?" in location else "?") + encoded_query
    if location.startswith("//") or location.startswith("/\\"):
        location = "/" + location.lstrip("/\\")  # never a protocol-relative URL
    if location.startswith("/"):
        here = quote(_SLASHES.sub(b"/", path), safe=_PATH_SAFE).rstrip("/").lower()
        if here == location.split("?", 1)[0].rstrip("/").lower():
            return None  # already there: a redirect would loop
        if not section.exact_destination and destination.startswith("/"):
            into = destination.split("?", 1)[0].rstrip("/").lower()
            if into and (here == into or here.startswith(into + "/")):
                return None  # under the destination already: /new -> /new/new would loop
    return location


def redirect_response(ctx, status_name: str, location: str) -> None:
    text = location.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    body = (f'<head><title>Document Moved</title></head>\n<body><h1>Object Moved</h1>'
            f'This document may be found <a HREF="{text}">here</a></body>').encode("utf-8")
    block = (f"{STATUS[status_name]}\r\nContent-Type: text/html; charset=UTF-8\r\n"
             f"Location: {location}\r\nContent-Length: {len(body)}\r\n").encode("utf-8")
    ctx.respond(block, body)


@register("http_redirect", phases=(Phase.MAP_REQUEST_HANDLER,))
class HttpRedirectionModule(Module):
    def setup(self, app) -> None:
        self.app = app
        self.bases: dict[bytes, tuple] = {}      # folder -> (section, base)
        self.matchers: dict[int, tuple] = {}     # id(section) -> (section, compiled rules)
        # One configuration for every URL (no location, no web.toml) that redirects nothing:
        # the step stays out of the pipeline.
        sections_ = getattr(app, "sections", None)
        self.on = getattr(app, "urls", None) is not None or sections_ is None \
            or sections_.http_redirect.enabled

    def wants(self, phase) -> bool:
        return self.on

    def base_of(self, ctx, section) -> bytes:
        app = ctx.app
        prefix = app.script_name.encode("utf-8")
        urls = app.urls
        if urls is None:
            return prefix
        rel = ctx.head.path[app.prefix_len:]
        folder = rel[:rel.rfind(b"/") + 1] or b"/"
        key = rel if urls.exact and rel.rstrip(b"/").lower() in urls.exact else folder
        found = self.bases.get(key)
        if found is not None and found[0] is section:
            return found[1]
        base = prefix + folder.rstrip(b"/")
        if urls.exact and rel.rstrip(b"/").lower() in urls.exact:
            # A location named for this URL itself ("/old" without its slash): it is the base
            # unless a folder above has the same section.
            base = prefix + rel.rstrip(b"/")
        ancestor = b""
        for part in folder.split(b"/")[:-1]:
            ancestor += part + b"/"
            if urls.lookup(prefix + ancestor).http_redirect == section:
                base = prefix + ancestor.rstrip(b"/")
                break
        if len(self.bases) >= BASE_CACHE_LIMIT:
            self.bases.clear()
        self.bases[key] = (section, base)
        return base

    def map_request_handler(self, ctx):
        section = ctx.config.http_redirect
        if not section.enabled:
            return CONTINUE
        matchers = None
        if section.rules:
            found = self.matchers.get(id(section))
            if found is None or found[0] is not section:
                if len(self.matchers) >= BASE_CACHE_LIMIT:
                    self.matchers.clear()
                found = self.matchers[id(section)] = (section, [
                    (wildcard_regex(r.wildcard), r.destination) for r in section.rules])
            matchers = found[1]
        head = ctx.head
        location = location_for(section, self.base_of(ctx, section), head.path, head.query, matchers)
        if location is None:
            return CONTINUE
        redirect_response(ctx, section.http_response_status, location)
        return FINISH
