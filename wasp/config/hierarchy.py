"""Locations, web.toml files and locking: the levels below an application (IIS §3).

The levels of a URL, outermost first (IIS merges applicationHost.config, location tags from the
shortest path to the longest, then the web.config files from the application root down):

1. wasp.toml: the server's tables, the site's, the `[[locations]]` whose path is above the
   application, the application's own tables, a location naming the application itself, then the
   locations below it down to the URL's directory (or file);
2. the `web.toml` files of the application's physical_path, from its root to the URL's directory
   (only the root's when the application has `allow_sub_dir_config = false`; none when its pool
   has `enable_configuration_override = false`).

Locking applies to the web.toml files, as IIS's applies to web.config files: a section whose
effective override mode is Deny (its `override_mode_default`, or a location with
`override_mode = "Deny"` that names the section) cannot be set in a web.toml at or below; a
location with `override_mode = "Allow"` naming it unlocks it there. Within wasp.toml (IIS's
applicationHost.config) every level may set every section.

The loader keeps the locations in Config.sections["locations"] as plain tables
({"site": id, "url": "/a/b" or "", "override_mode": ..., "tables": {...}, "at": "locations[3]"});
a worker merges them for its applications, per directory (wasp/worker/urlconfig.py).
"""

from __future__ import annotations

import os
import re
import tomllib
from typing import Any, Callable, NamedTuple

from wasp.config import sections
from wasp.config.locate import LineLocator

Add = Callable[[str, str], None]

WEB_TOML = "web.toml"

#: IIS's 500.19 text for a locked section (iis-behaviour.md §3.4).
LOCKED_TEXT = ("This configuration section cannot be used at this path. This happens when the section "
               "is locked at a parent level. Locking is either by default (overrideModeDefault=\"Deny\"), "
               "or set explicitly by a location tag with overrideMode=\"Deny\" or the legacy "
               "allowOverride=\"false\".")

OVERRIDE_MODES = ("Allow", "Deny", "Inherit")


def url_key(path: str) -> str:
    """A URL path as locations compare it: lower case, no trailing "/", "" for the root."""
    return path.rstrip("/").lower()


def under(url: str, base: str) -> bool:
    """`url` is `base` or below it (segment-wise; both url_key form)."""
    return url == base or base == "" or url.startswith(base + "/")


# ---- the loader's side: [[locations]] ----

