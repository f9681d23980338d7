"""Edits of a TOML config text that keep its comments and layout (tomlkit). Sans-I/O.

An edit names a place in the document by a path of segments, outermost first: a key (str), an
index (int) or a selector (dict) that picks the one element of an array whose keys equal the
selector's values (strings without regard to case, as IIS compares collection keys). A selector
on an array of plain values (`files`, `bindings`) matches the element equal to its one value, and
a table element of `bindings` by its `binding` key.

    {"op": "set",    "path": ["pools", {"name": "api"}, "recycling", "time"], "value": "1h"}
    {"op": "delete", "path": ["pools", {"name": "api"}, "recycling", "time"]}   # back to inherited
    {"op": "add",    "path": ["pools"], "value": {"name": "batch", "max_processes": 2}}
    {"op": "delete", "path": ["pools", {"name": "batch"}]}                      # an element

The same paths are written as text by appcmd's users and the CLI (`parse_path`):
`pools[name='api'].recycling.time`, `default_document.files.[value='home.html']`,
`"a.b".c` for a key with a dot. `apply_edits` turns text and edits into new text or raises
`EditError` (status 400/404/409 and appcmd's message); nothing is validated here beyond the
document's shape: the loader judges the result (wasp/config/commit.py).
"""

from __future__ import annotations

import re
from typing import Any

import tomlkit
import tomlkit.exceptions
from tomlkit.items import AoT, Array, InlineTable, Table

Segment = str | int | dict
Path = list[Segment]

#: Collections whose elements are identified by a key field when a selector or a duplicate
#: check needs one (the wasp.toml arrays of tables and the plain-value arrays' stand-in name).
ELEMENT_KEYS = {"pools": ("name",), "sites": ("name",), "applications": ("path",),
                "locations": ("path",), "bindings": ("binding",)}
#: appcmd's names for a plain value in a collection (`files.[value='x']`).
VALUE_KEYS = ("value", "binding")


class EditError(Exception):
    """An edit that cannot be made: `status` for the admin API, the message in appcmd's words."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


# ---------------------------------------------------------------------- path text

_SELECTOR_ITEM = re.compile(r"""\s*([A-Za-z_][\w.-]*)\s*=\s*(?:'([^']*)'|"([^"]*)"|([^,\]]*))\s*""")


def parse_selector(text: str) -> dict:
    """`name='api',type="x"` (inside the brackets) -> {"name": "api", "type": "x"}. Values are
    strings unless unquoted digits (an int: `status_code=404`) or true/false."""
    found: dict[str, Any] = {}
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _SELECTOR_ITEM.match(text, pos)
        if not m or not m.group(1):
            raise EditError(400, f"Malformed collection indexer '[{text}]': expected key='value'[,key='value']")
        key = m.group(1)
        if m.group(2) is not None or m.group(3) is not None:
            value: Any = m.group(2) if m.group(2) is not None else m.group(3)
        else:
            value = _bare(m.group(4).strip())
        if key in found:
            raise EditError(400, f"Malformed collection indexer '[{text}]': {key} twice")
        found[key] = value
        pos = m.end()
        if pos < len(text):
            if text[pos] != ",":
                raise EditError(400, f"Malformed collection indexer '[{text}]'")
            pos += 1
    if not found:
        raise EditError(400, "Malformed collection indexer '[]': expected key='value'")
    return found


def _bare(text: str) -> Any:
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if text in ("true", "false"):
        return text == "true"
    return text


