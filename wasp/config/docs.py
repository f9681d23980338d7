"""docs/configuration.md, derived from model.py: `python -m wasp.config.docs [--output FILE | -]`.

Every key's type, default, unit and description comes from its one declaration in model.py; this
module adds only the prose around the tables and the example. A unit test regenerates the file and
compares, so a setting added to the model without regenerating the docs fails the build.
"""

from __future__ import annotations

import argparse
import os
import sys
import types
import typing
from typing import Any, Literal

import msgspec

from wasp.config import sections
from wasp.config.decode import unwrap
from wasp.config.model import Config, Duration, Pool, SiteBinding, Size
from wasp.config.units import format_duration, format_size

_SECTION_TEXT = {
    "server": "Where the server keeps its files, and server-wide response settings.",
    "limits": "HTTP.sys's limits and timeouts. They apply to every site.",
    "pool_defaults": (
        "IIS's applicationPoolDefaults. Every key of `[[pools]]` except `name` may be set here, sub-tables "
        "included (`[pool_defaults.process_model]` …). Each pool inherits them; a pool's own keys win, "
        "and sub-tables (and `environment_variables`) merge key by key. A problem in `[pool_defaults]` is "
        "reported once, under `pool_defaults.…`."),
    "pools": (
        "Application pools (IIS applicationPools). Each pool runs its applications in its own worker "
        "processes (`max_processes` > 1 = web garden). A pool no application names is fine."),
    "pools.identity": "The Unix account of the pool's workers (IIS processModel identity).",
    "pools.cpu": "CPU limit of the pool's workers (IIS `<cpu>`).",
    "pools.process_model": "Worker lifetime: idle shutdown, health pings, start and stop limits (IIS processModel).",
    "pools.recycling": (
        "When a worker is replaced by a fresh one (IIS recycling/periodicRestart). The new worker starts "
        "before the old one drains unless `disallow_overlapping_rotation`."),
    "pools.failure": "Rapid-fail protection and what clients get when a pool cannot serve (IIS failure).",
    "sites": (
        "Web sites. A site has a unique `name` and `id` and answers on its bindings; requests are routed "
        "by binding (IP, port, Host) and then by the longest application path. A config needs at "
        "least one site, and every site at least one binding (an empty file is an error, not a "
        "server that serves nothing)."),
    "sites.log": "The site's W3C extended access log, in `<log_dir>/W3SVC<id>/`.",
    "sites.log.custom_fields": (
        "IIS 8.5 custom log fields (logFile/customFields): columns after the standard ones, in the order "
        "listed. With any, the site's file is `u_exYYMMDD_x.log`. A value is escaped as the other fields "
        "(spaces as `+`, `-` when absent), cut at 4096 bytes (IIS's maxCustomFieldLength), and the custom "
        "fields of a line together at 65,536 bytes. Server variables: HTTPS `on`/`off`, SERVER_PROTOCOL "
        "(`HTTP/1.1`, `HTTP/2`), SERVER_PORT_SECURE `1`/`0`, CRYPT_PROTOCOL (the TLS version, e.g. "
        "`TLSv1.3`) and CRYPT_CIPHER_ALG_ID (the cipher suite's OpenSSL name) where IIS writes SChannel's "
        "numbers, REMOTE_ADDR, REMOTE_PORT, HTTP_HOST, SERVER_PORT, LOCAL_ADDR, REQUEST_METHOD, URL, "
        "QUERY_STRING. A header logged twice is written once, its values joined by `,`."),
    "sites.http_errors": (
        "IIS httpErrors: the error page clients get when a request fails in a worker (a module's "
        "404, 403.14, 405, ... or a 500 for an app that raises); a response an app writes itself is "
        "passed on unchanged. Every application of the site inherits it."),
    "sites.applications.http_errors": (
        "The application's httpErrors: a key set here overrides the site's `[sites.http_errors]`, a key "
        "left out is the site's."),
    "sites.access": (
        "IIS's system.webServer/security/access for the site: \"Require SSL\" and client certificates. An "
        "application with its own `access` table uses that one instead (it replaces the site's, as a "
        "`<location>` in IIS does). The front checks it for every request of the application: 403.4 "
        "\"SSL required\", 403.7 \"client certificate required\" (logged in the site's W3C log)."),
    "sites.bindings": (
        "An https binding: an entry of `bindings` written as a table (inline, `{ binding = … }`, or as "
        "`[[sites.bindings]]`), with the certificate IIS would bind to it. A port is either http or https. "
        "A handshake gets the certificate of the binding whose host the client names by SNI (bindings "
        "with `ssl_flags = [\"sni\"]`, host compared case-insensitively); a client that sends no SNI, "
        "or a name no such binding has, gets the port's IP:port certificate (the binding without "
        "\"sni\"), else the first https binding's of that port. The request is then routed by its "
        "Host header like any other. TLS 1.2 and 1.3 only, ECDHE with AES-GCM or ChaCha20 for 1.2, ALPN "
        "`http/1.1`. Certificates are re-read on `wasp reload` and when their files change (checked "
        "every 3 s); a bad new file keeps the old certificate serving. `wasp validate` refuses a missing, "
        "unreadable, expired, not yet valid or mismatched certificate or key."),
    "cache": (
        "The front's response cache (HTTP.sys's kernel cache): server-wide limits and admission. "
        "The front serves a cached response itself, without a worker; what may be cached is decided "
        "per site and application in `[sites.caching]`."),
    "sites.caching": (
        "IIS caching: whether the site's responses may be cached by the front. Static files are cached "
        "until they change (CacheUntilChange) unless a profile says otherwise; an app's responses only "
        "when a profile allows it. Never cached: requests with `Authorization`, a query string, a body, "
        "`Range` or `If-Range`; responses other than a non-empty 200, with `Set-Cookie`, `Vary: *` or "
        "`Cache-Control: private`, `no-store` or `no-cache`. Every application of the site inherits it."),
    "sites.caching.profiles": (
        "IIS caching profiles: per URL extension, whether and how long the front caches responses."),
    "sites.applications.caching": (
        "The application's caching: a key set here overrides the site's `[sites.caching]` (`profiles` "
        "as a whole), a key left out is the site's."),
    "sites.applications.caching.profiles": "The application's own profiles; they replace the site's.",
    "acme": (
        "Automatic certificates (docs/acme.md): every https binding with `certificate = \"acme\"` gets "
        "its certificate from this ACME CA for the binding's host, kept under "
        "`<run_dir>/acme/<host>/`, renewed before it expires; a temporary self-signed one is served "
        "until the first is issued. The manager runs the orders; the front answers the CA's challenges."),
    "sites.applications": (
        "Applications of a site. Each has a URL `path` and runs in one `pool`; it may serve static "
        "files (`physical_path`, an existing folder), a Python app (`app`), or both (the app answers "
        "what is not a file); one of the two is required. "
        "Every site needs the root application `path = \"/\"`. Front and workers name an application "
        "`<site id><path>`, e.g. `1/` or `1/api`."),
}

