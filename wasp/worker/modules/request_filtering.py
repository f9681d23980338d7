"""RequestFilteringModule: IIS request filtering, at BEGIN_REQUEST, for every request of every
handler (static files, default documents, redirects, Python apps).

The URL's effective `request_filtering` section (wasp/config/sections/request_filtering.py) is
compiled once into a `Rules` object (sets, lowered bytes, flags saying which checks can fire) and
kept by the section's identity, so a request pays a handful of set lookups and `in` scans; the
checks a section cannot trigger (no deny sequences, no rules, ...) cost nothing.

What it looks at (RequestHead, wasp/wire/frames.py): `path` is the path the front cooked
(percent-decoded once, `%uXXXX` too, `\\` turned into `/`, dot segments resolved), `target` the
request target as sent, `query` the raw query string. The front already refuses (400, HTTPERR
reason URL) a bad `%` escape, an escape that decodes to a control character (NUL included) and a
`..` above the root, and (414) a target over `limits.max_url`; those never reach this module.

Linux decisions where IIS leans on Windows file names (docs/worker.md, "Request filtering"): a
segment's trailing dots and spaces are dropped before it is compared (Windows opens
`secret.config.` as `secret.config`; an app on Linux might normalise the same way), a `;` path
parameter is cut off as well as kept (`/bin;x/a`, `/a.config;.png` are both checked as
`bin`, `.config` and as written), and a non-ASCII segment is also compared in its NFKC form (a
fullwidth `．` is a dot). Each comparison denies when any form matches.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote_to_bytes

import msgspec

from wasp.errors import HttpError, NotFound
from wasp.wire.urls import percent_decode, split_target
from wasp.worker.registry import CONTINUE, Module, Phase, register


class Denied(NotFound):
    """A request filtering denial: 404 with IIS's substatus."""

    reason = "NotFound"


class ContentTooLarge(HttpError):
    """maxAllowedContentLength: 413.1."""

    status = 413
    substatus = 1
    reason = "EntityTooLarge"


class HeaderTooLong(HttpError):
    """headerLimits: 431 (IIS 10; IIS 7-8.5 answered 404.10)."""

    status = 431
    reason = "FieldLength"


#: IIS 7.0-8.5's substatuses for what IIS 10 answers 413.1 and 431 (`legacy_status_codes`).
HEADER_TOO_LONG = 10
CONTENT_TOO_LARGE = 13
URL_SEQUENCE = 5
VERB = 6
FILE_EXTENSION = 7
HIDDEN_SEGMENT = 8
DOUBLE_ESCAPING = 11
HIGH_BIT = 12
URL_TOO_LONG = 14
QUERY_TOO_LONG = 15
QUERY_SEQUENCE = 18
FILTERING_RULE = 19
URL_SEGMENTS = 20

#: Method-override headers frameworks honour (verb tunnelling); the `_method` query parameter
#: (Rails, Laravel, Express's method-override) is checked too.
TUNNEL_HEADERS = frozenset({b"x-http-method-override", b"x-http-method", b"x-method-override"})
#: Methods only WebDAV uses (RFC 4918, RFC 5323): a request with one, or with `Translate: f`,
#: is a WebDAV request for the `apply_to_web_dav` switches.
WEBDAV_METHODS = frozenset({"PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK",
                            "SEARCH"})

#: What a second decoding would change: an escape left after the first one, or `+` (IIS's
#: allowDoubleEscaping rejects `+` in the path too).
_SECOND_DECODE = re.compile(rb"%(?:[0-9A-Fa-f]{2}|[uU][0-9A-Fa-f]{4})|\+").search
#: A `%` that starts no escape.
_UNESCAPED_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2}|[uU][0-9A-Fa-f]{4})").search
#: Segments that need their other forms compared: a `;` parameter, a trailing dot or space, or a
#: non-ASCII byte.
_NEEDS_FORMS = re.compile(rb";|[. ](?:/|$)|[\x80-\xff]").search

_NO_EXTENSION = b"."

#: Paths whose verdict one Rules keeps (past it the table starts again), and the longest path
#: kept: at most 4 MiB of paths per Rules however many URLs an attacker invents.
PATH_CACHE_LIMIT = 4096
PATH_CACHE_MAX = 1024

#: The verdict of a path nothing denies (one shared tuple: `is` tells it).
_ALLOWED = (0, 0)

