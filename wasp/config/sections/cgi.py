"""IIS system.webServer/cgi and the CGI half of isapiCgiRestriction (iis-behaviour.md §2.17).

`cgi` says how the CGI handler (IIS CgiModule, wasp/worker/modules/cgi.py) runs a script: its
time limit (past it the script is killed and the client gets 502.1) and as whom it runs.
`cgi_restriction` is IIS's isapiCgiRestriction restricted to CGI: the executables that may run;
a script or `script_processor` not listed is refused with 404.2 unless `not_listed_cgis_allowed`.
An entry names a file (`/srv/www/cgi-bin/report.sh`) or, ending in "/", every file below a
directory. Both are server-level in IIS (the restriction list is AppHostOnly); wasp lets a site or
application set them in wasp.toml, and a web.toml only where a location unlocks them.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct, field

from wasp.config.model import Duration, doc
from wasp.config.sections import Section, collection, section

#: An absolute path with no NUL: "/usr/bin/php-cgi", "/srv/cgi-bin/".
AbsolutePath = Annotated[str, Meta(pattern=r"^/[^\x00]*$")]


@section("cgi", override_mode_default="Deny")
class Cgi(Section):
    """IIS system.webServer/cgi."""

    timeout: Annotated[Duration, Meta(ge=0), doc(
        "The longest a CGI script may run; past it the script is killed and the request answered "
        "502.1 (\"CGI application timeout\"). IIS's default, 15 minutes."
    )] = Duration(900)
    create_process_as_user: Annotated[bool, doc(
        "IIS runs a script as the request's authenticated user; on Linux a script always runs as "
        "the pool's identity (the worker's user), whatever this says. Accepted for IIS parity."
    )] = True
    create_cgi_with_new_console: Annotated[bool, doc(
        "IIS's createCGIWithNewConsole; there is no console on Linux: accepted and ignored."
    )] = False


class RestrictionEntry(Struct, forbid_unknown_fields=True, kw_only=True):
    """One `<isapiCgiRestriction><add>` of a CGI executable."""

    path: Annotated[AbsolutePath, doc("The executable's full path, or a directory ending in \"/\" for every file below it.")]
    allowed: Annotated[bool, doc("Whether it may run (an entry with false refuses it, listed or not).")] = True
    group_id: Annotated[str, doc("IIS's groupId (the feature the entry belongs to); informative.")] = ""
    description: Annotated[str, doc("IIS's description; informative.")] = ""


@section("cgi_restriction", override_mode_default="Deny", default_collection="entries")
class CgiRestriction(Section):
    """IIS system.webServer/security/isapiCgiRestriction, for CGI executables."""

    not_listed_cgis_allowed: Annotated[bool, doc(
        "Let a CGI executable no entry names run (IIS's notListedCgisAllowed, default false: 404.2)."
    )] = False
    entries: Annotated[list[RestrictionEntry], collection(key="path"), doc(
        "The executables that may (or may not) run: `cgi_restriction = [ { path = \"/srv/cgi-bin/\" } ]`."
    )] = field(default_factory=list)
