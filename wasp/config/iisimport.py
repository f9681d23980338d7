"""applicationHost.config and web.config -> wasp.toml and web.toml (`wasp import-iis`).

Sans-I/O: XML trees in (wasp.config.iisxml.Node), a config dict, web.toml dicts and a report out.
The CLI (wasp/cli/importiis.py) reads the files, finds the web.config files and writes the
results; docs/import-iis.md has the mapping table and the report's reasons.

- `system.applicationHost` is mapped by hand: pools (`applicationPoolDefaults` -> `[pool_defaults]`),
  sites with `siteDefaults` folded into each site, bindings, applications, virtual directories,
  limits, logs, webLimits.
- `system.webServer` sections are mapped through wasp's section registry: every registered section
  (wasp/config/sections) with an IIS element path in `SECTION_PATHS` is converted by walking its
  msgspec Struct: an attribute becomes the field of its snake_case name, a child element a
  sub-table or a collection (IIS's add/remove/clear), and each value is coerced to the field's type
  (IIS timespans to durations, flags to lists, enum names to wasp's). So a section that lands with
  another branch (proxy, fast_cgi, web_dav) is converted as soon as it is registered, and reported
  as "not in this wasp yet" until then.
- Nothing is dropped silently: every attribute or element without a wasp meaning is a report item
  with its file, line and reason.
"""

from __future__ import annotations

import ntpath
import posixpath
import re
import typing
from dataclasses import dataclass, field as dc_field
from typing import Any, Callable, Literal

import msgspec

from wasp.config import model, sections
from wasp.config.collection import Collection, fold
from wasp.config.iisxml import Node
from wasp.config.tomlwrite import COMMENT, Dur

# ---------------------------------------------------------------------------------------- report

#: kinds of report items
DROPPED = "not converted"
ACTION = "action needed"
NOTE = "converted with a change"


@dataclass
class Item:
    kind: str
    where: str
    what: str
    reason: str


@dataclass
class Report:
    items: list[Item] = dc_field(default_factory=list)

    def add(self, kind: str, where: str, what: str, reason: str) -> None:
        self.items.append(Item(kind, where, what, reason))

    def drop(self, where, what, reason):
        self.add(DROPPED, where, what, reason)

    def action(self, where, what, reason):
        self.add(ACTION, where, what, reason)

    def note(self, where, what, reason):
        self.add(NOTE, where, what, reason)

    def of(self, kind: str) -> list[Item]:
        return [i for i in self.items if i.kind == kind]

    def text(self) -> str:
        lines = ["wasp import-iis report", ""]
        for kind, title in ((ACTION, "Action needed"), (DROPPED, "Not converted (no Linux/wasp meaning)"),
                            (NOTE, "Converted with a change")):
            items = self.of(kind)
            lines.append(f"## {title}: {len(items)}")
            for i in items:
                lines.append(f"- {i.where}: {i.what}: {i.reason}")
            lines.append("")
        return "\n".join(lines)


# ------------------------------------------------------------------------------ paths and names

#: %VARIABLE% -> value, as on a default Windows Server install (docs/import-iis.md). `--env
#: NAME=VALUE` adds or replaces entries. Names compare without regard to case, as Windows does.
ENVIRONMENT = {
    "systemdrive": "C:",
    "systemroot": r"C:\Windows",
    "windir": r"C:\Windows",
    "inetpub": r"C:\inetpub",
    "programfiles": r"C:\Program Files",
    "programfiles(x86)": r"C:\Program Files (x86)",
    "programw6432": r"C:\Program Files",
    "commonprogramfiles": r"C:\Program Files\Common Files",
    "programdata": r"C:\ProgramData",
    "allusersprofile": r"C:\ProgramData",
    "public": r"C:\Users\Public",
    "userprofile": r"C:\Users\Default",
    "temp": r"C:\Windows\Temp",
    "tmp": r"C:\Windows\Temp",
    "computername": "localhost",
}

_ENV_REF = re.compile(r"%([A-Za-z_][A-Za-z0-9_()]*)%")
_WINDOWS_PATH = re.compile(r"^\s*(%[A-Za-z_][A-Za-z0-9_()]*%|[A-Za-z]:[\\/]|\\\\[^\\])")


def looks_like_windows_path(text: str) -> bool:
    return bool(_WINDOWS_PATH.match(text))


def snake(name: str) -> str:
    """IIS's camelCase -> wasp's snake_case: applyToWebDAV -> apply_to_web_dav."""
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    return s.replace("-", "_").lower()


class Paths:
    """Windows paths -> Linux paths under `root`, with %VARIABLE% expanded (documented mapping).

    C:\\inetpub\\wwwroot -> <root>/c/inetpub/wwwroot: the drive letter is a lower-case folder, the
    other components keep the case they are written with unless `resolve` (the CLI's
    case-insensitive lookup of folders that exist under the root) finds them spelled otherwise on
    disk. \\\\server\\share\\x -> <root>/unc/server/share/x. A path whose `..` would leave the root
    is refused (None).
    """

    def __init__(self, root: str, env: dict[str, str] | None = None,
                 resolve: Callable[[str], str] | None = None):
        self.root = posixpath.normpath(root) if root else "/"
        self.env = {k.lower(): v for k, v in ENVIRONMENT.items()}
        self.env.update({k.lower(): v for k, v in (env or {}).items()})
        self.resolve = resolve

    def expand(self, text: str, report: Report | None = None, where: str = "") -> str:
        def sub(m):
            name = m.group(1).lower()
            if name in self.env:
                return self.env[name]
            if report is not None:
                report.action(where, f"%{m.group(1)}%", "unknown environment variable, left as written; "
                              "give its value with --env NAME=VALUE")
            return m.group(0)
        # Expand twice at most (a value may name another variable), never recursively forever.
        return _ENV_REF.sub(sub, _ENV_REF.sub(sub, text))

    def to_linux(self, text: str, report: Report | None = None, where: str = "") -> str | None:
        expanded = self.expand(text.strip(), report, where).replace("/", "\\")
        if expanded.startswith("\\\\"):
            parts = [p for p in expanded[2:].split("\\") if p]
            rel = ["unc", *parts]
        else:
            drive, rest = ntpath.splitdrive(expanded)
            if not drive or len(drive) != 2:
                return None
            rel = [drive[0].lower(), *[p for p in rest.split("\\") if p]]
        out: list[str] = []
        for part in rel:
            if part == ".":
                continue
            if part == "..":
                if len(out) <= 1:  # would leave the drive (or the root)
                    if report is not None:
                        report.drop(where, text, "the path leaves its drive with \"..\"; refused")
                    return None
                out.pop()
                continue
            if "\x00" in part:
                return None
            out.append(part)
        path = posixpath.join(self.root, *out) if out else self.root
        if self.resolve is not None:
            path = self.resolve(path)
        return path


# ------------------------------------------------------------------------ values and the walker

def _unwrap(tp):
    while typing.get_origin(tp) is typing.Annotated:
        tp = tp.__origin__
    origin = typing.get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
    return tp


def _collection(tp) -> Collection | None:
    while typing.get_origin(tp) is typing.Annotated:
        for meta in tp.__metadata__:
            if isinstance(meta, Collection):
                return meta
        tp = tp.__origin__
    return None


def _is_struct(tp) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


#: IIS timespan: [-][d.]hh:mm:ss[.fffffff]
_TIMESPAN = re.compile(r"^\s*(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d+))?\s*$")


def timespan(text: str) -> float | None:
    m = _TIMESPAN.match(text)
    if m:
        days, h, mi, s, frac = m.groups()
        total = int(days or 0) * 86400 + int(h) * 3600 + int(mi) * 60 + int(s)
        if frac:
            total += float("0." + frac)
        return total
    try:
        return float(text)
    except ValueError:
        return None


class Bad(Exception):
    """A value that does not fit the wasp field (the report says why)."""


def _literal_match(text: str, allowed: tuple) -> Any:
    for a in allowed:
        if isinstance(a, str) and (a == text or a.lower() == text.lower() or a == snake(text)
                                   or a.replace("_", "") == text.lower().replace("_", "")):
            return a
    raise Bad(f"{text!r} is not one of {', '.join(repr(a) for a in allowed)}")


#: Fields whose IIS value is not in bytes: (Struct name, field) -> multiplier.
SIZE_UNITS = {
    ("HttpCompression", "max_disk_space_usage"): 1024 * 1024,  # IIS: MB
}

#: Attribute renames where IIS's name is not the field's snake_case: (Struct name, attr) -> field.
ATTR_ALIASES = {
    ("ClientCache", "setEtag"): "set_e_tag",
    ("CacheProfile", "kernelCachePolicy"): "kernel_caching_policy",
    ("DenyByRequestRate", "requestIntervalInMilliseconds"): "request_interval_ms",
    ("OutboundRule", "preCondition"): "precondition",
    ("HandlerEntry", "modules"): "modules",
}

#: Attributes every IIS element may carry that configure IIS's config system itself.
LOCK_ATTRIBUTES = {"lockAttributes", "lockAllAttributesExcept", "lockElements", "lockAllElementsExcept",
                   "lockItem"}

#: Why an attribute or element has no wasp meaning (by IIS name, any section).
REASONS = {
    "dll": "compression libraries are built into wasp (gzip, br, zstd)",
    "password": "a Windows credential; passwords are never written to wasp.toml",
    "logonMethod": "a Windows logon type; authentication on Linux is htpasswd, PAM or LDAP",
    "useKernelMode": "Windows kernel-mode (HTTP.sys) authentication has no Linux equivalent",
    "useAppPoolCredentials": "Windows service accounts; set keytab/service_principal instead",
    "authPersistSingleRequest": "Windows authentication's per-connection state is not configurable",
    "authPersistNonNTLM": "Windows authentication's per-connection state is not configurable",
    "configSource": "the section lives in another file; import that file's content into this one",
    "providers": "Windows security packages (Negotiate/NTLM); wasp's Negotiate is Kerberos with a keytab",
    "extendedProtection": "Windows channel binding settings have no wasp equivalent",
    "scriptProcessor": "names a Windows executable",
    "staticCompressionLevel": "set per scheme in wasp ([[http_compression.schemes]])",
}


