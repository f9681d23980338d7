"""IIS system.webServer/security/requestFiltering: what a request may look like before anything
serves it (the request_filtering module, wasp/worker/modules/request_filtering.py, at
BEGIN_REQUEST).

The keys are IIS's (iis-behaviour.md §2.5) in snake_case. IIS's child elements that hold only a
collection (`<denyUrlSequences>`, `<alwaysAllowedUrls>`, ...) are collections of the section
itself; the ones with attributes of their own are sub-tables whose collection has a name:
`file_extensions.extensions`, `verbs.verbs`, `hidden_segments.segments`,
`request_limits.header_limits`. Every collection takes an array (entries added to the inherited
ones) or `{ clear, remove, add }`, at every level and in web.toml, so a location can loosen
(`remove = [".config"]`) or tighten (`add = [...]`) what it inherits.

wasp additions, each said so in its doc: `hidden_segments` also has `web.toml` (wasp's
web.config); `verbs.allow_verb_tunnelling`; `request_limits.max_url_segments` (IIS keeps it in
the site's limits, enforced by IIS core as 404.20: here it is per URL like the other limits).
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct, field

from wasp.config.model import Size, doc
from wasp.config.sections import Section, collection, section

#: IIS's default install list of denied extensions (applicationHost.config, iis-behaviour.md §2.5).
IIS_DENIED_EXTENSIONS = (
    ".asa", ".asax", ".ascx", ".master", ".skin", ".browser", ".sitemap", ".config", ".cs",
    ".csproj", ".vb", ".vbproj", ".webinfo", ".licx", ".resx", ".resources", ".mdb", ".vjsproj",
    ".java", ".jsl", ".ldb", ".dsdgm", ".ssdgm", ".lsad", ".ssmap", ".cd", ".dsprototype",
    ".lsaprototype", ".sdm", ".sdmDocument", ".mdf", ".ldf", ".ad", ".dd", ".ldd", ".sd",
    ".adprototype", ".lddprototype", ".exclude", ".refresh", ".compiled", ".msgx", ".vsdisco",
    ".rules",
)

#: IIS's default hidden segments, plus web.toml (wasp's distributed configuration file).
IIS_HIDDEN_SEGMENTS = ("web.config", "bin", "App_code", "App_GlobalResources", "App_LocalResources",
                       "App_WebReferences", "App_Data", "App_Browsers", "web.toml")

NonEmpty = Annotated[str, Meta(min_length=1)]
#: An extension as IIS writes it: ".config"; "." alone is the extension of a name without one.
Extension = Annotated[str, Meta(pattern=r"^\.[^/\\\x00]*$")]
#: A path segment: no "/", "\\" or NUL.
Segment = Annotated[str, Meta(pattern=r"^[^/\\\x00]+$")]
#: An HTTP method token (RFC 9110 §5.6.2).
Verb = Annotated[str, Meta(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")]
#: A header name token.
HeaderName = Annotated[str, Meta(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")]


class FileExtension(Struct, forbid_unknown_fields=True, kw_only=True):
    """One `<fileExtensions><add>`."""

    file_extension: Annotated[Extension, doc(
        "The extension with its dot (\".config\"), compared without regard to case; \".\" is a "
        "name without an extension."
    )]
    allowed: Annotated[bool, doc("false: 404.7 for URLs ending in it; true: allowed even when "
                                 "`allow_unlisted` is false.")] = True


class FileExtensions(Struct, forbid_unknown_fields=True, kw_only=True):
    """IIS `<fileExtensions>`: the extension of the URL's last segment, allowed or denied (404.7)."""

    allow_unlisted: Annotated[bool, doc(
        "An extension not in `extensions` is allowed; false: only the ones listed allowed are."
    )] = True
    apply_to_web_dav: Annotated[bool, doc(
        "Also check WebDAV requests (a WebDAV method such as PROPFIND, or `Translate: f`)."
    )] = True
    extensions: Annotated[list[FileExtension], collection(key="file_extension"), doc(
        "IIS's `<add fileExtension allowed>` entries; the default is IIS's deny list."
    )] = field(default_factory=lambda: [FileExtension(file_extension=e, allowed=False)
                                        for e in IIS_DENIED_EXTENSIONS])


