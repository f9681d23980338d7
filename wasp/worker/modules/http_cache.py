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

from wasp.wire.frames import CACHE_FOR_TIME_PERIOD, CACHE_UNTIL_CHANGE, CacheHint
from wasp.worker.registry import CONTINUE, Module, Phase, register

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


class Rule:
    """What one extension's responses may become: (policy number or 0, duration) for static files
    and for app responses, and the profile's vary-by headers."""

    __slots__ = ("static", "app", "vary")

    def __init__(self, profile=None):
        self.vary: tuple[str, ...] = ()
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


@register("http_cache", phases=(Phase.RESOLVE_REQUEST_CACHE,))
class HttpCacheModule(Module):
    def setup(self, app) -> None:
        section = app.config.caching
        self.on = section.enabled and section.enable_kernel_cache
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
            self.on = False

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
        if head.method != "GET" or head.query or ctx.body is not None or head.websocket \
                or head.content_length > 0 or (head.tls is not None and head.tls.client_cert):
            return CONTINUE  # (a client certificate authenticates the request, HTTP.sys rule 8)
        for name, _value in head.headers:
            if len(name) <= 13 and name.lower() in _REFUSING:
                return CONTINUE
        ctx.cache = self.rule_for(head.path)
        return CONTINUE
