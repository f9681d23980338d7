"""The front's answers to an ACME CA's HTTP-01 challenges (RFC 8555 §8.3), sans I/O.

The manager runs the orders and tells the front which tokens are pending (`acme` control
message); a request `GET /.well-known/acme-challenge/TOKEN` is answered with the token's key
authorization only when TOKEN is exactly a pending token and the request's host is the name the
token was issued for. Anything else (another token, a prefix of one, a path under it, a listing,
the wrong host, a POST) is routed like any other request, so an app that answers its own
challenges keeps working.
"""

from __future__ import annotations

import re

from wasp.config.acme import HTTP01_PREFIX

PREFIX = HTTP01_PREFIX.encode("ascii")

#: base64url characters only: what RFC 8555 tokens are made of.
_TOKEN = re.compile(rb"[A-Za-z0-9_-]{16,256}")
_PORT = re.compile(rb":[0-9]{1,5}")

#: token -> (host, key authorization), as the front holds them.
Pending = dict[bytes, tuple[bytes, bytes]]


def pending_from_message(http01: object) -> Pending:
    """The `http01` field of an `acme` message ({token: [host, key authorization]}); entries
    that are not well formed are left out."""
    out: Pending = {}
    if not isinstance(http01, dict):
        return out
    for token, value in http01.items():
        if not (isinstance(token, str) and isinstance(value, (list, tuple)) and len(value) == 2):
            continue
        host, key_authorization = value
        if not (isinstance(host, str) and isinstance(key_authorization, str)):
            continue
        raw = token.encode("ascii", "replace")
        if _TOKEN.fullmatch(raw):
            out[raw] = (host.lower().encode("ascii", "replace"), key_authorization.encode("ascii", "replace"))
    return out


def http01_answer(pending: Pending, method: bytes, path: bytes, query: bytes, host: bytes) -> bytes | None:
    """The body to answer a request with, or None when it is not a pending challenge."""
    if method not in (b"GET", b"HEAD") or query or not path.startswith(PREFIX):
        return None
    entry = pending.get(path[len(PREFIX):])
    if entry is None:
        return None
    name = host.lower()
    if name.startswith(b"["):
        return None  # an IP literal: tokens are for host names only
    match = _PORT.search(name)
    if match is not None and match.end() == len(name):
        name = name[:match.start()]
    if name.endswith(b"."):
        name = name[:-1]
    return entry[1] if name == entry[0] else None


def http01_response(body: bytes, *, server: bytes, date: bytes, close: bool, head_only: bool) -> bytes:
    """The whole 200 response carrying a key authorization."""
    head = [b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"]
    if server:
        head.append(b"Server: " + server + b"\r\n")
    if date:
        head.append(b"Date: " + date + b"\r\n")
    if close:
        head.append(b"Connection: close\r\n")
    head.append(b"Content-Length: %d\r\n\r\n" % len(body))
    if not head_only:
        head.append(body)
    return b"".join(head)
