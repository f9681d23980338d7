"""IIS system.webServer/directoryBrowse: whether a directory with no default document is listed,
and what each line shows (iis-behaviour.md §2.2). The listing itself is the
`directory_listing` module's (wasp/worker/modules/directory_listing.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import field

from wasp.config.model import doc
from wasp.config.sections import Section, section

#: IIS's showFlags (None=0, Date=2, Time=4, Size=8, Extension=16, LongDate=32).
ShowFlag = Literal["None", "Date", "Time", "Size", "Extension", "LongDate"]


@section("directory_browse", override_mode_default="Allow")
class DirectoryBrowse(Section):
    """IIS system.webServer/directoryBrowse."""

    enabled: Annotated[bool, doc(
        "List a directory that has no default document (false: 403.14, IIS's \"Directory listing denied\")."
    )] = False
    show_flags: Annotated[list[ShowFlag], doc(
        "What a line shows besides the name: Date (\"4/13/2026\"), LongDate (\"Monday, April 13, "
        "2026\", instead of Date), Time (\"2:25 PM\"), Size (bytes), Extension (file names with "
        "their extension). [] or [\"None\"]: names only. Server local time, as IIS."
    )] = field(default_factory=lambda: ["Date", "Time", "Size", "Extension"])
