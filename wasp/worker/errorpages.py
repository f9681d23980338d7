"""IIS-style error responses, as the application's `http_errors.error_mode` says.

Detailed: IIS's detailed error page (status.substatus, module, notification, handler, URL,
physical path). Custom: the custom error page of IIS's en-US `custerr` folder or, for a status
without one, a one-line message, which is what IIS sends when no `<error>` entry matches
(shared/reference/iis-behaviour.md §2.3): no substatus, module, handler, path or exception text.
DetailedLocalOnly (IIS's default): detailed for a local request (`is_local`), custom otherwise.
Neither page ever carries an exception's message or traceback; those go to the worker log.
"""

from __future__ import annotations

import html
import ipaddress

from wasp.errors import HttpError
from wasp.wire.http import reason_phrase


class MethodNotAllowed(HttpError):
    status = 405
    reason = "MethodNotAllowed"

    def __init__(self, allow: str, detail: str = ""):
        super().__init__(detail)
        self.headers = [("Allow", allow)]


class RangeNotSatisfiable(HttpError):
    status = 416
    reason = "RangeNotSatisfiable"

    def __init__(self, size: int):
        super().__init__("requested range not satisfiable")
        self.headers = [("Content-Range", f"bytes */{size}")]


# custerr/en-US/<status>.htm: (h2, h3)
_CUSTOM = {
    401: ("401 - Unauthorized: Access is denied due to invalid credentials.",
          "You do not have permission to view this directory or page using the credentials that you supplied."),
    403: ("403 - Forbidden: Access is denied.",
          "You do not have permission to view this directory or page using the credentials that you supplied."),
    404: ("404 - File or directory not found.",
          "The resource you are looking for might have been removed, had its name changed, or is temporarily unavailable."),
    405: ("405 - HTTP verb used to access this page is not allowed.",
          "The page you are looking for cannot be displayed because an invalid method (HTTP verb) was used to attempt access."),
    406: ("406 - Client browser does not accept the MIME type of the requested page.",
          "The page you are looking for cannot be opened by your browser because it has a file name extension that your browser does not accept."),
    412: ("412 - Precondition set by the client failed when evaluated on the Web server.",
          "The request was not completed due to preconditions that are set in the request."),
    500: ("500 - Internal server error.",
          "There is a problem with the resource you are looking for, and it cannot be displayed."),
    501: ("501 - Header values specify a method that is not implemented.",
          "The page you are looking for cannot be displayed because a header value in the request does not match certain configuration settings on the Web server."),
    502: ("502 - Web server received an invalid response while acting as a gateway or proxy server.",
          "There is a problem with the page you are looking for, and it cannot be displayed. When the Web server (while acting as a gateway or proxy) contacted the upstream content server, it received an invalid response from the content server."),
}

# Detailed error descriptions by (status, substatus): (title suffix, description)
_DETAILED = {
    (403, 14): ("Forbidden", "The Web server is configured to not list the contents of this directory."),
    (404, 0): ("Not Found", "The resource you are looking for has been removed, had its name changed, or is temporarily unavailable."),
    (404, 3): ("Not Found", "The page you are requesting cannot be served because of the extension configuration. If the page is a script, add a handler. If the file should be downloaded, add a MIME map."),
    (404, 4): ("Not Found", "The resource you are looking for does not have a handler associated with it."),
    (404, 8): ("Not Found", "The request filtering module is configured to deny a path in the URL that contains a hiddenSegment section."),
    (500, 19): ("Internal Server Error", "The requested page cannot be accessed because the related configuration data for the page is invalid."),
    (404, 5): ("URL Sequence Denied", "The request filtering module is configured to deny a request that contains a URL sequence."),
    (404, 6): ("Verb Denied", "The request filtering module is configured to deny the HTTP verb."),
    (404, 7): ("Not Found", "The request filtering module is configured to deny the file extension."),
    (404, 11): ("Not Found", "The request filtering module is configured to deny a request that contains a double escape sequence."),
    (404, 12): ("Not Found", "The request filtering module is configured to deny a request that contains high bit characters."),
    (404, 14): ("URL Too Long", "The request filtering module is configured to deny a request where the URL is too long."),
    (404, 15): ("Query String Too Long", "The request filtering module is configured to deny a request where the query string is too long."),
    (404, 18): ("Query String Sequence Denied", "The request filtering module is configured to deny a request that contains a query string sequence."),
    (404, 19): ("Denied by filtering rule", "The request filtering module is configured to deny a request based on a filtering rule."),
    (404, 20): ("Too Many URL Segments", "The request URL contains too many segments."),
    (413, 1): ("Request Entity Too Large", "The request filtering module is configured to deny a request that exceeds the request content length."),
    (404, 13): ("Content Length Too Large", "The request filtering module is configured to deny a request that exceeds the request content length."),
    (404, 10): ("Request Header Too Long", "The request filtering module is configured to deny a request where the request header is too long."),
    (431, 0): ("Request Header Fields Too Large", "The request filtering module is configured to deny a request where a header is too long."),
    (405, 0): ("Method Not Allowed", "The page you are looking for cannot be displayed because an invalid method (HTTP verb) is being used."),
    (500, 0): ("Internal Server Error", "The page cannot be displayed because an internal server error has occurred."),
}

