"""IIS system.webServer sections: the registry, their decoding at every level, and the merge.

A section is a msgspec Struct subclass of `Section` registered under its snake_case IIS name with
`@section("name", override_mode_default="Allow" | "Deny")`. It may be written at server level
(`[name]`), for a site (`[sites.name]`), for an application (`[sites.applications.name]`), and
(step B) for any path below; each level holds only the keys it sets. The effective section of a
URL starts from the Struct's defaults (IIS's) and applies each level from the server down:

- a scalar key set at a level replaces the value above;
- a sub-element (a Struct-typed field) merges key by key the same way;
- a collection (a `list[Item]` field annotated with `collection(key=...)`, IIS's add/remove/clear)
  is written either as an array (add these entries) or as a table
  `{ clear = true, remove = ["key", ...], add = [ {...}, ... ] }`; adding a key already there
  is an error naming both places. `merge_append=False` collections (IIS defaultDocument files,
  handlers) put a level's added entries before the inherited ones.

A section may name one of its collections `default_collection`: IIS writes `<modules>` with its
`<add>`/`<remove>`/`<clear>` directly inside the section, and so may wasp.toml: `modules = [...]`
(an array: the entries to add) or `[modules]` with `clear`/`remove`/`add` next to its scalar keys.

Decoding a level gives a `Delta` (what that level says, checked against the Struct's types with
decode.py's Decoder, every problem with its dotted path); `apply` lays a delta over an effective
Struct and returns a new one (Structs are never changed in place: an effective section may be
shared by every URL of an application).

Sections are registered by importing their module: every module of this package is imported the
first time the registry is asked (`registered()`), so a helper adding `request_filtering.py` here
needs no other edit. A Python module's own section registers at worker start with `register()`
(contract §6); until then its table is carried undecoded (`passthrough`).
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import typing
from typing import Any, Callable, Literal

import msgspec
from msgspec import Struct

from wasp.config.collection import Collection, collection, fold as _fold
from wasp.config.decode import INVALID, Decoder, describe, join, kind, unwrap

OverrideMode = Literal["Allow", "Deny"]

Add = Callable[[str, str], None]


class Section(Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=False):
    """Base of every section Struct."""


class SectionInfo:
    __slots__ = ("name", "cls", "override_mode_default", "default_collection")

    def __init__(self, name: str, cls: type, override_mode_default: OverrideMode,
                 default_collection: str | None):
        self.name = name
        self.cls = cls
        self.override_mode_default = override_mode_default
        self.default_collection = default_collection


_sections: dict[str, SectionInfo] = {}
_loaded = False

#: Value checks a section declares itself, `(Struct class, field name)` -> check(value, path, add);
#: a field name of None checks a whole decoded item (keys that go together). Applied wherever a
#: section is decoded (wasp.toml by the manager and `wasp validate`, web.toml in the worker), so a
#: bad value is a config error (or a 500.19) naming its key and line, never a surprise later.
SECTION_CHECKS: dict[tuple[type, str | None], Callable[[Any, str, Add], None]] = {}


#: Attributes a web.toml may never set, by section name (IIS's install-time `lockAttributes`:
#: staticContent's isDocFooterFileName). Setting one is a 500.19 lock violation for its folder.
LOCKED_ATTRIBUTES: dict[str, frozenset[str]] = {}


def check(cls: type, field_name: str | None = None):
    """Decorator: `@check(IpRule, "ip_address")` registers a SECTION_CHECKS entry."""
    def decorate(fn):
        SECTION_CHECKS[(cls, field_name)] = fn
        return fn
    return decorate


class SectionError(Exception):
    """A section is registered twice or declared wrongly."""


def register(name: str, cls: type, *, override_mode_default: OverrideMode = "Allow",
             default_collection: str | None = None) -> type:
    """Register `cls` as section `name` (also at worker start, for a Python module's section)."""
    existing = _sections.get(name)
    if existing is not None and existing.cls is not cls:
        raise SectionError(f"section {name!r} is registered twice ({existing.cls.__qualname__} and "
                           f"{cls.__qualname__})")
    if not (isinstance(cls, type) and issubclass(cls, msgspec.Struct)):
        raise SectionError(f"section {name!r}: {cls!r} is not a msgspec Struct")
    for info in msgspec.structs.fields(cls):
        if info.required:
            raise SectionError(f"section {name!r}: field {info.name!r} has no default; a section's "
                               "keys all have IIS's defaults")
    if default_collection is not None and collection_of(cls, default_collection) is None:
        raise SectionError(f"section {name!r}: default_collection {default_collection!r} is not a "
                           "collection field")
    _sections[name] = SectionInfo(name, cls, override_mode_default, default_collection)
    return cls


def section(name: str, *, override_mode_default: OverrideMode = "Allow",
            default_collection: str | None = None):
    """Class decorator: `@section("request_filtering")`."""
    def decorate(cls: type) -> type:
        return register(name, cls, override_mode_default=override_mode_default,
                        default_collection=default_collection)
    return decorate


def unregister(name: str) -> None:
    """For tests that register throw-away sections."""
    _sections.pop(name, None)


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def registered() -> dict[str, SectionInfo]:
    """Every registered section by name (the package's own modules imported first)."""
    _load_builtins()
    return _sections


def info(name: str) -> SectionInfo | None:
    return registered().get(name)


def collection_of(cls: type, field_name: str) -> Collection | None:
    for info_ in msgspec.structs.fields(cls):
        if info_.name == field_name:
            return _collection_marker(info_.type)
    return None


def _collection_marker(tp: Any) -> Collection | None:
    while typing.get_origin(tp) is typing.Annotated:
        for meta in tp.__metadata__:
            if isinstance(meta, Collection):
                return meta
        tp = tp.__origin__
    return None


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


# ---- what one level says ----

class CollectionOps:
    """A level's directives for one collection, with the paths to name in errors."""

    __slots__ = ("clear", "remove", "add", "path")

    def __init__(self, path: str, clear: bool = False, remove=(), add=()):
        self.path = path
        self.clear = clear
        self.remove: list[tuple[str, Any]] = list(remove)  # (path, key value as written)
        self.add: list[tuple[str, Any]] = list(add)        # (path, decoded item)

    def __repr__(self) -> str:
        return f"CollectionOps(clear={self.clear}, remove={self.remove}, add={self.add})"


class Delta(dict):
    """field name -> value (scalar), Delta (sub-element) or CollectionOps; `path` is where the
    level wrote it (for messages)."""

    __slots__ = ("path",)

    def __init__(self, path: str):
        super().__init__()
        self.path = path


_COLLECTION_KEYS = ("clear", "remove", "add")


def decode_delta(decoder: Decoder, raw: Any, cls: type, path: str,
                 default_collection: str | None = None) -> Delta | Any:
    """The keys a level sets in a section table, type-checked; INVALID when the table is not a
    table. Problems go to `decoder`, each with its dotted path."""
    if default_collection is not None and isinstance(raw, list):
        raw = {default_collection: raw}
    if not isinstance(raw, dict):
        decoder.add(path, f"expected a table, got {kind(raw)}")
        return INVALID
    fields = {f.encode_name: f for f in msgspec.structs.fields(cls)}
    delta = Delta(path)
    own: dict[str, Any] = {}
    if default_collection is not None:
        # [modules] clear/remove/add sit in the section itself and apply to its collection.
        inline = {k: raw[k] for k in _COLLECTION_KEYS if k in raw and k not in fields}
        if inline:
            field_info = next(f for f in fields.values() if f.name == default_collection)
            if field_info.encode_name in raw:
                decoder.add(join(path, field_info.encode_name),
                            f"write either {field_info.encode_name} or clear/remove/add, not both")
            else:
                ops = _collection(decoder, inline, field_info.type, path)
                if ops is not INVALID:
                    delta[default_collection] = ops
        raw = {k: v for k, v in raw.items() if k not in inline}
    for key, value in raw.items():
        info_ = fields.get(key)
        if info_ is None:
            hint = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.7)
            decoder.add(join(path, key), "unknown key" + (f"; did you mean \"{hint[0]}\"?" if hint else ""))
            continue
        own[info_.name] = _field(decoder, value, info_.type, join(path, key), cls, info_.name)
    for name, value in own.items():
        if value is not INVALID:
            delta[name] = value
    return delta


