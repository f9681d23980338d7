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
    from cryptography import x509

    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError:
        return [f"{path} holds no PEM certificate"]
    leaf = chain[0]
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if leaf.not_valid_after_utc < now:
        return [f"{path}: the certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"]
    if leaf.not_valid_before_utc > now:
        return [f"{path}: the certificate is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC"]
    return []


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
