"""IIS URL Rewrite 2.x, sans-I/O: rules and server variables in, a decision out.

The worker's `rewrite` module (distributed rules, BEGIN_REQUEST; outbound rules on the response)
and the front (global rules, before routing: IIS's GL_PRE_BEGIN_REQUEST) both compile the
`rewrite` section's rules here (wasp/config/sections/rewrite.py declares them) and evaluate them
with the request's server variables. Nothing here touches a socket or a file: whether a path is a
file or a directory (IsFile / IsDirectory conditions) is asked of the caller's `fs` object.

Patterns (ECMAScript, Wildcard, ExactMatch; the ReDoS guard) are wasp/wire/rewritepattern.py. A
match that runs out of time makes the evaluation raise RuleTimeout, which the caller answers
500.50 (inbound), 500.51 (global) or 500.52 (outbound), IIS's substatuses for a rule execution
error.

Templates (`action.url`, condition inputs, outbound values): `{R:n}` the rule's back-references,
`{C:n}` the last matched condition's (all conditions', numbered on, with track_all_captures),
`{VAR}` a server variable, `{ToLower:...}` `{UrlEncode:...}` `{UrlDecode:...}`
`{EscapeDataString:...}`, `{MapName:...}` a rewrite map lookup. An unknown variable, function or
map is a configuration error.
"""

from __future__ import annotations

import re
from typing import Any, Callable
from urllib.parse import quote, unquote

from wasp.common.freb import MASK, MASKED_VARIABLES
from wasp.wire.rewritepattern import (  # noqa: F401  (part of this module's API)
    FAST_INPUT, MATCH_TIMEOUT, MAX_INPUT, Pattern, RewriteConfigError, RuleTimeout, translate_ecmascript,
)

#: Back-references {R:n} / {C:n}: IIS numbers 0..9.
MAX_BACKREF = 9

# ---- results ----
NONE = "None"
REWRITE = "Rewrite"
REDIRECT = "Redirect"
CUSTOM = "CustomResponse"
ABORT = "AbortRequest"

REDIRECT_STATUS = {"Permanent": 301, "Found": 302, "SeeOther": 303, "Temporary": 307}

#: Server variables a template or condition may name (besides HTTP_* request headers and, in
#: outbound rules, RESPONSE_* response headers). IIS's names.
SERVER_VARIABLES = frozenset({
    "APPL_MD_PATH", "APPL_PHYSICAL_PATH", "CACHE_URL", "CONTENT_LENGTH", "CONTENT_TYPE",
    "HTTPS", "HTTP_URL", "INSTANCE_ID", "PATH_INFO", "QUERY_STRING", "REMOTE_ADDR",
    "REMOTE_HOST", "REMOTE_PORT", "REQUEST_FILENAME", "REQUEST_METHOD", "REQUEST_SCHEME",
    "REQUEST_URI", "SCRIPT_NAME", "SERVER_ADDR", "SERVER_NAME", "SERVER_PORT",
    "SERVER_PORT_SECURE", "SERVER_PROTOCOL", "UNENCODED_URL", "URL", "AUTH_TYPE", "AUTH_USER",
    "LOGON_USER", "REMOTE_USER",
})

FUNCTIONS = ("tolower", "urlencode", "urldecode", "escapedatastring")


# ================================================================ templates

_LIT, _REF, _VAR, _FN, _MAP = range(5)


class Template:
    """A compiled template: literal text with {R:n}, {C:n}, {VAR}, {Fn:...}, {Map:...}."""

    __slots__ = ("source", "parts", "static", "only")

    def __init__(self, source: str, maps: frozenset[str] | None = None, outbound: bool = False):
        self.source = source
        self.parts = _parse(source, 0, maps, outbound, top=True)[0]
        self.static = all(p[0] == _LIT for p in self.parts)
        # The common "{HTTP_HOST}": one variable, looked up without the loop.
        self.only = self.parts[0][1] if len(self.parts) == 1 and self.parts[0][0] == _VAR else None

    def expand(self, env: "Env") -> str:
        if self.only is not None:
            return env.variable(self.only)
        if self.static:
            return self.source
        return _expand(self.parts, env)

    def variables(self) -> set[str]:
        """The server variables it reads."""
        found: set[str] = set()
        _collect(self.parts, found)
        return found


