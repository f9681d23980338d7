"""WebDAV XML request bodies in, multistatus documents out. No I/O.

Parsing is expat with namespace processing and **no DTD at all**: a body with a DOCTYPE is
refused before any of it is used, so there are no entities to expand (billion laughs), no
external entities to fetch (XXE), no parameter entities. Size, element count and depth are
bounded. Names are (namespace, local) pairs; "" is the null namespace.

Dead property values are kept as XML text that declares every namespace it uses (generated
prefixes), so a stored value can be placed inside any response document as it is.
"""

from __future__ import annotations

from xml.parsers import expat

from wasp.errors import HttpError

DAV = "DAV:"
MAX_DEPTH = 64
MAX_ELEMENTS = 20000


class BadXml(HttpError):
    status = 400
    reason = "Bad Request"


class XmlTooLarge(HttpError):
    status = 413
    reason = "Request Entity Too Large"


class Element:
    __slots__ = ("ns", "name", "attrs", "children", "text")

    def __init__(self, ns: str, name: str, attrs: dict):
        self.ns = ns
        self.name = name
        self.attrs = attrs          # {(ns, name): value}
        self.children: list = []    # Element or str (text), in document order
        self.text = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.ns, self.name)

    def elements(self) -> list["Element"]:
        return [c for c in self.children if c.__class__ is Element]

    def find(self, ns: str, name: str) -> "Element | None":
        for child in self.children:
            if child.__class__ is Element and child.ns == ns and child.name == name:
                return child
        return None

    def all_text(self) -> str:
        return "".join(c if c.__class__ is str else c.all_text() for c in self.children)


def _split(name: str) -> tuple[str, str]:
    ns, sep, local = name.rpartition(" ")
    return (ns, local) if sep else ("", name)


def parse(body: bytes, limit: int = 1000000) -> Element:
    """The root Element of `body`, or BadXml / XmlTooLarge."""
    if limit and len(body) > limit:
        raise XmlTooLarge(f"XML body over {limit} bytes")
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[Element] = []
    root: list[Element] = []
    count = 0

    def refuse(*_args):
        raise BadXml("a DTD, entity or processing instruction in a WebDAV body")

    def start(name, attrs):
        nonlocal count
        count += 1
        if count > MAX_ELEMENTS or len(stack) >= MAX_DEPTH:
            raise BadXml("XML body too deep or with too many elements")
        element = Element(*_split(name), {_split(k): v for k, v in attrs.items()})
        if stack:
            stack[-1].children.append(element)
        elif root:
            raise BadXml("two root elements")
        else:
            root.append(element)
        stack.append(element)

    def end(_name):
        stack.pop()

    def text(data):
        if stack:
            children = stack[-1].children
            if children and children[-1].__class__ is str:
                children[-1] += data
            else:
                children.append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.SkippedEntityHandler = refuse
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise BadXml(f"malformed XML: {exc}") from None
    except RecursionError:
        raise BadXml("XML body too deep") from None
    if not root:
        raise BadXml("empty XML body")
    return root[0]


# ---- output ----

def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_attr(text: str) -> str:
    return escape(text).replace('"', "&quot;").replace("\r", "&#13;").replace("\n", "&#10;") \
        .replace("\t", "&#9;")


class Prefixes:
    """Namespace -> prefix for one element subtree being written (DAV: is always "D")."""

    def __init__(self):
        self.names: dict[str, str] = {DAV: "D"}

    def tag(self, ns: str, name: str, declared: set) -> tuple[str, str]:
        """(qualified name, declarations to add on this element)."""
        if not ns:
            return name, ""
        prefix = self.names.get(ns)
        if prefix is None:
            prefix = self.names[ns] = f"ns{len(self.names)}"
        if prefix == "D" or ns in declared:
            return f"{prefix}:{name}", ""
        declared.add(ns)
        return f"{prefix}:{name}", f' xmlns:{prefix}="{escape_attr(ns)}"'


def serialize_children(element: Element) -> str:
    """The content of `element` as self-contained XML (each namespace declared where used)."""
    prefixes = Prefixes()
    return "".join(_write(child, prefixes, set()) for child in element.children)


def _write(node, prefixes: Prefixes, declared: set) -> str:
    if node.__class__ is str:
        return escape(node)
    mine = set(declared)
    qname, decls = prefixes.tag(node.ns, node.name, mine)
    if node.ns == DAV and "D" not in declared:
        decls += ' xmlns:D="DAV:"'
        mine.add(DAV)
    attrs = []
    for (ans, aname), value in node.attrs.items():
        if ans:
            aq, adecl = prefixes.tag(ans, aname, mine)
            if ans == DAV and DAV not in mine:
                adecl = ' xmlns:D="DAV:"'
                mine.add(DAV)
            decls += adecl
        else:
            aq = aname
        attrs.append(f' {aq}="{escape_attr(value)}"')
    inner = "".join(_write(c, prefixes, mine) for c in node.children)
    head = f"<{qname}{decls}{''.join(attrs)}"
    return f"{head}>{inner}</{qname}>" if inner else f"{head}/>"


def property_tag(ns: str, name: str, value: str | None = None) -> str:
    """A property element inside a multistatus document (whose root declares only D:)."""
    if ns == DAV:
        open_, close = f"D:{name}", f"D:{name}"
    elif not ns:
        open_, close = name, name
    else:
        open_, close = f'P:{name} xmlns:P="{escape_attr(ns)}"', f"P:{name}"
    if not value:
        return f"<{open_}/>"
    return f"<{open_}>{value}</{close}>"


def multistatus(responses: list[str]) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">'
            + "".join(responses) + "</D:multistatus>").encode("utf-8")


def propstat(href: str, groups: list[tuple[str, list[str]]]) -> str:
    """One D:response with a D:propstat per (status line, [property XML])."""
    parts = [f"<D:response><D:href>{escape(href)}</D:href>"]
    for status, props in groups:
        if props:
            parts.append(f"<D:propstat><D:prop>{''.join(props)}</D:prop>"
                         f"<D:status>HTTP/1.1 {status}</D:status></D:propstat>")
    parts.append("</D:response>")
    return "".join(parts)


def status_response(href: str, status: str) -> str:
    return f"<D:response><D:href>{escape(href)}</D:href><D:status>HTTP/1.1 {status}</D:status></D:response>"


def error_body(condition: str) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            f'<D:error xmlns:D="DAV:"><D:{condition}/></D:error>').encode("utf-8")
