"""Fuzz harness: URL Rewrite's engine (wasp/wire/rewrite.py) and its streaming HTML rewriter
(wasp/wire/htmlrewrite.py), which see attacker-controlled URLs, headers and response bodies.

Each input is cut in three: a pattern, a template and a text (the rest is a body).

* a pattern either compiles or raises RewriteConfigError; a compiled one matches the text or
  raises RuleTimeout, and when it takes the fast path (`re`) it gives what `regex` gives;
* a template either compiles or raises RewriteConfigError, and expands without raising;
* a redirect target made safe never carries a control character or space and never starts a
  protocol-relative URL;
* the HTML rewriter, fed the body whole and in pieces, gives the same bytes, holds back at
  most its limit, and leaves a body with no URL attribute as it was.
"""

from __future__ import annotations

import atheris

from split import pieces
from wasp.wire import rewrite as engine
from wasp.wire.htmlrewrite import HtmlRewriter

_LIMIT = 256


def seeds():
    yield b"^api/(.*)\x00/{R:1}?x={ToLower:{HTTP_HOST}}\x00api/Users\x00<a href='http://b/x'>y</a>"
    yield b"(a|aa)+$\x00{Map:{R:0}}\x00aaaaaaaaaaaaaaaaaaaaaaaaa!\x00<!-- <a href=1> --><script><a href=2></script>"
    yield b"[^]\\k<x>(?<x>a)\x00{R:1\x00//evil\x00<img src=\"/a\" alt='>'><form action=x>"
    yield b"*/*.html\x00{UrlDecode:%0d%0a}\x00a/b.html\x00<A HREF=\"x\"><a href=\"" + b"y" * 300


def _rewrite(tag, attr, value):
    return value[::-1] if value else None


def test_one_input(data: bytes) -> None:
    parts = data.split(b"\x00", 3)
    while len(parts) < 4:
        parts.append(b"")
    source, template, text = (p.decode("utf-8", "replace") for p in parts[:3])
    body = parts[3]
    syntax = ("ECMAScript", "Wildcard", "ExactMatch")[len(data) % 3]
    text = text[:64]
    try:
        pattern = engine.Pattern(source, syntax, ignore_case=bool(len(data) & 4))
    except engine.RewriteConfigError:
        pattern = None
    if pattern is not None:
        try:
            got = pattern.match(text)
        except engine.RuleTimeout:
            got = "timeout"
        if pattern._fast is not None and got != "timeout":
            limit, pattern._fast_limit = pattern._fast_limit, -1
            try:
                slow = pattern.match(text)
            except engine.RuleTimeout:
                slow = got
            pattern._fast_limit = limit
            assert slow == got, (source, text, got, slow)
    try:
        compiled = engine.Template(template, frozenset({"Map"}))
    except engine.RewriteConfigError:
        compiled = None
    if compiled is not None:
        env = engine.Env(lambda name: text, {"Map": engine.RewriteMap("Map", {"a": "b"})})
        env.rule = (text, text[:3])
        env.cond = (text,)
        compiled.expand(env)
    try:
        location = engine.safe_location(text)
    except engine.UnsafeUrl:
        location = None
    if location is not None:
        assert not any(ch < "!" or ch == "\x7f" for ch in location), location
        assert not location.startswith("//"), location
    whole = HtmlRewriter(_rewrite, engine.TAG_ATTRIBUTES, limit=_LIMIT)
    expected = whole.feed(body) + whole.close()
    cut = HtmlRewriter(_rewrite, engine.TAG_ATTRIBUTES, limit=_LIMIT)
    out = []
    for piece in pieces(body, data[:8]):
        out.append(cut.feed(piece))
        assert len(cut.pending) <= _LIMIT + 16, len(cut.pending)
    out.append(cut.close())
    assert b"".join(out) == expected
    if b"=" not in body:
        assert expected == body


if __name__ == "__main__":
    import sys
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
