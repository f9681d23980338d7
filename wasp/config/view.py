"""`wasp list config PATH [--section NAME] [--effective]`: what applies at an IIS config path and
which level set it (appcmd's `list config`, with `/config:*` as --effective). Reads a loaded
Config and the web.toml files on disk; prints nothing.

The levels of a path, outermost first, as the worker merges them (hierarchy.py): wasp.toml's
server tables, the site's, the locations above the application, the application's, the locations
down to the path, then the web.toml files from the application's physical_path down. Each key of
a section shows its effective value and the last level that set it ("default" when none did).
Without --effective only the keys some level sets are shown (appcmd shows what is set, and
`/config:*` the defaults too).
"""

from __future__ import annotations

import os

import msgspec

from wasp.config import hierarchy, sections
from wasp.config.commit import split_config_path


class ViewError(Exception):
    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


def _label(prefix: str, site, app, config) -> str:
    if prefix == "":
        return "wasp.toml"
    if prefix == "sites":
        return f"wasp.toml sites[name='{site.name}']"
    if prefix.startswith("sites.applications"):
        extra = ".default_documents" if prefix.endswith("default_documents") else ""
        return f"wasp.toml sites[name='{site.name}'].applications[path='{app.path}']{extra}"
    if prefix.startswith("locations["):
        index = int(prefix[len("locations["):prefix.index("]")])
        locs = config.sections.get("locations") or []
        path = next((f"{loc['at']}" for loc in locs if loc["at"] == prefix), prefix)
        raw = next((loc for loc in locs if loc["at"] == prefix), None)
        shown = f" (path '{_location_path(config, raw)}')" if raw else ""
        return f"wasp.toml {path}{shown}" if index >= 0 else prefix
    return prefix


def _location_path(config, loc: dict) -> str:
    site = next((s for s in config.sites if s.id == loc["site"]), None)
    return f"{site.name if site else loc['site']}{loc['url']}"


def levels_of(config, path: str) -> tuple[list[tuple[str, dict]], str]:
    """(levels as (label, tables), the path shown) of an IIS config path."""
    site_name, rest = split_config_path(path)
    tables = config.sections
    levels = [("wasp.toml", tables.get("server") or {})]
    if not site_name:
        return levels, "MACHINE/WEBROOT/APPHOST"
    site = next((s for s in config.sites if s.name.lower() == site_name.lower()), None)
    if site is None:
        raise ViewError(404, f'Cannot find SITE object with identifier "{site_name}".')
    shown = f"MACHINE/WEBROOT/APPHOST/{site.name}{rest if rest != '/' else ''}"
    url = rest.rstrip("/").lower()
    apps = [a for a in site.applications if url == a.path.rstrip("/").lower()
            or a.path.rstrip("/") == "" or url.startswith(a.path.rstrip("/").lower() + "/")]
    if not apps:
        levels.append((_label("sites", site, None, config), (tables.get("sites") or {}).get(str(site.id)) or {}))
        return levels, shown
    app = max(apps, key=lambda a: len(a.path.rstrip("/")))
    rel = rest.rstrip("/")[len(app.path.rstrip("/")):]
    app_levels = hierarchy.AppLevels(tables, site, app, app.default_documents)
    wasp_levels, _modes = app_levels.levels_for(rel)
    out = [(_label(prefix, site, app, config), t) for prefix, t in wasp_levels]
    pools = {p.name: p for p in config.pools}
    pool = pools.get(app.pool)
    if app.physical_path and (pool is None or pool.enable_configuration_override):
        root = os.path.realpath(app.physical_path)
        for directory in hierarchy.content_dirs(root, rel + "/", app.allow_sub_dir_config):
            web = hierarchy.read_web_toml(os.path.join(directory, hierarchy.WEB_TOML))
            if web is not None and not web.problems:
                out.append((web.file, web.tables))
    return out, shown


def _origins(name: str, levels: list[tuple[str, dict]]) -> dict[str, str]:
    info = sections.info(name)
    found: dict[str, str] = {}
    for label, tables in levels:
        table = tables.get(name)
        if isinstance(table, list) and info is not None and info.default_collection:
            found[info.default_collection] = label
        elif isinstance(table, dict):
            for key in table:
                if key in ("clear", "remove", "add") and info is not None and info.default_collection:
                    found[info.default_collection] = label
                else:
                    found[key] = label
    return found


def config_view(config, path: str, section: str = "", effective: bool = False) -> dict:
    """{"path", "sections": {name: {key: {"value", "set_at"}}}} for one config path."""
    levels, shown = levels_of(config, path)
    known = sections.registered()
    if section and section not in known:
        raise ViewError(404, f'Unknown config section "{section}". (sections: '
                             + ", ".join(sorted(known)) + ")")
    value, _ = sections.resolve(levels, lambda p, m: None)
    names = [section] if section else sorted(known)
    out: dict[str, dict] = {}
    for name in names:
        origins = _origins(name, levels)
        if not effective and not origins:
            continue
        current = msgspec.to_builtins(getattr(value, name))
        keys = {}
        for key, item in current.items():
            if not effective and key not in origins:
                continue
            keys[key] = {"value": item, "set_at": origins.get(key, "default")}
        out[name] = keys
    return {"path": shown, "effective": effective, "sections": out,
            "levels": [label for label, _ in levels]}