_INTRO = """\
# Configuration reference: wasp.toml

<!-- Generated from wasp/config/model.py by `python -m wasp.config.docs`. Do not edit by hand. -->

wasp reads one TOML file (`wasp serve -c wasp.toml`). Its names are those of IIS's
applicationHost.config in snake_case, and its defaults are IIS's. Without a file, `wasp serve`
runs the embedded Default Web Site (`http/127.0.0.1:8080:`), and `wasp serve module:app` runs one
app on the Default Web Site with everything else default.

The loader is strict: an unknown key, a value of the wrong type or out of range, a bad binding, a
duplicate name or an application naming a pool that does not exist are errors. All problems are
reported at once, each with the dotted path of the key and its line:

```text
/etc/wasp/wasp.toml:27: pools[1].threads: 0 is out of range; allowed: 1 to 1024
/etc/wasp/wasp.toml:51: sites[0].applications[1].pool: no pool is named "Nope"; pools: "DefaultAppPool"
```

## Values

| kind | written as | notes |
| --- | --- | --- |
| duration | `"250ms"`, `"90s"`, `"20m"`, `"29h"`, `"1d"`, `"1h30m"`, or a number of seconds | never negative; `0` usually disables |
| size | `"512MB"`, `"64KiB"`, `"1.5GB"`, `"0"`, or a whole number of bytes | KB/MB/GB/TB = 1000ⁿ, KiB/MiB/GiB/TiB = 1024ⁿ |
| binding | `"http/IP:PORT:HOST"` (appcmd's form); https as a table `{ binding = "https/IP:PORT:HOST", certificate = "…", key = "…" }` | IP `*` = every address, or an IPv4 address, or an IPv6 address in brackets (`[::1]`); PORT 1–65535; empty HOST = any Host header, else compared case-insensitively. No two sites may share a binding. |
| application path | `"/"`, `"/api"`, `"/api/v2"` | starts with `/`; no trailing `/` except the root; no `.` or `..` segment |
| app | `"module.path:attribute"` or `"module:factory()"` | imported in the pool's workers; a trailing `()` calls the factory once |
| schedule time | `"HH:MM"` or `"HH:MM:SS"` | local time of day |
| pool name | any text without `\\|<>&"/[]+=;:,?*@` | IIS's applicationPoolName rule |

Relative paths (`server.run_dir`, `server.log_dir`, `physical_path`, `python_path` entries, a
binding's `certificate` (except "acme"), `key` and `client_ca`, `acme.ca_bundle`, and a pool's `python` when it contains a `/`) are taken relative to the folder of the config file; `~` is
expanded.
"""