def parse_path(text: str) -> Path:
    """`pools[name='api'].recycling.time` -> ["pools", {"name": "api"}, "recycling", "time"];
    appcmd's `files.[value='x']` and a leading `[name='x']` (a section's default collection)
    work too; `"a.b"` quotes a key; `[3]` is an index."""
    segments: Path = []
    i, n = 0, len(text)
    expect_key = True
    while i < n:
        c = text[i]
        if c == ".":
            if expect_key and segments and not isinstance(segments[-1], (dict, int)):
                raise EditError(400, f"Malformed path '{text}': an empty key")
            expect_key = True
            i += 1
            continue
        if c == "[":
            depth_quote = None
            j = i + 1
            while j < n and (text[j] != "]" or depth_quote):
                if text[j] in "'\"":
                    depth_quote = None if depth_quote == text[j] else (depth_quote or text[j])
                j += 1
            if j >= n:
                raise EditError(400, f"Malformed path '{text}': '[' without ']'")
            inner = text[i + 1:j]
            segments.append(int(inner) if re.fullmatch(r"\d+", inner.strip()) else parse_selector(inner))
            i = j + 1
            expect_key = False
            continue
        if c in "'\"":
            j = text.find(c, i + 1)
            if j < 0:
                raise EditError(400, f"Malformed path '{text}': unterminated quote")
            segments.append(text[i + 1:j])
            i = j + 1
            expect_key = False
            continue
        m = re.compile(r"[^.\[\]'\"]+").match(text, i)
        key = m.group(0).strip()
        if not key:
            raise EditError(400, f"Malformed path '{text}'")
        segments.append(key)
        i = m.end()
        expect_key = False
    if not segments:
        raise EditError(400, "Malformed path: empty")
    return segments


def path_text(path: Path) -> str:
    """The inverse of parse_path (for messages)."""
    out = ""
    for seg in path:
        if isinstance(seg, dict):
            out += "[" + ",".join(f"{k}='{v}'" for k, v in seg.items()) + "]"
        elif isinstance(seg, int):
            out += f"[{seg}]"
        else:
            key = seg if re.fullmatch(r"[A-Za-z0-9_-]+", seg) else f'"{seg}"'
            out += ("." if out else "") + key
    return out


# ---------------------------------------------------------------------- values

def value_item(value: Any, inline: bool = False):
    """A Python value as a tomlkit item (tables as tables, arrays of tables as arrays of tables)."""
    if isinstance(value, dict):
        table = tomlkit.inline_table() if inline else tomlkit.table()
        for k, v in value.items():
            table[k] = value_item(v, inline=True) if isinstance(v, (dict, list)) else v
        return table
    if isinstance(value, list):
        array = tomlkit.array()
        for v in value:
            array.append(value_item(v, inline=True) if isinstance(v, dict) else v)
        if len(array) > 3:
            array.multiline(True)
        return array
    return tomlkit.item(value)


