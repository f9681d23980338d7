"""HttpCacheModule: which responses the front may cache, and for how long.

In IIS, HttpCacheModule decides per response whether HTTP.sys may keep it in its kernel cache and
tells HTTP.sys so; HTTP.sys stores it and serves later requests without the worker. wasp's front is
HTTP.sys, so this module only decides, and the decision travels to the front as a CACHE frame right
before the response it is about (docs/internals.md).

In RESOLVE_REQUEST_CACHE the module looks at the request: only a GET without a body, a query
string, `Authorization`, `Range`, `If-Range` or `Translate` may be cached (HTTP.sys's rules), and
the URL's extension picks the application's profile (`caching.profiles`, `"*"` after the exact
extensions). It leaves the profile's rule on the context. The response leaves the worker during
EXECUTE_REQUEST_HANDLER (it is streamed, not buffered until UPDATE_REQUEST_CACHE as in IIS), so the
context asks the rule for a hint when it sends the response, and the rule refuses anything but a
200 with a body and without `Set-Cookie`, `Vary: *` or `Cache-Control: private/no-store/no-cache`.

- Static files: CacheUntilChange (the front watches the file), unless the profile of the extension
  says DisableCache or keeps responses off the server (location Client or None). A time period
  adds nothing to an entry that goes when its file changes, so a profile's CacheForTimePeriod is
  for app responses. A default document reached as its directory (`/`) is not cached, as in
  HTTP.sys.
- App responses: only when a profile says CacheUntilChange (until the pool gets a new worker) or
  CacheForTimePeriod (for `duration`); the response's `Cache-Control: s-maxage` / `max-age` may
  shorten it.
"""

from __future__ import annotations

import os
import re

from wasp.wire.frames import CACHE_FOR_TIME_PERIOD, CACHE_UNTIL_CHANGE, CacheHint
from wasp.worker.outputcache import OutputCache, query_key
from wasp.worker.registry import CONTINUE, FINISH, Module, Phase, register

#: Request headers that keep a request out of the cache (HTTP.sys: authenticated requests and
#: partial responses are never cached; `Translate: f` asks for a file's source).
_REFUSING = frozenset({b"authorization", b"range", b"if-range", b"translate"})
_NO_CACHE_DIRECTIVES = frozenset({"private", "no-store", "no-cache"})


def profile_policy(profile) -> str:
    """A profile's effect on the front's cache: "DisableCache", "DontCache", "CacheUntilChange"
    or "CacheForTimePeriod"."""
    if "DisableCache" in (profile.policy, profile.kernel_caching_policy):
        return "DisableCache"
    if profile.location in ("Client", "None"):
        return "DisableCache"  # the admin keeps these responses off the server
    if profile.kernel_caching_policy != "DontCache":
        return profile.kernel_caching_policy
    return profile.policy


_POLICY_NUMBER = {"CacheUntilChange": CACHE_UNTIL_CHANGE, "CacheForTimePeriod": CACHE_FOR_TIME_PERIOD}


#: Locations that let a server-side cache hold the response (IIS OutputCacheLocation).
_ON_SERVER = frozenset({"Any", "Server", "ServerAndClient"})
#: The Cache-Control the worker adds for a location when the app sent none.
_LOCATION_HEADER = {"Any": "public", "Downstream": "public", "Client": "private",
                    "ServerAndClient": "private", "None": "no-cache"}


