"""request_filtering over a fake context: every rule with IIS's substatus, the attacker's bypass
table (issue 9 item 8), the split with what the front refuses first, the compiled-rules cache and
chunked bodies measured while read."""

from __future__ import annotations

import pytest

from wasp.errors import HttpError
from wasp.wire import frames
from wasp.wire.http import InvalidUrl
from wasp.wire.urls import cook_target
from wasp.worker.context import RequestContext
from wasp.worker.flow import AsyncBody, BlockingBody, BodyTooLarge
from wasp.worker.modules import request_filtering as rf
from wasp.worker.modules.request_filtering import RequestFilteringModule, extensions_of, rules_for

from worker_fakes import FakeChannel, make_app

FRONT_400 = (400, 0)
PASS = (0, 0)


def run(target: bytes | str, *, method="GET", headers=(), tables=None, content_length=-1):
    """What the front and then the module make of a request: (status, substatus); (0, 0) passes."""
    if isinstance(target, str):
        target = target.encode("utf-8")
    try:
        path, query, _ = cook_target(target)
    except InvalidUrl:
        return FRONT_400
    app = make_app(tables=tables or {})
    head = frames.RequestHead(
        app=app.key, method=method, target=target, path=path, query=query, version="1.1",
        headers=[(b"Host", b"example.test")] + [(k.encode(), v.encode("latin-1")) for k, v in headers],
        client=("10.1.2.3", 4000), server=("127.0.0.1", 8080), content_length=content_length)
    ctx = RequestContext(FakeChannel(), 7, head, app, True)
    try:
        RequestFilteringModule().begin_request(ctx)
    except HttpError as exc:
        return exc.status, exc.substatus
    return PASS


def server(**section):
    return {"server": {"request_filtering": section}}


# ---- IIS's defaults ----

@pytest.mark.parametrize("target, expected", [
    ("/index.html", PASS),
    ("/", PASS),
    ("/web.config", (404, 8)),
    ("/a/web.toml", (404, 8)),
    ("/bin/app.dll", (404, 8)),
    ("/binary/x", PASS),                     # a whole segment, not a prefix
    ("/App_Data/db.mdf", (404, 8)),
    ("/x/global.asax", (404, 7)),
    ("/site.master", (404, 7)),
    ("/data.mdb", (404, 7)),
    ("/readme.config.txt", PASS),            # the last extension counts
    ("/a+b.html", (404, 11)),                # `+` is refused by allow_double_escaping = false
    ("/a%252e/x", (404, 11)),                # %25 left an escape after the first decoding
    ("/100%25", PASS),                       # a lone % after decoding is no escape
    ("/caf%C3%A9.html", PASS),               # high-bit characters are allowed by default
    ("/" + "a/" * 32 + "x", (404, 20)),      # 33 segments (IIS maxUrlSegments 32)
    ("/" + "a/" * 31 + "x", PASS),
    ("/" + "a" * 4096, (404, 14)),
    ("/" + "a" * 4095, PASS),
    ("/?" + "q" * 2049, (404, 15)),
    ("/?" + "q" * 2048, PASS),
])
def test_iis_defaults(target, expected):
    assert run(target) == expected


def test_content_length_over_the_limit_is_413_1():
    assert run("/up", method="POST", content_length=30000001) == (413, 1)
    assert run("/up", method="POST", content_length=30000000) == PASS
    tables = server(request_limits={"max_allowed_content_length": "1KB"})
    assert run("/up", method="POST", content_length=1001, tables=tables) == (413, 1)
    assert run("/up", method="POST", content_length=10**12,
               tables=server(request_limits={"max_allowed_content_length": 0})) == PASS


def test_legacy_status_codes_are_404_13_and_404_10():
    legacy = {"legacy_status_codes": True,
              "request_limits": {"max_allowed_content_length": "1KB",
                                 "header_limits": [{"header": "X-Big", "size_limit": 10}]}}
    assert run("/up", method="POST", content_length=1001, tables=server(**legacy)) == (404, 13)
    assert run("/up", headers=[("X-Big", "1234567890a")], tables=server(**legacy)) == (404, 10)
    assert run("/up", headers=[("X-Big", "1234567890")], tables=server(**legacy)) == PASS