class Walker:
    """Converts one IIS element into a wasp table by its Struct's fields."""

    def __init__(self, report: Report, paths: Paths, where_file: str):
        self.server = False  # converting the server level (IIS's install lists whole collections)
        self.added: dict[tuple, set] = {}  # (scope, collection field) -> keys added (removes need one)
        self.scope = ""  # "" = the server, else the site name (lower case) being converted
        self.report = report
        self.paths = paths
        self.file = where_file

    def at(self, node: Node) -> str:
        return f"{self.file}:{node.line} <{node.tag}>"

    # -- values
    def coerce(self, text: str, tp, owner: str, fname: str, node: Node) -> Any:
        if text.startswith("[enc:") and text.endswith(":enc]"):
            raise Bad("encrypted with IIS's configProtectedData (Windows keys): cannot be read")
        base = _unwrap(tp)
        origin = typing.get_origin(base)
        if base is bool:
            low = text.strip().lower()
            if low in ("true", "false"):
                return low == "true"
            raise Bad(f"{text!r} is not true or false")
        if base is model.Duration:
            seconds = timespan(text)
            if seconds is None or seconds < 0:
                raise Bad(f"{text!r} is not an IIS timespan (hh:mm:ss)")
            return Dur(seconds)
        if base is model.Size:
            try:
                number = int(text.strip())
            except ValueError:
                raise Bad(f"{text!r} is not a whole number") from None
            return number * SIZE_UNITS.get((owner, fname), 1)
        if base is int:
            try:
                return int(text.strip())
            except ValueError:
                raise Bad(f"{text!r} is not a whole number") from None
        if base is float:
            try:
                return float(text.strip())
            except ValueError:
                raise Bad(f"{text!r} is not a number") from None
        if origin is Literal:
            return _literal_match(text.strip(), typing.get_args(base))
        if origin is list:
            (item_tp,) = typing.get_args(base) or (str,)
            parts = [p.strip() for p in text.split(",") if p.strip()]
            inner = _unwrap(item_tp)
            if typing.get_origin(inner) is Literal:
                allowed = typing.get_args(inner)
                if "None" not in allowed:
                    parts = [p for p in parts if p.lower() != "none"]
            return [self.coerce(p, item_tp, owner, fname, node) for p in parts]
        if base is str:
            if looks_like_windows_path(text):
                linux = self.paths.to_linux(text, self.report, self.at(node))
                if linux is None:
                    raise Bad(f"{text!r} is not a path wasp can map")
                if re.search(r"\.(exe|dll|bat|cmd|com)$", linux, re.IGNORECASE):
                    hint = " (Debian's php-cgi is /usr/bin/php-cgi)" if "php-cgi" in linux.lower() else ""
                    self.report.action(self.at(node), f"{fname} = \"{text}\"",
                                       f"a Windows program, written as {linux}: point it at the Linux "
                                       f"program{hint}")
                return linux
            return text
        raise Bad(f"no conversion for a {getattr(base, '__name__', base)} value")

    # -- elements
    def element(self, node: Node, cls: type, default: Any = None, section: str = "") -> dict:
        out: dict[str, Any] = {}
        fields = {f.name: f for f in msgspec.structs.fields(cls)}
        owner = cls.__name__
        for attr, text in node.attrs.items():
            if attr in LOCK_ATTRIBUTES:
                self.report.drop(self.at(node), f"{attr}=\"{text}\"",
                                 "IIS's granular locks are not carried over (wasp locks whole sections)")
                continue
            if attr.startswith("xmlns"):
                continue
            name = ATTR_ALIASES.get((owner, attr)) or snake(attr)
            info = fields.get(name)
            if info is None:
                reason = REASONS.get(attr, f"no wasp equivalent in {section or owner}")
                shown = "(hidden)" if attr.lower() == "password" else f"\"{text}\""
                self.report.drop(self.at(node), f"{attr}={shown}", reason)
                continue
            if _collection(info.type) is not None or (
                    typing.get_origin(_unwrap(info.type)) is list and _is_struct(
                        _unwrap(typing.get_args(_unwrap(info.type))[0]))):
                self.report.drop(self.at(node), f"{attr}=\"{text}\"", "expected as child elements")
                continue
            try:
                out[name] = self.coerce(text, info.type, owner, name, node)
            except Bad as exc:
                self.report.drop(self.at(node), f"{attr}=\"{text}\"", str(exc))
        collections = [f for f in fields.values() if _collection(f.type) is not None]
        default_coll = None
        info_ = sections.info(section) if section else None
        if info_ is not None and info_.cls is cls and info_.default_collection:
            default_coll = fields[info_.default_collection]
        elif len(collections) == 1:
            default_coll = collections[0]
        lists = [f for f in fields.values() if typing.get_origin(_unwrap(f.type)) is list
                 and f not in collections]
        direct: list[Node] = []
        grouped: dict[str, list[Node]] = {}  # collection field -> its items and add/remove/clear, in order
        target = default_coll
        for child in node.children:
            name = snake(child.tag)
            info = fields.get(name)
            plural = fields.get(name + "s")
            if child.tag in ("add", "remove", "clear") and target is not None:
                grouped.setdefault(target.name, []).append(child)
                continue
            if info is None and plural is not None and _collection(plural.type) is not None:
                grouped.setdefault(plural.name, []).append(child)  # <scheme> of `schemes`
                continue
            if info is not None and _collection(info.type) is not None and self.is_item(child, info):
                grouped.setdefault(info.name, []).append(child)  # <mimeMap> of `mime_map`
                continue
            if info is not None and child.tag not in ("add", "remove", "clear"):
                tp = _unwrap(info.type)
                marker = _collection(info.type)
                sub_default = getattr(default, info.name, None) if default is not None else None
                if marker is not None:
                    out[info.name] = self.collection(child, child.children, info, sub_default, section)
                elif _is_struct(tp):
                    out[info.name] = self.element(child, tp, sub_default, section)
                elif typing.get_origin(tp) is list:
                    out[info.name] = self.plain_list(child, info)
                else:
                    self.report.drop(self.at(child), f"<{child.tag}>", "expected as an attribute")
                continue
            direct.append(child)
        for fname, items in grouped.items():
            sub_default = getattr(default, fname, None) if default is not None else None
            out[fname] = self.collection(node, items, fields[fname], sub_default, section)
        if direct:
            if len(lists) == 1 and lists[0].name not in out:
                out[lists[0].name] = self.plain_list(node, lists[0], direct)
                return out
            for child in direct:
                self.report.drop(self.at(child), f"<{child.tag}>", f"no wasp equivalent in {section or owner}")
        return out

    @staticmethod
    def is_item(child: Node, info) -> bool:
        item_tp = _unwrap(typing.get_args(_unwrap(info.type))[0])
        if not _is_struct(item_tp) or not child.attrs:
            return False
        names = {f.name for f in msgspec.structs.fields(item_tp)}
        return any(snake(a) in names for a in child.attrs)

    def plain_list(self, node: Node, info, children: list[Node] | None = None) -> list:
        item_tp = _unwrap(typing.get_args(_unwrap(info.type))[0])
        values = []
        for child in node.children if children is None else children:
            if child.tag in ("remove", "clear"):
                self.report.drop(self.at(child), f"<{child.tag}>", "this list has no remove/clear in wasp")
                continue
            if _is_struct(item_tp):
                values.append(self.element(child, item_tp))
            elif child.attrs:
                text = next(iter(child.attrs.values()))
                try:
                    values.append(self.coerce(text, item_tp, "", info.name, child))
                except Bad as exc:
                    self.report.drop(self.at(child), f"\"{text}\"", str(exc))
        return values

    def collection(self, node: Node, children: list[Node], info, default: Any, section: str):
        marker = _collection(info.type)
        item_tp = _unwrap(typing.get_args(_unwrap(info.type))[0])
        clear = False
        removes: list = []
        adds: list = []
        for child in children:
            if child.tag == "clear":
                clear, removes, adds = True, [], []
                continue
            if child.tag == "remove":
                key = self.key_of(child, marker, item_tp)
                if key is None:
                    self.report.drop(self.at(child), "<remove>", "names no key")
                    continue
                adds = [a for a in adds if self.key_value(a, marker) != fold(key)]
                removes.append(key)
                continue
            if _is_struct(item_tp):
                item = self.element(child, item_tp, None, section)
                missing = [f.name for f in msgspec.structs.fields(item_tp) if f.required and f.name not in item]
                if missing:
                    self.report.drop(self.at(child), f"<{child.tag}>",
                                     f"lacks {', '.join(missing)} (or its value could not be converted)")
                    continue
            else:
                if not child.attrs:
                    continue
                text = next(iter(child.attrs.values()))
                try:
                    item = self.coerce(text, item_tp, "", info.name, child)
                except Bad as exc:
                    self.report.drop(self.at(child), f"\"{text}\"", str(exc))
                    continue
            key = self.key_value(item, marker)
            if any(self.key_value(a, marker) == key for a in adds):
                self.report.drop(self.at(child), f"<{child.tag}>", "a second entry with the same key")
                continue
            adds.append(item)
        defaults = self.default_items(default, marker)
        default_keys = {self.key_value(d, marker): d for d in defaults}
        if self.server and default is not None:
            return self.server_list(clear, removes, adds, default_keys, marker, info.name, node)
        kept_removes = []
        for r in removes:
            k = fold(r) if not isinstance(r, list) else tuple(fold(x) for x in r)
            if k in default_keys or k in self.added.get(("", info.name), set()) or \
                    (self.scope and k in self.added.get((self.scope, info.name), set())):
                kept_removes.append(r)
            else:
                self.report.note(self.at(node), f"<remove> of {info.name} entry {r!r}",
                                 "nothing wasp inherits has that key (IIS's install had it), so nothing to remove")
        removes = kept_removes
        for a in adds:
            self.added.setdefault((self.scope, info.name), set()).add(self.key_value(a, marker))
        if not clear:
            # wasp's defaults may have an entry IIS's did not (a newer MIME type): remove it first
            # so that the add is not a duplicate.
            removed = {fold(r) if not isinstance(r, list) else tuple(fold(x) for x in r) for r in removes}
            for a in adds:
                k = self.key_value(a, marker)
                if k in default_keys and k not in removed:
                    removes.append(self.raw_key(a, marker))
                    self.report.note(self.at(node), f"{info.name} entry {self.raw_key(a, marker)!r}",
                                     "also in wasp's default list: removed before it is added")
        if not clear and not removes:
            return adds
        out: dict[str, Any] = {}
        if clear:
            out["clear"] = True
        if removes:
            out["remove"] = removes
        out["add"] = adds
        return out

    def server_list(self, clear, removes, adds, default_keys, marker, name, node):
        """The server level: IIS's install lists its whole collection. Write what differs from
        wasp's defaults (IIS's own); wasp's entries IIS's list lacks are kept (reported), unless
        the file clears the list."""
        if clear and not adds and not default_keys:
            return []
        if clear:
            if name == "segments" and "web.toml" not in {fold(a) for a in adds}:
                adds = [*adds, "web.toml"]
            return {"clear": True, "add": adds}
        if not marker.merge_append and adds:
            # An ordered list (default documents): IIS's order is the one tried. Written whole
            # unless it is wasp's default list as it stands.
            if [self.key_value(a, marker) for a in adds] == list(default_keys):
                return []
            return {"clear": True, "add": adds}
        wanted = {self.key_value(a, marker) for a in adds}
        out_removes = [r for r in removes if (fold(r) if not isinstance(r, list)
                                              else tuple(fold(x) for x in r)) in default_keys]
        new = []
        for a in adds:
            d = default_keys.get(self.key_value(a, marker))
            if d is None:
                new.append(a)
            elif not self.same(a, d):
                out_removes.append(self.raw_key(a, marker))
                new.append(a)
        if adds:
            kept = [self.raw_key(d, marker) for k, d in default_keys.items() if k not in wanted]
            if kept:
                shown = ", ".join(str(k) for k in kept[:6]) + (f" and {len(kept) - 6} more" if len(kept) > 6 else "")
                self.report.note(self.at(node), f"{name}: wasp default entries IIS's list lacks: {shown}",
                                 "kept (wasp's defaults are IIS 10's plus newer types and web.toml); remove "
                                 "them in wasp.toml if you relied on their absence")
        if not out_removes:
            return new
        return {"remove": out_removes, "add": new}

    @staticmethod
    def same(a, d) -> bool:
        if isinstance(a, dict) and isinstance(d, dict):
            return all(Walker.same(v, d.get(k)) for k, v in a.items())
        if isinstance(a, float) or isinstance(d, float):
            try:
                return float(a) == float(d)
            except (TypeError, ValueError):
                return False
        return fold(a) == fold(d) if isinstance(a, str) else a == d

    def default_items(self, default, marker) -> list:
        if default is None:
            return []
        return [msgspec.to_builtins(d) if isinstance(d, msgspec.Struct) else d for d in default]

    @staticmethod
    def key_value(item, marker: Collection):
        if marker.key is None:
            return fold(item)
        if isinstance(marker.key, tuple):
            return tuple(fold(item.get(k, _KEY_DEFAULT.get(k))) for k in marker.key)
        return fold(item.get(marker.key))

    @staticmethod
    def raw_key(item, marker: Collection):
        if marker.key is None:
            return item
        if isinstance(marker.key, tuple):
            return [item.get(k, _KEY_DEFAULT.get(k, "")) for k in marker.key]
        return item.get(marker.key)

    def key_of(self, child: Node, marker: Collection, item_tp):
        if marker.key is None:
            return next(iter(child.attrs.values()), None)
        fields = {f.name: f for f in msgspec.structs.fields(item_tp)} if _is_struct(item_tp) else {}
        attrs = {snake(k): v for k, v in child.attrs.items()}
        keys = marker.key if isinstance(marker.key, tuple) else (marker.key,)
        values = []
        for k in keys:
            text = attrs.get(k)
            if text is None:
                if k in _KEY_DEFAULT:
                    values.append(_KEY_DEFAULT[k])
                    continue
                if k in fields and not fields[k].required:
                    values.append(fields[k].default)
                    continue
                return None
            try:
                values.append(self.coerce(text, fields[k].type, item_tp.__name__, k, child) if k in fields else text)
            except Bad:
                values.append(text)
        return values if isinstance(marker.key, tuple) else values[0]


