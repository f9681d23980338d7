"""Authentication's sans-I/O parts: SHA-crypt against openssl and Apache's htpasswd, the
credential files (parsing, reload, unknown users), Basic credential parsing, the token cache,
the failed-logon limiter, Digest nonces and responses, and URL authorization's rule order."""

from __future__ import annotations

import ast
import base64
import hashlib
import inspect
import shutil
import subprocess
import textwrap

import pytest

from wasp.config.sections.authorization import Rule
from wasp.errors import BadRequest
from wasp.worker.auth import credentials, digest, files, shacrypt
from wasp.worker.auth.credentials import FailureLimiter, Malformed, TokenCache, parse_basic
from wasp.worker.modules.url_authorization import Compiled


# ---- SHA-crypt ----

@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
@pytest.mark.parametrize("variant", ["5", "6"])
@pytest.mark.parametrize("password", ["Hello world!", "a", "x" * 70, "pässwörd ✓", "with:colon"])
def test_shacrypt_matches_openssl(variant, password):
    made = subprocess.run(["openssl", "passwd", f"-{variant}", "-salt", "saltstring", password],
                          capture_output=True, check=True).stdout.strip()
    assert shacrypt.hash_password(password.encode(), b"saltstring", variant) == made
    assert shacrypt.verify(password.encode(), made)
    assert not shacrypt.verify(password.encode() + b"!", made)


@pytest.mark.skipif(shutil.which("htpasswd") is None, reason="apache2-utils not installed")
@pytest.mark.parametrize("flag, rounds", [("-2", None), ("-5", None), ("-2", "1000"), ("-5", "12345")])
def test_shacrypt_checks_what_htpasswd_writes(flag, rounds):
    args = ["htpasswd", "-nb", flag] + (["-r", rounds] if rounds else []) + ["u", "sëcret pw"]
    line = subprocess.run(args, capture_output=True, check=True).stdout.strip()
    hashed = line.split(b":", 1)[1]
    assert shacrypt.verify("sëcret pw".encode(), hashed)
    assert not shacrypt.verify(b"secret pw", hashed)


@pytest.mark.parametrize("bad", [b"$6$", b"$6$salt", b"$6$salt$short", b"$6$rounds=x$s$" + b"a" * 86,
                                 b"$1$abc$def", b"$6$salt$" + b"!" * 86])
def test_malformed_shacrypt_is_refused(bad):
    with pytest.raises(shacrypt.MalformedHash):
        shacrypt.verify(b"x", bad)


def test_password_comparisons_are_constant_time():
    # No early exit on the secret: each check ends in hmac.compare_digest (or bcrypt's own).
    for func in (shacrypt.verify, digest.DigestAuth.check, files.same):
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
        names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        assert "compare_digest" in names, func
    assert "==" not in inspect.getsource(shacrypt.verify)


# ---- files ----

def test_htpasswd_file_checks_bcrypt_and_sha_crypt_and_reloads(tmp_path):
    import bcrypt

    path = tmp_path / "users"
    path.write_text(
        "# comment\n\n"
        f"alice:{bcrypt.hashpw(b'wonder', bcrypt.gensalt(4)).decode().replace('$2b$', '$2y$')}\n"
        f"bob:{shacrypt.hash_password(b'builder', b'NaCl', '6').decode()}\n"
        "carl:$apr1$abc$def\n"        # refused kinds
        "dora:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"
        "garbage line\n")
    store = files.HtpasswdFile(str(path))
    assert store.check("alice", "wonder") and store.check("bob", "builder")
    assert not store.check("alice", "builder") and not store.check("carl", "x")
    assert not store.check("dora", "password") and not store.check("nobody", "wonder")
    first = store.generation
    path.write_text(f"alice:{bcrypt.hashpw(b'new', bcrypt.gensalt(4)).decode()}\n")
    assert store.check("alice", "new") and not store.check("alice", "wonder")
    assert not store.check("bob", "builder")
    assert store.generation > first
    path.unlink()
    assert not store.check("alice", "new")  # a missing file: nobody logs on


def test_bcrypt_passwords_past_72_bytes_check_like_apache(tmp_path):
    import bcrypt

    long = b"p" * 72
    path = tmp_path / "users"
    path.write_text(f"u:{bcrypt.hashpw(long, bcrypt.gensalt(4)).decode()}\n")
    store = files.HtpasswdFile(str(path))
    assert store.check("u", "p" * 80)  # bcrypt reads 72 bytes, as htpasswd -B does