def _collect(parts, found) -> None:
    for p in parts:
        if p[0] == _VAR:
            found.add(p[1])
        elif p[0] in (_MAP, _FN):
            _collect(p[2], found)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


def _parse(text: str, i: int, maps, outbound: bool, top: bool) -> tuple[list, int]:
    parts: list = []
    literal: list[str] = []
    n = len(text)
    while i < n:
        c = text[i]
        if c == "}" and not top:
            break
        if c != "{":
            literal.append(c)
            i += 1
            continue
        m = _NAME.match(text, i + 1)
        if m is None:
            raise RewriteConfigError(f"{{ at {i} does not start {{R:n}}, {{C:n}}, {{VARIABLE}} or {{Function:...}}")
        name = m.group(0)
        j = m.end()
        if literal:
            parts.append((_LIT, "".join(literal)))
            literal = []
        if j < n and text[j] == "}":
            parts.append((_VAR, _variable(name, outbound)))
            i = j + 1
            continue
        if j >= n or text[j] != ":":
            raise RewriteConfigError(f"{{{name} is not closed by }}")
        upper = name.upper()
        if upper in ("R", "C"):
            end = text.find("}", j + 1)
            digits = text[j + 1:end] if end > 0 else ""
            if not digits.isdigit() or not digits.isascii() or int(digits) > MAX_BACKREF:
                raise RewriteConfigError(f"{{{name}:...}} takes a back-reference number 0-{MAX_BACKREF}")
            parts.append((_REF, upper, int(digits)))
            i = end + 1
            continue
        inner, k = _parse(text, j + 1, maps, outbound, top=False)
        if k >= n:
            raise RewriteConfigError(f"{{{name}:... is not closed by }}")
        if name.lower() in FUNCTIONS:
            parts.append((_FN, name.lower(), inner))
        elif maps is None or name in maps:
            parts.append((_MAP, name, inner))
        else:
            raise RewriteConfigError(f"{{{name}:...}} names neither a function (ToLower, UrlEncode, "
                                     f"UrlDecode, EscapeDataString) nor a rewrite map")
        i = k + 1
    if literal:
        parts.append((_LIT, "".join(literal)))
    return parts, i


def _variable(name: str, outbound: bool) -> str:
    upper = name.upper()
    if upper in SERVER_VARIABLES or upper.startswith("HTTP_"):
        return upper
    if upper.startswith("RESPONSE_"):
        if outbound:
            return upper
        raise RewriteConfigError(f"{{{name}}}: response headers exist only in outbound rules")
    raise RewriteConfigError(f"{{{name}}} is not a server variable wasp knows")


def _expand(parts, env: "Env") -> str:
    out = []
    for p in parts:
        kind = p[0]
        if kind == _LIT:
            out.append(p[1])
        elif kind == _REF:
            caps = env.rule if p[1] == "R" else env.cond
            out.append(caps[p[2]] if p[2] < len(caps) else "")
        elif kind == _VAR:
            out.append(env.variable(p[1]))
        elif kind == _FN:
            value = _expand(p[2], env)
            fn = p[1]
            if fn == "tolower":
                value = value.lower()
            elif fn == "urlencode":
                value = quote(value, safe="")
            elif fn == "urldecode":
                value = unquote(value)
            else:
                value = quote(value, safe="-._~")
            out.append(value)
        else:
            out.append(env.lookup_map(p[1], _expand(p[2], env)))
    return "".join(out)


class Env:
    """What a template expands against: back-references, server variables, rewrite maps."""

    __slots__ = ("rule", "cond", "variable", "maps")

    def __init__(self, variable: Callable[[str], str], maps: dict[str, "RewriteMap"]):
        self.rule: tuple[str, ...] = ()
        self.cond: tuple[str, ...] = ()
        self.variable = variable
        self.maps = maps

    def lookup_map(self, name: str, key: str) -> str:
        found = self.maps.get(name)
        return found.get(key) if found is not None else ""


