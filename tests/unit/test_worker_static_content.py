"""static_content: IIS 10's MIME map merged down the levels, client cache headers, ETag, the
document footer, and the locked is_doc_footer_file_name."""

from __future__ import annotations

import os

import pytest

from wasp.config import hierarchy
from wasp.config.mimemap import DEFAULT_MIME_MAP, IIS_MIME_MAP
from wasp.config.sections import resolve
from wasp.worker import modules  # noqa: F401
from wasp.worker.modules import static
from wasp.worker.pipeline import Pipeline

from worker_fakes import make_app, make_ctx


@pytest.fixture
def root(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    (www / "page.html").write_text("<p>page</p>")
    (www / "pic.png").write_bytes(b"\x89PNG....")
    (www / "tool.sh").write_text("echo hi")
    (www / "data.csv").write_text("a,b")
    (www / "x.jxl").write_bytes(b"jxl")
    return www


def serve(root, path, static_content=None, headers=()):
    tables = {"server": {"static_content": static_content}} if static_content is not None else None
    app = make_app("/", tables=tables, physical_path=str(root))
    ctx = make_ctx(app, path=path, headers=headers)
    Pipeline(app).run_sync(ctx)
    return ctx.channel.response()


def effective(*levels):
    problems = []
    value, _ = resolve([(f"l{i}", {"static_content": t}) for i, t in enumerate(levels)],
                       lambda p, m: problems.append((p, m)))
    return value.static_content, problems


# ---- the MIME map ----

def test_iis_list_is_complete_and_in_the_default():
    assert len(IIS_MIME_MAP) == 375
    exts = [e.lower() for e, _m in IIS_MIME_MAP]
    assert len(set(exts)) == len(exts)
    table = dict(IIS_MIME_MAP)
    assert table[".323"] == "text/h323" and table[".zip"] == "application/x-zip-compressed"
    assert table[".csv"] == "application/octet-stream" and table[".woff"] == "font/x-woff"
    default = {e.lower() for e, _m in DEFAULT_MIME_MAP}
    assert ".sh" not in default and ".htm" in default and ".woff2" in default


def test_unknown_and_refused_extensions_are_404_3(root):
    for path in ("/tool.sh", "/x.jxl"):
        status, sub, _h, body, _k, _s = serve(root, path)
        assert (status, sub) == (404, 3), path


def test_mime_map_add_remove_clear_down_the_levels(root):
    section, problems = effective({"mime_map": [{"file_extension": ".jxl", "mime_type": "image/jxl"}]},
                                  {"mime_map": {"remove": [".CSV"]}})
    assert not problems
    table = {m.file_extension: m.mime_type for m in section.mime_map}
    assert table[".jxl"] == "image/jxl" and ".csv" not in table and table[".png"] == "image/png"
    section, problems = effective({"mime_map": {"clear": True, "add": [
        {"file_extension": ".txt", "mime_type": "text/plain; charset=utf-8"}]}})
    assert not problems and [m.file_extension for m in section.mime_map] == [".txt"]
    _section, problems = effective({"mime_map": [{"file_extension": ".PNG", "mime_type": "image/x"}]})
    assert problems and "already in the list" in problems[0][1]


@pytest.mark.parametrize("entry", [
    {"file_extension": "png", "mime_type": "image/png"},
    {"file_extension": ".a/b", "mime_type": "image/png"},
    {"file_extension": ".x", "mime_type": "text/html\r\nSet-Cookie: a=b"},
    {"file_extension": ".x", "mime_type": "nosubtype"},
])
def test_bad_mime_entries_name_their_key(entry):
    _section, problems = effective({"mime_map": [entry]})
    assert problems and problems[0][0].startswith("l0.static_content.mime_map[0]"), problems


def test_served_with_a_map_entry_added_at_server_level(root):
    status, _sub, headers, _b, kind, _s = serve(root, "/x.jxl", {
        "mime_map": [{"file_extension": ".jxl", "mime_type": "image/jxl"}]})
    assert (status, headers["content-type"], kind) == (200, "image/jxl", "file")


# ---- client cache ----

@pytest.mark.parametrize("client_cache, expected", [
    ({}, {}),
    ({"cache_control_mode": "DisableCache"}, {"cache-control": "no-cache"}),
    ({"cache_control_mode": "UseMaxAge"}, {"cache-control": "max-age=86400"}),
    ({"cache_control_mode": "UseMaxAge", "cache_control_max_age": "7d",
      "cache_control_custom": "public"}, {"cache-control": "max-age=604800, public"}),
    ({"cache_control_mode": "UseExpires", "http_expires": "Fri, 01 Jan 2100 00:00:00 GMT"},
     {"expires": "Fri, 01 Jan 2100 00:00:00 GMT"}),
    ({"cache_control_custom": "private"}, {"cache-control": "private"}),
])
def test_client_cache_headers(root, client_cache, expected):
    status, _sub, headers, _b, kind, _s = serve(root, "/pic.png", {"client_cache": client_cache})
    assert status == 200 and kind == "file"
    got = {k: headers[k] for k in ("cache-control", "expires") if k in headers}
    assert got == expected


def test_client_cache_headers_on_304_too(root):
    _s, _sub, headers, *_ = serve(root, "/pic.png")
    status, _sub, again, *_ = serve(root, "/pic.png", {"client_cache": {"cache_control_mode": "UseMaxAge"}},
                                    headers=[("If-None-Match", headers["etag"])])
    assert status == 304 and again["cache-control"] == "max-age=86400"


@pytest.mark.parametrize("key, value", [("http_expires", "tomorrow"),
                                        ("http_expires", "Fri, 01 Jan 2100 00:00:00 GMT\r\nX: y"),
                                        ("cache_control_custom", "public\r\nSet-Cookie: a=b"),
                                        ("cache_control_mode", "Sometimes")])
def test_bad_client_cache_values_name_their_key(key, value):
    _section, problems = effective({"client_cache": {key: value}})
    assert problems and problems[0][0] == f"l0.static_content.client_cache.{key}", problems


def test_set_e_tag_false_sends_no_etag(root):
    status, _sub, headers, *_ = serve(root, "/pic.png", {"client_cache": {"set_e_tag": False}})
    assert status == 200 and "etag" not in headers and "last-modified" in headers


# ---- the document footer ----

def test_footer_text_is_appended_to_html_only(root):
    footer = {"enable_doc_footer": True, "default_doc_footer": "<hr>footer"}
    status, _sub, headers, body, kind, _s = serve(root, "/page.html", footer)
    assert (status, kind, body) == (200, "response", b"<p>page</p><hr>footer")
    assert int(headers["content-length"]) == len(body)
    _st, _sub, plain, *_ = serve(root, "/page.html")
    assert headers["etag"] != plain["etag"]  # the footer is part of the entity
    status, _sub, _h, _b, kind, _s = serve(root, "/pic.png", footer)
    assert (status, kind) == (200, "file")   # not HTML: sendfile, no footer
    status, _sub, _h, body, *_ = serve(root, "/page.html", footer, headers=[("Range", "bytes=0-1")])
    assert status == 200 and body.endswith(b"footer")  # no ranges of a footed file


def test_footer_file(root, tmp_path):
    (tmp_path / "foot.html").write_text("<footer>F</footer>")
    status, _sub, _h, body, *_ = serve(root, "/page.html", {
        "enable_doc_footer": True, "is_doc_footer_file_name": True,
        "default_doc_footer": str(tmp_path / "foot.html")})
    assert (status, body) == (200, b"<p>page</p><footer>F</footer>")
    status, _sub, _h, _b, kind, _s = serve(root, "/page.html", {
        "enable_doc_footer": True, "is_doc_footer_file_name": True,
        "default_doc_footer": str(tmp_path / "missing.html")})
    assert (status, kind) == (200, "file")  # an unreadable footer is left out: the plain file


def test_footer_disabled_by_default(root):
    _st, _sub, _h, _b, kind, _s = serve(root, "/page.html", {"default_doc_footer": "x"})
    assert kind == "file"


def test_web_toml_cannot_set_is_doc_footer_file_name(tmp_path):
    (tmp_path / "web.toml").write_text("[static_content]\nis_doc_footer_file_name = true\n"
                                       "default_doc_footer = \"/etc/passwd\"\n")
    web = hierarchy.read_web_toml(str(tmp_path / "web.toml"))
    locked = hierarchy.check_locks(web, {"static_content": ("Allow", "")})
    assert locked and locked[0][0] == "static_content.is_doc_footer_file_name" and locked[0][2] == 2
    (tmp_path / "web.toml").write_text("[static_content]\ndefault_doc_footer = \"<hr>\"\n")
    web = hierarchy.read_web_toml(str(tmp_path / "web.toml"))
    assert hierarchy.check_locks(web, {"static_content": ("Allow", "")}) == []


def test_cache_headers_pure():
    from wasp.config.sections.static_content import ClientCache
    assert static.cache_headers(ClientCache()) == ""
    assert static.cache_headers(ClientCache(cache_control_mode="UseExpires")) == ""


def test_a_file_whose_name_is_not_utf8_is_sent_by_the_worker(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    with open(os.path.join(os.fsencode(root), b"caf\xe9.txt"), "wb") as f:
        f.write(b"latin-1 name")
    status, _sub, headers, body, kind, _s = serve(root, b"/caf\xe9.txt")
    assert (status, kind, body) == (200, "response", b"latin-1 name")
    status, _sub, _h, body, *_ = serve(root, b"/caf\xe9.txt", headers=[("Range", "bytes=2-4")])
    assert (status, body) == (206, b"tin")
