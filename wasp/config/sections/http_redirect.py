"""IIS system.webServer/httpRedirect (HttpRedirectionModule): send the requests of a site,
application or path elsewhere.

Without exact_destination the part of the URL below where the redirect is configured (and the
query string) is appended to `destination`; with it, `destination` is used as written, with IIS's
variables: `$S` that part of the path, `$Q` "?" and the query string (or nothing), `$P` the query
string without "?", `$V` the whole requested path. `child_only` leaves the configured folder's
own URL alone and redirects only what is below it. `rules` are IIS's `<add wildcard destination>`
entries, tried in order against the path below the configured folder ("*.php", "/old/*").
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from msgspec import Meta, Struct, field

from wasp.config.model import doc
from wasp.config.sections import Section, check, collection, section
from wasp.config.sections.http_errors import url_problem

#: httpResponseStatus name -> status line.
STATUS = {"Found": "302 Found", "Permanent": "301 Moved Permanently",
          "Temporary": "307 Temporary Redirect", "PermRedirect": "308 Permanent Redirect"}

Wildcard = Annotated[str, Meta(min_length=1, pattern=r"^[^\x00-\x1f\x7f\\]+$")]


class RedirectRule(Struct, forbid_unknown_fields=True, kw_only=True):
    """One `<httpRedirect><add wildcard destination>`."""

    wildcard: Annotated[Wildcard, doc("A pattern of the path below the configured folder; `*` matches anything, case is ignored.")]
    destination: Annotated[str, doc("Where a matching request goes (absolute http(s) URL or a path of this site).")]


def destination_problem(value: str) -> str | None:
    return url_problem("Redirect", value) if value else None


@check(RedirectRule, "destination")
def _check_rule_destination(value: str, path: str, add) -> None:
    problem = destination_problem(value) or (None if value else "a rule needs a destination")
    if problem:
        add(path, problem)


@section("http_redirect", override_mode_default="Allow", default_collection="rules")
class HttpRedirect(Section):
    """IIS system.webServer/httpRedirect."""

    enabled: Annotated[bool, doc("Redirect these URLs.")] = False
    destination: Annotated[str, doc(
        "Where requests go: an absolute http(s) URL or a path of this site (\"/new\")."
    )] = ""
    exact_destination: Annotated[bool, doc(
        "Use destination as written (with $S, $Q, $P, $V) instead of appending the path below "
        "the configured folder and the query string."
    )] = False
    child_only: Annotated[bool, doc(
        "Redirect only URLs below the configured folder, not the folder's own URL."
    )] = False
    http_response_status: Annotated[Literal["Found", "Permanent", "Temporary", "PermRedirect"], doc(
        "Found 302, Permanent 301, Temporary 307, PermRedirect 308."
    )] = "Found"
    rules: Annotated[list[RedirectRule], collection(key="wildcard"), doc(
        "Wildcard rules tried in order before `destination` (IIS's `<add wildcard destination>`)."
    )] = field(default_factory=list)


@check(HttpRedirect, "destination")
def _check_destination(value: str, path: str, add) -> None:
    problem = destination_problem(value)
    if problem:
        add(path, problem)


def wildcard_regex(pattern: str) -> re.Pattern:
    return re.compile(".*".join(re.escape(p) for p in pattern.split("*")) + r"\Z",
                      re.IGNORECASE | re.DOTALL)
