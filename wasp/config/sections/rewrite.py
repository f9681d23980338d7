"""IIS URL Rewrite 2.x: system.webServer/rewrite (docs/rewrite.md).

`rules` are the distributed rules (IIS's `<rules>` in a site's, application's or directory's
web.config; here any level of wasp.toml, a `[[locations]]` path, or a web.toml), run by the
worker's `rewrite` module at BEGIN_REQUEST. `global_rules` (IIS's `<globalRules>` in
applicationHost.config) are the server's only: the front runs them before it routes a request to
an application, so they may send it to another application or pool. `rewrite_maps`,
`outbound_rules` and their `preconditions` are IIS's too; names are IIS's attributes in
snake_case. Patterns and templates are compiled by wasp/wire/rewrite.py when the config is
decoded, so a pattern Python cannot express the ECMAScript way, an unknown server variable or a
map that does not exist is an error with its dotted key (or a 500.19 from a web.toml).
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct, field

from wasp.config.model import doc
from wasp.config.sections import Section, check, collection, section
from wasp.wire import rewrite as engine

PatternSyntax = Literal["ECMAScript", "Wildcard", "ExactMatch"]
NonEmpty = Annotated[str, Meta(min_length=1)]


class RewriteMatch(Struct, forbid_unknown_fields=True, kw_only=True):
    """An inbound rule's `<match>`."""

    url: Annotated[str, doc(
        "The pattern, matched against the URL path without its leading \"/\" (decoded, without "
        "the query string), relative to the site root."
    )]
    ignore_case: Annotated[bool, doc("Match without regard to case (IIS's default).")] = True
    negate: Annotated[bool, doc("The rule applies when the URL does *not* match (no {R:n} then).")] = False


class RewriteCondition(Struct, forbid_unknown_fields=True, kw_only=True):
    """One `<conditions><add>`."""

    input: Annotated[NonEmpty, doc(
        "What is tested: a template such as \"{HTTP_HOST}\", \"{REQUEST_FILENAME}\" or \"{R:1}\"."
    )]
    match_type: Annotated[Literal["Pattern", "IsFile", "IsDirectory"], doc(
        "Pattern: `pattern` must match the input; IsFile / IsDirectory: the input (a physical "
        "path, usually {REQUEST_FILENAME}) must be a regular file / a directory."
    )] = "Pattern"
    pattern: Annotated[str, doc("The pattern, in the rule's pattern_syntax.")] = ""
    ignore_case: Annotated[bool, doc("Match without regard to case.")] = True
    negate: Annotated[bool, doc("The condition holds when the test fails.")] = False


class RewriteConditions(Struct, forbid_unknown_fields=True, kw_only=True):
    """A rule's `<conditions>`."""

    logical_grouping: Annotated[Literal["MatchAll", "MatchAny"], doc(
        "MatchAll: every condition must hold; MatchAny: one is enough."
    )] = "MatchAll"
    track_all_captures: Annotated[bool, doc(
        "{C:n} numbers the captures of every matched condition in order instead of only the "
        "last one's."
    )] = False
    entries: Annotated[list[RewriteCondition], doc("The conditions in order.")] = field(default_factory=list)


class RewriteAction(Struct, forbid_unknown_fields=True, kw_only=True):
    """An inbound rule's `<action>`."""

    type: Annotated[Literal["None", "Rewrite", "Redirect", "CustomResponse", "AbortRequest"], doc(
        "Rewrite: serve `url` instead (an absolute http(s):// URL is a reverse proxy); Redirect: "
        "answer with a redirect to `url`; CustomResponse: answer `status_code`; AbortRequest: "
        "close the connection without a response; None: nothing (later rules still run)."
    )] = "None"
    url: Annotated[str, doc("The new URL, a template ({R:1}, {C:1}, {HTTP_HOST}, {Map:{R:1}}...).")] = ""
    append_query_string: Annotated[bool, doc(
        "Keep the request's query string (after the url's own, joined by \"&\")."
    )] = True
    redirect_type: Annotated[Literal["Permanent", "Found", "SeeOther", "Temporary"], doc(
        "The redirect's status: 301, 302, 303 or 307."
    )] = "Permanent"
    status_code: Annotated[int, Meta(ge=200, le=999, description="CustomResponse's status.")] = 200
    sub_status_code: Annotated[int, Meta(ge=0, le=999, description="CustomResponse's IIS substatus (logged).")] = 0
    status_reason: Annotated[str, doc("CustomResponse's reason phrase.")] = ""
    status_description: Annotated[str, doc("CustomResponse's body text.")] = ""
    log_rewritten_url: Annotated[bool, doc(
        "IIS logs the rewritten URL instead of the original; wasp always logs the original "
        "(accepted for compatibility)."
    )] = False