_KEY_DEFAULT = {"sub_status_code": -1, "subnet_mask": "255.255.255.255", "ip_address": "", "domain_name": "",
                "users": "", "roles": "", "verbs": "", "arguments": ""}


# ------------------------------------------------------------------- system.webServer sections

#: IIS element path below system.webServer -> (wasp section, the branch it lands with if it is
#: not registered in this wasp).
SECTION_PATHS: dict[str, tuple[str, str]] = {
    "defaultDocument": ("default_document", ""),
    "directoryBrowse": ("directory_browse", ""),
    "httpErrors": ("http_errors", ""),
    "httpRedirect": ("http_redirect", ""),
    "httpProtocol": ("http_protocol", ""),
    "staticContent": ("static_content", ""),
    "httpCompression": ("http_compression", ""),
    "urlCompression": ("url_compression", ""),
    "caching": ("caching", ""),
    "serverSideInclude": ("server_side_include", ""),
    "security/access": ("access", ""),
    "security/requestFiltering": ("request_filtering", ""),
    "security/authorization": ("authorization", ""),
    "security/ipSecurity": ("ip_security", ""),
    "security/dynamicIpSecurity": ("dynamic_ip_security", ""),
    "security/authentication/anonymousAuthentication": ("anonymous_authentication", ""),
    "security/authentication/basicAuthentication": ("basic_authentication", ""),
    "security/authentication/digestAuthentication": ("digest_authentication", ""),
    "security/authentication/windowsAuthentication": ("windows_authentication", ""),
    "security/authentication/iisClientCertificateMappingAuthentication":
        ("client_certificate_mapping_authentication", ""),
    "rewrite": ("rewrite", ""),
    "handlers": ("handlers", ""),
    "modules": ("modules", ""),
    "proxy": ("proxy", "arr"),
    "fastCgi": ("fast_cgi", "fcgi"),
    "cgi": ("cgi", "fcgi"),
    "security/isapiCgiRestriction": ("cgi_restriction", "fcgi"),
    "webdav/authoring": ("web_dav_authoring", "dav"),
    "webdav/authoringRules": ("web_dav_authoring_rules", "dav"),
}

#: system.webServer elements with no wasp section, and why.
UNSUPPORTED_SECTIONS = {
    "asp": "classic ASP (VBScript) does not run on Linux; the application needs a Python or proxy replacement",
    "isapiFilters": "ISAPI filters are Windows DLLs",
    "globalModules": "native IIS module DLLs; wasp's modules are listed in [modules]",
    "security/authentication/clientCertificateMappingAuthentication":
        "Active Directory certificate mapping; use client_certificate_mapping_authentication (IIS's one-to-one/many-to-one)",
    "tracing": "Failed Request Tracing (FREB) rules are not converted by this importer",
    "httpTracing": "ETW tracing has no Linux equivalent",
    "httpLogging": "per-URL logging switches are not converted; the site's log is [sites.log]",
    "odbcLogging": "ODBC logging has no wasp equivalent",
    "validation": "validateIntegratedModeConfiguration concerns ASP.NET's Classic pipeline",
    "management": "IIS Manager's remote administration; wasp has its admin API and CLI",
    "webSocket": "WebSocket is always on for ASGI apps in wasp",
    "applicationInitialization": "mapped to the application's initialization_pages where it names pages",
    "serverRuntime": "mapped to [cache] where it has an equivalent",
    "aspNetCore": "ASP.NET Core Module: the application needs a Python replacement (or proxy it with the rewrite section)",
    "httpPlatform": "HttpPlatformHandler runs a process behind IIS: run it as a wasp pool app or proxy it",
    "security/requestFiltering/filteringRules": "",
}


# ---------------------------------------------------------------------- modules and handlers

#: IIS native module name -> wasp module id.
NATIVE_MODULE_NAMES = {
    "HttpCacheModule": "http_cache", "ProtocolSupportModule": "protocol_support",
    "RequestFilteringModule": "request_filtering", "DynamicCompressionModule": "dynamic_compression",
    "StaticCompressionModule": "static_compression", "DefaultDocumentModule": "default_document",
    "DirectoryListingModule": "directory_listing", "HttpRedirectionModule": "http_redirect",
    "ServerSideIncludeModule": "server_side_include", "StaticFileModule": "static_file",
    "AnonymousAuthenticationModule": "anonymous_authentication", "UrlAuthorizationModule": "url_authorization",
    "BasicAuthenticationModule": "basic_authentication", "WindowsAuthenticationModule": "windows_authentication",
    "DigestAuthenticationModule": "digest_authentication",
    "IISCertificateMappingAuthenticationModule": "client_certificate_mapping_authentication",
    "IpRestrictionModule": "ip_restriction", "DynamicIpRestrictionModule": "dynamic_ip_restriction",
    "CustomErrorModule": "custom_error", "RewriteModule": "rewrite",
    "ApplicationRequestRouting": "proxy", "FastCgiModule": "fast_cgi", "CgiModule": "cgi",
    "WebDAVModule": "web_dav",
}

#: IIS modules wasp does in other ways (no module to list), and how.
BUILT_IN_MODULES = {
    "UriCacheModule": "wasp's config is decoded once per application; no URL cache to configure",
    "FileCacheModule": "the front caches file handles and bodies itself",
    "TokenCacheModule": "basic_authentication's user_token_ttl",
    "HttpLoggingModule": "the front writes the site's W3C log ([sites.log])",
    "CustomLoggingModule": "the front writes the site's W3C log ([sites.log])",
    "FailedRequestsTracingModule": "not converted (FREB)",
    "RequestMonitorModule": "wasp list requests shows requests in flight",
    "ConfigurationValidationModule": "wasp validate checks the config",
    "IsapiModule": "ISAPI extensions are Windows DLLs",
    "IsapiFilterModule": "ISAPI filters are Windows DLLs",
    "CertificateMappingAuthenticationModule": "Active Directory certificate mapping",
    "ManagedEngine": ".NET managed modules do not run on Linux",
    "ManagedEngine64": ".NET managed modules do not run on Linux",
    "ManagedEngineV4.0_32bit": ".NET managed modules do not run on Linux",
    "ManagedEngineV4.0_64bit": ".NET managed modules do not run on Linux",
    "WebSocketModule": "WebSocket is built into wasp's ASGI hosting",
    "ApplicationInitializationModule": "the application's initialization_pages",
    "AspNetCoreModule": "ASP.NET Core does not run in wasp",
    "AspNetCoreModuleV2": "ASP.NET Core does not run in wasp",
    "httpPlatformHandler": "run the process as a wasp pool app, or proxy it",
    "TracingModule": "ETW tracing has no Linux equivalent",
}

#: Handler modules that are wasp's default StaticFile / SSI mappings (nothing to write).
_DEFAULT_HANDLER_MODULES = {"staticfilemodule", "defaultdocumentmodule", "directorylistingmodule",
                            "serversideincludemodule"}

ASPNET_EXTENSIONS = {".aspx", ".ascx", ".asmx", ".ashx", ".axd", ".svc", ".cshtml", ".vbhtml",
                     ".asp", ".asa", ".master", ".soap", ".rem", ".xamlx", ".xoml", ".rules"}


def _wsgi_handler_to_app(text: str) -> str | None:
    """wfastcgi's WSGI_HANDLER ("pkg.module.app" or "pkg.module.make_app()") -> "pkg.module:app"."""
    text = text.strip()
    call = text.endswith("()")
    core = text[:-2] if call else text
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+", core):
        return None
    module, _, attr = core.rpartition(".")
    return f"{module}:{attr}{'()' if call else ''}"


# ------------------------------------------------------------------------------- the result

@dataclass
class Result:
    config: dict
    web_tomls: dict[str, dict]  # Linux folder -> web.toml tables
    report: Report
    physical_paths: list[tuple[str, str]] = dc_field(default_factory=list)  # (Linux, Windows)
    certificates: list[dict] = dc_field(default_factory=list)


