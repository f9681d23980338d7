"""IIS system.webServer/staticContent: the MIME map, the client cache headers of static files and
the document footer (iis-behaviour.md §2.12).

`mime_map` is IIS's `<mimeMap>` collection keyed by extension (add / remove / clear, merged down
the hierarchy, a level's entries after the inherited ones); its default is IIS 10's list
(wasp/config/mimemap.py). `client_cache` is IIS's `<clientCache>`: `cache_control_max_age` is a
wasp duration ("1d", "3600s"; IIS writes "1.00:00:00"), `http_expires` an RFC 1123 date.
`is_doc_footer_file_name` can be set in wasp.toml only (IIS's install locks the attribute,
`lockAttributes="isDocFooterFileName"`): a web.toml cannot turn footer text into a file to read.
"""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime
from typing import Annotated, Literal

from msgspec import Meta, Struct, field

from wasp.config.mimemap import DEFAULT_MIME_MAP
from wasp.config.model import Duration, doc
from wasp.config.sections import LOCKED_ATTRIBUTES, Section, check, collection, section

#: ".ext" or ".a.b": a dot, then no "/", "\\", NUL, whitespace or control characters.
Extension = Annotated[str, Meta(pattern=r"^\.[^/\\\x00-\x20\x7f*?]+$", max_length=64)]
#: "type/subtype" with optional parameters; no CR, LF or other control characters.
MimeType = Annotated[str, Meta(
    pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+(\s*;[^\x00-\x1f\x7f]*)?$",
    max_length=200)]
#: A header value: printable characters only (response splitting is refused at load).
HeaderValue = Annotated[str, Meta(pattern=r"^[^\x00-\x1f\x7f]*$", max_length=1024)]

CacheControlMode = Literal["NoControl", "DisableCache", "UseMaxAge", "UseExpires"]


class MimeMap(Struct, forbid_unknown_fields=True, kw_only=True):
    """One `<mimeMap>`."""

    file_extension: Annotated[Extension, doc("The extension with its dot (\".svg\"), compared without regard to case.")]
    mime_type: Annotated[MimeType, doc("The Content-Type sent with such files (\"image/svg+xml\").")]


class ClientCache(Struct, forbid_unknown_fields=True, kw_only=True):
    """IIS `<clientCache>`."""

    cache_control_mode: Annotated[CacheControlMode, doc(
        "NoControl: no header; DisableCache: `Cache-Control: no-cache`; UseMaxAge: "
        "`Cache-Control: max-age=<cache_control_max_age>`; UseExpires: `Expires: <http_expires>`."
    )] = "NoControl"
    cache_control_max_age: Annotated[Duration, Meta(ge=0), doc(
        "The max-age of UseMaxAge (IIS's 1.00:00:00, one day), whole seconds."
    )] = Duration(86400)
    http_expires: Annotated[HeaderValue, doc(
        "The date UseExpires sends, RFC 1123 (\"Fri, 01 Jan 2100 00:00:00 GMT\")."
    )] = ""
    cache_control_custom: Annotated[HeaderValue, doc(
        "Added to the Cache-Control header (\"public\", \"must-revalidate\"), after the mode's directive."
    )] = ""
    set_e_tag: Annotated[bool, doc("Send the ETag header with static files.")] = True


@section("static_content", override_mode_default="Allow")
class StaticContent(Section):
    """IIS system.webServer/staticContent."""

    enable_doc_footer: Annotated[bool, doc(
        "Append `default_doc_footer` to every static file served (such files are read and sent "
        "by the worker, not with sendfile, and get no ranges)."
    )] = False
    default_doc_footer: Annotated[str, Meta(max_length=65536), doc(
        "The footer: text, or with `is_doc_footer_file_name` the absolute path of a file whose "
        "contents are the footer."
    )] = ""
    is_doc_footer_file_name: Annotated[bool, doc(
        "`default_doc_footer` names a file. Locked: wasp.toml only, never a web.toml (as IIS's install)."
    )] = False
    client_cache: Annotated[ClientCache, doc("IIS <clientCache>: the caching headers of static files.")] = \
        field(default_factory=ClientCache)
    mime_map: Annotated[list[MimeMap], collection(key="file_extension"), doc(
        "Extension -> Content-Type; a file whose extension has no entry is not served (404.3). "
        "Default: IIS 10's list (docs/content.md). An array adds entries; `{ clear, remove = "
        "[\".ext\"], add = [...] }` edits the inherited list."
    )] = field(default_factory=lambda: [MimeMap(file_extension=e, mime_type=m)
                                        for e, m in DEFAULT_MIME_MAP])


LOCKED_ATTRIBUTES["static_content"] = frozenset({"is_doc_footer_file_name"})

_RFC1123 = re.compile(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$")


@check(ClientCache, "http_expires")
def _check_expires(value: str, path: str, add) -> None:
    if not value:
        return
    try:
        ok = bool(_RFC1123.match(value)) and parsedate_to_datetime(value) is not None
    except (TypeError, ValueError, IndexError, OverflowError):
        ok = False
    if not ok:
        add(path, f"\"{value}\" is not an RFC 1123 date (\"Fri, 01 Jan 2100 00:00:00 GMT\")")