_STYLE = """<style type="text/css">
<!--
body{margin:0;font-size:.7em;font-family:Verdana, Arial, Helvetica, sans-serif;background:#EEEEEE;}
fieldset{padding:0 15px 10px 15px;}
h1{font-size:2.4em;margin:0;color:#FFF;}
h2{font-size:1.7em;margin:0;color:#CC0000;}
h3{font-size:1.2em;margin:10px 0 0 0;color:#000000;}
#header{width:96%;margin:0 0 0 0;padding:6px 2% 6px 2%;font-family:"trebuchet MS", Verdana, sans-serif;color:#FFF;
background-color:#555555;}
#content{margin:0 0 0 2%;position:relative;}
.content-container{background:#FFF;width:96%;margin-top:8px;padding:10px;position:relative;}
-->
</style>"""

_HEAD = ('<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
         '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\r\n'
         '<html xmlns="http://www.w3.org/1999/xhtml">\r\n<head>\r\n'
         '<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1"/>\r\n')

#: Headers a reverse proxy adds for the client it forwards (nginx's X-Real-IP included).
_FORWARDING = frozenset({b"x-forwarded-for", b"forwarded", b"x-real-ip"})


def is_local(head) -> bool:
    """IIS's local request: one from the machine itself, told by the client address (a loopback
    address, IPv4-mapped ones included). When a trusted proxy named the client (`head.proxied`:
    the front resolved it, docs/front.md), that client's address alone decides. Otherwise a
    request carrying a forwarding header is not local whatever address it comes from: behind a
    reverse proxy on the same host that is not in server.trusted_proxies every connection is from
    loopback, and the visitor is whoever the proxy says it forwards for."""
    client = head.client
    if not client:
        return False
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if not address.is_loopback:
        return False
    if getattr(head, "proxied", False):
        return True
    return not any(name.lower() in _FORWARDING for name, _value in head.headers)


def detailed_for(ctx) -> bool:
    """Whether `ctx`'s client gets the detailed error page (the URL's effective error_mode: a
    location or a web.toml may set it)."""
    mode = ctx.config.http_errors.error_mode
    return mode == "Detailed" or (mode == "DetailedLocalOnly" and is_local(ctx.head))


def custom_page(status: int) -> str:
    if status not in _CUSTOM:
        return f"The page cannot be displayed because an error has occurred ({status} {reason_phrase(status)}).\r\n"
    h2, h3 = _CUSTOM[status]
    return (f"{_HEAD}<title>{h2}</title>\r\n{_STYLE}\r\n</head>\r\n<body>\r\n"
            f'<div id="header"><h1>Server Error</h1></div>\r\n<div id="content">\r\n'
            f' <div class="content-container"><fieldset>\r\n  <h2>{h2}</h2>\r\n  <h3>{h3}</h3>\r\n'
            f" </fieldset></div>\r\n</div>\r\n</body>\r\n</html>\r\n")


def detailed_page(status: int, substatus: int, *, module: str, notification: str, handler: str,
                  url: str, physical_path: str, extra: tuple = ()) -> str:
    title, description = _DETAILED.get((status, substatus), (reason_phrase(status), ""))
    code = f"{status}.{substatus}"
    rows = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>\r\n"
        for name, value in (("Module", module), ("Notification", notification), ("Handler", handler),
                            ("Requested URL", url), ("Physical Path", physical_path), *extra)
        if value)
    return (f"{_HEAD}<title>wasp Detailed Error - {code} - {title}</title>\r\n{_STYLE}\r\n</head>\r\n"
            f'<body>\r\n<div id="header"><h1>Server Error in Application</h1></div>\r\n'
            f'<div id="content">\r\n <div class="content-container"><fieldset>\r\n'
            f"  <h2>HTTP Error {code} - {title}</h2>\r\n  <h3>{html.escape(description)}</h3>\r\n"
            f" </fieldset></div>\r\n"
            f' <div class="content-container"><fieldset><h3>Detailed Error Information:</h3>\r\n'
            f"<table>\r\n{rows}</table>\r\n </fieldset></div>\r\n</div>\r\n</body>\r\n</html>\r\n")


def render(exc: HttpError, ctx) -> tuple[bytes, bytes]:
    """-> (response block, body) for an HttpError raised while serving `ctx`."""
    status, substatus = exc.status, exc.substatus
    head = ctx.head
    if ctx.filters is not None:
        # The server's own error page: not an existing response for custom_error to judge.
        ctx.filters = [f for f in ctx.filters if not getattr(f, "custom_error", False)] or None
    if detailed_for(ctx):
        handler = getattr(ctx.handler, "id", "") if ctx.handler is not None else ""
        text = detailed_page(
            status, substatus, module=ctx.module or "", handler=handler,
            notification=ctx.phase.title if ctx.phase is not None else "",
            url=head.path.decode("utf-8", "replace"), physical_path=ctx.file_path or "",
            extra=tuple(getattr(exc, "detail_rows", ())))
    else:
        from wasp.worker.custompages import custom_response

        page = custom_response(ctx, status, substatus)
        if page is not None:
            block, body = page
            if block.startswith(b"302 "):
                return block, body  # a Redirect page: the error's own headers (Allow) are not its
            extra = "".join(f"{name}: {value}\r\n" for name, value in getattr(exc, "headers", ()))
            return block + extra.encode("latin-1"), body
        text = custom_page(status)
    body = text.encode("latin-1", "replace")
    lines = [f"{status} {reason_phrase(status)}\r\n", "Content-Type: text/html\r\n"]
    lines.extend(f"{name}: {value}\r\n" for name, value in getattr(exc, "headers", ()))
    lines.append(f"Content-Length: {len(body)}\r\n")
    return "".join(lines).encode("latin-1"), body