class VerbRule(Struct, forbid_unknown_fields=True, kw_only=True):
    """One `<verbs><add>`."""

    verb: Annotated[Verb, doc("The method, compared with its case (IIS: caseSensitive).")]
    allowed: Annotated[bool, doc("false: 404.6; true: allowed even when `allow_unlisted` is false.")]


class Verbs(Struct, forbid_unknown_fields=True, kw_only=True):
    """IIS `<verbs>`: methods allowed or denied (404.6)."""

    allow_unlisted: Annotated[bool, doc(
        "A method not in `verbs` is allowed; false: only the ones listed allowed are (HEAD and "
        "OPTIONS need their own entries)."
    )] = True
    apply_to_web_dav: Annotated[bool, doc("Also check WebDAV requests.")] = True
    allow_verb_tunnelling: Annotated[bool, doc(
        "wasp: a request may carry a method-override header (X-HTTP-Method-Override, "
        "X-HTTP-Method, X-Method-Override) or a `_method` query parameter. The method it names "
        "is checked like the request's own either way (also upper-cased, and each part of a "
        "comma list), so it cannot tunnel a denied verb; false: any such header or parameter is 404.6."
    )] = True
    verbs: Annotated[list[VerbRule], collection(key="verb"), doc(
        "IIS's `<add verb allowed>` entries."
    )] = field(default_factory=list)


class HiddenSegments(Struct, forbid_unknown_fields=True, kw_only=True):
    """IIS `<hiddenSegments>`: a URL with one of these as a whole path segment is 404.8."""

    apply_to_web_dav: Annotated[bool, doc("Also check WebDAV requests.")] = True
    segments: Annotated[list[Segment], collection(key=None), doc(
        "Segment names, compared without regard to case (\"bin\" hides /bin/x, not /binary). "
        "IIS's list plus web.toml."
    )] = field(default_factory=lambda: list(IIS_HIDDEN_SEGMENTS))


class HeaderLimit(Struct, forbid_unknown_fields=True, kw_only=True):
    """One `<headerLimits><add>`."""

    header: Annotated[HeaderName, doc("The header name, without regard to case.")]
    size_limit: Annotated[int, Meta(ge=0, description=(
        "Longest value in bytes (a header sent several times: its values joined by \", \"); over "
        "it: 431. 0: any request carrying the header is refused."))]


class RequestLimits(Struct, forbid_unknown_fields=True, kw_only=True):
    """IIS `<requestLimits>`."""

    max_allowed_content_length: Annotated[Size, doc(
        "Longest request body: a Content-Length over it is 413.1 before anything runs, and a "
        "chunked body is cut with 413.1 when what was read goes over it (IIS measures only "
        "Content-Length). 0: no limit."
    )] = Size(30000000)
    max_url: Annotated[int, Meta(ge=0, description=(
        "Longest URL path (decoded, without the query string) in bytes; over it: 404.14. "
        "0: no limit."))] = 4096
    max_query_string: Annotated[int, Meta(ge=0, description=(
        "Longest query string (as sent, without \"?\") in bytes; over it: 404.15. 0: no limit."))] = 2048
    max_url_segments: Annotated[int, Meta(ge=0, le=16383, description=(
        "Most path segments a URL may have; over it: 404.20. IIS keeps this in the site's limits "
        "(maxUrlSegments); wasp has it here, so it can be set per URL too. 0: no limit."))] = 32
    header_limits: Annotated[list[HeaderLimit], collection(key="header"), doc(
        "IIS's `<headerLimits>`: `{ header, size_limit }` entries."
    )] = field(default_factory=list)


