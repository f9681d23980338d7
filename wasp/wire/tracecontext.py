"""W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` and `tracestate`
request headers. No I/O and no OpenTelemetry: the front parses what a client sent with these and
formats what it hands on, so a hostile value is refused here, byte for byte testable.

The rules are the spec's (§3.2, §3.3, §4.3):
- `traceparent` is `version-trace_id-parent_id-flags`, lower-case hex, 2-32-16-2 digits. Version
  ff is invalid; version 00 must be exactly 55 characters; a later version may carry more after
  a "-" at offset 55 (parsed as 00, the rest ignored). An all-zero trace id or parent id is
  invalid. More than one `traceparent` header is invalid. An invalid one is ignored: the request
  starts a new trace.
- `tracestate` is a list of at most 32 `key=value` members joined by commas, across however many
  header lines; empty members are allowed and dropped. A member that breaks the key or value
  grammar, a duplicate key or more than 32 members make the whole `tracestate` invalid, and it is
  dropped (never passed on half-parsed). It is only read with a valid `traceparent`; wasp keeps
  at most 512 characters of it, dropping whole members from the end as §3.3.1.5 allows.
"""

from __future__ import annotations

import re

#: How many characters of tracestate wasp passes on at most (the spec's "at least 512").
TRACESTATE_LIMIT = 512
MAX_MEMBERS = 32

_HEX = frozenset(b"0123456789abcdef")
_ZERO_TRACE = b"0" * 32
_ZERO_SPAN = b"0" * 16

# §3.3.1.3: simple-key = lcalpha 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" );
# multi-tenant-key = tenant-id "@" system-id (tenant 1-241 chars starting lcalpha/digit,
# system 1-14 chars starting lcalpha).
_KEY = re.compile(rb"(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})")
# value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr; nblk-chr = %x21-2B / %x2D-3C / %x3E-7E
_VALUE = re.compile(rb"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")


class TraceParent(tuple):
    """(trace_id, span_id, flags) as ints; `sampled` is flag bit 0."""

    __slots__ = ()

    def __new__(cls, trace_id: int, span_id: int, flags: int):
        return tuple.__new__(cls, (trace_id, span_id, flags))

    @property
    def trace_id(self) -> int:
        return self[0]

    @property
    def span_id(self) -> int:
        return self[1]

    @property
    def flags(self) -> int:
        return self[2]

    @property
    def sampled(self) -> bool:
        return bool(self[2] & 1)


def _is_hex(value: bytes) -> bool:
    return all(c in _HEX for c in value)


def parse_traceparent(value: bytes | str) -> TraceParent | None:
    """The parent a `traceparent` value names, or None when it is not a valid one."""
    if isinstance(value, str):
        try:
            value = value.encode("ascii")
        except UnicodeEncodeError:
            return None
    # Optional whitespace around a header value is HTTP's, not part of the value (RFC 9110 §5.5).
    value = value.strip(b" \t")
    if len(value) < 55:
        return None
    version = value[:2]
    if not _is_hex(version) or version == b"ff":
        return None
    if version == b"00":
        if len(value) != 55:
            return None
    elif len(value) > 55 and value[55:56] != b"-":
        return None
    if value[2:3] != b"-" or value[35:36] != b"-" or value[52:53] != b"-":
        return None
    trace_id, span_id, flags = value[3:35], value[36:52], value[53:55]
    if not (_is_hex(trace_id) and _is_hex(span_id) and _is_hex(flags)):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    # A later version's flags are read as 00's: only the bits 00 defines (sampled) are kept.
    bits = int(flags, 16)
    return TraceParent(int(trace_id, 16), int(span_id, 16), bits if version == b"00" else bits & 1)


def parse_tracestate(values: list[bytes]) -> str | None:
    """The combined `tracestate` of a request's header lines (in order) as one string fit to pass
    on, "" when it is empty, None when it is invalid (then it is dropped entirely)."""
    members: list[bytes] = []
    keys = set()
    for line in values:
        for member in line.split(b","):
            member = member.strip(b" \t")
            if not member:
                continue
            key, eq, val = member.partition(b"=")
            if not eq or not _KEY.fullmatch(key) or not _VALUE.fullmatch(val) or key in keys:
                return None
            keys.add(key)
            members.append(member)
            if len(members) > MAX_MEMBERS:
                return None
    # Over the limit: drop whole members from the end until it fits.
    total = sum(len(m) for m in members) + max(0, len(members) - 1)
    while members and total > TRACESTATE_LIMIT:
        total -= len(members.pop()) + (1 if members else 0)
    return b",".join(members).decode("ascii")


def client_context(headers) -> tuple[TraceParent, str] | None:
    """The trace context a request's header list `[(name, value), ...]` carries:
    (parent, tracestate) or None when it carries no valid `traceparent`."""
    parent_values = []
    state_values = []
    for name, value in headers:
        if len(name) == 11 and name.lower() == b"traceparent":
            parent_values.append(value)
        elif len(name) == 10 and name.lower() == b"tracestate":
            state_values.append(value)
    if len(parent_values) != 1:
        return None  # none, or several: the spec makes several invalid
    parent = parse_traceparent(parent_values[0])
    if parent is None:
        return None
    state = parse_tracestate(state_values) if state_values else ""
    return parent, state or ""


def format_traceparent(trace_id: int, span_id: int, flags: int) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-{flags & 0xff:02x}"


def replace_headers(headers, traceparent: str, tracestate: str) -> list:
    """`headers` without any `traceparent` or `tracestate`, then wasp's own."""
    out = [(n, v) for n, v in headers
           if not ((len(n) == 11 and n.lower() == b"traceparent") or
                   (len(n) == 10 and n.lower() == b"tracestate"))]
    out.append((b"traceparent", traceparent.encode("ascii")))
    if tracestate:
        out.append((b"tracestate", tracestate.encode("ascii")))
    return out
