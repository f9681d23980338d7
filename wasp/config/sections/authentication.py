"""IIS system.webServer/security/authentication/*: which authentication schemes a URL accepts.

Each IIS scheme is its own section (IIS: security/authentication/anonymousAuthentication, ...;
here snake_case without the `security/authentication/` prefix), every one locked by default
(overrideModeDefault="Deny", iis-behaviour.md §1.6): wasp.toml may set them at any level and for
any `[[locations]]` path, a `web.toml` only where a level above allows it. Defaults are IIS's
(§2.6): anonymous on, everything else off.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct, field

from wasp.config.collection import collection
from wasp.config.model import Duration, doc
from wasp.config.sections import Section, section

#: An absolute file name, or "" (not set).
FilePath = Annotated[str, Meta(pattern=r"^(/[^\x00]*)?$")]


class LdapSettings(Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=False):
    """The directory Basic authentication asks when `provider = "ldap"`."""

    url: Annotated[str, doc("The directory: \"ldap://host:389\" or \"ldaps://host:636\".")] = ""
    bind_dn: Annotated[str, doc(
        "The service account that searches for the user's entry; \"\" = an anonymous search."
    )] = ""
    bind_password: Annotated[str, doc("The service account's password.")] = ""
    user_base_dn: Annotated[str, doc("Where user entries are searched (subtree).")] = ""
    user_filter: Annotated[str, doc(
        "The search filter; {user} is the user name, escaped (RFC 4515). Exactly one entry must "
        "match; its DN is then bound with the user's password."
    )] = "(uid={user})"
    group_base_dn: Annotated[str, doc(
        "Where group entries are searched for the user's roles; \"\" = no LDAP roles."
    )] = ""
    group_filter: Annotated[str, doc(
        "The group search filter; {user} is the user name and {dn} the user's DN, both escaped."
    )] = "(|(memberUid={user})(member={dn})(uniqueMember={dn}))"
    group_attribute: Annotated[str, doc("The group entry's attribute that names the role.")] = "cn"
    timeout: Annotated[Duration, doc("Connect and operation time limit of each directory request.")] = Duration(5)


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


#: A domain name or NetBIOS-style name: letters, digits, dots and hyphens, no "@" or "\".
_DOMAIN = r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,253}[A-Za-z0-9])?)?$"


@section("basic_authentication", override_mode_default="Deny")
class BasicAuthentication(Section):
    """IIS basicAuthentication (BasicAuthenticationModule, RFC 7617)."""

    enabled: Annotated[bool, doc("Accept `Authorization: Basic` credentials and challenge with Basic.")] = False
    realm: Annotated[str, doc("The realm of the challenge; \"\" = the request's host name, as IIS does.")] = ""
    default_logon_domain: Annotated[str, Meta(pattern=_DOMAIN, description=(
        "IIS's defaultLogonDomain, the domain of a user name typed without one: \"alice\" is "
        "checked and logged on as \"alice@<domain>\" (the form sssd, Kerberos and LDAP "
        "userPrincipalName use; the provider must know the user by that name: an htpasswd line "
        "`alice@EXAMPLE.COM:...`, a PAM stack resolving qualified names, an LDAP `user_filter` "
        "such as (userPrincipalName={user})). A name typed with a domain (\"alice@other\", "
        "\"OTHER\\alice\") is kept as typed. \"\" = names are used as typed."
    ))] = ""
    provider: Annotated[Literal["htpasswd", "pam", "ldap"], doc(
        "Where passwords are checked: an htpasswd `user_file` (bcrypt or SHA-crypt), the system's "
        "users through PAM (`pam_service`), or an LDAP directory (`[...basic_authentication.ldap]`, "
        "bind as the user)."
    )] = "htpasswd"
    user_file: Annotated[FilePath, doc(
        "provider \"htpasswd\": the absolute path of the htpasswd file (`htpasswd -B`); re-read "
        "when it changes."
    )] = ""
    group_file: Annotated[FilePath, doc(
        "An htgroup file (`group: user user`) giving the users' roles for URL authorization; "
        "\"\" = the provider's own groups (system groups for PAM, LDAP groups) or none."
    )] = ""
    pam_service: Annotated[str, doc(
        "provider \"pam\": the PAM service (/etc/pam.d/<name>) that checks the password."
    )] = "wasp"
    ldap: Annotated[LdapSettings, doc("provider \"ldap\": the directory.")] = field(
        default_factory=LdapSettings)
    user_token_ttl: Annotated[Duration, doc(
        "How long a verified Authorization header is remembered (IIS's TokenCacheModule, "
        "UserTokenTTL): repeated requests skip the password check. \"0s\" = check every time."
    )] = Duration(900)
    max_failed_logons: Annotated[int, Meta(ge=0), doc(
        "Failed logons a client address may make within `failed_logon_window` before its logons "
        "are refused (401.1) unchecked until the window ends; 0 = no limit."
    )] = 10
    failed_logon_window: Annotated[Duration, doc("The window `max_failed_logons` counts in.")] = Duration(60)


@section("digest_authentication", override_mode_default="Deny")
class DigestAuthentication(Section):
    """IIS digestAuthentication (DigestAuthenticationModule, RFC 7616)."""

    enabled: Annotated[bool, doc("Accept `Authorization: Digest` credentials and challenge with Digest.")] = False
    realm: Annotated[str, doc(
        "The realm of the challenge (and of the htdigest entries); \"\" = the request's host name."
    )] = ""
    user_file: Annotated[FilePath, doc(
        "The absolute path of the htdigest file (user:realm:HA1; `htdigest` writes MD5, a 64-digit "
        "HA1 is SHA-256(user:realm:password)); re-read when it changes."
    )] = ""
    group_file: Annotated[FilePath, doc("An htgroup file giving the users' roles; \"\" = none.")] = ""
    nonce_lifetime: Annotated[Duration, doc(
        "How long a nonce is good for; an older one is answered with a fresh one and stale=true."
    )] = Duration(300)
    max_failed_logons: Annotated[int, Meta(ge=0), doc(
        "As basic_authentication's: failed logons per client address within `failed_logon_window`."
    )] = 10
    failed_logon_window: Annotated[Duration, doc("The window `max_failed_logons` counts in.")] = Duration(60)


@section("windows_authentication", override_mode_default="Deny")
class WindowsAuthentication(Section):
    """IIS windowsAuthentication: on Linux, Negotiate (Kerberos through GSSAPI)."""

    enabled: Annotated[bool, doc("Accept `Authorization: Negotiate` (Kerberos) and challenge with it.")] = False
    keytab: Annotated[str, doc(
        "The keytab holding the service's keys (absolute path); \"\" = the system's "
        "(KRB5_KTNAME, else /etc/krb5.keytab). It must be readable by the pool's user."
    )] = ""
    service_principal: Annotated[str, doc(
        "The service principal clients must have a ticket for: \"HTTP/www.example.com@REALM\" "
        "or host-based \"HTTP@www.example.com\"; \"\" = any principal whose key is in the keytab "
        "(IIS accepts tickets for any SPN of its machine account)."
    )] = ""
    strip_realm: Annotated[bool, doc(
        "The user is \"alice\" instead of \"alice@EXAMPLE.COM\" (IIS shows DOMAIN\\user; a "
        "realm-less name suits apps that know one realm)."
    )] = False


class OneToOneMapping(Struct, forbid_unknown_fields=True, kw_only=True):
    """IIS oneToOneMappings/add: one certificate, one user."""

    certificate: Annotated[str, doc(
        "The certificate: a PEM file (absolute path), its DER in base64 (IIS's form) or its SHA-256 "
        "fingerprint in hex (colons allowed). Compared by the certificate's DER bytes."
    )]
    user_name: Annotated[str, doc("The user a request with this certificate runs as.")]
    enabled: Annotated[bool, doc("false = the mapping is ignored.")] = True


class CertificateRule(Struct, forbid_unknown_fields=True, kw_only=True):
    """IIS manyToOneMappings/add/rules/add: one test on the certificate's subject or issuer."""

    certificate_field: Annotated[Literal["Subject", "Issuer"], doc("Which name of the certificate.")] = "Subject"
    certificate_sub_field: Annotated[str, doc(
        "The attribute of that name: CN, O, OU, C, S (or ST), L, E (emailAddress), DC, "
        "SERIALNUMBER, T (title) or a dotted OID. A name with several such attributes matches "
        "when one does."
    )]
    match_criteria: Annotated[str, doc("The value, `*` matching any run of characters (IIS's wildcard).")]
    compare_case_sensitive: Annotated[bool, doc("Compare with case (IIS's default).")] = True


