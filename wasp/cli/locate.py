"""Which server an admin command talks to, without validating any config file.

An operator needs `wasp list`, `wasp events`, `wasp recycle` and `wasp reload` most when the
config file is broken, so a file is only read far enough to find `server.run_dir` and
`server.log_dir` (tomllib; the model's defaults when absent; relative to the file). Only a file
that is not even TOML (or names a run_dir that is not a string) is an error, and that error says
to use `--run-dir`.

Without `-c` or `--run-dir` and with no ./wasp.toml, the server is one started by `wasp serve
APP_SPEC` (whose run dir is derived from the project, see wasp/config/rundir.py): the one running
from this directory, else the only one running at all.
"""

from __future__ import annotations

import os
import tomllib

from wasp.common.unixsock import answers
from wasp.config import rundir
from wasp.config.model import ServerSettings


class LocateError(Exception):
    """The server's run dir cannot be found; the message says why and what to do."""


def _setting(server: dict, key: str, path: str) -> str:
    value = server.get(key, getattr(ServerSettings(), key))
    if not isinstance(value, str) or not value:
        raise LocateError(f"{path}: server.{key} is not a path, so the server cannot be found "
                          "from this file; give its run dir with --run-dir DIR")
    return os.path.normpath(os.path.join(os.path.dirname(path), os.path.expanduser(value)))


def dirs_from_file(path: str) -> tuple[str, str]:
    """(run_dir, log_dir) a config file names, reading nothing else of it."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise LocateError(f"cannot read {path}: {exc.strerror or exc}; give the server's run dir "
                          "with --run-dir DIR") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise LocateError(f"{path} is not valid TOML ({exc}), so the server's run dir cannot be "
                          "read from it; give it with --run-dir DIR") from None
    server = data.get("server", {})
    if not isinstance(server, dict):
        server = {}
    return _setting(server, "run_dir", path), _setting(server, "log_dir", path)


def live_servers(project_dir: str) -> tuple[list[str], list[str]]:
    """(live run dirs of this project, every live run dir) under the fallback base. Nothing when
    the base is missing or unsafe: a socket in a folder others control proves nothing."""
    base = rundir.run_dir_base()
    try:
        rundir.private_dir(base, create=False)
        names = sorted(os.listdir(base))
    except (rundir.RunDirError, OSError):
        return [], []
    prefix = rundir.project_prefix(project_dir)
    live = [os.path.join(base, n) for n in names
            if answers(os.path.join(base, n, rundir.ADMIN_SOCKET))]
    return [d for d in live if os.path.basename(d).startswith(prefix)], live


def fallback_run_dir(project_dir: str) -> str:
    """The run dir of the `wasp serve APP_SPEC` server for a command run in `project_dir`."""
    mine, live = live_servers(project_dir)
    if len(mine) == 1:
        return mine[0]
    if len(mine) > 1:
        raise LocateError("several wasp servers run from this directory (" + ", ".join(mine)
                          + "); say which with --run-dir DIR")
    if len(live) == 1:
        return live[0]
    if len(live) > 1:
        raise LocateError("no wasp server runs from this directory and several run elsewhere ("
                          + ", ".join(live) + "); say which with --run-dir DIR")
    # None runs: the embedded default site's run dir, so the error names a real place.
    return rundir.default_site_run_dir()
