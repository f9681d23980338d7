"""The socket binding plan, and holding sockets across reloads (on 127.0.0.1, ephemeral ports)."""

from __future__ import annotations

import socket
import textwrap

import pytest

from wasp.config.load import load_text
from wasp.manager.listeners import BindError, ListenerSet, plan


def cfg(*sites: tuple[list[str], bool]):
    text = '[[pools]]\nname = "P"\n'
    for i, (bindings, auto) in enumerate(sites, start=1):
        text += textwrap.dedent(f"""
            [[sites]]
            name = "S{i}"
            id = {i}
            bindings = {bindings!r}
            server_auto_start = {str(auto).lower()}
            [[sites.applications]]
            path = "/"
            app = "m:app"
            pool = "P"
            """).replace("'", '"')
    return load_text(text)


def test_one_socket_per_distinct_address():
    config = cfg((["http/127.0.0.1:8080:a.test", "http/127.0.0.1:8080:b.test", "http/127.0.0.1:8081:"], True),
                 (["http/127.0.0.2:8080:"], True))
    assert plan(config) == [("127.0.0.1", 8080), ("127.0.0.1", 8081), ("127.0.0.2", 8080)]


def test_wildcard_port_binds_only_any_address():
    config = cfg((["http/127.0.0.1:8080:a.test"], True), (["http/*:8080:", "http/127.0.0.1:9000:"], True))
    assert plan(config) == [("0.0.0.0", 8080), ("127.0.0.1", 9000)]


def test_stopped_sites_are_not_listened_for():
    config = cfg((["http/127.0.0.1:8080:"], True), (["http/127.0.0.1:8081:"], False))
    assert plan(config) == [("127.0.0.1", 8080)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_listener_set_keeps_existing_sockets_and_closes_removed():
    a, b = ("127.0.0.1", free_port()), ("127.0.0.1", free_port())
    held = ListenerSet()
    try:
        held.apply([a])
        first = held.sockets[a]
        held.apply([b, a])
        assert held.sockets[a] is first
        assert list(held.sockets) == [b, a]
        names, fds = held.ordered()
        assert names == [list(b), list(a)] and fds == [held.sockets[b].fileno(), first.fileno()]
        held.apply([b])
        assert first.fileno() == -1  # closed
        with socket.create_connection(b, timeout=2):
            pass
    finally:
        held.close()


def test_failed_bind_changes_nothing():
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()
    ok = ("127.0.0.1", free_port())
    held = ListenerSet()
    try:
        with pytest.raises(BindError):
            held.apply([ok, taken])
        assert held.sockets == {}
    finally:
        held.close()
        blocker.close()