# ---- each rule, configured ----

@pytest.mark.parametrize("section, request_, expected", [
    ({"request_limits": {"header_limits": [{"header": "X-Big", "size_limit": 10}]}},
     dict(headers=[("X-Big", "12345")]), PASS),
    ({"request_limits": {"header_limits": [{"header": "X-Big", "size_limit": 10}]}},
     dict(headers=[("x-big", "1234567890a")]), (431, 0)),
    ({"request_limits": {"header_limits": [{"header": "X-Big", "size_limit": 10}]}},
     dict(headers=[("X-Big", "12345"), ("X-BIG", "12345")]), (431, 0)),  # joined: 12 bytes
    ({"request_limits": {"header_limits": [{"header": "Cookie", "size_limit": 0}]}},
     dict(headers=[("Cookie", "")]), (431, 0)),
    ({"verbs": {"verbs": [{"verb": "TRACE", "allowed": False}]}}, dict(method="TRACE"), (404, 6)),
    ({"verbs": {"verbs": [{"verb": "TRACE", "allowed": False}]}}, dict(method="PUT"), PASS),
    ({"verbs": {"allow_unlisted": False, "verbs": [{"verb": "GET", "allowed": True}]}},
     dict(method="HEAD"), (404, 6)),  # HEAD needs its own entry, as in IIS
    ({"verbs": {"allow_unlisted": False, "verbs": [{"verb": "GET", "allowed": True}]}},
     dict(method="get"), (404, 6)),   # case-sensitive
    ({"verbs": {"allow_verb_tunnelling": False}},
     dict(method="POST", headers=[("X-HTTP-Method-Override", "GET")]), (404, 6)),
    ({"allow_high_bit_characters": False}, dict(target="/caf%C3%A9.txt"), (404, 12)),
    ({"allow_double_escaping": True}, dict(target="/a+b.html"), PASS),
    ({"deny_url_sequences": ["_vti_"]}, dict(target="/_VTI_bin/x"), (404, 5)),
    ({"deny_url_sequences": ["..."]}, dict(target="/a/b...c"), (404, 5)),
    ({"deny_url_sequences": [".."]}, dict(target="/a/%2e%2e/b"), (404, 5)),  # decoded, before dots resolve
    ({"deny_url_sequences": ["_vti_"], "always_allowed_urls": ["/_vti_bin/ok.html"]},
     dict(target="/_vti_bin/OK.html"), PASS),
    ({"deny_query_string_sequences": ["<script"]}, dict(target="/?x=<script>"), (404, 18)),
    ({"deny_query_string_sequences": ["<script"]}, dict(target="/?x=%3Cscript%3E"), (404, 18)),
    ({"deny_query_string_sequences": ["drop table"]}, dict(target="/?q=DROP+table"), (404, 18)),
    ({"deny_query_string_sequences": ["<script"], "unescape_query_string": False},
     dict(target="/?x=%3Cscript%3E"), PASS),
    ({"deny_query_string_sequences": ["<script"], "always_allowed_query_strings": ["x=<script>"]},
     dict(target="/?x=<script>"), PASS),
    ({"file_extensions": {"allow_unlisted": False, "extensions": [{"file_extension": ".html"}]}},
     dict(target="/a.HTML"), PASS),
    ({"file_extensions": {"allow_unlisted": False, "extensions": [{"file_extension": ".html"}]}},
     dict(target="/a.txt"), (404, 7)),
    ({"file_extensions": {"allow_unlisted": False, "extensions": [{"file_extension": ".html"}]}},
     dict(target="/"), (404, 7)),     # no extension: "." must be listed
    ({"file_extensions": {"allow_unlisted": False, "extensions": [{"file_extension": "."}]}},
     dict(target="/api/items"), PASS),
    ({"file_extensions": {"extensions": {"remove": [".config"]}}}, dict(target="/a.config"), PASS),
    ({"hidden_segments": {"segments": {"remove": ["bin"]}}}, dict(target="/bin/x"), PASS),
    ({"hidden_segments": {"segments": ["secret"]}}, dict(target="/Secret/x"), (404, 8)),
    ({"request_limits": {"max_url": 10}}, dict(target="/0123456789"), (404, 14)),
    ({"request_limits": {"max_url_segments": 2}}, dict(target="/a/b/c"), (404, 20)),
    ({"request_limits": {"max_url_segments": 2}}, dict(target="/a//b/"), PASS),  # empty ones don't count
])
def test_configured_rules(section, request_, expected):
    request_ = dict(request_)
    target = request_.pop("target", "/index.html")
    assert run(target, tables=server(**section), **request_) == expected