class Rule:
    """What one extension's responses may become: (policy number or 0, duration) for static files
    and for app responses in the front's cache, the same for the worker's output cache (`worker`;
    `wanted` before the location is considered), and the profile's vary-by headers and query
    parameters."""

    __slots__ = ("static", "app", "vary", "worker", "wanted", "location", "vary_query",
                 "location_line")

    def __init__(self, profile=None):
        self.vary: tuple[str, ...] = ()
        self.worker = self.wanted = (0, 0.0)
        self.location = "Server"
        self.vary_query: tuple[str, ...] = ()
        self.location_line = b""
        if profile is None:
            self.static = (CACHE_UNTIL_CHANGE, 0.0)
            self.app = (0, 0.0)
            return
        policy = profile_policy(profile)
        duration = float(profile.duration)
        number = _POLICY_NUMBER.get(policy, 0)
        self.app = (number, duration if number == CACHE_FOR_TIME_PERIOD else 0.0)
        # A static file's entry goes when the file changes, which no time limit improves on.
        self.static = (0, 0.0) if policy == "DisableCache" else (CACHE_UNTIL_CHANGE, 0.0)
        self.vary = tuple(sorted({name.lower() for name in profile.vary_by_headers}))
        # The worker's output cache: IIS's `policy` (the user-mode cache).
        user = "DisableCache" if "DisableCache" in (profile.policy, profile.kernel_caching_policy) \
            else profile.policy
        wanted = _POLICY_NUMBER.get(user, 0)
        self.wanted = (wanted, duration if wanted == CACHE_FOR_TIME_PERIOD else 0.0)
        self.location = profile.location
        self.worker = self.wanted if profile.location in _ON_SERVER else (0, 0.0)
        names = tuple(sorted({n.lower() for n in profile.vary_by_query_string if n}))
        self.vary_query = ("*",) if "*" in names else names
        value = _LOCATION_HEADER.get(profile.location)
        if value is not None and wanted:
            if value != "no-cache":
                value += f", max-age={int(duration)}" if wanted == CACHE_FOR_TIME_PERIOD else ""
            self.location_line = f"Cache-Control: {value}\r\n".encode("latin-1")

    # ---- asked by the context when the response goes out ----
    def response_hint(self, ctx, block: bytes, body_length: int) -> CacheHint | None:
        hint = response_hint(self._policy(ctx), self.vary, block, body_length)
        if hint is not None:
            _not_for(ctx, hint)
        return hint

    def file_hint(self, ctx, block: bytes, path: str, offset: int, length: int) -> CacheHint | None:
        static = _is_static(ctx)
        if static and ctx.head.path.endswith(b"/"):
            return None  # a default document reached as its directory (HTTP.sys rule)
        if offset != 0:
            return None
        st = ctx.file_stat if static and ctx.file_path == path else None
        if st is None:
            try:
                st = os.stat(path)
            except OSError:
                return None
        if st.st_size != length:
            return None  # part of a file
        hint = response_hint(self.static if static else self.app, self.vary, block, length)
        if hint is not None:
            hint.mtime_ns = st.st_mtime_ns
            if static and ctx.file_path and ctx.file_path != path:
                # A compressed copy (static_compression): the entry depends on the file too.
                hint.source = ctx.file_path
                hint.source_mtime_ns = ctx.file_stat.st_mtime_ns
            _not_for(ctx, hint)
        return hint

    def _policy(self, ctx) -> tuple[int, float]:
        return self.static if _is_static(ctx) else self.app


#: ctx.items key: CacheHint.not_for of a compressed response (static/dynamic_compression set it).
NOT_FOR = "cache.not_for"


def _not_for(ctx, hint: CacheHint) -> None:
    items = ctx.items
    if items is not None:
        hint.not_for = items.get(NOT_FOR, 0)


def _is_static(ctx) -> bool:
    handler = ctx.handler
    return handler is not None and handler.id == "static_file"


def response_hint(policy: tuple[int, float], vary: tuple[str, ...], block: bytes,
                  body_length: int) -> CacheHint | None:
    """The hint for a response under (policy, duration), or None when the response refuses."""
    number, duration = policy
    if not number or body_length <= 0 or not block.startswith(b"200 "):
        return None  # HTTP.sys caches whole, non-empty 200 responses only
    names = set(vary)
    ages: dict[str, int] = {}
    for line in block.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"set-cookie":
            return None
        if name == b"vary":
            for item in value.decode("latin-1").split(","):
                item = item.strip().lower()
                if item == "*":
                    return None
                if item:
                    names.add(item)
        elif name == b"cache-control":
            for directive in value.decode("latin-1").split(","):
                key, _, arg = directive.strip().partition("=")
                key = key.strip().lower()
                if key in _NO_CACHE_DIRECTIVES:
                    return None
                if key in ("s-maxage", "max-age"):
                    try:
                        ages.setdefault(key, int(arg.strip().strip('"')))
                    except ValueError:
                        return None  # a malformed lifetime: do not guess
    # A shared cache takes s-maxage over max-age (RFC 9111 5.2.2.10).
    max_age = ages.get("s-maxage", ages.get("max-age"))
    if max_age is not None:
        if max_age <= 0:
            return None
        duration = float(max_age) if duration <= 0 else min(duration, float(max_age))
    return CacheHint(number, duration, sorted(names))


#: The app's word on one response to the worker's output cache (docs/output-cache.md).
OVERRIDE_HEADER = b"x-wasp-output-cache"
_OVERRIDE_LINE = re.compile(rb"\r\nx-wasp-output-cache:[ \t]*([^\r]*)(?=\r\n)", re.IGNORECASE)
_CACHE_CONTROL = re.compile(rb"\r\ncache-control:", re.IGNORECASE)