class RewriteMap:
    __slots__ = ("name", "default", "ignore_case", "entries")

    def __init__(self, name: str, entries: dict[str, str], default: str = "", ignore_case: bool = True):
        self.name = name
        self.default = default
        self.ignore_case = ignore_case
        self.entries = {k.lower(): v for k, v in entries.items()} if ignore_case else dict(entries)

    def get(self, key: str) -> str:
        return self.entries.get(key.lower() if self.ignore_case else key, self.default)


# ================================================================ conditions

#: A traced input (a URL, an expanded condition input) is cut at this many characters.
_TRACED_TEXT = 4096


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _reads_secret(template: "Template | None") -> bool:
    return template is not None and not template.variables().isdisjoint(MASKED_VARIABLES)


def _traced(rule: "Rule", value: str) -> str:
    """What a trace shows of an expanded condition input, server variable or custom response
    text of `rule`: masked when the rule reads a credential anywhere (a condition on
    {HTTP_COOKIE}, a server variable set from its {C:1}), as FREB's header dumps are. A URL a
    rule builds is shown: it is the request's URL from then on, in every later event (and in a
    redirect's Location header), so hiding it in one event would hide nothing."""
    return MASK if rule.secret else value[:_TRACED_TEXT]


class Condition:
    __slots__ = ("input", "match_type", "pattern", "negate")

    def __init__(self, input: Template, match_type: str, pattern: Pattern | None, negate: bool):
        self.input = input
        self.match_type = match_type
        self.pattern = pattern
        self.negate = negate


class Conditions:
    __slots__ = ("items", "any", "track_all")

    def __init__(self, items: list[Condition], any_: bool = False, track_all: bool = False):
        self.items = items
        self.any = any_
        self.track_all = track_all

    def evaluate(self, env: Env, fs, trace: Callable | None = None, secret: bool = False) -> bool:
        """True when the conditions hold; sets env.cond to the back-references for the action.
        `trace(opcode, data)`, when given, hears each condition's evaluation (FREB)."""
        env.cond = ()
        if not self.items:
            return True
        if trace is not None:
            trace("CONDITIONS_EVALUATION_START",
                  (("LogicalGrouping", "MatchAny" if self.any else "MatchAll"),))
            held = self._evaluate(env, fs, trace, secret)
            trace("CONDITIONS_EVALUATION_END", (("Succeeded", _bool(held)),))
            return held
        return self._evaluate(env, fs, None, False)

    def _evaluate(self, env: Env, fs, trace, secret: bool) -> bool:
        tracked: list[str] = [] if self.track_all else None
        for cond in self.items:
            text = cond.input.expand(env)
            pattern = cond.pattern
            if pattern is not None:
                caps = pattern.match(text)
            elif cond.match_type == "IsFile":
                caps = (text,) if fs is not None and fs.is_file(text) else None
            else:
                caps = (text,) if fs is not None and fs.is_dir(text) else None
            ok = (caps is None) if cond.negate else (caps is not None)
            if trace is not None:
                trace("CONDITION_EVALUATION", (
                    ("Input", cond.input.source),
                    ("ExpandedInput", MASK if secret else text[:_TRACED_TEXT]),
                    ("MatchType", "Pattern" if pattern is not None else cond.match_type),
                    ("Pattern", pattern.source if pattern is not None else ""),
                    ("Negate", _bool(cond.negate)), ("Succeeded", _bool(ok))))
            if ok:
                if caps is not None and not cond.negate:
                    if self.track_all:
                        tracked.extend(caps if not tracked else caps[1:])
                        env.cond = tuple(tracked)
                    else:
                        env.cond = caps
                if self.any:
                    return True
            elif not self.any:
                return False
        return not self.any


# ================================================================ inbound rules

class Action:
    __slots__ = ("type", "url", "append_query_string", "redirect_status", "status_code",
                 "sub_status_code", "status_reason", "status_description")

    def __init__(self, type: str, url: Template | None = None, append_query_string: bool = True,
                 redirect_status: int = 301, status_code: int = 200, sub_status_code: int = 0,
                 status_reason: Template | None = None, status_description: Template | None = None):
        self.type = type
        self.url = url
        self.append_query_string = append_query_string
        self.redirect_status = redirect_status
        self.status_code = status_code
        self.sub_status_code = sub_status_code
        self.status_reason = status_reason
        self.status_description = status_description


