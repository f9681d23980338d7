"""Authentication and URL authorization through a real server: Basic against an htpasswd file
made by Apache's `htpasswd` (bcrypt, SHA-256/512 crypt) and picked up when it changes, Digest
(MD5 via requests, SHA-256 by hand, stale nonces, replays), the 401.1/401.2/403 answers with
their challenges, IIS's deny-first rule order across levels, verbs, the user in the W3C log
and in Flask/FastAPI apps, and the bypass attempts of issue 9 item 8 (encoded paths, case,
`;` parameters, method override headers, malformed credentials)."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess

import pytest
import requests
from requests.auth import HTTPBasicAuth, HTTPDigestAuth

CONFIG = """
{pool_timing}
[http_errors]
error_mode = "Detailed"
# Every test comes from 127.0.0.1: only /limited counts failed logons.
[basic_authentication]
max_failed_logons = 0
[digest_authentication]
max_failed_logons = 0

[[pools]]
name = "Auth"

[[sites]]
name = "Auth Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "Auth"
physical_path = "www"
[[sites.applications]]
path = "/flask"
pool = "Auth"
app = "auth_apps:flask_app"
python_path = ["{apps}"]
[sites.applications.basic_authentication]
enabled = true
realm = "flask"
user_file = "{dir}/users.htpasswd"
group_file = "{dir}/groups"
[[sites.applications]]
path = "/fastapi"
pool = "AuthAsgi"
app = "auth_apps:fastapi_app"
python_path = ["{apps}"]
[sites.applications.basic_authentication]
enabled = true
user_file = "{dir}/users.htpasswd"

[[pools]]
name = "AuthAsgi"

[[locations]]
path = "Auth Site/basic"
[locations.anonymous_authentication]
enabled = false
[locations.basic_authentication]
enabled = true
realm = "wasp test"
user_file = "{dir}/users.htpasswd"
group_file = "{dir}/groups"

[[locations]]
path = "Auth Site/secret"
[locations.basic_authentication]
enabled = true
realm = "secret"
user_file = "{dir}/users.htpasswd"
group_file = "{dir}/groups"
[locations.authorization]
rules = { clear = true, add = [ { access_type = "Allow", users = "alice, bob, carol" },
                                { access_type = "Deny", roles = "banned" } ] }

[[locations]]
path = "Auth Site/secret/inner"
[locations.authorization]
rules = [ { access_type = "Allow", users = "*" } ]

[[locations]]
path = "Auth Site/readonly"
[locations.authorization]
rules = [ { access_type = "Deny", users = "*", verbs = "DELETE, PUT" } ]

[[locations]]
path = "Auth Site/digest"
[locations.anonymous_authentication]
enabled = false
[locations.digest_authentication]
enabled = true
realm = "digest realm"
user_file = "{dir}/users.htdigest"
group_file = "{dir}/groups"
[locations.authorization]
rules = [ { access_type = "Deny", users = "carol" } ]

[[locations]]
path = "Auth Site/both"
[locations.anonymous_authentication]
enabled = false
[locations.basic_authentication]
enabled = true
user_file = "{dir}/users.htpasswd"
[locations.digest_authentication]
enabled = true
realm = "both"
user_file = "{dir}/users.htdigest"

[[locations]]
path = "Auth Site/flask/domain"
[locations.basic_authentication]
default_logon_domain = "EXAMPLE.TEST"

[[locations]]
path = "Auth Site/flask/secret"
[locations.authorization]
rules = [ { access_type = "Deny", users = "?" } ]

[[locations]]
path = "Auth Site/fastapi/whoami"
[locations.authorization]
rules = [ { access_type = "Deny", users = "?" } ]

