"""Certificates made at test time (no private key is committed): a CA, server certificates for
host names, an expired one, and client certificates, written as PEM files into a folder.
"""

from __future__ import annotations

import datetime
import ipaddress
import pathlib
import socket
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_NOW = datetime.datetime.now(datetime.timezone.utc)


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wasp tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class CA:
    def __init__(self, folder: pathlib.Path, name: str = "wasp test CA"):
        self.folder = pathlib.Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.key = _key()
        self.name = _name(name)
        self.cert = (x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(_NOW - datetime.timedelta(days=1))
                     .not_valid_after(_NOW + datetime.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        slug = name.replace(" ", "-")
        self.path = self.folder / f"{slug}.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, cn: str, *, file: str | None = None, client: bool = False, days: float = 30,
              start_days: float = -1, serial: int | None = None,
              ip: str | None = None) -> tuple[pathlib.Path, pathlib.Path]:
        """(certificate chain file, key file) for `cn` (also its DNS name; and `ip`'s address)."""
        key = _key()
        builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(self.name)
                   .public_key(key.public_key()).serial_number(serial or x509.random_serial_number())
                   .not_valid_before(_NOW + datetime.timedelta(days=start_days))
                   .not_valid_after(_NOW + datetime.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage(
                       [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False))
        if not client:
            names = [x509.DNSName(cn)] + ([x509.IPAddress(ipaddress.ip_address(ip))] if ip else [])
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        stem = file or cn
        cert_path = self.folder / f"{stem}.pem"
        key_path = self.folder / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM)
                              + self.cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        key_path.chmod(0o600)
        return cert_path, key_path


def served_certificate(port: int, server_name: str | None, ca: CA | None = None,
                       client: tuple[pathlib.Path, pathlib.Path] | None = None,
                       **context_options) -> tuple[x509.Certificate, str, str]:
    """Handshake with 127.0.0.1:port (SNI `server_name`, or none) -> (the server's leaf
    certificate, the negotiated TLS version, the ALPN protocol or "")."""
    context = client_context(ca, client, **context_options)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            der = tls.getpeercert(binary_form=True)
            return x509.load_der_x509_certificate(der), tls.version(), tls.selected_alpn_protocol() or ""


def client_context(ca: CA | None = None, client: tuple[pathlib.Path, pathlib.Path] | None = None,
                   minimum=None, maximum=None, alpn=("http/1.1",)) -> ssl.SSLContext:
    # The default client speaks HTTP/1.1 only (RawConnection), so it offers only that by ALPN.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    if ca is not None:
        context.load_verify_locations(ca.path)
    else:
        context.verify_mode = ssl.CERT_NONE
    if client is not None:
        context.load_cert_chain(*client)
    if minimum is not None:
        context.minimum_version = minimum
    if maximum is not None:
        context.maximum_version = maximum
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


def common_name(cert: x509.Certificate) -> str:
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