class ManyToOneMapping(Struct, forbid_unknown_fields=True, kw_only=True):
    """IIS manyToOneMappings/add: every certificate matching all the rules is one user (or refused)."""

    name: Annotated[str, doc("The mapping's name (its key).")]
    description: Annotated[str, doc("Free text.")] = ""
    enabled: Annotated[bool, doc("false = the mapping is ignored.")] = True
    permission_mode: Annotated[Literal["Allow", "Deny"], doc(
        "Allow: the request runs as `user_name`; Deny: it is refused with 403.12 (mapper denied "
        "access)."
    )] = "Allow"
    user_name: Annotated[str, doc("The user of an Allow mapping.")] = ""
    rules: Annotated[list[CertificateRule], doc(
        "The tests, all of which must match; a mapping with no rule matches no certificate."
    )] = field(default_factory=list)


@section("client_certificate_mapping_authentication", override_mode_default="Deny")
class ClientCertificateMappingAuthentication(Section):
    """IIS iisClientCertificateMappingAuthentication: a verified client certificate as the user."""

    enabled: Annotated[bool, doc("Map a verified client certificate to a user.")] = False
    one_to_one_certificate_mappings_enabled: Annotated[bool, doc(
        "Use `one_to_one_mappings` (IIS oneToOneCertificateMappingsEnabled)."
    )] = True
    many_to_one_certificate_mappings_enabled: Annotated[bool, doc(
        "Use `many_to_one_mappings` (IIS manyToOneCertificateMappingsEnabled)."
    )] = True
    one_to_one_mappings: Annotated[list[OneToOneMapping], collection(key="certificate"), doc(
        "Certificates that are one user each, checked first."
    )] = field(default_factory=list)
    many_to_one_mappings: Annotated[list[ManyToOneMapping], collection(key="name"), doc(
        "Rules mapping every certificate they match to one user, in order; the first mapping "
        "whose rules all match decides."
    )] = field(default_factory=list)