def _field(decoder: Decoder, raw: Any, tp: Any, path: str, cls: type, name: str) -> Any:
    marker = _collection_marker(tp)
    if marker is not None:
        return _collection(decoder, raw, tp, path)
    base, _ = unwrap(tp)
    if _is_struct(base):
        return decode_delta(decoder, raw, base, path)
    value = decoder.value(raw, tp, path)
    check = decoder.checks.get((cls, name))
    if value is not INVALID and check is not None:
        check(value, path, decoder.add)
    return value


def _collection(decoder: Decoder, raw: Any, tp: Any, path: str) -> CollectionOps | Any:
    base, _ = unwrap(tp)
    (item_tp,) = typing.get_args(base)
    marker = _collection_marker(tp)
    if isinstance(raw, list):
        return CollectionOps(path, add=_items(decoder, raw, item_tp, path))
    if not isinstance(raw, dict):
        decoder.add(path, f"expected an array of entries to add ({describe(item_tp)} each) or a table "
                          f"{{ clear, remove, add }}, got {kind(raw)}")
        return INVALID
    ops = CollectionOps(path)
    for key in raw:
        if key not in _COLLECTION_KEYS:
            decoder.add(join(path, key), "unknown key; a collection table has clear, remove and add")
    if "clear" in raw:
        if isinstance(raw["clear"], bool):
            ops.clear = raw["clear"]
        else:
            decoder.add(join(path, "clear"), f"expected a boolean, got {kind(raw['clear'])}")
    if "remove" in raw:
        remove = raw["remove"]
        if not isinstance(remove, list):
            decoder.add(join(path, "remove"), f"expected an array of keys, got {kind(remove)}")
        else:
            for i, key in enumerate(remove):
                at = join(join(path, "remove"), i)
                if _key_shape_ok(marker, key):
                    ops.remove.append((at, key))
                else:
                    decoder.add(at, _key_help(marker, key))
    if "add" in raw:
        add = raw["add"]
        if isinstance(add, list):
            ops.add = _items(decoder, add, item_tp, join(path, "add"))
        else:
            decoder.add(join(path, "add"), f"expected an array of entries, got {kind(add)}")
    return ops


