"""IIS system.webServer/handlers: which handler serves a request (MAP_REQUEST_HANDLER).

The entries are tried in order; the first whose `path` and `verb` match the request, and whose
handler module runs for the application, is the request's handler. `path` is matched without
regard to case against the file name (the last URL segment) when it has no "/", else against the
whole path below the application; `*` matches any run of characters. A path that matches with a
verb the entry does not list goes on to the next entry; when no entry takes the request, a path
some entry matched gets 405 (with `Allow`), anything else 404.4.

The collection is prepend-merged (IIS mergeAppend=false): a level's entries come before the ones
it inherits, so a location's handler is tried before the application's. IIS locks the section
(overrideModeDefault Deny): a web.toml may set it only where a location unlocks it.

The default list is the Python app's mapping, then IIS's `StaticFile` catch-all. The Python app's
entry passes over a URL that names an existing file, or a directory with a default document
(`skip_existing_files`, ASP.NET routing's RouteExistingFiles = false), so content next to an app
is served as it always was.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct, field

from wasp.config.model import doc
from wasp.config.sections import Section, collection, section

ResourceType = Literal["File", "Directory", "Either", "Unspecified"]
Access = Literal["None", "Read", "Write", "Script", "Execute"]
#: IIS accessPolicy flags (iis-behaviour.md §2.14) that wasp acts on, and Source (accepted, as the
#: flag the WebDAV source permission uses; no wasp handler requires it).
Policy = Literal["Read", "Write", "Script", "Execute", "Source"]

#: A handler pattern: "*", "*.py", "robots.txt", "/api/*"; no NUL, no "\\", no control characters.
Pattern = Annotated[str, Meta(min_length=1, pattern=r"^[^\x00-\x1f\\]+$")]
#: "*" or a comma-separated list of methods ("GET,HEAD"); methods are tokens (case-sensitive).
Verbs = Annotated[str, Meta(pattern=r"^\s*(\*|[!#$%&'*+.^_`|~0-9A-Za-z-]+(\s*,\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*)\s*$")]
#: Module ids, comma-separated ("static_file,default_document").
ModuleList = Annotated[str, Meta(pattern=r"^\s*[A-Za-z0-9_.-]+(\s*,\s*[A-Za-z0-9_.-]+)*\s*$")]


class HandlerEntry(Struct, forbid_unknown_fields=True, kw_only=True):
    """One `<handlers><add>`."""

    name: Annotated[str, Meta(min_length=1), doc("The entry's unique name (IIS compares it without regard to case).")]
    path: Annotated[Pattern, doc(
        "What the entry matches: \"*\", \"*.ext\", a file name, or a path with \"/\" (\"/api/*\") "
        "matched against the whole URL path below the application; `*` matches anything, case is ignored."
    )]
    verb: Annotated[Verbs, doc("\"*\" or a comma-separated list of methods (\"GET,HEAD,POST\"), case-sensitive.")] = "*"
    modules: Annotated[ModuleList, doc(
        "The handler module(s): the first that runs for the application executes the request "
        "(\"python_app\", \"static_file,default_document\")."
    )] = "python_app"
    resource_type: Annotated[ResourceType, doc(
        "What the URL must name in physical_path for the entry to execute: File, Directory, Either "
        "(404 otherwise) or Unspecified (no check)."
    )] = "Unspecified"
    require_access: Annotated[Access, doc(
        "The access the handler needs; when `access_policy` does not grant it the request gets "
        "403.2 (Read), 403.3 (Write) or 403.1 (Script, Execute)."
    )] = "Script"
    pre_condition: Annotated[Literal["", "integratedMode"], doc(
        "IIS's preCondition; wasp has only the integrated pipeline, so \"integratedMode\" always holds."
    )] = ""
    skip_existing_files: Annotated[bool, doc(
        "wasp: pass over a URL that names an existing file, or a directory with a default "
        "document (ASP.NET routing's RouteExistingFiles = false). The default Python app entry sets it."
    )] = False


#: The default list (IIS's handler list restricted to what wasp has): the Python app, then
#: StaticFile path="*" verb="*" modules="StaticFileModule,DefaultDocumentModule,
#: DirectoryListingModule" Either Read.
DEFAULT_HANDLERS = (
    HandlerEntry(name="PythonApp", path="*", verb="*", modules="python_app",
                 resource_type="Unspecified", require_access="Script", skip_existing_files=True),
    # IIS's SSINC entries (ServerSideIncludeModule, resourceType File, requireAccess Script).
    HandlerEntry(name="SSINC-stm", path="*.stm", verb="GET,HEAD,POST", modules="server_side_include",
                 resource_type="File", require_access="Script"),
    HandlerEntry(name="SSINC-shtm", path="*.shtm", verb="GET,HEAD,POST", modules="server_side_include",
                 resource_type="File", require_access="Script"),
    HandlerEntry(name="SSINC-shtml", path="*.shtml", verb="GET,HEAD,POST", modules="server_side_include",
                 resource_type="File", require_access="Script"),
    HandlerEntry(name="StaticFile", path="*", verb="*",
                 modules="static_file,default_document,directory_listing",
                 resource_type="Either", require_access="Read"),
)


@section("handlers", override_mode_default="Deny", default_collection="entries")
class Handlers(Section):
    """IIS system.webServer/handlers."""

    access_policy: Annotated[list[Policy], doc(
        "IIS's accessPolicy: the access granted to handlers here (Read, Write, Script, Execute, Source). "
        "IIS's install default, Read and Script."
    )] = field(default_factory=lambda: ["Read", "Script"])
    entries: Annotated[list[HandlerEntry], collection(key="name", merge_append=False), doc(
        "The handler mappings in order. Written as `handlers = [ { name, path, ... }, ... ]` (tried "
        "before the inherited ones) or `[handlers]` with `clear`, `remove = [\"name\", ...]` and `add = [...]`."
    )] = field(default_factory=lambda: list(DEFAULT_HANDLERS))