_SECTIONS_INTRO = """\
## system.webServer sections

IIS's `system.webServer` sections, by their snake_case names. Each may be written at every level
and is inherited downwards:

| level | where | example |
| --- | --- | --- |
| server | a top-level table | `[default_document]` |
| site | under its `[[sites]]` | `[sites.default_document]` |
| application | under its `[[sites.applications]]` | `[sites.applications.default_document]` |

A level writes only the keys it changes. A scalar key replaces the value above it; a sub-table
merges key by key; a **collection** (IIS's `<add>`/`<remove>`/`<clear>`) is written either as an
array, whose entries are added to the inherited ones, or as a table
`{ clear = true, remove = ["key", ...], add = [ ... ] }` (clear first, then remove, then add).
Adding an entry whose key is already there is an error naming both places; removing one that is
not there is an error too. Entries a level adds come after the inherited ones, except in
`default_document.files` (IIS's mergeAppend=false: before them). The `modules` section is itself a
collection, as in IIS: `modules = [ { name = ... } ]`, or `[modules]` with `remove = ["http_cache"]`.

### `[[locations]]`

IIS's `<location path>`: sections for one path. `path` is `"Site name"` (the site level),
`"Site name/app"` (an application) or `"Site name/app/dir"` / `"Site name/app/dir/file.ext"`
(compared without regard to case); `override_mode` is `"Allow"`, `"Deny"` or `"Inherit"` (the
default) and applies to the sections the location holds, as sub-tables: `[locations.default_document]`.
A location applies to its path and everything below it, across applications; the levels of a
URL are merged outermost first: server, site, locations above the application, the application's
own tables, then the locations down to the URL. Two locations may not set the same section for
the same path.

### `web.toml`

A `web.toml` in a folder of an application's `physical_path` (IIS's web.config) holds top-level
section tables (`[default_document]`, ...) for that folder and below; nothing else. The files
from the application's root down to the URL's folder are merged after everything in wasp.toml.
A worker reads them when a URL of the folder is first requested and again when one changes
(checked every second; no restart), never serves them (404.8), and ignores them all when the
pool has `enable_configuration_override = false`, those below the root when the application has
`allow_sub_dir_config = false`. A web.toml may not set a section that is locked: one whose
IIS overrideModeDefault is Deny (given under each section below), or one a location at or above
names with `override_mode = "Deny"`; a location with `override_mode = "Allow"` naming it unlocks
it. A request under a bad or locked web.toml gets 500.19 (IIS's "Config Error" text, with the file
and line in the detailed page); the rest of the site keeps serving. `wasp validate` checks every
web.toml under each physical_path.

`http_errors`, `caching` and `access` were already site and application tables; they are these
sections, and the server level is new. A worker resolves each application's effective sections
once, when it loads the application (modules read them from `ctx.config`, docs/worker.md).
"""


def render() -> str:
    """The whole of docs/configuration.md."""
    out = [_INTRO, "## Sections\n"]
    for info in msgspec.structs.fields(Config):
        base, _ = unwrap(info.type)
        if info.name == "source":
            continue
        if info.name == "pool_defaults":
            out.append(_section("pool_defaults", Pool, array=False, skip={"name"}, with_subsections=False))
        elif _is_struct(base):
            out.append(_section(info.name, base, array=False))
        elif _list_of_struct(base):
            out.append(_section(info.name, typing.get_args(base)[0], array=True))
    out.append(_section("sites.bindings", SiteBinding, array=True))
    out.append(_SECTIONS_INTRO)
    for name, entry in sorted(sections.registered().items()):
        out.append(_section(name, entry.cls, array=False).replace(
            "\n\n", f"\n\nAt every level (server, site, application); IIS's overrideModeDefault: "
                    f"{entry.override_mode_default}.\n\n", 1))
    out.append("## Example\n\nA server with two sites and two pools:\n\n```toml\n" + EXAMPLE + "```\n")
    out.append("## Every key with its default\n\nThe required keys are filled in with sample values; "
               "everything else is the default. This file loads as it is.\n\n```toml\n"
               + full_example() + "```\n")
    return "\n".join(out)