class Importer:
    """One import run: applicationHost.config plus the web.config files by Linux folder."""

    def __init__(self, paths: Paths, apphost_name: str = "applicationHost.config",
                 file_extensions: dict[str, set[str]] | None = None):
        self.paths = paths
        self.report = Report()
        self.name = apphost_name
        self.walker = Walker(self.report, paths, apphost_name)
        self.file_extensions = file_extensions or {}
        self.config: dict[str, Any] = {}
        self.sections_server: dict[str, Any] = {}
        self.locations: list[dict] = []
        self.web_tomls: dict[str, dict] = {}
        self.physical: list[tuple[str, str]] = []
        self.certs: list[dict] = []
        self.pending_init: dict = {}   # (site id, app path) or ("location", path) -> pages
        self.site_names: dict = {}     # site name lower -> (id, applications)
        self.app_nodes: dict = {}      # (site id, app path) -> application table
        self.app_env: dict = {}        # pool name -> environment variables from appSettings
        self.site_url_segments: dict = {}
        self.default_pool = "DefaultAppPool"
        self.sub_dir_config_default = "true"  # virtualDirectoryDefaults allowSubDirConfig
        self.web_configs: dict = {}

    def at(self, node: Node, file: str | None = None) -> str:
        return f"{file or self.name}:{node.line} <{node.tag}>"

    # -- the whole run
    def run(self, apphost: Node, web_configs: dict[str, tuple[str, Node]] | None = None) -> Result:
        if apphost.tag != "configuration":
            self.report.drop(self.at(apphost), f"<{apphost.tag}>", "the document element is not <configuration>")
            return self.result()
        self.web_configs = web_configs or {}
        for child in apphost.children:
            if child.tag == "system.webServer":
                self.web_server(child, self.sections_server, "server", self.walker, server=True)
            elif child.tag == "location":
                self.location(child, self.walker)
        for child in apphost.children:
            if child.tag == "system.applicationHost":
                self.application_host(child)
            elif child.tag in ("system.webServer", "location"):
                continue
            elif child.tag == "configSections":
                self.config_sections(child)
            elif child.tag == "configProtectedData":
                self.report.drop(self.at(child), "<configProtectedData>",
                                 "Windows DPAPI/RSA providers for encrypted attributes; encrypted values cannot be read")
            elif child.tag in ("system.web", "system.webExtensions", "system.serviceModel", "runtime",
                               "system.net", "system.data", "connectionStrings", "appSettings",
                               "system.codedom", "system.diagnostics", "startup"):
                self.report.drop(self.at(child), f"<{child.tag}>", "ASP.NET / .NET configuration has no Linux meaning")
            elif child.tag == "system.ftpServer":
                self.report.drop(self.at(child), "<system.ftpServer>", "wasp serves no FTP")
            elif child.tag == "webFarms":
                self.web_farms(child)
            elif child.tag == "configurationRedirection":
                self.report.action(self.at(child), "configurationRedirection (shared configuration)",
                                   f"this is a redirection.config: import the shared applicationHost.config "
                                   f"from \"{child.attrs.get('path', '')}\" instead (its password attribute "
                                   "is not carried over)")
            else:
                self.report.drop(self.at(child), f"<{child.tag}>", "no wasp equivalent")
        for folder, (file, node) in sorted(self.web_configs.items()):
            self.web_config(folder, file, node)
        self.finish()
        return self.result()

    def result(self) -> Result:
        return Result(self.config, self.web_tomls, self.report, self.physical, self.certs)

    def config_sections(self, node: Node) -> None:
        unlocked = []

        def walk(n: Node, prefix: str):
            for c in n.children:
                name = c.attrs.get("name", "")
                if c.tag == "sectionGroup":
                    walk(c, f"{prefix}{name}/")
                elif c.tag == "section" and c.attrs.get("overrideModeDefault") == "Allow":
                    path = f"{prefix}{name}"
                    if path.startswith("system.webServer/"):
                        target = SECTION_PATHS.get(path[len("system.webServer/"):])
                        info = sections.info(target[0]) if target else None
                        if info is not None and info.override_mode_default == "Deny":
                            unlocked.append(target[0])
        walk(node, "")
        if unlocked:
            self.report.note(self.at(node), ", ".join(unlocked),
                             "unlocked in IIS's configSections; wasp keeps them locked for web.toml, so "
                             "web.config settings of these sections were written to wasp.toml [[locations]]")

    # -- system.webServer
    def web_server(self, node: Node, into: dict, level: str, walker: Walker, server: bool = False,
                   app_key: tuple | None = None) -> None:
        def visit(n: Node, prefix: str):
            for child in n.children:
                path = f"{prefix}{child.tag}"
                if path in SECTION_PATHS:
                    self.section(child, path, into, level, walker, server, app_key)
                elif path in ("security", "security/authentication", "webdav"):
                    visit(child, path + "/")
                elif path == "serverRuntime":
                    self.server_runtime(child, walker, server)
                elif path == "applicationInitialization":
                    self.app_init(child, walker, app_key)
                else:
                    reason = UNSUPPORTED_SECTIONS.get(path) or "no wasp equivalent"
                    walker.report.drop(walker.at(child), f"system.webServer/{path}", reason)
        visit(node, "")

    def section_missing(self, node: Node, name: str, branch: str, walker: Walker) -> None:
        walker.report.drop(walker.at(node), f"system.webServer section {name}",
                           (f"not in this wasp yet: it lands with the {branch} branch; re-run the import then" if branch else "not in this wasp yet"))

    def section(self, node: Node, path: str, into: dict, level: str, walker: Walker, server: bool,
                app_key) -> None:
        name, branch = SECTION_PATHS[path]
        info = sections.info(name)
        if info is None:
            self.section_missing(node, name, branch, walker)
            return
        if name == "modules":
            table = prune(self.modules(node, walker, server), info.cls() if server else None)
        elif name == "handlers":
            table = prune(self.handlers(node, walker, server, app_key), info.cls() if server else None)
        else:
            default = info.cls()
            node = self.prepare(node, name, walker, server)
            if node is None:
                return
            walker.server = server
            try:
                table = walker.element(node, info.cls, default, name)
            finally:
                walker.server = False
            self.after_section(name, table, walker, node, server)
            table = prune(table, default if server else None)
        if not table:
            return
        if name in into:
            _merge(into[name], table)
        else:
            into[name] = table

    def prepare(self, node: Node, name: str, walker: Walker, server: bool) -> Node | None:
        """IIS shapes the walker does not read directly."""
        if name == "rewrite":
            # IIS keeps <preConditions> inside <outboundRules>; wasp has them beside the rules.
            outbound = node.child("outboundRules")
            if outbound is not None:
                pre = outbound.child("preConditions")
                if pre is not None:
                    outbound = _copy(outbound, [c for c in outbound.children if c.tag != "preConditions"])
                    pre = _copy(Node("preconditions", pre.attrs, pre.line), pre.children)
                    node = _copy(node, [outbound if c.tag == "outboundRules" else c for c in node.children] + [pre])
            providers = node.child("providers")
            if providers is not None:
                walker.report.drop(walker.at(providers), "<providers>",
                                   "URL Rewrite providers are .NET assemblies")
                node = _copy(node, [c for c in node.children if c.tag != "providers"])
        if name == "http_errors":
            kept = []
            for c in node.children:
                if c.tag == "error" and _is_stock_error_page(c, self.paths):
                    continue
                kept.append(c)
            if len(kept) != len(node.children):
                walker.report.note(walker.at(node), "httpErrors <error> entries of %SystemDrive%\\inetpub\\custerr",
                                   "IIS's stock custerr pages: wasp's built-in pages have the same texts, "
                                   "so the entries were left out")
            node = _copy(node, kept)
        if name == "http_compression":
            kept = []
            for c in node.children:
                if c.tag == "scheme" and c.attrs.get("name", "").lower() not in ("gzip", "br", "zstd"):
                    walker.report.drop(walker.at(c), f"<scheme name=\"{c.attrs.get('name')}\">",
                                       "wasp offers gzip, br and zstd; deflate and others are not offered")
                    continue
                kept.append(c)
            node = _copy(node, kept)
        if name == "caching" and server:
            attrs = dict(node.attrs)
            cache = self.config.setdefault("cache", {})
            if "maxCacheSize" in attrs:
                try:
                    cache["max_cache_size"] = int(attrs.pop("maxCacheSize")) * 1024 * 1024
                except ValueError:
                    walker.report.drop(walker.at(node), "maxCacheSize", "not a number")
            if "maxResponseSize" in attrs:
                try:
                    cache["max_response_size"] = int(attrs["maxResponseSize"])
                except ValueError:
                    pass
            node = _copy(Node(node.tag, attrs, node.line), node.children)
        if name == "anonymous_authentication":
            attrs = dict(node.attrs)
            if attrs.get("userName", "").upper() in ("IUSR", ""):
                if "userName" in attrs:
                    walker.report.note(walker.at(node), f"userName=\"{attrs.pop('userName')}\"",
                                       "IIS's built-in anonymous account; on Linux the pool's user runs the code")
            attrs.pop("password", None)
            node = Node(node.tag, attrs, node.line)
        if name == "basic_authentication" and node.attrs.get("enabled", "").lower() == "true":
            walker.report.action(walker.at(node), "basicAuthentication enabled",
                                 "IIS checked Windows accounts: wasp checks the system's users through PAM "
                                 "(provider = \"pam\", /etc/pam.d/wasp) unless you set provider and user_file")
        if name == "windows_authentication" and node.attrs.get("enabled", "").lower() == "true":
            walker.report.action(walker.at(node), "windowsAuthentication enabled",
                                 "written as enabled = false: wasp's Negotiate is Kerberos and needs a keytab; set "
                                 "keytab and service_principal, then enable it (NTLM is not offered). Until then "
                                 "requests that IIS authenticated this way are refused (401) if anonymous is off")
            node = Node(node.tag, {**node.attrs, "enabled": "false"}, node.line)
            node.children = [c for c in node.children if c.tag != "providers"]
        return node

    def after_section(self, name: str, table: dict, walker: Walker, node: Node, server: bool) -> None:
        if name == "basic_authentication" and table.get("enabled"):
            table.setdefault("provider", "pam")

    def server_runtime(self, node: Node, walker: Walker, server: bool) -> None:
        cache = self.config.setdefault("cache", {})
        for attr, text in node.attrs.items():
            if attr in ("frequentHitThreshold",):
                try:
                    cache["frequent_hit_threshold"] = int(text)
                except ValueError:
                    walker.report.drop(walker.at(node), attr, "not a number")
            elif attr == "frequentHitTimePeriod":
                seconds = timespan(text)
                if seconds is not None:
                    cache["frequent_hit_time_period"] = Dur(seconds)
            elif attr == "maxRequestEntityAllowed":
                walker.report.note(walker.at(node), f"{attr}=\"{text}\"",
                                   "use request_filtering.request_limits.max_allowed_content_length")
            else:
                walker.report.drop(walker.at(node), f"serverRuntime {attr}=\"{text}\"", "no wasp equivalent")
        if not server:
            walker.report.note(walker.at(node), "serverRuntime", "server-wide in wasp ([cache])")

    def app_init(self, node: Node, walker: Walker, app_key) -> None:
        pages = [c.attrs.get("initializationPage", "") for c in node.children if c.tag == "add"]
        pages = [p for p in pages if p.startswith("/")]
        if app_key is None or not pages:
            walker.report.drop(walker.at(node), "applicationInitialization",
                               "wasp's initialization_pages are per application; none converted here")
            return
        self.pending_init.setdefault(app_key, []).extend(pages)
        for attr in node.attrs:
            walker.report.drop(walker.at(node), f"applicationInitialization {attr}", "no wasp equivalent")


    def modules(self, node: Node, walker: Walker, server: bool) -> dict | None:
        table: dict[str, Any] = {}
        removes, adds = [], []
        for attr, text in node.attrs.items():
            if attr == "runAllManagedModulesForAllRequests":
                table["run_all_managed_modules_for_all_requests"] = text.lower() == "true"
            else:
                walker.report.drop(walker.at(node), f"modules {attr}", "no wasp equivalent")
        listed = set()
        for child in node.children:
            name = child.attrs.get("name", "")
            wasp = NATIVE_MODULE_NAMES.get(name)
            if child.tag == "clear":
                walker.report.drop(walker.at(child), "<modules><clear/>",
                                   "not carried over: it would remove wasp's native modules; list removals by name")
                continue
            if child.tag == "remove":
                if wasp and wasp in _registered_modules():
                    removes.append(wasp)
                else:
                    walker.report.drop(walker.at(child), f"<remove name=\"{name}\">",
                                       BUILT_IN_MODULES.get(name, "not a wasp module"))
                continue
            if child.attrs.get("type"):
                walker.report.drop(walker.at(child), f"module {name} ({child.attrs['type']})",
                                   ".NET managed module (modules by type) do not run on Linux; write a Python "
                                   "module (docs/modules.md) if it did something you need")
                continue
            if wasp:
                listed.add(wasp)
                if not server and wasp in _registered_modules():
                    adds.append({"name": wasp})
                elif wasp not in _registered_modules():
                    walker.report.drop(walker.at(child), f"module {name}", f"{wasp} is not in this wasp yet")
                continue
            walker.report.drop(walker.at(child), f"module {name}",
                               BUILT_IN_MODULES.get(name, "a native IIS module wasp does not have"))
        if server and listed:
            missing = [m for m in _registered_modules() if m not in listed and m != "python_app"]
            if missing:
                walker.report.note(walker.at(node), "modules not installed in IIS: " + ", ".join(missing),
                                   "kept in wasp: each does nothing until its section enables it")
        if removes or adds:
            if removes:
                table["remove"] = removes
                table["add"] = adds
            else:
                table["entries"] = adds
        return table

    def handlers(self, node: Node, walker: Walker, server: bool, app_key) -> dict | None:
        info = sections.info("handlers")
        fields = {f.name for f in msgspec.structs.fields(_entry_type(info.cls, "entries"))}
        table: dict[str, Any] = {}
        if "accessPolicy" in node.attrs:
            try:
                table["access_policy"] = walker.coerce(node.attrs["accessPolicy"],
                                                       _field_type(info.cls, "access_policy"), "Handlers",
                                                       "access_policy", node)
            except Bad as exc:
                walker.report.drop(walker.at(node), "accessPolicy", str(exc))
        adds = []
        for child in node.children:
            name = child.attrs.get("name", "")
            if child.tag in ("clear", "remove"):
                walker.report.drop(walker.at(child), f"<{child.tag} {name}>".strip(),
                                   "IIS's handler list is not wasp's: the wasp defaults are kept")
                continue
            mods = [m.strip() for m in child.attrs.get("modules", "").split(",") if m.strip()]
            script = child.attrs.get("scriptProcessor", "")
            if "wfastcgi" in script.lower():
                walker.report.note(walker.at(child), f"handler {name} ({script})",
                                   "wfastcgi's WSGI app runs in the pool's workers (python_app): no handler needed")
                continue
            if child.attrs.get("type"):
                walker.report.drop(walker.at(child), f"handler {name} ({child.attrs['type']})",
                                   ".NET handler: no Linux meaning")
                continue
            low = {m.lower() for m in mods}
            if low and low <= _DEFAULT_HANDLER_MODULES:
                continue  # wasp's default StaticFile / SSINC-* entries
            wasp = [NATIVE_MODULE_NAMES.get(m) for m in mods]
            if low & {"fastcgimodule", "cgimodule"} and "script_processor" in fields and all(wasp):
                entry = walker.element(_drop_attrs(child, ("type",)), _entry_type(info.cls, "entries"), None, "handlers")
                entry["modules"] = ",".join(w for w in wasp if w)
                if "path" in entry and "name" in entry:
                    adds.append(entry)
                continue
            if low & {"isapimodule", "managedpipelinehandler"} or any(m.lower().startswith("managed") for m in mods):
                walker.report.drop(walker.at(child), f"handler {name} ({', '.join(mods)})",
                                   "ISAPI / ASP.NET handler: no Linux meaning")
                continue
            if low & {"fastcgimodule", "cgimodule"}:
                walker.report.drop(walker.at(child), f"handler {name} ({', '.join(mods)})",
                                   "FastCGI/CGI handlers land with the fcgi branch; re-run the import then")
                continue
            if low & {"webdavmodule"}:
                walker.report.drop(walker.at(child), f"handler {name}", "WebDAV lands with the dav branch")
                continue
            walker.report.drop(walker.at(child), f"handler {name} ({', '.join(mods) or 'no modules'})",
                               "no wasp handler module for it")
        if adds:
            table["entries"] = adds
        return table

    # -- locations
    def location(self, node: Node, walker: Walker, base: str = "") -> None:
        path = node.attrs.get("path", "").replace("\\", "/").strip("/")
        if base:
            path = f"{base}/{path}" if path and path != "." else base
        mode = node.attrs.get("overrideMode", "Inherit")
        if node.attrs.get("allowOverride", "").lower() == "false":
            mode = "Deny"
        elif node.attrs.get("allowOverride", "").lower() == "true":
            mode = "Allow"
        for attr in node.attrs:
            if attr == "inheritInChildApplications":
                walker.report.drop(walker.at(node), "inheritInChildApplications",
                                   "wasp's locations always apply to the paths below them")
        tables: dict[str, Any] = {}
        walker.scope = path.partition("/")[0].lower()
        for child in node.children:
            if child.tag == "system.webServer":
                self.web_server(child, tables, "location", walker, server=not path and not base,
                                app_key=("location", path))
        walker.scope = ""
        for child in node.children:
            if child.tag == "system.webServer":
                continue
            if child.tag in ("system.web", "system.webExtensions", "system.serviceModel", "connectionStrings",
                               "appSettings", "runtime"):
                walker.report.drop(walker.at(child), f"<{child.tag}> of location \"{path}\"",
                                   "ASP.NET / .NET configuration has no Linux meaning")
            else:
                walker.report.drop(walker.at(child), f"<{child.tag}> of location \"{path}\"", "no wasp equivalent")
        if not path or path == ".":
            for k, v in tables.items():
                if k in self.sections_server:
                    _merge(self.sections_server[k], v)
                else:
                    self.sections_server[k] = v
            if mode != "Inherit" and tables:
                walker.report.note(walker.at(node), f"overrideMode=\"{mode}\" for the whole server",
                                   "wasp's section locks are per section (override_mode_default); web.config "
                                   "settings of locked sections were written to wasp.toml instead")
            return
        if not tables:
            if mode != "Inherit":
                walker.report.drop(walker.at(node), f"location \"{path}\" overrideMode=\"{mode}\"",
                                   "holds no section wasp converts, so its lock has nothing to apply to")
            return
        rebase_rules(tables, path.partition("/")[2].strip("/"), self.report, walker.at(node))
        entry: dict[str, Any] = {COMMENT: [f"from {walker.file}:{node.line} <location path=\"{path}\">"],
                                 "path": path}
        if mode != "Inherit":
            entry["override_mode"] = mode
        entry.update(tables)
        self.locations.append(entry)

    # -- system.applicationHost
    def application_host(self, node: Node) -> None:
        for child in node.children:
            if child.tag == "applicationPools":
                self.pools(child)
        for child in node.children:
            if child.tag == "applicationPools":
                continue
            if child.tag == "sites":
                self.sites(child)
            elif child.tag == "webLimits":
                self.web_limits(child)
            elif child.tag == "log":
                self.central_log(child)
            elif child.tag in ("listenerAdapters", "customMetadata", "configHistory"):
                self.report.drop(self.at(child), f"<{child.tag}>",
                                 {"listenerAdapters": "WAS listener adapters (net.tcp, net.pipe, msmq) are Windows services",
                                  "customMetadata": "IIS 6 metabase compatibility data",
                                  "configHistory": "IIS's config history folder; keep wasp.toml in version control"}[child.tag])
            else:
                self.report.drop(self.at(child), f"system.applicationHost/{child.tag}", "no wasp equivalent")

    def web_limits(self, node: Node) -> None:
        limits = self.config.setdefault("limits", {})
        for attr, text in node.attrs.items():
            if attr in ("connectionTimeout", "headerWaitTimeout"):
                seconds = timespan(text)
                if seconds is not None:
                    limits[snake(attr)] = Dur(seconds)
            elif attr == "minBytesPerSecond":
                limits["min_bytes_per_second"] = int(text)
            elif attr == "maxGlobalBandwidth":
                value = int(text)
                limits["max_global_bandwidth"] = 0 if value >= 4294967295 else value
            else:
                self.report.drop(self.at(node), f"webLimits {attr}=\"{text}\"",
                                 "no wasp equivalent (dynamic idle thresholds are Windows memory management)")

    def central_log(self, node: Node) -> None:
        mode = node.attrs.get("centralLogFileMode", "Site")
        if mode != "Site":
            self.report.drop(self.at(node), f"centralLogFileMode=\"{mode}\"",
                             "a central log for all sites is not in this wasp yet (issue 12 item 3); each site "
                             "writes its own W3C log")
        for attr in node.attrs:
            if attr not in ("centralLogFileMode",):
                self.report.drop(self.at(node), f"log {attr}", "no wasp equivalent")
        for child in node.children:
            if child.tag in ("centralBinaryLogFile", "centralW3CLogFile") and \
                    child.attrs.get("enabled", "false").lower() == "true" and mode != "Site":
                self.report.drop(self.at(child), f"<{child.tag}>", "central logs are not in this wasp yet")

    # pools
    def pools(self, node: Node) -> None:
        pools = []
        for child in node.children:
            if child.tag == "applicationPoolDefaults":
                table = self.pool(child, defaults=True)
                if table:
                    self.config["pool_defaults"] = table
            elif child.tag == "add":
                table = self.pool(child)
                if table:
                    pools.append(table)
            else:
                self.report.drop(self.at(child), f"<{child.tag}>", "no wasp equivalent")
        self.config["pools"] = pools

    def pool(self, node: Node, defaults: bool = False) -> dict | None:
        where = self.at(node)
        pool: dict[str, Any] = {}
        name = node.attrs.get("name", "")
        if not defaults:
            if not name:
                self.report.drop(where, "<add> without a name", "a pool needs a name")
                return None
            pool[COMMENT] = [f"from {self.name}:{node.line} <applicationPools><add name=\"{name}\">"]
            pool["name"] = name
        for attr, text in node.attrs.items():
            if attr == "name":
                continue
            if attr == "queueLength":
                pool["queue_length"] = _int(text)
            elif attr == "autoStart":
                pool["auto_start"] = text.lower() == "true"
            elif attr == "startMode":
                pool["start_mode"] = "always_running" if text.lower() == "alwaysrunning" else "on_demand"
            elif attr == "enableConfigurationOverride":
                pool["enable_configuration_override"] = text.lower() == "true"
            elif attr == "managedRuntimeVersion":
                if text:
                    self.report.drop(where, f"managedRuntimeVersion=\"{text}\"",
                                     "the .NET CLR does not run in wasp; the pool runs Python")
            elif attr == "managedPipelineMode":
                if text.lower() == "classic":
                    self.report.drop(where, "managedPipelineMode=\"Classic\"",
                                     "wasp has only the integrated pipeline")
            else:
                self.report.drop(where, f"{attr}=\"{text}\"", {
                    "enable32BitAppOnWin64": "32-bit worker processes are a Windows-on-Windows setting",
                    "CLRConfigFile": ".NET CLR configuration", "managedRuntimeLoader": ".NET CLR loader",
                    "passAnonymousToken": "Windows impersonation tokens",
                }.get(attr, "no wasp equivalent"))
        for child in node.children:
            if child.tag == "processModel":
                self.process_model(child, pool)
            elif child.tag == "recycling":
                self.recycling(child, pool)
            elif child.tag == "failure":
                self.failure(child, pool)
            elif child.tag == "cpu":
                self.cpu(child, pool)
            elif child.tag == "environmentVariables":
                env = {}
                for add in child.children:
                    if add.tag == "add" and "name" in add.attrs:
                        value = add.attrs.get("value", "")
                        env[add.attrs["name"]] = self.paths.to_linux(value) if looks_like_windows_path(value) \
                            and self.paths.to_linux(value) else value
                    elif add.tag in ("remove", "clear"):
                        self.report.drop(self.at(add), f"environmentVariables <{add.tag}>",
                                         "pool_defaults environment variables merge key by key in wasp")
                if env:
                    pool["environment_variables"] = env
            else:
                self.report.drop(self.at(child), f"<{child.tag}>", "no wasp equivalent")
        return pool

    def process_model(self, node: Node, pool: dict) -> None:
        pm: dict[str, Any] = {}
        where = self.at(node)
        for attr, text in node.attrs.items():
            if attr in ("idleTimeout", "pingInterval", "pingResponseTime", "startupTimeLimit", "shutdownTimeLimit"):
                seconds = timespan(text)
                if seconds is None:
                    self.report.drop(where, f"{attr}=\"{text}\"", "not an IIS timespan")
                else:
                    pm[snake(attr)] = Dur(seconds)
            elif attr == "pingingEnabled":
                if text.lower() == "false":
                    pm["ping_interval"] = Dur(0)
            elif attr == "maxProcesses":
                n = _int(text)
                if n == 0:
                    self.report.note(where, "maxProcesses=\"0\"", "IIS's one per NUMA node: wasp runs 1")
                    n = 1
                pool["max_processes"] = n
            elif attr == "identityType":
                if text not in ("ApplicationPoolIdentity",):
                    self.report.action(where, f"identityType=\"{text}\"",
                                       "a Windows account: create a Linux user for the pool and set "
                                       "pools.identity.user (the manager must run as root to switch)")
            elif attr == "userName":
                self.report.action(where, f"userName=\"{text}\"",
                                   "Windows account of the pool: set pools.identity.user to a Linux user")
            elif attr == "password":
                self.report.drop(where, "password=(hidden)", REASONS["password"])
            elif attr == "idleTimeoutAction" and text == "Suspend":
                self.report.drop(where, "idleTimeoutAction=\"Suspend\"",
                                 "wasp stops idle workers (Terminate); suspending to disk is Windows-only")
            elif attr == "idleTimeoutAction":
                continue
            else:
                self.report.drop(where, f"processModel {attr}=\"{text}\"", {
                    "loadUserProfile": "Windows user profiles", "setProfileEnvironment": "Windows user profiles",
                    "logonType": "Windows logon types", "manualGroupMembership": "Windows group tokens",
                    "logEventOnProcessModel": "wasp logs every worker event (wasp events)",
                    "requestQueueDelegatorIdentity": "Windows HTTP.sys delegation",
                }.get(attr, "no wasp equivalent"))
        if pm:
            pool["process_model"] = pm

    def recycling(self, node: Node, pool: dict) -> None:
        rec: dict[str, Any] = {}
        where = self.at(node)
        for attr, text in node.attrs.items():
            if attr in ("disallowOverlappingRotation", "disallowRotationOnConfigChange"):
                rec[snake(attr)] = text.lower() == "true"
            else:
                self.report.drop(where, f"recycling {attr}=\"{text}\"",
                                 "wasp records every recycle in its event log (wasp events)"
                                 if attr == "logEventOnRecycle" else "no wasp equivalent")
        restart = node.child("periodicRestart")
        if restart is not None:
            for attr, text in restart.attrs.items():
                if attr == "time":
                    seconds = timespan(text)
                    if seconds is not None:
                        rec["time"] = Dur(seconds)
                elif attr == "requests":
                    rec["requests"] = _int(text)
                elif attr in ("memory", "privateMemory"):
                    rec[snake(attr)] = _int(text) * 1024  # IIS: KB
                else:
                    self.report.drop(self.at(restart), f"periodicRestart {attr}", "no wasp equivalent")
            schedule = restart.child("schedule")
            if schedule is not None:
                times = []
                for add in schedule.children:
                    if add.tag == "add" and add.attrs.get("value"):
                        seconds = timespan(add.attrs["value"])
                        if seconds is not None:
                            s = int(seconds) % 86400
                            times.append(f"{s // 3600:02d}:{s % 3600 // 60:02d}" + (f":{s % 60:02d}" if s % 60 else ""))
                if times:
                    rec["schedule"] = times
        for child in node.children:
            if child.tag != "periodicRestart":
                self.report.drop(self.at(child), f"recycling <{child.tag}>", "no wasp equivalent")
        if rec:
            pool["recycling"] = rec

    def failure(self, node: Node, pool: dict) -> None:
        f: dict[str, Any] = {}
        where = self.at(node)
        attrs = dict(node.attrs)
        for attr, text in attrs.items():
            if attr in ("rapidFailProtection", "orphanWorkerProcess"):
                f[snake(attr)] = text.lower() == "true"
            elif attr == "rapidFailProtectionInterval":
                seconds = timespan(text)
                if seconds is not None:
                    f["rapid_fail_protection_interval"] = Dur(seconds)
            elif attr == "rapidFailProtectionMaxCrashes":
                f["rapid_fail_protection_max_crashes"] = _int(text)
            elif attr == "loadBalancerCapabilities":
                f["load_balancer_capabilities"] = "tcp_level" if text.lower() == "tcplevel" else "http_level"
            elif attr in ("orphanActionExe", "autoShutdownExe"):
                if text:
                    params = attrs.get(attr.replace("Exe", "Params"), "")
                    self.report.action(where, f"{attr}=\"{text}\"",
                                       "a Windows program: point it at a Linux command (kept as written, "
                                       "with its parameters)")
                    f[snake(attr)] = (text + " " + params).strip()
            elif attr in ("orphanActionParams", "autoShutdownParams"):
                continue
            else:
                self.report.drop(where, f"failure {attr}=\"{text}\"", {
                    "rapidFailProtectionMaxCrashes": "",
                }.get(attr) or "no wasp equivalent (HTTP.sys response to a stopped pool is always 503)")
        if f:
            pool["failure"] = f

    def cpu(self, node: Node, pool: dict) -> None:
        c: dict[str, Any] = {}
        where = self.at(node)
        for attr, text in node.attrs.items():
            if attr == "limit":
                c["limit"] = _int(text)
            elif attr == "action":
                try:
                    c["action"] = _literal_match(text, ("no_action", "kill_w3wp", "throttle", "throttle_under_load"))
                except Bad as exc:
                    self.report.drop(where, f"cpu action=\"{text}\"", str(exc))
            elif attr == "resetInterval":
                seconds = timespan(text)
                if seconds is not None:
                    c["reset_interval"] = Dur(seconds)
            else:
                self.report.drop(where, f"cpu {attr}=\"{text}\"",
                                 "processor affinity masks are not carried over (use systemd's CPUAffinity)"
                                 if attr.startswith("smp") else "no wasp equivalent")
        if c:
            pool["cpu"] = c

    # sites
    def sites(self, node: Node) -> None:
        site_defaults = node.child("siteDefaults")
        app_defaults = node.child("applicationDefaults")
        vdir_defaults = node.child("virtualDirectoryDefaults")
        self.default_pool = (app_defaults.attrs.get("applicationPool") if app_defaults is not None else None) \
            or "DefaultAppPool"
        if app_defaults is not None:
            for attr, text in app_defaults.attrs.items():
                if attr not in ("applicationPool", "enabledProtocols"):
                    self.report.drop(self.at(app_defaults), f"applicationDefaults {attr}=\"{text}\"",
                                     "no wasp equivalent")
        self.sub_dir_config_default = "true"
        if vdir_defaults is not None:
            for attr, text in vdir_defaults.attrs.items():
                if attr == "allowSubDirConfig":
                    self.sub_dir_config_default = text.lower()
                    continue
                self.report.drop(self.at(vdir_defaults), f"virtualDirectoryDefaults {attr}",
                                 "Windows pass-through credentials; wasp reads files as the pool's user"
                                 if attr in ("userName", "password", "logonMethod") else "no wasp equivalent")
        if site_defaults is not None:
            self.site_defaults_log(site_defaults)
        sites = []
        for child in node.children:
            if child.tag == "site":
                site = self.site(child, site_defaults)
                if site:
                    sites.append(site)
            elif child.tag not in ("siteDefaults", "applicationDefaults", "virtualDirectoryDefaults"):
                self.report.drop(self.at(child), f"<{child.tag}>", "no wasp equivalent")
        self.config["sites"] = sites

    def site_defaults_log(self, node: Node) -> None:
        log = node.child("logFile")
        if log is not None and log.attrs.get("directory"):
            path = self.paths.to_linux(log.attrs["directory"], self.report, self.at(log))
            if path:
                self.config.setdefault("server", {})["log_dir"] = path
                self.report.note(self.at(log), f"logFile directory=\"{log.attrs['directory']}\"",
                                 f"server.log_dir = {path}: wasp writes W3SVC<id>/ below it as IIS does")
        for attr, text in node.attrs.items():
            self.report.drop(self.at(node), f"siteDefaults {attr}=\"{text}\"", "no wasp equivalent")
        trace = node.child("traceFailedRequestsLogging")
        if trace is not None:
            self.report.drop(self.at(trace), "traceFailedRequestsLogging", "Failed Request Tracing is not converted")

    def site(self, node: Node, defaults: Node | None) -> dict | None:
        where = self.at(node)
        name = node.attrs.get("name", "")
        try:
            sid = int(node.attrs.get("id", ""))
        except ValueError:
            self.report.drop(where, f"site \"{name}\"", "no numeric id")
            return None
        site: dict[str, Any] = {COMMENT: [f"from {self.name}:{node.line} <site name=\"{name}\" id=\"{sid}\">"],
                                "name": name, "id": sid}
        for attr, text in node.attrs.items():
            if attr in ("name", "id"):
                continue
            if attr == "serverAutoStart":
                site["server_auto_start"] = text.lower() == "true"
            else:
                self.report.drop(where, f"site {attr}=\"{text}\"", "no wasp equivalent")
        bindings = self.bindings(node.child("bindings"), name, sid)
        if not bindings:
            self.report.drop(where, f"site \"{name}\"", "no http or https binding, so nothing wasp can serve")
            return None
        site["bindings"] = bindings
        log = self.site_log(node.child("logFile"), defaults.child("logFile") if defaults is not None else None)
        if log:
            site["log"] = log
        limits = self.site_limits(node.child("limits"), defaults.child("limits") if defaults is not None else None,
                                  name)
        if limits:
            site["limits"] = limits
        for child in node.children:
            if child.tag in ("bindings", "logFile", "limits", "application"):
                continue
            if child.tag == "traceFailedRequestsLogging":
                self.report.drop(self.at(child), "traceFailedRequestsLogging", "Failed Request Tracing is not converted")
            elif child.tag == "hsts":
                self.hsts(child, site)
            elif child.tag == "ftpServer":
                self.report.drop(self.at(child), "ftpServer", "wasp serves no FTP")
            else:
                self.report.drop(self.at(child), f"site <{child.tag}>", "no wasp equivalent")
        apps = []
        for child in node.all("application"):
            apps.extend(self.application(child, name, sid))
        if not any(a["path"] == "/" for a in apps):
            self.report.drop(where, f"site \"{name}\"", "no root application \"/\" wasp could serve")
            return None
        site["applications"] = apps
        self.site_names[name.lower()] = (sid, apps)
        return site


    def bindings(self, node: Node | None, site: str, sid: int) -> list:
        out: list = []
        if node is None:
            return out
        for b in node.children:
            if b.tag != "binding":
                if b.tag in ("clear", "remove"):
                    self.report.drop(self.at(b), f"<{b.tag}>", "bindings are listed whole in wasp")
                continue
            proto = b.attrs.get("protocol", "").lower()
            info = b.attrs.get("bindingInformation", "")
            where = self.at(b)
            if proto not in ("http", "https"):
                self.report.drop(where, f"{proto} binding \"{info}\"",
                                 "only http and https are served (net.tcp, net.pipe, net.msmq, ftp are Windows/WCF)")
                continue
            ip, port, host = _split_binding(info)
            if port is None:
                self.report.drop(where, f"binding \"{info}\"", "not IP:PORT:HOST")
                continue
            if host.startswith("*."):
                self.report.note(where, f"binding host \"{host}\"",
                                 "wasp has no wildcard host names: written with an empty host (any host on "
                                 f"{ip}:{port}); list the hosts instead if another site shares the port")
                host = ""
            text = f"{proto}/{ip}:{port}:{host}"
            flags = _int(b.attrs.get("sslFlags", "0"), 0)
            if proto == "http":
                if flags & 4:
                    out.append({"binding": text, "ssl_flags": ["disable_http2"]})
                    self.report.note(where, f"binding {text}", "sslFlags 4 (DisableHTTP2) on http: written as a table")
                else:
                    out.append(text)
                continue
            label = (host or (ip if ip != "*" else "default")).replace("*", "wildcard").replace(":", "_")
            label = re.sub(r"[^A-Za-z0-9._-]", "_", label) + f"_{port}"
            entry: dict[str, Any] = {"binding": text, "certificate": f"certs/{label}.pem",
                                     "key": f"certs/{label}.key"}
            wasp_flags = []
            if flags & 1:
                wasp_flags.append("sni")
            if flags & 4:
                wasp_flags.append("disable_http2")
            if flags & ~5:
                self.report.drop(where, f"sslFlags=\"{flags}\"",
                                 "only SNI (1) and DisableHTTP2 (4) have wasp meaning (2 = central certificate "
                                 "store, 8-32 = legacy TLS / OCSP / QUIC switches)")
            if wasp_flags:
                entry["ssl_flags"] = wasp_flags
            out.append(entry)
            thumb = b.attrs.get("certificateHash", "")
            store = b.attrs.get("certificateStoreName", "My")
            self.certs.append({"binding": text, "certificate": entry["certificate"], "key": entry["key"],
                               "thumbprint": thumb, "store": store, "site": site})
            self.report.action(where, f"https binding {text}",
                               f"export its certificate{' (thumbprint ' + thumb + ')' if thumb else ''} from the "
                               f"Windows store \"{store}\" as PEM: on Windows, Export-PfxCertificate -Cert "
                               f"Cert:\\LocalMachine\\{store}\\{thumb or '<thumbprint>'} -FilePath site.pfx; then "
                               f"openssl pkcs12 -in site.pfx -nokeys -out {entry['certificate']} and "
                               f"openssl pkcs12 -in site.pfx -nocerts -nodes -out {entry['key']} "
                               "(paths relative to wasp.toml)")
        return out

    def hsts(self, node: Node, site: dict) -> None:
        """IIS 10 (1709) site HSTS -> a Strict-Transport-Security custom header of the site."""
        attrs = node.attrs
        if attrs.get("enabled", "false").lower() != "true":
            return
        try:
            max_age = int(attrs.get("max-age", "0"))
        except ValueError:
            self.report.drop(self.at(node), f"hsts max-age=\"{attrs.get('max-age')}\"", "not a number")
            return
        value = f"max-age={max_age}"
        if attrs.get("includeSubDomains", "false").lower() == "true":
            value += "; includeSubDomains"
        if attrs.get("preload", "false").lower() == "true":
            value += "; preload"
        site.setdefault("http_protocol", {}).setdefault("custom_headers", []).append(
            {"name": "Strict-Transport-Security", "value": value})
        self.report.note(self.at(node), "hsts", f"Strict-Transport-Security: {value} as a custom header of the "
                         "site (IIS sends it on https responses only; browsers ignore it over http)")
        if attrs.get("redirectHttpToHttps", "false").lower() == "true":
            self.report.action(self.at(node), "hsts redirectHttpToHttps",
                               "add a global rewrite rule: {HTTPS} ^OFF$ -> Redirect https://{HTTP_HOST}/{R:1}")

    def site_log(self, node: Node | None, default: Node | None) -> dict:
        attrs = dict(default.attrs) if default is not None else {}
        attrs.pop("directory", None)
        children = list(default.children) if default is not None else []
        if node is not None:
            attrs.update(node.attrs)
            if node.children:
                children = list(node.children)
        where = self.at(node) if node is not None else (self.at(default) if default is not None else self.name)
        log: dict[str, Any] = {}
        for attr, text in attrs.items():
            if attr == "enabled":
                log["enabled"] = text.lower() == "true"
            elif attr == "period":
                low = text.lower()
                if low in ("daily", "hourly"):
                    log["period"] = low
                else:
                    self.report.drop(where, f"logFile period=\"{text}\"",
                                     "wasp rolls over daily or hourly only (weekly, monthly and MaxSize come "
                                     "with issue 12 item 3); written as daily")
                    log["period"] = "daily"
            elif attr == "logExtFileFlags":
                flags = [f.strip() for f in text.split(",") if f.strip()]
                allowed = typing.get_args(model.LogFlag)
                kept = [f for f in flags if f in allowed]
                for f in flags:
                    if f not in allowed:
                        self.report.drop(where, f"logExtFileFlags {f}", "not a field wasp writes")
                if tuple(kept) != model.DEFAULT_LOG_FLAGS:
                    log["log_ext_file_flags"] = kept
            elif attr == "logFormat":
                if text != "W3C":
                    self.report.drop(where, f"logFormat=\"{text}\"",
                                     "wasp writes W3C extended logs (IIS, NCSA and custom formats come with issue 12 item 3)")
            elif attr == "directory":
                path = self.paths.to_linux(text, self.report, where)
                if path and path != self.config.get("server", {}).get("log_dir"):
                    self.report.drop(where, f"logFile directory=\"{text}\"",
                                     "a per-site log folder: wasp has one server.log_dir with W3SVC<id>/ below it")
            elif attr in ("localTimeRollover", "truncateSize", "logTargetW3C", "customLogPluginClsid",
                          "flushByEntryCountW3CLog", "maxLogLineLength", "logSiteId"):
                self.report.drop(where, f"logFile {attr}=\"{text}\"",
                                 "not in this wasp yet (issue 12 item 3: logs that manage themselves)")
            else:
                self.report.drop(where, f"logFile {attr}=\"{text}\"", "no wasp equivalent")
        for child in children:
            if child.tag == "customFields":
                fields = []
                for add in child.children:
                    if add.tag != "add":
                        continue
                    kind = {"requestheader": "request_header", "responseheader": "response_header",
                            "servervariable": "server_variable"}.get(add.attrs.get("sourceType", "").lower())
                    if kind and add.attrs.get("logFieldName") and add.attrs.get("sourceName"):
                        fields.append({"log_field_name": add.attrs["logFieldName"],
                                       "source_name": add.attrs["sourceName"], "source_type": kind})
                    else:
                        self.report.drop(self.at(add), "custom log field", "needs logFieldName, sourceName, sourceType")
                for attr in child.attrs:
                    self.report.drop(self.at(child), f"customFields {attr}", "wasp's limits are fixed (IIS's defaults)")
                if fields:
                    log["custom_fields"] = fields
            else:
                self.report.drop(self.at(child), f"logFile <{child.tag}>", "no wasp equivalent")
        return log

    def site_limits(self, node: Node | None, default: Node | None, site: str) -> dict:
        attrs = dict(default.attrs) if default is not None else {}
        if node is not None:
            attrs.update(node.attrs)
        where = self.at(node) if node is not None else self.name
        limits: dict[str, Any] = {}
        for attr, text in attrs.items():
            if attr in ("maxConnections", "maxBandwidth"):
                value = _int(text, 0)
                if 0 < value < 4294967295:
                    limits[snake(attr)] = value
            elif attr == "connectionTimeout":
                seconds = timespan(text)
                if seconds is not None and seconds != 120:
                    limits["connection_timeout"] = Dur(seconds)
            elif attr == "maxUrlSegments":
                value = _int(text, 32)
                if value != 32:
                    self.site_url_segments[site.lower()] = value
            else:
                self.report.drop(where, f"limits {attr}", "no wasp equivalent")
        return limits


    # applications
    def application(self, node: Node, site: str, sid: int) -> list[dict]:
        where = self.at(node)
        path = node.attrs.get("path", "/").replace("\\", "/")
        path = "/" + path.strip("/") if path.strip("/") else "/"
        app: dict[str, Any] = {COMMENT: [f"from {self.name}:{node.line} <application path=\"{path}\">"],
                               "path": path, "pool": node.attrs.get("applicationPool") or self.default_pool}
        for attr, text in node.attrs.items():
            if attr in ("path", "applicationPool"):
                continue
            if attr == "enabledProtocols":
                other = [p for p in (x.strip().lower() for x in text.split(",")) if p and p not in ("http", "https")]
                if other:
                    self.report.drop(where, f"enabledProtocols {', '.join(other)}", "only http and https are served")
            elif attr == "preloadEnabled":
                if text.lower() == "true":
                    self.report.note(where, "preloadEnabled=\"true\"",
                                     "wasp starts a pool's worker at start-up with its start_mode = \"always_running\"")
            else:
                self.report.drop(where, f"application {attr}=\"{text}\"", "no wasp equivalent")
        extra: list[dict] = []
        for vdir in node.children:
            if vdir.tag != "virtualDirectory":
                self.report.drop(self.at(vdir), f"application <{vdir.tag}>", "no wasp equivalent")
                continue
            vpath = vdir.attrs.get("path", "/").replace("\\", "/")
            phys_win = vdir.attrs.get("physicalPath", "")
            phys = self.paths.to_linux(phys_win, self.report, self.at(vdir)) if phys_win else None
            if phys_win and phys is None:
                self.report.drop(self.at(vdir), f"physicalPath=\"{phys_win}\"",
                                 "not an absolute Windows path (drive or UNC) wasp can map")
            if phys:
                self.physical.append((phys, phys_win))
                if phys_win.startswith("\\\\"):
                    self.report.action(self.at(vdir), f"physicalPath=\"{phys_win}\"",
                                       f"a network share: mount it at {phys}")
            for attr in vdir.attrs:
                if attr in ("userName", "password", "logonMethod"):
                    self.report.drop(self.at(vdir), f"virtualDirectory {attr}", REASONS.get(attr) or
                                     "Windows pass-through credentials; wasp reads files as the pool's user")
                elif attr == "allowSubDirConfig":
                    pass
                elif attr not in ("path", "physicalPath"):
                    self.report.drop(self.at(vdir), f"virtualDirectory {attr}", "no wasp equivalent")
            if vpath.strip("/") == "":
                if phys:
                    app["physical_path"] = phys
                if vdir.attrs.get("allowSubDirConfig", self.sub_dir_config_default).lower() == "false":
                    app["allow_sub_dir_config"] = False
                continue
            sub = "/" + "/".join(p for p in (path.strip("/"), vpath.strip("/")) if p)
            if phys:
                extra.append({COMMENT: [f"from {self.name}:{vdir.line} <virtualDirectory path=\"{vpath}\"> "
                                        f"of application \"{path}\""], "path": sub, "pool": app["pool"],
                              "physical_path": phys})
                self.report.note(self.at(vdir), f"virtual directory {site}{sub}",
                                 "an application of its own in wasp (same pool), serving its folder")
        self.app_nodes[(sid, path)] = app
        for e in extra:
            self.app_nodes[(sid, e["path"])] = e
        return [app, *extra]


    # web.config
    def web_config(self, folder: str, file: str, node: Node) -> None:
        walker = Walker(self.report, self.paths, file)
        walker.added = self.walker.added
        owner = self.owner_of(folder)
        if owner is None:
            self.report.drop(f"{file}", "web.config", "not inside the physical path of any application; skipped")
            return
        (sid, site_name, app), rel = owner
        walker.scope = site_name.lower()
        url = (app["path"].rstrip("/") + ("/" + rel if rel else "")) or "/"
        if node.tag != "configuration":
            self.report.drop(walker.at(node), f"<{node.tag}>", "not a web.config (<configuration>)")
            return
        tables: dict[str, Any] = {}
        for child in node.children:
            if child.tag == "system.webServer":
                self.web_server(child, tables, "web", walker, app_key=(sid, app["path"]) if not rel else None)
            elif child.tag == "appSettings":
                self.app_settings(child, walker, app, rel, sid)
            elif child.tag == "location":
                base = f"{site_name}{url.rstrip('/')}" if url != "/" else site_name
                self.location(child, walker, base=base)
            elif child.tag == "system.web":
                self.report.drop(walker.at(child), "<system.web>",
                                 "ASP.NET settings (compilation, authentication, sessionState...) have no Linux meaning")
            elif child.tag in ("configSections", "connectionStrings", "system.webExtensions", "system.serviceModel",
                               "runtime", "system.codedom", "system.net", "system.diagnostics", "startup",
                               "entityFramework", "system.data"):
                self.report.drop(walker.at(child), f"<{child.tag}>", ".NET configuration has no Linux meaning")
            else:
                self.report.drop(walker.at(child), f"<{child.tag}>", "no wasp equivalent")
        rebase_rules(tables, url.strip("/"), self.report, file)
        locked = {k: v for k, v in tables.items() if _not_for_web_toml(k, v)}
        for k in locked:
            tables.pop(k)
        if locked:
            path = f"{site_name}{url}" if url != "/" else site_name
            self.locations.append({COMMENT: [f"from {file}: sections wasp locks for web.toml"], "path": path.rstrip("/"),
                                   **locked})
            self.report.note(file, ", ".join(sorted(locked)),
                             f"locked in wasp for web.toml (IIS overrideModeDefault Deny, or keys only "
                             f"wasp.toml may set): written to wasp.toml "
                             f"[[locations]] path = \"{path.rstrip('/')}\"")
        if tables:
            self.web_tomls[folder] = {COMMENT: [f"from {file}"], **tables}

    def owner_of(self, folder: str):
        best = None
        for sid_name, (sid, apps) in self.site_names.items():
            for app in apps:
                phys = app.get("physical_path")
                if not phys:
                    continue
                if folder == phys or folder.startswith(phys.rstrip("/") + "/"):
                    if best is None or len(phys) > len(best[0][2]["physical_path"]):
                        rel = folder[len(phys):].strip("/")
                        site_name = next(s["name"] for s in self.config["sites"] if s["id"] == sid)
                        best = ((sid, site_name, app), rel)
        return best

    def app_settings(self, node: Node, walker: Walker, app: dict, rel: str, sid: int) -> None:
        settings = {}
        for add in node.children:
            if add.tag == "add" and "key" in add.attrs:
                settings[add.attrs["key"]] = add.attrs.get("value", "")
        if rel:
            walker.report.drop(walker.at(node), "appSettings of a sub-folder", "applies to the application only")
            return
        self.wsgi_settings(settings, walker, node, app)
        for k in settings:
            if k not in ("WSGI_HANDLER", "PYTHONPATH", "WSGI_LOG", "WSGI_RESTART_FILE_REGEX", "DJANGO_SETTINGS_MODULE",
                         "WSGI_ALT_VIRTUALENV_HANDLER", "WSGI_ALT_VIRTUALENV_ACTIVATE_THIS", "WSGI_PTVSD_SECRET"):
                self.app_env.setdefault(app["pool"], {})[k] = settings[k]
                walker.report.note(walker.at(node), f"appSetting {k}",
                                   f"an environment variable of pool \"{app['pool']}\" (wfastcgi passes appSettings "
                                   "as environment variables)")


    def wsgi_settings(self, settings: dict, walker: Walker, node: Node, app: dict) -> None:
        handler = settings.get("WSGI_HANDLER")
        if handler:
            spec = _wsgi_handler_to_app(handler)
            if spec is None:
                walker.report.drop(walker.at(node), f"WSGI_HANDLER=\"{handler}\"", "not module.attribute")
            else:
                app["app"] = spec
                walker.report.note(walker.at(node), f"WSGI_HANDLER=\"{handler}\"", f"app = \"{spec}\" (wfastcgi's "
                                   "WSGI app, hosted by the pool's workers)")
        if settings.get("PYTHONPATH"):
            paths = []
            for part in settings["PYTHONPATH"].split(";"):
                linux = self.paths.to_linux(part, self.report, walker.at(node)) if looks_like_windows_path(part) else None
                if linux:
                    paths.append(linux)
                elif part.strip():
                    walker.report.drop(walker.at(node), f"PYTHONPATH entry \"{part}\"", "not a Windows path wasp can map")
            if paths:
                app["python_path"] = paths
        if settings.get("DJANGO_SETTINGS_MODULE"):
            self.app_env.setdefault(app["pool"], {})["DJANGO_SETTINGS_MODULE"] = settings["DJANGO_SETTINGS_MODULE"]
        for k in ("WSGI_LOG", "WSGI_RESTART_FILE_REGEX", "WSGI_ALT_VIRTUALENV_HANDLER", "WSGI_PTVSD_SECRET"):
            if k in settings:
                walker.report.drop(walker.at(node), k, {"WSGI_LOG": "the worker's output goes to wasp's worker log",
                                                        "WSGI_RESTART_FILE_REGEX": "wasp serve --reload / recycle the pool",
                                                        }.get(k, "wfastcgi-specific"))

    def web_farms(self, node: Node) -> None:
        fields = {f.name: f for f in msgspec.structs.fields(model.Config)}
        if "web_farms" not in fields:
            self.report.drop(self.at(node), "webFarms",
                             "not in this wasp yet: server farms land with the arr branch; re-run the import then")
            return
        farm_tp = _unwrap(typing.get_args(_unwrap(fields["web_farms"].type))[0])
        farms = []
        for farm in node.children:
            if farm.tag != "webFarm":
                if farm.tag != "applicationRequestRouting":
                    self.report.drop(self.at(farm), f"webFarms <{farm.tag}>", "no wasp equivalent")
                continue
            # ARR keeps a server's weight and ports in <server><applicationRequestRouting>: flat in wasp.
            children = []
            for c in farm.children:
                if c.tag == "server":
                    attrs = dict(c.attrs)
                    inner = c.child("applicationRequestRouting")
                    if inner is not None:
                        attrs.update(inner.attrs)
                    flat = Node("server", attrs, c.line)
                    children.append(flat)
                else:
                    children.append(c)
            table = self.walker.element(_copy(farm, children), farm_tp, None, "web_farms")
            if table.get("name"):
                farms.append(table)
        if farms:
            self.config["web_farms"] = farms

    # the end
    def finish(self) -> None:
        for (sid, path), app in self.app_nodes.items():
            pages = self.pending_init.get((sid, path))
            if pages:
                app["initialization_pages"] = pages
        for (kind, path), pages in list(self.pending_init.items()):
            if kind == "location":
                site, _, rest = path.partition("/")
                entry = self.site_names.get(site.lower())
                if entry:
                    for app in entry[1]:
                        if app["path"] == "/" + rest.strip("/") or (not rest and app["path"] == "/"):
                            app["initialization_pages"] = pages
        for pool in self.config.get("pools", []):
            env = self.app_env.get(pool.get("name"))
            if env:
                pool.setdefault("environment_variables", {}).update(env)
        for site in self.config.get("sites", []):
            segs = self.site_url_segments.get(site["name"].lower())
            if segs is not None:
                site.setdefault("request_filtering", {}).setdefault("request_limits", {})["max_url_segments"] = segs
        # .aspx and friends
        for site in self.config.get("sites", []):
            for app in site.get("applications", []):
                phys = app.get("physical_path")
                found = sorted(ASPNET_EXTENSIONS & self.file_extensions.get(phys, set())) if phys else []
                if found:
                    self.report.action(f"site \"{site['name']}\" application \"{app['path']}\"",
                                       f"{', '.join(found)} files in {phys}",
                                       "ASP.NET / classic ASP pages do not run on Linux: the application needs a "
                                       "Python replacement (app = \"module:attr\") or a proxy to a server that runs "
                                       "them (a rewrite rule with an absolute URL); wasp serves them as static files "
                                       "only where a MIME type allows, so they are not executed")
        ssi = self.sections_server.get("server_side_include", {})
        if ssi.get("ssi_exec_disable") is False:
            self.report.action(self.name, "serverSideInclude ssiExecDisable=\"false\"",
                               "IIS's default lets <!--#exec --> run commands; wasp's default refuses them. "
                               "Kept as IIS had it: set ssi_exec_disable = true unless your pages need #exec")
        if self.sections_server:
            for k, v in self.sections_server.items():
                self.config[k] = v
        for k in [k for k, v in self.config.items() if v == {} or v == []]:
            if k not in ("pools", "sites"):
                del self.config[k]
        # A location of a site that was left out (no http binding) would name no site.
        names = {site["name"].lower() for site in self.config.get("sites", [])}
        kept = []
        for loc in self.locations:
            if loc["path"].partition("/")[0].lower() in names:
                kept.append(loc)
            else:
                self.report.drop(loc[COMMENT][0].removeprefix("from "), f"location \"{loc['path']}\"",
                                 "its site was not converted")
        self.locations = kept
        # IIS lets a stopped site share a binding; wasp does not: the first site keeps it.
        seen: dict[str, str] = {}
        for site in self.config.get("sites", []):
            for b in list(site["bindings"]):
                text = (b if isinstance(b, str) else b["binding"]).lower()
                if text in seen:
                    site["bindings"].remove(b)
                    self.report.drop(f"site \"{site['name']}\"", f"binding {text}",
                                     f"also a binding of site \"{seen[text]}\" (IIS allows it while one of them "
                                     "is stopped; wasp does not): left with the first")
                else:
                    seen[text] = site["name"]
        for site in [s for s in self.config.get("sites", []) if not s["bindings"]]:
            self.config["sites"].remove(site)
            self.report.drop(f"site \"{site['name']}\"", "site", "no binding left")
        if self.locations:
            self.config["locations"] = self.locations