VariableName = Annotated[str, Meta(pattern=r"^(HTTP|RESPONSE)_[A-Za-z0-9_]+$")]


class ServerVariable(Struct, forbid_unknown_fields=True, kw_only=True):
    """One `<serverVariables><set>` of a rule."""

    name: Annotated[VariableName, doc(
        "HTTP_<NAME> sets request header <Name> (the app, the handler and the reverse proxy see "
        "it; \"_\" for \"-\"), RESPONSE_<NAME> adds response header <Name>. It must be in the "
        "server's `allowed_server_variables`, as IIS's allowedServerVariables."
    )]
    value: Annotated[str, doc("A template ({R:1}, {HTTPS}, {HTTP_HOST}...).")]
    replace: Annotated[bool, doc("Replace a value already there; false: keep it.")] = True


class RewriteRule(Struct, forbid_unknown_fields=True, kw_only=True):
    """One inbound `<rule>`."""

    name: Annotated[NonEmpty, doc("The rule's unique name.")]
    enabled: Annotated[bool, doc("false: the rule is skipped.")] = True
    pattern_syntax: Annotated[PatternSyntax, doc(
        "ECMAScript (regular expressions), Wildcard (`*` captures, `?` one character) or ExactMatch."
    )] = "ECMAScript"
    stop_processing: Annotated[bool, doc("When the rule applies, no later rule runs.")] = False
    match: Annotated[RewriteMatch, doc("`{ url = \"pattern\", ignore_case, negate }`.")]
    conditions: Annotated[RewriteConditions, doc(
        "`{ logical_grouping, track_all_captures, entries = [ { input, match_type, pattern, negate } ] }`."
    )] = field(default_factory=RewriteConditions)
    action: Annotated[RewriteAction, doc("What the rule does when it applies.")] = field(default_factory=RewriteAction)
    server_variables: Annotated[list[ServerVariable], doc(
        "Variables the rule sets when it applies (whatever its action): `{ name, value, replace }`."
    )] = field(default_factory=list)


class RewriteMapEntry(Struct, forbid_unknown_fields=True, kw_only=True):
    key: Annotated[str, doc("The looked-up value.")]
    value: Annotated[str, doc("What {MapName:key} gives.")]


class RewriteMap(Struct, forbid_unknown_fields=True, kw_only=True):
    """One `<rewriteMap>`."""

    name: Annotated[Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$")],
                    doc("Its name, as templates use it: {Name:...}.")]
    default_value: Annotated[str, doc("What a key not in the map gives.")] = ""
    ignore_case: Annotated[bool, doc("Keys compared without regard to case.")] = True
    entries: Annotated[list[RewriteMapEntry], doc("`{ key, value }` pairs.")] = field(default_factory=list)


class OutboundMatch(Struct, forbid_unknown_fields=True, kw_only=True):
    """An outbound rule's `<match>`: a response header, or URLs in HTML tags."""

    server_variable: Annotated[str, doc(
        "A response header as IIS names it: \"RESPONSE_Location\" (dashes as underscores). "
        "Empty: the rule rewrites HTML (`filter_by_tags`)."
    )] = ""
    filter_by_tags: Annotated[str, doc(
        "Comma-separated tags whose URL attributes are rewritten: A, Area, Base, Form, Frame, "
        "Head, IFrame, Img, Input, Link, Script."
    )] = ""
    pattern: Annotated[str, doc("The pattern the value must match.")] = ""
    ignore_case: Annotated[bool, doc("Match without regard to case.")] = True
    negate: Annotated[bool, doc("The rule applies when the value does not match.")] = False


