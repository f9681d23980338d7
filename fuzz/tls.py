"""Fuzz harness: the TLS ClientHello / SNI path of the front (wasp/front/tls.py `TlsState`: the
listener contexts, the SNI callback choosing the certificate by host name, the default
certificate, ALPN h2/http1.1 per binding incl. ssl_flags disable_http2, a port's client CA, the
ACME TLS-ALPN-01 challenge contexts; and `connection_facts`), driven with `ssl.MemoryBIO` and
`SSLContext.wrap_bio` server objects, without sockets.

Small EC certificates are made once per process in a temporary folder (the CA of
tests/integration/tls_support.py): "a.example" (sni), "b.example" (sni, disable_http2) and a
default certificate on port 443; port 8443 asks for client certificates of the CA; a pending
TLS-ALPN-01 challenge for "acme.example". An input is a port byte then the client's first bytes
(a ClientHello, in records). The server object takes them in one handshake step. Properties:

* only `ssl.SSLError` (its want-read subclass being the usual outcome of a first flight)
  escapes the handshake step; nothing reaches sys.unraisablehook but the UnicodeDecodeError of a
  server name that is not ASCII, which CPython raises before the callback and the front's
  `quiet_bad_server_names` hook counts (such a handshake never succeeds);
* the SNI callback is called at most once, never raises, returns None or the handshake-failure
  alert, and switches the connection to the context `tls.select` names for the server name
  OpenSSL reports (lower-cased, without a trailing dot; the port's default without SNI or for an
  unknown name), or to the challenge context for a pending challenge host;
* ALPN, once chosen, is one the chosen context offers: h2 or http/1.1 (http/1.1 only with
  disable_http2), acme-tls/1 only for a challenge;
* when the server name OpenSSL reported is one a Python client can send, the same name
  completes a real handshake (one input in four, by the top bits of the first byte; its other
  bits pick the port, TLS 1.2 or 1.3, one of four ALPN lists, a client certificate on 8443): the front's certificate is the one chosen, `connection_facts` names
  the version, the cipher and its IANA id, the SNI, and the client certificate's subject, issuer
  and serial;
* per-handshake state is released: the SSL objects are freed when dropped (no reference cycle
  through the callback), and TlsState's tables do not change.
"""

from __future__ import annotations

import atexit
import gc
import shutil
import ssl
import sys
import tempfile
import weakref
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from cryptography import x509  # noqa: E402

from tls_support import CA  # noqa: E402  (the suite's certificate maker)
from wasp.config import model  # noqa: E402
from wasp.config.acme import ACME_TLS_ALPN  # noqa: E402
from wasp.front import tls  # noqa: E402

PORTS = (443, 8443)
HOSTS = ("a.example", "b.example")
CHALLENGE = "acme.example"