# ------------------------------------------------------------------------------- helpers

def rebase_rules(tables: dict, prefix: str, report: Report, where: str) -> None:
    """IIS matches a web.config's (or a location's) rules against the URL relative to its folder;
    wasp matches every level's rules against the path from the site root (docs/rewrite.md). So a
    rule of folder `prefix` ("py/docs") gets the prefix put in front of its pattern, and a
    relative Rewrite/Redirect URL is made relative to that folder, as IIS resolves it."""
    rules = (tables.get("rewrite") or {}).get("rules")
    if not prefix or not rules:
        return
    items = rules.get("add", []) if isinstance(rules, dict) else rules
    quoted = re.escape(prefix)
    for rule in items:
        match = rule.get("match") or {}
        url = match.get("url")
        if url is None:
            continue
        syntax = rule.get("pattern_syntax", "ECMAScript")
        if syntax == "Wildcard":
            match["url"] = f"{prefix}/{url}" if url not in ("", "*") else f"{prefix}/*"
        elif syntax == "ExactMatch":
            match["url"] = f"{prefix}/{url}" if url else prefix
        elif url.startswith("^"):
            match["url"] = f"^{quoted}(?:/|$){url[1:]}"
        else:
            # Unanchored: IIS finds the pattern anywhere in the relative path; the lazy run keeps
            # the earliest match and the groups' numbers ({R:0} gains the prefix).
            match["url"] = f"^{quoted}/.*?{url}" if url not in (".*", "(.*)") else f"^{quoted}/{url}"
        action = rule.get("action") or {}
        target = action.get("url", "")
        if action.get("type") in ("Rewrite", "Redirect") and target and not target.startswith(("/", "{")) \
                and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", target):
            action["url"] = f"/{prefix}/{target}"
        report.note(where, f"rewrite rule \"{rule.get('name')}\"",
                    f"matched from the site root in wasp: pattern {url!r} -> {match['url']!r}"
                    + (f", url {target!r} -> {action['url']!r}" if action.get("url", "") != target else ""))


