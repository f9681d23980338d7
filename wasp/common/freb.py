"""Failed Request Tracing files: IIS's freb XML, the W3SVC<id>/frNNNNNN.xml layout, and reading
them back for `wasp list traces`.

No request state lives here: the worker (wasp/worker/freb.py) buffers a request's events as
plain tuples and hands a finished `TraceRecord` to `render`, which returns the file's bytes, and
`store`, which numbers, writes and rotates the files. Both run on the worker's trace-writer
thread, never on a request's. The manager reads the files with `list_traces` (it imports this,
not the worker).

The XML is IIS's: a `<failedRequest>` root with the request's attributes and the freb namespace,
then one `<Event>` per event in the ETW shape (System: Provider, EventID, Version, Level, Opcode,
Keywords, TimeCreated, Correlation, Execution, Computer; EventData with named Data; RenderingInfo
with the opcode's name and freb:Description of the coded values). docs/freb.md lists the events.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import threading
from datetime import datetime, timezone
from xml.sax.saxutils import escape, quoteattr

FREB_NS = "http://schemas.microsoft.com/win/2006/06/iis/freb"
EVENT_NS = "http://schemas.microsoft.com/win/2004/08/events/event"
WWW_SERVER = ("WWW Server", "{3A2A4E84-4C21-4981-AE10-3FDA0D9B0F83}")
#: wasp's front (HTTP.sys's part): its own provider, so an IIS user sees it is not W3SVC's.
HTTP_SERVICE = ("wasp front", "")

# Levels (ETW): 1 CriticalError, 2 Error, 3 Warning, 4 Information, 5 Verbose.
CRITICAL, ERROR, WARNING, INFO, VERBOSE = 1, 2, 3, 4, 5

# Area keyword bits of the WWW Server provider (0: General, always recorded).
GENERAL = 0
AUTHENTICATION = 0x2
SECURITY = 0x4
STATIC_FILE = 0x10
COMPRESSION = 0x40
CACHE = 0x80
REQUEST_NOTIFICATIONS = 0x100
MODULE = 0x200
REWRITE = 0x400

#: Header values a trace never holds (IIS writes them as sent; wasp chooses safe), by header name
#: and as the server variables URL Rewrite names them; MASK stands in their place.
MASKED = frozenset({b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"})
MASKED_VARIABLES = frozenset({"HTTP_AUTHORIZATION", "HTTP_PROXY_AUTHORIZATION", "HTTP_COOKIE",
                              "RESPONSE_SET_COOKIE"})
MASK = "[masked by wasp]"

#: opcode name -> (opcode number, level, area keyword). The numbers are wasp's own (IIS's are
#: not published in the sources this follows); freb.xsl keys on the RenderingInfo name.
EVENTS = {
    "GENERAL_REQUEST_START": (1, INFO, GENERAL),
    "GENERAL_ENDPOINT_INFORMATION": (2, VERBOSE, GENERAL),
    "GENERAL_REQUEST_HEADERS": (3, VERBOSE, GENERAL),
    "NOTIFY_MODULE_START": (4, VERBOSE, REQUEST_NOTIFICATIONS),
    "NOTIFY_MODULE_END": (5, VERBOSE, REQUEST_NOTIFICATIONS),
    "HANDLER_CHANGED": (6, INFO, REQUEST_NOTIFICATIONS),
    "USER_SET": (7, INFO, AUTHENTICATION),
    "AUTH_SUCCEEDED": (8, INFO, AUTHENTICATION),
    "MODULE_SET_RESPONSE_ERROR_STATUS": (9, WARNING, REQUEST_NOTIFICATIONS),
    "GENERAL_RESPONSE_HEADERS": (10, VERBOSE, GENERAL),
    "HTTPSYS_CACHEABLE": (11, VERBOSE, CACHE),
    "GENERAL_REQUEST_END": (12, VERBOSE, GENERAL),
    "MODULE_ERROR": (13, ERROR, MODULE),
    "FRONT_REQUEST_RECEIVED": (14, INFO, GENERAL),
    "FRONT_RESPONSE_SENT": (15, INFO, GENERAL),
    "LOG_FILE_MAX_SIZE_TRUNCATE": (16, WARNING, GENERAL),
    "EVENTS_DROPPED": (17, WARNING, GENERAL),
    # issue 11 item 5: the StaticFile and Compression areas
    "STATIC_FILE_START": (18, VERBOSE, STATIC_FILE),
    "STATIC_FILE_END": (19, VERBOSE, STATIC_FILE),
    "STATIC_COMPRESSION_START": (20, VERBOSE, COMPRESSION),
    "STATIC_COMPRESSION_SUCCESS": (21, VERBOSE, COMPRESSION),
    "STATIC_COMPRESSION_NOT_SUCCESS": (22, VERBOSE, COMPRESSION),
    "STATIC_COMPRESSION_END": (23, VERBOSE, COMPRESSION),
    "DYNAMIC_COMPRESSION_START": (24, VERBOSE, COMPRESSION),
    "DYNAMIC_COMPRESSION_SUCCESS": (25, VERBOSE, COMPRESSION),
    "DYNAMIC_COMPRESSION_NOT_SUCCESS": (26, VERBOSE, COMPRESSION),
    "DYNAMIC_COMPRESSION_END": (27, VERBOSE, COMPRESSION),
    "AUTH_START": (28, VERBOSE, AUTHENTICATION),
    "AUTH_REQUEST_AUTH_TYPE": (29, VERBOSE, AUTHENTICATION),
    "AUTH_END": (30, VERBOSE, AUTHENTICATION),
    # the Rewrite area: URL Rewrite's events, as its FREB walkthrough shows them
    "URL_REWRITE_START": (31, VERBOSE, REWRITE),
    "RULE_EVALUATION_START": (32, VERBOSE, REWRITE),
    "PATTERN_MATCH": (33, VERBOSE, REWRITE),
    "CONDITIONS_EVALUATION_START": (34, VERBOSE, REWRITE),
    "CONDITION_EVALUATION": (35, VERBOSE, REWRITE),
    "CONDITIONS_EVALUATION_END": (36, VERBOSE, REWRITE),
    "SET_SERVER_VARIABLE": (37, VERBOSE, REWRITE),
    "REWRITE_ACTION": (38, VERBOSE, REWRITE),
    "REDIRECT_ACTION": (39, VERBOSE, REWRITE),
    "CUSTOM_RESPONSE_ACTION": (40, VERBOSE, REWRITE),
    "ABORT_REQUEST_ACTION": (41, VERBOSE, REWRITE),
    "RULE_EVALUATION_END": (42, VERBOSE, REWRITE),
    "URL_REWRITE_END": (43, VERBOSE, REWRITE),
    "URL_CHANGED": (44, INFO, GENERAL),
    # the Security area: what request filtering, URL authorization and IP restrictions decided
    "REQUEST_FILTERING_DENIED": (45, WARNING, SECURITY),
    "AUTHORIZATION_DECISION": (46, VERBOSE, SECURITY),
    "IP_RESTRICTION_DECISION": (47, VERBOSE, SECURITY),
}

#: IIS's request notification numbers (RQ_BEGIN_REQUEST 0x1 ...), by phase number 1..12.
NOTIFICATIONS = {1: ("BEGIN_REQUEST", 0x1), 2: ("AUTHENTICATE_REQUEST", 0x2),
                 3: ("AUTHORIZE_REQUEST", 0x4), 4: ("RESOLVE_REQUEST_CACHE", 0x8),
                 5: ("MAP_REQUEST_HANDLER", 0x10), 6: ("ACQUIRE_REQUEST_STATE", 0x20),
                 7: ("PRE_EXECUTE_REQUEST_HANDLER", 0x40), 8: ("EXECUTE_REQUEST_HANDLER", 0x80),
                 9: ("RELEASE_REQUEST_STATE", 0x100), 10: ("UPDATE_REQUEST_CACHE", 0x200),
                 11: ("LOG_REQUEST", 0x400), 12: ("END_REQUEST", 0x800)}

#: Data values shown with their names too (freb:Description), as IIS does.
_DESCRIBED = {"Notification", "NotificationStatus"}

FILE_RE = re.compile(r"^fr(\d{6,})\.xml$")
_HOST = socket.gethostname()


class TraceRecord:
    """A finished trace: the root's attributes and the events (each `(t_ns, thread, opcode,
    data)`, `t_ns` wall-clock nanoseconds, `data` a tuple of (name, value))."""

    __slots__ = ("attributes", "events", "activity", "pid", "site_id", "directory", "max_files",
                 "max_bytes")

    def __init__(self, attributes: list, events: list, activity: str, pid: int, site_id: int,
                 directory: str, max_files: int, max_bytes: int):
        self.attributes = attributes
        self.events = events
        self.activity = activity
        self.pid = pid
        self.site_id = site_id
        self.directory = directory
        self.max_files = max_files
        self.max_bytes = max_bytes


def system_time(t_ns: int) -> str:
    """ETW's TimeCreated: UTC with 100 ns digits, "2026-12-03T12:00:00.1234567Z"."""
    seconds, rest = divmod(t_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{rest // 100:07d}Z"


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def _text(value) -> str:
    """An XML-safe string: characters XML 1.0 cannot hold become U+FFFD."""
    text = value if isinstance(value, str) else str(value)
    return _CONTROL.sub("\ufffd", text)


def render(record: TraceRecord) -> bytes:
    """The trace file's bytes; past `max_bytes` the events stop with LOG_FILE_MAX_SIZE_TRUNCATE."""
    head = ['<?xml version="1.0" encoding="UTF-8"?>\n',
            "<?xml-stylesheet type='text/xsl' href='freb.xsl'?>\n",
            "<!-- saved from url=(0014)about:internet -->\n",
            "<failedRequest"]
    for name, value in record.attributes:
        head.append(f"\n               {name}={quoteattr(_text(value))}")
    head.append(f'\n               xmlns:freb="{FREB_NS}">\n')
    out = "".join(head).encode("utf-8")
    parts = [out]
    size = len(out)
    tail = b"</failedRequest>\n"
    limit = record.max_bytes - len(tail) - 2048  # room for the truncation event
    for t_ns, thread, opcode, data in record.events:
        piece = _event(record, t_ns, thread, opcode, data).encode("utf-8")
        if record.max_bytes and size + len(piece) > limit:
            parts.append(_event(record, t_ns, thread, "LOG_FILE_MAX_SIZE_TRUNCATE",
                                (("MaxFileSizeKB", record.max_bytes // 1024),)).encode("utf-8"))
            break
        parts.append(piece)
        size += len(piece)
    parts.append(tail)
    return b"".join(parts)


def _event(record: TraceRecord, t_ns: int, thread: int, opcode: str, data) -> str:
    number, level, keyword = EVENTS[opcode]
    provider = HTTP_SERVICE if opcode.startswith("FRONT_") else WWW_SERVER
    guid = f' Guid="{provider[1]}"' if provider[1] else ""
    lines = [f' <Event xmlns="{EVENT_NS}">\n  <System>\n'
             f'   <Provider Name="{provider[0]}"{guid}/>\n'
             f"   <EventID>0</EventID>\n   <Version>1</Version>\n"
             f"   <Level>{level}</Level>\n   <Opcode>{number}</Opcode>\n"
             f"   <Keywords>0x{keyword:X}</Keywords>\n"
             f'   <TimeCreated SystemTime="{system_time(t_ns)}"/>\n'
             f'   <Correlation ActivityID="{record.activity}"/>\n'
             f'   <Execution ProcessID="{record.pid}" ThreadID="{thread}"/>\n'
             f"   <Computer>{escape(_text(_HOST))}</Computer>\n  </System>\n  <EventData>\n"]
    described = []
    for name, value in data:
        lines.append(f"   <Data Name={quoteattr(name)}>{escape(_text(value))}</Data>\n")
        if name in _DESCRIBED:
            described.append((name, value))
    lines.append(f'  </EventData>\n  <RenderingInfo Culture="en-US">\n   <Opcode>{opcode}</Opcode>\n')
    if keyword:
        area = _AREA_NAMES.get(keyword, "")
        lines.append(f"   <Keywords>\n    <Keyword>{area}</Keyword>\n   </Keywords>\n")
    for name, value in described:
        lines.append(f'   <freb:Description Data="{name}">{escape(_describe(name, value))}</freb:Description>\n')
    lines.append("  </RenderingInfo>\n </Event>\n")
    return "".join(lines)


_AREA_NAMES = {AUTHENTICATION: "Authentication", SECURITY: "Security", STATIC_FILE: "StaticFile",
               COMPRESSION: "Compression", CACHE: "Cache",
               REQUEST_NOTIFICATIONS: "RequestNotifications", MODULE: "Module", REWRITE: "Rewrite"}
_BY_BIT = {bit: name for name, bit in NOTIFICATIONS.values()}


def _describe(name: str, value) -> str:
    if name == "Notification":
        return _BY_BIT.get(int(value), str(value))
    return str(value)


# ---- files ----

def site_directory(directory: str, site_id: int) -> str:
    return os.path.join(directory, f"W3SVC{int(site_id)}")


def numbers(folder: str) -> list[int]:
    """The numbers of the trace files in a site's folder, ascending."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        match = FILE_RE.match(name)
        if match:
            found.append(int(match.group(1)))
    found.sort()
    return found


def store(record: TraceRecord, data: bytes) -> str:
    """Write `data` as the site's next frNNNNNN.xml and delete the oldest past `max_files`.
    Several workers (pools) may write one site's folder at once: a number is claimed with
    link(), which fails when the name exists, so two never write the same file. Returns the path written."""
    folder = site_directory(record.directory, record.site_id)
    os.makedirs(folder, mode=0o750, exist_ok=True)
    _style_sheet(folder)
    # Written under a private name first, then linked to its number: a reader (`wasp list
    # traces`) never sees half a file, and link() fails if the name is taken (no overwrite).
    temp = os.path.join(folder, f".fr-{os.getpid()}-{threading.get_ident()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(temp, flags, 0o640)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    try:
        existing = numbers(folder)
        number = (existing[-1] if existing else 0) + 1
        for _attempt in range(1000):
            path = os.path.join(folder, f"fr{number:06d}.xml")
            try:
                os.link(temp, path)
            except FileExistsError:
                number += 1
                continue
            break
        else:
            raise OSError(f"no free trace file name in {folder}")
    finally:
        os.unlink(temp)
    rotate(folder, record.max_files)
    return path


_XSL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "freb.xsl")


