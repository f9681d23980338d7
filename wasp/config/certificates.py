"""The files an https binding names: certificate chain, private key, client CA.

This is the loader's file-checking step (run by `load` for a config file: `wasp validate`,
`wasp serve`, `wasp reload`), kept apart from the pure checks so that tests of the loader can use
made-up paths. The front runs the same checks before it swaps in a certificate it re-read.

A binding is refused when a file is missing or unreadable, the certificate file holds no PEM
certificate, the leaf certificate is expired or not yet valid, the key is encrypted or does not
belong to the certificate, or the client CA file holds no usable certificate.
"""

from __future__ import annotations

import datetime
import ssl

from wasp.config.acme import ACME
from wasp.config.model import Config, SiteBinding

Problem = tuple[str, str]  # (dotted path, message)


def check_files(config: Config) -> list[Problem]:
    """Problems with the certificate files of every https binding, each at its dotted path."""
    found: list[Problem] = []
    acme = False
    for i, site in enumerate(config.sites):
        for j, entry in enumerate(site.bindings):
            if isinstance(entry, SiteBinding) and entry.certificate == ACME:
                acme = True  # wasp makes its files; only a client CA is the admin's
                if entry.client_ca:
                    for field, message in binding_problems(entry, files=False):
                        found.append((f"sites[{i}].bindings[{j}].{field}", message))
            elif isinstance(entry, SiteBinding) and entry.certificate:
                for field, message in binding_problems(entry):
                    found.append((f"sites[{i}].bindings[{j}].{field}", message))
    if acme and config.acme.ca_bundle:
        bundle: list[Problem] = []
        if _read(config.acme.ca_bundle, "ca_bundle", bundle) is not None:
            try:
                ssl.create_default_context(cafile=config.acme.ca_bundle)
            except (ssl.SSLError, ValueError) as exc:
                bundle.append(("ca_bundle", f"{config.acme.ca_bundle}: no usable CA certificate ({_why(exc)})"))
        found.extend((f"acme.{field}", message) for field, message in bundle)
    return found


def binding_problems(entry: SiteBinding, now: datetime.datetime | None = None,
                     files: bool = True) -> list[Problem]:
    """(field, message) for each problem with one binding's files; [] when it can serve.
    `files=False` checks only the client CA (the certificate is wasp's own, from ACME)."""
    problems: list[Problem] = []
    pem = _read(entry.certificate, "certificate", problems) if files else None
    if entry.key and files:
        _read(entry.key, "key", problems)
    if pem is not None:
        problems.extend(("certificate", m) for m in _validity(pem, entry.certificate, now))
    if not problems and files:
        message = _load_pair(entry)
        if message:
            problems.append(("key", message))
    if entry.client_ca:
        ca = _read(entry.client_ca, "client_ca", problems)
        if ca is not None:
            try:
                ssl.create_default_context(cafile=entry.client_ca)
            except (ssl.SSLError, ValueError) as exc:
                problems.append(("client_ca", f"{entry.client_ca}: no usable CA certificate ({_why(exc)})"))
    return problems


def _read(path: str, field: str, problems: list[Problem]) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        problems.append((field, f"cannot read {path}: {exc.strerror or exc}"))
        return None


def _validity(pem: bytes, path: str, now: datetime.datetime | None) -> list[str]:
    dates = leaf_validity(pem)
    if dates is None:
        return [f"{path} holds no PEM certificate"]
    not_before, not_after = dates
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if not_after < now:
        return [f"{path}: the certificate expired on {not_after:%Y-%m-%d %H:%M:%S} UTC"]
    if not_before > now:
        return [f"{path}: the certificate is not valid before {not_before:%Y-%m-%d %H:%M:%S} UTC"]
    return []


_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
_PEM_END = b"-----END CERTIFICATE-----"


def leaf_validity(pem: bytes) -> tuple[datetime.datetime, datetime.datetime] | None:
    """(notBefore, notAfter) of the first certificate in a PEM file, in UTC; None when there is
    none or it is not a well-formed X.509 certificate.

    Read from the DER itself (RFC 5280 §4.1: Certificate -> tbsCertificate -> validity) rather
    than with `cryptography`, which the front would then load: its extension alone is ~6.6 MiB of
    the front's RSS, and the front re-checks every certificate it re-reads. OpenSSL still parses
    the whole certificate when the pair is loaded (`_load_pair`)."""
    start = pem.find(_PEM_BEGIN)
    end = pem.find(_PEM_END, start + 1)
    if start < 0 or end < 0:
        return None
    try:
        der = ssl.PEM_cert_to_DER_cert(pem[start:end + len(_PEM_END)].decode("ascii"))
        _, cert, _ = _tlv(der, 0, 0x30)
        _, pos, _ = _tlv(der, cert, 0x30)          # tbsCertificate
        if der[pos] == 0xA0:                         # [0] version
            pos = _tlv(der, pos, 0xA0)[2]
        pos = _tlv(der, pos, 0x02)[2]                # serialNumber
        pos = _tlv(der, pos, 0x30)[2]                # signature algorithm
        pos = _tlv(der, pos, 0x30)[2]                # issuer
        _, pos, _ = _tlv(der, pos, 0x30)             # validity
        not_before, pos = _time(der, pos)
        not_after, _ = _time(der, pos)
    except (ValueError, IndexError, UnicodeDecodeError):
        return None
    return not_before, not_after


def _tlv(der: bytes, pos: int, tag: int) -> tuple[int, int, int]:
    """(tag, content start, end) of the DER element at `pos`, which must have `tag`."""
    if der[pos] != tag:
        raise ValueError(f"expected tag {tag:#x} at {pos}")
    first = der[pos + 1]
    if first < 0x80:
        start, length = pos + 2, first
    else:
        count = first & 0x7F
        if not 1 <= count <= 4:
            raise ValueError("bad DER length")
        start, length = pos + 2 + count, int.from_bytes(der[pos + 2:pos + 2 + count], "big")
    if start + length > len(der):
        raise ValueError("DER element runs past the end")
    return tag, start, start + length


def _time(der: bytes, pos: int) -> tuple[datetime.datetime, int]:
    """A UTCTime (YYMMDDHHMMSSZ; 19YY when YY >= 50, RFC 5280 §4.1.2.5.1) or GeneralizedTime."""
    tag = der[pos]
    if tag not in (0x17, 0x18):
        raise ValueError("expected a time")
    _, start, end = _tlv(der, pos, tag)
    text = der[start:end].decode("ascii")
    if not text.endswith("Z"):
        raise ValueError("a certificate time must be UTC")
    if tag == 0x17:
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    moment = datetime.datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    return moment, end


def _load_pair(entry: SiteBinding) -> str:
    """"" when OpenSSL takes the certificate and key together (the key matches), else why not."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(entry.certificate, entry.key or None, password=_no_password)
    except _Encrypted:
        return f"{entry.key or entry.certificate}: the private key is encrypted; wasp needs an unencrypted key file"
    except (ssl.SSLError, OSError, ValueError) as exc:
        where = entry.key or entry.certificate
        if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
            return f"{where}: the private key does not match the certificate {entry.certificate}"
        return f"{where}: cannot load the certificate and key ({_why(exc)})"
    return ""


class _Encrypted(Exception):
    pass


def _no_password():
    # Without this, OpenSSL would prompt on the terminal for a pass phrase.
    raise _Encrypted()


def _why(exc: Exception) -> str:
    return getattr(exc, "reason", None) or str(exc)
