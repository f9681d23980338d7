"""`GET /traces` (`wasp list traces`): appcmd's TRACE objects, the FREB files of the sites;
`GET /traces/<site>/<frNNNNNN.xml>`: one trace file's bytes (the management site's trace page).

The files are read where the sites' `trace_failed_requests_logging.directory` puts them
(wasp/common/freb.py parses each file's root element from its first 16 KB), on a thread: a
folder of 10000 traces must not hold up the manager's loop.

A file name comes from the request: it must be exactly `fr` + 6..10 digits + `.xml` (no
folder, no `..`, no NUL, no trailing newline), and it is opened with O_NOFOLLOW and must be a
regular file, so a symlink planted in the folder is never followed out of it.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
from datetime import datetime, timezone

from wasp.common import freb

#: The file names this API hands out: nothing else is ever opened.
TRACE_NAME = re.compile(r"fr[0-9]{6,10}\.xml")
#: A trace is at most max_log_file_size_kb (a config value); this bounds what one read holds.
MAX_TRACE_BYTES = 64 * 1024 * 1024


def sites_of(config, site: str = "") -> list[tuple[int, str, str]] | None:
    """(id, name, directory) of every site, or of the one named (by name or id); None: no such site."""
    found = []
    for s in config.sites:
        if site and site != s.name and site != str(s.id):
            continue
        directory = s.trace_failed_requests_logging.directory
        found.append((s.id, s.name, directory))
    return None if site and not found else found


def _dated(rows: list[dict]) -> list[dict]:
    """Each row with `date`: the file's modification time (when the trace was written), UTC."""
    for row in rows:
        try:
            mtime = os.stat(row["path"]).st_mtime
        except OSError:
            row["date"] = ""
            continue
        row["date"] = datetime.fromtimestamp(mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return rows


def _listing(wanted):
    return _dated(freb.list_traces(wanted))


async def answer(config, query: dict) -> tuple[int, object]:
    site = query.get("site", "")
    wanted = sites_of(config, site)
    if wanted is None:
        return 404, {"error": f'Cannot find SITE object with identifier "{site}".'}
    return 200, await asyncio.to_thread(_listing, wanted)


class TraceNotFound(Exception):
    pass


def read_trace(folder: str, name: str) -> bytes:
    """The bytes of `folder/name`; ValueError for a name that is not a trace file's,
    TraceNotFound when there is no such regular file."""
    if not isinstance(name, str) or not TRACE_NAME.fullmatch(name):
        raise ValueError(f"not a trace file name: {name!r}")
    flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(os.path.join(folder, name), flags)
    except OSError:  # missing, or a symlink (ELOOP)
        raise TraceNotFound(name) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise TraceNotFound(name)
        if st.st_size > MAX_TRACE_BYTES:
            raise ValueError(f"{name} is larger than {MAX_TRACE_BYTES} bytes")
        parts, left = [], MAX_TRACE_BYTES
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


async def one(config, site: str, name: str):
    """GET /traces/<site>/<name>: (status, payload); the payload is the file as XML text."""
    from wasp.manager.admin import Text

    if not TRACE_NAME.fullmatch(name or ""):
        return 400, {"error": f"not a trace file name (frNNNNNN.xml): {name!r}"}
    wanted = sites_of(config, site) if site else None
    if not wanted:
        return 404, {"error": f'Cannot find SITE object with identifier "{site}".'}
    site_id, _name, directory = wanted[0]
    folder = freb.site_directory(directory, site_id)
    try:
        data = await asyncio.to_thread(read_trace, folder, name)
    except TraceNotFound:
        return 404, {"error": f'Cannot find TRACE object with identifier "{site}/{name}".'}
    except ValueError as exc:
        return 400, {"error": str(exc)}
    return 200, Text(data.decode("utf-8", "replace"), "application/xml; charset=utf-8")
