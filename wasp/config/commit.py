"""A change to the configuration, made safely: the one path every edit takes, from the admin API
(`POST /config/changes`), from the CLI when the server is not running, and for restores.

    lock (flock on <run_dir>/config.lock)  ->  read the file  ->  refuse a stale `base`
    ->  make the edits with tomlkit (edit.py)  ->  validate the new text as `wasp validate` does
    ->  snapshot (history.py)  ->  write atomically (temp file, fsync, rename)  ->  [apply]

A refused change writes nothing. The caller applies a written wasp.toml (the manager reloads it;
a reload it rejects is rolled back with `Transaction.rollback`) and then closes the transaction,
which releases the lock, so two admins' changes follow one another: the second is made on the
text the first wrote (its edits are semantic paths, re-applied on the fresh text), unless it
carries a `base` (the sha256 of the text it was computed from) that is no longer current.

A change request (the admin API's JSON body):

    {"target": {"pool": "api"} | {"site": "S"} | {"app": "S/path"}
               | {"config": "S/app/dir", "section": "default_document", "commit": "apphost"|"web"},
     "edits": [{"op": "set"|"add"|"delete", "path": "recycling.time", "value": "1h"}, ...],
     "base": "<sha256 of the file's text>",   (optional)
     "user": "alice",                          (optional: who, as the management site knows it)
     "what": "free text for the history"}      (optional; made from the edits otherwise)

Each edit may carry its own "target"; every edit of one change must land in one file. Lock
edits: {"op": "lock", "mode": "Deny"|"Allow"} with a config target and a section.
"""

from __future__ import annotations

import difflib
import fcntl
import json
import os
import tempfile
import tomllib
from dataclasses import dataclass, field
from typing import Any

from wasp.config import edit as edits_mod
from wasp.config import history
from wasp.config.edit import EditError, path_text
from wasp.errors import ConfigError, ConfigProblem

LOCK_FILE = "config.lock"
WEB_TOML = "web.toml"


class ChangeRefused(Exception):
    """A change that was not written: status, appcmd-style message, the validator's problems."""

    def __init__(self, status: int, message: str, problems: list[str] | None = None):
        self.status = status
        self.problems = problems or []
        super().__init__(message)

    def payload(self) -> dict:
        out: dict[str, Any] = {"error": str(self)}
        if self.problems:
            out["problems"] = self.problems
        return out


@dataclass
class Written:
    file: str
    kind: str  # "wasp.toml" | "web.toml"
    old_text: str | None  # None: the file did not exist
    new_text: str
    diff: str
    what: str
    user: str
    snapshot: int | None = None
    baseline: int | None = None
    changed: bool = True
    messages: list[str] = field(default_factory=list)

    def result(self, applied: bool | None) -> dict:
        return {"ok": True, "file": self.file, "changed": self.changed, "history": self.snapshot,
                "applied": applied, "sha256": history.sha(self.new_text), "diff": self.diff,
                "what": self.what, "user": self.user, "messages": self.messages}


# ---------------------------------------------------------------------- targets

def split_config_path(text: str) -> tuple[str, str]:
    """IIS config path "Site/app/dir" -> (site name, "/app/dir"); "MACHINE/WEBROOT/APPHOST" and
    "" are the server ("", "")."""
    text = (text or "").strip()
    for prefix in ("MACHINE/WEBROOT/APPHOST/", "MACHINE/WEBROOT/APPHOST"):
        if text.upper().startswith(prefix):
            text = text[len(prefix):]
            break
    text = text.strip("/")
    if not text:
        return "", ""
    site, _, rest = text.partition("/")
    rest = "/" + rest.strip("/") if rest.strip("/") else "/"
    if any(seg in (".", "..") or "\x00" in seg or "\\" in seg for seg in rest.split("/")):
        raise ChangeRefused(400, f'"{text}" has a "." or ".." segment: not a configuration path')
    return site, rest


def _sites(data: dict) -> list[dict]:
    sites = data.get("sites")
    return [s for s in sites if isinstance(s, dict)] if isinstance(sites, list) else []


def _site(data: dict, name: str) -> dict:
    for site in _sites(data):
        if isinstance(site.get("name"), str) and site["name"].lower() == name.lower():
            return site
    raise ChangeRefused(404, f'Cannot find SITE object with identifier "{name}".')