def prune(table: Any, default: Any = None) -> Any:
    """Drop empty lists and tables, and (server level: `default` given) values equal to wasp's
    defaults, so the output says only what the IIS file changed."""
    if not isinstance(table, dict):
        return table
    out = {}
    for k, v in table.items():
        sub_default = getattr(default, k, None) if default is not None and hasattr(default, k) else None
        if isinstance(v, dict) and k not in ("clear",):
            if set(v) <= {"clear", "remove", "add"} and v:
                if v.get("clear") or v.get("remove") or v.get("add"):
                    out[k] = v
                continue
            v = prune(v, sub_default if isinstance(sub_default, msgspec.Struct) else None)
            if v:
                out[k] = v
            continue
        if isinstance(v, list) and not v:
            continue
        if isinstance(v, list) and default is not None and isinstance(getattr(default, k, None), list):
            d = getattr(default, k)
            if len(d) == len(v) and all(not isinstance(x, (dict, msgspec.Struct)) and Walker.same(x, y)
                                        for x, y in zip(v, d)):
                continue
        if default is not None and hasattr(default, k) and not isinstance(v, list):
            d = getattr(default, k)
            if Walker.same(v, d) and type(d) in (bool, int, float, str, model.Duration, model.Size) \
                    or (isinstance(d, (bool,)) and v is d):
                continue
        out[k] = v
    return out