class _Setup:
    """The certificates, the TlsState and its listener contexts: made once per process."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="wasp-fuzz-tls-"))
        atexit.register(shutil.rmtree, self.folder, True)
        ca = self.ca = CA(self.folder / "ca")
        other = CA(self.folder / "other", name="another CA")
        self.files = {name: ca.issue(name) for name in (*HOSTS, "default.example", "client-port.example")}
        self.client = ca.issue("fuzz client", file="client", client=True)
        self.stranger = other.issue("stranger", file="stranger", client=True)
        challenge = ca.issue(CHALLENGE, file="challenge")

        def binding(text, name, flags=(), client_ca=""):
            cert, key = self.files[name]
            return model.SiteBinding(binding=text, certificate=str(cert), key=str(key), ssl_flags=list(flags),
                                     client_ca=client_ca)

        config = model.Config(
            pools=[model.Pool(name="P")],
            sites=[model.Site(name="S", id=1, bindings=[
                binding("https/*:443:a.example", "a.example", ["sni"]),
                binding("https/*:443:b.example", "b.example", ["sni", "disable_http2"]),
                binding("https/*:443:", "default.example"),
                binding("https/*:8443:", "client-port.example", client_ca=str(ca.path)),
            ], applications=[model.Application(path="/", pool="P")])])
        self.reports: list[str] = []
        state = self.state = tls.TlsState(self.reports.append)
        state.apply(config)
        state.set_challenges({CHALLENGE: (str(challenge[0]), str(challenge[1]))})
        assert not self.reports, self.reports
        self.listeners = {port: state.listener_context(port) for port in PORTS}
        self.calls: list = []
        for port, context in self.listeners.items():
            context.sni_callback = self._watch(context.sni_callback, port)
        self.contexts = {id(entry.context): cert for (cert, _), entry in state.loaded.items()}
        self.challenge_context = state.challenges[CHALLENGE]
        self.snapshot = self._tables()
        self.certs = {name: x509.load_pem_x509_certificate(Path(c).read_bytes()) for name, (c, _) in self.files.items()}
        self.client_cert = x509.load_pem_x509_certificate(Path(self.client[0]).read_bytes())

    def _watch(self, choose, port):
        """The front's callback, with what it was asked and what it did recorded."""
        def watched(ssl_object, server_name, context):
            try:
                result = choose(ssl_object, server_name, context)
            except BaseException as exc:   # a finding: recorded, raised again by the check
                self.calls.append((port, server_name, exc, None))
                return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
            self.calls.append((port, server_name, result, ssl_object.context))
            return result
        return watched

    def _tables(self):
        state = self.state
        return (len(state.plans), len(state.loaded), len(state.listeners), len(state.challenges),
                {k: id(v.context) for k, v in state.loaded.items()})

    def expected(self, port: int, server_name: str | None):
        """The context the front must switch to for `server_name`, and its ALPN protocols."""
        if server_name and server_name.lower().rstrip(".") == CHALLENGE:
            return self.challenge_context, (ACME_TLS_ALPN,)
        cert = tls.select(self.state.plans[port], server_name)
        ca = self.state.plans[port].client_ca
        return self.state.loaded[(cert, ca)].context, (tls.ALPN_PROTOCOLS if cert.http2 else tls.ALPN_HTTP1)


_SETUP: _Setup | None = None


def setup() -> _Setup:
    global _SETUP
    if _SETUP is None:
        _SETUP = _Setup()
    return _SETUP


_unraisable: list = []


def _hook(info) -> None:
    _unraisable.append(info.exc_value)


sys.unraisablehook = _hook
tls.quiet_bad_server_names()   # as the front's main does: it passes every other one to _hook


