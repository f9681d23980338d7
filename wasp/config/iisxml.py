"""A safe XML reader for IIS's applicationHost.config and web.config files (`wasp import-iis`).

IIS's files never have a DTD, so none is accepted: a `<!DOCTYPE` (and with it every entity
declaration, internal or external) is refused before any entity could be expanded. That closes
XXE (no external entity or DTD is ever fetched or read) and entity expansion bombs (billion
laughs, quadratic blow-up: there are no entities to expand beyond XML's five predefined ones).
The file's size and the element depth are bounded too. The tree is plain `Node`s with the line
each element starts on, for the import report.
"""

from __future__ import annotations

from xml.parsers import expat

#: Larger than any real applicationHost.config (a default install is ~50 KB).
MAX_BYTES = 32 * 1024 * 1024
MAX_DEPTH = 64


class XmlRefused(ValueError):
    """The file is not XML wasp will read (malformed, a DTD or entity, too large, too deep)."""


class Node:
    __slots__ = ("tag", "attrs", "children", "line")

    def __init__(self, tag: str, attrs: dict[str, str], line: int):
        self.tag = tag
        self.attrs = attrs
        self.children: list[Node] = []
        self.line = line

    def child(self, tag: str) -> "Node | None":
        for c in self.children:
            if c.tag == tag:
                return c
        return None

    def all(self, tag: str) -> list["Node"]:
        return [c for c in self.children if c.tag == tag]

    def find(self, path: str) -> "Node | None":
        node: Node | None = self
        for part in path.split("/"):
            if node is None:
                return None
            node = node.child(part)
        return node

    def __repr__(self) -> str:
        return f"<{self.tag} {self.attrs} line {self.line}>"


def parse(data: bytes, name: str = "<xml>") -> Node:
    """The document element of `data`; XmlRefused with the reason and line otherwise."""
    if len(data) > MAX_BYTES:
        raise XmlRefused(f"{name}: larger than {MAX_BYTES} bytes")
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[Node] = []
    root: list[Node] = []

    def refuse(what: str):
        def handler(*_args):
            raise XmlRefused(f"{name}:{parser.CurrentLineNumber}: {what} refused (IIS's files have "
                             "none; entities are how XXE and entity-expansion attacks work)")
        return handler

    def start(tag, attrs):
        if len(stack) >= MAX_DEPTH:
            raise XmlRefused(f"{name}:{parser.CurrentLineNumber}: elements nested deeper than {MAX_DEPTH}")
        node = Node(tag, attrs, parser.CurrentLineNumber)
        if stack:
            stack[-1].children.append(node)
        else:
            root.append(node)
        stack.append(node)

    def end(_tag):
        stack.pop()

    parser.StartDoctypeDeclHandler = refuse("a DOCTYPE")
    parser.EntityDeclHandler = refuse("an entity declaration")
    parser.UnparsedEntityDeclHandler = refuse("an entity declaration")
    parser.ExternalEntityRefHandler = refuse("an external entity")
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.buffer_text = True
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise XmlRefused(f"{name}:{exc.lineno}: not well-formed XML ({expat.ErrorString(exc.code)})") from None
    if not root:
        raise XmlRefused(f"{name}: no document element")
    return root[0]
