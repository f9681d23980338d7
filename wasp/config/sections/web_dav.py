"""IIS system.webServer/webdav/authoring and webdav/authoringRules (WebDAVModule).

`web_dav_authoring` switches WebDAV on for a URL space (off by default, as in IIS) and says how
the module treats properties, locks and the file system. `web_dav_authoring_rules` is IIS's
separate set of permissions for WebDAV requests: `<add users roles path access>` rules, additive
(a request gets the union of the access of every rule naming its user or one of its roles and
whose path matches), over `default_access` (None). No rule: nothing may be authored.

IIS locks both sections (overrideModeDefault Deny): wasp.toml sets them at any level or
`[[locations]]` path, a web.toml only below a location that unlocks them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct, field

from wasp.config.model import Size, doc
from wasp.config.sections import Section, collection, section

Access = Literal["None", "Read", "Write", "Source"]
#: An authoring rule path: "*", "*.php", a file name, or a path with "/" below the application.
Pattern = Annotated[str, Meta(min_length=1, pattern=r"^[^\x00-\x1f\\]+$")]


class FileSystem(Struct, forbid_unknown_fields=True, kw_only=True):
    """IIS `<fileSystem>`."""

    allow_hidden_files: Annotated[bool, doc(
        "Let WebDAV see and write hidden files (on Linux: names starting with \".\"); false: "
        "they are left out of PROPFIND listings and any WebDAV request naming one is 404.9."
    )] = False


class Locks(Struct, forbid_unknown_fields=True, kw_only=True):
    """IIS `<locks>`."""

    enabled: Annotated[bool, doc(
        "Offer LOCK and UNLOCK (DAV class 2). Locks are kept in the application's lock store, "
        "shared by every worker of the pool and kept across recycles."
    )] = False
    lock_store: Annotated[Literal["webdav_simple_lock"], doc(
        "IIS's lock provider name. wasp's store is one SQLite file per application under "
        "`<server.run_dir>/dav/`, written in transactions every worker of a web garden sees."
    )] = "webdav_simple_lock"
    require_lock_for_writing: Annotated[bool, doc(
        "Refuse PUT, PROPPATCH, DELETE, MOVE and COPY onto a resource that the client has not "
        "locked (423)."
    )] = False


class Properties(Struct, forbid_unknown_fields=True, kw_only=True):
    """IIS `<properties>`."""

    allow_anonymous_propfind: Annotated[bool, doc(
        "Let the anonymous user make PROPFIND requests (IIS's allowAnonymousPropfind); the "
        "authoring rules must still grant it Read."
    )] = False
    allow_infinite_propfind_depth: Annotated[bool, doc(
        "Accept `Depth: infinity` PROPFIND (false: 403 with DAV:propfind-finite-depth, as IIS)."
    )] = False
    allow_custom_properties: Annotated[bool, doc(
        "Keep dead (client-defined) properties set with PROPPATCH; false: PROPPATCH is 403."
    )] = True


@section("web_dav_authoring", override_mode_default="Deny")
class WebDavAuthoring(Section):
    """IIS system.webServer/webdav/authoring."""

    enabled: Annotated[bool, doc("Serve WebDAV requests here (IIS's default: false).")] = False
    require_ssl: Annotated[bool, doc("Refuse WebDAV requests that did not come over TLS (403.4).")] = False
    max_allowed_xml_request_length: Annotated[Size, doc(
        "Longest XML request body (PROPFIND, PROPPATCH, LOCK); over it: 413."
    )] = Size(1000000)
    file_system: Annotated[FileSystem, doc("IIS's fileSystem element.")] = field(default_factory=FileSystem)
    locks: Annotated[Locks, doc("IIS's locks element.")] = field(default_factory=Locks)
    properties: Annotated[Properties, doc("IIS's properties element.")] = field(default_factory=Properties)


class AuthoringRule(Struct, forbid_unknown_fields=True, kw_only=True):
    """One `<authoringRules><add>`."""

    users: Annotated[str, doc(
        "Comma-separated user names; \"*\" = every authenticated user, \"?\" = the anonymous user."
    )] = ""
    roles: Annotated[str, doc("Comma-separated roles (the authentication modules' groups).")] = ""
    path: Annotated[Pattern, doc(
        "What the rule covers: \"*\", a file name or extension pattern (\"*.txt\"), or a path "
        "with \"/\" below the application (\"/docs/*\"); case is ignored."
    )] = "*"
    access: Annotated[list[Access], doc("The access granted: Read, Write, Source (None: nothing).")] = \
        field(default_factory=list)


@section("web_dav_authoring_rules", override_mode_default="Deny", default_collection="rules")
class WebDavAuthoringRules(Section):
    """IIS system.webServer/webdav/authoringRules."""

    default_access: Annotated[list[Access], doc("Access everyone has without a rule (IIS: None).")] = \
        field(default_factory=list)
    allow_non_mime_map_files: Annotated[bool, doc(
        "Let WebDAV read and write files whose extension has no MIME map entry (served to "
        "authors as `default_mime_type`)."
    )] = True
    default_mime_type: Annotated[str, Meta(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+$"),
                                 doc("Content type of a file with no MIME map entry.")] = \
        "application/octet-stream"
    rules: Annotated[list[AuthoringRule], collection(key=("users", "roles", "path")), doc(
        "The rules: `rules = [ { users = \"alice\", path = \"*\", access = [\"Read\", \"Write\"] } ]` "
        "or `{ clear, remove = [[users, roles, path], ...], add = [...] }`."
    )] = field(default_factory=list)
