"""RFC 7616 HTTP Digest access authentication, server side, sans I/O: challenges, parsing the
client's response, checking it against HA1 values.

Nonces are stateless: base64url(issued-at ms, issuer, 8 random bytes, HMAC-SHA256(secret, all
three)[:16]). The secret is the pool's (the manager makes one per pool per run and hands it to
every worker in `init`), so a nonce any worker of the pool issued, before or after a recycle, is
recognised without a table. Replay protection keeps state: the nonce-counts (nc) each nonce was
used with, recorded after a successful check, in a bounded table of this `DigestAuth` (one per
worker process). The `issuer` (random, one per DigestAuth) says whose table knows a nonce: a
right answer to a nonce of another issuer (a sibling worker of a web garden, the worker before a
recycle) cannot be checked for replays here, so it is Stale: fresh challenges with `stale=true`,
which the client answers with this worker's nonce without asking the user. A captured answer is
thus never accepted twice anywhere, and an honest client is never asked for its password again.
A nonce older than its lifetime is Stale too. When the table drops a nonce it raises a floor: a
nonce issued at or before it and no longer in the table is stale, never "unused", so an evicted
nonce cannot be replayed from nc=1.

qop=auth only (auth-int would need the body before AUTHENTICATE_REQUEST); algorithms SHA-256
(offered first) and MD5 (what most clients, `requests` and curl among them, send by default).
The -sess variants and userhash are not offered and are refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import threading
from collections import OrderedDict

from wasp.worker.auth.credentials import MAX_CREDENTIALS, Malformed

ALGORITHMS = {"SHA-256": hashlib.sha256, "MD5": hashlib.md5}
#: HA1 length in hex digits, by algorithm (how an htdigest line says which one it is for).
HEX_SIZE = {"SHA-256": 64, "MD5": 32}

_PARAM = re.compile(rb'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^",\s]*))\s*(?:,|$)', re.S)
_NC = re.compile(r"^[0-9a-fA-F]{8}$")
_ISSUER = 4
_BODY = 8 + _ISSUER + 8
_NONCE_CHARS = (_BODY + 16) * 4 // 3  # 36 bytes: 48 base64 characters, no padding
_REQUIRED = ("username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce")


class Stale(Exception):
    """The response was right but its nonce expired: challenge again with stale=true."""


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse(rest: bytes) -> dict[str, str]:
    """The auth-params after "Digest " -> name (lower case) -> value. Raises Malformed."""
    if len(rest) > MAX_CREDENTIALS:
        raise Malformed("credentials too long")
    params: dict[str, str] = {}
    pos, end = 0, len(rest.rstrip())
    while pos < end:
        match = _PARAM.match(rest, pos)
        if match is None or match.end() == pos:
            raise Malformed("unparsable Digest parameters")
        name = match.group(1).decode("ascii").lower()
        raw = match.group(2)
        value = re.sub(rb"\\(.)", rb"\1", raw) if raw is not None else match.group(3)
        if name in params:
            raise Malformed(f"Digest parameter {name} given twice")
        try:
            params[name] = value.decode("utf-8")
        except UnicodeDecodeError:
            raise Malformed("Digest parameter is not UTF-8") from None
        pos = match.end()
    for name in _REQUIRED:
        if not params.get(name):
            raise Malformed(f"Digest parameter {name} missing")
    if "\x00" in params["username"]:
        raise Malformed("NUL in the user name")
    return params


class DigestAuth:
    """One realm's nonces and replay table."""

    def __init__(self, lifetime: float = 300.0, secret: bytes | None = None, size: int = 10000,
                 issuer: bytes | None = None):
        self.lifetime = lifetime
        self.secret = secret or os.urandom(32)
        self.issuer = issuer or os.urandom(_ISSUER)
        self.size = size
        self._seen: OrderedDict[str, set[str]] = OrderedDict()
        self._issued: dict[str, int] = {}
        self._floor = -1
        self._lock = threading.Lock()

    # ---- nonces ----
    def nonce(self, now: float) -> str:
        body = int(now * 1000).to_bytes(8, "big") + self.issuer + os.urandom(8)
        mac = hmac.new(self.secret, body, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(body + mac).decode().rstrip("=")

    def issued_at(self, nonce: str) -> int | None:
        """The nonce's issue time (ms) when a holder of this secret made it, else None."""
        found = self._open(nonce)
        return found[0] if found is not None else None

    def _open(self, nonce: str) -> tuple[int, bytes] | None:
        """(issue time ms, issuer) of a nonce made with this secret, else None."""
        if len(nonce) != _NONCE_CHARS:
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce)
        except (binascii.Error, ValueError):
            return None
        body, mac = raw[:-16], raw[-16:]
        if len(body) != _BODY or not hmac.compare_digest(
                hmac.new(self.secret, body, hashlib.sha256).digest()[:16], mac):
            return None
        return int.from_bytes(body[:8], "big"), body[8:8 + _ISSUER]

    def challenges(self, realm: str, now: float, stale: bool = False) -> list[str]:
        extra = ", stale=true" if stale else ""
        return [f"Digest realm={quote(realm)}, qop=\"auth\", algorithm={name}, "
                f"nonce=\"{self.nonce(now)}\", charset=UTF-8{extra}" for name in ALGORITHMS]

    # ---- checking a response ----
    def check(self, params: dict[str, str], method: str, target: str, realm: str, ha1_of,
              now: float) -> str | None:
        """The user name when `params` prove the password, None when they do not. Raises Stale
        for a right answer to an expired nonce, Malformed for a response that cannot be right.
        `ha1_of(user, realm, algorithm)` gives the stored HA1 hex, None for an unknown user."""
        algorithm = params.get("algorithm", "MD5")
        algorithm = next((a for a in ALGORITHMS if a.lower() == algorithm.lower()), None)
        if algorithm is None:
            raise Malformed("unsupported Digest algorithm")
        if params["qop"] != "auth":
            raise Malformed("qop must be auth")
        if params.get("userhash", "false").lower() != "false":
            raise Malformed("userhash is not supported")
        if not _NC.match(params["nc"]):
            raise Malformed("nc is not 8 hex digits")
        if params["realm"] != realm:
            raise Malformed("wrong realm")
        if params["uri"] != target:
            raise Malformed("uri does not match the request target")
        nonce = params["nonce"]
        opened = self._open(nonce)
        if opened is None:
            raise Malformed("not a nonce of this server")
        issued, issuer = opened
        h = ALGORITHMS[algorithm]
        user = params["username"]
        stored = ha1_of(user, realm, algorithm)
        # An unknown user is checked against a throw-away HA1: the same work, then a refusal.
        ha1 = stored if stored is not None else h(os.urandom(16)).hexdigest()
        ha2 = h(f"{method}:{params['uri']}".encode("utf-8")).hexdigest()
        expected = h(f"{ha1}:{nonce}:{params['nc']}:{params['cnonce']}:auth:{ha2}"
                     .encode("utf-8")).hexdigest()
        right = hmac.compare_digest(expected.encode(), params["response"].lower().encode("utf-8"))
        if not right or stored is None:
            return None
        age = now * 1000 - issued
        if age > self.lifetime * 1000 or age < -5000:
            raise Stale()
        if issuer != self.issuer:
            raise Stale()  # another worker's: its nc history is not here
        if not self._record(nonce, issued, params["nc"].lower()):
            return None  # a replayed (nonce, nc)
        return user

    def _record(self, nonce: str, issued: int, nc: str) -> bool:
        with self._lock:
            seen = self._seen.get(nonce)
            if seen is None:
                if issued <= self._floor:
                    # Possibly dropped from the table, its history gone: never accept it again,
                    # but let an honest client retry with a fresh nonce.
                    raise Stale()
                seen = self._seen[nonce] = set()
                self._issued[nonce] = issued
                while len(self._seen) > self.size:
                    old, _ = self._seen.popitem(last=False)
                    self._floor = max(self._floor, self._issued.pop(old))
            if nc in seen or len(seen) >= 4096:
                return False
            seen.add(nc)
            return True