def _app_of(site: dict, rest: str) -> tuple[dict | None, str]:
    """The application of `site` that owns URL `rest` (the longest path) and the URL below it."""
    best, best_key = None, None
    for app in site.get("applications") if isinstance(site.get("applications"), list) else []:
        if not isinstance(app, dict):
            continue
        key = str(app.get("path", "/")).rstrip("/").lower()
        url = rest.rstrip("/").lower()
        if url == key or key == "" or url.startswith(key + "/"):
            if best_key is None or len(key) > len(best_key):
                best, best_key = app, key
    if best is None:
        return None, rest
    below = rest.rstrip("/")[len(best_key):] if best_key else rest.rstrip("/")
    return best, below


def _name_sel(value: str) -> dict:
    return {"name": value}


class Target:
    """Where a change's edits go: a file and the path prefix inside it."""

    def __init__(self, kind: str, file: str, prefix: list, pre: list[dict] | None = None,
                 label: str = "", section: str = "", commit_path: str = ""):
        self.kind = kind
        self.file = file
        self.prefix = prefix
        self.pre = pre or []  # edits that make the prefix exist (a new location)
        self.label = label
        self.section = section
        self.commit_path = commit_path


def resolve_target(spec: dict | None, config_file: str, data: dict, load_config=None) -> Target:
    spec = spec or {}
    if not isinstance(spec, dict):
        raise ChangeRefused(400, "target must be an object")
    if "pool" in spec:
        name = str(spec["pool"])
        pools = data.get("pools") if isinstance(data.get("pools"), list) else []
        if not any(isinstance(p, dict) and str(p.get("name", "")).lower() == name.lower() for p in pools):
            raise ChangeRefused(404, f'Cannot find APPPOOL object with identifier "{name}".')
        return Target("wasp.toml", config_file, ["pools", _name_sel(name)], label=f'APPPOOL "{name}"')
    if "site" in spec:
        name = str(spec["site"])
        site = _site(data, name)
        return Target("wasp.toml", config_file, ["sites", _name_sel(site["name"])], label=f'SITE "{name}"')
    if "app" in spec:
        site_name, rest = split_config_path(str(spec["app"]))
        site = _site(data, site_name)
        app, below = _app_of(site, rest)
        if app is None or below:
            raise ChangeRefused(404, f'Cannot find APP object with identifier "{spec["app"]}".')
        return Target("wasp.toml", config_file, ["sites", _name_sel(site["name"]), "applications",
                                                 {"path": app.get("path", "/")}],
                      label=f'APP "{spec["app"]}"')
    path = str(spec.get("config", ""))
    section = str(spec.get("section", "") or "")
    commit = str(spec.get("commit", "") or "apphost").lower()
    site_name, rest = split_config_path(path)
    tail = [section] if section else []
    if commit in ("web", "url", "app", "site"):
        return _web_target(site_name, rest, tail, section, load_config, config_file, path)
    if commit not in ("apphost", "wasp.toml"):
        raise ChangeRefused(400, f'commit "{commit}" is not one of apphost (wasp.toml) or web (web.toml)')
    if not site_name:
        return Target("wasp.toml", config_file, tail, label="MACHINE/WEBROOT/APPHOST", section=section,
                      commit_path="MACHINE/WEBROOT/APPHOST")
    site = _site(data, site_name)
    app, below = _app_of(site, rest)
    full = f'MACHINE/WEBROOT/APPHOST/{site["name"]}{rest if rest != "/" else ""}'
    if rest == "/" and (app is None or str(app.get("path", "/")) != "/"):
        return Target("wasp.toml", config_file, ["sites", _name_sel(site["name"])] + tail,
                      label=full, section=section, commit_path="MACHINE/WEBROOT/APPHOST")
    if rest == "/" or (app is not None and not below):
        if app is None:
            raise ChangeRefused(404, f'Cannot find APP object with identifier "{path}".')
        if str(app.get("path", "/")) == "/" and rest == "/":
            # "Site" and "Site/" are the site's level in IIS; the root application's tables are
            # written with "Site/" + app (wasp keeps both): "Site/" means the site.
            return Target("wasp.toml", config_file, ["sites", _name_sel(site["name"])] + tail,
                          label=full, section=section, commit_path="MACHINE/WEBROOT/APPHOST")
        return Target("wasp.toml", config_file, ["sites", _name_sel(site["name"]), "applications",
                                                 {"path": app.get("path", "/")}] + tail,
                      label=full, section=section, commit_path="MACHINE/WEBROOT/APPHOST")
    # Below an application: a [[locations]] entry of wasp.toml (IIS's <location path="...">).
    location = f'{site["name"]}{rest.rstrip("/")}'
    pre = []
    raw = data.get("locations") if isinstance(data.get("locations"), list) else []
    if not any(isinstance(loc, dict) and str(loc.get("path", "")).strip("/").lower() == location.lower()
               for loc in raw):
        pre.append({"op": "add", "path": ["locations"], "value": {"path": location}})
    return Target("wasp.toml", config_file, ["locations", {"path": location}] + tail, pre=pre,
                  label=full, section=section, commit_path="MACHINE/WEBROOT/APPHOST")


