"""WebDAV building blocks without a server: safe XML parsing (XXE, billion laughs, limits),
dead property serialization, the If header, Timeout/Depth/Overwrite, and the SQLite store shared
by two connections as two workers would share it."""

from __future__ import annotations

import time
from xml.parsers import expat

import pytest

from wasp.errors import BadRequest
from wasp.worker.dav import xmlbody
from wasp.worker.dav.ifheader import parse_depth, parse_if, parse_overwrite, parse_timeout
from wasp.worker.dav.store import Store, ancestors, is_below
from wasp.worker.dav.xmlbody import DAV, BadXml, XmlTooLarge


# ---- XML ----

def test_parse_gives_namespaced_names():
    root = xmlbody.parse(b'<D:propfind xmlns:D="DAV:"><D:prop><x:a xmlns:x="urn:x"/><b xmlns=""/>'
                         b'</D:prop></D:propfind>')
    assert root.key == (DAV, "propfind")
    assert [p.key for p in root.find(DAV, "prop").elements()] == [("urn:x", "a"), ("", "b")]


@pytest.mark.parametrize("body", [
    b'<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><d>&x;</d>',
    b'<!DOCTYPE d [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><d>&b;</d>',
    b'<!DOCTYPE d SYSTEM "http://127.0.0.1:1/x.dtd"><d/>',
    b'<!DOCTYPE d [<!ENTITY % p SYSTEM "http://127.0.0.1:1/p">%p;]><d/>',
    b"<d>&undefined;</d>",
    b"<d><e></d>",
    b"",
    b"<a/><b/>",
    b'<D:x xmlns:D="DAV:"><bar:foo xmlns:bar=""/></D:x>',  # litmus propfind_invalid2
])
def test_dtds_entities_and_malformed_bodies_are_400(body):
    with pytest.raises(BadXml):
        xmlbody.parse(body)


def test_size_depth_and_element_count_are_bounded():
    with pytest.raises(XmlTooLarge):
        xmlbody.parse(b"<a>" + b"x" * 2000 + b"</a>", limit=1000)
    with pytest.raises(BadXml):
        xmlbody.parse(b"<a>" * 100 + b"</a>" * 100)
    with pytest.raises(BadXml):
        xmlbody.parse(b"<a>" + b"<b/>" * (xmlbody.MAX_ELEMENTS + 1) + b"</a>")


def test_dead_property_values_keep_their_namespaces_and_text():
    root = xmlbody.parse('<p xmlns:t="urn:t">hi <t:v a="1" t:b="&quot;2&quot;"><foo xmlns="bar">x&amp;y'
                         '</foo></t:v> ✓𐀀</p>'.encode())
    value = xmlbody.serialize_children(root)
    # The value is well-formed on its own and parses back to the same names.
    again = xmlbody.parse(f"<w>{value}</w>".encode())
    v = again.find("urn:t", "v")
    assert v.attrs == {("", "a"): "1", ("urn:t", "b"): '"2"'}
    assert v.find("bar", "foo").all_text() == "x&y"
    assert again.all_text() == "hi x&y ✓𐀀"


def test_a_multistatus_document_is_well_formed():
    doc = xmlbody.multistatus([xmlbody.propstat("/a b/<x>", [
        ("200 OK", [xmlbody.property_tag("urn:z", "p", "v&amp;"), xmlbody.property_tag("", "n")]),
        ("404 Not Found", [xmlbody.property_tag(DAV, "getetag")]), ("403 Forbidden", [])])])
    expat.ParserCreate(namespace_separator=" ").Parse(doc, True)
    assert doc.count(b"<D:propstat>") == 2 and b"&lt;x&gt;" in doc


# ---- If, Timeout, Depth, Overwrite ----