class Rule:
    __slots__ = ("name", "pattern", "negate", "conditions", "action", "stop", "sets", "secret")

    def __init__(self, name: str, pattern: Pattern, negate: bool, conditions: Conditions,
                 action: Action, stop: bool, sets: tuple = ()):
        self.name = name
        self.pattern = pattern
        self.negate = negate
        self.conditions = conditions
        self.action = action
        self.stop = stop
        self.sets = sets   # (variable name, Template, replace) the rule sets when it applies
        #: It reads a credential (Cookie, Authorization): a trace masks what it expands.
        self.secret = any(_reads_secret(t) for t in (
            *(c.input for c in conditions.items), action.url, action.status_reason,
            action.status_description, *(s[1] for s in sets)))


class Result:
    """What the inbound rules decided. `kind` None (nothing to do), Rewrite (`path` and `query`:
    the new URL; `proxy` the absolute URL when it names another server), Redirect (`location`,
    `status`), CustomResponse (`status`, `substatus`, `reason`, `description`) or AbortRequest.
    `rules` names the rules that matched, in order."""

    __slots__ = ("kind", "path", "query", "proxy", "location", "status", "substatus", "reason",
                 "description", "rules", "variables")

    def __init__(self):
        self.kind = NONE
        self.path = ""
        self.query = ""
        self.proxy = ""
        self.location = ""
        self.status = 0
        self.substatus = 0
        self.reason = ""
        self.description = ""
        self.rules: list[str] = []
        #: (name, value, replace) of the server variables the applied rules set, in order.
        self.variables: list[tuple[str, str, bool]] = []

    def __repr__(self) -> str:
        return (f"Result({self.kind}, path={self.path!r}, query={self.query!r}, proxy={self.proxy!r}, "
                f"location={self.location!r}, status={self.status}, rules={self.rules})")


#: Variables whose values the front's response cache key already holds (site, scheme, host,
#: path; it caches no request with a query string) or that depend only on the URL: rules using
#: only these give the same answer to every request the front would serve from one cache entry.
CACHE_SAFE = frozenset({"URL", "PATH_INFO", "QUERY_STRING", "HTTP_HOST", "HTTPS", "REQUEST_URI",
                        "UNENCODED_URL", "HTTP_URL", "CACHE_URL", "SERVER_PORT", "SERVER_NAME",
                        "SERVER_PORT_SECURE", "REQUEST_SCHEME", "REQUEST_FILENAME", "INSTANCE_ID",
                        "APPL_PHYSICAL_PATH", "APPL_MD_PATH", "SCRIPT_NAME", "SERVER_ADDR"})


