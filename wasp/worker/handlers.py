"""The handler mapping of MAP_REQUEST_HANDLER, compiled once per (pipeline, effective `handlers`).

`HandlerMap.map(ctx)` walks the compiled entries (wasp/config/sections/handlers.py) in order and
sets `ctx.handler`. An entry whose handler module does not run for the application (removed from
its `modules`, or with nothing to do: python_app without an app; static_file stays, to answer
404.0 without a physical_path) is left out when the map is compiled, so the per-request walk only sees usable entries, and
the default list for a WSGI app without content is one entry matching "*" for every verb.
"""

from __future__ import annotations

import os
import re

from wasp.errors import Forbidden, NotFound
from wasp.worker.errorpages import MethodNotAllowed
from wasp.worker.modules.static import locate

#: require_access -> (accessPolicy flag needed, the 403 substatus when it is not granted).
_ACCESS = {"Read": ("Read", 2), "Write": ("Write", 3), "Script": ("Script", 1),
           "Execute": ("Execute", 1)}


class AccessDenied(Forbidden):
    pass


def compile_path(pattern: str):
    """A matcher (rel, name) -> bool for an IIS handler path, or None for "*" (always)."""
    if pattern == "*":
        return None
    slash = "/" in pattern
    if slash and not pattern.startswith("/"):
        pattern = "/" + pattern
    regex = re.compile(b".*".join(re.escape(part) for part in pattern.encode("utf-8").split(b"*"))
                       + rb"\Z", re.IGNORECASE | re.DOTALL)
    match = regex.match
    if slash:
        return lambda rel, name: match(rel) is not None
    return lambda rel, name: match(name) is not None


def parse_verbs(verb: str) -> frozenset | None:
    """None for "*", else the set of methods."""
    verbs = [v.strip() for v in verb.split(",") if v.strip()]
    return None if "*" in verbs else frozenset(verbs)


class Mapping:
    __slots__ = ("name", "match", "verbs", "handler", "resource", "denied", "skip_existing",
                 "lister", "script_processor", "allow_path_info", "passes")

    def __init__(self, entry, handler, policy, lister=None):
        self.name = entry.name
        #: A module of the entry that lists directories (directory_listing): it takes the
        #: entry's directory URLs ending in "/" that default_document left a directory.
        self.lister = lister
        self.match = compile_path(entry.path)
        self.verbs = parse_verbs(entry.verb)
        self.handler = handler
        self.resource = entry.resource_type
        needed = _ACCESS.get(entry.require_access)
        self.denied = needed[1] if needed is not None and needed[0] not in policy else 0
        self.skip_existing = entry.skip_existing_files
        self.script_processor = entry.script_processor
        # Only a file-name pattern can name a script that a path goes on past ("*.php").
        self.allow_path_info = entry.allow_path_info and self.match is not None \
            and "/" not in entry.path
        # A handler may pass a request on to the next entry (web_dav where authoring is off).
        self.passes = getattr(handler, "passes", None)


def script_split(rel: bytes, match) -> int | None:
    """For an entry with allow_path_info: where the first segment the pattern matches ends
    ("/index.php/a/b" -> 10), or None. The last segment was tried already."""
    pos = rel.find(b"/", 1)
    while pos > 0:
        start = rel.rfind(b"/", 0, pos) + 1
        if match(rel[:pos], rel[start:pos]):
            return pos
        pos = rel.find(b"/", pos + 1)
    return None


