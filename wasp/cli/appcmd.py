"""`wasp add|set|delete site|app|vdir|pool|binding`, `wasp set|lock|unlock|list config`,
`wasp config history|restore`, `wasp backup add|list|restore|delete`: appcmd's commands that
change things (docs/appcmd.md).

Each command becomes one change request (wasp/config/commit.py's JSON) sent to the running
server's admin API, which edits, validates, writes and applies it. When no server answers, the
same change is made here on the file (validated, history kept, written) and takes effect at the
next start; the output says so.

Parameters are appcmd's, in either spelling:

    key=value  /key:value  -key:value         set (dotted: recycling.time=1h; camelCase is
                                              turned into snake_case: /queueLength:2000)
    +coll.[k='v',k2='v2']  /+coll.[...]       add to a collection (+[...]: the section's own)
    -coll.[k='v']          /-coll.[...]       remove from it
    -key                                      remove a key (inherited or default again)
    coll.[k='v'].key=value                    set a key of one element

Values are read as the model's type of the key: "1h" stays a string for a duration, 2000 is an
int for an int, true/false for a bool, `a,b` is a list for a list of strings, `[...]`/`{...}`
are TOML.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
import typing
from typing import Any

import msgspec

from wasp.cli import output
from wasp.cli.client import AdminClient, AdminError, ServerNotRunning

OBJECTS = {"site": "site", "sites": "site", "app": "app", "apps": "app", "vdir": "vdir",
           "vdirs": "vdir", "pool": "pool", "apppool": "pool", "pools": "pool", "apppools": "pool",
           "binding": "binding", "bindings": "binding"}
KINDS = {"site": "SITE", "app": "APP", "vdir": "VDIR", "pool": "APPPOOL", "binding": "BINDING"}
#: appcmd attribute names that are not a plain camelCase of wasp's.
ALIASES = {"applicationpool": "pool", "physicalpath": "physical_path", "apppool": "pool",
           "site.name": "site", "app.name": "app"}
NOT_RUNNING = ("the server is not running: the change is written to {file} and takes effect when "
               "it starts")


class CommandError(Exception):
    """Exit with the message (appcmd's ERROR form) and code."""

    def __init__(self, message: str, code: int = 1, problems: list[str] | None = None):
        self.code = code
        self.problems = problems or []
        super().__init__(message)


# ---------------------------------------------------------------------- parameters

def snake(name: str) -> str:
    low = name.lower()
    if low in ALIASES:
        return ALIASES[low]
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _snake_path(key: str) -> str:
    """camelCase -> snake_case in the keys of a path, never inside a selector's quotes."""
    out, depth, quote, word = [], 0, None, ""
    for c in key + "\0":
        if quote:
            out.append(c)
            if c == quote:
                quote = None
            continue
        if c in "'\"" and depth:
            quote = c
            out.append(c)
            continue
        if depth == 0 and (c.isalnum() or c == "_"):
            word += c
            continue
        if word:
            out.append(snake(word) if depth == 0 else word)
            word = ""
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
        if c != "\0":
            out.append(c)
    return "".join(out)


class Param(typing.NamedTuple):
    op: str  # set | add | remove | clear | general
    key: str
    value: str | None


GENERAL = {"json", "section", "commit", "config", "c", "run_dir", "run-dir", "user", "effective",
           "text"}


def parse_params(words: list[str]) -> tuple[list[Param], dict]:
    """appcmd's parameters -> (edits, general options: -c FILE, --run-dir, --json, --section,
    --commit, --user)."""
    params: list[Param] = []
    general: dict[str, Any] = {}
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word in ("-c", "--config", "--run-dir", "--section", "--commit", "--user"):
            if i >= len(words):
                raise CommandError(f"{word} needs a value", 2)
            general[word.lstrip("-").replace("-", "_").replace("config", "c")] = words[i]
            i += 1
            continue
        if word in ("--json", "--effective"):
            general[word[2:]] = True
            continue
        if word.startswith("--") and "=" in word and word[2:].split("=", 1)[0] in ("section", "commit", "user", "config", "run-dir"):
            key, value = word[2:].split("=", 1)
            general[key.replace("-", "_").replace("config", "c")] = value
            continue
        body = word
        if body.startswith("/") or (body.startswith("-") and not body.startswith("-[") and ":" in body
                                    and not body.startswith("--")):
            body = body[1:]
            if body.startswith(("+", "-")):
                pass
            elif ":" in body and not body.startswith("["):
                key, value = _split_colon(body)
                low = key.lower()
                if low in ("section", "commit", "user", "text"):
                    general[low] = value
                    continue
                params.append(Param("set", _snake_path(key), value))
                continue
        elif body.startswith("--"):
            body = body[2:]
        if body.startswith("+"):
            params.append(Param("add", _snake_path(body[1:]), None))
        elif body.startswith("-"):
            rest = body[1:]
            params.append(Param("remove" if "[" in rest else "clear", _snake_path(rest), None))
        elif _top_level_eq(body):
            key, value = _split_eq(body)
            params.append(Param("set", _snake_path(key), value))
        else:
            raise CommandError(f'Unknown parameter "{word}": expected key=value, /key:value, '
                               "+collection.[key='value'] or -collection.[key='value']", 2)
    return params, general


def _top_level_eq(text: str) -> bool:
    depth = 0
    for c in text:
        depth += c == "["
        depth -= c == "]"
        if c == "=" and depth == 0:
            return True
    return False


def _split_eq(text: str) -> tuple[str, str]:
    depth = 0
    for i, c in enumerate(text):
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
        elif c == "=" and depth == 0:
            return text[:i], text[i + 1:]
    raise CommandError(f'"{text}" has no value', 2)


def _split_colon(text: str) -> tuple[str, str]:
    depth = 0
    for i, c in enumerate(text):
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
        elif c == ":" and depth == 0:
            return text[:i], text[i + 1:]
    return text, ""


# ---------------------------------------------------------------------- types and values

def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
                continue
            return tp
        return tp


def field_type(root: Any, path: list) -> Any:
    """The model type at `path` below `root` (a Struct class), or None when unknown."""
    tp = root
    for seg in path:
        tp = _unwrap(tp)
        if isinstance(seg, str):
            if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
                fields = {f.name: f.type for f in msgspec.structs.fields(tp)}
                if seg not in fields:
                    return None
                tp = fields[seg]
            elif typing.get_origin(tp) is dict:
                tp = typing.get_args(tp)[1]
            else:
                return None
        else:
            if typing.get_origin(tp) is list:
                tp = typing.get_args(tp)[0]
            else:
                return None
    return tp


def _literal(tp) -> bool:
    return typing.get_origin(tp) is typing.Literal


def coerce(raw: str, tp: Any) -> Any:
    """A command-line value as the model's type wants it."""
    from wasp.config.model import Duration, Size

    text = raw.strip()
    base = _unwrap(tp) if tp is not None else None
    if text[:1] in ("[", "{") or (text[:1] in ('"', "'") and text[-1:] == text[:1] and len(text) > 1):
        try:
            return tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            if text[:1] in ("[", "{"):
                raise CommandError(f"{raw!r} is not a TOML array or table", 2) from None
    if base is bool:
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        return raw
    if base in (Duration, Size, float, int):
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        if base in (Duration, float) and re.fullmatch(r"-?\d+\.\d*", text):
            return float(text)
        return raw
    if base is str or _literal(base):
        return raw
    if typing.get_origin(base) is list:
        item = _unwrap(typing.get_args(base)[0])
        if item is str or _literal(item) or typing.get_origin(item) is typing.Union:
            return [] if not text else [p.strip() for p in text.split(",")]
    if base is None:
        for guess in (text, f'"{text}"'):
            try:
                return tomllib.loads(f"v = {guess}")["v"]
            except tomllib.TOMLDecodeError:
                continue
    return raw


# ---------------------------------------------------------------------- requests

def _plain_collection(tp: Any) -> bool:
    """A list of plain values (files, bindings) rather than of tables."""
    base = _unwrap(tp) if tp is not None else None
    if typing.get_origin(base) is not list:
        return False
    item = _unwrap(typing.get_args(base)[0])
    return not (isinstance(item, type) and issubclass(item, msgspec.Struct))


def edits_from(params: list[Param], root_type: Any, section: str = "") -> list[dict]:
    from wasp.config import sections
    from wasp.config.edit import EditError, parse_path

    edits = []
    for p in params:
        try:
            path = parse_path(p.key) if p.key else []
        except EditError as exc:
            raise CommandError(str(exc), 2) from None
        # appcmd's attribute names in selectors too: [statusCode='404'] is status_code.
        path = [{snake(k): v for k, v in seg.items()} if isinstance(seg, dict) else seg for seg in path]
        if p.op == "set":
            model_path = [s for s in path]
            edits.append({"op": "set", "path": path, "value": coerce(p.value or "", field_type(root_type, model_path))})
        elif p.op == "clear":
            edits.append({"op": "delete", "path": path})
        elif p.op in ("add", "remove"):
            if not path or not isinstance(path[-1], dict):
                raise CommandError(f"{'+' if p.op == 'add' else '-'}{p.key}: expected "
                                   "collection.[key='value']", 2)
            selector, coll = path[-1], path[:-1]
            if not coll and section:
                info = sections.info(section)
                if info is None or not info.default_collection:
                    raise CommandError(f'section "{section}" has no default collection: name it, '
                                       "e.g. +files.[value='x']", 2)
                coll_type_path = [info.default_collection]
            else:
                coll_type_path = list(coll)
            coll_type = field_type(root_type, coll_type_path)
            coll_name = next((s for s in reversed(coll_type_path) if isinstance(s, str)), "")
            if p.op == "remove":
                edits.append({"op": "delete", "path": coll + [selector]})
                continue
            value: Any = dict(selector)
            if coll_name == "bindings" and {"protocol", "binding_information"} <= {snake(k) for k in selector}:
                got = {snake(k): v for k, v in selector.items()}
                value = f"{got['protocol']}/{got['binding_information']}"
            elif _plain_collection(coll_type) and len(selector) == 1:
                value = next(iter(selector.values()))
            else:
                item_type = field_type(coll_type, [0]) if coll_type is not None else None
                value = {snake(k): (coerce(str(v), field_type(item_type, [snake(k)]))
                                    if isinstance(v, str) and item_type is not None else v)
                         for k, v in selector.items()}
            edits.append({"op": "add", "path": coll, "value": value})
    return edits


def send(args_general: dict, request: dict, config_file: str | None, run_dir: str) -> tuple[dict, bool]:
    """(result, whether the running server took it). Offline: the change is made here."""
    from wasp.config import commit

    if args_general.get("user"):
        request["user"] = args_general["user"]
    try:
        return AdminClient(run_dir, timeout=600).post_json("/config/changes", request), True
    except ServerNotRunning:
        if not config_file or not os.path.isfile(config_file):
            raise
    except AdminError as exc:
        problems = exc.payload.get("problems", []) if isinstance(exc.payload, dict) else []
        raise CommandError(exc.message, 2 if problems and exc.status == 400 else 1, problems) from None
    user = args_general.get("user") or _local_user()
    try:
        with commit.Transaction(config_file, run_dir, _checks()) as txn:
            written = txn.prepare(request, user)
    except commit.ChangeRefused as exc:
        raise CommandError(str(exc), 2 if exc.problems else 1, exc.problems) from None
    return written.result(applied=False), False


def _checks():
    """The machine checks a change made here gets, as the server's (wasp validate's)."""
    from wasp.manager.config_api import machine_checks
    return machine_checks


def _local_user() -> str:
    import pwd

    uid = os.getuid()
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid}, server not running)"
    except KeyError:
        return f"uid {uid} (server not running)"