LEECH = {"filtering_rules": [{"name": "leech", "scan_headers": ["User-Agent"],
                              "applies_to": [".png", ".jpg"], "deny_strings": ["leech-bot"]}]}
SQL = {"filtering_rules": [{"name": "sql", "scan_query_string": True, "deny_strings": ["select", "--"]}]}
RAW = {"filtering_rules": [{"name": "raw", "scan_all_raw": True, "deny_unescaped_percent": False,
                            "deny_strings": ["evil"]}]}
URL = {"filtering_rules": [{"name": "url", "scan_url": True, "deny_strings": ["<script"]}]}


@pytest.mark.parametrize("section, target, headers, expected", [
    (LEECH, "/a.png", [("User-Agent", "Leech-Bot/1")], (404, 19)),
    (LEECH, "/a.png", [("User-Agent", "ok"), ("user-agent", "leech-bot")], (404, 19)),  # every copy
    (LEECH, "/a.html", [("User-Agent", "leech-bot")], PASS),    # applies_to
    (LEECH, "/a.png", [("User-Agent", "100% good")], (404, 19)),  # deny_unescaped_percent
    (LEECH, "/a.png", [("User-Agent", "50%20off")], PASS),
    (SQL, "/?q=SELECT+1", [], (404, 19)),
    (SQL, "/?q=%53ELECT", [], (404, 19)),      # decoded too
    (SQL, "/?q=ok", [], PASS),
    (SQL, "/select.html", [], PASS),           # the URL is not scanned by this rule
    (RAW, "/", [("X-Anything", "EVIL")], (404, 19)),
    (RAW, "/", [("X-Evil", "fine")], (404, 19)),  # header names are raw text too
    (URL, "/%3Cscript%3E/x", [], (404, 19)),
])
def test_filtering_rules(section, target, headers, expected):
    assert run(target, headers=headers, tables=server(**section)) == expected


# ---- the attacker's table (issue 9 item 8) ----

VERBS = server(verbs={"verbs": [{"verb": "DELETE", "allowed": False}]})