def take_locations(raw: Any, config, add: Add, names: set[str] = frozenset()) -> list[dict]:
    """Check `[[locations]]` entries against the config's sites; -> Config.sections["locations"]."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        add("locations", "expected an array of tables ([[locations]])")
        return []
    sites = {site.name.lower(): site for site in config.sites if site is not None}
    # A Python module's own section may be set for a location too (decoded by the workers).
    passthrough = set(names) | sections.python_module_names(
        [e for e in raw if isinstance(e, dict)] if isinstance(raw, list) else [])
    found: list[dict] = []
    seen: dict[tuple, str] = {}
    for i, entry in enumerate(raw):
        at = f"locations[{i}]"
        if not isinstance(entry, dict):
            add(at, "expected a table")
            continue
        path = entry.get("path")
        if not isinstance(path, str) or not path.strip("/"):
            add(f"{at}.path", "required: \"Site name\" or \"Site name/app/dir\" (IIS's location path)")
            continue
        mode = entry.get("override_mode", "Inherit")
        if mode not in OVERRIDE_MODES:
            add(f"{at}.override_mode", f"{mode!r} is not allowed; expected one of \"Allow\", \"Deny\", \"Inherit\"")
            continue
        site_name, _, rest = path.strip("/").partition("/")
        site = sites.get(site_name.lower())
        if site is None:
            known = ", ".join(f"\"{s.name}\"" for s in config.sites if s is not None)
            add(f"{at}.path", f"no site is named \"{site_name}\" (sites: {known})")
            continue
        url = url_key("/" + rest) if rest else ""
        if any(seg in ("", ".", "..") for seg in rest.split("/")) and rest:
            add(f"{at}.path", f"\"{path}\" has an empty, \".\" or \"..\" segment")
            continue
        tables = {}
        for key, value in entry.items():
            if key in ("path", "override_mode"):
                continue
            if key not in sections.registered() and key not in passthrough:
                add(f"{at}.{key}", "unknown key; a location holds path, override_mode and sections")
                continue
            if key in passthrough and key not in sections.registered() and not isinstance(value, dict):
                add(f"{at}.{key}", sections.MODULE_SECTION_NOT_A_TABLE)
                continue
            tables[key] = value
            first = seen.setdefault((site.id, url, key), at)
            if first != at:
                add(f"{at}.{key}", f"section {key} is already set for \"{path}\" in {first}")
        found.append({"site": site.id, "url": url, "override_mode": mode, "tables": tables, "at": at})
    return found


# ---- the levels of one application ----

class AppLevels:
    """The wasp.toml levels of one application, and its locations below it by URL."""

    def __init__(self, tables: dict, site, app, default_documents=None):
        self.key = f"{site.id}{app.path}"
        self.app_url = url_key(app.path)
        app_urls = [url_key(a.path) for a in site.applications if a is not None]
        at_index = next((i for i, a in enumerate(site.applications) if a is app), 0)
        self.base = sections.application_levels(
            tables, site.id, self.key, default_documents,
            ("", "sites", f"sites.applications[{at_index}]"))
        self.app_table_index = 2
        locations = [loc for loc in tables.get("locations") or () if loc["site"] == site.id]
        above = sorted((loc for loc in locations
                        if under(self.app_url, loc["url"]) and loc["url"] != self.app_url),
                       key=lambda loc: len(loc["url"]))
        own = [loc for loc in locations if loc["url"] == self.app_url]
        # Levels 0..1 are server and site; locations above the application come before its table.
        self.base[2:2] = [(loc["at"], loc["tables"]) for loc in above]
        self.base += [(loc["at"], loc["tables"]) for loc in own]
        self.modes = [(loc["at"], loc["override_mode"], loc["tables"]) for loc in above + own]
        #: Locations below the application (in it, not in a child application), by URL relative
        #: to the application ("/dir", "/dir/file.ext").
        self.below: dict[str, list[dict]] = {}
        for loc in locations:
            url = loc["url"]
            if url == self.app_url or not under(url, self.app_url):
                continue
            owner = max((u for u in app_urls if under(url, u)), key=len)
            if owner == self.app_url:
                rel = url[len(self.app_url):]
                self.below.setdefault(rel, []).append(loc)

    @property
    def flat(self) -> bool:
        return not self.below

    def levels_for(self, rel: str) -> tuple[list[tuple[str, dict]], list[tuple[str, str, dict]]]:
        """(levels, override modes) of wasp.toml for a URL `rel` below the application
        ("" for its root, "/a/b" for the directory or file /a/b), outermost first."""
        levels = list(self.base)
        modes = list(self.modes)
        if self.below:
            key = url_key(rel)
            path = ""
            for segment in (s for s in key.split("/") if s) if key else ():
                path += "/" + segment
                for loc in self.below.get(path, ()):
                    levels.append((loc["at"], loc["tables"]))
                    modes.append((loc["at"], loc["override_mode"], loc["tables"]))
        return levels, modes


def lock_state(modes: list[tuple[str, str, dict]]) -> dict[str, tuple[str, str]]:
    """section name -> ("Allow" | "Deny", where that was decided), after the wasp.toml levels."""
    state = {name: (entry.override_mode_default,
                    f"the section's default (override_mode_default = \"{entry.override_mode_default}\")")
             for name, entry in sections.registered().items()}
    for at, mode, tables in modes:
        if mode == "Inherit":
            continue
        for name in tables:
            state[name] = (mode, f"{at} (override_mode = \"{mode}\")")
    return state


# ---- web.toml ----

class WebToml(NamedTuple):
    """One distributed file, parsed: its tables, or the problems that make it unusable."""

    file: str
    tables: dict
    locator: LineLocator | None
    problems: list  # [(path, message, line)]


def read_web_toml(file: str, extra=frozenset()) -> WebToml | None:
    """The web.toml at `file`, or None when there is none. `extra`: names of Python modules'
    sections (from wasp.toml) that it may set too, as may the modules the file itself adds."""
    try:
        with open(file, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    except OSError as exc:
        return WebToml(file, {}, None, [("", f"cannot read {WEB_TOML}: {exc.strerror or exc}", None)])
    try:
        text = data.decode("utf-8")
        tables = tomllib.loads(text)
    except UnicodeDecodeError:
        return WebToml(file, {}, None, [("", f"{WEB_TOML} is not valid UTF-8", None)])
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\s*\(at line (\d+), column \d+\)$", str(exc))
        message = str(exc)[:match.start()] if match else str(exc)
        return WebToml(file, {}, None, [("", f"TOML syntax error: {message}",
                                         int(match.group(1)) if match else None)])
    locator = LineLocator(text)
    problems = []
    known = sections.registered()
    extra = set(extra) | sections.python_module_names([tables])
    for key in tables:
        if key not in known and key not in extra:
            problems.append((key, "unknown section" if isinstance(tables[key], dict) else
                             "unknown key; a web.toml holds sections (such as [default_document])",
                             locator.line_of(key)))
        elif key not in known and not isinstance(tables[key], dict):
            problems.append((key, sections.MODULE_SECTION_NOT_A_TABLE, locator.line_of(key)))
    return WebToml(file, {k: v for k, v in tables.items() if k in known or k in extra}, locator,
                   problems)


def _delegated_errors(web: WebToml, wasp_levels) -> Fault | None:
    """A web.toml's http_errors that says what only wasp.toml may (http_errors.py)."""
    from wasp.config.sections.http_errors import delegation_problems

    admin, _ = sections.resolve([lv for lv in wasp_levels if not lv[0].startswith("@")],
                                lambda p, m: None)
    found = delegation_problems(web.tables["http_errors"],
                                admin.http_errors.allow_absolute_paths_when_delegated)
    if not found:
        return None
    path, message = found[0]
    return Fault(f"{path}: {message}", web.file, web.locator.line_of(path) if web.locator else None,
                 LOCK_VIOLATION)