_WHY = {URL_TOO_LONG: "URL over max_url", DOUBLE_ESCAPING: "the URL is double escaped",
        HIGH_BIT: "high-bit character in the URL", HIDDEN_SEGMENT: "hidden segment",
        FILE_EXTENSION: "file extension denied", URL_SEGMENTS: "too many URL segments"}


def segment_forms(segment: bytes) -> set[bytes]:
    """The lowered forms of one path segment that are compared: as sent, without a `;`
    parameter, without trailing dots and spaces, and (non-ASCII) in NFKC."""
    low = segment.lower()
    forms = {low}
    if b";" in low:
        forms.add(low.split(b";", 1)[0])
    for form in list(forms):
        stripped = form.rstrip(b". ")
        if stripped != form:
            forms.add(stripped)
    if not segment.isascii():
        for form in list(forms):
            text = unicodedata.normalize("NFKC", form.decode("utf-8", "surrogateescape")).lower()
            normal = text.encode("utf-8", "surrogateescape")
            forms.add(normal)
            forms.add(normal.rstrip(b". "))
            if b";" in normal:
                forms.add(normal.split(b";", 1)[0].rstrip(b". "))
    forms.discard(b"")
    return forms


def last_segment(path: bytes) -> bytes:
    """The last non-empty segment of a path ("/a/x.html/" -> "x.html"); b"" for "/"."""
    end = len(path)
    while end and path[end - 1] == 0x2F:  # "/"
        end -= 1
    return path[path.rfind(b"/", 0, end) + 1:end]


def extensions_of(path: bytes) -> set[bytes]:
    """The lowered extensions the URL's last segment has in any of its forms: b".html", or
    b"." for a name without one (and for "/")."""
    segment = last_segment(path)
    if not segment:
        return {_NO_EXTENSION}
    forms = segment_forms(segment) if _NEEDS_FORMS(segment + b"/") else {segment.lower()}
    out = set()
    for form in forms:
        dot = form.rfind(b".")
        out.add(form[dot:] if dot >= 0 and dot < len(form) - 1 else _NO_EXTENSION)
    return out


def _lower_bytes(values) -> tuple[bytes, ...]:
    return tuple(dict.fromkeys(v.encode("utf-8").lower() for v in values))


def _normal(value: str) -> bytes:
    return unicodedata.normalize("NFKC", value).lower().encode("utf-8")