@pytest.mark.parametrize("target, method, headers, tables, expected", [
    # encoded and double-encoded paths
    ("/%77eb.toml", "GET", (), None, (404, 8)),
    ("/a/%2e%2e/web.toml", "GET", (), None, (404, 8)),         # the front resolves the dots first
    ("/a/%2E%2E/%2E%2E/web.toml", "GET", (), None, FRONT_400),  # above the root
    ("/%252e%252e/web.toml", "GET", (), None, (404, 11)),
    ("/%2577eb.toml", "GET", (), None, (404, 11)),
    ("/b%69n/x", "GET", (), None, (404, 8)),
    ("/%u0062in/x", "GET", (), None, (404, 8)),                # %u escapes (HTTP.sys PercentUAllowed)
    ("/a/%u002e%u002e/bin/x", "GET", (), None, (404, 8)),
    ("/x.%63onfig", "GET", (), None, (404, 7)),
    # overlong UTF-8 is no dot or slash: not decoded as one, nothing to traverse
    ("/%c0%ae%c0%ae/web.toml", "GET", (), None, (404, 8)),
    ("/bin%c0%afx", "GET", (), None, PASS),
    # case tricks
    ("/WEB.TOML", "GET", (), None, (404, 8)),
    ("/Bin/x", "GET", (), None, (404, 8)),
    ("/x.CONFIG", "GET", (), None, (404, 7)),
    ("/x.Config/", "GET", (), None, (404, 7)),                 # a trailing slash
    # trailing dots and spaces (Windows would open the file without them)
    ("/secret.config.", "GET", (), None, (404, 7)),
    ("/secret.config%20", "GET", (), None, (404, 7)),
    ("/secret.config.%20.", "GET", (), None, (404, 7)),
    ("/web.toml.", "GET", (), None, (404, 8)),
    ("/bin./x", "GET", (), None, (404, 8)),
    ("/bin%20/x", "GET", (), None, (404, 8)),
    # `;` path parameters
    ("/bin;x/a", "GET", (), None, (404, 8)),
    ("/a.config;.png", "GET", (), None, (404, 7)),
    ("/x.config;.txt", "GET", (), None, (404, 7)),
    ("/web.toml;jsessionid=1", "GET", (), None, (404, 8)),
    ("/a.png;v=1", "GET", (), None, PASS),
    # Unicode normalisation
    ("/x%EF%BC%8Econfig", "GET", (), None, (404, 7)),         # fullwidth full stop U+FF0E
    ("/web%EF%BC%8Etoml", "GET", (), None, (404, 8)),
    ("/%EF%BD%82in/x", "GET", (), None, (404, 8)),              # fullwidth b
    # NUL and control characters: the front answers 400 before any module
    ("/x.config%00.txt", "GET", (), None, FRONT_400),
    ("/web.toml%00", "GET", (), None, FRONT_400),
    ("/a%0d%0aSet-Cookie:x", "GET", (), None, FRONT_400),
    ("/bad%zz", "GET", (), None, FRONT_400),
    # backslash: the front turns it into /
    ("/bin\\x", "GET", (), None, (404, 8)),
    ("/a%5cweb.toml", "GET", (), None, (404, 8)),
    ("/a\\..\\web.toml", "GET", (), None, (404, 8)),
    # method override headers do not tunnel a denied verb
    ("/x", "POST", [("X-HTTP-Method-Override", "DELETE")], VERBS, (404, 6)),
    ("/x", "POST", [("X-HTTP-Method", "DELETE")], VERBS, (404, 6)),
    ("/x", "POST", [("x-method-override", " DELETE ")], VERBS, (404, 6)),
    ("/x", "POST", [("X-HTTP-Method-Override", "PUT")], VERBS, PASS),
    ("/x", "POST", [("X-HTTP-Method-Override", "delete")], VERBS, (404, 6)),   # frameworks upper-case it
    ("/x", "POST", [("X-HTTP-Method-Override", "PUT, DELETE")], VERBS, (404, 6)),
    ("/x?_method=DELETE", "POST", (), VERBS, (404, 6)),
    ("/x?a=1&_METHOD=de%6cete", "POST", (), VERBS, (404, 6)),
    ("/x?_method=PUT", "POST", (), VERBS, PASS),
    ("/x?_method=PUT", "POST", (), server(verbs={"allow_verb_tunnelling": False}), (404, 6)),
    ("/x", "DELETE", (), VERBS, (404, 6)),
    # WebDAV does not slip through unless apply_to_web_dav says so
    ("/web.toml", "PROPFIND", (), None, (404, 8)),
    ("/bin/x", "PROPFIND", (), server(hidden_segments={"apply_to_web_dav": False}), PASS),
    ("/bin/x", "GET", [("Translate", "f")], server(hidden_segments={"apply_to_web_dav": False}), PASS),
    ("/bin/x", "GET", (), server(hidden_segments={"apply_to_web_dav": False}), (404, 8)),
    # absolute-form targets are cooked the same way
    ("http://example.test/Bin/x", "GET", (), None, (404, 8)),
])
def test_bypass_attempts(target, method, headers, tables, expected):
    assert run(target, method=method, headers=headers, tables=tables) == expected


