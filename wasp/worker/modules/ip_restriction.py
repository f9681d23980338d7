"""IpRestrictionModule (iprestr.dll): allow or deny a request by its client's address or name.

BEGIN_REQUEST, before anything reads the request: the URL's effective `ip_security` section is
compiled once (wasp/worker/iprules.py, cached by the section object, which every URL of a
directory shares) and the client is checked against it. A section with no entries that allows
the unlisted (the default) costs one attribute test per request.

The client is `RequestHead.client`: the peer, or the client a `server.trusted_proxies` proxy
forwarded for (the front decides that, wasp/wire/forwarded.py). With `enable_proxy_mode` every
address of `X-Forwarded-For` is checked as well and any denial denies: a header the client wrote
itself can add denials, never take one away, so proxy mode is safe with untrusted clients; a
malformed header is 400.10 (IIS). A domain entry needs the client's name: a cached one decides at
once; otherwise the step returns an awaitable (a pending request, wasp/worker/rdns.py) that
looks the name up on a resolver thread and decides then, the event loop serving others meanwhile. A request a rule applies to is marked private, so the front's
response cache never hands a denied client what an allowed one fetched.

Denial: `deny_action` Forbidden 403.503, Unauthorized 401.503, NotFound 404.503 (.504 when a
domain entry denied); AbortRequest closes the connection without a response (ABORT with status
0: the front logs sc-status 0 with the substatus and sc-win32-status 64).
"""

from __future__ import annotations

from wasp.config.sections.ip_security import DENY_STATUS
from wasp.errors import BadRequest, HttpError
from wasp.worker.iprules import MalformedForwardedFor, RuleSet, forwarded_for
from wasp.worker.rdns import Resolver
from wasp.worker.tables import mentioned
from wasp.worker.registry import CONTINUE, FINISH, Module, Phase, register

_COMPILED_LIMIT = 1024
#: Addresses one request waits to resolve at most (the client and X-Forwarded-For's, in proxy mode).
_MAX_LOOKUPS = 16

_REASONS = {0: "AbortRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound"}


def deny(ctx, action: str, substatus: int, detail: str):
    """Answer a denied request as `action` says; the pipeline step returns what this returns."""
    status = DENY_STATUS[action]
    if status == 0:
        ctx.abort(0, substatus)
        return FINISH
    raise HttpError(detail, status=status, substatus=substatus, reason=_REASONS[status])


@register("ip_restriction", phases=(Phase.BEGIN_REQUEST,))
class IpRestrictionModule(Module):
    def setup(self, app) -> None:
        self.compiled: dict[int, tuple[object, RuleSet]] = {}
        self.resolver: Resolver | None = None
        self.needed = mentioned(app.tables, "ip_security")

    def wants(self, phase) -> bool:
        return self.needed

    def cleanup(self) -> None:
        if self.resolver is not None:
            self.resolver.close()

    def rules(self, section) -> RuleSet:
        found = self.compiled.get(id(section))
        if found is not None and found[0] is section:
            return found[1]
        if len(self.compiled) >= _COMPILED_LIMIT:
            self.compiled.clear()
        rules = RuleSet(section)
        self.compiled[id(section)] = (section, rules)  # the section is kept: its id stays its own
        return rules

    def begin_request(self, ctx):
        section = ctx.config.ip_security
        if section.allow_unlisted and not section.entries:
            return CONTINUE
        rules = self.rules(section)
        if not rules.active:
            return CONTINUE
        ctx.private = True
        if not rules.has_domains:
            return self._decide(ctx, rules, None)
        if self.resolver is None:
            self.resolver = Resolver()
        known: dict[str, list[str]] = {}
        try:
            return self._decide(ctx, rules, self._names(known))
        except _Lookup as miss:
            # A name not in the cache: the request is pending on a resolver thread (the loop
            # goes on serving others) and the check runs again once the name is known.
            return self._resolve(ctx, rules, known, miss.address)

    async def _resolve(self, ctx, rules, known, address: str):
        for _ in range(_MAX_LOOKUPS):
            known[address] = await self.resolver.resolve(address)
            try:
                return self._decide(ctx, rules, self._names(known))
            except _Lookup as miss:
                address = miss.address
        return self._decide(ctx, rules, lambda address: known.get(address, []))

    def _names(self, known: dict[str, list[str]]):
        cached = self.resolver.cached

        def names(address: str) -> list[str]:
            found = known.get(address)
            if found is None:
                found = cached(address)
                if found is None:
                    raise _Lookup(address)
            return found
        return names

    def _decide(self, ctx, rules: RuleSet, names):
        address = ctx.head.client[0]
        verdict = rules.check(address, names)
        if verdict is None and rules.proxy_mode:
            try:
                forwarded = forwarded_for(ctx.head.headers)
            except MalformedForwardedFor as exc:
                raise BadRequest(str(exc), substatus=10) from None
            for address in forwarded:
                verdict = rules.check(address, names)
                if verdict is not None:
                    break
        if ctx.freb is not None:
            ctx.freb.emit("IP_RESTRICTION_DECISION", (
                ("ModuleName", "ip_restriction"), ("RemoteAddress", address),
                ("Allowed", "true" if verdict is None else "false"),
                ("HttpSubStatus", verdict or 0),
                ("DenyAction", "" if verdict is None else rules.deny_status)))
        if verdict is None:
            return CONTINUE
        return deny(ctx, rules.deny_status, verdict, f"the client {address} is denied by ip_security")


class _Lookup(Exception):
    """The check needs a name the resolver has not cached."""

    def __init__(self, address: str):
        self.address = address
