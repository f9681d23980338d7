"""`GET /traces` (`wasp list traces`): appcmd's TRACE objects, the FREB files of the sites.

The files are read where the sites' `trace_failed_requests_logging.directory` puts them
(wasp/common/freb.py parses each file's root element from its first 16 KB), on a thread: a
folder of 10000 traces must not hold up the manager's loop.
"""

from __future__ import annotations

import asyncio

from wasp.common import freb


def sites_of(config, site: str = "") -> list[tuple[int, str, str]] | None:
    """(id, name, directory) of every site, or of the one named (by name or id); None: no such site."""
    found = []
    for s in config.sites:
        if site and site != s.name and site != str(s.id):
            continue
        directory = s.trace_failed_requests_logging.directory
        found.append((s.id, s.name, directory))
    return None if site and not found else found


async def answer(config, query: dict) -> tuple[int, object]:
    site = query.get("site", "")
    wanted = sites_of(config, site)
    if wanted is None:
        return 404, {"error": f'Cannot find SITE object with identifier "{site}".'}
    return 200, await asyncio.to_thread(freb.list_traces, wanted)