def _not_for_web_toml(name: str, table: Any) -> bool:
    """A section (or its keys) a web.toml may not set: IIS's Deny-locked sections, the server-only
    http_compression, an attribute IIS's install locks, an http_errors page only wasp.toml may
    name (absolute paths, default_path)."""
    info = sections.info(name)
    if name == "http_compression" or (info is not None and info.override_mode_default == "Deny"):
        return True
    if not isinstance(table, dict):
        return False
    if set(table) & set(sections.LOCKED_ATTRIBUTES.get(name, ())):
        return True
    if name == "http_errors":
        from wasp.config.sections.http_errors import delegation_problems

        return bool(delegation_problems(table, False))
    return False


def _merge(into: dict, more: dict) -> None:
    for k, v in more.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        elif isinstance(v, list) and isinstance(into.get(k), list):
            into[k] = into[k] + v
        else:
            into[k] = v


def _copy(node: Node, children: list[Node]) -> Node:
    n = Node(node.tag, dict(node.attrs), node.line)
    n.children = children
    return n


def _drop_attrs(node: Node, names) -> Node:
    n = Node(node.tag, {k: v for k, v in node.attrs.items() if k not in names}, node.line)
    n.children = node.children
    return n


def _int(text: str, default: int = 0) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        return default


def _split_binding(info: str) -> tuple[str, int | None, str]:
    """IIS bindingInformation "IP:PORT:HOST" ("*:80:", "[::1]:443:www") -> (ip, port, host)."""
    if info.startswith("["):
        end = info.find("]")
        if end < 0:
            return "", None, ""
        ip = info[: end + 1]
        rest = info[end + 2:]
    else:
        ip, _, rest = info.partition(":")
    port_text, _, host = rest.partition(":")
    try:
        port = int(port_text)
    except ValueError:
        return ip, None, host
    if not 1 <= port <= 65535:
        return ip, None, host
    ip = ip or "*"
    return ip, port, host.strip().lower()