def test_unknown_user_pays_a_real_hash(tmp_path, monkeypatch):
    path = tmp_path / "users"
    path.write_text(f"bob:{shacrypt.hash_password(b'x', b'salt', '5').decode()}\n")
    store = files.HtpasswdFile(str(path))
    calls = []
    real = files.check_hash
    monkeypatch.setattr(files, "check_hash", lambda pw, h: calls.append(h) or real(pw, h))
    assert not store.check("mallory", "x")
    assert calls and calls[0].startswith(b"$5$")


def test_htdigest_and_htgroup_files(tmp_path):
    md5 = hashlib.md5(b"u:r:pw").hexdigest()
    sha = hashlib.sha256(b"u:r:pw").hexdigest()
    (tmp_path / "d").write_text(f"u:r:{md5}\nu:r:{sha}\nu:realm with: colon:{md5}\nbad:line\n")
    store = files.HtdigestFile(str(tmp_path / "d"))
    assert store.ha1("u", "r", 32) == md5 and store.ha1("u", "r", 64) == sha
    assert store.ha1("u", "realm with: colon", 32) == md5
    assert store.ha1("bad", "line", 32) is None
    (tmp_path / "g").write_text("staff: alice bob\nadmins:alice\n: nobody\n")
    groups = files.HtgroupFile(str(tmp_path / "g"))
    assert groups.roles("alice") == {"staff", "admins"} and groups.roles("bob") == {"staff"}
    assert groups.roles("eve") == frozenset()


# ---- Basic ----

def b64(raw: bytes) -> bytes:
    return base64.b64encode(raw)


@pytest.mark.parametrize("token, expected", [
    (b64(b"alice:wonder land"), ("alice", "wonder land")),
    (b64(b"bob:b:o:b"), ("bob", "b:o:b")),                 # the first ":" splits
    (b64("zoë:pässword".encode()), ("zoë", "pässword")),
    (b"  " + b64(b"a:b") + b" ", ("a", "b")),
    (b64(b"a:"), ("a", "")),
])
def test_parse_basic(token, expected):
    assert parse_basic(token) == expected


@pytest.mark.parametrize("token", [
    b64(b"alice"), b"not base64!", b64(b"a:b")[:-1], b64(b":pw"), b64(b"a\x00:pw"), b64(b"a:p\x00w"),
    b64(b"a\r\nX-Injected: 1:pw"), b64("é:x".encode("latin-1")), b"A" * 9000, b"",
    b64(b"a:b") + b"=", b"YTpi\nYTpi",
])
def test_parse_basic_refuses_malformed(token):
    with pytest.raises(Malformed):
        parse_basic(token)


def test_authorization_header_lookup():
    assert credentials.authorization([(b"Host", b"x"), (b"AUTHORIZATION", b"Basic x")]) == b"Basic x"
    assert credentials.authorization([(b"Host", b"x")]) is None
    with pytest.raises(BadRequest):
        credentials.authorization([(b"Authorization", b"Basic a"), (b"authorization", b"Basic b")])
    assert credentials.scheme_of(b"bAsIc   abc") == (b"basic", b"abc")


def test_token_cache_expires_forgets_old_generations_and_is_bounded():
    cache = TokenCache(ttl=10, size=3)
    key = cache.key("store", b"Basic abc")
    assert key != cache.key("other", b"Basic abc") and b"abc" not in key
    cache.put(key, 1, "alice", frozenset({"staff"}), now=100)
    assert cache.get(key, 1, now=105) == ("alice", frozenset({"staff"}))
    assert cache.get(key, 2, now=105) is None      # the file changed
    cache.put(key, 1, "alice", frozenset(), now=100)
    assert cache.get(key, 1, now=110) is None      # past the TTL
    for i in range(5):
        cache.put(cache.key("s", b"%d" % i), 1, f"u{i}", frozenset(), now=100)
    assert len(cache) == 3
    assert cache.get(cache.key("s", b"0"), 1, now=101) is None
    cache.put(key, 1, "alice", frozenset(), now=100, ttl=0)   # user_token_ttl = "0s"
    assert cache.get(key, 1, now=100) is None


def test_failure_limiter_counts_per_client_in_a_window():
    limiter = FailureLimiter(limit=3, window=60, size=2)
    for t in (0, 1, 2):
        assert not limiter.blocked("10.0.0.1", t)
        limiter.failed("10.0.0.1", t)
    assert limiter.blocked("10.0.0.1", 3) and not limiter.blocked("10.0.0.2", 3)
    assert not limiter.blocked("10.0.0.1", 61)     # the window passed
    limiter.failed("a", 0), limiter.failed("b", 0), limiter.failed("c", 0)
    assert len(limiter._clients) == 2              # bounded
    assert not FailureLimiter(limit=0).blocked("x", 0)


# ---- Digest ----

