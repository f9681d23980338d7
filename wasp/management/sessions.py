"""Logins of the management site, sans I/O: signed session cookies, CSRF tokens, the one-time
token, and the checks on a request's Host and Origin.

A session is a cookie the server signs (HMAC-SHA256 with the key the manager writes to
run_dir/management.key at each start) rather than a row in memory: it survives the management
pool's recycling (an admin may recycle that pool from the site itself) and works on every worker
of a web garden. It carries who logged in, when, a random id, and when it was last used; it ends
after `timeout` without a request and at the latest `MAX_LIFETIMES` timeouts after the login. A
restart of the server writes a new key, which ends every session. Logging out revokes the id.

The CSRF token of a session is an HMAC of its id: a page gets it from /api/session and sends it in
the X-CSRF-Token header of every change; a cross-site page can neither read it nor send the
header (and the cookie is SameSite=Strict as well).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
from dataclasses import dataclass

MAX_LIFETIMES = 12
#: A session whose last use is older than this share of the timeout gets a fresh cookie.
REFRESH_SHARE = 0.1
MAX_COOKIE = 1024
MAX_REVOKED = 10000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    user: str
    sid: str
    issued: float
    seen: float


class Sessions:
    def __init__(self, key: bytes, timeout: float):
        if len(key) < 16:
            raise ValueError("a session key has at least 16 bytes")
        self.key = key
        self.timeout = float(timeout)
        self.revoked: set[str] = set()

    def _sign(self, purpose: bytes, data: bytes) -> bytes:
        return hmac.new(self.key, purpose + b"\0" + data, hashlib.sha256).digest()

    def issue(self, user: str, now: float) -> tuple[Session, str]:
        session = Session(user, secrets.token_urlsafe(16), float(int(now)), float(int(now)))
        return session, self.encode(session)

    def encode(self, session: Session) -> str:
        payload = json.dumps({"u": session.user, "s": session.sid, "i": int(session.issued),
                              "t": int(session.seen)}, separators=(",", ":")).encode()
        return _b64(payload) + "." + _b64(self._sign(b"session", payload))

    def verify(self, value: str | None, now: float) -> Session | None:
        """The session a cookie value names, or None (forged, expired, revoked, malformed)."""
        if not value or len(value) > MAX_COOKIE or value.count(".") != 1:
            return None
        body, mac = value.split(".")
        try:
            payload, signature = _unb64(body), _unb64(mac)
        except (ValueError, TypeError):
            return None
        if not hmac.compare_digest(signature, self._sign(b"session", payload)):
            return None
        try:
            data = json.loads(payload)
            session = Session(str(data["u"]), str(data["s"]), float(data["i"]), float(data["t"]))
        except (ValueError, KeyError, TypeError):
            return None
        if session.sid in self.revoked:
            return None
        if now - session.seen > self.timeout or now - session.issued > self.timeout * MAX_LIFETIMES:
            return None
        if session.seen > now + 60 or session.issued > session.seen:
            return None  # from the future: not one we issued on this clock
        return session

    def refreshed(self, session: Session, now: float) -> tuple[Session, str] | None:
        """A newer cookie for a session in use (the idle timer restarts), when due."""
        if now - session.seen < self.timeout * REFRESH_SHARE:
            return None
        fresh = Session(session.user, session.sid, session.issued, float(int(now)))
        return fresh, self.encode(fresh)

    def revoke(self, session: Session) -> None:
        if len(self.revoked) >= MAX_REVOKED:
            self.revoked.clear()  # bounded; sessions also end by their timeout
        self.revoked.add(session.sid)

    def csrf_token(self, session: Session) -> str:
        return _b64(self._sign(b"csrf", session.sid.encode()))

    def check_csrf(self, session: Session, token: str | None) -> bool:
        if not token or len(token) > 128:
            return False
        return hmac.compare_digest(token.encode("ascii", "replace"), self.csrf_token(session).encode())


def token_matches(given: str | None, expected: str | None) -> bool:
    """The one-time login token, compared in constant time; an empty one never matches."""
    if not given or not expected or len(given) > 256:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))


def cookie_name(tls: bool) -> str:
    # "__Host-": the browser takes it only with Secure, Path=/ and no Domain (RFC 6265bis).
    return "__Host-wasp_mgmt" if tls else "wasp_mgmt"


def set_cookie(value: str, tls: bool, max_age: int | None = None) -> str:
    parts = [f"{cookie_name(tls)}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
    if tls:
        parts.append("Secure")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return "; ".join(parts)


def clear_cookie(tls: bool) -> str:
    return set_cookie("", tls, max_age=0)


def cookie_value(header: str | None, tls: bool) -> str | None:
    """The session cookie's value in a Cookie header; two of them count as none (a cookie set
    by a sibling host or path must not shadow ours)."""
    if not header or len(header) > 8192:
        return None
    name = cookie_name(tls)
    found = [v for k, _, v in (p.strip().partition("=") for p in header.split(";")) if k == name]
    return found[0] if len(found) == 1 else None


def split_host(host: str) -> str:
    """The name of a Host header value, without the port, lower case ("" when malformed)."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else ""
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def host_allowed(host: str | None, names: list[str]) -> bool:
    """DNS rebinding: a page of evil.example whose name now points at 127.0.0.1 reaches the
    management site with Host: evil.example. Only an address, localhost, or a name a binding
    names is served."""
    if not host:
        return False
    name = split_host(host)
    if not name:
        return False
    if name in ("localhost", "localhost.") or name in names:
        return True
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def origin_allowed(origin: str | None, host: str | None, tls: bool) -> bool:
    """A change must come from a page of this site: an Origin header, when the browser sends
    one, names this scheme and Host exactly."""
    if origin is None:
        return True  # not a browser, or a same-origin GET; the CSRF token still decides
    expected = f"{'https' if tls else 'http'}://{(host or '').lower()}"
    return origin.lower() == expected
