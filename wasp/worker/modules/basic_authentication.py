"""IIS BasicAuthenticationModule (RFC 7617) against an htpasswd file, PAM or LDAP.

For a URL whose effective `basic_authentication` is enabled it offers its challenge
(`Basic realm="...", charset="UTF-8"`) and, when the request carries `Authorization: Basic`,
checks it: the user is set (`ctx.set_user(name, "Basic")`) or the request fails with 401.1 and
every challenge. A request without Basic credentials is left to the other modules (anonymous,
Digest, ...); nobody producing a user is the core's 401.2.

Checks cost: bcrypt ~50-100 ms, a PAM conversation, two LDAP binds. So:
- a verified header is remembered (TokenCache, IIS's TokenCacheModule, `user_token_ttl`),
  keyed by an HMAC of the whole header and forgotten when the htpasswd/htgroup file changes;
- a miss is checked on a small thread pool: the step returns an awaitable and the pipeline
  carries on when it resolves (IIS's RQ_NOTIFICATION_PENDING), so the event loop never waits
  on a password hash;
- failed logons are counted per client address (FailureLimiter): past `max_failed_logons`
  within `failed_logon_window`, logons from that address get 401.1 without being checked.

`default_logon_domain` (IIS's defaultLogonDomain): a user name typed without a domain is checked
and logged on as `user@domain` (`qualified`); one typed with a domain is kept.

A URL with Basic enabled is private: its responses depend on who asked, so the front never
caches them.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from wasp.worker.auth import host_of, set_roles
from wasp.worker.auth.credentials import (FailureLimiter, Malformed, TokenCache, authorization,
                                          parse_basic, scheme_of)
from wasp.worker.auth.digest import quote
from wasp.worker.auth.providers import store_for, store_key
from wasp.worker.authn import BASIC, add_challenge, unauthorized
from wasp.worker.registry import CONTINUE, Module, Phase, register

#: Logons checked at once per worker; more wait their turn (without holding the loop).
CHECK_THREADS = 4


@register("basic_authentication", phases=(Phase.AUTHENTICATE_REQUEST,))
class BasicAuthenticationModule(Module):
    def setup(self, app) -> None:
        # Out of the pipeline of an application that never enables it (no URL of it can:
        # per-URL configuration, locations or web.toml, keeps it in).
        self.needed = getattr(app, "urls", None) is not None or app.sections.basic_authentication.enabled
        self.stores: dict[tuple, object] = {}
        self.limiters: dict[tuple, FailureLimiter] = {}
        self.cache = TokenCache()
        self.executor: ThreadPoolExecutor | None = None

    def cleanup(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)

    def wants(self, phase) -> bool:
        return self.needed

    def authenticate_request(self, ctx):
        section = ctx.config.basic_authentication
        if not section.enabled:
            return CONTINUE
        ctx.private = True
        add_challenge(ctx, BASIC, f"Basic realm={quote(section.realm or host_of(ctx))}, "
                                  "charset=\"UTF-8\"")
        value = authorization(ctx.head.headers)
        if value is None:
            return CONTINUE
        scheme, rest = scheme_of(value)
        if scheme != b"basic":
            return CONTINUE
        client = ctx.head.client[0]
        limiter = self._limiter(section)
        now = time.monotonic()
        if limiter.blocked(client, now):
            raise unauthorized(ctx, 1, "logon failed: too many failed logons from this address")
        store = self._store(section)
        domain = section.default_logon_domain
        # The domain is part of the key: the same header means another user under another one.
        key = self.cache.key(f"{store.id}\0{domain}" if domain else store.id, value)
        generation = store.generation()
        hit = self.cache.get(key, generation, now)
        if hit is not None:  # only a header that once parsed and verified is in the cache
            ctx.set_user(hit[0], "Basic")
            set_roles(ctx, hit[1])
            return CONTINUE
        try:
            user, password = parse_basic(rest)
        except Malformed as exc:
            limiter.failed(client, now)
            raise unauthorized(ctx, 1, f"logon failed: {exc}") from None
        if domain:
            user = qualified(user, domain)
        return self._verify(ctx, store, key, generation, user, password, limiter, client,
                            section.user_token_ttl)

    async def _verify(self, ctx, store, key, generation, user, password, limiter, client, ttl):
        if self.executor is None:
            self.executor = ThreadPoolExecutor(CHECK_THREADS, thread_name_prefix="logon")
        loop = asyncio.get_running_loop()
        roles = await loop.run_in_executor(self.executor, _check, store, user, password)
        now = time.monotonic()
        if roles is None:
            limiter.failed(client, now)
            raise unauthorized(ctx, 1)
        self.cache.put(key, generation, user, roles, now, ttl)
        ctx.set_user(user, "Basic")
        set_roles(ctx, roles)
        return CONTINUE

    def _store(self, section):
        key = store_key(section)
        store = self.stores.get(key)
        if store is None:
            store = self.stores[key] = store_for(section)
        return store

    def _limiter(self, section) -> FailureLimiter:
        key = (section.max_failed_logons, section.failed_logon_window)
        limiter = self.limiters.get(key)
        if limiter is None:
            limiter = self.limiters[key] = FailureLimiter(*key)
        return limiter


def qualified(user: str, domain: str) -> str:
    """IIS's defaultLogonDomain on Linux: a user name typed without a domain gets `@domain`
    (the qualified form of sssd, Kerberos, LDAP userPrincipalName); "alice@other" and
    "OTHER\\alice" already name one and are kept."""
    if "@" in user or "\\" in user:
        return user
    return f"{user}@{domain}"


def _check(store, user: str, password: str):
    """On a logon thread: the user's roles when the password is right, else None."""
    if not store.check(user, password):
        return None
    return store.roles(user)