def report(result: dict, lines: list[str], running: bool, as_json: bool) -> None:
    if as_json:
        print(json.dumps(dict(result, running=running), indent=2))
        return
    if not result.get("changed", True):
        print(f"no change: {result.get('file')} already says that")
        return
    for line in result.get("messages", []) or []:
        print(line)
    for line in lines:
        print(line)
    if not running:
        print(NOT_RUNNING.format(file=result.get("file")))


# ---------------------------------------------------------------------- objects

def _ident_site_path(identifier: str) -> tuple[str, str]:
    site, _, rest = identifier.strip("/").partition("/") if identifier else ("", "", "")
    return site, "/" + rest.strip("/") if rest.strip("/") else "/"


def object_change(verb: str, kind: str, identifier: str, params: list[Param]) -> tuple[dict, list[str]]:
    """(change request, the lines to print on success) for `wasp VERB KIND IDENT params`."""
    from wasp.config.model import Application, Pool, Site, SiteBinding

    label = KINDS[kind]
    named = {p.key: p.value for p in params if p.op == "set"}
    if kind == "pool":
        name = identifier or named.pop("name", None)
        if not name:
            raise CommandError(f"Must specify the {label} object with identifier.", 2)
        rest = [p for p in params if not (p.op == "set" and p.key == "name" and not identifier)]
        if verb == "add":
            value, later = _fold_into({"name": name}, edits_from(rest, Pool))
            edits = [{"op": "add", "path": ["pools"], "value": value}]
            edits += [dict(e, path=["pools", {"name": name}] + e["path"]) for e in later]
            return {"edits": edits}, [f'{label} object "{name}" added']
        if verb == "delete":
            return {"edits": [{"op": "delete", "path": ["pools", {"name": name}]}]}, [f'{label} object "{name}" deleted']
        return {"target": {"pool": name}, "edits": _need(edits_from(rest, Pool), label)}, [f'{label} object "{name}" changed']
    if kind == "site":
        name = identifier or named.get("name")
        if not name:
            raise CommandError(f"Must specify the {label} object with identifier.", 2)
        rest = [p for p in params if not (p.op == "set" and p.key == "name")]
        if verb == "add":
            return _add_site(name, rest)
        if verb == "delete":
            return {"edits": [{"op": "delete", "path": ["sites", {"name": name}]}]}, [f'{label} object "{name}" deleted']
        return {"target": {"site": name}, "edits": _need(edits_from(rest, Site), label)}, [f'{label} object "{name}" changed']
    if kind == "app":
        site = named.pop("site", None)
        path = named.pop("path", None)
        if identifier:
            site, path = _ident_site_path(identifier)
        if not site or not path:
            raise CommandError(f"Must specify the {label} object with identifier.", 2)
        path = "/" + path.strip("/") if path.strip("/") else "/"
        shown = f"{site}{path}"
        rest = [p for p in params if not (p.op == "set" and p.key in ("site", "path"))]
        if verb == "add":
            value, later = _fold_into({"path": path}, edits_from(rest, Application))
            edits = [{"op": "add", "path": ["sites", {"name": site}, "applications"], "value": value}]
            edits += [dict(e, path=["sites", {"name": site}, "applications", {"path": path}] + e["path"])
                      for e in later]
            lines = [f'{label} object "{shown}" added']
            if "physical_path" in value or any(e["path"][-1] == "physical_path" for e in edits[1:]):
                lines.append(f'VDIR object "{shown.rstrip("/")}/" added')
            return {"target": {"site": site}, "edits": [dict(e, path=e["path"][2:]) for e in edits]}, lines
        if verb == "delete":
            return {"target": {"app": shown}, "edits": [{"op": "delete", "path": []}]}, [f'{label} object "{shown}" deleted']
        return {"target": {"app": shown}, "edits": _need(edits_from(rest, Application), label)}, [f'{label} object "{shown}" changed']
    if kind == "vdir":
        return _vdir(verb, identifier, params, named)
    if kind == "binding":
        return _binding(verb, identifier, params, SiteBinding)
    raise CommandError(f"Object '{kind.upper()}' is not supported.", 2)


