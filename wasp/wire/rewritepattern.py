"""URL Rewrite's patterns, sans-I/O: IIS's ECMAScript, Wildcard and ExactMatch syntaxes in Python.

IIS's default syntax is ECMAScript; Python's `re` is not. Patterns are compiled with the `regex`
module (docs/dependencies.md), which takes ECMAScript's `(?<name>...)` and whose matches take a
timeout: the ReDoS guard. ECMAScript escapes Python spells differently are translated
(`\\k<name>`, `\\cX`, `\\u{...}`, `[^]`, `[]`, `$`), and constructs ECMAScript does not have but
Python would silently accept with another meaning (inline flags `(?i)`, `(?P...)`, `(?#...)`,
atomic groups, possessive quantifiers, `\\A` `\\Z` `\\z` `\\G`, `\\p{...}` without the u flag) are
refused. `\\d \\w \\b` are ASCII as in ECMAScript. Wildcard: `*` matches any run and captures it,
`?` any one character; the whole input must match. ExactMatch: the whole input equals the pattern.

ReDoS: a match runs with MATCH_TIMEOUT (50 ms) and an input over MAX_INPUT (64 KiB) characters is
never matched; either raises RuleTimeout. A pattern that cannot backtrack badly (`_fast_kind`)
runs on `re` without the timeout, which costs about 10 µs a match.
"""

from __future__ import annotations

import re
import re._constants as _sre
import re._parser as _sre_parse

#: Seconds one pattern match may take before the rule counts as failed (ReDoS guard).
MATCH_TIMEOUT = 0.05
#: Inputs longer than this (characters) are never matched: the evaluation fails instead.
MAX_INPUT = 64 * 1024
#: A pattern that cannot backtrack badly (see `_fast_kind`) runs on `re` without a timeout, up to
#: this input length when it is not anchored at the start (then its worst case is quadratic).
FAST_INPUT = 2048


class RewriteConfigError(ValueError):
    """A pattern or template that cannot be compiled; the message says why (the caller adds the
    dotted key)."""


class RuleTimeout(Exception):
    """A match ran out of time or its input was too long (IIS: rule execution error)."""


_FORBIDDEN = (
    (re.compile(r"\(\?[aiLmsux-]+[):]"), "inline flags such as (?i) are not ECMAScript: use ignore_case"),
    (re.compile(r"\(\?P"), "(?P...) is Python's syntax; ECMAScript names a group (?<name>...)"),
    (re.compile(r"\(\?#"), "(?#...) comments are not ECMAScript"),
    (re.compile(r"\(\?>"), "atomic groups (?>...) are not ECMAScript"),
    (re.compile(r"\(\?\("), "conditional groups are not ECMAScript"),
    (re.compile(r"\(\?[|&~R0-9+]"), "this group syntax is not ECMAScript"),
)


