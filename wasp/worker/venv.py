"""A pool's `virtualenv` inside its worker: the worker runs on the server's own interpreter, and
the venv's site-packages go on sys.path before the server's, so the app's pinned packages win.

Like mod_wsgi's python-home, the venv becomes `sys.prefix` (and `sys.exec_prefix`) while
`sys.base_prefix` stays the installation's; the manager sets VIRTUAL_ENV and puts the venv's
bin/ first on PATH, as `activate` would. wasp and its dependencies are imported before the venv
is put in front (see `wasp.worker.main`), so a different version of, say, msgspec in the venv
serves the app's own imports but never replaces the one wasp is running on.
"""

from __future__ import annotations

import os
import site
import sys

from wasp.config import venv as venvs


def _server_site_dirs() -> set[str]:
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return {os.path.realpath(d) for d in dirs}


def activate(path: str) -> list[str]:
    """Put the venv at `path` first among the site-packages on sys.path (its .pth files are
    processed, so editable installs work) and make it sys.prefix. Returns the folders added.
    Raises venvs.NotAVirtualenv."""
    found = venvs.inspect(path)
    before = list(sys.path)
    for folder in found.site_dirs:
        site.addsitedir(folder)
    added = [p for p in sys.path[len(before):] if p not in before]
    ours = _server_site_dirs()
    head = next((i for i, p in enumerate(before) if os.path.realpath(p or ".") in ours), len(before))
    # The stdlib and PYTHONPATH entries keep their place; the venv goes before the server's packages.
    sys.path[:] = before[:head] + added + before[head:]
    sys.prefix = sys.exec_prefix = found.path
    return added