class FilteringRule(Struct, forbid_unknown_fields=True, kw_only=True):
    """One `<filteringRules><filteringRule>`: deny strings looked for in parts of the request (404.19)."""

    name: Annotated[NonEmpty, doc("The rule's unique name.")]
    scan_url: Annotated[bool, doc("Look in the URL path (as sent and decoded).")] = False
    scan_query_string: Annotated[bool, doc(
        "Look in the query string (as sent and, with `unescape_query_string`, decoded)."
    )] = False
    scan_all_raw: Annotated[bool, doc("Look in the request target and every header line as sent.")] = False
    deny_unescaped_percent: Annotated[bool, doc(
        "A `%` that starts no escape (%XX, %uXXXX) in a part the rule scans is a match."
    )] = True
    scan_headers: Annotated[list[HeaderName], doc("Headers whose values are scanned (every occurrence).")] = \
        field(default_factory=list)
    applies_to: Annotated[list[Extension], doc(
        "Extensions (\".php\") the rule is for; empty: every request."
    )] = field(default_factory=list)
    deny_strings: Annotated[list[NonEmpty], doc(
        "Strings that deny the request, compared without regard to case."
    )] = field(default_factory=list)


@section("request_filtering", override_mode_default="Allow")
class RequestFiltering(Section):
    """IIS system.webServer/security/requestFiltering (RequestFilteringModule). Denials are 404
    with IIS's substatus (404.5 ... 404.20), 413.1 or 431 (404.13 / 404.10 with
    `legacy_status_codes`), in the W3C log's sc-substatus."""

    allow_double_escaping: Annotated[bool, doc(
        "false: a URL path that decodes to something that would decode again (a `%XX` or "
        "`%uXXXX` escape, or `+`, left after the front decoded it once) is 404.11."
    )] = False
    allow_high_bit_characters: Annotated[bool, doc(
        "false: a URL path with a non-ASCII byte (decoded) is 404.12."
    )] = True
    unescape_query_string: Annotated[bool, doc(
        "Query-string sequences and rules are matched against the query as sent and decoded; "
        "false: as sent only."
    )] = True
    legacy_status_codes: Annotated[bool, doc(
        "Answer as IIS 7.0-8.5 did: 404.13 (Content Length Too Large) instead of 413.1 for "
        "`max_allowed_content_length`, 404.10 (Request Header Too Long) instead of 431 for "
        "`header_limits`, for clients or monitoring that expect the old codes. IIS 10's 413.1 / "
        "431 by default."
    )] = False
    request_limits: RequestLimits = field(default_factory=RequestLimits)
    file_extensions: FileExtensions = field(default_factory=FileExtensions)
    verbs: Verbs = field(default_factory=Verbs)
    hidden_segments: HiddenSegments = field(default_factory=HiddenSegments)
    deny_url_sequences: Annotated[list[NonEmpty], collection(key=None), doc(
        "Strings a URL path may not contain (as sent, decoded, or after dot segments are "
        "resolved), without regard to case; one that does is 404.5."
    )] = field(default_factory=list)
    always_allowed_urls: Annotated[list[NonEmpty], collection(key=None), doc(
        "URL paths (\"/a/b.html\", without regard to case) that `deny_url_sequences` never denies."
    )] = field(default_factory=list)
    deny_query_string_sequences: Annotated[list[NonEmpty], collection(key=None), doc(
        "Strings a query string may not contain, without regard to case; one that does is 404.18."
    )] = field(default_factory=list)
    always_allowed_query_strings: Annotated[list[NonEmpty], collection(key=None), doc(
        "Query strings (whole, as sent or decoded) that `deny_query_string_sequences` never denies."
    )] = field(default_factory=list)
    filtering_rules: Annotated[list[FilteringRule], collection(key="name"), doc(
        "IIS's `<filteringRules>`: named rules with deny strings; a match is 404.19."
    )] = field(default_factory=list)
