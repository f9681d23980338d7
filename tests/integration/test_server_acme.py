"""Automatic certificates against a real ACME CA (Debian's pebble, started by the tests): a
temporary self-signed certificate until the first issuance, issuance by HTTP-01 and by
TLS-ALPN-01 answered by the front, a served chain that verifies against pebble's root, renewal
without dropping an open connection, and a CA that went away (the old certificate keeps serving
and the failure is logged). Host names resolve to 127.0.0.1 through pebble-challtestsrv's DNS.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from acme_support import Pebble
from conftest import RawConnection, wait_until
from tls_support import CA, served_certificate

HOST = "www.wasp.test"

CONFIG = """\
{pool_timing}
[acme]
directory = "@DIRECTORY@"
ca_bundle = "@BUNDLE@"
agree_tos = true
contact = ["mailto:admin@wasp.test"]
challenge = "@CHALLENGE@"
@EXTRA@

[[pools]]
name = "p"

[[sites]]
name = "s"
id = 1
bindings = ["http/127.0.0.1:@HTTP@:", { binding = "https/127.0.0.1:{port}:@HOST@", certificate = "acme", ssl_flags = ["sni"] }]
[[sites.applications]]
path = "/"
pool = "p"
physical_path = "{dir}"
"""


def config(pebble: Pebble, http_port: int, challenge: str = "http-01", extra: str = "") -> str:
    return (CONFIG.replace("@DIRECTORY@", pebble.directory).replace("@BUNDLE@", str(pebble.api_ca_path))
            .replace("@CHALLENGE@", challenge).replace("@EXTRA@", extra).replace("@HTTP@", str(http_port))
            .replace("@HOST@", HOST))


@pytest.fixture
def pebble_factory(tmp_path):
    started: list[Pebble] = []

    def make(http_port: int, tls_port: int, **kwargs) -> Pebble:
        pebble = Pebble(tmp_path / f"pebble{len(started)}", http_port, tls_port, **kwargs)
        started.append(pebble)
        return pebble.start()

    yield make
    for pebble in started:
        pebble.stop()


def leaf(port: int) -> x509.Certificate:
    return served_certificate(port, HOST, None)[0]


def issued_by_pebble(cert: x509.Certificate) -> bool:
    return "Pebble" in cert.issuer.rfc4514_string()


def events(server, event_id: int) -> list[dict]:
    path = server.logs / "events.jsonl"
    if not path.exists():
        return []
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["id"] == event_id]


def verifying_context(pebble: Pebble, tmp_path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pebble.roots_pem(tmp_path / "pebble-root.pem")))
    context.set_alpn_protocols(["http/1.1"])
    return context


def start(wasp_server, pebble_factory, challenge="http-01", extra="", **pebble_args):
    http_port, tls_port = wasp_server.free_port(), wasp_server.free_port()
    (wasp_server.dir / "hello.txt").write_text("hello")
    pebble = pebble_factory(http_port, tls_port, **pebble_args)
    server = wasp_server(config(pebble, http_port, challenge, extra), port=tls_port)
    return server, pebble, http_port


def wait_issued(server, port: int, timeout: float = 60) -> x509.Certificate:
    return wait_until(lambda: (lambda c: c if issued_by_pebble(c) else None)(leaf(port)), timeout,
                      what=lambda: server.log_tail())


def test_http01_issuance_serves_a_chain_to_pebbles_root(wasp_server, pebble_factory, tmp_path):
    server, pebble, _ = start(wasp_server, pebble_factory)
    cert = wait_issued(server, server.port)
    assert HOST in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    # The chain verifies against pebble's issuing root, for the host name.
    context = verifying_context(pebble, tmp_path)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=HOST) as tls:
            tls.sendall(f"GET /hello.txt HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"hello")
    issued = wait_until(lambda: events(server, 9060), 10, what=lambda: server.log_tail())
    assert issued[0]["host"] == HOST and issued[0]["serial"] == format(cert.serial_number, "X")
    # Files under run_dir/acme/<host>/: keys 0600 in 0700 folders.
    run = server.dir / "run" / "acme"
    assert stat.S_IMODE(os.stat(run).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(run / HOST).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(run / HOST / "key.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(run / "account.key").st_mode) == 0o600
    assert x509.load_pem_x509_certificates((run / HOST / "certificate.pem").read_bytes())[0] == cert


def test_tls_alpn01_issuance(wasp_server, pebble_factory, tmp_path):
    server, pebble, _ = start(wasp_server, pebble_factory, challenge="tls-alpn-01")
    cert = wait_issued(server, server.port)
    context = verifying_context(pebble, tmp_path)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=HOST) as tls:
            assert tls.getpeercert(binary_form=True) == cert.public_bytes(serialization.Encoding.DER)
            assert tls.selected_alpn_protocol() == "http/1.1"   # a normal handshake, not the challenge's
    assert events(server, 9060)


def test_temporary_self_signed_certificate_until_the_first_issuance(wasp_server, pebble_factory):
    # The CA's validation cannot reach wasp (pebble validates HTTP-01 on a port nobody serves),
    # so no certificate is issued: the temporary one serves, and the failure is logged.
    http_port, tls_port = wasp_server.free_port(), wasp_server.free_port()
    (wasp_server.dir / "hello.txt").write_text("hello")
    pebble = pebble_factory(wasp_server.free_port(), tls_port)
    server = wasp_server(config(pebble, http_port), port=tls_port)
    cert = leaf(server.port)
    assert cert.issuer == cert.subject and not issued_by_pebble(cert)
    assert HOST in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    failed = wait_until(lambda: events(server, 9062), 60, what=lambda: server.log_tail())
    assert failed[0]["host"] == HOST and failed[0]["error"]
    assert leaf(server.port).serial_number == cert.serial_number   # still the temporary one
    # Requests are served over it meanwhile.
    with RawConnection(server.port) as conn:
        conn.sock = ssl._create_unverified_context().wrap_socket(conn.sock, server_hostname=HOST)
        assert conn.request("GET", "/hello.txt", host=HOST).status == 200


def test_renewal_serves_a_new_serial_and_keeps_open_connections(wasp_server, pebble_factory):
    # Pebble issues 30-second certificates here: with the default policy (renew when a third of
    # the lifetime is left) the first one is renewed about 20 s after it was issued.
    server, pebble, _ = start(wasp_server, pebble_factory, validity_s=30)
    first = wait_issued(server, server.port)
    with RawConnection(server.port) as conn:
        conn.sock = ssl._create_unverified_context().wrap_socket(conn.sock, server_hostname=HOST)
        assert conn.request("GET", "/hello.txt", host=HOST).status == 200
        renewed = wait_until(lambda: (lambda c: c if issued_by_pebble(c) and c.serial_number != first.serial_number
                                      else None)(leaf(server.port)), 90, what=lambda: server.log_tail())
        assert renewed.not_valid_after_utc > first.not_valid_after_utc
        assert conn.request("GET", "/hello.txt", host=HOST).status == 200   # the same connection
    assert events(server, 9061)


def test_a_failing_ca_keeps_the_old_certificate_and_logs_the_failure(wasp_server, pebble_factory):
    server, pebble, _ = start(wasp_server, pebble_factory, validity_s=30)
    first = wait_issued(server, server.port)
    pebble.stop()
    failed = wait_until(lambda: events(server, 9062), 90, what=lambda: server.log_tail())
    assert failed[0]["host"] == HOST and failed[0]["retry_s"] >= 60
    assert leaf(server.port).serial_number == first.serial_number


def test_the_directory_is_fetched_over_verified_tls(wasp_server, pebble_factory, tmp_path):
    # ca_bundle names a CA that did not sign pebble's API certificate: no order is made.
    http_port, tls_port = wasp_server.free_port(), wasp_server.free_port()
    (wasp_server.dir / "hello.txt").write_text("hello")
    pebble = pebble_factory(http_port, tls_port)
    other = CA(tmp_path / "other", "some other CA")
    text = config(pebble, http_port).replace(str(pebble.api_ca_path), str(other.path))
    server = wasp_server(text, port=tls_port)
    failed = wait_until(lambda: events(server, 9062), 60, what=lambda: server.log_tail())
    assert "CERTIFICATE_VERIFY_FAILED" in failed[0]["error"] or "certificate verify failed" in failed[0]["error"]
    assert not issued_by_pebble(leaf(server.port))