def translate_ecmascript(pattern: str) -> str:
    """An ECMAScript pattern as a `regex` pattern with the same meaning, or RewriteConfigError
    for what cannot be said the same way."""
    for finder, why in _FORBIDDEN:
        if _outside_escapes(pattern, finder):
            raise RewriteConfigError(why)
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    prev_quantifier = False
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise RewriteConfigError("the pattern ends with a lone backslash")
            e = pattern[i + 1]
            if e in "AZzG":
                raise RewriteConfigError(f"\\{e} is not ECMAScript: use ^ and $")
            if e in "pP":
                raise RewriteConfigError(f"\\{e}{{...}} needs ECMAScript's u flag, which IIS does not set")
            if e == "k" and not in_class and pattern[i + 2:i + 3] == "<":
                end = pattern.find(">", i + 3)
                if end < 0:
                    raise RewriteConfigError("\\k<name> without its >")
                out.append(f"(?P={pattern[i + 3:end]})")
                i = end + 1
                prev_quantifier = False
                continue
            if e == "c" and i + 2 < n and pattern[i + 2].isalpha() and pattern[i + 2].isascii():
                out.append("\\x%02x" % (ord(pattern[i + 2]) % 32))
                i += 3
                prev_quantifier = False
                continue
            if e == "u" and pattern[i + 2:i + 3] == "{":
                end = pattern.find("}", i + 3)
                digits = pattern[i + 3:end] if end > 0 else ""
                if not digits or any(d not in "0123456789abcdefABCDEF" for d in digits):
                    raise RewriteConfigError("bad \\u{...} escape")
                out.append("\\x{%s}" % digits)
                i = end + 1
                prev_quantifier = False
                continue
            if e == "/":
                out.append("/")
            else:
                out.append(pattern[i:i + 2])
            i += 2
            prev_quantifier = False
            continue
        if in_class:
            if c == "]":
                in_class = False
            elif c == "[":
                out.append("\\[")  # a literal in ECMAScript; regex would start a nested set
                i += 1
                continue
            out.append(c)
            i += 1
            continue
        if c == "[":
            if pattern.startswith("[^]", i):
                out.append("[\\s\\S]")
                i += 3
                prev_quantifier = False
                continue
            if pattern.startswith("[]", i):
                out.append("(?!)")
                i += 2
                prev_quantifier = False
                continue
            in_class = True
            out.append(c)
            i += 1
            # A "]" right after "[" or "[^" closes the set in ECMAScript (handled above) but is
            # a literal in Python: nothing else to do.
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            continue
        if c == "$":
            out.append("\\Z")  # ECMAScript's $ is the end of the input, never before a "\n"
            i += 1
            prev_quantifier = False
            continue
        if c in "*+?":
            if c == "+" and prev_quantifier:
                raise RewriteConfigError("possessive quantifiers (*+, ++, ?+) are not ECMAScript")
            prev_quantifier = not (c == "?" and prev_quantifier)
            out.append(c)
            i += 1
            continue
        if c == "}":
            prev_quantifier = True
            out.append(c)
            i += 1
            continue
        prev_quantifier = False
        out.append(c)
        i += 1
    if in_class:
        raise RewriteConfigError("a [ character class without its ]")
    return "".join(out)


def _outside_escapes(pattern: str, finder) -> bool:
    """Whether `finder` matches at a position not preceded by an odd run of backslashes."""
    for m in finder.finditer(pattern):
        start = m.start()
        slashes = 0
        while start - slashes - 1 >= 0 and pattern[start - slashes - 1] == "\\":
            slashes += 1
        if slashes % 2 == 0:
            return True
    return False


class Pattern:
    """A compiled `pattern` of one syntax. `match(text)` -> the captures (0: the whole match) or
    None; raises RuleTimeout."""

    __slots__ = ("source", "syntax", "ignore_case", "_regex", "_exact", "_fast", "_fast_limit")

    def __init__(self, source: str, syntax: str = "ECMAScript", ignore_case: bool = True):
        self.source = source
        self.syntax = syntax
        self.ignore_case = ignore_case
        self._exact = None
        self._fast = None
        self._fast_limit = -1     # longest input the fast path takes; -1: none
        # Imported here: a process that never compiles a pattern (a front without global rules,
        # a worker whose sites have no rules) does not load it (about 2 MB).
        import regex

        flags = regex.V0 | regex.ASCII | (regex.IGNORECASE if ignore_case else 0)
        if syntax == "ExactMatch":
            self._regex = None
            self._exact = source.lower() if ignore_case else source
            return
        if syntax == "Wildcard":
            parts = []
            for ch in source:
                if ch == "*":
                    parts.append("(.*)")
                elif ch == "?":
                    parts.append(".")
                else:
                    parts.append(re.escape(ch))
            text = "".join(parts)
            flags |= regex.DOTALL
            text = "\\A(?:" + text + ")\\Z"
        elif syntax == "ECMAScript":
            text = translate_ecmascript(source)
        else:
            raise RewriteConfigError(f"unknown pattern_syntax {syntax!r}")
        try:
            self._regex = regex.compile(text, flags)
        except (regex.error, OverflowError, RecursionError) as exc:
            raise RewriteConfigError(f"not a valid {syntax} pattern: {exc}") from None
        if self._regex.groups > 99:
            raise RewriteConfigError("more than 99 capture groups")
        # The timeout costs ~10 µs a match: a pattern that cannot backtrack badly runs on `re`.
        kind = _fast_kind(text, ignore_case)
        if kind:
            try:
                self._fast = re.compile(text, (re.ASCII | (re.IGNORECASE if ignore_case else 0)
                                               | (re.DOTALL if syntax == "Wildcard" else 0)))
                self._fast_limit = MAX_INPUT if kind == "linear" else FAST_INPUT
            except re.error:
                self._fast, self._fast_limit = None, -1

    def match(self, text: str) -> tuple[str, ...] | None:
        if len(text) > MAX_INPUT:
            raise RuleTimeout(f"input of {len(text)} characters is over {MAX_INPUT}")
        if self._regex is None:
            value = text.lower() if self.ignore_case else text
            return (text,) if value == self._exact else None
        if len(text) <= self._fast_limit:
            m = self._fast.search(text)
            if m is None:
                return None
            return (m.group(0),) + m.groups("")
        try:
            m = self._regex.search(text, timeout=MATCH_TIMEOUT)
        except TimeoutError:
            raise RuleTimeout(f"pattern {self.source!r} took over {MATCH_TIMEOUT}s") from None
        if m is None:
            return None
        return (m.group(0),) + m.groups("")