def _fold_into(value: dict, edits: list[dict]) -> tuple[dict, list[dict]]:
    """Plain top-level keys go into the new element itself (one `add` in the history); the
    rest are edits after it."""
    value, later = dict(value), []
    for e in edits:
        if e["op"] == "set" and len(e["path"]) == 1 and isinstance(e["path"][0], str) \
                and e["path"][0] not in value:
            value[e["path"][0]] = e["value"]
        else:
            later.append(e)
    return value, later


def _need(edits: list[dict], label: str) -> list[dict]:
    if not edits:
        raise CommandError(f"Set at least one attribute of the {label} object (key=value).", 2)
    return edits


def _add_site(name: str, params: list[Param]) -> tuple[dict, list[str]]:
    from wasp.config.model import Site

    known = {p.key: p.value for p in params if p.op == "set"}
    site: dict[str, Any] = {"name": name}
    if "id" in known:
        site["id"] = coerce(known["id"], int)
    site["bindings"] = coerce(known.get("bindings", ""), list[str]) if "bindings" in known else []
    app: dict[str, Any] = {}
    for key in ("physical_path", "pool", "app"):
        if key in known:
            app[key] = known[key]
    rest = [p for p in params if not (p.op == "set" and p.key in ("id", "bindings", "physical_path", "pool", "app"))]
    edits = [{"op": "add", "path": ["sites"], "value": site}]  # no id: the next free one (commit.py)
    edits += [dict(e, path=["sites", {"name": name}] + e["path"]) for e in edits_from(rest, Site)]
    lines = [f'SITE object "{name}" added']
    if app:
        edits.append({"op": "add", "path": ["sites", {"name": name}, "applications"], "value": dict(path="/", **app)})
        lines.append(f'APP object "{name}/" added')
        if "physical_path" in app:
            lines.append(f'VDIR object "{name}/" added')
    return {"edits": edits}, lines


