"""The staticContent mimeMap lookup: extension -> Content-Type.

The table is the URL's effective `static_content.mime_map` (IIS 10's default list, merged down the
hierarchy: wasp/config/mimemap.py, wasp/config/sections/static_content.py). An extension with no
entry is not served (404.3), as in IIS.
"""

from __future__ import annotations

import os

from wasp.config.mimemap import DEFAULT_MIME_MAP, MIME_MAP, table_of  # noqa: F401


def content_type(path: str, table: dict[str, str] | None = None) -> str | None:
    """The mimeMap entry for `path`'s extension, or None (IIS: 404.3). A name ending in a
    "double" extension of the table (".dll.config") is looked up by that first."""
    table = MIME_MAP if table is None else table
    name = os.path.basename(path).lower()
    dot = name.rfind(".")
    if dot <= 0:
        return None  # no extension (".htaccess" is a name, not an extension)
    inner = name.rfind(".", 0, dot)
    if inner > 0:
        found = table.get(name[inner:])
        if found is not None:
            return found
    return table.get(name[dot:])