class RuleSet:
    """Compiled inbound rules with their rewrite maps. `varies`: some rule looks at a variable
    outside CACHE_SAFE (a header, the client's address...), so its answer is per request."""

    __slots__ = ("rules", "maps", "varies")

    def __init__(self, rules: list[Rule], maps: dict[str, RewriteMap]):
        self.rules = rules
        self.maps = maps
        used: set[str] = set()
        for rule in rules:
            for cond in rule.conditions.items:
                used |= cond.input.variables()
            for t in (rule.action.url, rule.action.status_reason, rule.action.status_description,
                      *(s[1] for s in rule.sets)):
                if t is not None:
                    used |= t.variables()
        self.varies = bool(used - CACHE_SAFE)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def evaluate(self, path: str, query: str, variable: Callable[[str], str], fs=None,
                 trace: Callable | None = None, scope: str = "Distributed") -> Result:
        """Run the rules over a request. `path` is the URL path with its leading "/" (decoded, as
        the front cooked it), `query` the raw query string. `variable(NAME)` returns a server
        variable; {URL}, {PATH_INFO} and {QUERY_STRING} follow the rewrites made so far, the
        others are the request's. Raises RuleTimeout. `trace(opcode, data)`, when given, hears
        URL Rewrite's Failed Request Tracing events (`scope`: "Distributed" or "Global")."""
        if trace is None:
            return self._evaluate(path, query, variable, fs, None, scope)
        trace("URL_REWRITE_START", (("RequestURL", path[:_TRACED_TEXT]), ("Scope", scope),
                                    ("Type", "Inbound")))
        result = self._evaluate(path, query, variable, fs, trace, scope)
        final = result.path if result.kind == REWRITE and not result.proxy else path
        trace("URL_REWRITE_END", (("RequestURL", final[:_TRACED_TEXT]),))
        return result

    def _evaluate(self, path: str, query: str, variable, fs, trace, scope: str) -> Result:
        result = Result()
        current = path
        state = {"URL": path, "QUERY_STRING": query}

        def lookup(name: str) -> str:
            if name in ("URL", "PATH_INFO"):
                return state["URL"]
            if name == "QUERY_STRING":
                return state["QUERY_STRING"]
            if name == "REQUEST_FILENAME" and fs is not None:
                return fs.filename(state["URL"])
            return variable(name)

        env = Env(lookup, self.maps)
        text = current[1:] if current.startswith("/") else current
        for rule in self.rules:
            caps = rule.pattern.match(text)
            if rule.negate:
                caps = None if caps is not None else ()
            if trace is not None:
                _trace_rule_start(trace, rule, text, caps is not None, scope)
            if caps is None:
                if trace is not None:
                    _trace_rule_end(trace, rule, text, scope, False, False)
                continue
            env.rule = caps
            if not rule.conditions.evaluate(env, fs, trace, rule.secret):
                if trace is not None:
                    _trace_rule_end(trace, rule, text, scope, False, False)
                continue
            result.rules.append(rule.name)
            for name, template, replace in rule.sets:
                value = _one_line(template.expand(env))
                result.variables.append((name, value, replace))
                if trace is not None:
                    shown = MASK if name in MASKED_VARIABLES else _traced(rule, value)
                    trace("SET_SERVER_VARIABLE", (("VariableName", name), ("VariableValue", shown),
                                                  ("Replace", _bool(replace))))
            action = rule.action
            kind = action.type
            if kind == NONE:
                if trace is not None:
                    _trace_rule_end(trace, rule, text, scope, True, rule.stop)
                if rule.stop:
                    break
                continue
            if kind == ABORT:
                result.kind = ABORT
                if trace is not None:
                    trace("ABORT_REQUEST_ACTION", ())
                    _trace_rule_end(trace, rule, text, scope, True, True)
                return result
            if kind == CUSTOM:
                result.kind = CUSTOM
                result.status = action.status_code
                result.substatus = action.sub_status_code
                result.reason = _one_line(action.status_reason.expand(env)) if action.status_reason else ""
                result.description = action.status_description.expand(env) if action.status_description else ""
                if trace is not None:
                    trace("CUSTOM_RESPONSE_ACTION", (
                        ("StatusCode", result.status), ("SubStatusCode", result.substatus),
                        ("StatusReason", _traced(rule, result.reason)),
                        ("StatusDescription", _traced(rule, result.description))))
                    _trace_rule_end(trace, rule, text, scope, True, True)
                return result
            url = action.url.expand(env)
            new_path, sep, new_query = url.partition("?")
            if action.append_query_string and state["QUERY_STRING"]:
                new_query = new_query + "&" + state["QUERY_STRING"] if sep else state["QUERY_STRING"]
                sep = "?"
            if kind == REDIRECT:
                result.kind = REDIRECT
                result.status = action.redirect_status
                if not _is_absolute(new_path) and not new_path.startswith("/"):
                    # "{R:1}/" is relative to the rules' base, the site root (as a Rewrite's url
                    # is), not to the request's directory, which a browser would resolve it to.
                    new_path = "/" + new_path
                result.location = safe_location(new_path + (sep + new_query if sep else ""))
                if trace is not None:
                    trace("REDIRECT_ACTION", (
                        ("Substitution", action.url.source),
                        ("RedirectURL", result.location[:_TRACED_TEXT]),
                        ("AppendQueryString", _bool(action.append_query_string)),
                        ("StatusCode", result.status)))
                    _trace_rule_end(trace, rule, text, scope, True, True)
                return result
            # Rewrite
            if _is_absolute(new_path):
                result.kind = REWRITE
                result.proxy = safe_proxy_url(new_path + ("?" + new_query if new_query else ""))
                result.path, result.query = current, state["QUERY_STRING"]
                if trace is not None:
                    _trace_rewrite(trace, rule, result.proxy)
                    _trace_rule_end(trace, rule, text, scope, True, True)
                return result
            if not new_path.startswith("/"):
                new_path = "/" + new_path
            if trace is not None:
                _trace_rewrite(trace, rule, new_path + ("?" + new_query if new_query else ""))
                _trace_rule_end(trace, rule, text, scope, True, rule.stop)
            current = new_path
            text = current[1:]
            state["URL"] = new_path
            state["QUERY_STRING"] = new_query
            result.kind = REWRITE
            result.path, result.query = new_path, new_query
            if rule.stop:
                break
        return result