def _section(header: str, cls: type, *, array: bool, skip: set[str] = frozenset(),
             with_subsections: bool = True) -> str:
    title = f"[[{header}]]" if array else f"[{header}]"
    parts = [f"### `{title}`\n"]
    text = _SECTION_TEXT.get(header) or (cls.__doc__ or "").strip()
    if text:
        parts.append(text + "\n")
    rows = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    nested = []
    for info in msgspec.structs.fields(cls):
        base, metas = unwrap(info.type)
        if info.name in skip:
            continue
        if _is_struct(base) or _list_of_struct(base):
            nested.append((info.name, base))
            continue
        description = " ".join(m.description for m in metas if m.description)
        type_text = _type_text(base, metas)
        if sections.collection_of(cls, info.name) is not None:
            type_text = "collection: " + type_text
        rows.append(f"| `{info.name}` | {_cell(type_text)} | {_cell(_default_text(info))} | "
                    f"{_cell(description)} |")
    parts.append("\n".join(rows) + "\n")
    if not with_subsections:
        subs = ", ".join(f"`[{header}.{name}]`" for name, _ in nested)
        parts.append(f"Sub-tables: {subs}, with the keys listed under `[[pools]]`.\n")
    out = ["\n".join(parts)]
    for name, base in nested:
        if with_subsections:
            if _is_struct(base):
                out.append(_section(f"{header}.{name}", base, array=False))
            else:
                out.append(_section(f"{header}.{name}", typing.get_args(base)[0], array=True)
                           + _collection_note(cls, name))
    return "\n".join(out)


def _collection_note(cls: type, name: str) -> str:
    """The key and default entries of a collection of tables, under its table of keys."""
    marker = sections.collection_of(cls, name)
    if marker is None:
        return ""
    info = next(f for f in msgspec.structs.fields(cls) if f.name == name)
    key = " + ".join(f"`{k}`" for k in marker.key) if isinstance(marker.key, tuple) else f"`{marker.key}`"
    default = _default_of(info)
    text = "\nA collection keyed by " + key + (" (added entries go first)" if not marker.merge_append else "")
    if default and len(default) > 100:
        # A long default list (IIS's MIME map): its size and where to read it, not the list.
        return text + f": default {len(default)} entries (IIS's list; `wasp/config/mimemap.py`).\n"
    return text + (": default `" + _toml(default) + "`.\n" if default else ", empty by default.\n")


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def _list_of_struct(tp: Any) -> bool:
    return typing.get_origin(tp) is list and _is_struct(typing.get_args(tp)[0])


def _type_text(tp: Any, metas: list) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:  # a constrained member of a union: `Annotated[int, Meta()] | None`
        inner, *extra = typing.get_args(tp)
        return _type_text(inner, [*metas, *(m for m in extra if isinstance(m, msgspec.Meta))])
    if origin is typing.Union or origin is types.UnionType:
        members = [m for m in typing.get_args(tp) if m is not type(None)]
        text = " or ".join("table" if _is_struct(m) else _type_text(m, []) for m in members)
        metas = []  # a member's own constraints are in its text
    elif origin is Literal:
        text = " | ".join(f"`{_toml(v)}`" for v in typing.get_args(tp))
    elif isinstance(tp, type) and issubclass(tp, Duration):
        text = "duration"
    elif isinstance(tp, type) and issubclass(tp, Size):
        text = "size (bytes)"
    elif tp is bool:
        text = "boolean"
    elif tp is int:
        text = "integer"
    elif tp is float:
        text = "number"
    elif tp is str:
        text = "string"
    elif origin is list:
        item = _type_text(typing.get_args(tp)[0], []).split(',')[0]
        text = "array of " + " or ".join(f"{t}s" for t in item.split(" or "))
    elif origin is dict:
        text = f"table of {_type_text(typing.get_args(tp)[1], []).split(',')[0]}s"
    else:
        text = getattr(tp, "__name__", str(tp))
    for meta in metas:
        low = meta.ge if meta.ge is not None else meta.gt
        high = meta.le if meta.le is not None else meta.lt
        if low is not None and high is not None:
            text += f", {low}–{high}"
        elif low is not None:
            text += f", ≥ {low}" if meta.ge is not None else f", > {low}"
        elif high is not None:
            text += f", ≤ {high}" if meta.le is not None else f", < {high}"
    return text


