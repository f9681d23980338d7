"""Checks of a loaded config against this machine, which the pure loader does not make: each
pool's `python` runs and can import wasp, its `virtualenv` is a venv of the server's Python
version, and the accounts `identity` names exist.

`wasp validate` runs them, and so do `wasp serve` and a reload, where a problem is a config error
like any other (the server does not start; the reload is rejected). They stay out of
`wasp.config.load` so that loading a config stays free of I/O beyond reading the file: unit tests
load configs naming interpreters and users that this machine need not have. A pool's `python` is
started once here (`spawn.probe`, as the invoking user); when the machine changes under a running
server, the spawn path finds it again (`Isolation.runtime_problem`) and logs one event 9012.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import sys

from wasp.config import venv as venvs
from wasp.config.locate import LineLocator
from wasp.config.model import Config
from wasp.errors import ConfigProblem
from wasp.manager import spawn


def check(config: Config, identities: bool = True) -> list[ConfigProblem]:
    """The problems, each with its dotted path and (when the config came from a file) its line.
    `identities` False skips identity.user/group (a manager that is not root ignores them)."""
    found: list[tuple[str, str]] = []
    for i, pool in enumerate(config.pools):
        where = f"pools[{i}]"
        if pool.python and pool.python != sys.executable:
            problem = python_problem(pool.python, spawn.worker_environment(
                pool.name, 0, dict(pool.environment_variables)))
            if problem:
                found.append((f"{where}.python", problem))
        if pool.virtualenv and not pool.python:
            problem = venvs.problem(pool.virtualenv)
            if problem:
                found.append((f"{where}.virtualenv", problem))
        if identities:
            found.extend(identity_problems(pool.identity, f"{where}.identity"))
    return _located(found, config.source)


def python_problem(python: str, env: dict[str, str] | None = None) -> str | None:
    """Why `python` cannot run this server's workers, or None."""
    if "/" not in python:
        found = shutil.which(python, path=(env or os.environ).get("PATH", os.defpath))
        if found is None:
            return f"no {python!r} on PATH"
        python = found
    if not os.path.exists(python):
        return f"{python} does not exist"
    if os.path.isdir(python) or not os.access(python, os.X_OK):
        return f"{python} is not an executable file"
    return spawn.probe(python, env)


def identity_problems(identity, where: str) -> list[tuple[str, str]]:
    found = []
    user, group = identity.user, identity.group
    if user:
        try:
            pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except KeyError:
            found.append((f"{where}.user", f"no user {user!r} on this machine"))
    if group:
        try:
            grp.getgrgid(int(group)) if group.isdigit() else grp.getgrnam(group)
        except KeyError:
            found.append((f"{where}.group", f"no group {group!r} on this machine"))
    return found


def _located(found: list[tuple[str, str]], source: str) -> list[ConfigProblem]:
    if not found:
        return []
    file = source if source and not source.startswith("<") else None
    locator = None
    if file:
        try:
            with open(file, encoding="utf-8") as f:
                locator = LineLocator(f.read())
        except (OSError, UnicodeDecodeError):
            pass
    return [ConfigProblem(path, message, locator.line_of(path) if locator else None, file)
            for path, message in found]



#: How long `wasp validate` lets one pool's Python modules import (wasp.worker.modcheck).
MODULE_CHECK_TIMEOUT = 30.0


def module_problems(config: Config, config_file: str,
                    timeout: float = MODULE_CHECK_TIMEOUT) -> list[ConfigProblem]:
    """The sections of Python modules decoded for real: for each pool whose applications use one
    (a `modules` entry with a type in wasp.toml or in a web.toml), `wasp.worker.modcheck` runs in
    a child process with the pool's interpreter and environment, imports the modules from each
    application's python_path, registers their sections and validates again. A child that hangs
    past `timeout` is killed and reported, and so is one that fails."""
    import json
    import subprocess

    from wasp.config import hierarchy, sections

    everywhere = bool(sections.python_module_entries(config.sections))
    found: list[ConfigProblem] = []
    for i, pool in enumerate(config.pools):
        apps = [app for site in config.sites for app in site.applications if app.pool == pool.name]
        if not apps:
            continue
        needed = everywhere or any(
            sections.python_module_entries([web.tables for web in map(hierarchy.read_web_toml, files)
                                            if web is not None])
            for files in (hierarchy.web_toml_files(os.path.realpath(app.physical_path))
                          for app in apps if app.physical_path and pool.enable_configuration_override))
        if not needed:
            continue
        python = pool.python or sys.executable
        env = spawn.worker_environment(pool.name, 0, dict(pool.environment_variables), None,
                                       None if pool.python else pool.virtualenv or None)
        if pool.virtualenv and not pool.python:
            env["WASP_MODCHECK_VIRTUALENV"] = pool.virtualenv
        where = f"pools[{i}]"
        try:
            done = subprocess.run([python, "-m", "wasp.worker.modcheck", config_file, pool.name],
                                  capture_output=True, text=True, timeout=timeout, env=env,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            found.append(ConfigProblem(where, f"importing pool {pool.name!r}'s Python modules to check "
                                              f"their sections took over {timeout:g}s (an import that "
                                              "hangs?); not checked", file=config.source or None))
            continue
        except OSError as exc:
            found.append(ConfigProblem(where, f"cannot run {python} to check the Python modules' "
                                              f"sections: {exc}", file=config.source or None))
            continue
        try:
            rows = json.loads(done.stdout or "null")
            if not isinstance(rows, list):
                raise ValueError(done.stdout[-200:])
        except ValueError:
            tail = " ".join((done.stderr or "").strip().splitlines()[-3:])
            found.append(ConfigProblem(where, f"checking pool {pool.name!r}'s Python modules failed "
                                              f"(exit {done.returncode}): {tail[-400:]}",
                                       file=config.source or None))
            continue
        for row in rows:
            found.append(ConfigProblem(row.get("path") or "", row.get("message") or "?",
                                       row.get("line"), row.get("file")))
    return found
