"""Load wasp.toml strictly: every problem at once, each with its dotted path and line.

Steps: parse TOML; check [pool_defaults] as a pool without a name and deep-merge it under every
[[pools]] entry (the pool's own keys win; sub-tables merge key by key); decode against model.py
(decode.py) running the per-value checks of validate.py; then the rules across the config; then
make relative paths absolute against the config file's folder. Any problem raises ConfigError.
"""

from __future__ import annotations

import os
import re
import tomllib
from typing import Any

import msgspec

from wasp.config import certificates
from wasp.config.acme import ACME
from wasp.config.decode import INVALID, Decoder
from wasp.config.locate import LineLocator
from wasp.config import hierarchy, management, sections
from wasp.config.sections.http_compression import SERVER_ONLY, threshold_problems
from wasp.config.model import Config, Pool, SiteBinding
from wasp.config.sections import rewrite as rewrite_section
from wasp.config.validate import FIELD_CHECKS, check_config, check_paths
from wasp.errors import ConfigError, ConfigProblem

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column \d+\)$")
_POOL_DEFAULTS_EXCLUDE = {"name": "a pool's name cannot be inherited; set name in each [[pools]] entry"}


def load(path: str) -> Config:
    """Load and validate a config file. Config.source is its absolute path."""
    source = os.path.abspath(path)
    try:
        with open(source, "rb") as f:
            data = f.read()
        text = data.decode("utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem("", f"cannot read the config file: {exc.strerror or exc}", file=source)]) from None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError([ConfigProblem("", "the config file is not valid UTF-8", line, source)]) from None
    return _load_text(text, source, os.path.dirname(source), file=source, files=True)


def load_edited(text: str, path: str) -> Config:
    """Load and validate `text` as if it were the file at `path` (relative paths, line numbers
    and the files it names as `load(path)` would): an edit is judged before it is written."""
    source = os.path.abspath(path)
    return _load_text(text, source, os.path.dirname(source), file=source, files=True)


def load_text(text: str, source: str = "<string>") -> Config:
    """Load and validate config text; relative paths are taken against the current directory."""
    return _load_text(text, source, os.getcwd(), file=None if source.startswith("<") else source)


def load_data(data: dict[str, Any], source: str = "", base_dir: str | None = None,
              locator: LineLocator | None = None, file: str | None = None, files: bool = False) -> Config:
    """Validate an already-parsed config table (what tomllib returns), the way a file is.

    Used for the built-in configs of defaults.py. `base_dir` (default: the current directory)
    anchors relative paths; `locator` maps problems to lines when the data came from a text.
    `files` also checks the files the config names (certificates), as `load` does for a file.
    """
    decoder = Decoder(FIELD_CHECKS)
    data = dict(data)
    defaults = data.get("pool_defaults", {})
    defaults_ok = False
    if isinstance(defaults, dict):  # anything else is reported when Config is decoded
        before = len(decoder.problems)
        decoder.struct(defaults, Pool, "pool_defaults", exclude=_POOL_DEFAULTS_EXCLUDE, partial=True)
        defaults_ok = len(decoder.problems) == before
    pool_names = set()
    pools = data.get("pools")
    if isinstance(pools, list):
        # Inherited values were checked once, above; a pool never re-reports its defaults' problems.
        if defaults_ok and defaults:
            data["pools"] = [merge(defaults, p) if isinstance(p, dict) else p for p in pools]
        pool_names = {p["name"] for p in pools if isinstance(p, dict) and isinstance(p.get("name"), str)}
    data, tables = take_sections(data)
    config = decoder.struct(data, Config, "", exclude={"source": None, "sections": None})
    if config is not INVALID:
        config.sections = tables
        inherit_sections(config, decoder.add)
        management.install(config, decoder.add)
        check_config(config, decoder.add, pool_names | {p.name for p in config.pools if p})
    if not decoder.problems:
        resolve_paths(config, base_dir if base_dir is not None else os.getcwd())
        check_paths(config, decoder.add)
        management.finish(config)
    if decoder.problems:
        raise ConfigError(_problems(decoder.problems, locator, file))
    config.source = source
    if files:
        found = certificates.check_files(config)
        if found:
            raise ConfigError(_problems(found, locator, file))
    return config


def take_sections(data: dict[str, Any]) -> tuple[dict[str, Any], dict]:
    """The file's table without the system.webServer section tables of the server, site and
    application levels, and those tables as Config.sections keeps them. Sites and applications
    are keyed by index here; inherit_sections rekeys them by site id and application key."""
    raw_sites = data.get("sites") if isinstance(data.get("sites"), list) else []
    levels = [data] + [s for s in raw_sites if isinstance(s, dict)]
    levels += [a for s in levels[1:] if isinstance(s.get("applications"), list)
               for a in s["applications"] if isinstance(a, dict)]
    passthrough = sections.python_module_names(levels)
    data, server = sections.split_tables(data, passthrough)
    found: dict = {"server": server, "sites": {}, "applications": {}, "locations": data.pop("locations", None)}
    if raw_sites:
        data["sites"] = new_sites = []
        for i, raw_site in enumerate(raw_sites):
            if not isinstance(raw_site, dict):
                new_sites.append(raw_site)
                continue
            raw_site, found["sites"][i] = sections.split_tables(raw_site, passthrough)
            apps = raw_site.get("applications")
            if isinstance(apps, list):
                raw_site["applications"] = new_apps = []
                for j, raw_app in enumerate(apps):
                    if isinstance(raw_app, dict):
                        raw_app, found["applications"][(i, j)] = sections.split_tables(raw_app, passthrough)
                    new_apps.append(raw_app)
            new_sites.append(raw_site)
    return data, found


def inherit_sections(config: Config, add) -> None:
    """Decode and merge every application's sections (server, site, application), reporting
    problems with their paths, and set the sections the front reads from the model (http_errors,
    access, caching) to their effective values: a key a level does not set is the level above's."""
    tables = config.sections
    by_index_sites, by_index_apps = tables["sites"], tables["applications"]
    tables["sites"], tables["applications"] = {}, {}
    server_level, _ = sections.resolve([("", tables["server"])], add, FIELD_CHECKS)  # problems once
    _check_server_only(server_level, by_index_sites, by_index_apps, add)
    rewrite_section.check_global(server_level.rewrite, "rewrite.global_rules", add)
    names = sections.python_module_names([tables["server"], *by_index_sites.values(),
                                          *by_index_apps.values()])
    sections.module_section_problems(tables["server"], names, "", add)
    for i, site_tables in by_index_sites.items():
        sections.module_section_problems(site_tables, names, f"sites[{i}]", add)
    for (i, j), app_tables in by_index_apps.items():
        sections.module_section_problems(app_tables, names, f"sites[{i}].applications[{j}]", add)
    tables["locations"] = hierarchy.take_locations(tables["locations"], config, add, names)
    for location in tables["locations"] or ():
        for name in SERVER_ONLY:
            if name in location["tables"]:
                add(f"{location['at']}.{name}", _SERVER_ONLY_MESSAGE)
    for i, site in enumerate(config.sites):
        if site is None:
            continue
        site_tables = by_index_sites.get(i) or {}
        if site_tables:
            tables["sites"][str(site.id)] = site_tables
        site_levels = [("", tables["server"]), (f"sites[{i}]", site_tables)]
        effective, _ = sections.resolve(site_levels, _Quiet(add, f"sites[{i}]"), FIELD_CHECKS)
        site.http_errors, site.access, site.caching = effective.http_errors, effective.access, effective.caching
        for j, app in enumerate(site.applications):
            if app is None:
                continue
            key = f"{site.id}{app.path}"
            app_tables = by_index_apps.get((i, j)) or {}
            if app_tables:
                tables["applications"][key] = app_tables
            at = f"sites[{i}].applications[{j}]"
            if app.default_documents is not None and "files" in (app_tables.get("default_document") or {}):
                add(f"{at}.default_documents", "set either default_documents or default_document.files, not both")
            levels = sections.application_levels(tables, site.id, key, app.default_documents,
                                                  ("", f"sites[{i}]", at))
            # Problems of the server's and the site's tables were reported with the site's.
            effective, _ = sections.resolve(levels, _Quiet(add, at), FIELD_CHECKS)
            # URL Rewrite: what only the merged rules show (a map or precondition no level defines).
            rewrite_section.check_effective(effective.rewrite, f"{at}.rewrite", add)
            app.http_errors, app.caching = effective.http_errors, effective.caching
            if "access" in app_tables:
                app.access = effective.access
    # After the loop: a location's collection directives (remove) see the site's and the
    # application's entries, which the loop files under tables["sites"] / ["applications"].
    _check_locations(config, add)


_SERVER_ONLY_MESSAGE = ("this section is AppHostOnly in IIS: set it at server level only "
                        "(the top-level table of wasp.toml)")


def _check_server_only(server_level, by_index_sites: dict, by_index_apps: dict, add) -> None:
    """IIS's allowDefinition="AppHostOnly" sections (httpCompression) at a site or an application
    are errors; and the server level's http_compression must make sense as a whole."""
    for name in SERVER_ONLY:
        for i, site_tables in sorted(by_index_sites.items()):
            if name in (site_tables or {}):
                add(f"sites[{i}].{name}", _SERVER_ONLY_MESSAGE)
        for (i, j), app_tables in sorted(by_index_apps.items()):
            if name in (app_tables or {}):
                add(f"sites[{i}].applications[{j}].{name}", _SERVER_ONLY_MESSAGE)
    compression = getattr(server_level, "http_compression", None)
    if compression is not None:
        for key, message in threshold_problems(compression):
            add(f"http_compression.{key}", message)


def _check_locations(config: Config, add) -> None:
    """Each location's sections decoded and merged where they apply; a problem once."""
    locations = config.sections["locations"]
    if not locations:
        return
    reported: set = set()

    def once(path: str, message: str) -> None:
        if path.startswith("locations") and (path, message) not in reported:
            reported.add((path, message))
            add(path, message)

    for site in config.sites:
        for app in (site.applications if site is not None else ()):
            if app is None:
                continue
            levels = hierarchy.AppLevels(config.sections, site, app, app.default_documents)
            sections.resolve(levels.levels_for("")[0], once, FIELD_CHECKS)
            for rel, below in levels.below.items():
                sections.resolve(levels.levels_for(rel)[0], once, FIELD_CHECKS)


class _Quiet:
    """An `add` that passes on only the problems of one level (the outer levels' were reported
    when they were resolved alone)."""

    def __init__(self, add, prefix: str):
        self.add = add
        self.prefix = prefix

    def __call__(self, path: str, message: str) -> None:
        if path.startswith(self.prefix):
            self.add(path, message)


def merge(defaults: dict, own: dict) -> dict:
    """`own` over `defaults`, recursively for tables; lists and values are replaced, not merged."""
    merged = dict(defaults)
    for key, value in own.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def resolve_paths(config: Config, base_dir: str) -> None:
    """Make the file's relative paths absolute against `base_dir` ("~" is expanded too)."""
    def absolute(path: str) -> str:
        return os.path.normpath(os.path.join(base_dir, os.path.expanduser(path)))

    config.server.run_dir = absolute(config.server.run_dir)
    config.server.log_dir = absolute(config.server.log_dir)
    if config.acme.ca_bundle:
        config.acme.ca_bundle = absolute(config.acme.ca_bundle)
    for pool in config.pools:
        # "python3" is a command looked up on PATH; "venv/bin/python" is a path next to the file.
        if "/" in pool.python:
            pool.python = absolute(pool.python)
        if pool.virtualenv:
            pool.virtualenv = absolute(pool.virtualenv)
        pool.service.python_path = [absolute(p) for p in pool.service.python_path]
        pool.recycling.monitor_changes_to = [absolute(p) for p in pool.recycling.monitor_changes_to]
    if config.log.central_w3c_log_file.directory:
        config.log.central_w3c_log_file.directory = absolute(config.log.central_w3c_log_file.directory)
    for site in config.sites:
        if site.log.directory:
            site.log.directory = absolute(site.log.directory)
        freb = site.trace_failed_requests_logging
        freb.directory = absolute(freb.directory) if freb.directory else os.path.join(
            config.server.log_dir, "FailedReqLogFiles")
        for app in site.applications:
            if app.physical_path:
                app.physical_path = absolute(app.physical_path)
            app.python_path = [absolute(p) for p in app.python_path]
        for entry in site.bindings:
            if isinstance(entry, SiteBinding):
                for name in ("certificate", "key", "client_ca"):
                    if getattr(entry, name) and not (name == "certificate" and entry.certificate == ACME):
                        setattr(entry, name, absolute(getattr(entry, name)))


def _load_text(text: str, source: str, base_dir: str, file: str | None, files: bool = False) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POSITION.search(message)
        line = int(match.group(1)) if match else None
        if match:
            message = message[:match.start()]
        elif message.endswith("(at end of document)"):
            message = message[:-len("(at end of document)")].rstrip()
            line = text.count("\n") + 1
        raise ConfigError([ConfigProblem("", f"TOML syntax error: {message}", line, file)]) from None
    return load_data(data, source, base_dir, LineLocator(text), file, files)


def _problems(found: list[tuple[str, str]], locator: LineLocator | None, file: str | None) -> list[ConfigProblem]:
    problems = [ConfigProblem(path, message, locator.line_of(path) if locator else None, file)
                for path, message in found]
    # Stable: problems on one line keep the order they were found in.
    problems.sort(key=lambda p: p.line if p.line is not None else float("inf"))
    return problems