def _trace_rule_start(trace, rule: Rule, text: str, matched: bool, scope: str) -> None:
    url = text[:_TRACED_TEXT]
    trace("RULE_EVALUATION_START", (("RuleName", rule.name), ("RequestURL", url),
                                    ("Scope", scope), ("Type", "Inbound")))
    trace("PATTERN_MATCH", (("Pattern", rule.pattern.source), ("Input", url),
                            ("Negate", _bool(rule.negate)), ("Matched", _bool(matched))))


def _trace_rule_end(trace, rule: Rule, text: str, scope: str, succeeded: bool, stop: bool) -> None:
    trace("RULE_EVALUATION_END", (("RuleName", rule.name), ("RequestURL", text[:_TRACED_TEXT]),
                                  ("Scope", scope), ("Type", "Inbound"),
                                  ("Succeeded", _bool(succeeded)), ("StopProcessing", _bool(stop))))


def _trace_rewrite(trace, rule: Rule, url: str) -> None:
    action = rule.action
    trace("REWRITE_ACTION", (("Substitution", action.url.source),
                             ("RewriteURL", url[:_TRACED_TEXT]),
                             ("AppendQueryString", _bool(action.append_query_string)),
                             ("LogRewrittenURL", "false")))


def header_name(variable: str) -> str:
    """HTTP_X_FORWARDED_PROTO / RESPONSE_X_FORWARDED_PROTO -> "X-Forwarded-Proto"."""
    rest = variable.split("_", 1)[1]
    return "-".join(part.capitalize() for part in rest.split("_"))


def set_headers(headers: list, variables, prefix: str = "HTTP_") -> list:
    """`headers` ((name, value) bytes pairs) with the request headers that `variables`
    ((name, value, replace) from Result.variables) set."""
    for name, value, replace in variables:
        if not name.startswith(prefix):
            continue
        header = header_name(name).encode("latin-1")
        lower = header.lower()
        present = any(n.lower() == lower for n, _v in headers)
        if present and not replace:
            continue
        headers = [(n, v) for n, v in headers if n.lower() != lower]
        headers.append((header, value.encode("latin-1", "replace")))
    return headers


def _is_absolute(url: str) -> bool:
    head = url[:8].lower()
    return head.startswith("http://") or head.startswith("https://")


def _one_line(text: str) -> str:
    """`text` without control characters: a value that goes into a header line."""
    return "".join(ch for ch in text if ch >= " " and ch != "\x7f")


safe_header = _one_line


#: What a Location or proxy URL may carry as is; everything else is percent-encoded (UTF-8), so a
#: back-reference holding CR LF, a space or a quote can never split or bend the response.
_SAFE = "/:?#[]@!$&'()*+,;=%-._~"
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?|\[[0-9A-Fa-f:.]+\])"
                   r"(?::[0-9]{1,5})?$")


class UnsafeUrl(RuleTimeout):
    """An expanded URL that would point somewhere its template did not say (a rule execution
    error, like a timeout)."""


def safe_location(url: str) -> str:
    """A redirect target made safe to put in a Location header: controls, spaces and non-ASCII
    percent-encoded; a relative target never becomes protocol-relative ("//evil" or "/\\evil"
    collapse to one "/"); an absolute target must name a plain host[:port]."""
    url = quote(url, safe=_SAFE)
    if _is_absolute(url):
        _check_authority(url)
        return url
    if url.startswith("/"):
        return "/" + url.lstrip("/")
    return url


