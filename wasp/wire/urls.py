"""Request targets cooked the way HTTP.sys cooks them. No I/O.

HTTP.sys hands IIS a "cooked" URL (shared/reference/iis-behaviour.md §5.5): the path is
percent-decoded (`%uNNNN` too), `\\` becomes `/`, `.` and `..` segments are resolved, and escapes
that decode to control characters are refused. The query string stays raw: HTTP.sys never looks
inside it. Every refusal is 400 "Invalid URL" (HTTPERR reason `URL`).

Paths stay bytes: the decoded octets are what the application gets (PEP 3333 passes them as
latin-1), and bytes keep the common case, a path with nothing to cook, to three `in` scans.
"""

from __future__ import annotations

import re

from wasp.wire.http import InvalidUrl

_HEX = "0123456789abcdefABCDEF"
_PAIRS: dict[bytes, bytes] = {
    (a + b).encode(): bytes([int(a + b, 16)]) for a in _HEX for b in _HEX
}
# C0 controls, DEL, and C1 controls as UTF-8 (U+0080-U+009F): HTTP.sys AllowRestrictedChars = 0.
_RESTRICTED = re.compile(rb"[\x00-\x1f\x7f]|\xc2[\x80-\x9f]")


def split_target(target: bytes) -> tuple[bytes, bytes, bytes | None]:
    """A request target -> (raw path, raw query without "?", authority or None).

    The authority is the host[:port] of an absolute-form target (`GET http://h/p HTTP/1.1`),
    which HTTP.sys routes by instead of the Host header. `*` (OPTIONS *) is returned as the path.
    """
    authority = None
    if target[:1] != b"/":
        if target == b"*":
            return b"*", b"", None
        scheme, sep, rest = target.partition(b"://")
        if not sep or scheme.lower() not in (b"http", b"https"):
            raise InvalidUrl("request target is neither origin nor absolute form")
        end = len(rest)
        for stop in (b"/", b"?"):
            i = rest.find(stop)
            if 0 <= i < end:
                end = i
        authority = rest[:end]
        if b"@" in authority:
            raise InvalidUrl("user information in the request target")
        if not authority:
            raise InvalidUrl("empty authority")
        target = rest[end:]
        if target[:1] != b"/":
            target = b"/" + target
    hash_at = target.find(b"#")
    if hash_at >= 0:
        target = target[:hash_at]
    path, _, query = target.partition(b"?")
    return path, query, authority


def cook_path(raw: bytes) -> bytes:
    """The cooked path of a raw origin-form path. Raises InvalidUrl."""
    if b"%" not in raw and b"\\" not in raw and b"/." not in raw:
        return raw
    path = raw
    if b"%" in path:
        path = percent_decode(path)
        if _RESTRICTED.search(path):
            raise InvalidUrl("escape decodes to a control character")
    if b"\\" in path:
        path = path.replace(b"\\", b"/")
    if b"/." in path:
        path = remove_dot_segments(path)
    return path


def percent_decode(raw: bytes) -> bytes:
    """Decode %XX and %uXXXX escapes. A `%` not followed by two hex digits is an error."""
    parts = raw.split(b"%")
    out = [parts[0]]
    pairs = _PAIRS
    for part in parts[1:]:
        octet = pairs.get(part[:2])
        if octet is not None:
            out.append(octet)
            out.append(part[2:])
            continue
        if part[:1] in (b"u", b"U") and len(part) >= 5 and all(c in _HEX_BYTES for c in part[1:5]):
            code = int(part[1:5], 16)
            if 0xD800 <= code <= 0xDFFF:
                raise InvalidUrl("%u escape of a surrogate")
            out.append(chr(code).encode("utf-8"))
            out.append(part[5:])
            continue
        raise InvalidUrl("bad percent escape")
    return b"".join(out)


_HEX_BYTES = frozenset(_HEX.encode())


def remove_dot_segments(path: bytes) -> bytes:
    """Resolve `.` and `..` (RFC 3986 §5.2.4); `..` above the root is an error, as in HTTP.sys."""
    if path[:1] != b"/":
        raise InvalidUrl("path does not start with /")
    segments = path.split(b"/")
    out: list[bytes] = []
    for segment in segments[1:]:
        if segment == b".":
            continue
        if segment == b"..":
            if not out:
                raise InvalidUrl("path goes above the root")
            out.pop()
            continue
        out.append(segment)
    cooked = b"/" + b"/".join(out)
    if segments[-1] in (b".", b"..") and out:
        cooked += b"/"
    return cooked


#: What makes an origin-form target need splitting or cooking. One regex search costs a fifth of
#: five `in` scans, and this runs for every request the front reads.
_NEEDS_COOKING = re.compile(rb"[?%\\#]|/\.").search


def cook_target(target: bytes) -> tuple[bytes, bytes, bytes | None]:
    """split_target then cook_path: -> (cooked path, raw query, authority or None)."""
    if target[:1] == b"/" and _NEEDS_COOKING(target) is None:
        return target, b"", None  # the common case: nothing to split or cook
    path, query, authority = split_target(target)
    if path == b"*":
        return path, query, authority
    return cook_path(path), query, authority