def check_locks(web: WebToml, state: dict[str, tuple[str, str]]) -> list[tuple[str, str, int | None]]:
    """A web.toml setting a locked section: one problem naming both places."""
    found = []
    for name in web.tables:
        mode, where = state.get(name, ("Allow", ""))
        if mode == "Deny":
            found.append((name, f"{LOCKED_TEXT} The section {name} is locked by {where} in wasp.toml.",
                          web.locator.line_of(name) if web.locator else None))
            continue
        table = web.tables[name]
        for key in sorted(sections.LOCKED_ATTRIBUTES.get(name, ())):
            if isinstance(table, dict) and key in table:
                found.append((f"{name}.{key}", f"{LOCKED_TEXT} The attribute {name}.{key} is "
                              "locked (lockAttributes): set it in wasp.toml.",
                              web.locator.line_of(f"{name}.{key}") if web.locator else None))
    return found


def content_dirs(root: str, rel: str, sub_dirs: bool) -> list[str]:
    """The folders whose web.toml apply to URL `rel` (an application-relative directory path,
    "/a/b/" or "/a/b/file"): the root, then each folder on the way (when `sub_dirs`)."""
    dirs = [root]
    if not sub_dirs:
        return dirs
    segments = [s for s in rel.split("/") if s]
    if rel and not rel.endswith("/"):
        segments = segments[:-1]  # the last segment is a file (or a directory without its "/")
    path = root
    for segment in segments:
        if segment in (".", "..") or "\x00" in segment or "\\" in segment:
            break
        path = os.path.join(path, segment)
        dirs.append(path)
    return dirs


