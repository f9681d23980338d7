"""ACME (RFC 8555) for the manager: the account, one order per host, and the certificate files.

`issue()` is blocking (network round trips, polling the CA): the manager runs it in a thread
(`wasp/manager/certificates.py`) and never on its loop. It uses certbot's `acme` library for the
protocol (JWS, nonces, polling); this module adds what is wasp's: where keys and certificates live
(`wasp/config/acme.py`: `<run_dir>/acme/`, folders 0700, keys 0600, written by rename so the front
never reads half a file), the TLS-ALPN-01 challenge certificate (RFC 8737; the `acme` library no
longer makes one) and the temporary self-signed certificate served until the first issuance.

The directory is fetched over verified TLS: the system's CAs, or `acme.ca_bundle`.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import os
import stat
import threading
from typing import Callable, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from wasp.config.acme import acme_dir, certificate_paths, challenge_paths, host_dir
from wasp.config.model import AcmeSettings

#: Organization of the temporary self-signed certificate: how wasp tells it from an issued one.
TEMPORARY_ORG = "wasp temporary certificate"
TEMPORARY_DAYS = 365
#: id-pe-acmeIdentifier (RFC 8737 §6.1).
ACME_IDENTIFIER_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")
#: Longest one order may take (authorization and finalization polling).
ORDER_TIMEOUT = 300.0
NETWORK_TIMEOUT = 30


class AcmeError(Exception):
    """An order failed; the message says why in one line."""


class CertInfo(NamedTuple):
    not_before: float   # Unix time
    not_after: float
    serial: int
    temporary: bool     # wasp's self-signed stand-in
    covers: bool        # valid for the host it is filed under


# ---------------------------------------------------------------------------- files

def private_folder(path: str) -> None:
    """Create a 0700 folder owned by us (or check an existing one): never follow a symlink."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise OSError(f"{path} is not a folder of ours")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)


def host_folder(run_dir: str, host: str) -> str:
    private_folder(acme_dir(run_dir))
    folder = host_dir(run_dir, host)
    private_folder(folder)
    return folder