def response(params, method, password, h=hashlib.md5):
    ha1 = h(f"{params['username']}:{params['realm']}:{password}".encode()).hexdigest()
    ha2 = h(f"{method}:{params['uri']}".encode()).hexdigest()
    return h(f"{ha1}:{params['nonce']}:{params['nc']}:{params['cnonce']}:auth:{ha2}".encode()).hexdigest()


def answer(auth, now, nc="00000001", algorithm="MD5", password="pw", **change):
    h = hashlib.sha256 if algorithm == "SHA-256" else hashlib.md5
    params = {"username": "u", "realm": "r", "nonce": auth.nonce(now), "uri": "/x?y=1", "qop": "auth",
              "nc": nc, "cnonce": "abc", "algorithm": algorithm}
    params["response"] = response(params, "GET", password, h)
    params.update(change)
    return params


def ha1_of(u, r, a):
    if u != "u":
        return None
    return (hashlib.sha256 if a == "SHA-256" else hashlib.md5)(f"u:{r}:pw".encode()).hexdigest()


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_digest_checks_replays_and_staleness(algorithm):
    auth = digest.DigestAuth(lifetime=60)
    params = answer(auth, 1000, algorithm=algorithm)
    assert auth.check(params, "GET", "/x?y=1", "r", ha1_of, 1001) == "u"
    assert auth.check(params, "GET", "/x?y=1", "r", ha1_of, 1001) is None        # replayed nc
    again = answer(auth, 1000, algorithm=algorithm, nc="00000002", nonce=params["nonce"])
    again["response"] = response(again, "GET", "pw", hashlib.sha256 if algorithm == "SHA-256" else hashlib.md5)
    assert auth.check(again, "GET", "/x?y=1", "r", ha1_of, 1002) == "u"
    with pytest.raises(digest.Stale):
        auth.check(answer(auth, 1000, algorithm=algorithm), "GET", "/x?y=1", "r", ha1_of, 1061)
    assert auth.check(answer(auth, 1000, algorithm=algorithm, password="no"), "GET", "/x?y=1", "r",
                      ha1_of, 1001) is None


@pytest.mark.parametrize("change, error", [
    ({"realm": "other"}, Malformed), ({"uri": "/elsewhere"}, Malformed), ({"qop": "auth-int"}, Malformed),
    ({"algorithm": "MD5-sess"}, Malformed), ({"nc": "1"}, Malformed), ({"nonce": "x" * 43}, Malformed),
    ({"userhash": "true"}, Malformed), ({"username": "ghost"}, None),
])
def test_digest_wrong_answers(change, error):
    auth = digest.DigestAuth()
    params = answer(auth, 1000, **change)
    if error is None:
        assert auth.check(params, "GET", "/x?y=1", "r", ha1_of, 1000) is None
    else:
        with pytest.raises(error):
            auth.check(params, "GET", "/x?y=1", "r", ha1_of, 1000)


def test_another_secrets_nonce_is_not_recognised():
    mine, theirs = digest.DigestAuth(), digest.DigestAuth()
    assert mine.issued_at(theirs.nonce(5)) is None and mine.issued_at(mine.nonce(5)) == 5000
    with pytest.raises(Malformed):
        mine.check(answer(theirs, 1000), "GET", "/x?y=1", "r", ha1_of, 1000)


def test_a_sibling_workers_nonce_is_stale_never_accepted_twice():
    # Two workers of a pool (or one before and one after a recycle): the pool's secret, each its
    # own issuer and replay table.
    secret = bytes(range(32))
    first, second = digest.DigestAuth(60, secret), digest.DigestAuth(60, secret)
    params = answer(first, 1000)
    assert second.issued_at(params["nonce"]) == 1000 * 1000       # recognised
    with pytest.raises(digest.Stale):                             # right answer: retry silently
        second.check(params, "GET", "/x?y=1", "r", ha1_of, 1001)
    assert first.check(params, "GET", "/x?y=1", "r", ha1_of, 1001) == "u"
    with pytest.raises(digest.Stale):                             # its replay: not accepted there
        second.check(params, "GET", "/x?y=1", "r", ha1_of, 1002)
    assert first.check(params, "GET", "/x?y=1", "r", ha1_of, 1002) is None  # nor here
    wrong = answer(first, 1000, password="no")
    assert second.check(wrong, "GET", "/x?y=1", "r", ha1_of, 1001) is None  # a wrong one: 401.1


def test_an_evicted_nonce_is_never_accepted_again():
    auth = digest.DigestAuth(lifetime=1000, size=2)
    first = answer(auth, 1000)
    assert auth.check(first, "GET", "/x?y=1", "r", ha1_of, 1000) == "u"
    for t in (1001, 1002):
        assert auth.check(answer(auth, t), "GET", "/x?y=1", "r", ha1_of, t) == "u"
    with pytest.raises(digest.Stale):  # its nc history is gone: a fresh nonce, not a replay
        auth.check(first, "GET", "/x?y=1", "r", ha1_of, 1003)


