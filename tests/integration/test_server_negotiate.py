"""Negotiate (Kerberos through GSSAPI) end to end, against a real MIT KDC the tests set up
(krb_support.py): curl --negotiate and GSSAPI client code get in as their principal, the app sees
REMOTE_USER / AUTH_TYPE and the ASGI `user` extension, the W3C log shows cs-username, the mutual
authentication token comes back and verifies; a garbage token, a ticket for a service the server
has no key for, one for a principal the location does not accept, and a ticket from before the
service was re-keyed are 401.1, and so is a token sent again (the acceptor's replay cache, which
the worker's environment cannot turn off); no header is the challenge (401.2 where anonymous is off)."""

from __future__ import annotations

import base64
import json
import subprocess

import pytest

from conftest import RawConnection, free_port, wait_until
from krb_support import REALM, Realm, available, negotiate_token

pytestmark = pytest.mark.skipif(bool(available()), reason=f"needs {available()}")

CONFIG = """
{pool_timing}
[http_errors]
error_mode = "Detailed"

[[pools]]
name = "krb"

[[sites]]
name = "krb"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "krb"
app = "auth_app:app"
python_path = ["{apps}"]
physical_path = "www"
[[sites.applications]]
path = "/asgi"
pool = "krb"
app = "auth_app:asgi_app"
interface = "asgi"
python_path = ["{apps}"]

[windows_authentication]
enabled = true
keytab = "@KEYTAB@"

[[locations]]
path = "krb/private"
[locations.anonymous_authentication]
enabled = false

[[locations]]
path = "krb/asgi"
[locations.anonymous_authentication]
enabled = false

[[locations]]
path = "krb/short"
[locations.anonymous_authentication]
enabled = false
[locations.windows_authentication]
strip_realm = true

[[locations]]
path = "krb/only"
[locations.anonymous_authentication]
enabled = false
[locations.windows_authentication]
service_principal = "HTTP/localhost@WASP.TEST"
"""


