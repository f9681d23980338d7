"""IIS UrlAuthorizationModule: the `authorization` rules of a URL decide whether its user may
make the request.

IIS's order (iis-behaviour.md §2.7): Deny rules first, from the outermost level, then Allow
rules; the first match decides; no match refuses. A rule matches when its verbs are empty or
name the method, and its users ("*" everyone, "?" anonymous, or names) or its roles name the
request's user. Refused: the anonymous user gets 401.2 with every challenge the authentication
modules offered (so a browser can ask for credentials), a known user 403 (asking again would not
help). Names, roles and verbs are compared without regard to case (IIS's; and an LDAP or PAM
store may log "BOB" on as bob, which a case-sensitive "Deny bob" would miss).

A request naming another method in X-HTTP-Method-Override, X-HTTP-Method or X-Method-Override
or a `_method` query parameter (which some frameworks obey) must be allowed under every method
it names. A `_method` form field in a POST body cannot be seen before the handler: deny POST
too where an app tunnels that way.

The rules of a URL are compiled once per effective section (cached with it); a URL whose rules
are IIS's default (Allow "*") costs one identity check. On any other URL the response depends
on who asked, so it is private (never cached by the front).
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from wasp.errors import Forbidden
from wasp.worker.auth import roles_of
from wasp.worker.authn import unauthorized
from wasp.worker.registry import CONTINUE, Module, Phase, register

OVERRIDES = (b"x-http-method-override", b"x-http-method", b"x-method-override")


def _names(text: str) -> frozenset[str]:
    return frozenset(n.strip().casefold() for n in text.split(",") if n.strip())


def tunnelled(head) -> set[str]:
    """The request's method and every method it tunnels (override headers, each part of a
    comma list, a `_method` query parameter), upper-cased as frameworks do."""
    methods = {head.method.upper()}
    values = [value for name, value in head.headers if name.lower() in OVERRIDES]
    query = head.query
    if query and b"_method=" in query.lower():
        for pair in query.split(b"&"):
            key, _, value = pair.partition(b"=")
            if key.lower() == b"_method":
                values.append(unquote_to_bytes(value.replace(b"+", b" ")))
    for value in values:
        for part in value.decode("latin-1").split(","):
            if part.strip():
                methods.add(part.strip().upper())
    return methods


class Compiled:
    __slots__ = ("denies", "allows", "open")

    def __init__(self, rules):
        compiled = [(rule.access_type, _names(rule.users), _names(rule.roles),
                     frozenset(v.upper() for v in _names(rule.verbs))) for rule in rules]
        self.denies = [r[1:] for r in compiled if r[0] == "Deny"]
        self.allows = [r[1:] for r in compiled if r[0] == "Allow"]
        # IIS's default: everyone may do anything.
        self.open = not self.denies and any("*" in users and not verbs for users, _r, verbs in self.allows)

    def allowed(self, user: str, roles: frozenset[str], method: str) -> bool:
        for rules, verdict in ((self.denies, False), (self.allows, True)):
            for users, rule_roles, verbs in rules:
                if verbs and method not in verbs:
                    continue
                if "*" in users or (not user and "?" in users) or (user and user in users) or \
                        (user and rule_roles and not rule_roles.isdisjoint(roles)):
                    return verdict
        return False


@register("url_authorization", phases=(Phase.AUTHORIZE_REQUEST,))
class UrlAuthorizationModule(Module):
    def setup(self, app) -> None:
        self.compiled: dict[int, tuple] = {}
        self.needed = getattr(app, "urls", None) is not None or \
            not self._compile(app.sections.authorization).open

    def wants(self, phase) -> bool:
        return self.needed

    def _compile(self, section) -> Compiled:
        entry = self.compiled.get(id(section))
        if entry is None or entry[0] is not section:
            if len(self.compiled) >= 4096:
                self.compiled.clear()
            entry = self.compiled[id(section)] = (section, Compiled(section.rules))
        return entry[1]

    def authorize_request(self, ctx):
        rules = self._compile(ctx.config.authorization)
        if rules.open:
            return CONTINUE
        ctx.private = True
        user = (ctx.user or "").casefold()
        roles = frozenset(r.casefold() for r in roles_of(ctx)) if user else frozenset()
        methods = tunnelled(ctx.head)
        allowed = all(rules.allowed(user, roles, method) for method in methods)
        if ctx.freb is not None:
            ctx.freb.emit("AUTHORIZATION_DECISION", (
                ("ModuleName", "url_authorization"), ("UserName", ctx.user or ""),
                ("Roles", ",".join(sorted(roles))), ("Verbs", ",".join(sorted(methods))),
                ("Allowed", "true" if allowed else "false")))
        if allowed:
            return CONTINUE
        if not user:
            raise unauthorized(ctx, 2, "access denied: authorization rules refuse the anonymous user")
        raise Forbidden("access denied: authorization rules refuse this user")
