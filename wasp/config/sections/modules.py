"""IIS system.webServer/modules (with globalModules): which modules run, and in which order.

An entry is `{ name = "static_file" }` for a native module (registered by id in the worker's
registry) or `{ name = "api_key", type = "mysite.modules:ApiKeyModule", pre_condition =
"managedHandler" }` for a Python module (issue 9 contract §6). Within a phase modules run in this
order. A site, application or path adds entries after the inherited ones and removes them by name
(`[modules] remove = ["static_file"]`), as IIS's `<modules><remove name=...>` does.

The default is IIS's global module order (iis-behaviour.md §2.15, contract §4) restricted to the
native modules wasp has: NATIVE_MODULES. A native module's helper adds its id there, in IIS's
order, when the module lands; a unit test keeps the list equal to the worker's registered native
modules, so the default never names a module that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Struct, field

from wasp.config.model import doc
from wasp.config.sections import Section, collection, section

#: IIS's order (HttpCacheModule first; request filtering, authentication and authorization before
#: the handlers), of the native modules wasp has built. request_filtering comes right after
#: http_cache: in IIS its BeginRequest notification is registered at a higher priority than the
#: other modules', so it runs first in that phase wherever it sits in the list (§2.15).
#: protocol_support comes before request_filtering: its work is IIS's RQ_SEND_RESPONSE (custom
#: headers on every response), which it must hook before any module can answer. http_redirect
#: comes before default_document: both act in MAP_REQUEST_HANDLER here, and IIS redirects before
#: its StaticFile handler would add a directory's trailing slash. custom_error is IIS's
#: CustomErrorModule, after the security modules.
NATIVE_MODULES = ("http_cache", "protocol_support", "request_filtering",
                  "dynamic_compression", "static_compression",  # IIS: after HttpCacheModule
                  "http_redirect", "default_document", "directory_listing", "server_side_include",
                  "static_file",
                  "anonymous_authentication", "url_authorization", "basic_authentication",
                  "windows_authentication", "digest_authentication",
                  "client_certificate_mapping_authentication", "ip_restriction", "dynamic_ip_restriction",
                  "web_dav", "cgi", "fast_cgi",
                  "custom_error",
                  "rewrite",
                  "reverse_proxy",
                  "python_app")


class ModuleEntry(Struct, forbid_unknown_fields=True, kw_only=True):
    """One `<modules><add>`."""

    name: Annotated[str, doc("The module's id: a native module's (\"static_file\") or a Python module's own name.")]
    type: Annotated[str, doc(
        "A Python module's class, \"package.module:Class\"; \"\" = the native module `name`."
    )] = ""
    pre_condition: Annotated[Literal["", "managedHandler"], doc(
        "\"managedHandler\": run only for requests mapped to the Python app (IIS's preCondition)."
    )] = ""


@section("modules", override_mode_default="Deny", default_collection="entries")
class Modules(Section):
    """IIS system.webServer/modules."""

    run_all_managed_modules_for_all_requests: Annotated[bool, doc(
        "IIS's runAllManagedModulesForAllRequests: true runs pre_condition = \"managedHandler\" "
        "modules for every request (static files included)."
    )] = False
    entries: Annotated[list[ModuleEntry], collection(key="name"), doc(
        "The modules in order. Written as `modules = [ { name = ... }, ... ]` (added after the "
        "inherited ones) or `[modules]` with `clear`, `remove = [\"name\", ...]` and `add = [...]`."
    )] = field(default_factory=lambda: [ModuleEntry(name=n) for n in NATIVE_MODULES])