def safe_query(query: str) -> str:
    """A rewritten query string as a request could carry it: controls, spaces and non-ASCII (a
    decoded back-reference's) percent-encoded, everything else as the rule wrote it."""
    return quote(query, safe=_SAFE + "{}|^`\"<>\\")


def safe_proxy_url(url: str) -> str:
    url = quote(url, safe=_SAFE)
    _check_authority(url)
    return url


def _check_authority(url: str) -> None:
    rest = url.split("://", 1)[1]
    end = len(rest)
    for stop in "/?#":
        i = rest.find(stop)
        if 0 <= i < end:
            end = i
    authority = rest[:end]
    if not _HOST.match(authority):
        raise UnsafeUrl(f"the rule's URL names no plain host[:port]: {authority[:80]!r}")
    _host, colon, port = authority.rpartition("]")[2].rpartition(":")
    if colon and port and int(port) > 65535:
        raise UnsafeUrl(f"port {port} out of range")


# ================================================================ outbound rules

#: IIS's filterByTags: the tag names and the attributes holding a URL.
TAG_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "a": ("href",), "area": ("href",), "base": ("href",), "form": ("action",),
    "frame": ("src", "longdesc"), "head": ("profile",), "iframe": ("src", "longdesc"),
    "img": ("src", "longdesc", "usemap"), "input": ("src", "usemap"), "link": ("href",),
    "script": ("src",),
}
TAG_NAMES = {"a": "A", "area": "Area", "base": "Base", "form": "Form", "frame": "Frame",
             "head": "Head", "iframe": "IFrame", "img": "Img", "input": "Input", "link": "Link",
             "script": "Script"}


class OutboundRule:
    __slots__ = ("name", "variable", "tags", "pattern", "negate", "conditions", "value",
                 "rewrite", "stop", "precondition")

    def __init__(self, name: str, variable: str, tags: frozenset[str], pattern: Pattern,
                 negate: bool, conditions: Conditions, value: Template | None, rewrite: bool,
                 stop: bool, precondition: "Precondition | None"):
        self.name = name
        self.variable = variable      # "RESPONSE_LOCATION", or "" for a tag filter
        self.tags = tags              # lower-case tag names for HTML rules
        self.pattern = pattern
        self.negate = negate
        self.conditions = conditions
        self.value = value
        self.rewrite = rewrite
        self.stop = stop
        self.precondition = precondition


class Precondition:
    __slots__ = ("name", "conditions")

    def __init__(self, name: str, conditions: Conditions):
        self.name = name
        self.conditions = conditions


class OutboundSet:
    """Compiled outbound rules. For one response: `select(variable)` gives the rules whose
    preconditions hold; `rewrite_headers` and `rewrite_attribute` apply them."""

    __slots__ = ("rules", "maps")

    def __init__(self, rules: list[OutboundRule], maps: dict[str, RewriteMap]):
        self.rules = rules
        self.maps = maps

    def __bool__(self) -> bool:
        return bool(self.rules)

    def select(self, variable: Callable[[str], str]) -> list[OutboundRule]:
        env = Env(variable, self.maps)
        seen: dict[str, bool] = {}
        chosen = []
        for rule in self.rules:
            pre = rule.precondition
            if pre is not None:
                ok = seen.get(pre.name)
                if ok is None:
                    ok = seen[pre.name] = pre.conditions.evaluate(env, None)
                if not ok:
                    continue
            chosen.append(rule)
        return chosen

    def rewrite_value(self, rules: list[OutboundRule], value: str,
                      variable: Callable[[str], str]) -> str | None:
        """Apply `rules` in order to one value (a header's or an attribute's); None = unchanged."""
        env = Env(variable, self.maps)
        changed = False
        for rule in rules:
            caps = rule.pattern.match(value)
            if rule.negate:
                if caps is not None:
                    continue
                caps = ()
            elif caps is None:
                continue
            env.rule = caps
            if not rule.conditions.evaluate(env, None):
                continue
            if rule.rewrite and rule.value is not None:
                value = _one_line(rule.value.expand(env))
                changed = True
            if rule.stop:
                break
        return value if changed else None


# ================================================================ compiling the config section

def compile_pattern(source: str, syntax: str, ignore_case: bool) -> Pattern:
    return Pattern(source, syntax, ignore_case)