def write_file(path: str, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` by a file with `data` in one rename (readers see the old file or the new)."""
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"  # the loop and an order's thread
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(data)
            f.flush()
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def store(run_dir: str, host: str, chain_pem: bytes, key_pem: bytes) -> None:
    """File a certificate chain and its key where the front serves them from. The key goes first:
    the front loads the pair when the chain changes."""
    host_folder(run_dir, host)
    cert_path, key_path = certificate_paths(run_dir, host)
    write_file(key_path, key_pem, 0o600)
    write_file(cert_path, chain_pem, 0o644)


def current(run_dir: str, host: str) -> CertInfo | None:
    """What is filed for a host (None: nothing readable)."""
    cert_path, _ = certificate_paths(run_dir, host)
    try:
        with open(cert_path, "rb") as f:
            leaf = x509.load_pem_x509_certificates(f.read())[0]
    except (OSError, ValueError, IndexError):
        return None
    orgs = leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    temporary = leaf.issuer == leaf.subject and any(o.value == TEMPORARY_ORG for o in orgs)
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        covers = host in names.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        covers = False
    return CertInfo(leaf.not_valid_before_utc.timestamp(), leaf.not_valid_after_utc.timestamp(),
                    leaf.serial_number, temporary, covers)


def ensure_temporary(run_dir: str, host: str) -> bool:
    """File a self-signed certificate for `host` unless a usable one is filed. True if made."""
    info = current(run_dir, host)
    now = datetime.datetime.now(datetime.timezone.utc).timestamp()
    if info is not None and info.covers and info.not_before <= now < info.not_after:
        return False
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, TEMPORARY_ORG),
                      x509.NameAttribute(NameOID.COMMON_NAME, host)])
    cert = _self_signed(key, name, host, datetime.timedelta(days=TEMPORARY_DAYS))
    store(run_dir, host, cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))
    return True


def _self_signed(key, name: x509.Name, host: str, lifetime: datetime.timedelta, extra=()) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + lifetime)
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False))
    for extension, critical in extra:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(key, hashes.SHA256())


def write_challenge_certificate(run_dir: str, host: str, key_authorization: str) -> tuple[str, str]:
    """The TLS-ALPN-01 certificate for `host` (RFC 8737 §3): self-signed, the host as its only
    SAN, and the critical acmeIdentifier extension holding SHA-256(key authorization) as a DER
    OCTET STRING. Returns its (certificate, key) paths."""
    host_folder(run_dir, host)
    digest = hashlib.sha256(key_authorization.encode("ascii")).digest()
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    extension = x509.UnrecognizedExtension(ACME_IDENTIFIER_OID, b"\x04\x20" + digest)
    cert = _self_signed(key, name, host, datetime.timedelta(days=7), [(extension, True)])
    cert_path, key_path = challenge_paths(run_dir, host)
    write_file(key_path, _key_pem(key), 0o600)
    write_file(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o600)
    return cert_path, key_path


def _account_key(run_dir: str):
    """The account's key, made once (`<run_dir>/acme/account.key`, 0600)."""
    import josepy as jose

    private_folder(acme_dir(run_dir))
    path = os.path.join(acme_dir(run_dir), "account.key")
    try:
        with open(path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    except FileNotFoundError:
        key = _new_key()
        write_file(path, _key_pem(key), 0o600)
    return jose.JWKEC(key=key)


# ---------------------------------------------------------------------------- the protocol

#: publish(challenges) puts challenges in force in the front and returns once it has them:
#: {"http01": {token: [host, key authorization]}} or {"tls_alpn01": {host: [cert, key]}};
#: {} takes them away.
Publish = Callable[[dict], None]


def issue(settings: AcmeSettings, run_dir: str, host: str, publish: Publish) -> bytes:
    """Order a certificate for `host`, answer its challenge through `publish`, file the issued
    chain and its new key (`store`) and return the chain. AcmeError says why it failed."""
    from acme import errors, messages

    try:
        return _issue(settings, run_dir, host, publish)
    except AcmeError:
        raise
    except errors.ValidationError as exc:
        raise AcmeError(" ".join(str(exc).split())) from None
    except messages.Error as exc:
        raise AcmeError(f"the CA refused: {exc}") from None
    except errors.TimeoutError:
        raise AcmeError(f"the order did not complete within {ORDER_TIMEOUT:g} seconds") from None
    except Exception as exc:  # requests' connection errors, TLS verification, bad answers
        raise AcmeError(f"{type(exc).__name__}: {' '.join(str(exc).split())}") from None
    finally:
        try:
            publish({})
        except Exception:
            pass


def _issue(settings: AcmeSettings, run_dir: str, host: str, publish: Publish) -> bytes:
    import josepy as jose
    from acme import client, crypto_util, errors, messages

    from wasp import __version__

    account_key = _account_key(run_dir)
    net = client.ClientNetwork(account_key, alg=jose.ES256, verify_ssl=settings.ca_bundle or True,
                               user_agent=f"wasp/{__version__}", timeout=NETWORK_TIMEOUT)
    directory = client.ClientV2.get_directory(settings.directory, net)
    acme = client.ClientV2(directory, net)
    registration = messages.NewRegistration.from_data(terms_of_service_agreed=True)
    if settings.contact:
        registration = registration.update(contact=tuple(settings.contact))
    try:
        acme.new_account(registration)
    except errors.ConflictError as exc:  # the key already has an account at this CA
        net.account = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
    key = _new_key()
    key_pem = _key_pem(key)
    order = acme.new_order(crypto_util.make_csr(key_pem, [host]))
    thumbprint = jose.b64encode(account_key.thumbprint(hash_function=hashes.SHA256)).decode()
    for authz in order.authorizations:
        if authz.body.status == messages.STATUS_VALID:
            continue  # the CA remembers a recent validation
        # An unrecognized type (the library knows no tls-alpn-01) keeps its JSON, "type" included.
        kinds = [c.chall.to_partial_json().get("type", "?") for c in authz.body.challenges]
        wanted = [c for c, kind in zip(authz.body.challenges, kinds) if kind == settings.challenge]
        if not wanted:
            offered = ", ".join(kinds)
            raise AcmeError(f"the CA offers no {settings.challenge} challenge for {host} (it offers {offered})")
        challenge = wanted[0]
        token = challenge.chall.to_partial_json()["token"]
        key_authorization = f"{token}.{thumbprint}"
        if settings.challenge == "http-01":
            publish({"http01": {token: [host, key_authorization]}})
        else:
            paths = write_challenge_certificate(run_dir, host, key_authorization)
            publish({"tls_alpn01": {host: list(paths)}})
        acme.answer_challenge(challenge, _response(settings.challenge, key_authorization))
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=ORDER_TIMEOUT)
    order = acme.poll_and_finalize(order, deadline)
    chain = order.fullchain_pem.encode("ascii")
    leaf = x509.load_pem_x509_certificates(chain)[0]
    if leaf.public_key().public_numbers() != key.public_key().public_numbers():
        raise AcmeError("the CA sent a certificate for another key")
    store(run_dir, host, chain, key_pem)
    return chain


def _response(kind: str, key_authorization: str):
    from acme import challenges

    if kind == "http-01":
        return challenges.HTTP01Response(key_authorization=key_authorization)
    return _tls_alpn01_response()(key_authorization=key_authorization)


@functools.cache
def _tls_alpn01_response():
    # Made on first use: the `acme` library (and requests) is imported only when an order runs.
    from acme import challenges

    class TlsAlpn01Response(challenges.KeyAuthorizationChallengeResponse):
        """The answer to a tls-alpn-01 challenge: an empty object, "validate now"."""
        typ = "tls-alpn-01"

    return TlsAlpn01Response