def _web_target(site_name: str, rest: str, tail: list, section: str, load_config, config_file: str,
                path: str) -> Target:
    """The web.toml of a URL's folder, which must lie inside its application's physical_path."""
    if not site_name:
        raise ChangeRefused(400, "the server level has no web.toml: commit it to wasp.toml (apphost)")
    config = load_config()
    site = next((s for s in config.sites if s.name.lower() == site_name.lower()), None)
    if site is None:
        raise ChangeRefused(404, f'Cannot find SITE object with identifier "{site_name}".')
    url = rest.rstrip("/").lower()
    apps = [a for a in site.applications
            if url == a.path.rstrip("/").lower() or a.path.rstrip("/") == ""
            or url.startswith(a.path.rstrip("/").lower() + "/")]
    if not apps:
        raise ChangeRefused(404, f'Cannot find APP object with identifier "{path}".')
    app = max(apps, key=lambda a: len(a.path.rstrip("/")))
    if not app.physical_path:
        raise ChangeRefused(400, f'application "{site.name}{app.path}" has no physical_path, so it has '
                                 f"no {WEB_TOML}")
    root = os.path.realpath(app.physical_path)
    below = rest.rstrip("/")[len(app.path.rstrip("/")):]
    segments = [s for s in below.split("/") if s]
    if any(s in (".", "..") or "\x00" in s or "\\" in s for s in segments):
        raise ChangeRefused(400, f'"{path}" has a "." or ".." segment')
    folder = os.path.realpath(os.path.join(root, *segments))
    if folder != root and not folder.startswith(root + os.sep):
        raise ChangeRefused(403, f'"{path}" leads outside the application\'s physical_path {root}')
    if not os.path.isdir(folder):
        raise ChangeRefused(404, f"{folder} is not a directory, so it has no {WEB_TOML}")
    file = os.path.join(folder, WEB_TOML)
    if os.path.lexists(file):
        real = os.path.realpath(file)
        if os.path.dirname(real) != folder and not real.startswith(root + os.sep):
            raise ChangeRefused(403, f"{file} is a symlink out of the application's physical_path")
        if os.path.islink(file):
            raise ChangeRefused(403, f"{file} is a symlink: wasp does not write through it")
    return Target("web.toml", file, tail, label=f'MACHINE/WEBROOT/APPHOST/{site.name}{rest}',
                  section=section, commit_path=f"{file}")


# ---------------------------------------------------------------------- lock edits