@pytest.mark.parametrize("raw", [
    b'username="u", realm="r"',                                   # missing parameters
    b'username="u", username="v", realm="r", nonce="n", uri="/", response="x", qop=auth, nc=00000001, cnonce="c"',
    b'username="u\x00", realm="r", nonce="n", uri="/", response="x", qop=auth, nc=00000001, cnonce="c"',
    b'username="u" realm="r"',                                    # no comma
    b"x" * 9000,
])
def test_digest_parse_refuses(raw):
    with pytest.raises(Malformed):
        digest.parse(raw)


def test_digest_parse_unquotes():
    params = digest.parse(b'username="a\\"b", realm="r, s", nonce=abc, uri="/", response="f", '
                          b'qop=auth, nc=00000001, cnonce="c"')
    assert params["username"] == 'a"b' and params["realm"] == "r, s" and params["nonce"] == "abc"


# ---- URL authorization ----

def rules(*specs):
    return Compiled([Rule(access_type=a, users=u, roles=r, verbs=v) for a, u, r, v in specs])


@pytest.mark.parametrize("specs, user, roles, method, allowed", [
    ([("Allow", "*", "", "")], "", (), "GET", True),
    ([("Allow", "*", "", ""), ("Deny", "?", "", "")], "", (), "GET", False),   # deny first, wherever
    ([("Allow", "*", "", ""), ("Deny", "?", "", "")], "bob", (), "GET", True),
    ([("Allow", "alice", "", "")], "ALICE", (), "GET", True),                  # names without case
    ([("Deny", "bob", "", ""), ("Allow", "*", "", "")], "BoB", (), "GET", False),
    ([("Allow", "", "staff", "")], "carol", ("Staff",), "GET", True),
    ([("Allow", "", "staff", "")], "", ("staff",), "GET", False),              # anonymous has no roles
    ([("Allow", "*", "", ""), ("Deny", "*", "", "DELETE")], "a", (), "delete", False),
    ([("Allow", "*", "", "GET")], "a", (), "HEAD", False),                      # HEAD is not GET
    ([("Allow", "*", "", "GET, HEAD")], "a", (), "HEAD", True),
    ([], "a", (), "GET", False),                                               # nothing allows
    ([("Allow", "", "", "")], "a", (), "GET", False),                          # a rule naming nobody
])
def test_rule_order_and_matching(specs, user, roles, method, allowed):
    compiled = rules(*specs)
    assert compiled.allowed(user.casefold(), frozenset(r.casefold() for r in roles),
                            method.upper()) is allowed


def test_only_the_default_rule_is_open():
    assert rules(("Allow", "*", "", "")).open
    assert not rules(("Allow", "*", "", "GET")).open
    assert not rules(("Allow", "*", "", ""), ("Deny", "?", "", "")).open


def test_the_host_realm_cannot_inject_into_the_challenge():
    from types import SimpleNamespace

    from wasp.worker.auth import host_of

    def ctx(host):
        return SimpleNamespace(head=SimpleNamespace(headers=[(b"Host", host)], server=("127.0.0.1", 80)))
    assert host_of(ctx(b"example.test:8080")) == "example.test"
    assert host_of(ctx(b"[::1]:8080")) == "[::1]"
    assert host_of(ctx(b'evil", stale=true, x="\\')) == "evilstaletruex"
    assert digest.quote(r'a"b\c') == r'"a\"b\\c"'


# ---- default_logon_domain ----

@pytest.mark.parametrize("typed, expect", [
    ("alice", "alice@EXAMPLE.COM"), ("alice@other.org", "alice@other.org"),
    ("OTHER\\alice", "OTHER\\alice"),
])
def test_default_logon_domain_qualifies_names_typed_without_one(typed, expect):
    from wasp.worker.modules.basic_authentication import qualified
    assert qualified(typed, "EXAMPLE.COM") == expect


@pytest.mark.parametrize("domain, ok", [
    ("EXAMPLE.COM", True), ("CONTOSO", True), ("", True), ("a-b.example", True),
    ("bad domain", False), ("x@y", False), ("X\\Y", False), ("-lead", False), ("a\r\nb", False),
])
def test_default_logon_domain_is_checked_with_its_dotted_path(domain, ok):
    from wasp.config import sections
    problems = []
    sections.resolve([("", {"basic_authentication": {"default_logon_domain": domain}})],
                     lambda p, m: problems.append((p, m)))
    if ok:
        assert problems == []
    else:
        assert [p for p, _ in problems] == ["basic_authentication.default_logon_domain"], problems