class _Risky(Exception):
    pass


_REPEATS = (_sre.MAX_REPEAT, _sre.MIN_REPEAT, getattr(_sre, "POSSESSIVE_REPEAT", _sre.MAX_REPEAT))
#: A repeat this small may nest or hold alternatives: its expansion stays bounded.
_SMALL = 16


def _fast_kind(text: str, ignore_case: bool) -> str:
    """"linear", "quadratic" or "" for a translated pattern. Exponential backtracking needs a
    repeat inside a repeat or around alternatives, or a back-reference; polynomial blow-up
    needs two unbounded repeats. A pattern with neither and at most one unbounded repeat is
    linear when anchored at the start (search tries one position), quadratic at worst otherwise.
    Anything else, or anything `re` cannot parse the same way, goes to `regex` with its timeout."""
    if ignore_case and not text.isascii():
        return ""
    try:
        tree = _sre_parse.parse(text, re.ASCII)
        unbounded = _walk(tree, False)
    except (_Risky, re.error, RecursionError, OverflowError, ValueError, TypeError, IndexError):
        return ""
    if unbounded > 1:
        return ""
    items = list(tree)
    anchored = bool(items) and items[0] == (_sre.AT, _sre.AT_BEGINNING)
    return "linear" if anchored or unbounded == 0 else "quadratic"


def _walk(sub, in_repeat: bool) -> int:
    count = 0
    for op, av in sub:
        if op in _REPEATS:
            low, high, inner = av
            big = high == _sre.MAXREPEAT or high > _SMALL
            if in_repeat and big:
                raise _Risky
            if big and _has(inner, _REPEATS + (_sre.BRANCH,)):
                raise _Risky
            count += 1 if high == _sre.MAXREPEAT or high > _SMALL else 0
            count += _walk(inner, True)
        elif op is _sre.SUBPATTERN:
            count += _walk(av[-1], in_repeat)
        elif op is _sre.BRANCH:
            count += sum(_walk(b, in_repeat) for b in av[1])
        elif op in (_sre.ASSERT, _sre.ASSERT_NOT):
            count += _walk(av[1], in_repeat)
        elif op in (_sre.GROUPREF, _sre.GROUPREF_EXISTS) or op is getattr(_sre, "ATOMIC_GROUP", None):
            raise _Risky
    return count


def _has(sub, ops) -> bool:
    for op, av in sub:
        if op in ops:
            return True
        if op is _sre.SUBPATTERN and _has(av[-1], ops):
            return True
        if op in (_sre.ASSERT, _sre.ASSERT_NOT) and _has(av[1], ops):
            return True
    return False


__all__ = ["Pattern", "RewriteConfigError", "RuleTimeout", "translate_ecmascript", "MATCH_TIMEOUT",
           "MAX_INPUT", "FAST_INPUT"]
