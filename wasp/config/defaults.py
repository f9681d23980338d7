"""The configs wasp runs without a file: the embedded Default Web Site, and one app from the command
line (`wasp serve module:app`). Both are built as the table a file would give and validated by the
same loader, so they obey every rule a wasp.toml does. Their Config.source is "": there is no file
to reload.
"""

from __future__ import annotations

import os

import wasp
from wasp.config import rundir
from wasp.config.load import load_data
from wasp.config.model import Config

DEFAULT_POOL = "DefaultAppPool"
DEFAULT_SITE = "Default Web Site"
DEFAULT_BINDING = "http/127.0.0.1:8080:"


def default_run_dir() -> str:
    """The base of the fallback run dirs: $XDG_RUNTIME_DIR/wasp (a per-user tmpfs on systemd
    machines) or else /tmp/wasp-<uid>; each server has its own folder below it (rundir.py)."""
    return rundir.run_dir_base()


def default_site_dir() -> str:
    """The folder of the embedded site's static pages (wasp/default_site/www)."""
    return os.path.join(os.path.dirname(os.path.abspath(wasp.__file__)), "default_site", "www")


def default_config() -> Config:
    """The Default Web Site: a welcome page on "/" and a small WSGI demo on "/demo"."""
    wasp_parent = os.path.dirname(os.path.dirname(os.path.abspath(wasp.__file__)))
    return load_data({
        "server": _server(rundir.default_site_run_dir()),
        "pools": [{"name": DEFAULT_POOL}],
        "sites": [{
            "name": DEFAULT_SITE,
            "id": 1,
            "bindings": [DEFAULT_BINDING],
            "applications": [
                {"path": "/", "pool": DEFAULT_POOL, "physical_path": default_site_dir()},
                # The parent of the wasp package on the path keeps the demo importable when wasp
                # runs from a source tree rather than an installed package.
                {"path": "/demo", "pool": DEFAULT_POOL, "app": "wasp.default_site.demo:app",
                 "python_path": [wasp_parent]},
            ],
        }],
    }, source="")


def single_app_config(app_spec: str, bind: str | list[str] = "127.0.0.1:8000", *,
                      workers: int | None = None, threads: int | None = None,
                      run_dir: str | None = None) -> Config:
    """One app on "/" of the Default Web Site, bound to `bind` (one or several "IP:PORT",
    "[IPv6]:PORT", "*:PORT" or a bare port on 127.0.0.1), with `workers` processes
    (max_processes) of `threads` threads. The current directory goes on the app's python_path so
    that `myproject.wsgi:application` imports from where the user stands. The run dir, unless
    given, is derived from that directory, the app and the bindings: two such servers run side by
    side."""
    binds = [bind] if isinstance(bind, str) else list(bind)
    binds = [f"127.0.0.1:{b}" if b.isdigit() else b for b in binds]
    pool: dict = {"name": DEFAULT_POOL}
    if workers is not None:
        pool["max_processes"] = workers
    if threads is not None:
        pool["threads"] = threads
    cwd = os.getcwd()
    run_dir = os.path.abspath(run_dir) if run_dir else rundir.project_run_dir(cwd, app_spec, *binds)
    return load_data({
        "server": _server(run_dir),
        "pools": [pool],
        "sites": [{
            "name": DEFAULT_SITE,
            "id": 1,
            "bindings": [f"http/{b}:" for b in binds],
            "applications": [{"path": "/", "pool": DEFAULT_POOL, "app": app_spec, "python_path": [cwd]}],
        }],
    }, source="")


def _server(run_dir: str) -> dict:
    return {"run_dir": run_dir, "log_dir": os.path.join(run_dir, "logs")}