def inline_text(value: Any) -> str:
    """A value as one line of TOML (for showing it)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key_text(k)} = {inline_text(v)}" for k, v in value.items()) + " }" \
            if value else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(inline_text(v) for v in value) + "]"
    return tomlkit.item(value).as_string()


def _key_text(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else tomlkit.item(key).as_string()


def plain(value: Any) -> Any:
    """A tomlkit value as plain Python."""
    if hasattr(value, "unwrap"):
        return value.unwrap()
    return value


# ---------------------------------------------------------------------- matching

def _fold(value: Any) -> Any:
    """A key as selectors compare it: case-insensitive, and `[status_code='404']` finds 404."""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value).lower() if isinstance(value, (str, int)) else value


def _matches(element: Any, selector: dict, collection: str) -> bool:
    if isinstance(element, dict):
        return all(k in element and _fold(plain(element[k])) == _fold(v) for k, v in selector.items())
    if len(selector) == 1:  # a plain value: `files.[value='x']`, `bindings.[binding='http/*:80:']`
        (key, v), = selector.items()
        return key in VALUE_KEYS + ELEMENT_KEYS.get(collection, ()) and _fold(plain(element)) == _fold(v)
    return False


def _describe(selector: dict) -> str:
    return ",".join(f"{k}='{v}'" for k, v in selector.items())


def _index(container, selector: dict, collection: str, path: Path, depth: int) -> int | None:
    for i, element in enumerate(container):
        if _matches(element, selector, collection):
            return i
    return None


def _step(node, seg: Segment, path: Path, depth: int, collection: str):
    """The child of `node` at `seg`, or None when it is not there."""
    if isinstance(seg, str):
        if not isinstance(node, (dict, Table, InlineTable)) or isinstance(node, (list, AoT, Array)):
            raise EditError(400, f"'{path_text(path[:depth])}' is not a table, so it has no key '{seg}'")
        return node.get(seg)
    if not isinstance(node, (list, AoT, Array)):
        raise EditError(400, f"'{path_text(path[:depth])}' is not a collection")
    if isinstance(seg, int):
        return node[seg] if 0 <= seg < len(node) else None
    i = _index(node, seg, collection, path, depth)
    return None if i is None else node[i]


def _not_found(path: Path, depth: int) -> EditError:
    seg = path[depth]
    where = path_text(path[:depth]) or "the file"
    if isinstance(seg, dict):
        return EditError(404, f"Cannot find element [{_describe(seg)}] in collection '{where}'.")
    return EditError(404, f"Cannot find '{path_text(path[:depth + 1])}' in {where}.")


def _walk(doc, path: Path, create: bool):
    """The parent container of the path's last segment (creating missing tables on the way
    when `create`)."""
    node = doc
    for depth, seg in enumerate(path[:-1]):
        collection = path[depth - 1] if depth and isinstance(path[depth - 1], str) else ""
        if isinstance(seg, str) and isinstance(path[depth + 1], (dict, int)):
            collection = seg
        child = _step(node, seg, path, depth, collection if not isinstance(seg, str) else "")
        if child is None:
            if not create or not isinstance(seg, str) or not isinstance(path[depth + 1], str):
                raise _not_found(path, depth)
            child = tomlkit.table() if not isinstance(node, InlineTable) else tomlkit.inline_table()
            node[seg] = child
            child = node[seg]
        node = child
    return node


def _collection_name(path: Path) -> str:
    for seg in reversed(path):
        if isinstance(seg, str):
            return seg
    return ""


# ---------------------------------------------------------------------- the edits

def apply_edits(text: str, edits: list[dict]) -> str:
    """`text` with every edit made, in order; EditError for the first that cannot be made."""
    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise EditError(400, f"the file is not valid TOML, so it cannot be edited: {exc}") from None
    for edit in edits:
        apply_edit(doc, edit)
    return spaced(tomlkit.dumps(doc), text)


_HEADER = re.compile(r"^\[\[?[^\[\]]+\]\]?\s*(#.*)?$")


def spaced(new: str, old: str) -> str:
    """A blank line before each table header that the edits added right after other lines (as
    people write TOML); the user's own lines are left as they were."""
    old_lines = [l.rstrip("\r\n") for l in old.splitlines()]
    known = set(zip(old_lines, old_lines[1:]))
    lines = new.splitlines(keepends=True)
    out: list[str] = []
    in_string = False
    for line in lines:
        if not in_string and _HEADER.match(line.strip()) and line[:1] == "[" and out \
                and out[-1].strip() \
                and (out[-1].rstrip("\r\n"), line.rstrip("\r\n")) not in known:
            out.append("\n")
        out.append(line)
        if line.count('"""') % 2 or line.count("'''") % 2:
            in_string = not in_string
    return "".join(out)


def _path_of(edit: dict) -> Path:
    path = edit.get("path")
    if isinstance(path, str):
        return parse_path(path)
    if not isinstance(path, list) or not path or not all(isinstance(s, (str, int, dict)) for s in path):
        raise EditError(400, "an edit's path is a non-empty list of keys, indexes and selectors")
    return path


def apply_edit(doc, edit: dict) -> None:
    op = edit.get("op")
    path = _path_of(edit)
    if op == "set":
        if "value" not in edit:
            raise EditError(400, f"set {path_text(path)}: no value")
        _set(doc, path, edit["value"])
    elif op == "delete":
        _delete(doc, path)
    elif op == "add":
        if "value" not in edit:
            raise EditError(400, f"add to {path_text(path)}: no value")
        _add(doc, path, edit["value"], edit.get("key"))
    else:
        raise EditError(400, f"unknown edit op {op!r}: expected set, add or delete")


