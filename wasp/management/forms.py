"""The settings editor's form and checks, derived from the one model of wasp.toml (model.py).

`pool_form()` lists every pool setting as a form field (dotted path, kind, default, doc, bounds,
choices) straight from the msgspec declarations, so the editor never lists a setting of its own.
`check_pool(table)` runs the loader itself (load.py: the same decoding, checks and dotted-path
messages as `wasp validate`) over a pool table, so "validates as you type" says exactly what
saving would say about that pool. No I/O beyond what the loader's checks do.
"""

from __future__ import annotations

import re
from functools import lru_cache

import msgspec.inspect as mi

from wasp.config.load import load_data
from wasp.config.model import Duration, Pool, Size
from wasp.errors import ConfigError

#: Top-level pool keys the editor does not offer (the name is the pool's identity).
SKIP = {"name"}
_POOL_AT = re.compile(r"^pools\[0\]\.?")


def _unwrap(t):
    extra = {}
    while isinstance(t, mi.Metadata):
        extra.update(t.extra_json_schema or {})
        t = t.type
    return t, extra


def _field(path: str, t, default, doc: str) -> dict | None:
    t, extra = _unwrap(t)
    doc = doc or extra.get("description", "")
    row = {"path": path, "doc": doc, "default": default}
    if isinstance(t, mi.BoolType):
        row["kind"] = "bool"
    elif isinstance(t, mi.IntType):
        row.update(kind="int", min=t.ge, max=t.le)
    elif isinstance(t, mi.FloatType):
        row.update(kind="float", min=t.ge, max=t.le)
    elif isinstance(t, mi.CustomType) and issubclass(t.cls, Duration):
        row["kind"] = "duration"
    elif isinstance(t, mi.CustomType) and issubclass(t.cls, Size):
        row["kind"] = "size"
    elif isinstance(t, mi.LiteralType):
        row.update(kind="enum", choices=list(t.values))
    elif isinstance(t, mi.StrType):
        row.update(kind="string", pattern=t.pattern)
    elif isinstance(t, mi.ListType) and isinstance(_unwrap(t.item_type)[0], mi.StrType):
        row["kind"] = "list"
    elif isinstance(t, mi.ListType) and isinstance(_unwrap(t.item_type)[0], mi.LiteralType):
        row.update(kind="set", choices=list(_unwrap(t.item_type)[0].values))
    elif isinstance(t, mi.DictType):
        row["kind"] = "dict"
    else:
        return None
    return row


def _fields(struct_type: mi.StructType, prefix: str) -> list[dict]:
    rows = []
    for f in struct_type.fields:
        path = prefix + f.name
        if not prefix and f.name in SKIP:
            continue
        t, extra = _unwrap(f.type)
        if isinstance(t, mi.StructType):
            rows.extend(_fields(t, path + "."))
            continue
        default = f.default if f.default is not mi.NODEFAULT else (
            f.default_factory() if f.default_factory is not mi.NODEFAULT else None)
        row = _field(path, f.type, default, extra.get("description", ""))
        if row is not None:
            rows.append(row)
    return rows


@lru_cache(maxsize=1)
def pool_form() -> list[dict]:
    return _fields(mi.type_info(Pool), "")


def check_pool(table: dict) -> list[dict]:
    """Problems of a pool table as the loader reports them, each {"path": dotted path within
    the pool, "message"}; [] when it is valid."""
    if not isinstance(table, dict):
        return [{"path": "", "message": "the settings must be a table"}]
    pool = dict(table)
    pool.setdefault("name", "Checked")
    data = {
        "pools": [pool],
        "sites": [{"name": "Checked", "id": 1, "bindings": ["http/127.0.0.1:1:"],
                   "applications": [{"path": "/", "pool": pool["name"], "app": "checked:app"}]}],
    }
    try:
        load_data(data, source="")
    except ConfigError as exc:
        return [{"path": _POOL_AT.sub("", p.path), "message": p.message}
                for p in exc.problems if p.path.startswith("pools[0]")]
    return []