class OutboundAction(Struct, forbid_unknown_fields=True, kw_only=True):
    type: Annotated[Literal["Rewrite", "None"], doc("Rewrite: replace the value with `value`.")] = "None"
    value: Annotated[str, doc("The new value, a template ({R:1}, {HTTP_HOST}...).")] = ""


class OutboundRule(Struct, forbid_unknown_fields=True, kw_only=True):
    """One `<outboundRules><rule>`."""

    name: Annotated[NonEmpty, doc("The rule's unique name.")]
    enabled: Annotated[bool, doc("false: skipped.")] = True
    pattern_syntax: Annotated[PatternSyntax, doc("As an inbound rule's.")] = "ECMAScript"
    stop_processing: Annotated[bool, doc("When it applies to a value, no later rule rewrites that value.")] = False
    precondition: Annotated[str, doc("The name of a `preconditions` entry the response must meet.")] = ""
    match: Annotated[OutboundMatch, doc("What is rewritten.")]
    conditions: Annotated[RewriteConditions, doc("As an inbound rule's.")] = field(default_factory=RewriteConditions)
    action: Annotated[OutboundAction, doc("`{ type = \"Rewrite\", value = \"...\" }`.")] = \
        field(default_factory=OutboundAction)


class PreconditionEntry(Struct, forbid_unknown_fields=True, kw_only=True):
    input: Annotated[NonEmpty, doc("A template, usually \"{RESPONSE_CONTENT_TYPE}\".")]
    pattern: Annotated[str, doc("The pattern.")] = ""
    ignore_case: Annotated[bool, doc("Match without regard to case.")] = True
    negate: Annotated[bool, doc("Holds when the pattern does not match.")] = False
    match_type: Literal["Pattern"] = "Pattern"


class Precondition(Struct, forbid_unknown_fields=True, kw_only=True):
    """One `<preConditions><preCondition>`."""

    name: Annotated[NonEmpty, doc("The name outbound rules refer to.")]
    logical_grouping: Annotated[Literal["MatchAll", "MatchAny"], doc("As conditions'.")] = "MatchAll"
    pattern_syntax: Annotated[PatternSyntax, doc("The syntax of its patterns.")] = "ECMAScript"
    track_all_captures: bool = False
    entries: Annotated[list[PreconditionEntry], doc("`{ input, pattern, negate }` entries.")] = \
        field(default_factory=list)


@section("rewrite", override_mode_default="Allow")
class Rewrite(Section):
    """IIS URL Rewrite (system.webServer/rewrite)."""

    rules: Annotated[list[RewriteRule], collection(key="name"), doc(
        "Inbound rules, run by the worker at BEGIN_REQUEST in order (inherited ones first)."
    )] = field(default_factory=list)
    global_rules: Annotated[list[RewriteRule], collection(key="name"), doc(
        "Server level only (`[rewrite]`): run by the front before routing, for every site."
    )] = field(default_factory=list)
    rewrite_maps: Annotated[list[RewriteMap], collection(key="name"), doc(
        "Maps templates look up: {Name:key}."
    )] = field(default_factory=list)
    outbound_rules: Annotated[list[OutboundRule], collection(key="name"), doc(
        "Rules rewriting response headers and URLs in HTML responses."
    )] = field(default_factory=list)
    preconditions: Annotated[list[Precondition], collection(key="name"), doc(
        "IIS's outboundRules/preConditions: response tests an outbound rule can require."
    )] = field(default_factory=list)
    allowed_server_variables: Annotated[list[VariableName], doc(
        "Server level only: the variables rules may set (IIS's allowedServerVariables, locked "
        "in applicationHost.config), e.g. [\"HTTP_X_FORWARDED_PROTO\"]."
    )] = field(default_factory=list)


# ---- checks: every pattern and template compiles, with its dotted key ----

def _compile(add, path: str, fn) -> None:
    try:
        fn()
    except engine.RewriteConfigError as exc:
        add(path, str(exc))


