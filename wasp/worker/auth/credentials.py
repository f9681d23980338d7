"""Sans-I/O pieces of authentication: reading an Authorization header, the verified-credential
cache (IIS's TokenCacheModule) and the per-client failed-logon limiter.

Nothing here touches a socket or a file; the modules feed it header bytes, addresses and clocks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
from collections import OrderedDict

from wasp.errors import BadRequest

#: An Authorization value longer than this is refused before decoding (the front's header limits
#: are larger; nobody's user:password is 8 KB).
MAX_CREDENTIALS = 8192


class Malformed(ValueError):
    """Credentials that cannot be decoded: a logon failure (401.1), not a protocol error."""


def authorization(headers) -> bytes | None:
    """The one Authorization header's value, None when there is none. Two of them are a 400:
    which one a server reads differs between servers and proxies, and that difference is how
    credentials get smuggled past a check."""
    found = None
    for name, value in headers:
        if len(name) == 13 and name.lower() == b"authorization":
            if found is not None:
                raise BadRequest("more than one Authorization header")
            found = value
    return found


def scheme_of(value: bytes) -> tuple[bytes, bytes]:
    """(scheme in lower case, the rest without leading spaces)."""
    scheme, _, rest = value.strip(b" \t").partition(b" ")
    return scheme.lower(), rest.lstrip(b" \t")


def parse_basic(rest: bytes) -> tuple[str, str]:
    """RFC 7617 credentials (the token68 after "Basic ") -> (user-id, password), UTF-8 (the
    charset the challenge announces). Raises Malformed."""
    if len(rest) > MAX_CREDENTIALS:
        raise Malformed("credentials too long")
    token = rest.strip(b" \t")
    try:
        raw = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        raise Malformed("credentials are not base64") from None
    if base64.b64encode(raw) != token:  # one spelling only: no extra padding or stray bits
        raise Malformed("credentials are not canonical base64")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("credentials are not UTF-8") from None
    user, sep, password = text.partition(":")  # a user-id cannot hold ":"; a password may
    if not sep:
        raise Malformed("no ':' between user-id and password")
    if not user:
        raise Malformed("empty user-id")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in user) or "\x00" in password:
        raise Malformed("control character in the credentials")
    return user, password


class TokenCache:
    """Verified credentials, so that a repeated Authorization header does not pay bcrypt (or a
    PAM conversation, or two LDAP binds) again. IIS's TokenCacheModule keeps logon tokens for
    UserTokenTTL (15 minutes by default).

    Keys are an HMAC (per-process secret) of the store's id and the whole header value: the
    cache holds neither passwords nor hashes anyone could test guesses against. An entry also
    records the store's generation; a store that re-read its file (a password changed, a user
    removed) has a new generation and every older entry is a miss. Bounded: the oldest entry
    goes first."""

    def __init__(self, ttl: float = 900.0, size: int = 4096):
        self.ttl = ttl
        self.size = size
        self._secret = os.urandom(32)
        self._entries: OrderedDict[bytes, tuple[float, object, str, frozenset]] = OrderedDict()
        self._lock = threading.Lock()

    def key(self, store_id: str, value: bytes) -> bytes:
        return hmac.new(self._secret, store_id.encode() + b"\0" + value, hashlib.sha256).digest()

    def get(self, key: bytes, generation, now: float) -> tuple[str, frozenset] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, gen, user, roles = entry
        if now >= expires or gen != generation:
            with self._lock:
                self._entries.pop(key, None)
            return None
        return user, roles

    def put(self, key: bytes, generation, user: str, roles: frozenset, now: float,
            ttl: float | None = None) -> None:
        ttl = self.ttl if ttl is None else ttl
        if ttl <= 0:
            return
        with self._lock:
            self._entries[key] = (now + ttl, generation, user, roles)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class FailureLimiter:
    """Failed logons per client address: after `limit` failures within `window` seconds the
    client's logons are refused (401.1) without checking them until the window has passed.

    Neither IIS nor nginx has this (IIS leaves it to the Windows account lockout policy, which
    locks the account for everyone, and nginx to fail2ban reading its log); wasp counts per
    client address so that an attacker guessing passwords neither gets to try many nor locks a
    real user out from elsewhere. A refused logon looks exactly like a wrong password (401.1 with
    the challenges), so guessing on gains nothing and learns nothing. The table is bounded: the
    oldest client goes first."""

    def __init__(self, limit: int = 10, window: float = 60.0, size: int = 10000):
        self.limit = limit
        self.window = window
        self.size = size
        self._clients: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._lock = threading.Lock()

    def blocked(self, client: str, now: float) -> bool:
        if self.limit <= 0:
            return False
        entry = self._clients.get(client)
        if entry is None:
            return False
        start, count = entry
        if now - start >= self.window:
            with self._lock:
                self._clients.pop(client, None)
            return False
        return count >= self.limit

    def failed(self, client: str, now: float) -> None:
        if self.limit <= 0:
            return
        with self._lock:
            start, count = self._clients.get(client, (now, 0))
            if now - start >= self.window:
                start, count = now, 0
            self._clients[client] = (start, count + 1)
            self._clients.move_to_end(client)
            while len(self._clients) > self.size:
                self._clients.popitem(last=False)
