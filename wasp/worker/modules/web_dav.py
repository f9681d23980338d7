"""IIS WebDAVModule: RFC 4918 authoring of an application's content (class 1 and 2).

The handler of the `WebDAV` entry of the handler list (wasp/config/sections/handlers.py): PROPFIND,
PROPPATCH, MKCOL, PUT, DELETE, COPY, MOVE, LOCK, UNLOCK and OPTIONS where `web_dav_authoring`
is enabled; elsewhere it passes the request to the next entry (the Python app, static files).
GET and HEAD stay with static_file, except for a file with no MIME map entry, which an author
with Read access gets as `default_mime_type` (IIS's allowNonMimeMapFiles), and a GET with
`Translate: f` from an author with Source and Read access, which gets the file as it is, before
any handler (PHP, CGI, the app) would run it (`serves_source`).

Every request is checked against `web_dav_authoring_rules` (Read for PROPFIND and GET, Write for
everything that changes content or locks, Read on the source and Write on the destination of
COPY, Write on both for MOVE): the anonymous user is refused with 401.2 and the authentication
challenges, a known user with 403.2 (read) or 403.3 (write). The handler blocks (file I/O,
request bodies, the SQLite store), so it runs on the pool's threads; a static-only application
that enables WebDAV gets them.

Safety: paths go through static's `check_path` (no NUL, `\\`, `..`; web.toml is 404.8) and every
real path must stay inside the real physical_path (a symlink out is 403 and never followed by
a listing, COPY or DELETE); request filtering's hidden segments and hidden files (dot files,
unless allowed) are never read, listed or written, in the URL or in a Destination; a Destination
on another host or outside the application is 502 (RFC 4918 §9.8.5). PUT writes a temporary file
next to the target and renames it over the target, so a reader never sees half a file.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat as stat_mod
import time
from urllib.parse import quote, unquote_to_bytes, urlsplit

from wasp.errors import BadRequest, Forbidden, HttpError, NotFound
from wasp.worker.auth import roles_of
from wasp.worker.authn import unauthorized
from wasp.worker.dav import xmlbody
from wasp.worker.dav.ifheader import parse_depth, parse_if, parse_overwrite, parse_timeout
from wasp.worker.dav.store import MAX_PROPS, MAX_VALUE, Store, is_below
from wasp.worker.dav.xmlbody import DAV, BadXml, Element
from wasp.worker.errorpages import MethodNotAllowed
from wasp.worker.handlers import compile_path
from wasp.config.mimemap import REFUSED as _UNSERVED
from wasp.worker.modules.mime import content_type, table_of
from wasp.worker.modules.static import (HiddenSegment, UnsafePath, check_path, etag_of, header,
                                        http_date, serve_file)
from wasp.worker.registry import FINISH, Module, Phase, register

log = logging.getLogger("wasp.worker")


#: Files WebDAV treats as source code (IIS: script-mapped files, which need "Source" access to be
#: read or written as files): Python and shell code and configuration, and what the MIME map
#: leaves out on purpose (wasp/config/mimemap.py REFUSED).
_SOURCE = frozenset({".py", ".pyc", ".pyo", ".pyw", ".pyi", ".pyd", ".so", ".cfg", ".ini", ".toml",
                     ".env", ".sh", ".bat", ".ksh", ".csh", ".config"}) | _UNSERVED


def _types(ctx) -> dict[str, str]:
    """The URL's effective MIME map (static_content.mime_map), built once per URL config."""
    config = ctx.config
    try:
        return config._web_dav_types
    except AttributeError:
        types = config._web_dav_types = table_of(config.static_content.mime_map)
        return types


DAV_METHODS = ("OPTIONS", "PROPFIND", "PROPPATCH", "MKCOL", "PUT", "DELETE", "COPY", "MOVE",
               "LOCK", "UNLOCK")
ALLOW = "OPTIONS, GET, HEAD, PROPFIND, PROPPATCH, MKCOL, PUT, DELETE, COPY, MOVE, LOCK, UNLOCK"
XML_TYPE = 'application/xml; charset="utf-8"'
#: Temporary files of PUTs in progress: hidden, and never listed even where hidden files are.
TMP_PREFIX = ".wasp-dav-"
#: Most responses one PROPFIND (Depth: 1 or infinity) produces.
MAX_RESPONSES = 20000
CHUNK = 256 * 1024

LIVE = ("creationdate", "displayname", "getcontentlength", "getcontenttype", "getetag",
        "getlastmodified", "resourcetype", "supportedlock", "lockdiscovery")


class Locked(HttpError):
    status = 423
    reason = "Locked"


class PreconditionFailed(HttpError):
    status = 412
    reason = "PreconditionFailed"


class Conflict(HttpError):
    status = 409
    reason = "Conflict"


class BadGateway(HttpError):
    status = 502
    reason = "BadGateway"


class UnsupportedMediaType(HttpError):
    status = 415
    reason = "UnsupportedMediaType"


class _TooMany(Exception):
    pass


class HiddenFile(NotFound):
    substatus = 9  # IIS: the file has the hidden attribute


def _names(text: str) -> frozenset[str]:
    return frozenset(n.strip().casefold() for n in text.split(",") if n.strip())


