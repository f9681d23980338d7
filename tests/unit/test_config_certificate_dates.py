"""wasp.config.certificates.leaf_validity reads a certificate's dates from its DER, without
`cryptography` (which would cost the front ~6.6 MiB): checked against `cryptography` itself."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from wasp.config.certificates import leaf_validity

UTC = datetime.timezone.utc


def _cert(not_before, not_after, key=None, names=1) -> bytes:
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"host{i}.test") for i in range(names)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_before)
            .not_valid_after(not_after).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("not_before,not_after", [
    (datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC), datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC)),
    # 2050 and later are GeneralizedTime, earlier UTCTime (RFC 5280 4.1.2.5)
    (datetime.datetime(1999, 6, 1, tzinfo=UTC), datetime.datetime(2051, 1, 1, tzinfo=UTC)),
    (datetime.datetime(1950, 1, 1, tzinfo=UTC), datetime.datetime(1960, 1, 1, tzinfo=UTC)),
])
def test_dates_match_cryptography(not_before, not_after):
    pem = _cert(not_before, not_after)
    parsed = x509.load_pem_x509_certificate(pem)
    assert leaf_validity(pem) == (parsed.not_valid_before_utc, parsed.not_valid_after_utc)


def test_long_lengths_an_rsa_key_and_a_chain_take_the_first_certificate():
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    first = _cert(datetime.datetime(2021, 1, 1, tzinfo=UTC), datetime.datetime(2031, 1, 1, tzinfo=UTC),
                  key=rsa_key, names=40)  # an issuer over 255 bytes: multi-byte DER lengths
    second = _cert(datetime.datetime(2000, 1, 1, tzinfo=UTC), datetime.datetime(2001, 1, 1, tzinfo=UTC))
    assert leaf_validity(b"# comment\n" + first + second) == (
        datetime.datetime(2021, 1, 1, tzinfo=UTC), datetime.datetime(2031, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize("pem", [
    b"",
    b"not a certificate",
    b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    b"-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAKHBfpegPjMCMA0GCSqGSIb3\n-----END CERTIFICATE-----\n",
])
def test_garbage_is_no_certificate(pem):
    assert leaf_validity(pem) is None


def test_a_truncated_certificate_is_no_certificate():
    pem = _cert(datetime.datetime(2021, 1, 1, tzinfo=UTC), datetime.datetime(2031, 1, 1, tzinfo=UTC))
    body = b"".join(pem.splitlines()[1:-1])
    import base64
    der = base64.b64decode(body)
    for cut in (10, 40, 80):
        short = base64.encodebytes(der[:cut])
        assert leaf_validity(b"-----BEGIN CERTIFICATE-----\n" + short + b"-----END CERTIFICATE-----\n") is None
