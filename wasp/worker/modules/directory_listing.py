"""DirectoryListingModule: a directory URL with no default document, listed the way IIS lists it.

As in IIS (the StaticFile handler's `modules="StaticFileModule,DefaultDocumentModule,
DirectoryListingModule"`), the module is reached through the StaticFile handler entry: the handler
mapping (wasp/worker/handlers.py) hands a directory URL ending in "/" to it once default_document
found no document. The URL's `directory_browse` section decides: disabled (IIS's default), 403.14.

The page is IIS's, byte for byte where the format is known: `<pre>`, `[To Parent Directory]`,
dates `M/D/YYYY` right-aligned in 10 columns, times `h:mm AM` in 8, sizes in 12, `&lt;dir&gt;`
for folders. Names are HTML-escaped in the text and percent-encoded (their raw bytes) in the
links, so a file called `<script>` or `a"b` or `100%` or one with a newline or non-UTF-8 bytes is
shown as text and links to itself. Left out: dot files (the Linux "hidden" attribute IIS skips),
request filtering's hidden segments (web.toml among them), and entries that resolve outside the
application's root (a symlink out).
"""

from __future__ import annotations

import html
import os
import stat
import time
from urllib.parse import quote

from wasp.errors import Forbidden
from wasp.worker.errorpages import MethodNotAllowed
from wasp.worker.modules.static import HIDDEN_SEGMENTS, header, safe_stat
from wasp.worker.registry import FINISH, Module, Phase, register

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")

#: A listing stops after this many entries (a folder of a million files must not cost a worker
#: its memory); the page says so.
MAX_ENTRIES = 10000


def when(mtime: float, flags: frozenset) -> str:
    """The date and time columns of a line, as IIS prints them (server local time)."""
    t = time.localtime(mtime)
    out = ""
    if "LongDate" in flags:
        out = f"{_DAYS[t.tm_wday]}, {_MONTHS[t.tm_mon - 1]} {t.tm_mday:02d}, {t.tm_year}"
    elif "Date" in flags:
        out = f"{t.tm_mon}/{t.tm_mday}/{t.tm_year}".rjust(10)
    if "Time" in flags:
        hour = t.tm_hour % 12 or 12
        clock = f"{hour}:{t.tm_min:02d} {'AM' if t.tm_hour < 12 else 'PM'}"
        out += " " + clock.rjust(8)
    return out


def line(url_dir: bytes, name: str, st: os.stat_result, flags: frozenset) -> str:
    """One entry: `<date> <time> <size> <A HREF="...">name</A><br>`."""
    is_dir = stat.S_ISDIR(st.st_mode)
    shown = name
    if not is_dir and "Extension" not in flags:
        root, ext = os.path.splitext(name)
        shown = root if root else name
    href = quote(url_dir, safe="/:@!$&'()*+,;=-._~") + quote(os.fsencode(name), safe="") + ("/" if is_dir else "")
    size = ""
    if is_dir:
        size = " " + "&lt;dir&gt;".rjust(12 + 6)
    elif "Size" in flags:
        size = " " + str(st.st_size).rjust(12)
    text = html.escape(shown.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
    return f"{when(st.st_mtime, flags)}{size} <A HREF=\"{html.escape(href)}\">{text}</A><br>"


def page(host: str, url_dir: bytes, entries, flags: frozenset, truncated: bool = False) -> str:
    """The whole listing. `url_dir` is the URL path of the directory (decoded, ending in "/")."""
    shown_path = html.escape(url_dir.decode("utf-8", "replace"))
    title = f"{html.escape(host)} - {shown_path}"
    parent = ""
    if url_dir != b"/":
        up = url_dir[:url_dir.rstrip(b"/").rfind(b"/") + 1] or b"/"
        parent = (f"<A HREF=\"{html.escape(quote(up, safe='/:@!$&()*+,;=-._~'))}\">"
                  "[To Parent Directory]</A><br><br>")
    rows = "".join(line(url_dir, name, st, flags) for name, st in entries)
    more = f"<br>(the first {MAX_ENTRIES} entries)<br>" if truncated else ""
    return (f"<html><head><title>{title}</title></head><body><H1>{title}</H1><hr>\r\n\r\n"
            f"<pre>{parent}{rows}{more}</pre><hr></body></html>")


def host_of(head) -> str:
    """The Host header without its port (IIS titles the page with the host name)."""
    value = header(head, b"host") or b""
    text = value.decode("latin-1").strip()
    if text.startswith("["):
        return text[:text.find("]") + 1] if "]" in text else text
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


def hidden_names(config) -> frozenset:
    """Names never listed: request filtering's hidden segments (lower case) and web.toml."""
    names = set(HIDDEN_SEGMENTS)
    filtering = getattr(config, "request_filtering", None)
    if filtering is not None:
        names.update(s.lower() for s in filtering.hidden_segments.segments)
    return frozenset(names)


def entries_of(root: str, directory: str, hidden: frozenset):
    """[(name, stat)] of the listable entries, sorted as NTFS lists them (without regard to case),
    and whether the listing was cut at MAX_ENTRIES."""
    found = []
    truncated = False
    try:
        with os.scandir(directory) as it:
            for entry in it:
                name = entry.name
                if name.startswith(".") or name.lower() in hidden:
                    continue
                if len(found) >= MAX_ENTRIES:
                    truncated = True
                    break
                resolved = safe_stat(root, os.path.join(directory, name))
                if resolved is None:
                    continue  # a symlink out of the root, a socket, a dangling link
                found.append((name, resolved[1]))
    except OSError:
        return [], False
    found.sort(key=lambda item: (item[0].lower(), item[0]))
    return found, truncated


@register("directory_listing", phases=(Phase.EXECUTE_REQUEST_HANDLER,))
class DirectoryListingModule(Module):
    """IIS DirectoryListingModule."""

    #: The handler mapping gives this module the directory URLs of an entry that names it.
    lists_directories = True

    def setup(self, app) -> None:
        physical = app.config.physical_path
        self.root = os.path.realpath(physical) if physical else None

    def wants(self, phase) -> bool:
        return self.root is not None

    def execute_request_handler(self, ctx):
        section = ctx.config.directory_browse
        if not section.enabled:
            raise Forbidden("directory listing denied", substatus=14)
        if ctx.head.method not in ("GET", "HEAD"):
            raise MethodNotAllowed("GET, HEAD")
        flags = frozenset(section.show_flags) - {"None"}
        entries, truncated = entries_of(self.root, ctx.file_path, hidden_names(ctx.config))
        body = page(host_of(ctx.head), ctx.head.path, entries, flags, truncated).encode("utf-8")
        ctx.private = True  # a listing changes with the folder: never stored by the front
        ctx.respond(b"200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                    b"Cache-Control: no-cache\r\n", body)
        return FINISH