class Rules:
    """The compiled `web_dav_authoring_rules` of one effective section."""

    def __init__(self, section):
        self.default = frozenset(a for a in section.default_access if a != "None")
        self.rules = [(_names(r.users), _names(r.roles), compile_path(r.path),
                       frozenset(a for a in r.access if a != "None")) for r in section.rules]
        self.non_mime = section.allow_non_mime_map_files
        self.mime = section.default_mime_type

    def access(self, user: str, roles: frozenset, rel: bytes, name: bytes) -> frozenset:
        granted = set(self.default)
        for users, rule_roles, match, access in self.rules:
            if not ("*" in users or (not user and "?" in users) or (user and user in users)
                    or (user and rule_roles and not rule_roles.isdisjoint(roles))):
                continue
            if match is None or match(rel, name):
                granted |= access
        return frozenset(granted)


class Resource:
    """A URL below the application mapped to the file system. `key` is the store's path ("" for
    the root, "/a/b"); `fs` a path whose parent is a real directory inside the root; `st` the
    stat of what is there (None: nothing)."""

    __slots__ = ("key", "fs", "st", "link")

    def __init__(self, key: str, fs: str, st, link: bool):
        self.key = key
        self.fs = fs
        self.st = st
        self.link = link

    @property
    def exists(self) -> bool:
        return self.st is not None

    @property
    def is_dir(self) -> bool:
        return self.st is not None and stat_mod.S_ISDIR(self.st.st_mode)

    @property
    def name(self) -> str:
        return self.key.rpartition("/")[2]

    @property
    def parent(self) -> str:
        return self.key.rpartition("/")[0]


def _inside(root: str, real: str) -> bool:
    return real == root or real.startswith(root + os.sep) or root == os.sep