def _vdir(verb: str, identifier: str, params: list[Param], named: dict) -> tuple[dict, list[str]]:
    """wasp's applications have one virtual directory, their root, whose physical path is the
    application's physical_path: VDIR "Site/app/" is that."""
    ident = identifier or (named.get("app") or "").rstrip("/") + (named.get("path") or "/")
    if not ident:
        raise CommandError("Must specify the VDIR object with identifier.", 2)
    if not ident.endswith("/"):
        raise CommandError(f'VDIR "{ident}": wasp applications have one virtual directory, their '
                           'root ("Site/app/", with the trailing "/"); serve another folder with '
                           "an application of its own (wasp add app)", 1)
    app = ident.rstrip("/") or ident
    physical = named.get("physical_path")
    if verb == "delete":
        return {"target": {"app": app}, "edits": [{"op": "delete", "path": ["physical_path"]}]}, \
            [f'VDIR object "{ident}" deleted']
    if physical is None:
        raise CommandError("Set physicalPath (/physicalPath:DIR or physical_path=DIR).", 2)
    return {"target": {"app": app}, "edits": [{"op": "set", "path": ["physical_path"], "value": physical}]}, \
        [f'VDIR object "{ident}" {"added" if verb == "add" else "changed"}']


def _binding(verb: str, identifier: str, params: list[Param], binding_type) -> tuple[dict, list[str]]:
    """BINDING "Site/http/*:80:" or `wasp add binding SITE http/*:80: [certificate=...]`."""
    site = identifier
    bindings = [p for p in params if p.op == "clear" or (p.op == "set" and p.key == "binding")]
    words = [p for p in params if p.op == "set" and p.key != "binding"]
    value = next((p.value for p in params if p.op == "set" and p.key == "binding"), None)
    if value is None:
        raise CommandError("Name the binding: wasp add binding SITE http/*:8080: (or binding=...)", 2)
    del bindings
    sel = {"binding": value}
    if verb == "delete":
        return {"target": {"site": site}, "edits": [{"op": "delete", "path": ["bindings", sel]}]}, \
            [f'BINDING object "{value}" deleted']
    extra = {p.key: coerce(p.value or "", field_type(binding_type, [p.key])) for p in words}
    if verb == "add":
        return {"target": {"site": site}, "edits": [{"op": "add", "path": ["bindings"],
                                                     "value": dict(binding=value, **extra) if extra else value}]}, \
            [f'BINDING object "{value}" added']
    if not extra:
        raise CommandError("Set at least one attribute of the BINDING object (certificate=..., key=...).", 2)
    return {"target": {"site": site}, "edits": [{"op": "set", "path": ["bindings", sel],
                                                 "value": dict(binding=value, **extra)}]}, \
        [f'BINDING object "{value}" changed']
