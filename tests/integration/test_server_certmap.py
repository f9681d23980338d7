"""Client-certificate mapping authentication through real TLS: one-to-one by the certificate
itself (a PEM file), many-to-one by subject wildcards, a Deny mapping (403.12), an unmapped or
missing certificate (no user: 401.2 where anonymous is off), a certificate with the very subject
of a mapped one but other bytes (an attacker's), and the certificates the front refuses in the
handshake (expired, from another CA). The user reaches the app and the W3C log."""

from __future__ import annotations

import json
import ssl

import pytest

from conftest import RawConnection, wait_until
from tls_support import CA, client_context

CONFIG = """
{pool_timing}
[http_errors]
error_mode = "Detailed"

[[pools]]
name = "p"

[[sites]]
name = "c"
id = 1
bindings = [
  { binding = "https/127.0.0.1:{port}:", certificate = "@CERTS@/server.test.pem", key = "@CERTS@/server.test.key", client_ca = "@CA@" },
]
[[sites.applications]]
path = "/"
pool = "p"
app = "auth_app:app"
python_path = ["{apps}"]
physical_path = "@WWW@"

[[locations]]
path = "c/mapped"
[locations.anonymous_authentication]
enabled = false
[locations.client_certificate_mapping_authentication]
enabled = true
one_to_one_mappings = [ { certificate = "@CERTS@/alice.pem", user_name = "alice-account" } ]
[[locations.client_certificate_mapping_authentication.many_to_one_mappings]]
name = "no mallory"
permission_mode = "Deny"
rules = [ { certificate_sub_field = "CN", match_criteria = "mallory*" } ]
[[locations.client_certificate_mapping_authentication.many_to_one_mappings]]
name = "staff"
user_name = "staff"
rules = [
  { certificate_sub_field = "CN", match_criteria = "staff-*" },
  { certificate_sub_field = "O", match_criteria = "WASP TESTS", compare_case_sensitive = false },
  { certificate_field = "Issuer", certificate_sub_field = "CN", match_criteria = "wasp test CA" },
]
"""


@pytest.fixture(scope="module")
def site(wasp_module_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("certs")
    ca = CA(folder)
    ca.issue("server.test")
    certs = {name: ca.issue(name, client=True) for name in ("alice", "staff-bob", "mallory-1", "carol")}
    # Same subject as alice (CN=alice, O=wasp tests), same CA, another key: not alice's certificate.
    certs["alice twin"] = ca.issue("alice", client=True, file="alice-twin")
    certs["expired"] = ca.issue("staff-old", client=True, days=-1, start_days=-3)
    certs["other CA"] = CA(folder / "other", "wasp test CA").issue("staff-eve", client=True)
    www = tmp_path_factory.mktemp("www")
    (www / "mapped").mkdir()
    (www / "mapped" / "page.txt").write_text("mapped page")
    text = (CONFIG.replace("@CERTS@", str(folder)).replace("@CA@", str(ca.path))
            .replace("@WWW@", str(www)))
    server = wasp_module_server(text)
    server.ca, server.certs = ca, certs
    return server


def get(server, path: str, client: str | None = None):
    conn = RawConnection(server.port)
    conn.sock = client_context(server.ca, server.certs[client] if client else None).wrap_socket(
        conn.sock, server_hostname="server.test")
    with conn:
        return conn.request("GET", path, host="server.test")


def w3c(server) -> list[list[str]]:
    return [line.split(" ") for path in (server.dir / "logs").rglob("u_ex*.log")
            for line in path.read_text().splitlines() if not line.startswith("#")]


@pytest.mark.parametrize("client, user", [
    ("alice", "alice-account"),     # one-to-one, by the certificate's bytes
    ("staff-bob", "staff"),         # many-to-one: all three rules
])
def test_mapped_certificates_run_as_their_user(site, client, user):
    r = get(site, "/mapped/", client)
    assert r.status == 200, r.body[:300]
    assert json.loads(r.body) == {"REMOTE_USER": user, "AUTH_TYPE": "SSL/PCT"}
    assert get(site, "/mapped/page.txt", client).status == 200  # static files alike


@pytest.mark.parametrize("client", [None, "carol", "alice twin"])
def test_no_mapping_is_no_user(site, client):
    r = get(site, "/mapped/", client)
    assert (r.status, b"401.2" in r.body) == (401, True), (client, r.status, r.body[:300])
    assert get(site, "/", client).status == 200  # anonymous outside the location


def test_a_deny_mapping_is_403_12_and_logged(site):
    r = get(site, "/mapped/page.txt", "mallory-1")
    assert (r.status, b"403.12" in r.body) == (403, True), r.body[:300]
    wait_until(lambda: [f for f in w3c(site) if f[4] == "/mapped/page.txt" and f[11:13] == ["403", "12"]],
               10, what=lambda: w3c(site))


def test_the_user_reaches_the_w3c_log(site):
    get(site, "/mapped/?logged=1", "alice")
    lines = wait_until(lambda: [f for f in w3c(site) if f[5] == "logged=1"], 10, what=lambda: w3c(site))
    assert lines[-1][7] == "alice-account" and lines[-1][11] == "200"


@pytest.mark.parametrize("client", ["expired", "other CA"])
def test_certificates_the_front_cannot_verify_fail_the_handshake(site, client):
    # The front verifies against the binding's client_ca (and the validity dates) in the handshake:
    # such a certificate never reaches a mapping. TLS 1.3 reports the alert on the first read.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        get(site, "/mapped/", client)
