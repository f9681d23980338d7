"""HTTP/1.x helpers the front needs: reason phrases, HTTP.sys error pages, dates. No I/O.

The error pages copy HTTP.sys byte for byte (shared/reference/iis-behaviour.md §5.2): the DOCTYPE
with no space between its two quoted strings, CRLF line ends, `text/html; charset=us-ascii`. The
one difference: the Server header is wasp's configured one, not `Microsoft-HTTPAPI/2.0`.

Each protocol error is an `HttpError` subclass whose `reason` is HTTP.sys's HTTPERR reason phrase;
the page to answer with is looked up by that reason.
"""

from __future__ import annotations

import time
from http import HTTPStatus

from wasp.errors import BadRequest, Forbidden, HttpError, NotFound, ServiceUnavailable

# ---- errors the front answers itself ----------------------------------------------------------


class InvalidVerb(BadRequest):
    reason = "Verb"


class InvalidUrl(BadRequest):
    reason = "URL"


class InvalidHeader(BadRequest):
    reason = "Header"


class InvalidHostname(BadRequest):
    reason = "Hostname"


class UrlTooLong(HttpError):
    status = 414
    reason = "URL_Length"


class FieldTooLong(HttpError):
    """One header line over MaxFieldLength."""

    status = 431
    reason = "FieldLength"


class RequestTooLong(HttpError):
    """Request line plus headers over MaxRequestBytes."""

    status = 431
    reason = "RequestLength"


class EntityTooLarge(HttpError):
    """Content-Length over requestFiltering's maxAllowedContentLength (IIS 413.1)."""

    status = 413
    substatus = 1
    reason = "EntityTooLarge"


class SslRequired(Forbidden):
    """IIS 403.4: the application's access sslFlags say "ssl" and the request came over http."""

    substatus = 4
    reason = "SslRequired"


class CertRequired(Forbidden):
    """IIS 403.7: the application's access sslFlags say "ssl_require_cert" and the request came
    without a verified client certificate."""

    substatus = 7
    reason = "CertRequired"


class UnknownEncoding(HttpError):
    """A Transfer-Encoding other than chunked."""

    status = 501
    reason = "N/I"


class VersionNotSupported(HttpError):
    status = 505
    reason = "Version_N/S"


class NoApplication(NotFound):
    """The site has no application for the path (no URL registration matches in HTTP.sys)."""

    reason = "NotFound"


class AppPoolUnavailable(ServiceUnavailable):
    """The pool cannot take the request: QueueFull, Disabled, AppOffline, Timer_AppPool,
    Connection_Abandoned_By_AppPool. `close` is set when the pool answers at TCP level."""

    def __init__(self, reason: str, close: bool = False):
        super().__init__(reason, reason=reason)
        self.close = close


# ---- status lines ------------------------------------------------------------------------------

