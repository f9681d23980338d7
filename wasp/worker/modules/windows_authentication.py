"""IIS WindowsAuthenticationModule, Negotiate provider: SPNEGO/Kerberos through GSSAPI.

On Linux the counterpart of Windows authentication is Kerberos: the server's keys sit in a keytab
(IIS: the machine account's), a client with a ticket for the service sends `Authorization:
Negotiate <base64 SPNEGO token>` (RFC 4559), GSSAPI's accept_sec_context checks it, and the
request runs as the client's principal (`alice@EXAMPLE.COM`, or `alice` with strip_realm).
The acceptor's answer (the mutual-authentication token) goes back in `WWW-Authenticate: Negotiate
<base64>` on whatever response the request gets. A request without the header is offered the
`Negotiate` challenge; a token that does not verify (garbage, a ticket for another service, an
expired ticket, a replay) is 401.1. A replay is known by MIT's replay cache, which the module
names itself (REPLAY_CACHE) so that KRB5RCACHETYPE=none in the environment cannot turn it off.

Kerberos needs one leg. A mechanism that wants more (NTLM inside SPNEGO) gets its next token in a
401.1, but the context is not kept: wasp hands requests, not connections, to workers (the next
leg may reach another worker), so only single-leg mechanisms authenticate. IIS's
authPersistSingleRequest / kernel-mode options have no counterpart.

The GSSAPI binding is the `gssapi` package, an optional dependency (`pip install
'wasp-server[kerberos]'`): importing this module never needs it; enabling the section without it is
a load error (or a 500 for a path enabled only below the application) that names the extra.
"""

from __future__ import annotations

import base64
import binascii
import logging

from wasp.errors import HttpError
from wasp.worker.authn import NEGOTIATE, Unauthorized, add_challenge, unauthorized
from wasp.worker.tables import mentioned
from wasp.worker.registry import CONTINUE, Module, ModuleError, Phase, register

log = logging.getLogger("wasp.worker")

_MISSING = ("windows_authentication needs the gssapi package (python-gssapi): "
            "pip install 'wasp-server[kerberos]' (and the system's libgssapi-krb5)")

#: The acceptor's replay cache: MIT's default file cache ("file2", KRB5RCACHEDIR or /var/tmp,
#: krb5_<euid>.rcache2), one file shared by every process of the user, so a token accepted by one
#: worker is refused by its siblings and by the workers after a recycle.
REPLAY_CACHE = "dfl:"

#: A token longer than this is refused before GSSAPI sees it (a ticket with a large PAC is ~12 KB).
MAX_TOKEN = 64 * 1024


def _gssapi():
    try:
        import gssapi
    except ImportError:
        return None
    return gssapi


@register("windows_authentication", phases=(Phase.AUTHENTICATE_REQUEST,))
class WindowsAuthenticationModule(Module):
    def setup(self, app) -> None:
        self.app = app
        self.gssapi = _gssapi()
        self.credentials: dict[tuple[str, str], object] = {}
        # Locked by default (a web.toml sets it only below a location naming it): a section
        # nowhere in wasp.toml is off for every URL, and the module stays out of the pipeline.
        self.needed = mentioned(app.tables, "windows_authentication")

    def wants(self, phase) -> bool:
        return self.needed

    def validate(self) -> None:
        if self.gssapi is None and self.app.sections.windows_authentication.enabled:
            raise ModuleError(_MISSING)

    def authenticate_request(self, ctx):
        section = ctx.config.windows_authentication
        if not section.enabled:
            return CONTINUE
        token = _negotiate_token(ctx.head.headers)
        if token is None:
            add_challenge(ctx, NEGOTIATE, "Negotiate")
            return CONTINUE
        gssapi = self.gssapi
        if gssapi is None:
            log.error(_MISSING)
            raise HttpError(_MISSING, status=500)
        try:
            data = base64.b64decode(token, validate=True) if len(token) <= MAX_TOKEN * 4 // 3 + 4 else b""
        except (binascii.Error, ValueError):
            data = b""
        if not data:
            add_challenge(ctx, NEGOTIATE, "Negotiate")
            raise unauthorized(ctx, 1, "logon failed: the Negotiate token is not base64")
        context = gssapi.SecurityContext(creds=self._credentials(section), usage="accept")
        try:
            answer = context.step(data)
            # SPNEGO hands back its reject token first and keeps the error for the next call:
            # asking whether the context is complete raises it.
            complete = context.complete
            name = str(context.initiator_name) if complete else ""
        except gssapi.exceptions.GSSError as exc:
            log.info("Negotiate logon failed for %s: %s", ctx.head.client[0], _one_line(exc))
            add_challenge(ctx, NEGOTIATE, "Negotiate")
            raise unauthorized(ctx, 1) from None
        if not complete:
            # Another leg wanted (not Kerberos): its token, alone, and no context kept.
            exc = Unauthorized("logon failed: the mechanism needs more legs", substatus=1)
            exc.headers = [("WWW-Authenticate", "Negotiate " + base64.b64encode(answer or b"").decode())]
            raise exc
        if section.strip_realm:
            name = _without_realm(name)
        ctx.set_user(name, "Negotiate")
        if answer:
            ctx.add_header("WWW-Authenticate", "Negotiate " + base64.b64encode(answer).decode("ascii"))
        return CONTINUE

    def _credentials(self, section):
        key = (section.keytab, section.service_principal)
        creds = self.credentials.get(key)
        if creds is None:
            gssapi = self.gssapi
            name = None
            if section.service_principal:
                principal = section.service_principal
                kind = (gssapi.NameType.kerberos_principal if "/" in principal
                        else gssapi.NameType.hostbased_service)
                name = gssapi.Name(principal, kind)
            # The replay cache is named, never left to the environment: KRB5RCACHETYPE=none
            # (or KRB5RCACHENAME=none:) in the worker's environment would otherwise turn it
            # off and let a captured Authorization header in again.
            store = {"rcache": REPLAY_CACHE}
            if section.keytab:
                store["keytab"] = section.keytab
            try:
                creds = gssapi.Credentials(name=name, usage="accept", store=store)
            except gssapi.exceptions.GSSError as exc:
                detail = (f"windows_authentication: no acceptor credentials for "
                          f"{section.service_principal or 'any principal'} in keytab "
                          f"{section.keytab or '(the system default)'}: {_one_line(exc)}")
                log.error("%s", detail)
                raise HttpError(detail, status=500) from None
            self.credentials[key] = creds
        return creds


def _negotiate_token(headers) -> bytes | None:
    """The token of the first `Authorization: Negotiate ...` header, b"" for one without a token;
    None when the request has none."""
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, rest = value.strip().partition(b" ")
            if scheme.lower() == b"negotiate":
                return rest.strip()
    return None


def _without_realm(principal: str) -> str:
    """"alice@EXAMPLE.COM" -> "alice" (an escaped "\\@" in the name part stays)."""
    i = len(principal)
    while True:
        i = principal.rfind("@", 0, i)
        if i <= 0:
            return principal
        if principal[i - 1] != "\\":
            return principal[:i]


def _one_line(exc) -> str:
    return " ".join(str(exc).split())