def _is_stock_error_page(node: Node, paths: Paths) -> bool:
    prefix = node.attrs.get("prefixLanguageFilePath", "")
    path = node.attrs.get("path", "")
    status = node.attrs.get("statusCode", "")
    return bool(prefix) and paths.expand(prefix).lower().replace("/", "\\").rstrip("\\").endswith(
        "\\inetpub\\custerr") and path.lower() == f"{status}.htm" and \
        node.attrs.get("responseMode", "File") == "File"


def _entry_type(cls, name):
    for f in msgspec.structs.fields(cls):
        if f.name == name:
            return _unwrap(typing.get_args(_unwrap(f.type))[0])
    raise KeyError(name)


def _field_type(cls, name):
    for f in msgspec.structs.fields(cls):
        if f.name == name:
            return f.type
    raise KeyError(name)


def _registered_modules() -> tuple[str, ...]:
    from wasp.config.sections.modules import NATIVE_MODULES

    return NATIVE_MODULES


def convert(apphost: Node, web_configs: dict[str, tuple[str, Node]] | None = None, *, root: str = "/srv/iis",
            env: dict[str, str] | None = None, resolve=None, apphost_name: str = "applicationHost.config",
            file_extensions: dict[str, set[str]] | None = None) -> Result:
    """applicationHost.config's tree (+ web.config trees by the Linux folder they are in) ->
    the wasp.toml tables, web.toml tables by folder, and the report."""
    importer = Importer(Paths(root, env, resolve), apphost_name, file_extensions)
    return importer.run(apphost, web_configs)
