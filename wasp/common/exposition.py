"""The Prometheus text exposition format (version 0.0.4), sans I/O: families in, text out.

    # HELP wasp_site_requests_total Requests answered, by site and method.
    # TYPE wasp_site_requests_total counter
    wasp_site_requests_total{site="Default Web Site",method="GET"} 12

Label values are escaped as the format says (backslash, double quote and line feed), HELP text
too (backslash and line feed), so a site named `a"b\\c` cannot break a line or forge a sample.
Histograms are kept by their owners as plain bucket arrays (a count per bucket, not cumulative,
the last one above every bound) and made cumulative here, when scraped.
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Request durations (seconds): Prometheus's default buckets.
DURATION_BOUNDS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: The methods IIS's Web Service counters name ("Get Requests", "Copy Requests", ...), in the
#: order the front counts them (wasp/front/metrics.py); any other counts as "other".
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH", "CONNECT",
           "COPY", "MOVE", "MKCOL", "PROPFIND", "PROPPATCH", "SEARCH", "LOCK", "UNLOCK")
#: Status classes the front counts: "none" for a connection closed before a response, then 1xx..5xx.
STATUS_CLASSES = ("none", "1xx", "2xx", "3xx", "4xx", "5xx")

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_KINDS = ("counter", "gauge", "histogram", "untyped")

Labels = tuple[tuple[str, str], ...]


class ExpositionError(ValueError):
    """A metric or label name the format does not allow (a bug in whoever names it)."""


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{escape_label(str(v))}"' for k, v in labels) + "}"


class Family:
    """One metric family: a name, a type, its HELP and its samples."""

    __slots__ = ("name", "kind", "help", "samples")

    def __init__(self, name: str, kind: str, help: str):
        if not _NAME.match(name):
            raise ExpositionError(f"{name!r} is not a metric name")
        if kind not in _KINDS:
            raise ExpositionError(f"{kind!r} is not a metric type")
        if kind == "counter" and not name.endswith("_total"):
            raise ExpositionError(f"counter {name!r} must end in _total")
        self.name = name
        self.kind = kind
        self.help = help
        self.samples: list[tuple[str, Labels, float]] = []   # (name suffix, labels, value)

    def add(self, labels: Labels, value: float) -> None:
        for key, _ in labels:
            if not _LABEL.match(key) or key.startswith("__") or key == "le" and self.kind == "histogram":
                raise ExpositionError(f"{key!r} is not a label name here")
        self.samples.append(("", labels, value))

    def add_histogram(self, labels: Labels, bounds: Sequence[float], counts: Sequence[int],
                      total: float) -> None:
        """`counts`: one count per bound (observations <= it and above the previous bound), then
        one for those above the last bound: len(bounds) + 1 numbers, not cumulative."""
        if self.kind != "histogram":
            raise ExpositionError(f"{self.name} is not a histogram")
        if len(counts) != len(bounds) + 1:
            raise ExpositionError(f"{self.name}: {len(counts)} bucket counts for {len(bounds)} bounds")
        for key, _ in labels:
            if not _LABEL.match(key) or key == "le" or key.startswith("__"):
                raise ExpositionError(f"{key!r} is not a label name here")
        running = 0
        samples = self.samples
        for bound, count in zip(bounds, counts):
            running += count
            samples.append(("_bucket", labels + (("le", format_value(float(bound))),), running))
        running += counts[-1]
        samples.append(("_bucket", labels + (("le", "+Inf"),), running))
        samples.append(("_sum", labels, total))
        samples.append(("_count", labels, running))


def render(families: Iterable[Family]) -> str:
    """The text of a scrape. A family with no samples is left out; names must be unique."""
    out: list[str] = []
    seen: set[str] = set()
    for family in families:
        if family.name in seen:
            raise ExpositionError(f"metric family {family.name} twice")
        seen.add(family.name)
        if not family.samples:
            continue
        out.append(f"# HELP {family.name} {escape_help(family.help)}\n")
        out.append(f"# TYPE {family.name} {family.kind}\n")
        name = family.name
        for suffix, labels, value in family.samples:
            out.append(f"{name}{suffix}{_labels(labels)} {format_value(value)}\n")
    return "".join(out)


def bucket_index(bounds: Sequence[float], value: float) -> int:
    """Which bucket of a bucket array `value` falls in (what the counters do with bisect)."""
    from bisect import bisect_left
    return bisect_left(bounds, value)
