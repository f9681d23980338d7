"""`GET /traces` (`wasp list traces`): appcmd's TRACE objects, the FREB files of the sites;
`GET /traces/<site>/<frNNNNNN.xml>`: one trace file's bytes (the management site's trace page).

The files are read where the sites' `trace_failed_requests_logging.directory` puts them
(wasp/common/freb.py parses each file's root element from its first 16 KB), on a thread: a
folder of 10000 traces must not hold up the manager's loop.

A file name comes from the request: it must be exactly `fr` + 6..10 digits + `.xml` (no
folder, no `..`, no NUL, no trailing newline), and it is opened with O_NOFOLLOW and must be a
regular file, so a symlink planted in the folder is never followed out of it.

`GET /traces?page=N` (the management site's Traces page) answers one page, newest first, and
costs what the page shows, not what the folder holds: the file names are the sequence numbers,
which are the creation order, so a site's listing is sorted by number from listdir() alone and
only the shown page's heads are read (and stat()ed). Sites are merged newest first by
modification time, with a stat() for each file the merge passes over (those before the page and
the page's). A `status`
filter must see every file's status: the heads are kept in a small cache keyed by
(path, mtime, size), so a second look at a folder of 5000 traces reads none again.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
import re
import stat
import threading
from collections import OrderedDict
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


#: A page of the Traces page (the management site's): what `page=` counts in.
PER_PAGE = 50
MAX_PER_PAGE = 500
#: The status filter (`404`, `404.2`, `5`): a code's leading digits, or a whole code.substatus.
STATUS_FILTER = re.compile(r"[1-5][0-9]{0,2}(\.[0-9]{1,5})?")


def _stamp(mtime: float) -> str:
    return datetime.fromtimestamp(mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class HeadCache:
    """The rows of trace files already read, keyed by path and valid while (mtime, size) hold;
    at most `limit` of them (least recently used go first). Shared by the admin API's threads."""

    def __init__(self, limit: int = 50000):
        self.limit = limit
        self._rows: OrderedDict[tuple[str, str], tuple[int, int, dict | None]] = OrderedDict()
        self._lock = threading.Lock()
        self.reads = 0      # heads read from disk (tests count them)

    def row(self, site_id: int, site_name: str, path: str, st: os.stat_result) -> dict | None:
        """The listing row of the file at `path` whose stat is `st` (None: not a trace)."""
        key = (path, site_name)   # a renamed site's rows name it anew
        with self._lock:
            hit = self._rows.get(key)
            if hit is not None and hit[0] == st.st_mtime_ns and hit[1] == st.st_size:
                self._rows.move_to_end(key)
                return hit[2]
        root = freb.read_root(path)
        self.reads += 1
        row = None if root is None else freb.trace_row(site_id, site_name, path, root)
        if row is not None:
            row["date"] = _stamp(st.st_mtime)
        with self._lock:
            self._rows[key] = (st.st_mtime_ns, st.st_size, row)
            self._rows.move_to_end(key)
            while len(self._rows) > self.limit:
                self._rows.popitem(last=False)
        return row

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()


HEADS = HeadCache()


def status_matches(code: str, wanted: str) -> bool:
    """`wanted` is a whole code (`500`, `404.2`: that code and its substatuses) or leading
    digits (`5`, `40`)."""
    return code == wanted or code.startswith(wanted if len(wanted) < 3 else wanted + ".")


def _paths(site_id: int, site_name: str, folder: str, found: list[int]):
    """(site id, site name, path) of a site's files, newest (highest number) first, lazily."""
    for number in reversed(found):
        yield site_id, site_name, os.path.join(folder, f"fr{number:06d}.xml")


def _with_stat(files):
    """(mtime_ns, site id, site name, path, lstat) of each file still there and regular."""
    for site_id, site_name, path in files:
        try:
            st = os.lstat(path)   # a symlink is no trace (`one` would not open it)
        except OSError:   # rotated away since listdir()
            continue
        if stat.S_ISREG(st.st_mode):
            yield st.st_mtime_ns, site_id, site_name, path, st


def _newest_first(wanted, skip: int = 0):
    """The trace files of the sites `wanted`, newest first, from the `skip`th on, as
    _with_stat's tuples; and how many there are (from listdir() alone). Each site is in the
    order of its sequence numbers; sites are merged by mtime, a stat() only as the merge
    reaches a file. One site: what is skipped is not even stat()ed."""
    per_site = []
    total = 0
    for site_id, site_name, directory in wanted:
        folder = freb.site_directory(directory, site_id)
        found = freb.numbers(folder)
        total += len(found)
        per_site.append(_paths(site_id, site_name, folder, found))
    if len(per_site) == 1:
        return _with_stat(itertools.islice(per_site[0], skip, None)), total
    merged = heapq.merge(*(_with_stat(files) for files in per_site),
                         key=lambda item: (item[0], item[1]), reverse=True)
    return itertools.islice(merged, skip, None), total


def page_of(wanted, status: str = "", page: int = 1, per_page: int = PER_PAGE,
            cache: HeadCache = HEADS) -> dict:
    """One page of the trace files of the sites `wanted`, newest first, keeping the status codes
    `status` matches. Without a filter only the page's heads are read; with one, every file's
    (from `cache` when unchanged)."""
    start = (page - 1) * per_page
    rows: list[dict] = []
    if not status:
        files, total = _newest_first(wanted, start)
        for _mtime, site_id, site_name, path, st in itertools.islice(files, per_page):
            row = cache.row(site_id, site_name, path, st)
            if row is not None:
                rows.append(dict(row))
    else:
        files, total = _newest_first(wanted)
        total = 0
        for _mtime, site_id, site_name, path, st in files:
            row = cache.row(site_id, site_name, path, st)
            if row is None or not status_matches(str(row.get("statuscode", "")), status):
                continue
            if start <= total < start + per_page:
                rows.append(dict(row))
            total += 1
    for row in rows:
        row.pop("path", None)   # the page needs the site id and the file name only
        row["file"] = row["name"].rsplit("/", 1)[-1]
    return {"total": total, "page": page, "per_page": per_page, "rows": rows}


def _page_query(query: dict) -> tuple[str, int, int] | str:
    """(status, page, per_page) of a paged query, or the error."""
    status = query.get("status", "").strip()
    if status and not STATUS_FILTER.fullmatch(status):
        return "status: a code like 404, 404.2 or 5"
    try:
        page = int(query.get("page", "1"))
        per_page = int(query.get("per_page", str(PER_PAGE)))
    except ValueError:
        return "page and per_page must be numbers"
    if not 1 <= page <= 100000:
        return "page must be 1 to 100000"
    if not 1 <= per_page <= MAX_PER_PAGE:
        return f"per_page must be 1 to {MAX_PER_PAGE}"
    return status, page, per_page


async def answer(config, query: dict) -> tuple[int, object]:
    """Without `page`: every trace, oldest first (`wasp list traces`); with `page` (and
    `status`, `per_page`): one page, newest first, {total, page, per_page, rows}."""
    site = query.get("site", "")
    wanted = sites_of(config, site)
    if wanted is None:
        return 404, {"error": f'Cannot find SITE object with identifier "{site}".'}
    if "page" not in query:
        return 200, await asyncio.to_thread(_listing, wanted)
    paged = _page_query(query)
    if isinstance(paged, str):
        return 400, {"error": paged}
    return 200, await asyncio.to_thread(page_of, wanted, *paged)


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