def _default_of(info: msgspec.structs.FieldInfo) -> Any:
    if info.default is not msgspec.NODEFAULT:
        return info.default
    if info.default_factory is not msgspec.NODEFAULT:
        return info.default_factory()
    return msgspec.NODEFAULT


def _default_text(info: msgspec.structs.FieldInfo) -> str:
    value = _default_of(info)
    if value is msgspec.NODEFAULT:
        return "required"
    if value is None:
        return "not set"
    base, _ = unwrap(info.type)
    return f"`{_toml(value, base)}`"


def _toml(value: Any, tp: Any = None) -> str:
    """A value as it would be written in wasp.toml."""
    if isinstance(tp, type) and issubclass(tp, Duration):
        return f'"{format_duration(float(value))}"'
    if isinstance(tp, type) and issubclass(tp, Size):
        return f'"{format_size(int(value))}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, msgspec.Struct):  # an entry of a collection: the keys it sets
        fields = msgspec.structs.fields(value)
        return "{ " + ", ".join(f"{f.name} = {_toml(getattr(value, f.name))}" for f in fields
                                if f.required or getattr(value, f.name) != _default_of(f)) + " }"
    return str(value)


def _cell(text: str) -> str:
    """Text fit for a Markdown table cell: one line, pipes escaped, "<id>" not taken for HTML."""
    parts = text.replace("\n", " ").replace("|", "\\|").split("`")
    for i in range(0, len(parts), 2):  # outside code spans
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


# Values for required keys in the generated full example.
_SAMPLES = {("Pool", "name"): "DefaultAppPool", ("ModuleEntry", "name"): "api_key", ("Rule", "access_type"): "Allow", ("HandlerEntry", "name"): "ApiHandler", ("HandlerEntry", "path"): "/api/*", ("Site", "name"): "Default Web Site", ("Site", "id"): 1,
            ("Site", "bindings"): ["http/*:8080:"], ("CacheProfile", "extension"): ".html",
            ("ErrorPage", "status_code"): 404, ("ErrorPage", "path"): "404.html",
            ("HeaderEntry", "name"): "X-Frame-Options", ("RedirectRule", "wildcard"): "*.php",
            ("RedirectRule", "destination"): "/index.html",
            ("CustomLogField", "log_field_name"): "x-https", ("CustomLogField", "source_name"): "HTTPS",
            ("CustomLogField", "source_type"): "server_variable",
            ("FileExtension", "file_extension"): ".config", ("VerbRule", "verb"): "TRACE",
            ("VerbRule", "allowed"): False, ("HeaderLimit", "header"): "X-Big",
            ("HeaderLimit", "size_limit"): 1024, ("FilteringRule", "name"): "no-leech",
            ("OneToOneMapping", "certificate"): "/etc/wasp/alice.pem",
            ("OneToOneMapping", "user_name"): "alice", ("ManyToOneMapping", "name"): "staff",
            ("CertificateRule", "certificate_sub_field"): "O",
            ("CertificateRule", "match_criteria"): "Example*",
            ("MimeMap", "file_extension"): ".jxl", ("MimeMap", "mime_type"): "image/jxl",
            ("Scheme", "name"): "gzip", ("MimeType", "mime_type"): "text/*"}


def full_example() -> str:
    """A wasp.toml setting every key to its default (required keys get sample values)."""
    out: list[str] = []
    for info in msgspec.structs.fields(Config):
        base, _ = unwrap(info.type)
        if info.name == "source":
            continue
        if info.name == "pool_defaults":
            _write_table(out, "pool_defaults", Pool, array=False, skip={"name"})
        elif _is_struct(base):
            _write_table(out, info.name, base, array=False)
        elif _list_of_struct(base):
            item = typing.get_args(base)[0]
            # A pool's keys are all shown once under [pool_defaults]; each pool then needs only its name.
            _write_table(out, info.name, item, array=True, only_required=item is Pool)
    for name, entry in sorted(sections.registered().items()):
        _write_table(out, name, entry.cls, array=False)
    return "\n".join(out).lstrip("\n") + "\n"


