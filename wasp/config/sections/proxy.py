"""IIS system.webServer/proxy (Application Request Routing): what the reverse proxy handler does.

`enabled` turns ARR's proxy on (IIS's default: off). A request reaches the `reverse_proxy`
handler when a URL Rewrite rule rewrote it to an absolute http(s) URL (`ctx.proxy_url`), when
this section's `url` is set for its location, or when a `handlers` entry names `reverse_proxy`.
A URL's host that names a web farm (`[[web_farms]]`, case ignored) goes to one of the farm's
servers; any other host is contacted as written. The proxy never goes anywhere the configuration
does not say: a rewrite rule that builds its target from the request is the administrator's
choice (docs/reverse-proxy.md, SSRF).
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from wasp.config.model import Duration, Size, doc
from wasp.config.sections import Section, section

#: http(s)://host[:port][/path]; no user info, no fragment, no spaces or control characters.
ProxyUrl = Annotated[str, Meta(pattern=r"^(|https?://[A-Za-z0-9._\-]+(:\d{1,5})?(/[^\s#\x00-\x1f\x7f]*)?)$")]
HeaderName = Annotated[str, Meta(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")]


@section("proxy", override_mode_default="Allow")
class Proxy(Section):
    """IIS system.webServer/proxy (ARR 3.0), plus wasp's `url`."""

    enabled: Annotated[bool, doc(
        "Turn the reverse proxy on (IIS's ARR `enabled`, default false): without it a rewrite to an "
        "absolute URL and a `url` here are 404.4."
    )] = False
    url: Annotated[ProxyUrl, doc(
        "wasp: proxy every request of this location to this farm or server, \"http://farm1\" or "
        "\"http://127.0.0.1:8000/base\"; the request's path and query are appended as received. "
        "\"\" = only requests a rewrite rule sends to an absolute URL."
    )] = ""
    timeout: Annotated[Duration, doc(
        "How long the proxy waits to connect, for the response head and between body reads (ARR's "
        "timeout); past it the client gets 502.3 (or a cut once the response started)."
    )] = Duration(30.0)
    preserve_host_header: Annotated[bool, doc(
        "Send the client's Host to the backend (ARR's preserveHostHeader); false sends the "
        "target's host (the chosen server's address:port for a farm)."
    )] = False
    reverse_rewrite_host_in_response_headers: Annotated[bool, doc(
        "Rewrite the backend's host in Location, Content-Location and Refresh to the client's Host "
        "(ARR's reverseRewriteHostInResponseHeaders)."
    )] = True
    x_forwarded_for_header_name: Annotated[HeaderName, doc(
        "The header carrying the client address to the backend (ARR's xForwardedForHeaderName)."
    )] = "X-Forwarded-For"
    include_port_in_x_forwarded_for: Annotated[bool, doc(
        "Write the client's port after its address in that header (ARR's includePortInXForwardedFor)."
    )] = True
    forwarded: Annotated[bool, doc(
        "wasp: also send RFC 7239 `Forwarded: for=...;proto=...;host=...`."
    )] = True
    keep_alive: Annotated[bool, doc(
        "Keep connections to backends open and reuse them (one pool per server and worker)."
    )] = True
    max_idle_connections: Annotated[int, Meta(ge=0, le=10000, description=(
        "wasp: idle keep-alive connections a worker keeps per backend server."))] = 32
    idle_timeout: Annotated[Duration, doc(
        "wasp: an idle backend connection older than this is closed rather than reused."
    )] = Duration(30.0)
    max_response_header_size: Annotated[Size, Meta(ge=1024, description=(
        "Largest response head a backend may send (ARR's maxResponseHeaderSize); larger is 502.3."))] = Size(65536)
    response_buffer_limit: Annotated[Size, Meta(ge=4096, description=(
        "Response bytes read ahead of a slow client before the proxy stops reading from the "
        "backend (ARR's responseBufferLimit): back-pressure reaches the backend."))] = Size(4 * 1024 * 1024)
