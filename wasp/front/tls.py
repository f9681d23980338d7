"""TLS for https bindings: which certificate a handshake gets, and the SSL contexts that serve them.

`plan(config)` is pure: per https port, the certificate of each SNI host (bindings with
ssl_flags = ["sni"]), the port's default certificate (for clients that send no SNI or an SNI
name no binding has: the port's IP:port certificate, a binding without "sni"; else the first https
binding of the port in config order) and the port's client CA.

`TlsState` owns the files and contexts. Each listening TLS socket is served with one *listener
context* per port that holds no certificate: its SNI callback (called for every handshake, with
or without SNI) switches the connection to the context of the chosen certificate. Swapping that
table is how a re-read certificate takes effect: new handshakes get it, open connections keep the
one they were made with. The listener context also holds the port's protocol policy and the client
CA, because OpenSSL takes those from the context a connection starts with.
"""

from __future__ import annotations

import os
import ssl
import sys
from typing import NamedTuple

from wasp.config.acme import ACME_TLS_ALPN, certificate_paths, is_acme
from wasp.config.bindings import parse_binding
from wasp.config.certificates import binding_problems
from wasp.config.model import Config, SiteBinding
from wasp.wire.frames import TlsInfo

#: ALPN protocols offered, in preference order; a binding with ssl_flags "disable_http2" offers
#: only ALPN_HTTP1 with its certificate.
ALPN_PROTOCOLS = ("h2", "http/1.1")
ALPN_HTTP1 = ("http/1.1",)

#: TLS 1.2 suites: Mozilla's "intermediate" list without DHE (ECDHE with AES-GCM or
#: ChaCha20-Poly1305, forward secrecy and AEAD only). TLS 1.3 suites are OpenSSL's (all AEAD).
CIPHERS_TLS12 = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
))


class Cert(NamedTuple):
    certificate: str
    key: str
    http2: bool = True    # ALPN offers h2 with this certificate (sslFlags 4 not set)


class PortPlan(NamedTuple):
    hosts: dict[str, Cert]   # SNI host (lower case, no trailing dot) -> certificate
    default: Cert
    client_ca: str           # "" = no client certificates on this port


def plan(config: Config) -> dict[int, PortPlan]:
    """Per https port of the started sites, its certificate choices (see the module doc)."""
    hosts: dict[int, dict[str, Cert]] = {}
    ip_port: dict[int, Cert] = {}
    first: dict[int, Cert] = {}
    cas: dict[int, str] = {}
    for site in config.sites:
        if not site.server_auto_start:
            continue
        for entry in site.bindings:
            if not isinstance(entry, SiteBinding):
                continue
            binding = parse_binding(entry)
            if binding.protocol != "https":
                continue
            port = binding.port
            http2 = "disable_http2" not in entry.ssl_flags
            if is_acme(entry):  # the files the manager keeps for the host (docs/acme.md)
                cert = Cert(*certificate_paths(config.server.run_dir, binding.host), http2)
            else:
                cert = Cert(entry.certificate, entry.key, http2)
            first.setdefault(port, cert)
            hosts.setdefault(port, {})
            if entry.client_ca:
                cas.setdefault(port, entry.client_ca)
            if "sni" in entry.ssl_flags and binding.host:
                hosts[port].setdefault(binding.host, cert)
            else:
                ip_port.setdefault(port, cert)
    return {port: PortPlan(hosts[port], ip_port.get(port, first[port]), cas.get(port, ""))
            for port in first}


def select(port_plan: PortPlan, server_name: str | None) -> Cert:
    """The certificate for a ClientHello's SNI name (None: the client sent none)."""
    if server_name:
        name = server_name.lower().rstrip(".")
        cert = port_plan.hosts.get(name)
        if cert is not None:
            return cert
    return port_plan.default


def _protocol_policy(context: ssl.SSLContext, http2: bool = True) -> None:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(CIPHERS_TLS12)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    # The context the SNI callback switches to is the one whose ALPN list OpenSSL answers with.
    context.set_alpn_protocols(list(ALPN_PROTOCOLS if http2 else ALPN_HTTP1))


