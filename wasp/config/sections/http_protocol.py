"""IIS system.webServer/httpProtocol (ProtocolSupportModule): keep-alive, custom and redirect
headers, the Server header, and the OPTIONS and TRACE verbs.

`custom_headers` go on every response of the URL (error pages included), `redirect_headers` only
on 3xx responses; both are IIS collections keyed by name (`{ clear, remove = ["X-Powered-By"],
add = [...] }` at a lower level). Names the front owns (Content-Length, Transfer-Encoding,
Connection, ...) are refused, and so is any control character: a header value cannot end the
head or add a header (response splitting).
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct, field

from wasp.config.model import doc
from wasp.config.sections import Section, check, collection, section

#: An RFC 9110 token.
HeaderName = Annotated[str, Meta(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")]
#: A header value: visible characters, spaces and tabs, nothing that ends a line.
HeaderValue = Annotated[str, Meta(pattern=r"^[^\x00-\x08\x0a-\x1f\x7f]*$")]

#: Headers the front writes itself (framing and connection management).
RESERVED = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
                      "te", "trailer", "proxy-connection", "date"})


class HeaderEntry(Struct, forbid_unknown_fields=True, kw_only=True):
    """One `<customHeaders>` / `<redirectHeaders>` `<add name value>`."""

    name: Annotated[HeaderName, doc("The header's name.")]
    value: Annotated[HeaderValue, doc("Its value (no CR, LF or other control character).")] = ""


@check(HeaderEntry, "name")
def _check_name(value: str, path: str, add) -> None:
    if value.lower() in RESERVED:
        add(path, f"{value} is written by the server itself and cannot be a custom header")


@section("http_protocol", override_mode_default="Allow")
class HttpProtocol(Section):
    """IIS system.webServer/httpProtocol."""

    allow_keep_alive: Annotated[bool, doc(
        "IIS's allowKeepAlive: false closes the client connection after each response of these "
        "URLs (`Connection: close`)."
    )] = True
    custom_headers: Annotated[list[HeaderEntry], collection(key="name"), doc(
        "Headers sent with every response of these URLs, error pages included (IIS's customHeaders)."
    )] = field(default_factory=list)
    redirect_headers: Annotated[list[HeaderEntry], collection(key="name"), doc(
        "Headers sent only with redirect (3xx) responses (IIS's redirectHeaders)."
    )] = field(default_factory=list)
    remove_server_header: Annotated[bool, doc(
        "IIS 10's removeServerHeader: send no Server header with these URLs' responses (the "
        "server-wide name is [server] server_header)."
    )] = False
    allow_trace: Annotated[bool, doc(
        "wasp: answer TRACE by echoing the request head (without Cookie, Authorization and "
        "Proxy-Authorization). false (the default) answers TRACE 405, as IIS without its "
        "TRACEVerbHandler does: TRACE echo is a cross-site tracing aid."
    )] = False
