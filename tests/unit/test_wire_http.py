"""wasp.wire.http: HTTP.sys error pages byte for byte (reference §5.2), dates, Host values."""

from __future__ import annotations

import pytest

from wasp.wire.http import (InvalidHostname, error_body, error_page, error_response, host_key,
                            http_date, no_body_status, reason_phrase)

INVALID_VERB = (
    b'<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/html4/strict.dtd">\r\n'
    b'<HTML><HEAD><TITLE>Bad Request</TITLE>\r\n'
    b'<META HTTP-EQUIV="Content-Type" Content="text/html; charset=us-ascii"></HEAD>\r\n'
    b'<BODY><h2>Bad Request - Invalid Verb</h2>\r\n'
    b'<hr><p>HTTP Error 400. The request verb is invalid.</p>\r\n'
    b'</BODY></HTML>\r\n'
)


def test_invalid_verb_page_is_http_sys_byte_for_byte():
    body = error_body(400, "Verb")
    assert body == INVALID_VERB
    assert len(body) == 326


def test_request_too_long_variant_has_http_sys_length():
    # The one other length a capture gives (reference §5.2): 346.
    page = error_page("Bad Request", "Bad Request - Request Too Long",
                      "HTTP Error 400. The size of the request headers is too long.")
    assert len(page) == 346


@pytest.mark.parametrize("status, reason, heading, message", [
    (400, "URL", b"Bad Request - Invalid URL", b"HTTP Error 400. The request URL is invalid."),
    (400, "Hostname", b"Bad Request - Invalid Hostname", b"HTTP Error 400. The request hostname is invalid."),
    (400, "Header", b"Bad Request - Invalid Header", b"HTTP Error 400. The request has an invalid header name."),
    (400, "BadRequest", b"Bad Request", b"HTTP Error 400. The request is badly formed."),
    (414, "URL_Length", b"Request URL Too Long", b"HTTP Error 414. The request URL is too long."),
    (431, "FieldLength", b"Request Header Fields Too Large", b"HTTP Error 431."),
    (503, "QueueFull", b"Service Unavailable", b"HTTP Error 503. The service is unavailable."),
    (503, "AppOffline", b"Service Unavailable", b"HTTP Error 503. The service is unavailable."),
    (404, "NotFound", b"Not Found", b"HTTP Error 404. The requested resource is not found."),
    (505, "Version_N/S", b"HTTP Version Not Supported", b"HTTP Error 505."),
    (501, "N/I", b"Not Implemented", b"HTTP Error 501."),
])
def test_page_variants(status, reason, heading, message):
    body = error_body(status, reason)
    assert b"<h2>" + heading + b"</h2>" in body
    assert message in body
    assert body.startswith(INVALID_VERB[:90])


def test_400_title_is_short_while_heading_names_the_variant():
    assert b"<TITLE>Bad Request</TITLE>" in error_body(400, "Hostname")


def test_error_response_headers_in_http_sys_order():
    data = error_response(400, "Verb", server=b"wasp", date=b"Thu, 01 Jan 1970 00:00:00 GMT", close=True)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [
        b"HTTP/1.1 400 Bad Request",
        b"Content-Type: text/html; charset=us-ascii",
        b"Server: wasp",
        b"Date: Thu, 01 Jan 1970 00:00:00 GMT",
        b"Connection: close",
        b"Content-Length: 326",
    ]
    assert body == INVALID_VERB


def test_error_response_without_server_header_and_for_head():
    data = error_response(503, "QueueFull", server=b"", date=b"D", close=False, head_only=True)
    assert b"Server:" not in data
    assert b"Connection:" not in data
    assert data.endswith(b"Content-Length: 326\r\n\r\n")


def test_http_date():
    assert http_date(0) == b"Thu, 01 Jan 1970 00:00:00 GMT"
    assert http_date(784111777) == b"Sun, 06 Nov 1994 08:49:37 GMT"


def test_reason_phrases_and_bodyless_statuses():
    assert reason_phrase(413) == "Request Entity Too Large"
    assert reason_phrase(599) == "Unknown"
    assert no_body_status(204) and no_body_status(304) and no_body_status(101)
    assert not no_body_status(200)


@pytest.mark.parametrize("value, key", [
    (b"Example.TEST", b"example.test"),
    (b"example.test:8080", b"example.test"),
    (b" example.test ", b"example.test"),
    (b"[::1]:8080", b"[::1]"),
    (b"[::1]", b"[::1]"),
    (b"127.0.0.1:80", b"127.0.0.1"),
    (b"", b""),
])
def test_host_key(value, key):
    assert host_key(value) == key


@pytest.mark.parametrize("value", [b"a b", b"exa\x01mple", b"h:x", b"h:", b"[::1", b"[::1]x", b"h/p"])
def test_host_key_rejects(value):
    with pytest.raises(InvalidHostname):
        host_key(value)


def test_front_error_pages_carry_nothing_but_status_and_reason():
    """HTTP.sys's pages are fixed text chosen by (status, reason): no request, path or exception
    text can reach them (the front's half of "errors do not leak")."""
    from wasp.wire import http
    reasons = list(http._PAGES) + ["Internal", "QueueFull", "AppOffline", "Timer_ConnectionIdle", ""]
    for status in list(range(400, 418)) + list(range(500, 506)) + [421, 429, 431]:
        for reason in reasons:
            body = error_body(status, reason)
            title, heading, message = (http._PAGES[reason][1:] if reason in http._PAGES
                                       and http._PAGES[reason][0] == status
                                       else http._STATUS_PAGES.get(status) or (
                                           http.reason_phrase(status), http.reason_phrase(status),
                                           f"HTTP Error {status}. {http.reason_phrase(status)}."))
            assert body == error_page(title, heading, message), (status, reason)
            text = body.decode("ascii").split("\r\n", 1)[1]  # after the DOCTYPE line
            assert "/" not in text.replace("</", "").replace("text/html", ""), (status, reason, text)