def certificate_context(cert: Cert, client_ca: str = "") -> ssl.SSLContext:
    """A context serving one certificate chain; ssl.SSLError/OSError when the files do not load.
    OpenSSL verifies a client certificate against the store of the context the SNI callback
    switched to, so the port's client CA is loaded here too."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _protocol_policy(context, cert.http2)
    context.load_cert_chain(cert.certificate, cert.key or None, password=_no_password)
    if client_ca:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def _no_password():
    raise ssl.SSLError("the private key is encrypted")


def _stamp(paths) -> tuple:
    """What says a file changed: inode, size and mtime of each (None when it cannot be read)."""
    out = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


class _Loaded:
    __slots__ = ("context", "stamp", "refused")

    def __init__(self, context: ssl.SSLContext | None, stamp: tuple):
        self.context = context
        self.stamp = stamp
        self.refused: tuple | None = None   # the stamp whose files were refused (logged once)


class TlsState:
    """Certificates and contexts of every https port. `report(message)` gets one line per
    certificate that could not be (re)loaded; the old one keeps serving."""

    def __init__(self, report=lambda message: None):
        self.report = report
        self.plans: dict[int, PortPlan] = {}
        self.loaded: dict[tuple[Cert, str], _Loaded] = {}   # (certificate, port's client CA) -> context
        self.listeners: dict[int, tuple[str, tuple, ssl.SSLContext]] = {}  # port -> (ca, stamp, ctx)
        #: TLS-ALPN-01 challenges pending (host -> context): the manager names them (`acme` message).
        self.challenges: dict[str, ssl.SSLContext] = {}

    # ---- configuration ----
    def apply(self, config: Config) -> None:
        """Take a new config's plan; (re)load certificates whose files changed or are new."""
        self.plans = plan(config)
        wanted = {(c, p.client_ca) for p in self.plans.values() for c in (p.default, *p.hosts.values())}
        for cert in list(self.loaded):
            if cert not in wanted:
                del self.loaded[cert]
        for cert in wanted:
            self._load(cert, force=True)
        for port in list(self.listeners):
            if port not in self.plans:
                del self.listeners[port]

    def poll(self) -> None:
        """Re-read certificates whose files changed since they were loaded."""
        for cert in list(self.loaded):
            self._load(cert, force=False)

    def _load(self, which: tuple[Cert, str], force: bool) -> None:
        cert, ca = which
        stamp = _stamp((cert.certificate, cert.key, ca))
        old = self.loaded.get(which)
        if old is not None and (old.stamp == stamp or old.refused == stamp) and not (force and old.context is None):
            return
        problems = binding_problems(SiteBinding(binding="", certificate=cert.certificate, key=cert.key,
                                                client_ca=ca))
        context = None
        if not problems:
            try:
                context = certificate_context(cert, ca)
            except (ssl.SSLError, OSError, ValueError) as exc:
                problems = [("certificate", str(exc))]
        if context is None:
            why = "; ".join(message for _, message in problems)
            if old is not None and old.context is not None:
                old.refused = stamp
                self.report(f"certificate {cert.certificate} not reloaded, the one loaded before keeps serving: {why}")
            else:
                self.loaded[which] = entry = _Loaded(None, stamp)
                entry.refused = stamp
                self.report(f"certificate {cert.certificate} cannot be loaded: {why}")
            return
        self.loaded[which] = _Loaded(context, stamp)

    def set_challenges(self, challenges: dict[str, tuple[str, str]]) -> None:
        """The TLS-ALPN-01 challenges now pending: host -> (certificate file, key file). A handshake
        that names such a host by SNI gets its challenge certificate, offers only ALPN acme-tls/1,
        and is closed once done (RFC 8737); the rest of the hosts are untouched."""
        contexts: dict[str, ssl.SSLContext] = {}
        for host, (cert, key) in challenges.items():
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.set_alpn_protocols([ACME_TLS_ALPN])
            try:
                context.load_cert_chain(cert, key, password=_no_password)
            except (ssl.SSLError, OSError, ValueError) as exc:
                self.report(f"the TLS-ALPN-01 challenge certificate for {host} cannot be loaded: {exc}")
                continue
            contexts[host.lower()] = context
        self.challenges = contexts

    # ---- serving ----
    def listener_context(self, port: int) -> ssl.SSLContext | None:
        """The context a port's listener serves with (None: not an https port). It changes only
        when the port's client CA does; the caller re-listens when it gets a different one."""
        port_plan = self.plans.get(port)
        if port_plan is None:
            return None
        ca = port_plan.client_ca
        stamp = _stamp((ca,)) if ca else ()
        current = self.listeners.get(port)
        if current is not None and current[0] == ca and (current[1] == stamp or not ca):
            return current[2]
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        _protocol_policy(context)
        if ca:
            try:
                context.load_verify_locations(ca)
            except (ssl.SSLError, OSError, ValueError) as exc:
                if current is not None:
                    self.report(f"client_ca {ca} not reloaded, the one loaded before stays: {exc}")
                    return current[2]
                self.report(f"client_ca {ca} cannot be loaded; port {port} asks for no client certificates: {exc}")
            else:
                context.verify_mode = ssl.CERT_OPTIONAL
        context.sni_callback = self._make_callback(port)
        self.listeners[port] = (ca, stamp, context)
        return context

    def _make_callback(self, port: int):
        def choose(ssl_object, server_name, _context):
            ssl_object.wasp_sni = server_name or ""
            if server_name and self.challenges:
                challenge = self.challenges.get(server_name.lower().rstrip("."))
                if challenge is not None:
                    ssl_object.wasp_acme = True   # the connection closes after the handshake
                    ssl_object.context = challenge
                    return None
            port_plan = self.plans.get(port)
            if port_plan is None:
                return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
            ca = port_plan.client_ca
            loaded = self.loaded.get((select(port_plan, server_name), ca))
            if loaded is None or loaded.context is None:
                loaded = self.loaded.get((port_plan.default, ca))
                if loaded is None or loaded.context is None:
                    return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
            ssl_object.context = loaded.context
            return None
        return choose