def reason_phrase(status: int) -> str:
    """The standard reason phrase (Python's HTTPStatus table), "Unknown" for unregistered codes.
    Every process uses this one: the front's error pages, the worker's status lines, the admin API."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def no_body_status(status: int) -> bool:
    """Statuses whose responses never carry a body (RFC 9110 §6.4.1)."""
    return status < 200 or status == 204 or status == 304


# ---- HTTP.sys error pages ---------------------------------------------------------------------

# reason -> (status, <TITLE>, <h2>, <p>)
_PAGES: dict[str, tuple[int, str, str, str]] = {
    "Verb": (400, "Bad Request", "Bad Request - Invalid Verb", "HTTP Error 400. The request verb is invalid."),
    "URL": (400, "Bad Request", "Bad Request - Invalid URL", "HTTP Error 400. The request URL is invalid."),
    "Header": (400, "Bad Request", "Bad Request - Invalid Header",
               "HTTP Error 400. The request has an invalid header name."),
    "Hostname": (400, "Bad Request", "Bad Request - Invalid Hostname",
                 "HTTP Error 400. The request hostname is invalid."),
    "BadRequest": (400, "Bad Request", "Bad Request", "HTTP Error 400. The request is badly formed."),
    "URL_Length": (414, "Request URL Too Long", "Request URL Too Long",
                   "HTTP Error 414. The request URL is too long."),
    "FieldLength": (431, "Request Header Fields Too Large", "Request Header Fields Too Large",
                    "HTTP Error 431. The size of the request headers is too long."),
    "RequestLength": (431, "Request Header Fields Too Large", "Request Header Fields Too Large",
                      "HTTP Error 431. The size of the request headers is too long."),
    "EntityTooLarge": (413, "Request Entity Too Large", "Request Entity Too Large",
                       "HTTP Error 413.1. The request entity is too large."),
    "SslRequired": (403, "Forbidden", "Forbidden - SSL Required",
                    "HTTP Error 403.4. The page you are trying to access is secured with SSL."),
    "CertRequired": (403, "Forbidden", "Forbidden - Client Certificate Required",
                     "HTTP Error 403.7. The page you are trying to access requires a client certificate."),
    "N/I": (501, "Not Implemented", "Not Implemented", "HTTP Error 501. The request is not supported."),
    "Version_N/S": (505, "HTTP Version Not Supported", "HTTP Version Not Supported",
                    "HTTP Error 505. The HTTP version is not supported."),
    "NotFound": (404, "Not Found", "Not Found", "HTTP Error 404. The requested resource is not found."),
}

# status -> page when the reason has no page of its own (every 503 reason shares one page)
_STATUS_PAGES: dict[int, tuple[str, str, str]] = {
    400: ("Bad Request", "Bad Request", "HTTP Error 400. The request is badly formed."),
    404: ("Not Found", "Not Found", "HTTP Error 404. The requested resource is not found."),
    500: ("Internal Server Error", "Internal Server Error",
          "HTTP Error 500. The server encountered an internal error."),
    502: ("Bad Gateway", "Bad Gateway", "HTTP Error 502. The gateway received an invalid response."),
    503: ("Service Unavailable", "Service Unavailable", "HTTP Error 503. The service is unavailable."),
}


def error_page(title: str, heading: str, message: str) -> bytes:
    return (
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/html4/strict.dtd">\r\n'
        f"<HTML><HEAD><TITLE>{title}</TITLE>\r\n"
        '<META HTTP-EQUIV="Content-Type" Content="text/html; charset=us-ascii"></HEAD>\r\n'
        f"<BODY><h2>{heading}</h2>\r\n"
        f"<hr><p>{message}</p>\r\n"
        "</BODY></HTML>\r\n"
    ).encode("ascii")


_BODIES: dict[tuple[int, str], bytes] = {}


def error_body(status: int, reason: str = "") -> bytes:
    """The HTTP.sys page for a status and HTTPERR reason (cached)."""
    key = (status, reason)
    body = _BODIES.get(key)
    if body is None:
        page = _PAGES.get(reason)
        if page is not None and page[0] == status:
            title, heading, message = page[1:]
        elif status in _STATUS_PAGES:
            title, heading, message = _STATUS_PAGES[status]
        else:
            phrase = reason_phrase(status)
            title, heading, message = phrase, phrase, f"HTTP Error {status}. {phrase}."
        body = _BODIES[key] = error_page(title, heading, message)
    return body


def error_response(status: int, reason: str, *, server: bytes, date: bytes, close: bool,
                   head_only: bool = False) -> bytes:
    """A whole HTTP.sys-style error response. `server` and `date` are header values ("" = none)."""
    body = error_body(status, reason)
    lines = [b"HTTP/1.1 %d %s\r\nContent-Type: text/html; charset=us-ascii\r\n"
             % (status, reason_phrase(status).encode("ascii"))]
    if server:
        lines.append(b"Server: " + server + b"\r\n")
    if date:
        lines.append(b"Date: " + date + b"\r\n")
    if close:
        lines.append(b"Connection: close\r\n")
    lines.append(b"Content-Length: %d\r\n\r\n" % len(body))
    if not head_only:
        lines.append(body)
    return b"".join(lines)


# ---- dates ---------------------------------------------------------------------------------------

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(timestamp: float | None = None) -> bytes:
    """IMF-fixdate: b"Sun, 06 Nov 1994 08:49:37 GMT"."""
    t = time.gmtime(timestamp)
    return b"%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _DAYS[t.tm_wday].encode(), t.tm_mday, _MONTHS[t.tm_mon].encode(), t.tm_year,
        t.tm_hour, t.tm_min, t.tm_sec)


# ---- request header values --------------------------------------------------------------------


def host_key(value: bytes) -> bytes:
    """A Host header (or absolute-form authority) as bindings compare it: lower case, no port.

    Raises InvalidHostname for a value no binding could name (empty brackets, spaces, ...)."""
    host = value.strip().lower()
    if host.startswith(b"["):
        end = host.find(b"]")
        if end < 0 or (len(host) > end + 1 and host[end + 1:end + 2] != b":"):
            raise InvalidHostname("bad IPv6 literal")
        port = host[end + 2:]
        host = host[:end + 1]
    else:
        host, sep, port = host.partition(b":")
        if sep and not port:
            raise InvalidHostname("empty port")
    if port and not port.isdigit():
        raise InvalidHostname("bad port")
    if host.translate(None, _HOST_CHARS):
        raise InvalidHostname("bad character in host")
    return host


_HOST_CHARS = b"abcdefghijklmnopqrstuvwxyz0123456789.-_[]:%"
