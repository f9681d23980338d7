"""One FREB trace as the management site shows it, as IIS's freb.xsl does: the request's
summary, a module timeline (each module's enter/leave per notification as a bar on a time axis,
inline SVG: the site's Content-Security-Policy allows no inline styles, and SVG's x/width are
attributes) and the event list with every Data value.

The file comes from the admin API and is treated as untrusted: a document with a DOCTYPE (and
so any entity declaration) is refused before and while parsing, sizes are bounded, and every
string put in the page goes through html.escape. Events this file does not know (new opcodes
another part of wasp adds) are listed with their Data like the others.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

EVENT_NS = "{http://schemas.microsoft.com/win/2004/08/events/event}"
FREB_NS = "{http://schemas.microsoft.com/win/2006/06/iis/freb}"
MAX_EVENTS = 50000

LEVELS = {"1": "CriticalError", "2": "Error", "3": "Warning", "4": "Information", "5": "Verbose"}
NOTIFICATIONS = {1: "BEGIN_REQUEST", 2: "AUTHENTICATE_REQUEST", 4: "AUTHORIZE_REQUEST",
                 8: "RESOLVE_REQUEST_CACHE", 0x10: "MAP_REQUEST_HANDLER",
                 0x20: "ACQUIRE_REQUEST_STATE", 0x40: "PRE_EXECUTE_REQUEST_HANDLER",
                 0x80: "EXECUTE_REQUEST_HANDLER", 0x100: "RELEASE_REQUEST_STATE",
                 0x200: "UPDATE_REQUEST_CACHE", 0x400: "LOG_REQUEST", 0x800: "END_REQUEST"}
_DOCTYPE = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.I)
_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z?$")


class BadTrace(ValueError):
    """The bytes are not a trace this page can show (not XML, a DTD, not a failedRequest)."""


class Event:
    __slots__ = ("t_ns", "opcode", "provider", "level", "data", "descriptions")

    def __init__(self, t_ns, opcode, provider, level, data, descriptions):
        self.t_ns = t_ns
        self.opcode = opcode
        self.provider = provider
        self.level = level
        self.data = data
        self.descriptions = descriptions

    def get(self, name: str, default: str = "") -> str:
        for key, value in self.data:
            if key == name:
                return value
        return default


class Trace:
    __slots__ = ("attributes", "events")

    def __init__(self, attributes: dict, events: list):
        self.attributes = attributes
        self.events = events


def _time_ns(text: str) -> int | None:
    match = _TIME.match(text or "")
    if not match:
        return None
    base = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    fraction = (match.group(2) or "0").ljust(9, "0")
    return int(base.timestamp()) * 1_000_000_000 + int(fraction)


def parse(data: bytes) -> Trace:
    # Decoded here (strict UTF-8, what wasp writes) and handed to expat as text, so the
    # DOCTYPE check sees the same characters the parser does (no UTF-16 way around it).
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadTrace("the trace is not UTF-8") from None
    if _DOCTYPE.search(text):
        raise BadTrace("the trace has a DOCTYPE or ENTITY declaration: refused")
    parser = ET.XMLParser()
    try:
        parser.feed(text)
        root = parser.close()
    except ET.ParseError as exc:
        raise BadTrace(f"the trace is not well-formed XML: {exc}") from None
    if root.tag != "failedRequest":
        raise BadTrace(f"not a failedRequest trace (root {root.tag!r})")
    events = []
    for element in root.findall(EVENT_NS + "Event"):
        if len(events) >= MAX_EVENTS:
            break
        system = element.find(EVENT_NS + "System")
        provider, level, t_ns = "", "", None
        if system is not None:
            p = system.find(EVENT_NS + "Provider")
            provider = p.get("Name", "") if p is not None else ""
            level = (system.findtext(EVENT_NS + "Level") or "").strip()
            created = system.find(EVENT_NS + "TimeCreated")
            t_ns = _time_ns(created.get("SystemTime", "")) if created is not None else None
        data = []
        event_data = element.find(EVENT_NS + "EventData")
        if event_data is not None:
            for d in event_data.findall(EVENT_NS + "Data"):
                data.append((d.get("Name", ""), d.text or ""))
        rendering = element.find(EVENT_NS + "RenderingInfo")
        opcode, descriptions = "", {}
        if rendering is not None:
            opcode = (rendering.findtext(EVENT_NS + "Opcode") or "").strip()
            for desc in rendering.findall(FREB_NS + "Description"):
                descriptions[desc.get("Data", "")] = desc.text or ""
        if not opcode and system is not None:
            opcode = "Opcode " + (system.findtext(EVENT_NS + "Opcode") or "?").strip()
        events.append(Event(t_ns, opcode, provider, level, data, descriptions))
    return Trace(dict(root.attrib), events)


# ---------------------------------------------------------------- analysis

def notification_name(value: str) -> str:
    try:
        return NOTIFICATIONS.get(int(value, 0), value)
    except ValueError:
        return value


def spans(trace: Trace) -> list[dict]:
    """Each module's enter/leave per notification: {module, notification, post, start, end,
    status}, times in ns from the first event. A start without its end runs to the last event."""
    t0 = start_ns(trace)
    last = max((e.t_ns for e in trace.events if e.t_ns is not None), default=t0)
    open_spans: dict[tuple, list] = {}
    out = []
    for e in trace.events:
        if e.opcode not in ("NOTIFY_MODULE_START", "NOTIFY_MODULE_END") or e.t_ns is None:
            continue
        key = (e.get("ModuleName"), e.get("Notification"), e.get("fIsPostNotification", "false"))
        if e.opcode == "NOTIFY_MODULE_START":
            span = {"module": key[0], "notification": notification_name(key[1]),
                    "post": key[2] == "true", "start": e.t_ns - t0, "end": None, "status": ""}
            open_spans.setdefault(key, []).append(span)
            out.append(span)
        elif open_spans.get(key):
            span = open_spans[key].pop()
            span["end"] = e.t_ns - t0
            span["status"] = e.get("NotificationStatus")
    for span in out:
        if span["end"] is None:
            span["end"] = last - t0
    return out


def start_ns(trace: Trace) -> int:
    return min((e.t_ns for e in trace.events if e.t_ns is not None), default=0)


def summary(trace: Trace) -> list[tuple[str, str]]:
    a = trace.attributes
    status_module = ""
    front = None
    for e in trace.events:
        if e.opcode == "MODULE_SET_RESPONSE_ERROR_STATUS" and not status_module:
            status_module = f'{e.get("ModuleName")} ({notification_name(e.get("Notification"))})'
        elif e.opcode == "FRONT_RESPONSE_SENT":
            front = e
    app = [s for s in spans(trace) if s["notification"] == "EXECUTE_REQUEST_HANDLER"
           and s["module"] == "python_app"]
    rows = [("URL", a.get("url", "")), ("Verb", a.get("verb", "")),
            ("App pool", a.get("appPoolId", "")), ("Site", a.get("siteId", "")),
            ("Process", a.get("processId", "")),
            ("Status", a.get("statusCode", "")), ("Status set by", status_module or "–"),
            ("Failure reason", a.get("failureReason", "")),
            ("Trigger status", a.get("triggerStatusCode", "")),
            ("Time taken", f'{a.get("timeTaken", "")} ms'),
            ("Authentication", a.get("authenticationType", "")),
            ("User", a.get("userName", "") or a.get("remoteUserName", "")),
            ("Activity ID", a.get("activityId", ""))]
    if app:
        rows.append(("App's time", _ms(app[0]["end"] - app[0]["start"])))
    if front is not None:
        for key, label in (("FrontTimeBeforeWorker", "Front before worker"),
                           ("WorkerTime", "Worker"), ("FrontTimeAfterWorker", "Front after worker")):
            value = front.get(key)
            if value:
                rows.append((label, value if value.endswith("ms") else f"{value} ms"))
    return rows


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.3f} ms"


# ---------------------------------------------------------------- HTML

def _e(value) -> str:
    return html.escape(str(value), quote=True)


ROW_H = 18
LABEL_W = 400
PLOT_W = 700


def timeline_svg(trace: Trace) -> str:
    rows = spans(trace)
    if not rows:
        return '<p class="muted" id="timeline-empty">No module events in this trace (its rule ' \
               'did not record the RequestNotifications area at Verbose).</p>'
    # The axis covers the worker's pipeline (first module entered to last left); the front's
    # time before the worker (a cold start can be most of it) is in the summary instead.
    origin = min(s["start"] for s in rows)
    rows = [dict(s, start=s["start"] - origin, end=s["end"] - origin) for s in rows]
    total = max((s["end"] for s in rows), default=0) or 1
    height = ROW_H * len(rows) + 24
    width = LABEL_W + PLOT_W + 80
    parts = [f'<svg id="timeline" class="timeline" role="img" aria-label="module timeline" '
             f'xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">']
    for i in range(5):  # the time axis
        x = LABEL_W + PLOT_W * i / 4
        parts.append(f'<line class="axis" x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 16}"/>'
                     f'<text class="tick" x="{x:.1f}" y="{height - 4}">{_e(_ms(total * i // 4))}</text>')
    for i, s in enumerate(rows):
        y = i * ROW_H
        x = LABEL_W + PLOT_W * s["start"] / total
        w = max(1.0, PLOT_W * (s["end"] - s["start"]) / total)
        label = f'{s["notification"]}{" (post)" if s["post"] else ""} · {s["module"]}'
        kind = "bar-app" if s["module"] == "python_app" else "bar"
        parts.append(f'<g class="span"><text class="label" x="4" y="{y + 13}">{_e(label)}</text>'
                     f'<rect class="{kind}" x="{x:.2f}" y="{y + 3}" width="{w:.2f}" height="{ROW_H - 6}">'
                     f'<title>{_e(label)}: {_e(_ms(s["start"]))} → {_e(_ms(s["end"]))} '
                     f'({_e(_ms(s["end"] - s["start"]))}) {_e(s["status"])}</title></rect>'
                     f'<text class="dur" x="{x + w + 4:.2f}" y="{y + 13}">{_e(_ms(s["end"] - s["start"]))}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def events_table(trace: Trace) -> str:
    t0 = start_ns(trace)
    out = ['<table id="events"><thead><tr><th class="num">#</th><th class="num">ms</th>'
           '<th>Event</th><th>Level</th><th>Provider</th><th>Data</th></tr></thead><tbody>']
    for i, e in enumerate(trace.events, 1):
        level = LEVELS.get(e.level, e.level)
        offset = _ms(e.t_ns - t0) if e.t_ns is not None else ""
        cells = []
        for name, value in e.data:
            shown = value
            if name == "Notification":
                shown = f"{notification_name(value)} ({value})"
            elif name in e.descriptions and e.descriptions[name] != value:
                shown = f"{e.descriptions[name]} ({value})"
            if "\n" in value or name == "Headers":
                cells.append(f"<dt>{_e(name)}</dt><dd><pre>{_e(shown)}</pre></dd>")
            else:
                cells.append(f"<dt>{_e(name)}</dt><dd>{_e(shown)}</dd>")
        out.append(f'<tr class="level-{_e(level)}"><td class="num">{i}</td><td class="num">{_e(offset)}</td>'
                   f'<td>{_e(e.opcode)}</td><td>{_e(level)}</td><td>{_e(e.provider)}</td>'
                   f'<td><dl>{"".join(cells)}</dl></td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def page(trace: Trace, site: str, name: str, raw_href: str) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in summary(trace))
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<title>{_e(name)} · Traces · wasp Manager</title>'
        '<link rel="stylesheet" href="/static/style.css">'
        '<link rel="icon" href="/static/icon.svg" type="image/svg+xml"></head><body>'
        '<header><h1><img src="/static/icon.svg" alt="" width="22" height="22"> wasp Manager</h1>'
        '<nav><a href="/#/overview">Overview</a><a class="active" href="/#/traces">Failed Request Traces</a></nav>'
        '</header><main class="trace">'
        f'<h2 id="trace-title">Trace {_e(site)}/{_e(name)}</h2>'
        f'<p><a id="raw" href="{_e(raw_href)}" download="{_e(name)}">Download the XML</a> · '
        '<a href="/#/traces">All traces</a></p>'
        f'<h3>Request summary</h3><table id="summary" class="summary">{rows}</table>'
        f'<h3>Module timeline</h3>{timeline_svg(trace)}'
        f'<h3>Events ({len(trace.events)})</h3>{events_table(trace)}'
        '</main></body></html>\n')
