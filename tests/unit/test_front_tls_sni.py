"""The front's TLS listener context with a ClientHello whose server name is not ASCII: refused
with an alert, counted, and nothing printed to stderr (wasp/front/tls.py quiet_bad_server_names).
Found by fuzz/tls.py."""

from __future__ import annotations

import ssl
import sys

import pytest

from bench.certs import self_signed
from wasp.config import model
from wasp.front import tls


def _hello(server_name: str) -> bytes:
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


@pytest.fixture
def listener(tmp_path):
    cert, key = self_signed(str(tmp_path / "certs"))
    state = tls.TlsState()
    state.apply(model.Config(pools=[model.Pool(name="P")], sites=[model.Site(
        name="S", id=1, bindings=[model.SiteBinding(binding="https/*:443:", certificate=cert, key=key)],
        applications=[model.Application(path="/", pool="P")])]))
    return state.listener_context(443)


def _serve(context: ssl.SSLContext, hello: bytes) -> tuple[bool, bytes]:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = context.wrap_bio(incoming, outgoing, server_side=True)
    incoming.write(hello)
    try:
        server.do_handshake()
    except ssl.SSLWantReadError:
        return True, outgoing.read()
    except ssl.SSLError:
        return False, outgoing.read()
    return True, outgoing.read()


def test_a_server_name_that_is_not_ascii_is_refused_quietly_and_counted(listener, monkeypatch):
    passed_on = []
    monkeypatch.setattr(sys, "unraisablehook", passed_on.append)
    tls.quiet_bad_server_names()
    hello = _hello("b.example0")
    bad = hello.replace(b"b.example0", b"b.examp\x94\x910")
    assert bad != hello
    before = tls.refused_server_names
    ok, out = _serve(listener, bad)
    assert not ok and out[:1] == b"\x15"            # an alert record, no ServerHello
    assert tls.refused_server_names == before + 1
    assert passed_on == []
    ok, out = _serve(listener, hello)                 # the same hello with an ASCII name goes on
    assert ok and out[:1] == b"\x16" and tls.refused_server_names == before + 1


def test_other_unraisable_exceptions_still_reach_the_previous_hook(monkeypatch):
    passed_on = []
    monkeypatch.setattr(sys, "unraisablehook", passed_on.append)
    tls.quiet_bad_server_names()

    class Info:
        exc_value = UnicodeDecodeError("ascii", b"\xff", 0, 1, "x")
        object = "not the bytes decoded"

    sys.unraisablehook(Info)
    assert passed_on == [Info]
