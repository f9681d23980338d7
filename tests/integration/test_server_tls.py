"""HTTPS bindings end to end: certificates by SNI, the default certificate, protocol policy, ALPN,
what WSGI and ASGI apps see, client certificates (403.7), Require SSL (403.4), files through TLS,
logs and `wasp list requests`. Certificates are made at test time (tls_support.py).
"""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
import threading
import time

import pytest

from conftest import RawConnection, free_port, wait_until
from tls_support import CA, client_context, common_name, served_certificate

CONFIG = """\
{pool_timing}
[limits]
header_wait_timeout = "2s"

[[pools]]
name = "p"

[[sites]]
name = "a"
id = 1
bindings = [
  { binding = "https/*:{port}:a.test", certificate = "@CERTS@/a.test.pem", key = "@CERTS@/a.test.key", ssl_flags = ["sni"], client_ca = "@CA@" },
  { binding = "https/*:{port}:", certificate = "@CERTS@/default.test.pem", key = "@CERTS@/default.test.key" },
  "http/127.0.0.1:@HTTP_PORT@:",
]
[[sites.applications]]
path = "/"
pool = "p"
app = "tls_app:app"
physical_path = "@WWW@"
python_path = ["{apps}"]
[[sites.applications]]
path = "/secure"
pool = "p"
app = "tls_app:app"
python_path = ["{apps}"]
access = { ssl_flags = ["ssl", "ssl_require_cert"] }
[[sites.applications]]
path = "/ssl"
pool = "p"
app = "tls_app:app"
python_path = ["{apps}"]
access = { ssl_flags = ["ssl"] }
[[sites.applications]]
path = "/asgi"
pool = "p"
app = "tls_app:asgi_app"
interface = "asgi"
python_path = ["{apps}"]

[[sites]]
name = "b"
id = 2
[[sites.bindings]]
binding = "https/*:{port}:b.test"
certificate = "@CERTS@/b.test.pem"
key = "@CERTS@/b.test.key"
ssl_flags = ["sni"]
[[sites.applications]]
path = "/"
pool = "p"
app = "tls_app:app"
python_path = ["{apps}"]
"""