def compile_conditions(conditions: Any, syntax: str, maps, outbound: bool = False) -> Conditions:
    if conditions is None:
        return Conditions([])
    items = []
    for c in conditions.entries:
        pattern = None
        if c.match_type == "Pattern":
            pattern = Pattern(c.pattern, syntax, c.ignore_case)
        items.append(Condition(Template(c.input, maps, outbound), c.match_type, pattern, c.negate))
    return Conditions(items, conditions.logical_grouping == "MatchAny", conditions.track_all_captures)


def compile_maps(section: Any) -> dict[str, RewriteMap]:
    return {m.name: RewriteMap(m.name, {e.key: e.value for e in m.entries}, m.default_value,
                               m.ignore_case) for m in section.rewrite_maps}


def compile_rule(rule: Any, maps, allowed: frozenset[str] | None = None) -> Rule:
    syntax = rule.pattern_syntax
    pattern = Pattern(rule.match.url, syntax, rule.match.ignore_case)
    conditions = compile_conditions(rule.conditions, syntax, maps)
    a = rule.action
    if a.type in (REWRITE, REDIRECT):
        url = Template(a.url, maps)
    else:
        url = None
    action = Action(a.type, url, a.append_query_string, REDIRECT_STATUS[a.redirect_type],
                    a.status_code, a.sub_status_code,
                    Template(a.status_reason, maps) if a.status_reason else None,
                    Template(a.status_description, maps) if a.status_description else None)
    sets = tuple((v.name.upper(), Template(v.value, maps), v.replace)
                 for v in getattr(rule, "server_variables", ()))
    if allowed is not None:
        for name, _t, _r in sets:
            if name not in allowed:
                raise RewriteConfigError(f"sets {name}, which is not in the server's "
                                         "rewrite.allowed_server_variables")
    return Rule(rule.name, pattern, rule.match.negate, conditions, action, rule.stop_processing, sets)


def compile_rules(rules: list, section: Any) -> RuleSet:
    maps = compile_maps(section)
    names = frozenset(maps)
    allowed = frozenset(v.upper() for v in getattr(section, "allowed_server_variables", ()))
    compiled = []
    for r in rules:
        if r.enabled:
            try:
                compiled.append(compile_rule(r, names, allowed))
            except RewriteConfigError as exc:
                raise RewriteConfigError(f"rule {r.name!r}: {exc}") from None
    return RuleSet(compiled, maps)


def compile_outbound(section: Any) -> OutboundSet:
    maps = compile_maps(section)
    names = frozenset(maps)
    pres = {}
    for p in section.preconditions:
        pres[p.name] = Precondition(p.name, compile_conditions(p, p.pattern_syntax, names, outbound=True))
    rules = []
    for r in section.outbound_rules:
        if not r.enabled:
            continue
        m = r.match
        tags = frozenset(t.strip().lower() for t in m.filter_by_tags.split(",") if t.strip())
        if r.precondition and r.precondition not in pres:
            raise RewriteConfigError(f"outbound rule {r.name!r} names precondition "
                                     f"{r.precondition!r}, which is not defined")
        pattern = Pattern(m.pattern, r.pattern_syntax, m.ignore_case)
        try:
            value = Template(r.action.value, names, outbound=True) if r.action.type == REWRITE else None
        except RewriteConfigError as exc:
            raise RewriteConfigError(f"outbound rule {r.name!r}: {exc}") from None
        rules.append(OutboundRule(r.name, m.server_variable.upper(), tags, pattern, m.negate,
                                  compile_conditions(r.conditions, r.pattern_syntax, names, True),
                                  value, r.action.type == REWRITE, r.stop_processing,
                                  pres.get(r.precondition) if r.precondition else None))
    return OutboundSet(rules, maps)


__all__ = ["Pattern", "Template", "RuleSet", "OutboundSet", "Result", "RuleTimeout", "UnsafeUrl",
           "RewriteConfigError", "compile_rules", "compile_outbound", "translate_ecmascript",
           "safe_location", "safe_proxy_url", "TAG_ATTRIBUTES", "MATCH_TIMEOUT", "MAX_INPUT"]