def _set(doc, path: Path, value: Any) -> None:
    last = path[-1]
    parent = _walk(doc, path, create=True)
    if isinstance(last, str):
        if isinstance(parent, (list, AoT, Array)):
            raise EditError(400, f"'{path_text(path[:-1])}' is a collection: select an element first")
        if value is None:
            raise EditError(400, f"{path_text(path)}: TOML has no null; delete the key instead")
        existing = parent.get(last)
        if isinstance(value, dict) and isinstance(existing, (Table, InlineTable)):
            for k, v in value.items():  # merge into the table the user already has
                _set(doc, path + [k], v)
            return
        parent[last] = value_item(value, inline=isinstance(parent, InlineTable) or isinstance(value, list))
        return
    container = parent
    if not isinstance(container, (list, AoT, Array)):
        raise EditError(400, f"'{path_text(path[:-1])}' is not a collection")
    i = last if isinstance(last, int) else _index(container, last, _collection_name(path), path, len(path) - 1)
    if i is None or not 0 <= i < len(container):
        raise _not_found(path, len(path) - 1)
    if isinstance(value, dict) and isinstance(container[i], (Table, InlineTable)):
        for k, v in value.items():
            container[i][k] = value_item(v, inline=True) if isinstance(v, (dict, list)) else v
    else:
        container[i] = value_item(value, inline=True) if isinstance(value, (dict, list)) else value


def _delete(doc, path: Path) -> None:
    last = path[-1]
    parent = _walk(doc, path, create=False)
    if isinstance(last, str):
        if isinstance(parent, (list, AoT, Array)) or last not in parent:
            raise _not_found(path, len(path) - 1)
        del parent[last]
        return
    if not isinstance(parent, (list, AoT, Array)):
        raise EditError(400, f"'{path_text(path[:-1])}' is not a collection")
    i = last if isinstance(last, int) else _index(parent, last, _collection_name(path), path, len(path) - 1)
    if i is None or not 0 <= i < len(parent):
        raise _not_found(path, len(path) - 1)
    del parent[i]


def _add(doc, path: Path, value: Any, key: Any = None) -> None:
    """Append to the collection at `path` (an array of tables, an array, or a collection table
    `{add = [...]}`), creating it when absent; a duplicate key is appcmd's error."""
    name = _collection_name(path)
    parent = _walk(doc, path, create=True)
    last = path[-1]
    container = _step(parent, last, path, len(path) - 1, name)
    if isinstance(container, (Table, InlineTable)):
        # A collection written as { clear, remove, add = [...] }: add goes in its add list.
        parent, last, container = container, "add", container.get("add")
        path = path + ["add"]
    keys = key if isinstance(key, (list, tuple)) else ((key,) if isinstance(key, str) else ELEMENT_KEYS.get(name, ()))
    if container is not None:
        if not isinstance(container, (list, AoT, Array)):
            raise EditError(400, f"'{path_text(path)}' is not a collection")
        for element in container:
            if _duplicate(element, value, keys):
                raise EditError(409, f'Failed to add duplicate collection element "{_shown(value, keys)}".')
    if container is None:
        if not isinstance(last, str):
            raise _not_found(path, len(path) - 1)
        if isinstance(value, dict) and not isinstance(parent, InlineTable):
            aot = tomlkit.aot()
            aot.append(value_item(value))
            parent[last] = aot
        else:
            parent[last] = value_item([value])
        return
    if isinstance(container, AoT):
        container.append(value_item(value))
    else:
        container.append(value_item(value, inline=True) if isinstance(value, (dict, list)) else value)


def _duplicate(element: Any, value: Any, keys: tuple) -> bool:
    if isinstance(value, dict) and isinstance(element, dict):
        use = [k for k in keys if k in value] or [k for k in value]
        return all(k in element and _fold(plain(element[k])) == _fold(value[k]) for k in use)
    if isinstance(value, dict):  # a table added beside plain values (bindings)
        use = [k for k in keys if k in value]
        return bool(use) and _fold(plain(element)) == _fold(value[use[0]])
    if isinstance(element, dict):
        use = [k for k in keys if k in element]
        return bool(use) and _fold(plain(element[use[0]])) == _fold(value)
    return _fold(plain(element)) == _fold(value)


def _shown(value: Any, keys: tuple) -> str:
    if isinstance(value, dict):
        for k in keys:
            if k in value:
                return str(value[k])
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def lookup(text_or_doc, path: Path) -> Any:
    """The plain value at `path`, or KeyError."""
    doc = tomlkit.parse(text_or_doc) if isinstance(text_or_doc, str) else text_or_doc
    node = doc
    for depth, seg in enumerate(path):
        collection = _collection_name(path[:depth + 1]) if not isinstance(seg, str) else ""
        node = _step(node, seg, path, depth, collection)
        if node is None:
            raise KeyError(path_text(path[:depth + 1]))
    return plain(node)