#: Arrays of tables that are empty by default: the full example shows one entry commented out, so
#: that the file still loads as the defaults.
_COMMENTED_ARRAYS = {"CacheProfile", "CustomLogField", "ModuleEntry", "FileExtension", "VerbRule",
                     "HeaderLimit", "FilteringRule", "IpRule", "Rule", "HandlerEntry",
                     "OneToOneMapping", "ManyToOneMapping",
                     "MimeMap", "ErrorPage", "HeaderEntry", "RedirectRule", "Scheme", "MimeType"}


def _write_table(out: list[str], header: str, cls: type, *, array: bool, skip: set[str] = frozenset(),
                 only_required: bool = False) -> None:
    if cls.__name__ in _COMMENTED_ARRAYS:
        inner: list[str] = []
        _write_table_body(inner, header, cls, array=array, skip=skip, only_required=only_required)
        out.extend("\n# " + line[1:] if line.startswith("\n") else "# " + line for line in inner)
        return
    _write_table_body(out, header, cls, array=array, skip=skip, only_required=only_required)


def _write_table_body(out: list[str], header: str, cls: type, *, array: bool, skip: set[str] = frozenset(),
                      only_required: bool = False) -> None:
    out.append(f"\n[[{header}]]" if array else f"\n[{header}]")
    nested = []
    for info in msgspec.structs.fields(cls):
        base, _ = unwrap(info.type)
        if info.name in skip:
            continue
        if _is_struct(base) or _list_of_struct(base):
            nested.append((info.name, base))
            continue
        value = _default_of(info)
        if value is None:
            continue  # not set: TOML has no null
        if value is msgspec.NODEFAULT:
            out.append(f"{info.name} = {_toml(_SAMPLES[(cls.__name__, info.name)])}")
        elif not only_required:
            if value and sections.collection_of(cls, info.name) is not None:
                # A collection's array adds to the inherited (default) entries: restate them.
                out.append(f"{info.name} = {{ clear = true, add = {_toml(value, base)} }}")
            else:
                out.append(f"{info.name} = {_toml(value, base)}")
    for name, base in nested:
        if _list_of_struct(base):
            _write_table(out, f"{header}.{name}", typing.get_args(base)[0], array=True)
        elif not only_required:
            _write_table(out, f"{header}.{name}", base, array=False)


EXAMPLE = """\
[server]
run_dir = "run"
log_dir = "logs"

[limits]
max_allowed_content_length = "30MB"

[pool_defaults]
queue_length = 1000
threads = 16
[pool_defaults.process_model]
idle_timeout = "20m"
[pool_defaults.recycling]
time = "29h"
schedule = ["03:00"]
private_memory = "1GiB"
[pool_defaults.environment_variables]
APP_ENV = "production"

[[pools]]
name = "DefaultAppPool"

[[pools]]
name = "api"
max_processes = 2                  # a web garden of two workers
start_mode = "always_running"
environment_variables = { DJANGO_SETTINGS_MODULE = "shop.settings" }
[pools.process_model]
idle_timeout = "0s"                # never stop for idleness

[[sites]]
name = "Default Web Site"
id = 1
bindings = ["http/*:8080:", "http/127.0.0.1:8080:www.example.test"]

[[sites.applications]]
path = "/"
pool = "DefaultAppPool"
physical_path = "www"

[[sites.applications]]
path = "/shop"
pool = "api"
app = "shop.wsgi:application"
python_path = ["src"]
[[sites.applications.caching.profiles]]
extension = "*"                    # the shop's pages, extensionless URLs included
kernel_caching_policy = "CacheForTimePeriod"
duration = "10s"
vary_by_headers = ["Accept-Language"]

[[sites]]
name = "api"
id = 2
bindings = ["http/*:8080:api.example.test"]

[[sites.applications]]
path = "/"
pool = "api"
app = "api.main:create_app()"
interface = "asgi"
python_path = ["src"]
"""


def default_output() -> str:
    return os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "docs", "configuration.md")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wasp.config.docs", description=__doc__.splitlines()[0])
    parser.add_argument("--output", "-o", default=default_output(), help="file to write, or - for stdout")
    args = parser.parse_args(argv)
    text = render()
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