def lock_edits(target: Target, doc_data: dict, mode: str) -> list[dict]:
    """Edits that give section `target.section` override_mode `mode` at a location path."""
    if mode not in ("Allow", "Deny"):
        raise ChangeRefused(400, f'override mode "{mode}" is not Allow or Deny')
    if not target.section:
        raise ChangeRefused(400, "lock and unlock need a section (--section NAME)")
    if target.kind != "wasp.toml":
        raise ChangeRefused(400, "sections are locked in wasp.toml (commit apphost), not in a web.toml")
    site, rest = split_config_path(target.label.replace("MACHINE/WEBROOT/APPHOST", "", 1)) \
        if target.label.startswith("MACHINE/WEBROOT/APPHOST/") else ("", "")
    if not site:
        raise ChangeRefused(400, "wasp locks a section for a site or a path below it (IIS's location "
                                 "tag): give a path, e.g. \"Default Web Site\"; a section's "
                                 "server-wide override_mode_default is fixed by the section")
    location = f"{site}{rest.rstrip('/')}" if rest != "/" else site
    section = target.section
    raw = [loc for loc in data_list(doc_data, "locations")]
    same = [loc for loc in raw if str(loc.get("path", "")).strip("/").lower() == location.lower()]
    holder = next((loc for loc in same if section in loc), None)
    out: list[dict] = []
    value: Any = {}
    if holder is not None:
        if holder.get("override_mode", "Inherit") == mode:
            return []
        others = [k for k in holder if k not in ("path", "override_mode", section)]
        if not others:
            return [{"op": "set", "path": ["locations", _loc_sel(raw, holder), "override_mode"], "value": mode}]
        value = holder[section]
        out.append({"op": "delete", "path": ["locations", _loc_sel(raw, holder), section]})
    dest = next((loc for loc in same if loc.get("override_mode", "Inherit") == mode and loc is not holder), None)
    if dest is None:
        out.append({"op": "add", "path": ["locations"], "key": ["path", "override_mode"],
                    "value": {"path": location, "override_mode": mode, section: value}})
    else:
        out.append({"op": "set", "path": ["locations", _loc_sel(raw, dest), section], "value": value})
    return out


def _loc_sel(raw: list[dict], loc: dict) -> int:
    """A location's index among [[locations]] (two may share a path with different modes)."""
    return next(i for i, entry in enumerate(raw) if entry is loc)


def data_list(data: dict, key: str) -> list[dict]:
    value = data.get(key)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


# ---------------------------------------------------------------------- the transaction

def describe(edit: dict) -> str:
    path = edit.get("path")
    shown = path if isinstance(path, str) else path_text(path or [])
    if edit.get("op") == "set":
        return f"set {shown} = {json.dumps(edit.get('value'), default=str)}"
    if edit.get("op") == "add":
        return f"add {json.dumps(edit.get('value'), default=str)} to {shown}"
    if edit.get("op") == "lock":
        return f"override_mode {edit.get('mode')}"
    return f"delete {shown}"


def unified(old: str | None, new: str, file: str) -> str:
    return "".join(difflib.unified_diff((old or "").splitlines(keepends=True),
                                        new.splitlines(keepends=True),
                                        f"a/{os.path.basename(file)}", f"b/{os.path.basename(file)}"))


def read_text(file: str) -> str | None:
    try:
        with open(file, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ChangeRefused(500, f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ChangeRefused(400, f"{file} is not valid UTF-8") from None


def write_atomic(file: str, text: str) -> None:
    """Write `text` to `file` by a temp file in the same folder, fsync and rename: a reader sees
    the old file or the new one, never half of one. The old file's mode (and owner, as root) is
    kept."""
    file = os.path.realpath(file)  # a symlinked wasp.toml stays a symlink; its target changes
    folder = os.path.dirname(file) or "."
    try:
        st = os.stat(file)
        mode, owner = st.st_mode & 0o7777, (st.st_uid, st.st_gid)
    except FileNotFoundError:
        mode, owner = 0o644, None
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(file)}.", suffix=".wasp-tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), mode)
            if owner is not None and os.geteuid() == 0:
                os.fchown(f.fileno(), *owner)
            os.fsync(f.fileno())
        os.replace(tmp, file)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def validate_wasp_toml(text: str, file: str, checks=None) -> list[ConfigProblem]:
    """What `wasp validate` says of this text as `file` (nothing: it is valid). `checks(config,
    file)` adds what only the machine can tell (interpreters, accounts, Python modules'
    sections: wasp/manager/config_api.py's `machine_checks`), which config code cannot import."""
    from wasp.config import hierarchy
    from wasp.config.load import load_edited

    try:
        config = load_edited(text, file)
        problems = list(checks(config, file)) if checks is not None else []
        if problems:
            return problems
        return hierarchy.check_distributed(config)
    except ConfigError as exc:
        return list(exc.problems)


