"""Where automatic (ACME) certificates live, shared by the manager that obtains them and the front
that serves them: `<run_dir>/acme/<host>/certificate.pem` (the chain) and `key.pem` (0600), in
0700 folders. Before the first issuance those files hold a temporary self-signed certificate.
"""

from __future__ import annotations

import os

from wasp.config.bindings import parse_binding
from wasp.config.model import Config, SiteBinding

#: `certificate = "acme"` on an https binding: wasp obtains the certificate.
ACME = "acme"

#: The ALPN protocol of TLS-ALPN-01 validation handshakes (RFC 8737).
ACME_TLS_ALPN = "acme-tls/1"

#: The URL path prefix of HTTP-01 challenges (RFC 8555 §8.3).
HTTP01_PREFIX = "/.well-known/acme-challenge/"


def acme_dir(run_dir: str) -> str:
    return os.path.join(run_dir, "acme")


def host_dir(run_dir: str, host: str) -> str:
    # Host names are validated by the binding parser (letters, digits, "-", "_" and dots, never
    # "." or ".." as a label), so one is a safe folder name.
    return os.path.join(acme_dir(run_dir), host)


def certificate_paths(run_dir: str, host: str) -> tuple[str, str]:
    """(certificate chain file, key file) the front serves for an acme binding's host."""
    folder = host_dir(run_dir, host)
    return os.path.join(folder, "certificate.pem"), os.path.join(folder, "key.pem")


def challenge_paths(run_dir: str, host: str) -> tuple[str, str]:
    """(certificate, key) of the TLS-ALPN-01 challenge certificate for a host."""
    folder = host_dir(run_dir, host)
    return os.path.join(folder, "challenge.pem"), os.path.join(folder, "challenge.key")


def is_acme(entry) -> bool:
    return isinstance(entry, SiteBinding) and entry.certificate == ACME


def acme_hosts(config: Config) -> list[str]:
    """The hosts of the started sites' acme bindings, each once, in config order."""
    hosts: list[str] = []
    for site in config.sites:
        if site is None or not site.server_auto_start:
            continue
        for entry in site.bindings:
            if not is_acme(entry):
                continue
            try:
                host = parse_binding(entry).host
            except ValueError:
                continue
            if host and host not in hosts:
                hosts.append(host)
    return hosts