def test_if_header_lists_and_evaluation():
    h = parse_if('<http://h/a> (<urn:uuid:1> ["e1"]) (Not <DAV:no-lock>) <http://h/b> ([W/"e2"])')
    assert [tag for tag, _ in h.lists] == ["http://h/a", "http://h/a", "http://h/b"]
    assert h.tokens == {"urn:uuid:1", "DAV:no-lock"}
    states = {"http://h/a": ('"e9"', set()), "http://h/b": ('"e2"', set())}
    assert h.evaluate(states.get)  # b's etag matches (weak compare)
    assert not parse_if('(<urn:uuid:1> ["e1"])').evaluate(lambda tag: ('"e1"', set()))
    assert parse_if('(<urn:uuid:1> ["e1"])').evaluate(lambda tag: ('"e1"', {"urn:uuid:1"}))
    assert parse_if("(Not <urn:uuid:1>)").evaluate(lambda tag: (None, set()))
    assert not parse_if('(["x"])').evaluate(lambda tag: (None, set()))  # no resource, no etag


@pytest.mark.parametrize("value", ["", "garbage", "(", "()", "(<a>", "(<a>) <b>", "(x)",
                                   "(<a>) <http://h/> (<b>)", "(" * 20000])
def test_malformed_if_headers_are_400(value):
    with pytest.raises(BadRequest):
        parse_if(value)


def test_timeout_depth_overwrite():
    assert parse_timeout(None) == 3600
    assert parse_timeout("Second-60") == 60
    assert parse_timeout("Infinite, Second-4100000000") == 7 * 86400
    assert parse_timeout("Second-99999999999") == 7 * 86400
    assert parse_timeout("bogus, Second-5") == 5
    assert parse_depth(None, "infinity", ("0", "infinity")) == "infinity"
    assert parse_depth("Infinity", "0", ("0", "infinity")) == "infinity"
    with pytest.raises(BadRequest):
        parse_depth("1", "0", ("0", "infinity"))
    assert parse_overwrite(None) is True and parse_overwrite("f") is False
    with pytest.raises(BadRequest):
        parse_overwrite("maybe")


# ---- the store ----

def test_paths():
    assert ancestors("/a/b/c") == ["/a/b", "/a", ""]
    assert is_below("/a/b", "/a") and is_below("/a", "") and not is_below("/ab", "/a")
    assert not is_below("", "")


def test_two_connections_see_each_others_locks_and_properties(tmp_path):
    one, two = Store(str(tmp_path / "dav" / "s.sqlite")), Store(str(tmp_path / "dav" / "s.sqlite"))
    with one.write():
        lock = one.add_lock("/col", infinite=True, exclusive=True, owner="<x/>", principal="u", timeout=60)
        one.set_prop("/col/f", "urn:z", "p", "v")
        one.set_prop("/col/sub/g", "urn:z", "q", "w")
    with two.read():
        assert [l.token for l in two.locks_at("/col/sub/g")] == [lock.token]
        assert two.locks_at("/other") == [] and two.locks_at("/colx") == []
        assert [l.token for l in two.locks_below("")] == [lock.token]
        assert two.props("/col/f") == {("urn:z", "p"): "v"}
    with two.write():
        two.copy_props("/col", "/copy", tree=True)
        two.move_props("/col/sub", "/moved")
    with one.read():
        assert one.props("/copy/sub/g") == {("urn:z", "q"): "w"}
        assert one.props("/moved/g") == {("urn:z", "q"): "w"} and one.props("/col/sub/g") == {}
    with one.write():
        one.drop_props("/copy")
        one.drop_locks("/col")
    with two.read():
        assert two.props("/copy/f") == {} and two.lock(lock.token) is None
    one.close()
    two.close()


def test_expired_locks_do_not_count_and_refresh_extends(tmp_path):
    store = Store(str(tmp_path / "s.sqlite"))
    with store.write():
        lock = store.add_lock("/f", infinite=False, exclusive=False, owner="", principal="", timeout=1)
        assert not store.locks_at("/f/x")  # depth 0 covers only the resource
    now = time.time()
    with store.read():
        assert store.locks_at("/f", now) and not store.locks_at("/f", now + 5)
        assert store.lock(lock.token, now + 5) is None
    with store.write():
        store.refresh(lock.token, 600)
    with store.read():
        assert store.lock(lock.token, now + 5).remaining(now) > 590
    store.close()