def _style_sheet(folder: str) -> None:
    """freb.xsl next to the traces (IIS puts its own there), so a browser shows a timeline.
    Written once; a file already there (an admin's own, IIS's) is kept."""
    target = os.path.join(folder, "freb.xsl")
    if os.path.exists(target) or os.path.islink(target):
        return
    try:
        with open(_XSL, "rb") as f:
            data = f.read()
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except OSError:
        return  # another worker wrote it meanwhile, or the package lacks it: traces still go
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def rotate(folder: str, max_files: int) -> None:
    existing = numbers(folder)
    for number in existing[:max(0, len(existing) - max_files)]:
        try:
            os.unlink(os.path.join(folder, f"fr{number:06d}.xml"))
        except FileNotFoundError:
            pass


# ---- reading back (`wasp list traces`) ----

_ROOT = re.compile(rb"<failedRequest\s([^>]*)>", re.S)
_ATTR = re.compile(rb'([A-Za-z:]+)=(?:"([^"]*)"|\'([^\']*)\')')
_HEAD_BYTES = 16384


def read_root(path: str) -> dict | None:
    """The `<failedRequest>` attributes of a trace file (read from its first 16 KB), or None
    (no such regular file: a symlink is not followed)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)   # a symlink planted in the folder is not followed
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        head = os.read(fd, _HEAD_BYTES)
    except OSError:
        return None
    finally:
        os.close(fd)
    match = _ROOT.search(head)
    if match is None:
        return None
    from xml.sax.saxutils import unescape

    found = {}
    for name, dq, sq in _ATTR.findall(match.group(1)):
        if name.startswith(b"xmlns"):
            continue
        value = dq if dq or not sq else sq
        found[name.decode("ascii")] = unescape(value.decode("utf-8", "replace"),
                                               {"&quot;": '"', "&apos;": "'"})
    return found


def trace_row(site_id: int, site_name: str, path: str, root: dict) -> dict:
    """appcmd's TRACE object of the file at `path` whose `<failedRequest>` attributes are `root`."""
    return {
        "name": f"{site_name}/{os.path.basename(path)}", "path": path, "url": root.get("url", ""),
        "statuscode": root.get("statusCode", ""), "site_id": site_id,
        "site_name": site_name, "wp": root.get("processId", ""),
        "apppool": root.get("appPoolId", ""), "verb": root.get("verb", ""),
        "remote_user_name": root.get("remoteUserName", ""),
        "user_name": root.get("userName", ""),
        "authentication_type": root.get("authenticationType", ""),
        "activity_id": root.get("activityId", ""),
        "failure_reason": root.get("failureReason", ""),
        "trigger_status_code": root.get("triggerStatusCode", ""),
        "time_taken": root.get("timeTaken", ""),
    }


def list_traces(sites: list[tuple[int, str, str]]) -> list[dict]:
    """appcmd's TRACE objects: for each (site id, site name, trace directory), its files, oldest
    first, with the root's attributes."""
    rows = []
    for site_id, site_name, directory in sites:
        folder = site_directory(directory, site_id)
        for number in numbers(folder):
            name = f"fr{number:06d}.xml"
            path = os.path.join(folder, name)
            root = read_root(path)
            if root is None:
                continue
            rows.append(trace_row(site_id, site_name, path, root))
    return rows