[[locations]]
path = "Auth Site/limited"
[locations.anonymous_authentication]
enabled = false
[locations.basic_authentication]
enabled = true
user_file = "{dir}/users.htpasswd"
max_failed_logons = 3
failed_logon_window = "10m"
"""

PASSWORDS = {"alice": "wonder land", "bob": "b:o:b", "carol": "çarol✓", "dave": "dave"}


def htpasswd(file, user, password, flag):
    subprocess.run(["htpasswd", "-b", flag, str(file), user, password], check=True,
                   capture_output=True)


def ha1(user, realm, password, h=hashlib.md5):
    return h(f"{user}:{realm}:{password}".encode()).hexdigest()


@pytest.fixture(scope="module")
def server(wasp_module_server):
    d = wasp_module_server.dir
    users = d / "users.htpasswd"
    users.touch()
    htpasswd(users, "alice", PASSWORDS["alice"], "-B")
    htpasswd(users, "bob", PASSWORDS["bob"], "-5")
    htpasswd(users, "carol", PASSWORDS["carol"], "-2")
    htpasswd(users, "erin@EXAMPLE.TEST", "erin pw", "-B")
    (d / "groups").write_text("banned: carol\nstaff: alice bob\n")
    lines = []
    for realm in ("digest realm", "both"):
        for user in ("alice", "carol"):
            lines.append(f"{user}:{realm}:{ha1(user, realm, PASSWORDS[user])}")
        # bob has only a SHA-256 HA1, alice both (curl picks the first challenge, SHA-256).
        lines.append(f"bob:{realm}:{ha1('bob', realm, PASSWORDS['bob'], hashlib.sha256)}")
        lines.append(f"alice:{realm}:{ha1('alice', realm, PASSWORDS['alice'], hashlib.sha256)}")
    (d / "users.htdigest").write_text("\n".join(lines) + "\n")
    for folder in ("basic", "secret", "secret/inner", "secret/dir", "readonly", "digest", "both",
                   "limited", "open"):
        (d / "www" / folder).mkdir(parents=True, exist_ok=True)
        (d / "www" / folder / "index.html").write_text(f"{folder} page")
    server = wasp_module_server(CONFIG)
    server.wait_until = wasp_module_server.wait_until
    return server


def get(server, path, auth=None, headers=None, method="GET"):
    return requests.request(method, server.url + path, auth=auth, headers=headers, timeout=30,
                            allow_redirects=False)


def basic(user, password=None):
    return HTTPBasicAuth(user.encode(), (PASSWORDS[user] if password is None else password).encode())


def status(r):
    m = re.search(r"HTTP Error (\d+)\.(\d+)", r.text)
    return (r.status_code, int(m.group(2)) if m else None)


# ---- Basic ----

@pytest.mark.parametrize("user", ["alice", "bob", "carol"])  # bcrypt, SHA-512, SHA-256 crypt
def test_basic_logs_on_each_hash_kind(server, user):
    r = get(server, "/basic/index.html", auth=basic(user))
    assert (r.status_code, r.text) == (200, "basic page"), r.text[:300]


def test_no_credentials_is_401_2_with_the_basic_challenge(server):
    r = get(server, "/basic/index.html")
    assert status(r) == (401, 2), r.text[:300]
    assert r.headers["WWW-Authenticate"] == 'Basic realm="wasp test", charset="UTF-8"'


@pytest.mark.parametrize("user, password", [("alice", "wrong"), ("nobody", "x"), ("alice", "")])
def test_bad_credentials_are_401_1_with_the_challenge_again(server, user, password):
    r = get(server, "/basic/index.html", auth=HTTPBasicAuth(user, password))
    assert status(r) == (401, 1), r.text[:300]
    assert r.headers["WWW-Authenticate"].startswith("Basic realm=")


def raw_basic(token: bytes) -> dict:
    return {"Authorization": "Basic " + token.decode("latin-1")}


@pytest.mark.parametrize("headers, expected", [
    (raw_basic(base64.b64encode(b"alice")), (401, 1)),                      # no colon
    (raw_basic(b"!!!not-base64!!!"), (401, 1)),                              # bad base64
    (raw_basic(base64.b64encode(b"alice:wonder land")[:-2]), (401, 1)),      # cut padding
    (raw_basic(base64.b64encode(b"alice\x00:wonder land")), (401, 1)),       # NUL in the user
    (raw_basic(base64.b64encode(b"alice:wonder land\x00")), (401, 1)),       # NUL in the password
    (raw_basic(base64.b64encode("çarol✓".encode("latin-1", "replace"))), (401, 1)),  # not UTF-8
    (raw_basic(base64.b64encode(b"a" * 6000 + b":x")), (401, 1)),            # huge
    (raw_basic(base64.b64encode(b":wonder land")), (401, 1)),                # empty user
    ({"Authorization": "basic " + base64.b64encode(b"alice:wonder land").decode()}, (200, None)),
    ({"Authorization": "BASIC   " + base64.b64encode(b"alice:wonder land").decode()}, (200, None)),
    ({"Authorization": "Bearer abc"}, (401, 2)),                             # another scheme
])
def test_malformed_basic_credentials(server, headers, expected):
    assert status(get(server, "/basic/index.html", headers=headers)) == expected


def test_two_authorization_headers_are_400(server):
    good = base64.b64encode(b"alice:wonder land")
    with server.connect() as conn:
        conn.send(b"GET /basic/index.html HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + good +
                  b"\r\nAuthorization: Basic " + base64.b64encode(b"bob:nope") + b"\r\n\r\n")
        r = conn.read_response()
    assert r.status == 400


def test_a_password_with_colons_and_unicode(server):
    assert get(server, "/basic/index.html", auth=basic("bob")).status_code == 200  # "b:o:b"
    assert get(server, "/basic/index.html", auth=basic("carol")).status_code == 200


def test_htpasswd_changes_are_picked_up_and_forget_cached_logons(server):
    users = server.dir / "users.htpasswd"
    htpasswd(users, "dave", "first", "-B")
    assert get(server, "/basic/index.html", auth=HTTPBasicAuth("dave", "first")).status_code == 200
    assert get(server, "/basic/index.html", auth=HTTPBasicAuth("dave", "first")).status_code == 200  # cached
    htpasswd(users, "dave", "second", "-B")
    assert status(get(server, "/basic/index.html", auth=HTTPBasicAuth("dave", "first"))) == (401, 1)
    assert get(server, "/basic/index.html", auth=HTTPBasicAuth("dave", "second")).status_code == 200
    subprocess.run(["htpasswd", "-D", str(users), "dave"], check=True, capture_output=True)
    assert status(get(server, "/basic/index.html", auth=HTTPBasicAuth("dave", "second"))) == (401, 1)


def test_failed_logons_are_limited_per_client(server):
    for _ in range(3):
        assert status(get(server, "/limited/index.html", auth=HTTPBasicAuth("alice", "guess"))) == (401, 1)
    # Locked out for the window: even the right password gets the same 401.1, unchecked.
    r = get(server, "/limited/index.html", auth=basic("alice"))
    assert status(r) == (401, 1)
    # Another URL's limit (its own max_failed_logons) is untouched.
    assert get(server, "/basic/index.html", auth=basic("alice")).status_code == 200


# ---- URL authorization ----

@pytest.mark.parametrize("path, user, expected", [
    ("/secret/index.html", None, (401, 2)),        # anonymous: 401.2 with the challenge
    ("/secret/index.html", "alice", (200, None)),
    ("/secret/index.html", "bob", (200, None)),
    ("/secret/index.html", "carol", (403, 0)),     # a Deny role beats the Allow of her name
    ("/secret/inner/index.html", None, (200, None)),   # a child's Allow * lets anonymous in
    ("/secret/inner/index.html", "carol", (403, 0)),   # but cannot undo the parent's Deny
    ("/secret/dir", None, (401, 2)),               # the redirect to dir/ is refused too
    ("/secret/dir", "alice", (301, None)),
    ("/open/index.html", None, (200, None)),
])
def test_rules_in_iis_order(server, path, user, expected):
    r = get(server, path, auth=basic(user) if user else None)
    assert status(r) == expected, r.text[:300]
    if expected[0] == 401:
        assert r.headers["WWW-Authenticate"] == 'Basic realm="secret", charset="UTF-8"'


@pytest.mark.parametrize("path", [
    "/secret/index.html", "/%73ecret/index.html", "/SECRET/index.html", "/Secret/Index.html",
    "/secret/./index.html", "/open/../secret/index.html", "/%2573ecret/index.html",
    "/secret;x/index.html", "/secret/index.html;x", "/secret//index.html", "/secret/",
    "/secret", "/SECRET/", "/secret/inner/../index.html", "/secret/%2e/index.html",
    "/secret./index.html", "/secret%20/index.html", "/%c0%afsecret/index.html",   # trailing dot, space, overlong
    "/%ef%bc%b3ecret/index.html", "/s%C3%A9cret/index.html", "/secre%E2%80%8Bt/index.html",  # fullwidth, é, ZWSP
    "/secret%00/index.html", "/secret%5cindex.html", "/secret\\index.html",
])
def test_encoded_and_disguised_paths_do_not_bypass_the_rules(server, path):
    r = get(server, path)
    # Refused, or nothing there (a name that is not the folder): never the secret page.
    assert r.status_code in (301, 400, 401, 404), (path, r.status_code)
    assert "secret page" not in r.text
    if r.status_code == 301:  # a redirect to the folder only, which is itself refused
        assert get(server, r.headers["Location"]).status_code in (401, 404)


@pytest.mark.parametrize("method, headers, expected", [
    ("GET", {}, 200), ("HEAD", {}, 200), ("DELETE", {}, 401), ("PUT", {}, 401),
    ("GET", {"X-HTTP-Method-Override": "DELETE"}, 401),
    ("POST", {"X-HTTP-Method": "put"}, 401),
    ("GET", {"X-Method-Override": "Delete"}, 401),
    ("GET", {"X-HTTP-Method-Override": "GET, DELETE"}, 401),
])
def test_verb_rules_and_method_override_headers(server, method, headers, expected):
    r = get(server, "/readonly/index.html", headers=headers, method=method)
    assert r.status_code == expected, (method, headers, r.status_code)


@pytest.mark.parametrize("query", ["_method=DELETE", "a=1&_METHOD=put", "_method=%64elete"])
def test_a_method_query_parameter_is_a_tunnelled_verb(server, query):
    assert get(server, "/readonly/index.html?" + query, method="POST").status_code == 401
    assert get(server, "/readonly/index.html?_method=GET").status_code == 200


def test_lower_case_method_is_the_same_verb(server):
    with server.connect() as conn:
        conn.send(b"delete /readonly/index.html HTTP/1.1\r\nHost: x\r\n\r\n")
        r = conn.read_response()
    assert r.status in (400, 401, 405) and r.status != 200


# ---- Digest ----

def test_digest_md5_with_requests(server):
    r = get(server, "/digest/index.html", auth=HTTPDigestAuth("alice", PASSWORDS["alice"]))
    assert (r.status_code, r.text) == (200, "digest page")


def test_digest_challenges_offer_sha256_first(server):
    r = get(server, "/digest/index.html")
    assert status(r) == (401, 2)
    offered = r.headers["WWW-Authenticate"]
    assert offered.index("algorithm=SHA-256") < offered.index("algorithm=MD5"), offered
    assert 'realm="digest realm"' in offered and 'qop="auth"' in offered


def nonce_of(server, path):
    r = get(server, path)
    return re.search(r'algorithm=SHA-256, nonce="([^"]+)"', r.headers["WWW-Authenticate"]).group(1)


def digest_header(user, password, realm, method, uri, nonce, nc="00000001", algorithm="SHA-256",
                  cnonce="0a4f113b", h=None, response=None):
    h = h or (hashlib.sha256 if algorithm == "SHA-256" else hashlib.md5)
    ha1_ = h(f"{user}:{realm}:{password}".encode()).hexdigest()
    ha2 = h(f"{method}:{uri}".encode()).hexdigest()
    response = response or h(f"{ha1_}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
    return {"Authorization": f'Digest username="{user}", realm="{realm}", uri="{uri}", '
                             f'algorithm={algorithm}, nonce="{nonce}", nc={nc}, cnonce="{cnonce}", '
                             f'qop=auth, response="{response}"'}


def test_digest_sha256_by_hand_and_replay(server):
    nonce = nonce_of(server, "/digest/index.html")
    headers = digest_header("bob", PASSWORDS["bob"], "digest realm", "GET", "/digest/index.html", nonce)
    assert get(server, "/digest/index.html", headers=headers).status_code == 200
    assert status(get(server, "/digest/index.html", headers=headers)) == (401, 1)  # replayed nc
    again = digest_header("bob", PASSWORDS["bob"], "digest realm", "GET", "/digest/index.html",
                          nonce, nc="00000002")
    assert get(server, "/digest/index.html", headers=again).status_code == 200


@pytest.mark.parametrize("change", [
    {"realm": "other realm"}, {"uri": "/digest/other.html"}, {"password": "wrong"},
    {"user": "mallory"}, {"algorithm": "SHA-512-256"}, {"nonce": "forged" + "A" * 37},
    {"method": "POST"},
])
def test_digest_wrong_answers_are_401_1(server, change):
    nonce = nonce_of(server, "/digest/index.html")
    args = {"user": "bob", "password": PASSWORDS["bob"], "realm": "digest realm", "method": "GET",
            "uri": "/digest/index.html", "nonce": nonce}
    args.update(change)
    headers = digest_header(args["user"], args["password"], args["realm"], args["method"],
                            args["uri"], args["nonce"], algorithm=args.get("algorithm", "SHA-256"),
                            h=hashlib.sha256)
    assert status(get(server, "/digest/index.html", headers=headers)) == (401, 1)


def test_digest_user_is_authorized_like_any_other(server):
    r = get(server, "/digest/index.html", auth=HTTPDigestAuth("carol", PASSWORDS["carol"]))
    assert status(r) == (403, 0)


def test_curl_digest(server):
    out = subprocess.run(["curl", "-s", "--digest", "-u", f"alice:{PASSWORDS['alice']}",
                          server.url + "/digest/index.html"], capture_output=True, text=True, timeout=30)
    assert out.stdout == "digest page", out


def test_basic_and_digest_together_challenge_digest_first(server):
    r = get(server, "/both/index.html")
    values = r.raw.headers.getlist("WWW-Authenticate")
    assert [v.split(" ")[0] for v in values] == ["Digest", "Digest", "Basic"], values
    assert get(server, "/both/index.html", auth=basic("alice")).status_code == 200
    assert get(server, "/both/index.html", auth=HTTPDigestAuth("alice", PASSWORDS["alice"])).status_code == 200


# ---- the user reaches the apps, the log and list requests ----

def test_flask_sees_remote_user_and_auth_type(server):
    r = get(server, "/flask/whoami", auth=basic("alice"))
    assert r.json() == {"user": "alice", "auth_type": "Basic", "method": "GET"}
    assert get(server, "/flask/whoami").json()["user"] is None  # anonymous
    r = get(server, "/flask/whoami", auth=basic("alice", "wrong"))
    assert status(r) == (401, 1)


def test_default_logon_domain_qualifies_a_name_typed_without_one(server):
    path = "/flask/domain/whoami"
    for typed in ("erin", "erin@EXAMPLE.TEST"):
        r = get(server, path, auth=HTTPBasicAuth(typed, "erin pw"))
        assert r.status_code == 200, r.text[:300]
        assert r.json()["user"] == "erin@EXAMPLE.TEST"  # what the store checked, the app sees
    # alice is in the file without a domain: under this location she is alice@EXAMPLE.TEST.
    assert status(get(server, path, auth=basic("alice"))) == (401, 1)
    # Without the setting, names are used as typed (and the verified-header cache, which just
    # saw "erin:erin pw" succeed under the domain, does not carry it over).
    assert status(get(server, "/flask/whoami", auth=HTTPBasicAuth("erin", "erin pw"))) == (401, 1)
    assert get(server, "/flask/whoami", auth=basic("alice")).json()["user"] == "alice"


def test_flask_rules_apply_to_the_app_and_its_redirects(server):
    assert status(get(server, "/flask/secret/page")) == (401, 2)
    assert get(server, "/flask/secret/page", auth=basic("bob")).json() == {"user": "bob", "page": "secret"}
    assert get(server, "/flask/go").status_code == 302


def test_an_app_can_still_do_its_own_auth(server):
    # Another scheme passes through untouched to an anonymous request.
    r = get(server, "/flask/header", headers={"Authorization": "Bearer my-token"})
    assert r.json() == {"authorization": "Bearer my-token", "user": None}


def test_fastapi_sees_the_user_extension_and_its_rules_apply(server):
    assert get(server, "/fastapi/whoami", auth=basic("alice")).json() == {
        "user": {"name": "alice", "auth_type": "Basic"}}
    assert status(get(server, "/fastapi/whoami")) == (401, 2)   # Deny "?" on the app's URL
    assert status(get(server, "/FastAPI/WhoAmI")) in ((401, 2), (404, 0))


def test_the_user_is_in_the_w3c_log(server):
    get(server, "/basic/index.html?logme=1", auth=basic("bob"))
    get(server, "/basic/index.html?logme=2")

    def logged():
        # (the bypass table's overlong %c0%af is logged as its raw bytes)
        lines = [line.split(" ") for path in (server.dir / "logs").rglob("u_ex*.log")
                 for line in path.read_text(errors="replace").splitlines() if not line.startswith("#")]
        return {f[5]: (f[7], f[11], f[12]) for f in lines if f[5].startswith("logme=")}
    server.wait_until(lambda: len(logged()) == 2, what="both requests in the W3C log")
    assert logged() == {"logme=1": ("bob", "200", "0"), "logme=2": ("-", "401", "2")}


def test_list_requests_shows_the_user(server):
    import threading

    release = server.dir / "release-wait"
    done = {}
    thread = threading.Thread(target=lambda: done.update(r=get(
        server, f"/flask/wait?until={release}", auth=basic("alice"))))
    thread.start()
    try:
        def waiting():
            rows = [r for r in server.list_json("requests") if r.get("url", "").startswith("/flask/wait")]
            return rows if rows and rows[0].get("module") == "python_app" else None
        [row] = server.wait_until(waiting, 30, what="the request in list requests")
        assert row["user"] == "alice"
        assert "user:alice" in server.cli("list", "requests").stdout
    finally:
        release.write_text("go")
        thread.join(30)
    assert done["r"].json() == {"user": "alice"}