# ---------------------------------------------------------------- seeds
def _client_context(alpn, version=None, cert=None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


def client_hello(server_name, alpn=("h2", "http/1.1"), version=None) -> bytes:
    """The first flight of Python's ssl client (a ClientHello), read off its MemoryBIO."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = _client_context(alpn, version).wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        client.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def seeds():
    setup()
    v12, v13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3
    names = ["a.example", "B.EXAMPLE.", "b.example", "unknown.example", None, "xn--bcher-kva.example",
             "x" * 63 + "." + "y" * 63 + "." + "z" * 63 + "." + "w" * 60, CHALLENGE, "default.example",
             "a.example.", "localhost"]
    out = []
    for name in names:
        for alpn in (("h2", "http/1.1"), ("http/1.1",), (), (ACME_TLS_ALPN,)):
            for version in (None, v12, v13):
                out.append(client_hello(name, alpn, version))
    for i, hello in enumerate(out):
        yield bytes([i % 256]) + hello


# ---------------------------------------------------------------- one input
def _handshake(client, server, client_in, client_out, server_in, server_out) -> bool:
    """Run a client and a server to the end of the handshake through their BIOs (bounded)."""
    for _ in range(16):
        done = 0
        for side, src, dst in ((client, client_out, server_in), (server, server_out, client_in)):
            try:
                side.do_handshake()
                done += 1
            except ssl.SSLWantReadError:
                pass
            data = src.read()
            if data:
                dst.write(data)
        if done == 2:
            return True
    return False


def _check_call(s: _Setup, port: int, server_object, before: int) -> str | None:
    calls = s.calls[before:]
    assert len(calls) <= 1, calls
    if not calls:
        return None
    got_port, name, result, context = calls[0]
    assert got_port == port
    assert not isinstance(result, BaseException), f"the SNI callback raised {result!r} for {name!r}"
    assert result is None, (name, result)   # every certificate of the plan is loaded
    want, alpn = s.expected(port, name)
    assert context is want, (name, s.contexts.get(id(context)))
    assert server_object.context is want
    assert getattr(server_object, "wasp_sni", None) == (name or "")
    assert bool(getattr(server_object, "wasp_acme", False)) == (want is s.challenge_context)
    chosen = server_object.selected_alpn_protocol()
    assert chosen is None or chosen in alpn, (name, chosen, alpn)
    return name if name is not None else ""


def _real_session(s: _Setup, port: int, name: str, flags: int) -> None:
    """A real client with that server name completes a handshake: the front's choices hold."""
    want, alpn_offered = s.expected(port, name or None)
    alpn = [("h2", "http/1.1"), ("http/1.1",), (), (ACME_TLS_ALPN, "h2")][(flags >> 3) & 3]
    version = ssl.TLSVersion.TLSv1_3 if flags & 4 else ssl.TLSVersion.TLSv1_2
    cert = s.client if port == 8443 and flags & 32 else None
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    try:
        client = _client_context(alpn, version, cert).wrap_bio(c_in, c_out, server_hostname=name or None)
    except (ValueError, UnicodeError):
        return   # a name Python's client will not send
    server = s.listeners[port].wrap_bio(s_in, s_out, server_side=True)
    before = len(s.calls)
    try:
        done = _handshake(client, server, c_in, c_out, s_in, s_out)
    except ssl.SSLError:
        # The only refusals, both for a TLS-ALPN-01 challenge: its context offers nothing but
        # acme-tls/1, and OpenSSL ends a handshake whose ALPN list has no match
        # (no_application_protocol); and it holds no client CA, so a client certificate the
        # port's listener asked for does not verify (an ACME CA sends none).
        assert want is s.challenge_context and (ACME_TLS_ALPN not in alpn and alpn or cert is not None), \
            (name, alpn, cert)
        return
    assert done, (name, alpn)
    _check_call(s, port, server, before)
    chosen = server.selected_alpn_protocol()
    common = [p for p in alpn_offered if p in alpn]
    assert chosen == (common[0] if common else None), (name, alpn, chosen)
    leaf = x509.load_der_x509_certificate(client.getpeercert(binary_form=True))
    if want is not s.challenge_context:
        cert_name = s.contexts[id(want)].certificate
        expected = next(c for n, c in s.certs.items() if str(s.files[n][0]) == cert_name)
        assert leaf == expected, (name, leaf.subject)
    info = tls.connection_facts(server)
    assert info.version == ("TLSv1.3" if flags & 4 else "TLSv1.2"), info.version
    assert info.cipher == server.cipher()[0] and info.cipher_id, info
    assert info.sni == (name or ""), (info.sni, name)
    if cert is not None:
        assert info.client_subject == s.client_cert.subject.rfc4514_string(), info
        assert info.client_issuer == s.ca.cert.subject.rfc4514_string(), info
        assert info.client_serial == format(s.client_cert.serial_number, "X"), info
        assert info.client_cert.startswith("-----BEGIN CERTIFICATE-----")
    else:
        assert not info.client_cert and not info.client_subject and not info.client_serial, info


def test_one_input(data: bytes) -> None:
    s = setup()
    if not data:
        return
    flags = data[0]
    port = PORTS[flags & 1]
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = s.listeners[port].wrap_bio(incoming, outgoing, server_side=True)
    incoming.write(data[1:])
    before = len(s.calls)
    refused = tls.refused_server_names
    del _unraisable[:]
    try:
        server.do_handshake()
    except ssl.SSLError:
        pass   # SSLWantReadError (waits for the client's next flight) or a refused hello
    else:
        assert tls.refused_server_names == refused, "a hello with a non-ASCII server name completed"
    assert not _unraisable, _unraisable
    if tls.refused_server_names != refused:
        assert len(s.calls) == before, "the SNI callback ran for a name CPython could not decode"
    name = _check_call(s, port, server, before)
    ref = weakref.ref(server)
    del server
    if ref() is not None:
        gc.collect()
        assert ref() is None, "the server SSL object outlives its handshake"
    if name is not None and flags >> 6 == 0:
        _real_session(s, port, name, flags)
        assert not _unraisable, _unraisable
    assert s._tables() == s.snapshot, "TlsState's tables changed during a handshake"
    del s.calls[before:]