@pytest.mark.parametrize("path, extensions", [
    (b"/a/b.html", {b".html"}), (b"/", {b"."}), (b"/a/", {b"."}), (b"/x.tar.GZ", {b".gz"}),
    (b"/.htaccess", {b".htaccess"}), (b"/x.", {b".", b"."}), (b"/a.config;.png", {b".png", b".config"}),
])
def test_extensions_of(path, extensions):
    assert extensions_of(path) == extensions


# ---- private responses and the compiled cache ----

def test_header_and_verb_rules_keep_the_response_out_of_the_front_cache():
    app = make_app(tables=server(**LEECH))
    ctx = _ctx(app, b"/a.png")
    RequestFilteringModule().begin_request(ctx)
    assert ctx.private
    plain = _ctx(make_app(), b"/a.png")
    RequestFilteringModule().begin_request(plain)
    assert not plain.private  # the defaults decide by the cooked path alone


def test_rules_are_compiled_once_per_section_and_shared_by_equal_sections():
    a = make_app(tables=server(verbs={"verbs": [{"verb": "TRACE", "allowed": False}]}))
    b = make_app(tables=server(verbs={"verbs": [{"verb": "TRACE", "allowed": False}]}))
    first = rules_for(a.sections.request_filtering)
    assert rules_for(a.sections.request_filtering) is first
    assert rules_for(b.sections.request_filtering) is first   # equal value, other object
    assert rules_for(make_app().sections.request_filtering) is not first


def test_a_location_loosens_and_a_web_toml_tightens(tmp_path):
    (tmp_path / "open").mkdir()
    (tmp_path / "strict").mkdir()
    (tmp_path / "strict" / "web.toml").write_text('[request_filtering.verbs]\nallow_unlisted = false\n')
    from wasp.config.load import load_text
    from wasp.worker.application import pool_applications
    config = load_text(
        '[[pools]]\nname = "p"\n[[sites]]\nname = "S"\nid = 1\nbindings = ["http/*:80:"]\n'
        f'[[sites.applications]]\npath = "/"\npool = "p"\nphysical_path = "{tmp_path}"\n'
        '[[locations]]\npath = "S/open"\n[locations.request_filtering.file_extensions]\n'
        'extensions = { remove = [".config"] }\n')
    (app,) = pool_applications(config, "p")
    module = RequestFilteringModule()
    assert _outcome(module, _ctx(app, b"/open/app.config")) == PASS
    assert _outcome(module, _ctx(app, b"/other/app.config")) == (404, 7)
    assert _outcome(module, _ctx(app, b"/strict/page.html")) == (404, 6)
    assert _outcome(module, _ctx(app, b"/page.html")) == PASS


def _ctx(app, path: bytes, method="GET", headers=()):
    head = frames.RequestHead(app=app.key, method=method, target=path, path=path, query=b"",
                              version="1.1", headers=[(b"Host", b"h")] + list(headers),
                              client=("10.0.0.1", 1), server=("127.0.0.1", 80))
    return RequestContext(FakeChannel(), 7, head, app, True)


def _outcome(module, ctx):
    try:
        module.begin_request(ctx)
    except HttpError as exc:
        return exc.status, exc.substatus
    return PASS


# ---- chunked bodies ----

class _Pipeline:
    def __init__(self):
        self.failed = []

    def fail(self, ctx, exc):
        self.failed.append(exc)


def test_a_chunked_body_over_the_limit_is_refused_while_read():
    app = make_app(tables=server(request_limits={"max_allowed_content_length": 10}))
    app.pipeline = _Pipeline()
    ctx = _ctx(app, b"/up", method="POST")
    ctx.body = BlockingBody(ctx)
    RequestFilteringModule().begin_request(ctx)
    assert ctx.body.limit == 10
    ctx.feed(b"0123456789")
    assert ctx.body.read(4) == b"0123"
    ctx.feed(b"X")
    ctx.feed_end()
    with pytest.raises(BodyTooLarge) as info:
        ctx.body.read()
    assert (info.value.status, info.value.substatus) == (413, 1)
    assert app.pipeline.failed == [info.value]  # answered through the pipeline, once
    with pytest.raises(BodyTooLarge):
        ctx.body.read(1)
    assert len(app.pipeline.failed) == 1