@pytest.fixture(scope="module")
def tls_site(wasp_module_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("certs")
    ca = CA(folder)
    for name in ("a.test", "b.test", "default.test"):
        ca.issue(name)
    alice = ca.issue("alice", client=True, serial=0x1234ABCD)
    www = tmp_path_factory.mktemp("www")
    big = bytes(range(256)) * 4096 * 3  # 3 MiB: well past the inline-file size
    (www / "big.bin").write_bytes(big)
    http_port = free_port()
    text = (CONFIG.replace("@CERTS@", str(folder)).replace("@CA@", str(ca.path))
            .replace("@HTTP_PORT@", str(http_port)).replace("@WWW@", str(www)))
    server = wasp_module_server(text)
    server.ca, server.alice, server.http_port, server.big = ca, alice, http_port, big
    return server


def tls_connection(server, sni: str | None, client=None) -> RawConnection:
    conn = RawConnection(server.port)
    conn.sock = client_context(server.ca, client).wrap_socket(conn.sock, server_hostname=sni)
    return conn


def get(server, path: str, sni: str | None = "a.test", host: str = "a.test", client=None):
    with tls_connection(server, sni, client) as conn:
        return conn.request("GET", path, host=host)


def w3c_lines(server, site_id: int) -> list[str]:
    folder = server.logs / f"W3SVC{site_id}"
    return [line for f in sorted(folder.glob("*.log")) for line in f.read_text().splitlines()
            if not line.startswith("#")]


# ---- certificates ---------------------------------------------------------------------------

@pytest.mark.parametrize("sni, expected", [
    ("a.test", "a.test"), ("b.test", "b.test"), ("B.Test", "b.test"),
    (None, "default.test"), ("unknown.test", "default.test"),
])
def test_certificate_chosen_by_sni_with_a_default(tls_site, sni, expected):
    cert, version, _ = served_certificate(tls_site.port, sni, tls_site.ca)
    assert common_name(cert) == expected
    assert version in ("TLSv1.2", "TLSv1.3")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TLSv1 and TLSv1_1, on purpose
def test_tls_1_2_is_served_and_tls_1_1_refused(tls_site):
    _, version, _ = served_certificate(tls_site.port, "a.test", tls_site.ca, maximum=ssl.TLSVersion.TLSv1_2)
    assert version == "TLSv1.2"
    old = client_context(tls_site.ca, minimum=ssl.TLSVersion.TLSv1, maximum=ssl.TLSVersion.TLSv1_1)
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
    with socket.create_connection(("127.0.0.1", tls_site.port), timeout=10) as raw:
        with pytest.raises(ssl.SSLError):
            old.wrap_socket(raw, server_hostname="a.test")


def test_alpn_prefers_h2_and_serves_http_1_1_to_clients_that_offer_only_it(tls_site):
    _, _, alpn = served_certificate(tls_site.port, "a.test", tls_site.ca, alpn=("h2", "http/1.1"))
    assert alpn == "h2"
    _, _, alpn = served_certificate(tls_site.port, "a.test", tls_site.ca, alpn=("http/1.1",))
    assert alpn == "http/1.1"


def test_plain_http_on_the_tls_port_gets_no_answer(tls_site):
    with RawConnection(tls_site.port) as conn:
        conn.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        try:
            data = conn.read_until_close()
        except ConnectionResetError:
            data = b""
    assert not data.startswith(b"HTTP/")


def test_a_handshake_that_never_starts_is_dropped_after_the_header_wait(tls_site):
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", tls_site.port), timeout=20) as raw:
        try:
            data = raw.recv(100)
        except ConnectionResetError:
            data = b""
    assert data == b""
    # header_wait_timeout: never before. uvloop's handshake timer is a libuv timer, counted in whole
    # milliseconds from the loop's cached clock, so it may end up to a few ms short.
    assert time.monotonic() - t0 >= 2.0 - 0.01


# ---- what apps see --------------------------------------------------------------------------

def test_wsgi_app_sees_https(tls_site):
    response = get(tls_site, "/")
    assert response.status == 200
    facts = json.loads(response.body)
    assert facts["wsgi.url_scheme"] == "https" and facts["HTTPS"] == "on" and facts["is_secure"]
    assert facts["url"] == f"https://a.test/"
    assert facts["SSL_TLS_SNI"] == "a.test"
    assert facts["SSL_CLIENT_VERIFY"] == "NONE" and facts["SSL_CLIENT_CERT"] is None


def test_asgi_app_sees_https_and_the_tls_extension(tls_site):
    response = get(tls_site, "/asgi", client=tls_site.alice)
    assert response.status == 200
    facts = json.loads(response.body)
    assert facts["scheme"] == "https"
    tls = facts["tls"]
    assert tls["tls_version"] in (0x0303, 0x0304) and tls["cipher_suite"]
    assert tls["client_cert_name"].startswith("CN=alice")
    assert tls["client_cert_chain"][0].startswith("-----BEGIN CERTIFICATE-----")


def test_routing_by_host_after_sni(tls_site):
    # SNI names a.test, Host names b.test: the request goes to site b (IIS routes by Host).
    response = get(tls_site, "/", sni="a.test", host="b.test")
    assert response.status == 200
    assert json.loads(response.body)["url"] == "https://b.test/"


# ---- client certificates and Require SSL ----------------------------------------------------

def test_client_certificate_required(tls_site):
    refused = get(tls_site, "/secure/")
    assert (refused.status, b"403.7" in refused.body) == (403, True)
    accepted = get(tls_site, "/secure/", client=tls_site.alice)
    assert accepted.status == 200
    facts = json.loads(accepted.body)
    assert facts["SSL_CLIENT_VERIFY"] == "SUCCESS"
    assert facts["SSL_CLIENT_S_DN"] == "CN=alice,O=wasp tests"
    assert facts["SSL_CLIENT_I_DN"] == "CN=wasp test CA,O=wasp tests"
    assert facts["SSL_CLIENT_M_SERIAL"] == "1234ABCD"
    assert facts["SSL_CLIENT_CERT"].startswith("-----BEGIN CERTIFICATE-----")
    wait_until(lambda: any(" /secure/ " in l and " 403 7 " in l for l in w3c_lines(tls_site, 1)), 10,
               what=lambda: w3c_lines(tls_site, 1))


def test_a_client_certificate_from_another_ca_is_refused(tls_site, tmp_path):
    mallory = CA(tmp_path, "other CA").issue("mallory", client=True)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        get(tls_site, "/secure/", client=mallory)


def test_require_ssl_answers_403_4_over_http(tls_site):
    with RawConnection(tls_site.http_port) as conn:
        response = conn.request("GET", "/ssl/")
    assert response.status == 403 and b"403.4" in response.body
    assert get(tls_site, "/ssl/").status == 200
    wait_until(lambda: any(" /ssl/ " in l and " 403 4 " in l for l in w3c_lines(tls_site, 1)), 10,
               what=lambda: w3c_lines(tls_site, 1))


# ---- files, logs, list requests -------------------------------------------------------------

def test_a_large_file_goes_through_tls_intact(tls_site):
    with tls_connection(tls_site, "a.test") as conn:
        response = conn.request("GET", "/big.bin", host="a.test")
        assert response.status == 200
        assert hashlib.sha256(response.body).digest() == hashlib.sha256(tls_site.big).digest()
        # The connection is still good for the next request.
        assert conn.request("GET", "/", host="a.test").status == 200


def test_w3c_log_line_shows_the_tls_port(tls_site):
    get(tls_site, "/?logged=1")
    wait_until(lambda: [l for l in w3c_lines(tls_site, 1) if "logged=1" in l], 10,
               what=lambda: w3c_lines(tls_site, 1))
    [line] = [l for l in w3c_lines(tls_site, 1) if "logged=1" in l]
    fields = line.split(" ")
    assert fields[3:7] == ["GET", "/", "logged=1", str(tls_site.port)] and fields[11] == "200"


def test_list_requests_shows_https(tls_site, tmp_path):
    done = threading.Event()
    release = tmp_path / "release"

    def slow():
        try:
            get(tls_site, f"/slow?until={release}")
        finally:
            done.set()

    thread = threading.Thread(target=slow, daemon=True)
    thread.start()
    rows = wait_until(lambda: [r for r in tls_site.list_json("requests") if r.get("url", "").startswith("/slow")],
                      15, what="the slow request in flight")
    assert rows[0]["protocol"] == "HTTPS/1.1"
    text = tls_site.cli("list", "requests").stdout
    assert "protocol:HTTPS/1.1" in text
    release.write_text("")  # held until now: the CLI may take a while on a loaded machine
    done.wait(20)