class StoreFilter:
    """The send filter of a request the worker's output cache missed: it takes the app's word
    (X-Wasp-Output-Cache, then stripped), adds the location's Cache-Control when the app sent
    none, and keeps a cacheable response sent in one piece."""

    __slots__ = ("store", "rule", "base", "keep")

    def __init__(self, store, rule: Rule, base, keep: bool):
        self.store = store
        self.rule = rule
        self.base = base
        self.keep = keep  # False: only the headers (the front or nobody holds it)

    def __call__(self, ctx, block: bytes, body, length: int) -> bytes:
        policy = self.rule.worker
        found = _OVERRIDE_LINE.search(block)
        if found is not None:
            word = found.group(1).strip().lower()
            block = block[:found.start()] + block[found.end():]
            if word in (b"no", b"none", b"0", b"off"):
                policy = (0, 0.0)
            else:
                try:
                    seconds = float(word.rstrip(b"s"))
                except ValueError:
                    seconds = 0.0
                policy = (CACHE_FOR_TIME_PERIOD, seconds) if seconds > 0 else (0, 0.0)
        if self.rule.location_line and not _CACHE_CONTROL.search(block):
            block += self.rule.location_line
            app_block = block[:-len(self.rule.location_line)]
        else:
            app_block = block
        if self.keep and policy[0] and body is not None and not ctx.private \
                and (ctx.handler is None or ctx.handler.id != "static_file"):
            # The app's own headers decide (a location's private is the worker's, not the app's).
            hint = response_hint(policy, self.rule.vary, app_block, len(body))
            if hint is not None and length == len(body):
                self.store.put(self.base, ctx.head.headers, self.rule.vary, tuple(hint.vary),
                               block, bytes(body), hint.duration)
        return block


@register("http_cache", phases=(Phase.RESOLVE_REQUEST_CACHE,))
class HttpCacheModule(Module):
    def setup(self, app) -> None:
        section = app.config.caching
        self.on = self.front = section.enabled and section.enable_kernel_cache
        self.by_extension: dict[str, Rule] = {}
        self.any: Rule = Rule()
        for profile in section.profiles:
            if profile.extension == "*":
                self.any = Rule(profile)
            else:
                self.by_extension.setdefault(profile.extension.lower(), Rule(profile))
        # Only static files and profiles with an app policy make hints. An application without
        # content (no physical_path: no static file or default document to serve) and without
        # such a profile can never send one, so its requests skip this phase altogether.
        if not app.config.physical_path and not any(
                rule.app[0] for rule in (self.any, *self.by_extension.values())):
            self.on = self.front = False
        # The worker's output cache, when a profile asks for it (docs/output-cache.md).
        self.store = None
        if section.enabled and any(rule.wanted[0] for rule in (self.any, *self.by_extension.values())):
            self.store = OutputCache(int(section.size_limit), int(section.max_response_size))
            self.on = True

    def wants(self, phase) -> bool:
        return self.on

    def rule_for(self, path: bytes) -> Rule:
        name = path[path.rfind(b"/") + 1:]
        dot = name.rfind(b".")
        if dot > 0 or (dot == 0 and len(name) > 1):
            rule = self.by_extension.get(name[dot:].decode("utf-8", "replace").lower())
            if rule is not None:
                return rule
        return self.any

    def resolve_request_cache(self, ctx):
        head = ctx.head
        method = head.method
        if (method != "GET" and method != "HEAD") or ctx.body is not None or head.websocket \
                or head.content_length > 0 or (head.tls is not None and head.tls.client_cert):
            return CONTINUE  # (a client certificate authenticates the request, HTTP.sys rule 8)
        host = b""
        for name, value in head.headers:
            if len(name) <= 13:
                lower = name.lower()
                if lower in _REFUSING:
                    return CONTINUE
                if lower == b"host":
                    host = value.lower()
        rule = self.rule_for(head.path)
        if self.front and method == "GET" and not head.query:
            ctx.cache = rule
        if self.store is not None and rule.wanted[0]:
            return self.output_cache(ctx, rule, host)
        return CONTINUE

    def output_cache(self, ctx, rule: Rule, host: bytes):
        """The worker's output cache: a hit answers here; a miss leaves a StoreFilter."""
        head = ctx.head
        # What the front holds it does not hold too (its app entries: no query string).
        front = ctx.cache is not None and rule.app[0] and rule.location != "ServerAndClient"
        keep = bool(rule.worker[0]) and not front and not ctx.private
        qkey = query_key(head.query, rule.vary_query) if keep else ()
        if qkey is None:
            keep = False
        base = (head.scheme, host, head.path, qkey)
        if keep:
            hit = self.store.get(base, head.headers, rule.vary)
            if hit is not None:
                ctx.cache = None  # a worker hit is not the front's to keep as well
                ctx.respond(hit[0], hit[1])
                return FINISH
        if keep and head.method != "GET":
            keep = False  # a HEAD is answered from a GET's entry, never stored
        store_filter = StoreFilter(self.store, rule, base, keep)
        ctx.filters = [store_filter] + (ctx.filters or [])  # before protocol_support's lines
        return CONTINUE
