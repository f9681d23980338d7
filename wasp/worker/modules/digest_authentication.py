"""IIS DigestAuthenticationModule: RFC 7616 Digest (SHA-256 and MD5, qop=auth) against an
htdigest file.

It offers two challenges (SHA-256 first, then MD5, as RFC 7616 §3.7 asks) with a fresh
stateless nonce (wasp/worker/auth/digest.py) and checks `Authorization: Digest`: the user is set
(`ctx.set_user(name, "Digest")`), an expired nonce with a right answer gets 401 with
`stale=true` challenges (the client retries without asking the user), anything else 401.1.
The response must name this realm and the request target exactly as sent, and each
(nonce, nc) is accepted once. Failed logons count per client address as for Basic.

The nonce key is the pool's (the manager's per-pool secret, the same for every worker of a web
garden and for the workers after a recycle; derived per nonce lifetime and per application), so
a nonce another worker of the pool issued is recognised: a right answer to it is stale=true
(fresh challenges the client answers silently with this worker's nonce, since replays can only
be checked where the nonce was issued), never a 401.1 that makes a browser ask the user again.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from wasp.worker.auth import host_of, set_roles
from wasp.worker.auth.credentials import FailureLimiter, Malformed, authorization, scheme_of
from wasp.worker.auth.digest import HEX_SIZE, DigestAuth, Stale, parse
from wasp.worker.auth.files import HtdigestFile, HtgroupFile
from wasp.worker.authn import DIGEST, add_challenge, unauthorized
from wasp.worker.registry import CONTINUE, Module, Phase, register


@register("digest_authentication", phases=(Phase.AUTHENTICATE_REQUEST,))
class DigestAuthenticationModule(Module):
    def setup(self, app) -> None:
        # Out of the pipeline of an application that never enables it (no URL of it can:
        # per-URL configuration, locations or web.toml, keeps it in).
        self.needed = getattr(app, "urls", None) is not None or app.sections.digest_authentication.enabled
        self.realms: dict[float, DigestAuth] = {}
        # The pool's secret (None in a worker started without one: a random key of its own),
        # bound to this application: another application's nonces are not this one's.
        pool = getattr(app, "pool_secret", None)
        self.key = hmac.new(pool, f"digest nonce {app.key}".encode(), hashlib.sha256).digest() if pool else None
        self.files: dict[tuple, object] = {}
        self.limiters: dict[tuple, FailureLimiter] = {}

    def wants(self, phase) -> bool:
        return self.needed

    def authenticate_request(self, ctx):
        section = ctx.config.digest_authentication
        if not section.enabled:
            return CONTINUE
        ctx.private = True
        realm = section.realm or host_of(ctx)
        auth = self._auth(realm, section.nonce_lifetime)
        wall = time.time()
        value = authorization(ctx.head.headers)
        scheme, rest = scheme_of(value) if value is not None else (b"", b"")
        if scheme != b"digest":
            for challenge in auth.challenges(realm, wall):
                add_challenge(ctx, DIGEST, challenge)
            return CONTINUE
        client = ctx.head.client[0]
        key = (section.max_failed_logons, section.failed_logon_window)
        limiter = self.limiters.get(key) or self.limiters.setdefault(key, FailureLimiter(*key))
        now = time.monotonic()
        stale = False
        user = None
        if not limiter.blocked(client, now) and section.user_file:
            users = self._file(section.user_file, HtdigestFile)
            try:
                params = parse(rest)
                user = auth.check(params, ctx.head.method, ctx.head.target.decode("latin-1"),
                                  realm, lambda u, r, a: users.ha1(u, r, HEX_SIZE[a]), wall)
            except Stale:
                stale = True
            except Malformed:
                user = None
        for challenge in auth.challenges(realm, wall, stale=stale):
            add_challenge(ctx, DIGEST, challenge)
        if user is None:
            if not stale:
                limiter.failed(client, now)
            raise unauthorized(ctx, 1)
        ctx.set_user(user, "Digest")
        if section.group_file:
            set_roles(ctx, self._file(section.group_file, HtgroupFile).roles(user))
        return CONTINUE

    def _auth(self, realm: str, lifetime: float) -> DigestAuth:
        # One nonce secret and replay table per lifetime, whatever the realm (which may come
        # from the Host header: a table per realm would let clients grow it).
        auth = self.realms.get(lifetime)
        if auth is None:
            secret = None
            if self.key is not None:
                secret = hmac.new(self.key, repr(float(lifetime)).encode(), hashlib.sha256).digest()
            auth = self.realms[lifetime] = DigestAuth(lifetime, secret)
        return auth

    def _file(self, path: str, kind):
        found = self.files.get((path, kind))
        if found is None:
            found = self.files[(path, kind)] = kind(path)
        return found