class HandlerMap:
    def __init__(self, section, available: dict, root: str | None, prepare=None, catch_all=None):
        """`available`: module id -> the handler Module running for this application."""
        policy = set(section.access_policy)
        self.mappings: list[Mapping] = []
        named = set()
        for entry in section.entries:
            ids = [m.strip() for m in entry.modules.split(",") if m.strip()]
            named.update(ids)
            usable = [available[i] for i in ids if i in available]
            lister = next((m for m in usable if getattr(m, "lists_directories", False)), None)
            handler = next((m for m in usable if m is not lister), lister)
            if handler is not None:
                self.mappings.append(Mapping(entry, handler, policy, lister))
        self.root = root
        self.prepare = prepare  # default_document's: a directory URL -> its default document
        self.needs_file = root is not None and any(
            m.skip_existing or m.resource != "Unspecified" for m in self.mappings)
        # ARR: a request with a proxy URL goes to the reverse proxy, whatever the list says.
        self.proxy = available.get("reverse_proxy")
        # WebDAV's `Translate: f`: a GET for the source of a file, from an author whose authoring
        # rules grant Source, goes to web_dav (the file as it is), whatever the list says.
        dav = available.get("web_dav")
        self.source = dav if dav is not None and hasattr(dav, "serves_source") else None
        self.source_mapping = next((m for m in self.mappings if m.handler is dav), None)
        # A handler module no entry names and that says it takes what nobody maps (a test's).
        self.catch_all = catch_all if catch_all is not None and catch_all.id not in named else None

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.mappings]

    def map(self, ctx) -> None:
        if ctx.proxy_url is not None:
            # A rewrite to an absolute URL (or a `proxy` url): IIS hands it to ARR; without
            # the reverse proxy running for the application it has no handler (404.4).
            if self.proxy is None:
                raise NotFound("a proxy URL, but the reverse proxy does not run here", substatus=4)
            ctx.handler = self.proxy
            return
        if self.needs_file:
            locate(ctx, self.root)
            if self.prepare is not None:
                self.prepare(ctx)
        method = ctx.head.method
        if self.source is not None and (method == "GET" or method == "HEAD") \
                and self.source.serves_source(ctx):
            ctx.mapping = self.source_mapping
            ctx.handler = self.source
            return
        rel = None
        allowed = None
        for mapping in self.mappings:
            split = -1
            match = mapping.match
            if match is not None:
                if rel is None:
                    path = ctx.head.path
                    rel = path[ctx.app.prefix_len:] or b"/"
                    if rel[-1:] == b"/" and ctx.file_path is not None and not ctx.is_dir:
                        # default_document chose the directory's document: IIS maps the
                        # request as the document's URL ("/" -> "/index.php")
                        rel += os.path.basename(ctx.file_path).encode("utf-8", "surrogateescape")
                    name = rel[rel.rfind(b"/") + 1:]
                if not match(rel, name):
                    if not mapping.allow_path_info:
                        continue
                    split = script_split(rel, match)
                    if split is None:
                        continue
            verbs = mapping.verbs
            if verbs is not None and method not in verbs:
                allowed = verbs if allowed is None else allowed | verbs
                continue
            if mapping.skip_existing and ctx.file_path is not None and not ctx.is_dir:
                continue
            if mapping.handler is mapping.lister and not (ctx.is_dir and ctx.head.path.endswith(b"/")):
                continue  # only the directory lister is left of the entry: it maps directories only
            if mapping.passes is not None and mapping.passes(ctx):
                continue
            break
        else:
            if allowed is not None:
                raise MethodNotAllowed(", ".join(sorted(allowed)), f"{method} is not allowed here")
            if self.catch_all is not None:
                ctx.handler = self.catch_all
                return
            raise NotFound("no handler is mapped to this request", substatus=4)
        if mapping.denied:
            raise AccessDenied(f"handler {mapping.name} needs access the access_policy does not grant",
                               substatus=mapping.denied)
        ctx.mapping = mapping
        if rel is not None:
            # what cgi and fast_cgi run: the URL up to the script, and the path info after it
            ctx.script = rel if split < 0 else rel[:split]
        resource = mapping.resource
        if resource != "Unspecified" and split < 0:
            found = ctx.file_path is not None if self.root is not None else False
            if not found or (resource == "File" and ctx.is_dir) or (resource == "Directory" and not ctx.is_dir):
                if ctx.freb is not None:  # FREB: the StaticFile area sees the file it lacked
                    ctx.freb.file_missing(ctx, mapping.handler.id if mapping.handler else mapping.name)
                raise NotFound(f"handler {mapping.name} needs a {resource.lower()}")
        if mapping.lister is not None and ctx.is_dir and ctx.head.path.endswith(b"/"):
            ctx.handler = mapping.lister
            return
        ctx.handler = mapping.handler
