"""IIS system.webServer/serverSideInclude: whether `#exec` runs (iis-behaviour.md §2.21; the
`server_side_include` module, wasp/worker/modules/server_side_include.py, handles *.shtml,
*.shtm and *.stm through the handler list). Locked as in IIS (overrideModeDefault Deny): a
web.toml cannot turn `#exec` on unless a location in wasp.toml unlocks the section."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from wasp.config.model import Duration, doc
from wasp.config.sections import Section, section


@section("server_side_include", override_mode_default="Deny")
class ServerSideInclude(Section):
    """IIS system.webServer/serverSideInclude."""

    ssi_exec_disable: Annotated[bool, doc(
        "Refuse `<!--#exec cmd=... -->` and `<!--#exec cgi=... -->` (the directive shows the error "
        "message instead). false runs them as the pool's identity, in the document's folder, with "
        "`ssi_exec_timeout`."
    )] = True
    ssi_exec_timeout: Annotated[Duration, Meta(gt=0, le=3600), doc(
        "wasp: how long one `#exec` may run before it is killed (its whole process group) and the "
        "error message is shown instead."
    )] = Duration(10)
