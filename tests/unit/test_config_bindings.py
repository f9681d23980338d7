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
    ("https/*:443:www.example.test", Binding("https", "*", 443, "www.example.test")),
    ("http/*:65535:a-b.c_d", Binding("http", "*", 65535, "a-b.c_d")),
    ("http/*:80:example.test.", Binding("http", "*", 80, "example.test")),
])
def test_parse(text, expected):
    assert parse_binding(text) == expected


@pytest.mark.parametrize("text, fragment", [
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


def test_unix_socket_binding():
    b = parse_binding("http/unix:/run/wasp/app.sock:")
    assert (b.protocol, b.ip, b.port, b.host) == ("http", "unix:/run/wasp/app.sock", 0, "")
    assert str(b) == "http/unix:/run/wasp/app.sock:"
    named = parse_binding("http/unix:/run/a:b.sock:API.example.test")  # HOST after the last ":"
    assert (named.ip, named.host) == ("unix:/run/a:b.sock", "api.example.test")
    assert str(parse_binding(str(named))) == str(named)


@pytest.mark.parametrize("text, says", [
    ("http/unix:app.sock:", "must be absolute"), ("http/unix:/run/app.sock", "must end with"),
    ("http/unix:/run/:", "is a folder"), ("http/unix:/" + "a" * 120 + ":", "at most 107 bytes"),
])
def test_unix_socket_binding_errors(text, says):
    with pytest.raises(ValueError, match=says):
        parse_binding(text)