def web_toml_files(root: str) -> list[str]:
    """Every web.toml under a physical_path (for `wasp validate`), not following symlinks out."""
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        if WEB_TOML in files:
            found.append(os.path.join(directory, WEB_TOML))
    return found


class Fault(NamedTuple):
    """Why a URL's configuration is unusable: a message, the file and line, IIS's error code."""

    message: str
    file: str
    line: int | None
    code: str


#: IIS's HRESULTs in a 500.19 page: ERROR_INVALID_DATA and ERROR_LOCK_VIOLATION.
INVALID_DATA = "0x8007000d"
LOCK_VIOLATION = "0x80070021"


def resolve_url(levels: AppLevels, root: str | None, rel: str, sub_dirs: bool,
                files: dict | None = None) -> tuple[Any, Fault | None]:
    """The effective sections of URL `rel` of an application (its wasp.toml levels, then the
    web.toml files under `root`, when given) and the first fault. `files` collects each web.toml
    looked for -> its stat signature (None: absent)."""
    wasp_levels, modes = levels.levels_for(rel)
    fault = None
    webs: list[WebToml] = []
    if root is not None:
        state = lock_state(modes)
        extra = sections.python_module_names([tables for _at, tables in wasp_levels])
        for directory in content_dirs(root, rel, sub_dirs):
            file = os.path.join(directory, WEB_TOML)
            signature = stat_signature(file)
            if files is not None:
                files[file] = signature
            if signature is None or not _inside(root, file):
                continue
            web = read_web_toml(file, extra)
            if web is None:
                continue
            if fault is None and web.problems:
                path, message, line = web.problems[0]
                fault = Fault(_joined(path, message), file, line, INVALID_DATA)
            locked = check_locks(web, state)
            if fault is None and locked:
                _path, message, line = locked[0]
                fault = Fault(message, file, line, LOCK_VIOLATION)
            if fault is None and isinstance(web.tables.get("http_errors"), dict):
                fault = _delegated_errors(web, wasp_levels)
            wasp_levels.append((f"@{len(webs)}", web.tables))
            webs.append(web)
    problems: list[tuple[str, str]] = []
    value, _ = sections.resolve(wasp_levels, lambda p, m: problems.append((p, m)))
    if fault is None and problems:
        path, message = problems[0]
        file, line = "wasp.toml", None
        if path.startswith("@"):
            index, _, path = path[1:].partition(".")
            web = webs[int(index)]
            file, line = web.file, web.locator.line_of(path) if web.locator else None
        fault = Fault(_joined(path, message), file, line, INVALID_DATA)
    return value, fault


def check_distributed(config) -> list:
    """`wasp validate`: every web.toml under each application's physical_path, resolved for its
    folder. -> ConfigProblem list (dotted path, file, line)."""
    from wasp.errors import ConfigProblem

    pools = {pool.name: pool for pool in config.pools}
    found = []
    for site in config.sites:
        for app in site.applications:
            pool = pools.get(app.pool)
            if not app.physical_path or (pool is not None and not pool.enable_configuration_override):
                continue
            root = os.path.realpath(app.physical_path)
            levels = AppLevels(config.sections, site, app, app.default_documents)
            files = web_toml_files(root)
            if not app.allow_sub_dir_config:
                files = [f for f in files if os.path.dirname(f) == root]
            for file in files:
                rel = os.path.relpath(os.path.dirname(file), root)
                rel = "/" if rel == "." else "/" + rel.replace(os.sep, "/") + "/"
                _value, fault = resolve_url(levels, root, rel, app.allow_sub_dir_config)
                if fault is not None and fault.file == file:
                    found.append(ConfigProblem("", fault.message, fault.line, fault.file))
    return found


def _joined(path: str, message: str) -> str:
    return f"{path}: {message}" if path else message


def stat_signature(file: str) -> tuple | None:
    try:
        st = os.stat(file)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _inside(root: str, file: str) -> bool:
    real = os.path.realpath(file)
    return real.startswith(root + os.sep) or root == os.sep
