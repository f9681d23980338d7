"""parse_binding: appcmd's "protocol/IP:PORT:HOST"."""

from __future__ import annotations

import pytest

from wasp.config.bindings import parse_binding
from wasp.config.model import Binding


@pytest.mark.parametrize("text, expected", [
    ("http/*:8080:", Binding("http", "*", 8080, "")),
    ("http/127.0.0.1:80:www.Example.TEST", Binding("http", "127.0.0.1", 80, "www.example.test")),
    ("http/[::1]:8080:", Binding("http", "::1", 8080, "")),
    ("http/[0:0::1]:8080:host", Binding("http", "::1", 8080, "host")),
    ("HTTP/*:1:", Binding("http", "*", 1, "")),
    ("http/*:65535:a-b.c_d", Binding("http", "*", 65535, "a-b.c_d")),
    ("http/*:80:example.test.", Binding("http", "*", 80, "example.test")),
])
def test_parse(text, expected):
    assert parse_binding(text) == expected


@pytest.mark.parametrize("text, fragment", [
    ("https/*:443:", "TLS"),
    ("ftp/*:21:", "unknown protocol"),
    ("*:8080:", "no protocol"),
    ("http/*:8080", "must end with"),
    ("http/*", "no port"),
    ("http/:8080:", "no IP"),
    ("http/localhost:8080:", "not \"\\*\" or an IP"),
    ("http/256.0.0.1:80:", "not \"\\*\" or an IP"),
    ("http/::1:8080:", "brackets"),
    ("http/[::1:8080:", "closing"),
    ("http/[zz]:8080:", "not an IPv6"),
    ("http/[::1]8080:", "PORT"),
    ("http/*:0:", "outside 1-65535"),
    ("http/*:65536:", "outside 1-65535"),
    ("http/*:80a:", "not a number"),
    ("http/*::", "not a number"),
    ("http/*:80:*.example.test", "wildcard"),
    ("http/*:80:bad host", "not a valid host"),
    ("http/*:80:a..b", "not a valid host"),
])
def test_rejects(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_binding(text)


def test_str_round_trips():
    for text in ("http/*:8080:", "http/127.0.0.1:80:www.example.test", "http/[::1]:8080:"):
        assert str(parse_binding(text)) == text
        assert parse_binding(str(parse_binding(text))) == parse_binding(text)
