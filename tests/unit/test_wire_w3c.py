"""wasp.wire.w3c: W3C extended and HTTPERR log lines, headers and file names (reference §5.6-5.7)."""

from __future__ import annotations

from wasp import __version__
from wasp.wire import w3c

T = 1773705601.0  # 2026-03-17 00:00:01 UTC


def test_datetime_and_period_keys_are_utc():
    assert w3c.log_datetime(T) == b"2026-03-17 00:00:01"
    assert w3c.period_key(T, "daily") == "260317"
    assert w3c.period_key(T, "hourly") == "26031700"
    assert w3c.period_key(T + 3600 * 13, "hourly") == "26031713"


def test_file_names():
    assert w3c.w3c_file_name(1, "260317") == "W3SVC1/u_ex260317.log"
    assert w3c.w3c_file_name(42, "26031713") == "W3SVC42/u_ex26031713.log"
    assert w3c.httperr_file_name(1) == "httperr/httperr1.log"


def test_w3c_header_block():
    assert w3c.header(w3c.W3C_FIELDS, T) == (
        f"#Software: wasp {__version__}\r\n"
        "#Version: 1.0\r\n"
        "#Date: 2026-03-17 00:00:01\r\n"
        "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip "
        "cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken\r\n"
    ).encode()


def test_httperr_header_fields():
    assert w3c.header(w3c.HTTPERR_FIELDS, T).endswith(
        b"#Fields: date time c-ip c-port s-ip s-port cs-version cs-method cs-uri streamid "
        b"sc-status s-siteid s-reason s-queuename\r\n")


def test_access_line_like_iis():
    line = w3c.access_line(w3c.log_datetime(T), b"172.26.128.182", b"GET", b"/iisstart.png", b"", b"80",
                           b"", b"10.6.0.7", b"Mozilla/5.0 (Windows NT 10.0;)", b"http://localhost:8080/",
                           200, 0, 0, 38)
    assert line == (b"2026-03-17 00:00:01 172.26.128.182 GET /iisstart.png - 80 - 10.6.0.7 "
                    b"Mozilla/5.0+(Windows+NT+10.0;) http://localhost:8080/ 200 0 0 38\r\n")


def test_access_line_escapes_every_field():
    line = w3c.access_line(b"D T", b"1.1.1.1", b"GET", b"/a b\tc", b"q=a b", b"80", b"DOM\\u ser",
                           b"2.2.2.2", b"ua\x01x", None, 404, 3, 2, 7)
    assert line == b"D T 1.1.1.1 GET /a+b+c q=a+b 80 DOM\\u+ser 2.2.2.2 ua+x - 404 3 2 7\r\n"
    assert len(line.split(b" ")) == 15  # 14 fields, the date-time pair being two


def test_httperr_line_like_http_sys():
    line = w3c.httperr_line(b"2002-07-05 18:45:09", b"172.31.77.6", 2094, b"172.31.77.6", 80, b"HTTP/1.1",
                            b"GET", b"/qos/1kbfile.txt", 503, None, "ConnLimit", None)
    assert line == (b"2002-07-05 18:45:09 172.31.77.6 2094 172.31.77.6 80 HTTP/1.1 GET "
                    b"/qos/1kbfile.txt - 503 - ConnLimit -\r\n")


def test_httperr_line_of_a_timeout_has_dashes():
    line = w3c.httperr_line(b"D T", b"::1", 5000, b"::1", 80, None, None, None, None, None,
                            "Timer_ConnectionIdle", None)
    assert line == b"D T ::1 5000 ::1 80 - - - - - - Timer_ConnectionIdle -\r\n"


def test_field():
    assert w3c.field(b"") == b"-"
    assert w3c.field(None) == b"-"
    assert w3c.field(b"a b\x7f") == b"a+b+"