def _items(decoder: Decoder, raw: list, item_tp: Any, path: str) -> list[tuple[str, Any]]:
    items = []
    for i, entry in enumerate(raw):
        at = join(path, i)
        value = decoder.value(entry, item_tp, at)
        if value is not INVALID:
            items.append((at, value))
    return items


def _key_shape_ok(marker: Collection, key: Any) -> bool:
    if isinstance(marker.key, tuple):
        return isinstance(key, list) and len(key) == len(marker.key) and \
            all(isinstance(k, (str, int)) and not isinstance(k, bool) for k in key)
    return isinstance(key, (str, int)) and not isinstance(key, bool)


def _key_help(marker: Collection, key: Any) -> str:
    if isinstance(marker.key, tuple):
        return f"expected [{', '.join(marker.key)}] (the entry's key), got {kind(key)}"
    what = f"the {marker.key} of an entry" if marker.key else "an entry"
    return f"expected {what}, got {kind(key)}"


# ---- laying a level over the effective value ----

def default_of(cls: type) -> Any:
    return cls()


def apply(value: Any, delta: Delta, add: Add, origins: dict | None = None) -> Any:
    """`value` (a Struct) with `delta` laid over it: a new Struct; problems go to `add`.

    `origins` maps (id of a collection list, key) -> path where the entry was added, so that a
    duplicate names both places; pass the same dict down the levels of one resolution."""
    if not delta:
        return value
    origins = origins if origins is not None else {}
    changes = {}
    types_ = {f.name: f.type for f in msgspec.structs.fields(type(value))}
    for name, item in delta.items():
        current = getattr(value, name)
        if isinstance(item, CollectionOps):
            changes[name] = _apply_collection(current, item, _collection_marker(types_[name]), add, origins)
        elif isinstance(item, Delta):
            changes[name] = apply(current, item, add, origins)
        else:
            changes[name] = item
    return msgspec.structs.replace(value, **changes)


def _apply_collection(current: list, ops: CollectionOps, marker: Collection, add: Add,
                      origins: dict) -> list:
    entries = [] if ops.clear else list(current)
    where = {} if ops.clear else dict(origins.get(id(current), {}))
    for at, key in ops.remove:
        folded = _fold(key)
        kept = [e for e in entries if marker.key_of(e) != folded]
        if len(kept) == len(entries):
            known = ", ".join(marker.show(e) for e in entries) or "none"
            add(at, f"{key!r} is not in the inherited list, so it cannot be removed (entries: {known})")
        else:
            where.pop(folded, None)
        entries = kept
    keys = {marker.key_of(e) for e in entries}
    added = []
    for at, item in ops.add:
        key = marker.key_of(item)
        if key in keys:
            first = where.get(key, "the default list")
            add(at, f"{marker.show(item)} is already in the list ({first}); remove it first to "
                    "replace it")
            continue
        keys.add(key)
        where[key] = at
        added.append(item)
    merged = entries + added if marker.merge_append else added + entries
    origins[id(merged)] = where
    return merged


# ---- the effective configuration of a URL ----

class EffectiveConfig:
    """One attribute per registered section: the merged Struct (`ctx.config.request_filtering`).
    Read-only by convention; it is shared by every request of its (application, directory).
    `fault` is the 500.19 error of a directory whose web.toml is bad (its sections are then the
    application's), else None.

    Modules may keep what they compile from their section on it, as an attribute named after
    the module with a leading underscore (`_request_filtering`): it lives and dies with the
    directory's cached configuration, so a changed web.toml drops it too."""

    fault = None
    #: The worker's compiled pipeline for these sections' `modules` (wasp/worker/application.py).
    pipeline = None

    def __init__(self, values: dict[str, Any]):
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"EffectiveConfig({', '.join(sorted(self.__dict__))})"