# ---- a ClientHello whose server name is not ASCII ----

#: Handshakes refused because the ClientHello's server name was not ASCII (quiet_bad_server_names).
refused_server_names = 0


def quiet_bad_server_names() -> None:
    """CPython decodes a ClientHello's server name as ASCII before it calls the SNI callback; a
    name with other bytes (RFC 6066 allows only A-labels) fails the handshake with an alert, which
    is right, but CPython also writes the UnicodeDecodeError and its traceback to stderr through
    sys.unraisablehook, so every such hello would print five lines to the front's stderr. This
    hook counts those (`refused_server_names`) and passes every other unraisable exception on to
    the hook it replaces. Installed once by the front's main."""
    previous = sys.unraisablehook

    def hook(info) -> None:
        global refused_server_names
        exc = info.exc_value
        if isinstance(exc, UnicodeDecodeError) and type(info.object) is bytes and exc.object == info.object:
            refused_server_names += 1
            return
        previous(info)

    sys.unraisablehook = hook


# ---- what a connection tells the worker ----

_CIPHER_IDS: dict[str, int] = {}


def _cipher_id(name: str) -> int:
    if not _CIPHER_IDS:
        for suite in ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).get_ciphers():
            _CIPHER_IDS[suite["name"]] = suite["id"] & 0xFFFF
    return _CIPHER_IDS.get(name, 0)


def connection_facts(ssl_object) -> TlsInfo:
    """The TlsInfo of an established server-side connection (once per connection)."""
    cipher = ssl_object.cipher()
    name = cipher[0] if cipher else ""
    info = TlsInfo(ssl_object.version() or "", name, _cipher_id(name), getattr(ssl_object, "wasp_sni", "") or "")
    der = ssl_object.getpeercert(binary_form=True)
    if der:
        # Only a verified certificate gets here: the listener context is CERT_OPTIONAL, so one
        # that does not verify fails the handshake.
        from cryptography import x509

        cert = x509.load_der_x509_certificate(der)
        info.client_cert = ssl.DER_cert_to_PEM_cert(der)
        info.client_subject = cert.subject.rfc4514_string()
        info.client_issuer = cert.issuer.rfc4514_string()
        info.client_serial = format(cert.serial_number, "X")
    return info
