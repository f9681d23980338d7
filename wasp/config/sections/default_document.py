"""IIS system.webServer/defaultDocument: whether a directory request gets a default document, and
which files are tried, in order (the first that exists wins).

`files` is IIS's collection of file names; it is prepend-merged (mergeAppend=false): names a lower
level adds are tried before the inherited ones. An application's `default_documents = [...]` key is
the older way to write it: that list replaces the inherited one (clear, then add).
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, field

from wasp.config.model import doc
from wasp.config.sections import Section, collection, section

#: IIS's default install list (iis-behaviour.md §2.1).
IIS_FILES = ("Default.htm", "Default.asp", "index.htm", "index.html", "iisstart.htm")


#: A file name: no "/", "\\" or NUL, not "." or "..".
FileName = Annotated[str, Meta(pattern=r"^(?!\.\.?$)[^/\\\x00]+$")]


@section("default_document", override_mode_default="Allow")
class DefaultDocument(Section):
    """IIS system.webServer/defaultDocument."""

    enabled: Annotated[bool, doc(
        "Answer a directory request with its first default document; false: the directory gets "
        "403.14 (or the Python app, when the application has one)."
    )] = True
    files: Annotated[list[FileName], collection(key=None, merge_append=False), doc(
        "File names tried in order, matched exactly first, then without regard to case. A level's "
        "entries (an array, or { clear, remove, add }) come before the inherited ones, as in IIS."
    )] = field(default_factory=lambda: list(IIS_FILES))
