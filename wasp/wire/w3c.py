"""W3C extended log and HTTPERR log formatting. No I/O: bytes in, bytes and file names out.

Formats from shared/reference/iis-behaviour.md §5.6 (HTTPERR) and §5.7 (W3C): fields separated by
one space, `-` for an empty field, spaces and non-printable characters replaced by `+`, UTC times.
The `#Software` line names wasp, not IIS: log tools key on `#Fields`, and wasp is not IIS.
"""

from __future__ import annotations

import time

from wasp import __version__

SOFTWARE = f"wasp {__version__}"

#: The fields of IIS's default logExtFileFlags, in IIS's order.
W3C_FIELDS = ("date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip "
              "cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken")

#: Every logExtFileFlags flag and its field, in the order IIS writes them whatever the order they
#: are listed in (iis-behaviour.md §5.7); custom fields follow.
FLAG_FIELDS = (
    ("Date", "date"), ("Time", "time"), ("SiteName", "s-sitename"), ("ComputerName", "s-computername"),
    ("ServerIP", "s-ip"), ("Method", "cs-method"), ("UriStem", "cs-uri-stem"), ("UriQuery", "cs-uri-query"),
    ("ServerPort", "s-port"), ("UserName", "cs-username"), ("ClientIP", "c-ip"), ("ProtocolVersion", "cs-version"),
    ("UserAgent", "cs(User-Agent)"), ("Cookie", "cs(Cookie)"), ("Referer", "cs(Referer)"), ("Host", "cs-host"),
    ("HttpStatus", "sc-status"), ("HttpSubStatus", "sc-substatus"), ("Win32Status", "sc-win32-status"),
    ("BytesSent", "sc-bytes"), ("BytesRecv", "cs-bytes"), ("TimeTaken", "time-taken"),
)

#: IIS's customFields maxCustomFieldLength default: a custom field's value is cut to this many bytes;
#: all custom fields of a line together are cut at MAX_CUSTOM_TOTAL (enhanced logging for IIS 8.5).
MAX_CUSTOM_FIELD = 4096
MAX_CUSTOM_TOTAL = 65536

#: Server variables a custom field may log (source_type = "server_variable"), as IIS names them.
SERVER_VARIABLES = frozenset({
    "HTTPS", "SERVER_PROTOCOL", "SERVER_PORT", "SERVER_PORT_SECURE", "CRYPT_PROTOCOL",
    "CRYPT_CIPHER_ALG_ID", "REMOTE_ADDR", "REMOTE_PORT", "HTTP_HOST", "REQUEST_METHOD", "URL",
    "QUERY_STRING", "LOCAL_ADDR",
    # wasp's own: the modules the worker ran the request through ("default_document,static_file")
    "WASP_MODULES",
})


def fields_of(flags, custom_names=()) -> str:
    """The `#Fields` value for a set of logExtFileFlags names and custom field names."""
    chosen = set(flags)
    return " ".join([name for flag, name in FLAG_FIELDS if flag in chosen] + list(custom_names))


def custom_field(value: bytes | None, room: int) -> bytes:
    """A custom field's value: escaped as the other fields, at most MAX_CUSTOM_FIELD bytes and at
    most `room` (what is left of MAX_CUSTOM_TOTAL on the line); `-` when empty or no room."""
    if not value or room <= 0:
        return b"-"
    return value[:min(MAX_CUSTOM_FIELD, room)].translate(_ESCAPE)


HTTPERR_FIELDS = ("date time c-ip c-port s-ip s-port cs-version cs-method cs-uri streamid "
                  "sc-status s-siteid s-reason s-queuename")

#: HTTP.sys ErrorLogFileTruncateSize default (and minimum): a new httperrN.log after 1 MB.
HTTPERR_FILE_SIZE = 1024 * 1024

#: Win32 status IIS logs when the client went away before the response was sent.
ERROR_NETNAME_DELETED = 64

_ESCAPE = bytes(0x2B if (c <= 0x20 or c == 0x7F) else c for c in range(256))


def field(value: bytes | None) -> bytes:
    """One field: `-` when empty, spaces and control characters as `+`."""
    if not value:
        return b"-"
    return value.translate(_ESCAPE)


def log_datetime(timestamp: float) -> bytes:
    """b"YYYY-MM-DD hh:mm:ss" in UTC: the first two fields of every line."""
    t = time.gmtime(timestamp)
    return b"%04d-%02d-%02d %02d:%02d:%02d" % (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)


def period_key(timestamp: float, period: str) -> str:
    """"YYMMDD" (daily) or "YYMMDDHH" (hourly), UTC: what names the log file."""
    t = time.gmtime(timestamp)
    if period == "hourly":
        return "%02d%02d%02d%02d" % (t.tm_year % 100, t.tm_mon, t.tm_mday, t.tm_hour)
    return "%02d%02d%02d" % (t.tm_year % 100, t.tm_mon, t.tm_mday)


def w3c_file_name(site_id: int, key: str, suffix: str = "") -> str:
    """Relative to server.log_dir: W3SVC<id>/u_ex<key>.log (`u_`: the log is UTF-8); `suffix` is
    "_x" when the site logs custom fields (u_ex<key>_x.log, as IIS 8.5)."""
    return f"W3SVC{site_id}/u_ex{key}{suffix}.log"


def httperr_file_name(number: int) -> str:
    return f"httperr/httperr{number}.log"


def header(fields: str, timestamp: float) -> bytes:
    """The block written at the top of every log file this process starts."""
    return (f"#Software: {SOFTWARE}\r\n#Version: 1.0\r\n#Date: ".encode()
            + log_datetime(timestamp) + f"\r\n#Fields: {fields}\r\n".encode())


def access_line(when: bytes, s_ip: bytes, method: bytes, stem: bytes, query: bytes, s_port: bytes,
                username: bytes, c_ip: bytes, user_agent: bytes | None, referer: bytes | None,
                status: int, substatus: int, win32: int, time_taken_ms: int) -> bytes:
    """One W3C line (default fields), CRLF-terminated. `when` is log_datetime(...)."""
    esc = _ESCAPE
    return b"%s %s %s %s %s %s %s %s %s %s %d %d %d %d\r\n" % (
        when, s_ip, method.translate(esc) if method else b"-", stem.translate(esc) if stem else b"-",
        query.translate(esc) if query else b"-", s_port, username.translate(esc) if username else b"-",
        c_ip, user_agent.translate(esc) if user_agent else b"-",
        referer.translate(esc) if referer else b"-", status, substatus, win32, time_taken_ms)


def httperr_line(when: bytes, c_ip: bytes, c_port: int, s_ip: bytes, s_port: int,
                 version: bytes | None, method: bytes | None, uri: bytes | None,
                 status: int | None, site_id: int | None, reason: str, queue: str | None) -> bytes:
    """One HTTPERR line, CRLF-terminated. None -> `-` (e.g. no status for a timed-out idle
    connection, no site when the host matched none). streamid is always `-` (no HTTP/2)."""
    return b"%s %s %d %s %d %s %s %s - %s %s %s %s\r\n" % (
        when, c_ip, c_port, s_ip, s_port, field(version), field(method), field(uri),
        b"%d" % status if status is not None else b"-",
        b"%d" % site_id if site_id is not None else b"-",
        field(reason.encode("ascii", "replace")), field(queue.encode() if queue else None))
