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


# ---------------------------------------------------------------------- Unix socket bindings

def test_plan_has_one_unix_address_per_path():
    config = cfg((["http/unix:/run/a.sock:", "http/unix:/run/a.sock:x.test", "http/127.0.0.1:8080:"], True),
                 (["http/unix:/run/b.sock:"], False))
    assert plan(config) == [("unix:/run/a.sock", 0), ("127.0.0.1", 8080)]


def test_unix_listener_mode_stale_file_and_cleanup(tmp_path):
    import os
    import stat as st
    path = tmp_path / "app.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # a file nothing listens on: replaced
    listeners = ListenerSet()
    listeners.apply([(f"unix:{path}", 0)])
    assert st.S_IMODE(os.lstat(path).st_mode) == 0o660
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(path))
    # A second set cannot take it while the first listens.
    with pytest.raises(BindError, match=f"cannot listen on unix:{path}"):
        ListenerSet().apply([(f"unix:{path}", 0)])
    listeners.close()
    assert not path.exists(), "the socket file outlived the listener"


def test_unix_listener_never_removes_another_file(tmp_path):
    path = tmp_path / "app.sock"
    path.write_text("precious")
    with pytest.raises(BindError, match="not a socket"):
        ListenerSet().apply([(f"unix:{path}", 0)])
    assert path.read_text() == "precious"


def test_closing_leaves_a_socket_file_someone_else_put_there(tmp_path):
    path = tmp_path / "app.sock"
    listeners = ListenerSet()
    listeners.apply([(f"unix:{path}", 0)])
    path.unlink()
    other = socket.socket(socket.AF_UNIX)
    other.bind(str(path))
    try:
        listeners.close()
        assert path.exists()
    finally:
        other.close()
