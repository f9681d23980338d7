"""The front answers an ACME CA's HTTP-01 challenges itself, before routing, and only for the exact
tokens the manager said are pending, for the host each was issued for (wasp/front/challenges.py)."""

from __future__ import annotations

import pytest

from front_fakes import FrontRig, make_config, split_responses
from wasp.config import model
from wasp.front.challenges import http01_answer, pending_from_message

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEYAUTH = TOKEN + ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
PENDING = pending_from_message({TOKEN: ["www.example.test", KEYAUTH]})
PATH = b"/.well-known/acme-challenge/" + TOKEN.encode()


def test_a_pending_token_for_its_host_gets_its_key_authorization():
    assert http01_answer(PENDING, b"GET", PATH, b"", b"www.example.test") == KEYAUTH.encode()
    assert http01_answer(PENDING, b"HEAD", PATH, b"", b"WWW.Example.TEST:80") == KEYAUTH.encode()
    assert http01_answer(PENDING, b"GET", PATH, b"", b"www.example.test.") == KEYAUTH.encode()


@pytest.mark.parametrize("method, path, query, host", [
    (b"GET", PATH, b"", b"other.example.test"),          # another host: not its token
    (b"GET", PATH, b"", b"[::1]:80"),
    (b"POST", PATH, b"", b"www.example.test"),
    (b"GET", PATH, b"x=1", b"www.example.test"),
    (b"GET", PATH[:-1], b"", b"www.example.test"),        # a prefix of the token
    (b"GET", PATH + b"x", b"", b"www.example.test"),
    (b"GET", PATH + b"/", b"", b"www.example.test"),
    (b"GET", b"/.well-known/acme-challenge/", b"", b"www.example.test"),   # no listing
    (b"GET", b"/.well-known/acme-challenge", b"", b"www.example.test"),
    (b"GET", b"/x" + PATH, b"", b"www.example.test"),
])
def test_anything_else_is_not_answered(method, path, query, host):
    assert http01_answer(PENDING, method, path, query, host) is None


def test_malformed_entries_of_the_message_are_left_out():
    pending = pending_from_message({"../x": ["h", "k"], "short": ["h", "k"], TOKEN: ["h"], 5: ["h", "k"],
                                    "A" * 43: [1, "k"], "B" * 43: ["h", "k"]})
    assert list(pending) == [b"B" * 43]
    assert pending_from_message(None) == {} and pending_from_message(["x"]) == {}


@pytest.fixture
def rig(tmp_path):
    site = model.Site(name="S", id=1, bindings=["http/*:8080:www.example.test"],
                      applications=[model.Application(path="/", pool="P")])
    rig = FrontRig(tmp_path, make_config(tmp_path, sites=[site]))
    rig.server.acme_http01 = PENDING
    return rig


def request(path: bytes, host: bytes = b"www.example.test", extra: bytes = b"") -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\n" + extra + b"\r\n"


def test_the_front_answers_before_any_pool_and_keeps_the_connection(rig):
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(request(PATH) + request(b"/after"))
    [(status, headers, body)] = split_responses(transport.take())
    assert (status, body) == (200, KEYAUTH.encode())
    assert headers["content-type"] == "text/plain" and "connection" not in headers
    # The next request on the connection goes to the pool as usual; the challenge never did.
    [(_, head, _)] = worker.requests()
    assert head.path == b"/after"


def test_answered_even_for_a_host_no_binding_of_the_port_has(tmp_path):
    site = model.Site(name="S", id=1, bindings=["http/*:8080:other.example.test"],
                      applications=[model.Application(path="/", pool="P")])
    rig = FrontRig(tmp_path, make_config(tmp_path, sites=[site]))
    rig.server.acme_http01 = PENDING
    conn, transport = rig.connect()
    conn.data_received(request(PATH, extra=b"Connection: close\r\n"))
    [(status, headers, body)] = split_responses(transport.take())
    assert (status, body, headers["connection"]) == (200, KEYAUTH.encode(), "close")


def test_a_token_that_is_not_pending_is_routed_to_the_application(rig):
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(request(b"/.well-known/acme-challenge/" + b"Z" * 43))
    [(_, head, _)] = worker.requests()
    assert head.path == b"/.well-known/acme-challenge/" + b"Z" * 43
    assert transport.take() == b""
    rig.server.acme_http01 = {}
    conn.data_received(b"")  # nothing more


def test_a_pending_token_for_another_host_is_routed_like_any_request(rig):
    conn, transport = rig.connect()
    conn.data_received(request(PATH, host=b"evil.example.test"))
    [(status, _, _)] = split_responses(transport.take())
    assert status == 400   # no binding for that host: the token's answer is not given out