def validate_web_toml(config, file: str, text: str) -> list[ConfigProblem]:
    """The web.toml at `file`, as `text`, judged for its folder as a worker would (500.19)."""
    from wasp.config import hierarchy

    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return [ConfigProblem("", f"TOML syntax error: {exc}", None, file)]
    folder = os.path.dirname(file)
    for site in config.sites:
        for app in site.applications:
            if not app.physical_path:
                continue
            root = os.path.realpath(app.physical_path)
            if folder != root and not folder.startswith(root + os.sep):
                continue
            rel = os.path.relpath(folder, root)
            rel = "/" if rel == "." else "/" + rel.replace(os.sep, "/") + "/"
            levels = hierarchy.AppLevels(config.sections, site, app, app.default_documents)
            _value, fault = hierarchy.resolve_url(levels, root, rel, app.allow_sub_dir_config,
                                                  overrides={file: text})
            if fault is not None:
                return [ConfigProblem("", fault.message, fault.line, fault.file)]
    return []


class Transaction:
    """One change under the config lock. Use as a context manager; `prepare` writes (or raises
    ChangeRefused having written nothing), `rollback` puts the old text back."""

    def __init__(self, config_file: str, run_dir: str, checks=None):
        self.config_file = os.path.abspath(config_file)
        self.run_dir = run_dir
        self.checks = checks
        self._lock_fd: int | None = None

    def __enter__(self) -> "Transaction":
        history.private_dir(self.run_dir)
        self._lock_fd = os.open(os.path.join(self.run_dir, LOCK_FILE),
                                os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # ---- helpers
    def _data(self) -> tuple[str, dict]:
        text = read_text(self.config_file)
        if text is None:
            raise ChangeRefused(404, f"{self.config_file} does not exist")
        try:
            return text, tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ChangeRefused(400, f"{self.config_file} is not valid TOML ({exc}): fix it by hand "
                                     "or restore it (wasp config restore N)") from None

    def _load_current(self):
        from wasp.config.load import load

        try:
            return load(self.config_file)
        except ConfigError as exc:
            raise ChangeRefused(400, "the configuration is invalid, so the web.toml cannot be placed",
                                [str(p) for p in exc.problems]) from None

    def settings(self) -> history.Settings:
        return history.settings_of_file(self.config_file, self.run_dir)

    # ---- the change
    def prepare(self, request: dict, user: str) -> Written:
        if not isinstance(request, dict):
            raise ChangeRefused(400, "a change is a JSON object with an edits list")
        raw_edits = request.get("edits")
        if not isinstance(raw_edits, list) or not raw_edits or not all(isinstance(e, dict) for e in raw_edits):
            raise ChangeRefused(400, "edits must be a non-empty list of objects")
        if len(raw_edits) > 1000:
            raise ChangeRefused(413, "at most 1000 edits in one change")
        wasp_text, data = self._data()
        targets: list[Target] = []
        final: list[dict] = []
        for e in raw_edits:
            spec = e.get("target", request.get("target"))
            target = resolve_target(spec, self.config_file, data, self._load_current)
            targets.append(target)
            if e.get("op") == "lock":
                final.extend(lock_edits(target, data, str(e.get("mode", ""))))
                continue
            try:
                rel = edits_mod._path_of(e) if e.get("path") not in (None, []) else []
            except EditError as exc:
                raise ChangeRefused(exc.status, str(exc)) from None
            if not target.prefix and not rel:
                raise ChangeRefused(400, "an edit needs a path")
            for p in target.pre:
                if p not in final:
                    final.append(p)
            e = dict(e, path=target.prefix + rel)
            if (e.get("op") == "add" and e["path"] == ["sites"] and isinstance(e.get("value"), dict)
                    and "id" not in e["value"]):
                # appcmd's add site without /id: the next free id.
                ids = [s.get("id") for s in _sites(data) if isinstance(s.get("id"), int)]
                ids += [v["value"]["id"] for v in final if v.get("path") == ["sites"]
                        and isinstance(v.get("value"), dict) and isinstance(v["value"].get("id"), int)]
                e["value"] = dict(e["value"], id=max(ids, default=0) + 1)
            final.append(e)
        files = {t.file for t in targets}
        if len(files) != 1:
            raise ChangeRefused(400, "one change edits one file; these edits go to " + ", ".join(sorted(files)))
        target = targets[0]
        old = wasp_text if target.kind == "wasp.toml" else read_text(target.file)
        base = request.get("base")
        if base and base != history.sha(old or ""):
            raise ChangeRefused(409, f"{target.file} was changed since you read it (your base "
                                     f"{str(base)[:12]}…, now {history.sha(old or '')[:12]}…): "
                                     "read it again and redo the change")
        shown = [describe(dict(e, path=t.prefix + (edits_mod._path_of(e) if e.get("path") not in (None, []) else [])))
                 if e.get("op") != "lock" else f"{t.label} {t.section}: {describe(e)}"
                 for e, t in zip(raw_edits, targets)]
        what = str(request.get("what") or "; ".join(shown))[:2000]
        try:
            new = edits_mod.apply_edits(old or "", final) if final else (old or "")
        except EditError as exc:
            raise ChangeRefused(exc.status, str(exc)) from None
        written = Written(target.file, target.kind, old, new, unified(old, new, target.file), what, user)
        if new == (old or ""):
            written.changed = False
            return written
        if target.kind == "wasp.toml":
            problems = validate_wasp_toml(new, target.file, self.checks)
        else:
            problems = validate_web_toml(self._load_current(), target.file, new)
        if problems:
            raise ChangeRefused(400, "the change was refused: the configuration would be invalid "
                                     f"({len(problems)} problem{'s' if len(problems) != 1 else ''}); "
                                     "nothing was written", [str(p) for p in problems])
        self._write(written)
        if target.section:
            written.messages.append(
                f'Applied configuration changes to section "{target.section}" for '
                f'"{target.label}" at configuration commit path "{target.commit_path}"')
        return written

    def replace(self, file: str, text: str, user: str, what: str) -> Written:
        """Write a whole new text (a restore), validated like any change."""
        kind = "wasp.toml" if os.path.abspath(file) == self.config_file else "web.toml"
        if kind == "web.toml":
            # Only a web.toml inside an application's physical_path: a history record is a file
            # on disk, and what it names must not be a way to write anywhere.
            self._check_web_file(file)
        old = read_text(file)
        written = Written(file, kind, old, text, unified(old, text, file), what, user)
        if text == old:
            written.changed = False
            return written
        problems = (validate_wasp_toml(text, file, self.checks) if kind == "wasp.toml"
                    else validate_web_toml(self._load_current(), file, text))
        if problems:
            raise ChangeRefused(400, "the restore was refused: that configuration is not valid now "
                                     f"({len(problems)} problem{'s' if len(problems) != 1 else ''}); "
                                     "nothing was written", [str(p) for p in problems])
        self._write(written)
        return written

    def _check_web_file(self, file: str) -> None:
        config = self._load_current()
        folder = os.path.realpath(os.path.dirname(file))
        if os.path.basename(file) != WEB_TOML or os.path.islink(file):
            raise ChangeRefused(403, f"{file} is neither the configuration file nor a web.toml")
        for site in config.sites:
            for app in site.applications:
                root = os.path.realpath(app.physical_path) if app.physical_path else None
                if root and (folder == root or folder.startswith(root + os.sep)):
                    return
        raise ChangeRefused(403, f"{file} is not inside any application's physical_path")

    def _write(self, written: Written) -> None:
        settings = self.settings()
        if written.old_text is not None:
            written.baseline = history.baseline(settings, written.file, written.old_text)
        write_atomic(written.file, written.new_text)
        try:
            written.snapshot = history.record(settings, written.file, written.new_text,
                                              written.user, written.what, written.diff)
        except OSError:
            written.snapshot = None  # the change stands; the history could not keep it

    def rollback(self, written: Written) -> None:
        """Put the file back as it was (the running server refused to apply it)."""
        if not written.changed:
            return
        settings = self.settings()
        if written.old_text is None:
            try:
                os.unlink(written.file)
            except FileNotFoundError:
                pass
        else:
            write_atomic(written.file, written.old_text)
        history.forget(settings, written.snapshot)
        history.forget(settings, written.baseline)
