"""IIS IISCertificateMappingAuthenticationModule: a verified client certificate as the user.

The front verifies a client certificate against the binding's `client_ca` during the handshake (an
untrusted or expired one fails it) and passes the certificate on (`ctx.head.tls.client_cert`).
This module maps it to a user, IIS's way:

- one-to-one mappings first: a mapping names one certificate (PEM file, base64 DER or SHA-256
  fingerprint) and the user it is; certificates are compared by the SHA-256 of their DER bytes,
  never by any text in them;
- then many-to-one mappings in order: a mapping matches when every one of its rules matches an
  attribute of the certificate's subject or issuer (`*` wildcards, with or without case); the
  first that matches decides: Allow runs the request as its user, Deny refuses it with 403.12
  (IIS: "mapper denied access").

The names are read from the certificate itself (its DER, parsed by wasp/wire/x509name.py), attribute by attribute, so a
subject whose text imitates another (a CN of "alice,O=Contoso") matches nothing it does not hold.
No certificate, or one no mapping takes: no user from this module (anonymous, another scheme, or
401.2). A mapped request is private (set_user): the front never caches it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import ssl

from wasp.errors import HttpError
from wasp.wire import x509name
from wasp.worker.tables import mentioned
from wasp.worker.registry import CONTINUE, Module, Phase, register

log = logging.getLogger("wasp.worker")

#: IIS's AUTH_TYPE for certificate mapping.
AUTH_TYPE = "SSL/PCT"

#: certificate_sub_field names -> OID dotted strings.
SUB_FIELDS = {
    "CN": "2.5.4.3", "O": "2.5.4.10", "OU": "2.5.4.11", "C": "2.5.4.6", "S": "2.5.4.8",
    "ST": "2.5.4.8", "L": "2.5.4.7", "E": "1.2.840.113549.1.9.1", "EMAIL": "1.2.840.113549.1.9.1",
    "DC": "0.9.2342.19200300.100.1.25", "SERIALNUMBER": "2.5.4.5", "T": "2.5.4.12",
    "STREET": "2.5.4.9", "UID": "0.9.2342.19200300.100.1.1",
}

_OID = re.compile(r"[0-2](\.[0-9]+)+\Z")
_HEX = re.compile(r"[0-9A-Fa-f]{64}\Z")


class MapperDenied(HttpError):
    status = 403
    reason = "Forbidden"


class MappingError(HttpError):
    """A mapping that cannot be used (a missing PEM file, a bad fingerprint): the config's fault."""

    status = 500
    reason = "Internal Server Error"


class Compiled:
    """A section's mappings, ready for lookups: fingerprints -> user, rule tests in order."""

    __slots__ = ("section", "one_to_one", "many_to_one")

    def __init__(self, section):
        self.section = section
        self.one_to_one: dict[bytes, str] = {}
        if section.one_to_one_certificate_mappings_enabled:
            for mapping in section.one_to_one_mappings:
                if mapping.enabled:
                    self.one_to_one.setdefault(fingerprint_of(mapping.certificate), mapping.user_name)
        self.many_to_one = []
        if section.many_to_one_certificate_mappings_enabled:
            for mapping in section.many_to_one_mappings:
                if mapping.enabled and mapping.rules:
                    tests = [(rule.certificate_field == "Issuer", oid_of(rule.certificate_sub_field),
                              matcher(rule.match_criteria, rule.compare_case_sensitive))
                             for rule in mapping.rules]
                    self.many_to_one.append((mapping, tests))


def fingerprint_of(certificate: str) -> bytes:
    """SHA-256 of a one-to-one mapping's certificate: a fingerprint as written, the DER of a PEM
    file, or the DER of base64 text."""
    text = certificate.strip()
    compact = text.replace(":", "")
    if _HEX.match(compact):
        return bytes.fromhex(compact)
    if text.startswith("/"):
        try:
            with open(text, encoding="ascii") as f:
                pem = f.read()
            der = ssl.PEM_cert_to_DER_cert(pem[:pem.index("-----END CERTIFICATE-----") + 25])
        except (OSError, ValueError) as exc:
            raise MappingError(f"one_to_one_mappings certificate {text!r}: not a readable PEM "
                               f"certificate ({exc})") from None
        return hashlib.sha256(der).digest()
    try:
        der = base64.b64decode("".join(text.split()), validate=True)
        x509name.names(der)  # a certificate, not any base64
    except (binascii.Error, ValueError):
        der = b""
    if not der:
        raise MappingError(f"one_to_one_mappings certificate {text[:40]!r}: neither a SHA-256 "
                           "fingerprint, an absolute PEM file path nor base64 DER")
    return hashlib.sha256(der).digest()


