"""IIS system.webServer/security/authentication/*: which authentication schemes a URL accepts.

Each IIS scheme is its own section (IIS: security/authentication/anonymousAuthentication, ...;
here snake_case without the `security/authentication/` prefix), every one locked by default
(overrideModeDefault="Deny", iis-behaviour.md §1.6): wasp.toml may set them at any level and for
any `[[locations]]` path, a `web.toml` only where a level above allows it. Defaults are IIS's
(§2.6): anonymous on, everything else off.
"""

from __future__ import annotations

from typing import Annotated

from wasp.config.model import doc
from wasp.config.sections import Section, section


@section("anonymous_authentication", override_mode_default="Deny")
class AnonymousAuthentication(Section):
    """IIS anonymousAuthentication (AnonymousAuthenticationModule)."""

    enabled: Annotated[bool, doc(
        "Let requests without credentials through as the anonymous user (cs-username \"-\")."
    )] = True
    user_name: Annotated[str, doc(
        "The identity anonymous requests run as; \"\" = the pool's identity (IIS's default "
        "install). wasp runs a pool's code as the pool's user, so this is informational: it is "
        "what `ctx.user` holds for an anonymous request only when set."
    )] = ""


@section("basic_authentication", override_mode_default="Deny")
class BasicAuthentication(Section):
    """IIS basicAuthentication (BasicAuthenticationModule, RFC 7617)."""

    enabled: Annotated[bool, doc("Accept `Authorization: Basic` credentials and challenge with Basic.")] = False
    realm: Annotated[str, doc("The realm of the challenge; \"\" = the request's host name, as IIS does.")] = ""
    default_logon_domain: Annotated[str, doc(
        "IIS's defaultLogonDomain: a domain put in front of user names given without one."
    )] = ""


@section("digest_authentication", override_mode_default="Deny")
class DigestAuthentication(Section):
    """IIS digestAuthentication (DigestAuthenticationModule, RFC 7616)."""

    enabled: Annotated[bool, doc("Accept `Authorization: Digest` credentials and challenge with Digest.")] = False
    realm: Annotated[str, doc("The realm of the challenge (and of the htdigest entries).")] = ""


@section("windows_authentication", override_mode_default="Deny")
class WindowsAuthentication(Section):
    """IIS windowsAuthentication: on Linux, Negotiate (Kerberos through GSSAPI)."""

    enabled: Annotated[bool, doc("Accept `Authorization: Negotiate` (Kerberos) and challenge with it.")] = False


@section("client_certificate_mapping_authentication", override_mode_default="Deny")
class ClientCertificateMappingAuthentication(Section):
    """IIS iisClientCertificateMappingAuthentication: a verified client certificate as the user."""

    enabled: Annotated[bool, doc("Map a verified client certificate to a user.")] = False