def _check_conditions(conds, syntax: str, path: str, add, outbound: bool) -> None:
    for i, c in enumerate(conds.entries):
        at = f"{path}.entries[{i}]"
        _compile(add, f"{at}.input", lambda c=c: engine.Template(c.input, None, outbound))
        if c.match_type == "Pattern":
            _compile(add, f"{at}.pattern", lambda c=c: engine.Pattern(c.pattern, syntax, c.ignore_case))
        elif c.pattern:
            add(f"{at}.pattern", f"match_type {c.match_type} takes no pattern")


@check(RewriteRule)
def _check_rule(rule: RewriteRule, path: str, add) -> None:
    _compile(add, f"{path}.match.url",
             lambda: engine.Pattern(rule.match.url, rule.pattern_syntax, rule.match.ignore_case))
    _check_conditions(rule.conditions, rule.pattern_syntax, f"{path}.conditions", add, False)
    a = rule.action
    if a.type in ("Rewrite", "Redirect"):
        if not a.url:
            add(f"{path}.action.url", f"a {a.type} action needs a url")
        _compile(add, f"{path}.action.url", lambda: engine.Template(a.url))
    for i, var in enumerate(rule.server_variables):
        _compile(add, f"{path}.server_variables[{i}].value", lambda var=var: engine.Template(var.value))
    for key in ("status_reason", "status_description"):
        text = getattr(a, key)
        if text:
            _compile(add, f"{path}.action.{key}", lambda text=text: engine.Template(text))
    if "global_rules[" in path and not path.startswith("rewrite."):
        add(path, "global_rules belong to the server only: [rewrite] global_rules at the top level")


@check(Rewrite, "allowed_server_variables")
def _check_allowed(value, path: str, add) -> None:
    if not path.startswith("rewrite."):
        add(path, "allowed_server_variables belong to the server only: [rewrite] at the top level")


@check(OutboundRule)
def _check_outbound(rule: OutboundRule, path: str, add) -> None:
    m = rule.match
    if bool(m.server_variable) == bool(m.filter_by_tags):
        add(f"{path}.match", "an outbound rule has either server_variable or filter_by_tags")
    if m.server_variable and not m.server_variable.upper().startswith("RESPONSE_"):
        add(f"{path}.match.server_variable",
            "wasp rewrites response headers only: \"RESPONSE_<Header_Name>\"")
    for tag in (t.strip() for t in m.filter_by_tags.split(",")):
        if tag and tag.lower() not in engine.TAG_ATTRIBUTES:
            add(f"{path}.match.filter_by_tags", f"unknown tag {tag!r} (one of "
                                                f"{', '.join(engine.TAG_NAMES.values())})")
    _compile(add, f"{path}.match.pattern",
             lambda: engine.Pattern(m.pattern, rule.pattern_syntax, m.ignore_case))
    _check_conditions(rule.conditions, rule.pattern_syntax, f"{path}.conditions", add, True)
    if rule.action.type == "Rewrite":
        _compile(add, f"{path}.action.value", lambda: engine.Template(rule.action.value, None, True))


@check(Precondition)
def _check_precondition(pre: Precondition, path: str, add) -> None:
    for i, e in enumerate(pre.entries):
        at = f"{path}.entries[{i}]"
        _compile(add, f"{at}.input", lambda e=e: engine.Template(e.input, None, True))
        _compile(add, f"{at}.pattern", lambda e=e: engine.Pattern(e.pattern, pre.pattern_syntax, e.ignore_case))


def compile_section(value: Rewrite):
    """(inbound RuleSet, OutboundSet) of an effective section; RewriteConfigError for what only
    the merged section can show (a map or precondition a rule names that no level defines)."""
    return engine.compile_rules(value.rules, value), engine.compile_outbound(value)


def check_effective(value: Rewrite, path: str, add) -> None:
    """The loader's check of an application's merged section (`wasp validate`)."""
    if not (value.rules or value.outbound_rules):
        return
    try:
        compile_section(value)
    except engine.RewriteConfigError as exc:
        add(path, str(exc))


def check_global(value: Rewrite, path: str, add) -> None:
    if not value.global_rules:
        return
    try:
        compile_global(value)
    except engine.RewriteConfigError as exc:
        add(path, str(exc))


def compile_global(value: Rewrite):
    return engine.compile_rules(value.global_rules, value)