def test_a_failed_transaction_changes_nothing(tmp_path):
    store = Store(str(tmp_path / "s.sqlite"))
    with pytest.raises(RuntimeError):
        with store.write():
            store.set_prop("/f", "", "p", "v")
            raise RuntimeError("the file operation failed")
    with store.read():
        assert store.props("/f") == {}
    store.close()


# ---- the handler in a pipeline (fake channel) ----

from wasp.worker import modules  # noqa: E402,F401  (registers the built-in modules)
from wasp.worker.pipeline import Pipeline  # noqa: E402

from worker_fakes import make_app, make_ctx  # noqa: E402


def dav_app(tmp_path, authoring, rules=(), app_path="/"):
    (tmp_path / "www").mkdir(exist_ok=True)
    tables = {"server": {"web_dav_authoring": authoring,
                         "web_dav_authoring_rules": {"rules": list(rules)}}}
    app = make_app(app_path, physical_path=str(tmp_path / "www"), tables=tables)
    app.run_dir = str(tmp_path / "run")
    return app


def answer(app, method, path, headers=()):
    ctx = make_ctx(app, method=method, path=path, headers=headers)
    app.pipeline = app.pipeline or Pipeline(app)   # as the worker sets it (protocol_support reads it)
    app.pipeline.run_sync(ctx)
    status, sub, hdrs, body, _kind, _len = ctx.channel.response()
    return status, sub, hdrs, body


def test_the_module_stays_out_where_webdav_is_never_enabled(tmp_path):
    app = dav_app(tmp_path, {"enabled": False})
    pipeline = Pipeline(app)
    assert "web_dav" not in pipeline.active
    (tmp_path / "www" / "x.txt").write_text("x")
    assert answer(app, "PROPFIND", "/x.txt")[0] == 405  # static_file: GET, HEAD only


def test_anonymous_gets_401_2_without_a_rule_and_writes_with_one(tmp_path):
    app = dav_app(tmp_path, {"enabled": True})
    status, sub, headers, _ = answer(app, "PUT", "/a.txt")
    assert (status, sub) == (401, 2)
    assert not (tmp_path / "www" / "a.txt").exists()
    app = dav_app(tmp_path, {"enabled": True}, [{"users": "?", "path": "*.txt", "access": ["Write"]}])
    assert answer(app, "PUT", "/a.txt")[0] == 201
    assert (tmp_path / "www" / "a.txt").read_bytes() == b""
    assert answer(app, "PUT", "/a.bin")[:2] == (401, 2)  # the rule's path is *.txt


def test_require_ssl_refuses_plain_http_with_403_4(tmp_path):
    app = dav_app(tmp_path, {"enabled": True, "require_ssl": True},
                  [{"users": "*", "path": "*", "access": ["Read", "Write"]}])
    assert answer(app, "MKCOL", "/c")[:2] == (403, 4)
    assert not (tmp_path / "www" / "c").exists()


def test_a_fragment_in_the_target_is_400(tmp_path):
    app = dav_app(tmp_path, {"enabled": True}, [{"users": "*", "path": "*", "access": ["Write"]}])
    (tmp_path / "www" / "frag").mkdir()
    ctx = make_ctx(app, method="DELETE", path="/frag/")
    ctx.head.target = b"/frag/#x"
    Pipeline(app).run_sync(ctx)
    assert ctx.channel.response()[0] == 400
    assert (tmp_path / "www" / "frag").is_dir()


def test_locks_disabled_means_405_and_dav_class_1(tmp_path):
    app = dav_app(tmp_path, {"enabled": True}, [{"users": "*", "path": "*", "access": ["Write"]}])
    assert answer(app, "LOCK", "/x.txt")[0] == 405
    assert answer(app, "OPTIONS", "/")[2]["dav"] == "1"