@pytest.fixture(scope="module")
def krb(wasp_module_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("krb")
    realm = Realm(folder / "realm", free_port()).create()
    keytab = folder / "http.keytab"
    realm.add_user("alice", "alice-password")
    realm.add_service("HTTP/localhost", keytab)
    realm.add_service("HTTP/other.test", keytab)     # in the keytab, but not HTTP/localhost
    realm.add_service("HTTP/nokey.test")              # known to the KDC, not to the server
    realm.add_service("HTTP/rekeyed.test", keytab)
    realm.start()
    try:
        client = realm.kinit("alice", "alice-password", folder / "alice.ccache")
        # A ticket for the old key, then a new key for the server (an old kvno in the keytab gone).
        stale, _ = negotiate_token(client, "HTTP/rekeyed.test@" + REALM)
        realm.kadmin(f"ktremove -k {keytab} HTTP/rekeyed.test all")
        realm.kadmin(f"ktadd -k {keytab} HTTP/rekeyed.test")
        www = wasp_module_server.dir / "www"
        for sub in ("", "private"):
            (www / sub).mkdir(parents=True, exist_ok=True)
            (www / sub / "page.txt").write_text(f"{sub or 'root'} page")
        server = wasp_module_server(CONFIG.replace("@KEYTAB@", str(keytab)),
                                    # A worker environment that turns MIT's replay cache off:
                                    # the module names its own, so a replay is still refused.
                                    env={"KRB5_CONFIG": str(realm.krb5_conf),
                                         "KRB5RCACHETYPE": "none"})
        server.realm, server.client, server.stale = realm, client, stale
        yield server
    finally:
        realm.stop()


def request(server, path: str, token: str | None = None, conn: RawConnection | None = None):
    headers = {"Authorization": f"Negotiate {token}"} if token is not None else {}
    if conn is not None:
        return conn.request("GET", path, headers=headers)
    with RawConnection(server.port) as c:
        return c.request("GET", path, headers=headers)


def w3c(server) -> list[list[str]]:
    return [line.split(" ") for path in (server.dir / "logs").rglob("u_ex*.log")
            for line in path.read_text().splitlines() if not line.startswith("#")]


def test_no_header_is_the_challenge(krb):
    r = request(krb, "/private/page.txt")
    assert (r.status, b"401.2" in r.body) == (401, True), r.body[:300]
    assert r.header_all("WWW-Authenticate") == ["Negotiate"]
    r = request(krb, "/page.txt")  # anonymous allowed there: no challenge needed
    assert r.status == 200 and r.body == b"root page"


def test_curl_negotiate_gets_in_as_the_principal(krb):
    done = subprocess.run(["curl", "-s", "--negotiate", "-u", ":", "-D", "-",
                           f"http://localhost:{krb.port}/private/"], capture_output=True,
                          text=True, timeout=60, env={**__import__("os").environ, **krb.client})
    head, _, body = done.stdout.rpartition("\n\n")  # (text mode: CRLF read as LF)
    statuses = [line.split(" ")[1] for line in head.split("\n") if line.startswith("HTTP/")]
    assert statuses[-1] == "200", done.stdout
    assert "WWW-Authenticate: Negotiate " in head  # the mutual-authentication token
    assert json.loads(body) == {"REMOTE_USER": f"alice@{REALM}", "AUTH_TYPE": "Negotiate"}
    wait_until(lambda: [f for f in w3c(krb) if f[4] == "/private/" and f[11] == "200"], 10,
               what=lambda: w3c(krb))
    [line] = [f for f in w3c(krb) if f[4] == "/private/" and f[11] == "200"][-1:]
    assert line[7] == f"alice@{REALM}"  # cs-username


def test_gssapi_client_with_mutual_authentication(krb):
    token, context = negotiate_token(krb.client)
    r = request(krb, "/private/page.txt", token)  # a static file is protected the same way
    assert (r.status, r.body) == (200, b"private page"), r.body[:300]
    [answer] = r.header_all("WWW-Authenticate")
    scheme, _, data = answer.partition(" ")
    assert scheme == "Negotiate"
    context.step(base64.b64decode(data))  # the server proved it holds the service key
    assert context.complete


def test_asgi_sees_the_user_and_strip_realm(krb):
    token, _ = negotiate_token(krb.client)
    r = request(krb, "/asgi/", token)
    assert json.loads(r.body) == {"user": {"name": f"alice@{REALM}", "auth_type": "Negotiate"}}
    token, _ = negotiate_token(krb.client)
    r = request(krb, "/short/", token)
    assert json.loads(r.body)["REMOTE_USER"] == "alice"


@pytest.mark.parametrize("case", ["garbage", "ntlm", "truncated", "no key", "other principal", "stale key"])
def test_bad_tickets_are_401_1_and_the_connection_stays_usable(krb, case):
    path = "/only/" if case == "other principal" else "/private/"
    if case == "garbage":
        token = base64.b64encode(b"\x60\x82garbage" * 10).decode()
    elif case == "ntlm":
        token = "TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAGAbEdAAAADw=="
    elif case == "truncated":
        token = negotiate_token(krb.client)[0][:200]
        token += "=" * (-len(token) % 4)
    elif case == "no key":
        token, _ = negotiate_token(krb.client, "HTTP/nokey.test@" + REALM)
    elif case == "other principal":
        token, _ = negotiate_token(krb.client, "HTTP/other.test@" + REALM)
    else:
        token = krb.stale
    with RawConnection(krb.port) as conn:
        r = request(krb, path, token, conn)
        assert (r.status, b"401.1" in r.body) == (401, True), (case, r.status, r.body[:300])
        assert r.header_all("WWW-Authenticate") == ["Negotiate"]
        assert request(krb, "/page.txt", conn=conn).status == 200  # same connection, still sane


def test_a_ticket_for_another_key_in_the_keytab_passes_where_no_principal_is_set(krb):
    token, _ = negotiate_token(krb.client, "HTTP/other.test@" + REALM)
    r = request(krb, "/private/", token)
    assert r.status == 200 and json.loads(r.body)["REMOTE_USER"] == f"alice@{REALM}"


@pytest.mark.parametrize("same_connection", [False, True])
def test_a_replayed_token_is_401_1(krb, same_connection):
    token, _ = negotiate_token(krb.client)
    with RawConnection(krb.port) as first:
        r = request(krb, "/private/page.txt", token, first)
        assert (r.status, r.body) == (200, b"private page"), r.body[:300]
        if same_connection:
            r = request(krb, "/private/page.txt", token, first)
        else:
            with RawConnection(krb.port) as second:
                r = request(krb, "/private/page.txt", token, second)
    # The acceptor's replay cache knows the authenticator: a captured header is worth nothing.
    assert (r.status, b"401.1" in r.body) == (401, True), r.body[:300]