class Rules:
    """One effective `request_filtering` section, compiled. `check` raises the denial."""

    __slots__ = ("legacy", "max_length", "max_url", "max_query", "max_segments", "header_limits",
                 "verbs_denied", "verbs_allowed", "verbs_unlisted", "verbs_dav", "tunnelling",
                 "check_verbs", "double_escaping", "high_bit", "url_sequences", "allowed_urls",
                 "hidden", "hidden_dav", "ext_denied", "ext_allowed", "ext_unlisted", "ext_dav",
                 "query_sequences", "allowed_queries", "unescape", "rules", "private", "slow",
                 "paths")

    def __init__(self, section) -> None:
        limits = section.request_limits
        self.max_length = int(limits.max_allowed_content_length)
        self.legacy = section.legacy_status_codes
        self.max_url = limits.max_url
        self.max_query = limits.max_query_string
        self.max_segments = limits.max_url_segments
        self.header_limits: dict[bytes, int] = {h.header.lower().encode("ascii"): h.size_limit
                                                for h in limits.header_limits}
        verbs = section.verbs
        self.verbs_denied = frozenset(v.verb for v in verbs.verbs if not v.allowed)
        self.verbs_allowed = frozenset(v.verb for v in verbs.verbs if v.allowed)
        self.verbs_unlisted = verbs.allow_unlisted
        self.verbs_dav = verbs.apply_to_web_dav
        self.tunnelling = verbs.allow_verb_tunnelling
        self.check_verbs = bool(self.verbs_denied or not self.verbs_unlisted or not self.tunnelling)
        self.double_escaping = not section.allow_double_escaping
        self.high_bit = not section.allow_high_bit_characters
        self.url_sequences = _lower_bytes(section.deny_url_sequences)
        self.allowed_urls = frozenset(_lower_bytes(section.always_allowed_urls))
        segments = section.hidden_segments
        hidden = set(_lower_bytes(segments.segments))
        hidden.update(_normal(s) for s in segments.segments)
        self.hidden = frozenset(hidden)
        self.hidden_dav = segments.apply_to_web_dav
        extensions = section.file_extensions
        self.ext_denied = frozenset(_lower_bytes(e.file_extension for e in extensions.extensions
                                                 if not e.allowed))
        self.ext_allowed = frozenset(_lower_bytes(e.file_extension for e in extensions.extensions
                                                  if e.allowed))
        self.ext_unlisted = extensions.allow_unlisted
        self.ext_dav = extensions.apply_to_web_dav
        self.query_sequences = _lower_bytes(section.deny_query_string_sequences)
        self.allowed_queries = frozenset(_lower_bytes(section.always_allowed_query_strings))
        self.unescape = section.unescape_query_string
        self.rules = tuple(
            (frozenset(_lower_bytes(r.applies_to)), r.scan_url, r.scan_query_string, r.scan_all_raw,
             r.deny_unescaped_percent, frozenset(_lower_bytes(r.scan_headers)), _lower_bytes(r.deny_strings))
            for r in section.filtering_rules if r.deny_strings or r.deny_unescaped_percent)
        # Decisions that depend on more than the cooked path (headers, the method, the target as
        # sent): the front must not answer the next request for the URL from its cache.
        self.private = bool(self.header_limits or self.check_verbs or self.url_sequences
                            or self.rules)
        #: Checks beyond the lengths and the path's verdict: the slow path of `check`.
        self.slow = bool(self.check_verbs or self.header_limits or self.url_sequences
                         or self.query_sequences or self.rules)
        self.paths: dict[bytes, tuple[int, int]] = {}  # cooked path -> _judge_path's verdict

    # ---- the per-request check ----
    def check(self, head) -> None:
        path = head.path
        if self.max_length and head.content_length > self.max_length:
            if self.check_verbs:
                self._verbs(head)  # a denied verb says 404.6 before the length says 413.1
            if self.legacy:
                raise Denied("Content-Length over max_allowed_content_length", substatus=CONTENT_TOO_LARGE)
            raise ContentTooLarge("Content-Length over max_allowed_content_length")
        if self.max_query and len(head.query) > self.max_query:
            if self.check_verbs:
                self._verbs(head)
            raise Denied("query string over max_query_string", substatus=QUERY_TOO_LONG)
        # What the cooked path alone decides, judged once per path (bounded: random URLs only
        # make misses): (denial for every request, denial for requests that are not WebDAV).
        verdict = self.paths.get(path)
        if verdict is None:
            verdict = self._judge(path)
        if self.slow:
            self._check_rest(head, path, verdict)
        elif verdict is not _ALLOWED:
            self._deny(head, verdict)

    def _judge(self, path: bytes) -> tuple[int, int]:
        verdict = self._judge_path(path)
        if verdict == (0, 0):
            verdict = _ALLOWED
        if len(path) <= PATH_CACHE_MAX:  # a long path is judged each time: bounded memory
            paths = self.paths
            if len(paths) >= PATH_CACHE_LIMIT:
                paths.clear()
            paths[path] = verdict
        return verdict

    def _deny(self, head, verdict: tuple[int, int]) -> None:
        """The fast path's denial: the path's verdict (the WebDAV scan only now, for a path a
        non-WebDAV request would be denied on)."""
        always, unless_dav = verdict
        if always:
            raise Denied(_WHY[always], substatus=always)
        if not _is_dav(head):
            raise Denied(_WHY[unless_dav], substatus=unless_dav)

    def _verbs(self, head) -> bool | None:
        """The verb checks (when the section has any); returns whether the request is WebDAV,
        or None when it was not looked at."""
        dav = _is_dav(head)
        if self.verbs_dav or not dav:
            self._check_verbs(head, head.method)
        return dav

    def _check_rest(self, head, path: bytes, verdict: tuple[int, int]) -> None:
        """Every check, in IIS's order, for a section with more than the path's verdict to
        look at (verbs, header limits, deny sequences, filtering rules)."""
        dav = self._verbs(head) if self.check_verbs else None
        if self.header_limits:
            self._check_headers(head.headers)
        always, unless_dav = verdict
        if always:
            raise Denied(_WHY[always], substatus=always)
        if self.url_sequences and path.lower() not in self.allowed_urls:
            self._check_url_sequences(head, path)
        if unless_dav:
            if dav is None:
                dav = _is_dav(head)
            if not dav:
                raise Denied(_WHY[unless_dav], substatus=unless_dav)
        query = head.query
        if query and self.query_sequences:
            self._check_query(query)
        if self.rules:
            self._check_rules(head, extensions_of(path))

    def _judge_path(self, path: bytes) -> tuple[int, int]:
        """(0 or the substatus the cooked path alone denies every request with, 0 or the one it
        denies a request that is not WebDAV with: hidden segments and file extensions whose
        `apply_to_web_dav` is off)."""
        unless_dav = 0
        try:
            if self.hidden and not self.hidden_dav:
                self._check_hidden(path)
            if (self.ext_denied or not self.ext_unlisted) and not self.ext_dav:
                self._check_extensions(extensions_of(path))
        except Denied as exc:
            unless_dav = exc.substatus
        try:
            if self.max_url and len(path) > self.max_url:
                return URL_TOO_LONG, unless_dav
            if self.double_escaping and (b"%" in path or b"+" in path) and _SECOND_DECODE(path):
                return DOUBLE_ESCAPING, unless_dav
            if self.high_bit and not path.isascii():
                return HIGH_BIT, unless_dav
            if self.hidden and self.hidden_dav:
                self._check_hidden(path)
            if (self.ext_denied or not self.ext_unlisted) and self.ext_dav:
                self._check_extensions(extensions_of(path))
            if self.max_segments and path.count(b"/") > self.max_segments \
                    and sum(1 for s in path.split(b"/") if s) > self.max_segments:
                return URL_SEGMENTS, unless_dav
        except Denied as exc:
            return exc.substatus, unless_dav
        return 0, unless_dav

    def _check_verbs(self, head, method: str) -> None:
        self._check_verb(method)
        for name, value in head.headers:
            if name.lower() in TUNNEL_HEADERS:
                if not self.tunnelling:
                    raise Denied("verb tunnelling header", substatus=VERB)
                self._check_tunnelled(value)
        query = head.query
        if query and b"_method=" in query.lower():
            for pair in query.split(b"&"):
                key, _, value = pair.partition(b"=")
                if key.lower() == b"_method":
                    if not self.tunnelling:
                        raise Denied("verb tunnelling parameter", substatus=VERB)
                    self._check_tunnelled(unquote_to_bytes(value.replace(b"+", b" ")))

    def _check_tunnelled(self, value: bytes) -> None:
        """A tunnelled verb, as written and upper-cased (frameworks upper-case it), and each part
        of a comma-separated list."""
        text = value.decode("latin-1")
        for part in {text.strip(), *(p.strip() for p in text.split(","))}:
            if part:
                self._check_verb(part)
                self._check_verb(part.upper())

    def _check_verb(self, verb: str) -> None:
        if verb in self.verbs_denied or (not self.verbs_unlisted and verb not in self.verbs_allowed):
            raise Denied(f"verb {verb!r} denied", substatus=VERB)

    def _check_headers(self, headers) -> None:
        sizes: dict[bytes, int] = {}
        for name, value in headers:
            low = name.lower()
            if low in self.header_limits:
                sizes[low] = sizes[low] + 2 + len(value) if low in sizes else len(value)
        for low, size in sizes.items():
            limit = self.header_limits[low]
            if limit == 0 or size > limit:
                detail = f"header {low.decode('ascii')} over its size limit"
                if self.legacy:
                    raise Denied(detail, substatus=HEADER_TOO_LONG)
                raise HeaderTooLong(detail)

    def _check_url_sequences(self, head, path: bytes) -> None:
        raw = raw_path(head)
        forms = {path.lower(), raw.lower()}
        try:
            forms.add(percent_decode(raw).lower())
        except ValueError:
            pass
        for sequence in self.url_sequences:
            for form in forms:
                if sequence in form:
                    raise Denied("URL sequence denied", substatus=URL_SEQUENCE)

    def _check_hidden(self, path: bytes) -> None:
        low = path.lower()
        hidden = self.hidden
        if not hidden.isdisjoint(low.split(b"/")):
            raise Denied("hidden segment", substatus=HIDDEN_SEGMENT)
        if _NEEDS_FORMS(path):
            for segment in path.split(b"/"):
                if segment and not hidden.isdisjoint(segment_forms(segment)):
                    raise Denied("hidden segment", substatus=HIDDEN_SEGMENT)

    def _check_extensions(self, extensions: set[bytes]) -> None:
        for extension in extensions:
            if extension in self.ext_denied or (not self.ext_unlisted and extension not in self.ext_allowed):
                raise Denied(f"file extension {extension.decode('utf-8', 'replace')!r} denied",
                             substatus=FILE_EXTENSION)

    def _query_forms(self, query: bytes) -> list[bytes]:
        forms = [query.lower()]
        if self.unescape and (b"%" in query or b"+" in query):
            forms.append(unquote_to_bytes(query.replace(b"+", b" ")).lower())
        return forms

    def _check_query(self, query: bytes) -> None:
        forms = self._query_forms(query)
        if self.allowed_queries and not self.allowed_queries.isdisjoint(forms):
            return
        for sequence in self.query_sequences:
            for form in forms:
                if sequence in form:
                    raise Denied("query string sequence denied", substatus=QUERY_SEQUENCE)

    def _check_rules(self, head, extensions: set[bytes]) -> None:
        for applies_to, url, query, all_raw, percent, headers, strings in self.rules:
            if applies_to and applies_to.isdisjoint(extensions):
                continue
            texts: list[bytes] = []   # lowered, scanned for the deny strings
            raws: list[bytes] = []    # as sent, scanned for a lone `%`
            if url:
                raw = raw_path(head)
                texts += (head.path.lower(), raw.lower())
                raws.append(raw)
            if query and head.query:
                texts += self._query_forms(head.query)
                raws.append(head.query)
            if headers:
                for name, value in head.headers:
                    if name.lower() in headers:
                        texts.append(value.lower())
                        raws.append(value)
            if all_raw:
                lines = [head.target] + [name + b": " + value for name, value in head.headers]
                texts += (line.lower() for line in lines)
                raws += lines
            if percent and any(b"%" in raw and _UNESCAPED_PERCENT(raw) for raw in raws):
                raise Denied("unescaped % in a scanned part", substatus=FILTERING_RULE)
            for string in strings:
                for text in texts:
                    if string in text:
                        raise Denied("denied by a filtering rule", substatus=FILTERING_RULE)


