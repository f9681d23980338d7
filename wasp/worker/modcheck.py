"""`wasp validate`'s check of Python modules' own sections, run in a child process per pool.

A Python module's section (`[api_key]` for a `modules` entry named api_key) is declared by the
module's class (`section = SomeStruct`): decoding its fields means importing the user's code.
`wasp validate` therefore does that here, in a process of its own started with the pool's
interpreter and environment (its `python`, or the server's with its `virtualenv` put first, as a
worker does) and stopped after a timeout: an import that hangs, crashes or has side effects
cannot take the validator with it. For each application of the pool, every `modules` entry with
a `type` (in wasp.toml's levels, its locations and the web.toml files under the application's
physical_path) is imported from the application's python_path and its section registered, as
the worker does; then the configuration is loaded again and every web.toml resolved, now with
those sections decoded strictly. The problems (dotted path, file, line) go to stdout as JSON.

    python -m wasp.worker.modcheck CONFIG_FILE POOL
"""

from __future__ import annotations

import json
import os
import sys


def _web_tables(app, pool) -> list[dict]:
    from wasp.config import hierarchy

    if not app.physical_path or not pool.enable_configuration_override:
        return []
    root = os.path.realpath(app.physical_path)
    files = hierarchy.web_toml_files(root)
    if not app.allow_sub_dir_config:
        files = [f for f in files if os.path.dirname(f) == root]
    found = []
    for file in files:
        web = hierarchy.read_web_toml(file)  # its `modules` entries are what is wanted here
        if web is not None:
            found.append(web.tables)
    return found


def check(config_file: str, pool_name: str) -> list[dict]:
    from wasp.config import hierarchy, sections
    from wasp.config.load import load
    from wasp.config.sections.modules import ModuleEntry
    from wasp.errors import ConfigError
    from wasp.worker import managed
    from wasp.worker.registry import ModuleError

    def problem(message, path="", line=None, file=None):
        return {"path": path, "message": message, "line": line, "file": file}

    config = load(config_file)
    pool = next((p for p in config.pools if p.name == pool_name), None)
    if pool is None:
        return [problem(f"pool {pool_name!r} is not in the configuration")]
    tables = config.sections
    problems = []
    for site in config.sites:
        for app in site.applications:
            if app.pool != pool.name:
                continue
            levels = [tables.get("server") or {}, (tables.get("sites") or {}).get(str(site.id)) or {},
                      (tables.get("applications") or {}).get(f"{site.id}{app.path}") or {},
                      [loc.get("tables") for loc in tables.get("locations") or ()
                       if isinstance(loc, dict) and loc.get("site") == site.id]]
            levels += _web_tables(app, pool)
            for name, type_ in sections.python_module_entries(levels):
                entry = ModuleEntry(name=name, type=type_)
                try:
                    cls = managed.import_class(entry, getattr(app, "python_path", ()))
                    managed.register_section(entry, cls)
                except ModuleError as exc:
                    problems.append(problem(f"application {site.name}{app.path}: {exc}",
                                            file=config_file))
    if problems:
        return problems
    try:
        config = load(config_file)
    except ConfigError as exc:
        return [problem(p.message, p.path, p.line, p.file) for p in exc.problems]
    return [problem(p.message, p.path, p.line, p.file) for p in hierarchy.check_distributed(config)]


def main(argv: list[str]) -> int:
    config_file, pool_name = argv[1], argv[2]
    virtualenv = os.environ.get("WASP_MODCHECK_VIRTUALENV", "")
    if virtualenv:
        from wasp.worker.main import _enter_virtualenv

        _enter_virtualenv(virtualenv)
    out = sys.stdout
    sys.stdout = sys.stderr  # what imported code prints is not the answer
    try:
        found = check(config_file, pool_name)
    except Exception as exc:  # a bug of ours or a config that no longer loads
        found = [{"path": "", "message": f"checking the Python modules failed: "
                                         f"{type(exc).__name__}: {exc}", "line": None, "file": None}]
    out.write(json.dumps(found))
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