def test_a_chunked_body_within_the_limit_is_read_whole():
    app = make_app(tables=server(request_limits={"max_allowed_content_length": 10}))
    app.pipeline = _Pipeline()
    ctx = _ctx(app, b"/up", method="POST")
    ctx.body = BlockingBody(ctx)
    RequestFilteringModule().begin_request(ctx)
    ctx.feed(b"0123456789")
    ctx.feed_end()
    assert ctx.body.read() == b"0123456789" and not app.pipeline.failed


def test_an_asgi_chunked_body_over_the_limit_is_refused():
    import asyncio
    app = make_app(tables=server(request_limits={"max_allowed_content_length": 3}))
    app.pipeline = _Pipeline()
    ctx = _ctx(app, b"/up", method="POST")
    ctx.threaded = False
    ctx.body = AsyncBody(ctx)
    RequestFilteringModule().begin_request(ctx)
    ctx.feed(b"abcd")
    with pytest.raises(BodyTooLarge):
        asyncio.run(ctx.body.take())
    assert len(app.pipeline.failed) == 1


def test_substatus_names():
    assert (rf.URL_SEQUENCE, rf.VERB, rf.FILE_EXTENSION, rf.HIDDEN_SEGMENT, rf.DOUBLE_ESCAPING,
            rf.HIGH_BIT, rf.URL_TOO_LONG, rf.QUERY_TOO_LONG, rf.QUERY_SEQUENCE, rf.FILTERING_RULE,
            rf.URL_SEGMENTS) == (5, 6, 7, 8, 11, 12, 14, 15, 18, 19, 20)


def test_path_verdicts_are_remembered_and_bounded(monkeypatch):
    monkeypatch.setattr(rf, "PATH_CACHE_LIMIT", 3)
    app = make_app(tables=server(hidden_segments={"segments": ["cached-test"]}))
    rules = rules_for(app.sections.request_filtering)
    module = RequestFilteringModule()
    assert _outcome(module, _ctx(app, b"/cached-test/x")) == (404, 8)
    assert rules.paths[b"/cached-test/x"] == (8, 0)
    assert _outcome(module, _ctx(app, b"/cached-test/x")) == (404, 8)  # from the table
    for n in range(5):
        assert _outcome(module, _ctx(app, b"/p%d" % n)) == PASS
    assert len(rules.paths) <= 3
    long = b"/cached-test/" + b"a" * 2000
    assert _outcome(module, _ctx(app, long)) == (404, 8)
    assert long not in rules.paths  # judged, not kept


def test_webdav_exempt_denials_are_in_the_path_verdict():
    """With apply_to_web_dav off, the hidden-segment and extension denials are kept per path
    too, and only a request to such a path pays the WebDAV scan."""
    app = make_app(tables=server(hidden_segments={"segments": ["dav-hidden"],
                                                  "apply_to_web_dav": False},
                                 file_extensions={"apply_to_web_dav": False}))
    rules = rules_for(app.sections.request_filtering)
    assert not rules.slow
    module = RequestFilteringModule()
    assert _outcome(module, _ctx(app, b"/dav-hidden/x")) == (404, 8)
    assert rules.paths[b"/dav-hidden/x"] == (0, 8)
    assert _outcome(module, _ctx(app, b"/x.mdb")) == (404, 7)
    assert rules.paths[b"/x.mdb"] == (0, 7)
    assert _outcome(module, _ctx(app, b"/dav-hidden/x", method="PROPFIND")) == PASS
    assert _outcome(module, _ctx(app, b"/x.mdb", headers=[(b"Translate", b"f")])) == PASS
    assert _outcome(module, _ctx(app, b"/fine.html")) == PASS
    assert rules.paths[b"/fine.html"] is rf._ALLOWED
