"""IIS system.webServer/tracing/traceFailedRequests (FailedRequestsTracingModule, FREB): which
requests leave a trace file, and what goes in it.

Each rule (`<add path>`) names the URLs it watches (`*`, `*.php`, `/` for a folder's default
document, a file name), the trace areas recorded (`trace_areas`: provider, areas, verbosity) and
what makes a request "failed" (`failure_definitions`: status codes with substatus and ranges,
time taken, verbosity of an event). The first rule whose path matches the request's file name
is the request's rule, as in IIS. Rules write nothing unless the site's
`trace_failed_requests_logging.enabled` is true (IIS's `<traceFailedRequestsLogging>`).

`status_codes` is IIS's string: "404.2, 500, 400-499" (status 100-999, substatus 1-999; a code
without substatus matches every substatus). wasp also takes ".0" ("404.0": only substatus 0),
the form IIS's own logs and error pages write. docs/freb.md has the file layout.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from msgspec import Meta, Struct, field

from wasp.config.model import Duration, doc
from wasp.config.sections import Section, check, collection, section

#: Verbosity of trace areas (IIS's numbers: General 0 ... Verbose 5).
AREA_VERBOSITY = {"General": 0, "CriticalError": 1, "Error": 2, "Warning": 3, "Information": 4,
                  "Verbose": 5}
#: Verbosity of a failure definition (Ignore 0: no event makes the request failed).
FAILURE_VERBOSITY = {"Ignore": 0, "CriticalError": 1, "Error": 2, "Warning": 3}

#: The WWW Server provider's areas and their keyword bits (IIS's traceProviderDefinitions).
WWW_AREAS = {"Authentication": 0x2, "Security": 0x4, "Filter": 0x8, "StaticFile": 0x10,
             "CGI": 0x20, "Compression": 0x40, "Cache": 0x80, "RequestNotifications": 0x100,
             "Module": 0x200, "Rewrite": 0x400, "FastCGI": 0x1000, "WebSocket": 0x4000}
ASPNET_AREAS = {"Infrastructure": 0x1, "Module": 0x2, "Page": 0x4, "AppServices": 0x8}
PROVIDERS = {"WWW Server": WWW_AREAS, "ASPNET": ASPNET_AREAS, "ASP": {}, "ISAPI Extension": {}}

Provider = Literal["WWW Server", "ASPNET", "ASP", "ISAPI Extension"]
RulePath = Annotated[str, Meta(min_length=1, max_length=260, pattern=r"^[^\x00-\x1f\x7f\\]+$")]

_CODE = re.compile(r"^(\d{3})(?:\.(\d{1,3}))?$")


class TraceArea(Struct, forbid_unknown_fields=True, kw_only=True):
    """One `<traceAreas><add provider areas verbosity>`."""

    provider: Annotated[Provider, doc("The trace provider; wasp's events are all \"WWW Server\".")] = "WWW Server"
    areas: Annotated[list[str], doc(
        "The provider's areas recorded (WWW Server: Authentication, Security, Filter, StaticFile, "
        "CGI, Compression, Cache, RequestNotifications, Module, Rewrite, FastCGI, WebSocket); "
        "empty = all of them. General events (request start and end, headers) are always "
        "recorded."
    )] = field(default_factory=list)
    verbosity: Annotated[Literal["General", "CriticalError", "Error", "Warning", "Information",
                                 "Verbose"], doc(
        "The most detailed events recorded: General 0 ... Verbose 5 (module enter and leave "
        "events are Verbose). IIS's default, Warning."
    )] = "Warning"


@check(TraceArea, None)
def _check_area(item: TraceArea, path: str, add) -> None:
    known = PROVIDERS[item.provider]
    for i, area in enumerate(item.areas):
        if area not in known:
            add(f"{path}.areas[{i}]", f"unknown area {area!r} of provider {item.provider!r}"
                + (f" (one of {', '.join(known)})" if known else " (it has no areas)"))


class FailureDefinitions(Struct, forbid_unknown_fields=True, kw_only=True):
    """`<failureDefinitions>`: what makes a request of the rule "failed" (any one of them)."""

    status_codes: Annotated[str, doc(
        "Status codes, substatus codes and ranges, comma-separated: \"404.2, 500, 400-499\". "
        "\"\" = status is not a failure."
    )] = ""
    time_taken: Annotated[Duration, doc(
        "A request that took at least this long is failed; 0 = time is not a failure."
    )] = Duration(0)
    verbosity: Annotated[Literal["Ignore", "CriticalError", "Error", "Warning"], doc(
        "A request during which an event this severe or worse was recorded is failed "
        "(an unhandled error in a module is an Error event); Ignore = events are not a failure."
    )] = "Ignore"


@check(FailureDefinitions, "status_codes")
def _check_codes(value: str, path: str, add) -> None:
    try:
        parse_status_codes(value)
    except ValueError as exc:
        add(path, str(exc))


class TraceRule(Struct, forbid_unknown_fields=True, kw_only=True):
    """One `<traceFailedRequests><add path>`."""

    path: Annotated[RulePath, doc(
        "The URLs the rule watches, by file name: \"*\" every one, \"*.php\", \"index.html\"; "
        "\"/\" a folder's own URL (its default document). Case is ignored."
    )]
    trace_areas: Annotated[list[TraceArea], collection(key="provider"), doc(
        "What is recorded; empty = every WWW Server area at Verbose."
    )] = field(default_factory=list)
    failure_definitions: FailureDefinitions = field(default_factory=FailureDefinitions)


@section("trace_failed_requests", override_mode_default="Allow", default_collection="rules")
class TraceFailedRequests(Section):
    """IIS system.webServer/tracing/traceFailedRequests."""

    rules: Annotated[list[TraceRule], collection(key="path"), doc(
        "Trace rules, tried in order; the first whose path matches is the request's rule."
    )] = field(default_factory=list)


def parse_status_codes(text: str) -> tuple[tuple[int, int, int], ...]:
    """"404.2, 500, 400-499" -> ((low, high, substatus or -1), ...); ValueError names the part."""
    found = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            if text.strip():
                raise ValueError(f"an empty status code in {text!r}")
            continue
        low_text, dash, high_text = part.partition("-")
        low = _code(low_text.strip(), text)
        if dash:
            high = _code(high_text.strip(), text)
            if low[1] >= 0 or high[1] >= 0:
                raise ValueError(f"a range takes no substatus: {part!r}")
            if high[0] < low[0]:
                raise ValueError(f"a range that ends before it starts: {part!r}")
            found.append((low[0], high[0], -1))
        else:
            found.append((low[0], low[0], low[1]))
    return tuple(found)


def _code(part: str, text: str) -> tuple[int, int]:
    match = _CODE.match(part)
    if match is None:
        raise ValueError(f"not a status code: {part!r} in {text!r} (\"404\", \"404.2\", \"400-499\")")
    status = int(match.group(1))
    sub = int(match.group(2)) if match.group(2) is not None else -1
    if not 100 <= status <= 999:
        raise ValueError(f"status {status} is outside 100-999")
    if sub != -1 and not 0 <= sub <= 999:
        raise ValueError(f"substatus {sub} is outside 0-999")
    return status, sub


def status_matches(codes, status: int, substatus: int) -> bool:
    for low, high, sub in codes:
        if low <= status <= high and (sub < 0 or sub == substatus):
            return True
    return False