def oid_of(sub_field: str) -> str:
    oid = SUB_FIELDS.get(sub_field.strip().upper())
    if oid is None:
        if _OID.match(sub_field.strip()):
            return sub_field.strip()
        raise MappingError(f"many_to_one_mappings rule: unknown certificate_sub_field {sub_field!r} "
                           f"(one of {', '.join(SUB_FIELDS)} or a dotted OID)")
    return oid


def matcher(criteria: str, case_sensitive: bool):
    """A full-match test for IIS's matchCriteria: `*` any run of characters, nothing else special."""
    pattern = ".*".join(re.escape(part) for part in criteria.split("*"))
    flags = re.DOTALL | (0 if case_sensitive else re.IGNORECASE)
    return re.compile(pattern + r"\Z", flags).match


class Certificate:
    """What the mappings look at in a presented certificate (parsed once per PEM text)."""

    __slots__ = ("fingerprint", "subject", "issuer")

    def __init__(self, pem: str):
        der = ssl.PEM_cert_to_DER_cert(pem)
        self.fingerprint = hashlib.sha256(der).digest()
        self.issuer, self.subject = x509name.names(der)


#: Parsed certificates by PEM text, and compiled sections by identity: small, per worker.
CACHE_SIZE = 256


@register("client_certificate_mapping_authentication", phases=(Phase.AUTHENTICATE_REQUEST,))
class ClientCertificateMappingAuthenticationModule(Module):
    def setup(self, app) -> None:
        self.certificates: dict[str, Certificate] = {}
        self.compiled: dict[int, Compiled] = {}
        # Locked by default (a web.toml sets it only below a location naming it): a section
        # nowhere in wasp.toml is off for every URL, and the module stays out of the pipeline.
        self.needed = mentioned(app.tables, "client_certificate_mapping_authentication")

    def wants(self, phase) -> bool:
        return self.needed

    def authenticate_request(self, ctx):
        section = ctx.config.client_certificate_mapping_authentication
        if not section.enabled:
            return CONTINUE
        tls = ctx.head.tls
        if tls is None or not tls.client_cert:
            return CONTINUE
        compiled = self._compiled(section)
        cert = self._certificate(tls.client_cert)
        user = compiled.one_to_one.get(cert.fingerprint)
        if user is not None:
            ctx.set_user(user, AUTH_TYPE)
            return CONTINUE
        for mapping, tests in compiled.many_to_one:
            if all(_matches(cert, issuer, oid, match) for issuer, oid, match in tests):
                if mapping.permission_mode == "Deny":
                    ctx.private = True
                    raise MapperDenied(f"the certificate mapping {mapping.name!r} denies access",
                                       substatus=12)
                ctx.set_user(mapping.user_name, AUTH_TYPE)
                return CONTINUE
        return CONTINUE

    def _compiled(self, section) -> Compiled:
        compiled = self.compiled.get(id(section))
        if compiled is None or compiled.section is not section:
            if len(self.compiled) >= CACHE_SIZE:
                self.compiled.clear()
            try:
                compiled = Compiled(section)
            except MappingError as exc:
                log.error("client_certificate_mapping_authentication: %s", exc)
                raise
            self.compiled[id(section)] = compiled
        return compiled

    def _certificate(self, pem: str) -> Certificate:
        cert = self.certificates.get(pem)
        if cert is None:
            if len(self.certificates) >= CACHE_SIZE:
                self.certificates.clear()
            cert = self.certificates[pem] = Certificate(pem)
        return cert


def _matches(cert: Certificate, issuer: bool, oid: str, match) -> bool:
    values = (cert.issuer if issuer else cert.subject).get(oid, ())
    return any(match(value) for value in values)