def raw_path(head) -> bytes:
    """The path of the request target as sent (no query, no fragment, origin form)."""
    try:
        return split_target(head.target)[0]
    except ValueError:
        return head.path


def _is_dav(head) -> bool:
    if head.method in WEBDAV_METHODS:
        return True
    for name, value in head.headers:
        if name.lower() == b"translate" and value.strip().lower() == b"f":
            return True
    return False


#: Compiled rules by effective section: by the Struct's identity (the tuple keeps the Struct, so
#: its id cannot be reused by another while the entry lives), then by value, so that directories
#: with equal sections (a URL cache entry per directory makes one each) share one Rules. Both are
#: bounded: ID_LIMIT Structs kept alive at most; distinct values come from config files only.
_BY_ID: dict[int, tuple[object, Rules]] = {}
_BY_VALUE: dict[bytes, Rules] = {}
ID_LIMIT = 1024
VALUE_LIMIT = 256
_ENCODE = msgspec.msgpack.Encoder(enc_hook=int).encode  # Size is an int subclass


def rules_for(section) -> Rules:
    entry = _BY_ID.get(id(section))
    if entry is not None and entry[0] is section:
        return entry[1]
    if len(_BY_ID) >= ID_LIMIT:
        _BY_ID.clear()
    if len(_BY_VALUE) >= VALUE_LIMIT:
        _BY_VALUE.clear()
    key = _ENCODE(section)
    rules = _BY_VALUE.get(key)
    if rules is None:
        rules = _BY_VALUE[key] = Rules(section)
    _BY_ID[id(section)] = (section, rules)
    return rules


@register("request_filtering", phases=(Phase.BEGIN_REQUEST,))
class RequestFilteringModule(Module):
    def begin_request(self, ctx):
        config = ctx.config
        try:
            rules = config._request_filtering
        except AttributeError:  # the first request of this (application, directory)
            rules = config._request_filtering = rules_for(config.request_filtering)
        if rules.private:
            ctx.private = True
        try:
            rules.check(ctx.head)
        except HttpError as exc:
            if ctx.freb is not None:
                ctx.freb.emit("REQUEST_FILTERING_DENIED", (
                    ("Reason", str(exc)), ("HttpStatus", exc.status), ("HttpSubStatus", exc.substatus)))
            raise
        if rules.max_length and ctx.body is not None and ctx.head.content_length < 0 \
                and not ctx.head.websocket:
            # A chunked body: measured while it is read (flow.py), 413.1 when it goes over.
            ctx.body.limit = rules.max_length
        return CONTINUE
