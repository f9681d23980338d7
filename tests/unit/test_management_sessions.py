"""The management site's login logic, sans I/O: sessions, CSRF, the token, Host and Origin."""

from __future__ import annotations

import base64
import json

import pytest

from wasp.management import sessions
from wasp.management.sessions import Sessions

KEY = b"k" * 32


def test_a_session_round_trips_and_names_its_user():
    codec = Sessions(KEY, 600)
    issued, cookie = codec.issue("alice", 1000.0)
    got = codec.verify(cookie, 1001.0)
    assert got is not None and got.user == "alice" and got.sid == issued.sid


def test_a_forged_or_altered_cookie_is_refused():
    codec = Sessions(KEY, 600)
    _, cookie = codec.issue("alice", 1000.0)
    body, mac = cookie.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["u"] = "mallory"
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode() + "." + mac
    assert codec.verify(forged, 1001.0) is None
    assert Sessions(b"x" * 32, 600).verify(cookie, 1001.0) is None  # another key (a restart)
    for junk in ("", ".", "a.b.c", "!!!.???", "x" * 5000, body, mac):
        assert codec.verify(junk, 1001.0) is None


def test_a_session_ends_when_idle_and_at_its_maximum_lifetime():
    codec = Sessions(KEY, 600)
    session, cookie = codec.issue("alice", 1000.0)
    assert codec.verify(cookie, 1600.0) is not None
    assert codec.verify(cookie, 1601.0) is None  # idle too long
    # In use all along: each refresh moves "seen", but the lifetime still ends it.
    now, current = 1000.0, cookie
    while True:
        now += 500
        got = codec.verify(current, now)
        if got is None:
            break
        fresh = codec.refreshed(got, now)
        assert fresh is not None
        current = fresh[1]
    assert now - 1000.0 > 600 * sessions.MAX_LIFETIMES - 500
    assert now - 1000.0 <= 600 * sessions.MAX_LIFETIMES + 500


def test_a_fresh_session_is_not_refreshed_at_once():
    codec = Sessions(KEY, 600)
    session, _ = codec.issue("alice", 1000.0)
    assert codec.refreshed(session, 1010.0) is None
    assert codec.refreshed(session, 1000.0 + 600 * sessions.REFRESH_SHARE + 1) is not None


def test_a_revoked_session_is_refused():
    codec = Sessions(KEY, 600)
    session, cookie = codec.issue("alice", 1000.0)
    codec.revoke(session)
    assert codec.verify(cookie, 1001.0) is None


def test_a_cookie_from_the_future_is_refused():
    codec = Sessions(KEY, 600)
    _, cookie = codec.issue("alice", 5000.0)
    assert codec.verify(cookie, 1000.0) is None


def test_the_csrf_token_belongs_to_its_session():
    codec = Sessions(KEY, 600)
    a, _ = codec.issue("alice", 1000.0)
    b, _ = codec.issue("alice", 1000.0)
    token = codec.csrf_token(a)
    assert codec.check_csrf(a, token)
    assert not codec.check_csrf(b, token)
    assert not codec.check_csrf(a, None)
    assert not codec.check_csrf(a, "")
    assert not codec.check_csrf(a, token[:-1])
    assert not codec.check_csrf(a, "é" * 10)


def test_a_short_key_is_refused():
    with pytest.raises(ValueError):
        Sessions(b"short", 600)


def test_the_token_matches_only_itself():
    assert sessions.token_matches("abc", "abc")
    assert not sessions.token_matches("abd", "abc")
    assert not sessions.token_matches("", "")
    assert not sessions.token_matches(None, "abc")
    assert not sessions.token_matches("abc", "")


def test_cookies_are_httponly_samesite_strict_and_secure_with_tls():
    plain = sessions.set_cookie("v", tls=False)
    assert "HttpOnly" in plain and "SameSite=Strict" in plain and "Secure" not in plain
    assert plain.startswith("wasp_mgmt=v;") and "Path=/" in plain
    secure = sessions.set_cookie("v", tls=True)
    assert secure.startswith("__Host-wasp_mgmt=v;") and "; Secure" in secure
    assert "Max-Age=0" in sessions.clear_cookie(False)


def test_cookie_value_takes_exactly_one_session_cookie():
    assert sessions.cookie_value("a=1; wasp_mgmt=xyz; b=2", False) == "xyz"
    assert sessions.cookie_value("wasp_mgmt=one; wasp_mgmt=two", False) is None
    assert sessions.cookie_value("wasp_mgmt=xyz", True) is None  # https wants the __Host- cookie
    assert sessions.cookie_value("__Host-wasp_mgmt=s", True) == "s"
    assert sessions.cookie_value(None, False) is None


@pytest.mark.parametrize("host,ok", [
    ("127.0.0.1:8172", True), ("localhost:8172", True), ("[::1]:8172", True), ("LOCALHOST", True),
    ("mgmt.example.test:8172", True), ("evil.example:8172", False), ("", False), (None, False),
    ("[::1", False), ("127.0.0.1.evil.example", False),
])
def test_only_addresses_localhost_and_bound_names_are_served(host, ok):
    assert sessions.host_allowed(host, ["mgmt.example.test"]) is ok


def test_origin_must_be_this_site():
    assert sessions.origin_allowed(None, "127.0.0.1:8172", False)
    assert sessions.origin_allowed("http://127.0.0.1:8172", "127.0.0.1:8172", False)
    assert not sessions.origin_allowed("http://evil.example", "127.0.0.1:8172", False)
    assert not sessions.origin_allowed("http://127.0.0.1:8172", "127.0.0.1:8172", True)
    assert not sessions.origin_allowed("null", "127.0.0.1:8172", False)