@register("web_dav", phases=(Phase.EXECUTE_REQUEST_HANDLER,))
class WebDavModule(Module):
    blocking = True
    needs_threads = True   # its bodies are read on threads: application.load makes the app threaded
    answers_options = True  # protocol_support leaves OPTIONS to this handler (DAV headers)

    def setup(self, app) -> None:
        from wasp.config import sections

        physical = app.config.physical_path
        self.root = os.path.realpath(physical) if physical else None
        self.app = app
        self.prefix = app.script_name
        self.store = None
        self.compiled: dict[int, tuple] = {}
        enabled = app.sections.web_dav_authoring.enabled
        urls = getattr(app, "urls", None)
        if urls is not None and not enabled:
            for rel in urls.levels.below:
                value, _ = sections.resolve(urls.levels.levels_for(rel)[0], lambda p, m: None)
                enabled = enabled or value.web_dav_authoring.enabled
        if enabled and app.is_asgi:
            log.warning("application %s: WebDAV is not offered next to an ASGI app", app.key)
            enabled = False
        self.enabled = enabled and self.root is not None

    def wants(self, phase) -> bool:
        return self.enabled

    def validate(self) -> None:
        if self.enabled:
            run_dir = getattr(self.app, "run_dir", "") or os.path.join(self.root, os.pardir)
            name = "".join(c if c.isalnum() else "_" for c in self.app.key) + ".sqlite"
            self.store = Store(os.path.join(run_dir, "dav", name))

    def cleanup(self) -> None:
        if self.store is not None:
            self.store.close()

    # ---- mapping ----
    def passes(self, ctx) -> bool:
        """The handler list's hook: True sends the request on to the next entry."""
        if not ctx.config.web_dav_authoring.enabled:
            return True
        # Content that authors may change at any moment is kept out of the front's cache: its
        # validation (by stat, to the second) would miss a PUT within the same second.
        ctx.private = True
        method = ctx.head.method
        if method == "GET" or method == "HEAD":
            return not self._serves_source(ctx)
        return False

    def serves_source(self, ctx) -> bool:
        """The handler list's `Translate: f` hook (wasp/worker/handlers.py), before any entry:
        True when this GET or HEAD asks for the file's source (`Translate: f`, any case) and the
        user's authoring rules grant Source and Read on it; the handler then serves the file as
        it is, whatever handler (PHP, CGI, the Python app) the URL maps to. Otherwise the request
        is mapped as usual: IIS's WebDAV "If Translate:f AND Source is enabled, handle with the
        Static File Handler, else continue processing normally" (David Wang, IIS team, "WebDAV,
        Source, and Read Permissions on IIS", 2008) - no source leaks, and no refusal either.
        Only an existing regular file of that exact name inside the content counts: no path
        info, no directory, no alternate spelling (`x.php.`, `x.php::$DATA` name no file here).
        Two Translate headers are not a source request."""
        if not ctx.config.web_dav_authoring.enabled:
            return False   # first: most GETs are for sites without WebDAV, and this is cheapest
        values = [v for k, v in ctx.head.headers if len(k) == 9 and k.lower() == b"translate"]
        if len(values) != 1 or values[0].strip().lower() != b"f":
            return False   # none, `t`, or two that may disagree: the request is mapped as usual
        ctx.private = True
        try:
            res = self._resource(ctx, self._rel(ctx))
        except (HttpError, OSError):
            return False
        if res.st is None or not stat_mod.S_ISREG(res.st.st_mode) or not self._mime_ok(ctx, res):
            return False
        granted = self._access(ctx, res)
        return "Source" in granted and "Read" in granted

    def _serves_source(self, ctx) -> bool:
        rules = self._rules(ctx.config.web_dav_authoring_rules)
        if not rules.non_mime:
            return False
        try:
            res = self._resource(ctx, self._rel(ctx))
        except HttpError:
            return False
        if res.st is None or res.is_dir or content_type(res.fs, _types(ctx)) is not None:
            return False
        need = "Source" if os.path.splitext(res.fs)[1].lower() in _SOURCE else "Read"
        return need in self._access(ctx, res)

    # ---- the handler ----
    def execute_request_handler(self, ctx):
        cfg = ctx.config.web_dav_authoring
        if cfg.require_ssl and ctx.head.scheme != "https":
            raise Forbidden("WebDAV here requires TLS", substatus=4)
        ctx.private = True
        method = ctx.head.method
        if method == "GET" or method == "HEAD":
            res = self._resource(ctx, self._rel(ctx))
            self._need(ctx, res, "Read")
            if res.st is None or not stat_mod.S_ISREG(res.st.st_mode):
                raise NotFound("no such file")   # gone since the mapping looked
            mime = content_type(res.fs, _types(ctx)) or \
                self._rules(ctx.config.web_dav_authoring_rules).mime
            serve_file(ctx, res.fs, res.st, mime)
            return FINISH
        if method not in DAV_METHODS:
            raise MethodNotAllowed(ALLOW)
        if b"#" in ctx.head.target:
            # A request target never carries a fragment (RFC 9112 §3.2); a client that sends one
            # means less than the path before it, so nothing is changed on its behalf.
            raise BadRequest("a fragment in the request target")
        getattr(self, "do_" + method.lower())(ctx, cfg)
        return FINISH

    # ---- OPTIONS ----
    def do_options(self, ctx, cfg) -> None:
        dav = "1, 2" if cfg.locks.enabled else "1"
        self._respond(ctx, "200 OK", [("DAV", dav), ("MS-Author-Via", "DAV"), ("Allow", ALLOW)])

    # ---- PROPFIND ----
    def do_propfind(self, ctx, cfg) -> None:
        depth = parse_depth(self._h(ctx, b"depth"), "infinity", ("0", "1", "infinity"))
        if not ctx.user and not cfg.properties.allow_anonymous_propfind:
            raise unauthorized(ctx, 2, "anonymous PROPFIND is not allowed (allow_anonymous_propfind)")
        if depth == "infinity" and not cfg.properties.allow_infinite_propfind_depth:
            self._respond(ctx, "403 Forbidden", body=xmlbody.error_body("propfind-finite-depth"),
                          ctype=XML_TYPE)
            return
        body = self._read_xml(ctx, cfg)
        mode, wanted = "allprop", []
        if body:
            root = xmlbody.parse(body, int(cfg.max_allowed_xml_request_length))
            if root.key != (DAV, "propfind"):
                raise BadXml("the body is not a DAV:propfind")
            for child in root.elements():
                if child.key == (DAV, "prop"):
                    mode, wanted = "prop", [p.key for p in child.elements()]
                elif child.key == (DAV, "propname"):
                    mode = "propname"
                elif child.key == (DAV, "allprop"):
                    mode = "allprop"
        res = self._resource(ctx, self._rel(ctx))
        if not res.exists:
            raise NotFound("no such resource")
        self._need(ctx, res, "Read")
        responses: list[str] = []
        with self.store.read():
            for item in self._walk(ctx, res, depth):
                responses.append(self._propfind_one(ctx, cfg, item, mode, wanted))
        self._respond(ctx, "207 Multi-Status", body=xmlbody.multistatus(responses), ctype=XML_TYPE)

    def _walk(self, ctx, res: Resource, depth: str):
        yield res
        if depth == "0" or not res.is_dir or res.link:
            return
        count = 1
        stack = [res]
        while stack:
            parent = stack.pop()
            try:
                names = sorted(os.listdir(parent.fs))
            except OSError:
                continue
            for name in names:
                child = self._child(ctx, parent, name)
                if child is None:
                    continue
                count += 1
                if count > MAX_RESPONSES:
                    raise HttpError("PROPFIND answer too large", status=507, reason="InsufficientStorage")
                yield child
                if depth == "infinity" and child.is_dir and not child.link:
                    stack.append(child)

    def _child(self, ctx, parent: Resource, name: str) -> Resource | None:
        """A member of a listing, or None for what WebDAV must not show."""
        if not self._visible(ctx, name):
            return None
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            return None  # a name that is not UTF-8 has no URL here
        fs = os.path.join(parent.fs, name)
        try:
            lst = os.lstat(fs)
        except OSError:
            return None
        link = stat_mod.S_ISLNK(lst.st_mode)
        if link:
            if not _inside(self.root, os.path.realpath(fs)):
                return None
            try:
                st = os.stat(fs)
            except OSError:
                return None
        else:
            st = lst
        if not (stat_mod.S_ISREG(st.st_mode) or stat_mod.S_ISDIR(st.st_mode)):
            return None
        return Resource(parent.key + "/" + name, fs, st, link)

    def _visible(self, ctx, name: str) -> bool:
        if name.startswith(TMP_PREFIX):
            return False
        if name.startswith(".") and not ctx.config.web_dav_authoring.file_system.allow_hidden_files:
            return False
        low = name.lower()
        if low == "web.toml":
            return False
        return low not in self._hidden(ctx)

    def _hidden(self, ctx) -> frozenset:
        segments = ctx.config.request_filtering.hidden_segments
        return frozenset(s.lower() for s in segments.segments)

    def _propfind_one(self, ctx, cfg, res: Resource, mode: str, wanted: list) -> str:
        dead = self.store.props(res.key)
        live = [n for n in LIVE if self._live(ctx, cfg, res, n) is not None]
        found, missing = [], []
        if mode == "propname":
            found = [xmlbody.property_tag(DAV, n) for n in live]
            found += [xmlbody.property_tag(ns, n) for ns, n in dead]
        elif mode == "allprop":
            found = [xmlbody.property_tag(DAV, n, self._live(ctx, cfg, res, n)) for n in live
                     if n != "lockdiscovery" or cfg.locks.enabled]
            found += [xmlbody.property_tag(ns, n, v) for (ns, n), v in dead.items()]
        else:
            for ns, n in wanted:
                value = self._live(ctx, cfg, res, n) if ns == DAV else None
                if value is not None:
                    found.append(xmlbody.property_tag(DAV, n, value))
                elif (ns, n) in dead:
                    found.append(xmlbody.property_tag(ns, n, dead[(ns, n)]))
                else:
                    missing.append(xmlbody.property_tag(ns, n))
        return xmlbody.propstat(self._href(res), [("200 OK", found), ("404 Not Found", missing)])

    def _live(self, ctx, cfg, res: Resource, name: str) -> str | None:
        st = res.st
        is_dir = res.is_dir
        if name == "resourcetype":
            return "<D:collection/>" if is_dir else ""
        if name == "displayname":
            return xmlbody.escape(res.name)
        if name == "creationdate":
            created = min(st.st_ctime, st.st_mtime)
            return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
        if name == "getlastmodified":
            return http_date(int(st.st_mtime))
        if name == "supportedlock":
            if not cfg.locks.enabled:
                return None
            return ("<D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/>"
                    "</D:locktype></D:lockentry><D:lockentry><D:lockscope><D:shared/></D:lockscope>"
                    "<D:locktype><D:write/></D:locktype></D:lockentry>")
        if name == "lockdiscovery":
            if not cfg.locks.enabled:
                return None
            now = time.time()
            return "".join(self._activelock(lock, now) for lock in self.store.locks_at(res.key, now))
        if is_dir:
            return None
        if name == "getcontentlength":
            return str(st.st_size)
        if name == "getetag":
            return xmlbody.escape(etag_of(st))
        if name == "getcontenttype":
            return xmlbody.escape(content_type(res.fs, _types(ctx))
                                  or self._rules(ctx.config.web_dav_authoring_rules).mime)
        return None

    def _activelock(self, lock, now: float) -> str:
        owner = f"<D:owner>{lock.owner}</D:owner>" if lock.owner else ""
        return ("<D:activelock><D:locktype><D:write/></D:locktype><D:lockscope>"
                f"<D:{'exclusive' if lock.exclusive else 'shared'}/></D:lockscope>"
                f"<D:depth>{'infinity' if lock.infinite else '0'}</D:depth>{owner}"
                f"<D:timeout>Second-{lock.remaining(now)}</D:timeout>"
                f"<D:locktoken><D:href>{lock.token}</D:href></D:locktoken>"
                f"<D:lockroot><D:href>{xmlbody.escape(self._href_key(lock.root, False))}</D:href>"
                "</D:lockroot></D:activelock>")

    # ---- PROPPATCH ----
    def do_proppatch(self, ctx, cfg) -> None:
        res = self._resource(ctx, self._rel(ctx))
        self._need(ctx, res, "Write")
        body = self._read_xml(ctx, cfg)
        root = xmlbody.parse(body, int(cfg.max_allowed_xml_request_length))
        if root.key != (DAV, "propertyupdate"):
            raise BadXml("the body is not a DAV:propertyupdate")
        ops: list[tuple[str, Element]] = []
        for child in root.elements():
            if child.key in ((DAV, "set"), (DAV, "remove")):
                prop = child.find(DAV, "prop")
                if prop is None:
                    raise BadXml("set/remove without DAV:prop")
                ops += [(child.name, p) for p in prop.elements()]
        if not res.exists:
            raise NotFound("no such resource")
        if not cfg.properties.allow_custom_properties:
            raise Forbidden("custom properties are not allowed here (allow_custom_properties)")
        failed = {}
        for _op, p in ops:
            if p.ns == DAV and p.name in LIVE:
                failed[p.key] = "403 Forbidden"
            elif len(xmlbody.serialize_children(p).encode("utf-8")) > MAX_VALUE:
                failed[p.key] = "507 Insufficient Storage"
        try:
            with self.store.write() as store:
                self._check(ctx, store, [res.key], [])
                if not failed:
                    for op, p in ops:
                        if op == "set":
                            store.set_prop(res.key, p.ns, p.name, xmlbody.serialize_children(p))
                        else:
                            store.remove_prop(res.key, p.ns, p.name)
                    if store.count_props(res.key) > MAX_PROPS:
                        raise _TooMany()  # rolls the whole PROPPATCH back
        except _TooMany:
            failed = {p.key: "507 Insufficient Storage" for op, p in ops if op == "set"}
        groups: dict[str, list[str]] = {}
        for _op, p in ops:
            status = failed.get(p.key, "424 Failed Dependency") if failed else "200 OK"
            groups.setdefault(status, []).append(xmlbody.property_tag(p.ns, p.name))
        self._respond(ctx, "207 Multi-Status", ctype=XML_TYPE, body=xmlbody.multistatus(
            [xmlbody.propstat(self._href(res), list(groups.items()))]))

    # ---- MKCOL ----
    def do_mkcol(self, ctx, cfg) -> None:
        res = self._resource(ctx, self._rel(ctx))
        self._need(ctx, res, "Write")
        if ctx.body is not None and (ctx.head.content_length > 0 or ctx.head.content_length < 0):
            if ctx.body.read(1):
                raise UnsupportedMediaType("MKCOL with a body")
        if res.exists:
            raise MethodNotAllowed(ALLOW, "the resource exists")
        self._parent_dir(res)
        with self.store.write() as store:
            self._check(ctx, store, [res.key, res.parent], [])
            try:
                os.mkdir(res.fs)
            except FileExistsError:
                raise MethodNotAllowed(ALLOW, "the resource exists") from None
            except FileNotFoundError:
                raise Conflict("the parent collection does not exist") from None
            store.drop_props(res.key)
        self._respond(ctx, "201 Created")

    # ---- PUT ----
    def do_put(self, ctx, cfg) -> None:
        res = self._resource(ctx, self._rel(ctx))
        self._need(ctx, res, "Write")
        if header(ctx.head, b"content-range") is not None:
            raise BadRequest("PUT with Content-Range")
        if res.is_dir:
            raise MethodNotAllowed(ALLOW, "PUT on a collection")
        if not self._mime_ok(ctx, res):
            raise NotFound("no MIME map entry for the extension", substatus=3)
        parent = self._parent_dir(res)
        with self.store.read() as store:  # refuse early, before reading a body in vain
            self._check(ctx, store, [res.key] + ([] if res.exists else [res.parent]), [])
        tmp = os.path.join(parent, f"{TMP_PREFIX}{os.getpid()}-{os.urandom(6).hex()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            with os.fdopen(fd, "wb") as out:
                if ctx.body is not None:
                    while True:
                        data = ctx.body.read(CHUNK)
                        if not data:
                            break
                        out.write(data)
            with self.store.write() as store:
                existed = os.path.lexists(res.fs)
                if existed and os.path.isdir(res.fs) and not os.path.islink(res.fs):
                    raise MethodNotAllowed(ALLOW, "PUT on a collection")
                self._check(ctx, store, [res.key] + ([] if existed else [res.parent]), [])
                os.rename(tmp, res.fs)
                tmp = None
                if not existed:
                    store.drop_props(res.key)
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
        self._respond(ctx, "204 No Content" if existed else "201 Created")

    # ---- DELETE ----
    def do_delete(self, ctx, cfg) -> None:
        res = self._resource(ctx, self._rel(ctx))
        self._need(ctx, res, "Write")
        if not res.exists and not res.link:
            raise NotFound("no such resource")
        if res.key == "":
            raise Forbidden("the application's root cannot be deleted")
        if res.is_dir:
            parse_depth(self._h(ctx, b"depth"), "infinity", ("infinity",))
        with self.store.write() as store:
            self._check(ctx, store, [res.key, res.parent], [res.key] if res.is_dir else [])
            self._remove(res)
            store.drop_props(res.key)
            store.drop_locks(res.key)
        self._respond(ctx, "204 No Content")

    @staticmethod
    def _remove(res: Resource) -> None:
        if res.is_dir and not res.link:
            shutil.rmtree(res.fs)
        else:
            os.unlink(res.fs)

    # ---- COPY / MOVE ----
    def do_copy(self, ctx, cfg) -> None:
        self._transfer(ctx, cfg, move=False)

    def do_move(self, ctx, cfg) -> None:
        self._transfer(ctx, cfg, move=True)

    def _transfer(self, ctx, cfg, move: bool) -> None:
        src = self._resource(ctx, self._rel(ctx))
        self._need(ctx, src, "Write" if move else "Read")
        dst = self._resource(ctx, self._destination(ctx), destination=True)
        self._need(ctx, dst, "Write")
        overwrite = parse_overwrite(self._h(ctx, b"overwrite"))
        if not src.exists:
            raise NotFound("no such resource")
        if src.key == "":
            raise Forbidden("the application's root cannot be moved or copied")
        depth = "infinity"
        if src.is_dir:
            depth = parse_depth(self._h(ctx, b"depth"), "infinity",
                                ("infinity",) if move else ("0", "infinity"))
        if dst.key == src.key or (src.is_dir and is_below(dst.key, src.key)):
            raise Forbidden("the destination is the source or inside it")
        if not self._mime_ok(ctx, dst) and not dst.is_dir and not src.is_dir:
            raise NotFound("no MIME map entry for the destination's extension", substatus=3)
        self._parent_dir(dst)
        with self.store.write() as store:
            existed = os.path.lexists(dst.fs)
            dst.st = os.lstat(dst.fs) if existed else None
            if existed and not overwrite:
                raise PreconditionFailed("the destination exists and Overwrite is F")
            direct = [dst.key, dst.parent] + ([src.key, src.parent] if move else [])
            trees = ([dst.key] if existed and dst.is_dir else []) + ([src.key] if move and src.is_dir else [])
            self._check(ctx, store, direct, trees)
            if existed:
                self._remove(Resource(dst.key, dst.fs, dst.st, stat_mod.S_ISLNK(dst.st.st_mode)))
                store.drop_props(dst.key)
                store.drop_locks(dst.key)
            if move:
                os.rename(src.fs, dst.fs)
                store.move_props(src.key, dst.key)
                store.drop_locks(src.key)
            else:
                self._copy(ctx, src, dst.fs, depth == "infinity")
                store.copy_props(src.key, dst.key, tree=depth == "infinity")
        self._respond(ctx, "204 No Content" if existed else "201 Created")

    def _copy(self, ctx, src: Resource, target: str, deep: bool) -> None:
        if not src.is_dir:
            shutil.copyfile(src.fs, target)
            return
        os.mkdir(target)
        if not deep:
            return
        for name in sorted(os.listdir(src.fs)):
            child = self._child(ctx, src, name)
            if child is None or child.link:
                continue  # hidden, filtered or a symlink: never copied (a link could lead out)
            self._copy(ctx, child, os.path.join(target, name), True)

    def _destination(self, ctx) -> bytes:
        value = header(ctx.head, b"destination")
        if value is None:
            raise BadRequest("COPY/MOVE without Destination")
        try:
            text = value.decode("ascii")
        except UnicodeDecodeError:
            raise BadRequest("Destination is not ASCII") from None
        parts = urlsplit(text.strip())
        if parts.scheme or parts.netloc:
            if parts.scheme.lower() not in ("http", "https") or not self._same_host(ctx, parts):
                raise BadGateway("the Destination is on another server")
        path = unquote_to_bytes(parts.path)
        if b"\x00" in path or any(c < 0x20 for c in path):
            raise BadRequest("a control character in Destination")
        prefix = self.prefix.encode("utf-8")
        if not path.startswith(prefix + b"/") and path != prefix:
            raise BadGateway("the Destination is outside this application")
        rel = path[len(prefix):] or b"/"
        try:
            check_path(rel)
        except (UnsafePath, HiddenSegment):
            raise Forbidden("the Destination is not a path WebDAV may write") from None
        return rel

    @staticmethod
    def _same_host(ctx, parts) -> bool:
        host = header(ctx.head, b"host")
        if host is None:
            return False
        default = "443" if parts.scheme.lower() == "https" else "80"

        def norm(netloc: str) -> str:
            netloc = netloc.lower().rpartition("@")[2]
            if netloc.endswith("]") or ":" not in netloc:
                return f"{netloc}:{default}"
            return netloc

        return norm(parts.netloc) == norm(host.decode("latin-1"))

    # ---- LOCK / UNLOCK ----
    def do_lock(self, ctx, cfg) -> None:
        if not cfg.locks.enabled:
            raise MethodNotAllowed(ALLOW.replace(", LOCK, UNLOCK", ""), "locks are not enabled here")
        res = self._resource(ctx, self._rel(ctx))
        self._need(ctx, res, "Write")
        body = self._read_xml(ctx, cfg)
        timeout = parse_timeout(self._h(ctx, b"timeout"))
        if not body:
            self._refresh(ctx, res, timeout)
            return
        root = xmlbody.parse(body, int(cfg.max_allowed_xml_request_length))
        if root.key != (DAV, "lockinfo"):
            raise BadXml("the body is not a DAV:lockinfo")
        scope = root.find(DAV, "lockscope")
        kind = root.find(DAV, "locktype")
        if scope is None or kind is None or kind.find(DAV, "write") is None:
            raise BadXml("a lock needs DAV:lockscope and a DAV:write DAV:locktype")
        exclusive = scope.find(DAV, "exclusive") is not None
        if not exclusive and scope.find(DAV, "shared") is None:
            raise BadXml("DAV:lockscope must be exclusive or shared")
        owner = root.find(DAV, "owner")
        owner_xml = xmlbody.serialize_children(owner) if owner is not None else ""
        infinite = parse_depth(self._h(ctx, b"depth"), "infinity", ("0", "infinity")) == "infinity"
        with self.store.write() as store:
            if_header = self._if(ctx)
            if if_header is not None and not if_header.evaluate(self._state(store, res.key)):
                raise PreconditionFailed("the If header does not hold")
            conflicts = store.locks_at(res.key) + (store.locks_below(res.key) if infinite else [])
            if any(lock.exclusive or exclusive for lock in conflicts):
                raise Locked("the resource is locked")
            created = False
            if not os.path.lexists(res.fs):
                self._parent_dir(res)
                # Creating the resource changes its parent's membership (a depth-0 lock there).
                self._locks_allow(ctx, store, if_header, [res.parent], [])
                with open(os.open(res.fs, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644),
                          "wb"):
                    pass
                store.drop_props(res.key)
                created = True
            lock = store.add_lock(res.key, infinite, exclusive, owner_xml, ctx.user or "", timeout)
        self._lock_answer(ctx, "201 Created" if created else "200 OK", lock,
                          [("Lock-Token", f"<{lock.token}>")])

    def _refresh(self, ctx, res: Resource, timeout: int) -> None:
        if_header = self._if(ctx)
        if if_header is None:
            raise BadRequest("LOCK without a body or an If header")
        with self.store.write() as store:
            if not if_header.evaluate(self._state(store, res.key)):
                raise PreconditionFailed("the If header does not hold")
            for token in if_header.tokens:
                lock = store.lock(token)
                if lock is not None and lock.covers(res.key) and lock.principal == (ctx.user or ""):
                    store.refresh(token, timeout)
                    lock = store.lock(token)
                    break
            else:
                raise PreconditionFailed("no lock of yours to refresh here")
        self._lock_answer(ctx, "200 OK", lock, [])

    def _lock_answer(self, ctx, status: str, lock, headers) -> None:
        body = ('<?xml version="1.0" encoding="utf-8"?>\n<D:prop xmlns:D="DAV:"><D:lockdiscovery>'
                + self._activelock(lock, time.time()) + "</D:lockdiscovery></D:prop>").encode("utf-8")
        self._respond(ctx, status, headers, body=body, ctype=XML_TYPE)

    def do_unlock(self, ctx, cfg) -> None:
        if not cfg.locks.enabled:
            raise MethodNotAllowed(ALLOW.replace(", LOCK, UNLOCK", ""), "locks are not enabled here")
        res = self._resource(ctx, self._rel(ctx))
        self._need(ctx, res, "Write")
        value = self._h(ctx, b"lock-token")
        if not value or not value.strip().startswith("<") or not value.strip().endswith(">"):
            raise BadRequest("UNLOCK needs a Lock-Token header")
        token = value.strip()[1:-1]
        with self.store.write() as store:
            lock = store.lock(token)
            if lock is None or not lock.covers(res.key):
                self._respond(ctx, "409 Conflict", body=xmlbody.error_body("lock-token-matches-request-uri"),
                              ctype=XML_TYPE)
                return
            if lock.principal != (ctx.user or ""):
                raise Forbidden("the lock belongs to another user")
            store.remove_lock(token)
        self._respond(ctx, "204 No Content")

    # ---- locks and the If header ----
    def _if(self, ctx):
        value = self._h(ctx, b"if")
        return parse_if(value) if value is not None else None

    def _state(self, store, default: str):
        def state(tag: str | None):
            key = default if tag is None else self._tag_key(tag)
            if key is None:
                return None, set()
            tokens = {lock.token for lock in store.locks_at(key)}
            if key:
                tokens |= {lock.token for lock in store.locks_at(key.rpartition("/")[0])}
            etag = None
            fs = os.path.join(self.root, *[s for s in key.split("/") if s])
            try:
                st = os.stat(fs)
                if stat_mod.S_ISREG(st.st_mode) and _inside(self.root, os.path.realpath(fs)):
                    etag = etag_of(st)
            except OSError:
                pass
            return etag, tokens
        return state

    def _tag_key(self, resource: str) -> str | None:
        """The store key of a resource a tagged list names; None when it is not a resource of
        this application."""
        path = unquote_to_bytes(urlsplit(resource).path)
        prefix = self.prefix.encode("utf-8")
        if not (path.startswith(prefix + b"/") or path == prefix):
            return None
        try:
            segments = check_path(path[len(prefix):])
        except HttpError:
            return None
        return "".join("/" + s for s in segments)

    def _check(self, ctx, store, direct: list[str], trees: list[str]) -> None:
        """412 when the If header fails; 423 when a lock on what the request changes was not
        submitted by its owner (RFC 4918 §7, §10.4)."""
        if_header = self._if(ctx)
        key = direct[0]
        if if_header is not None and not if_header.evaluate(self._state(store, key)):
            raise PreconditionFailed("the If header does not hold")
        self._locks_allow(ctx, store, if_header, direct, trees)

    def _locks_allow(self, ctx, store, if_header, direct: list[str], trees: list[str]) -> None:
        """423 unless the owner of every lock on `direct` (and below `trees`) submitted it."""
        key = direct[0]
        user = ctx.user or ""
        submitted = set()
        if if_header is not None:
            for token in if_header.tokens:
                lock = store.lock(token)
                if lock is not None and lock.principal == user:
                    submitted.add(token)
        locks = []
        for path in dict.fromkeys(direct):
            locks += store.locks_at(path)
        for path in trees:
            locks += store.locks_below(path)
        for lock in locks:
            if lock.token not in submitted:
                raise Locked(f"{self._href_key(lock.root, False)} is locked")
        if ctx.config.web_dav_authoring.locks.require_lock_for_writing and not any(
                lock.token in submitted for lock in store.locks_at(key)):
            raise Locked("writing here requires a lock (require_lock_for_writing)")

    # ---- helpers ----
    def _rules(self, section) -> Rules:
        entry = self.compiled.get(id(section))
        if entry is None or entry[0] is not section:
            if len(self.compiled) >= 1024:
                self.compiled.clear()
            entry = self.compiled[id(section)] = (section, Rules(section))
        return entry[1]

    def _access(self, ctx, res: Resource) -> frozenset:
        user = (ctx.user or "").casefold()
        roles = frozenset(r.casefold() for r in roles_of(ctx)) if user else frozenset()
        rel = (res.key or "/").encode("utf-8")
        return self._rules(ctx.config.web_dav_authoring_rules).access(
            user, roles, rel, res.name.encode("utf-8"))

    def _need(self, ctx, res: Resource, access: str) -> None:
        if access in self._access(ctx, res):
            return
        if not ctx.user:
            raise unauthorized(ctx, 2, f"WebDAV authoring rules give the anonymous user no {access} access")
        raise Forbidden(f"WebDAV authoring rules give {ctx.user} no {access} access here",
                        substatus=3 if access == "Write" else 2)

    def _mime_ok(self, ctx, res: Resource) -> bool:
        return content_type(res.fs, _types(ctx)) is not None or \
            self._rules(ctx.config.web_dav_authoring_rules).non_mime

    @staticmethod
    def _h(ctx, name: bytes) -> str | None:
        value = header(ctx.head, name)
        return value.decode("latin-1") if value is not None else None

    @staticmethod
    def _rel(ctx) -> bytes:
        path = ctx.head.path
        prefix = ctx.app.prefix_len
        return (path[prefix:] if prefix else path) or b"/"

    def _resource(self, ctx, rel: bytes, destination: bool = False) -> Resource:
        try:
            segments = check_path(rel)
        except HiddenSegment:
            if destination:
                raise Forbidden("the Destination is a hidden segment") from None
            raise
        hidden = self._hidden(ctx)
        allow_hidden = ctx.config.web_dav_authoring.file_system.allow_hidden_files
        for segment in segments:
            if segment.lower() in hidden:
                raise (Forbidden("a hidden segment") if destination
                       else HiddenSegment("a hidden segment"))
            if segment.startswith(TMP_PREFIX) or (segment.startswith(".") and not allow_hidden):
                raise (Forbidden("a hidden file") if destination else HiddenFile("a hidden file"))
        key = "".join("/" + s for s in segments)
        if destination and segments and not self._extension_allowed(ctx, segments[-1]):
            # Request filtering checked the request's URL, not where COPY or MOVE would write.
            raise Forbidden("request filtering denies the Destination's file extension")
        if not segments:
            return Resource("", self.root, os.stat(self.root), False)
        parent = os.path.realpath(os.path.join(self.root, *segments[:-1]))
        if not _inside(self.root, parent):
            raise Forbidden("the path leads out of the application's content")
        fs = os.path.join(parent, segments[-1])
        try:
            lst = os.lstat(fs)
        except FileNotFoundError:
            return Resource(key, fs, None, False)
        except OSError:
            raise Conflict("the parent is not a collection") from None
        if stat_mod.S_ISLNK(lst.st_mode):
            if not _inside(self.root, os.path.realpath(fs)):
                raise Forbidden("a symbolic link out of the application's content")
            try:
                return Resource(key, fs, os.stat(fs), True)
            except OSError:
                return Resource(key, fs, None, True)
        return Resource(key, fs, lst, False)

    @staticmethod
    def _extension_allowed(ctx, name: str) -> bool:
        rules = ctx.config.request_filtering.file_extensions
        ext = os.path.splitext(name)[1].lower() or "."
        for entry in rules.extensions:
            if entry.file_extension.lower() == ext:
                return entry.allowed
        return rules.allow_unlisted

    def _parent_dir(self, res: Resource) -> str:
        parent = os.path.dirname(res.fs)
        if not os.path.isdir(parent):
            raise Conflict("the parent collection does not exist")
        return parent

    def _read_xml(self, ctx, cfg) -> bytes:
        limit = int(cfg.max_allowed_xml_request_length)
        if ctx.body is None:
            return b""
        if limit and ctx.head.content_length > limit:
            raise xmlbody.XmlTooLarge(f"XML body over {limit} bytes")
        chunks, size = [], 0
        while True:
            data = ctx.body.read(CHUNK)
            if not data:
                break
            size += len(data)
            if limit and size > limit:
                raise xmlbody.XmlTooLarge(f"XML body over {limit} bytes")
            chunks.append(data)
        return b"".join(chunks).strip()

    def _href(self, res: Resource) -> str:
        return self._href_key(res.key, res.is_dir)

    def _href_key(self, key: str, is_dir: bool) -> str:
        path = self.prefix + key + ("/" if is_dir or not key else "")
        return quote(path, safe="/!$&'()*+,;=:@-._~")

    @staticmethod
    def _respond(ctx, status: str, headers=(), body: bytes = b"", ctype: str | None = None) -> None:
        lines = [status + "\r\n"]
        lines += [f"{name}: {value}\r\n" for name, value in headers]
        if ctype:
            lines.append(f"Content-Type: {ctype}\r\n")
        lines.append(f"Content-Length: {len(body)}\r\n")
        ctx.respond("".join(lines).encode("latin-1"), body)