def resolve(levels: list[tuple[str, dict]], add: Add, checks=None) -> tuple[EffectiveConfig, dict]:
    """The effective sections after laying `levels` (path prefix, raw tables by section name),
    outermost first, over the defaults. Returns the EffectiveConfig and the unregistered tables
    (the last level's wins), which the caller passes through for Python modules' sections."""
    sections = registered()
    decoder = Decoder({**SECTION_CHECKS, **checks} if checks else SECTION_CHECKS)
    values: dict[str, Any] = {}
    origins: dict = {}
    unknown: dict[str, Any] = {}
    for name, entry in sections.items():
        value = default_of(entry.cls)
        for prefix, tables in levels:
            if name in tables:
                delta = decode_delta(decoder, tables[name], entry.cls, join(prefix, name),
                                     entry.default_collection)
                if delta is not INVALID:
                    value = apply(value, delta, decoder.add, origins)
        values[name] = value
    for prefix, tables in levels:
        for name, table in tables.items():
            if name not in sections:
                unknown[name] = table
    for path, message in decoder.problems:
        add(path, message)
    return EffectiveConfig(values), unknown


__all__ = ["Section", "section", "check", "SECTION_CHECKS", "LOCKED_ATTRIBUTES", "collection", "register", "unregister", "registered", "info",
           "Delta", "CollectionOps", "decode_delta", "apply", "resolve", "EffectiveConfig",
           "SectionError", "OverrideMode", "Collection"]


# ---- the levels of wasp.toml ----

def split_tables(raw: dict, passthrough: set[str]) -> tuple[dict, dict]:
    """A level's raw table -> (its other keys, its section tables). Section tables are the
    registered sections' names and the `passthrough` names (Python modules' own sections)."""
    sections = registered()
    rest, tables = {}, {}
    for key, value in raw.items():
        (tables if key in sections or key in passthrough else rest)[key] = value
    return rest, tables


#: What a Python module's own section that is not a table gets (its fields are the module's).
MODULE_SECTION_NOT_A_TABLE = ("expected a table: this is the section of a Python module (a `modules` "
                              "entry with a type), [name] with its settings")


def module_section_problems(raw: dict, passthrough: set[str], at: str, add) -> None:
    """A level's Python-module sections that are not tables, reported as `at.name`."""
    known = registered()
    for key in passthrough:
        if key in raw and key not in known and not isinstance(raw[key], dict):
            add(f"{at}.{key}" if at else key, MODULE_SECTION_NOT_A_TABLE)


def python_module_entries(tables) -> list[tuple[str, str]]:
    """(name, type) of every `modules` entry with a type (a Python module) anywhere in raw
    tables, nested at any depth (levels, locations, web.toml files), in the order met."""
    found: list[tuple[str, str]] = []
    stack = [tables]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            raw = item.get("modules")
            entries = raw if isinstance(raw, list) else []
            if isinstance(raw, dict):
                for key in ("entries", "add"):
                    if isinstance(raw.get(key), list):
                        entries = entries + raw[key]
            for entry in entries:
                if isinstance(entry, dict) and isinstance(entry.get("name"), str) \
                        and isinstance(entry.get("type"), str) and entry["type"]:
                    pair = (entry["name"], entry["type"])
                    if pair not in found:
                        found.append(pair)
            stack.extend(v for k, v in item.items() if k != "modules")
        elif isinstance(item, list):
            stack.extend(item)
    return found


def python_module_names(levels) -> set[str]:
    """The names of `modules` entries with a `type` (Python modules) in raw level tables: their
    own section tables are carried undecoded to the workers, which register the sections."""
    names: set[str] = set()
    for tables in levels:
        raw = tables.get("modules") if isinstance(tables, dict) else None
        entries = raw if isinstance(raw, list) else []
        if isinstance(raw, dict):
            for key in ("entries", "add"):
                if isinstance(raw.get(key), list):
                    entries = entries + raw[key]
        names.update(e["name"] for e in entries
                     if isinstance(e, dict) and isinstance(e.get("name"), str) and e.get("type"))
    return names


def application_levels(tables: dict, site_id: int, app_key: str,
                       default_documents: list[str] | None = None,
                       paths: tuple[str, str, str] = ("", "", "")) -> list[tuple[str, dict]]:
    """The levels of an application, outermost first: server, site, application (with the older
    `default_documents` key as the application's default_document files). `tables` is
    Config.sections; `paths` the dotted prefixes of each level, for messages."""
    levels = [(paths[0], tables.get("server") or {}),
              (paths[1], (tables.get("sites") or {}).get(str(site_id)) or {}),
              (paths[2], (tables.get("applications") or {}).get(app_key) or {})]
    if default_documents is not None:
        levels.append((join(paths[2], "default_documents"),
                       {"default_document": {"files": {"clear": True, "add": list(default_documents)}}}))
    return levels
