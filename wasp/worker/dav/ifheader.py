"""The WebDAV `If` header (RFC 4918 §10.4) parsed, and the Timeout / Depth / Overwrite headers.
No I/O: evaluation takes a callback for a resource's current state.

    If = 1*No-tag-list | 1*Tagged-list
    Tagged-list = Resource-Tag 1*List        Resource-Tag = "<" Simple-ref ">"
    List = "(" 1*Condition ")"               Condition = ["Not"] (State-token | "[" entity-tag "]")
"""

from __future__ import annotations

from wasp.errors import BadRequest


class Condition:
    __slots__ = ("negate", "token", "etag")

    def __init__(self, negate: bool, token: str | None, etag: str | None):
        self.negate = negate
        self.token = token
        self.etag = etag

    def __repr__(self) -> str:
        return f"Condition({self.negate}, {self.token!r}, {self.etag!r})"


class IfHeader:
    """`lists`: [(resource tag or None, [Condition, ...]), ...] in header order."""

    __slots__ = ("lists",)

    def __init__(self, lists):
        self.lists = lists

    @property
    def tokens(self) -> set[str]:
        """Every state token the client submitted (RFC 4918 §10.4.1: tokens in the header count,
        whatever list they are in)."""
        return {c.token for _tag, conds in self.lists for c in conds if c.token is not None}

    def evaluate(self, state) -> bool:
        """True when some list holds. `state(tag)` -> (etag or None, set of lock tokens that
        apply to the resource); the tag is None for untagged lists (the request's resource)."""
        cache: dict = {}
        for tag, conditions in self.lists:
            resource = tag
            if resource not in cache:
                cache[resource] = state(resource)
            etag, tokens = cache[resource]
            if all(_holds(c, etag, tokens) for c in conditions):
                return True
        return False


def _holds(c: Condition, etag: str | None, tokens: set[str]) -> bool:
    if c.token is not None:
        result = c.token in tokens
    else:
        result = etag is not None and _weakless(c.etag) == _weakless(etag)
    return result != c.negate


def _weakless(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


class _Scanner:
    def __init__(self, text: str):
        self.text = text
        self.i = 0

    def skip(self) -> None:
        text, i = self.text, self.i
        while i < len(text) and text[i] in " \t":
            i += 1
        self.i = i

    def peek(self) -> str:
        self.skip()
        return self.text[self.i] if self.i < len(self.text) else ""

    def until(self, close: str) -> str:
        end = self.text.find(close, self.i + 1)
        if end < 0:
            raise BadRequest("malformed If header: unclosed " + self.text[self.i])
        value = self.text[self.i + 1:end]
        self.i = end + 1
        return value


def parse_if(value: str) -> IfHeader:
    """BadRequest (400) for a malformed header."""
    if len(value) > 16384:
        raise BadRequest("If header too long")
    s = _Scanner(value)
    lists = []
    tagged = None
    while s.peek():
        tag = None
        if s.peek() == "<":
            tag = s.until(">")
            if tagged is False:
                raise BadRequest("malformed If header: tagged and untagged lists mixed")
            tagged = True
            if s.peek() != "(":
                raise BadRequest("malformed If header: a resource tag without a list")
        elif s.peek() == "(":
            if tagged is True:
                tag = lists[-1][0] if lists else None  # more lists for the previous tag
            else:
                tagged = False
        else:
            raise BadRequest("malformed If header")
        while s.peek() == "(":
            s.i += 1
            conditions = []
            while True:
                c = s.peek()
                if c == ")":
                    s.i += 1
                    break
                negate = False
                if s.text.startswith("Not", s.i):
                    negate = True
                    s.i += 3
                    c = s.peek()
                if c == "<":
                    conditions.append(Condition(negate, s.until(">"), None))
                elif c == "[":
                    conditions.append(Condition(negate, None, s.until("]")))
                else:
                    raise BadRequest("malformed If header: bad condition")
            if not conditions:
                raise BadRequest("malformed If header: empty list")
            lists.append((tag, conditions))
            if len(lists) > 256:
                raise BadRequest("If header with too many lists")
            if tag is None and tagged is not True:
                continue
    if not lists:
        raise BadRequest("empty If header")
    return IfHeader(lists)


#: Longest lock the server grants, whatever the client asks (seconds).
MAX_TIMEOUT = 7 * 86400
DEFAULT_TIMEOUT = 3600


def parse_timeout(value: str | None) -> int:
    """Seconds for a `Timeout: Second-N, Infinite` header (the first usable choice), capped."""
    if not value:
        return DEFAULT_TIMEOUT
    for part in value.split(","):
        part = part.strip()
        if part.lower() == "infinite":
            return MAX_TIMEOUT
        if part.lower().startswith("second-") and part[7:].isdigit():
            return max(1, min(int(part[7:]), MAX_TIMEOUT))
    return DEFAULT_TIMEOUT


def parse_depth(value: str | None, default: str, allowed: tuple) -> str:
    """"0", "1" or "infinity"; BadRequest for anything else or a value `allowed` leaves out."""
    if value is None:
        return default
    depth = value.strip().lower()
    if depth not in allowed:
        raise BadRequest(f"Depth: {value} is not allowed here")
    return depth


def parse_overwrite(value: str | None) -> bool:
    if value is None:
        return True
    flag = value.strip().upper()
    if flag not in ("T", "F"):
        raise BadRequest("Overwrite must be T or F")
    return flag == "T"
