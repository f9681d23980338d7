"""directory_listing: IIS's page, show flags, escaping of hostile names, what is left out, and
the order default document > listing > 403.14."""

from __future__ import annotations

import os
import time

import pytest

from wasp.worker import modules  # noqa: F401
from wasp.worker.modules import directory_listing as dl
from wasp.worker.pipeline import Pipeline

from worker_fakes import make_app, make_ctx

ALL = frozenset({"Date", "Time", "Size", "Extension"})


def at(year, mon, day, hour, minute):
    return time.mktime((year, mon, day, hour, minute, 0, 0, 0, -1))


def test_when_as_iis_prints_it():
    assert dl.when(at(2026, 4, 13, 14, 25), frozenset({"Date", "Time"})) == " 4/13/2026  2:25 PM"
    assert dl.when(at(2025, 10, 19, 21, 55), frozenset({"Date", "Time"})) == "10/19/2025  9:55 PM"
    assert dl.when(at(2026, 4, 25, 11, 31), frozenset({"Date", "Time"})) == " 4/25/2026 11:31 AM"
    assert dl.when(at(2026, 4, 25, 0, 5), frozenset({"Time"})) == " 12:05 AM"
    assert dl.when(at(2022, 8, 21, 1, 2), frozenset({"LongDate", "Date", "Time"})) == \
        "Sunday, August 21, 2022  1:02 AM"
    assert dl.when(at(2022, 8, 21, 1, 2), frozenset()) == ""


def test_lines_as_iis_prints_them():
    st = os.stat_result((0o100644, 0, 0, 1, 0, 0, 14, 0, at(2026, 4, 13, 14, 25), 0))
    assert dl.line(b"/BackupFiles/", "site-backup.cfg", st, ALL) == (
        ' 4/13/2026  2:25 PM           14 <A HREF="/BackupFiles/site-backup.cfg">site-backup.cfg</A><br>')
    folder = os.stat_result((0o040755, 0, 0, 1, 0, 0, 4096, 0, at(2026, 4, 13, 14, 25), 0))
    assert dl.line(b"/", "icons", folder, ALL) == (
        ' 4/13/2026  2:25 PM        &lt;dir&gt; <A HREF="/icons/">icons</A><br>')
    assert dl.line(b"/", "a.txt", st, frozenset()) == ' <A HREF="/a.txt">a</A><br>'
    assert dl.line(b"/", "a.txt", st, frozenset({"Size"})) == '           14 <A HREF="/a.txt">a</A><br>'


@pytest.mark.parametrize("name, href, text", [
    ("<script>alert(1)</script>.txt", "/%3Cscript%3Ealert%281%29%3C%2Fscript%3E.txt".replace("%28", "%28"),
     "&lt;script&gt;alert(1)&lt;/script&gt;.txt"),
    ('a"b\'c.txt', "/a%22b%27c.txt", "a&quot;b&#x27;c.txt"),
    ("100%.txt", "/100%25.txt", "100%.txt"),
    ("new\nline.txt", "/new%0Aline.txt", "new\nline.txt"),
    (os.fsdecode(b"caf\xe9.txt"), "/caf%E9.txt", "caf\ufffd.txt"),
    ("a&b #1?.txt", "/a%26b%20%231%3F.txt", "a&amp;b #1?.txt"),
])
def test_hostile_names_are_escaped_and_encoded(name, href, text):
    st = os.stat_result((0o100644, 0, 0, 1, 0, 0, 1, 0, 0, 0))
    out = dl.line(b"/", name, st, frozenset({"Extension"}))
    assert out == f' <A HREF="{href}">{text}</A><br>'


def test_page_title_parent_and_escaped_host_and_path():
    out = dl.page('evil"><b>', b"/a/<b>/", [], ALL)
    assert out.startswith('<html><head><title>evil&quot;&gt;&lt;b&gt; - /a/&lt;b&gt;/</title>')
    assert '<pre><A HREF="/a/">[To Parent Directory]</A><br><br></pre><hr></body></html>' in out
    assert "[To Parent Directory]" not in dl.page("h", b"/", [], ALL)
    assert dl.host_of(make_ctx(make_app(), headers=()).head) == "example.test"


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "www"
    (root / "list" / "sub").mkdir(parents=True)
    (root / "list" / "b.txt").write_text("bb")
    (root / "list" / "A.html").write_text("a")
    (root / "list" / ".hidden").write_text("h")
    (root / "list" / "web.toml").write_text("")
    (root / "list" / "bin").mkdir()
    (root / "list" / "<img src=x>.txt").write_text("x")
    (tmp_path / "outside").mkdir()
    (root / "list" / "out").symlink_to(tmp_path / "outside")
    (root / "doc").mkdir()
    (root / "doc" / "index.html").write_text("index")
    (root / "doc" / "other.txt").write_text("o")
    return root


def serve(root, path, browse=None, method="GET"):
    tables = {"server": {"directory_browse": browse}} if browse is not None else None
    app = make_app("/", tables=tables, physical_path=str(root))
    ctx = make_ctx(app, path=path, method=method)
    Pipeline(app).run_sync(ctx)
    return ctx.channel.response()


def test_disabled_by_default_is_403_14(site):
    status, sub, *_ = serve(site, "/list/")
    assert (status, sub) == (403, 14)


def test_listing_shows_what_it_may(site):
    status, _sub, headers, body, *_ = serve(site, "/list/", {"enabled": True})
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    page = body.decode()
    names = [part.split('">', 1)[1].split("</A>", 1)[0] for part in page.split("<A HREF=\"")[1:]]
    assert names == ["[To Parent Directory]", "&lt;img src=x&gt;.txt", "A.html", "b.txt", "sub"]
    assert ".hidden" not in page and "web.toml" not in page and ">bin<" not in page and ">out<" not in page
    assert "<img" not in page


def test_default_document_wins_over_the_listing(site):
    status, _sub, _h, _b, kind, _s = serve(site, "/doc/", {"enabled": True})
    assert (status, kind) == (200, "file")
    tables = {"server": {"directory_browse": {"enabled": True}, "default_document": {"enabled": False}}}
    app = make_app("/", tables=tables, physical_path=str(site))
    ctx = make_ctx(app, path="/doc/")
    Pipeline(app).run_sync(ctx)
    status, _sub, _h, body, *_ = ctx.channel.response()
    assert status == 200 and b"other.txt" in body and b"index.html" in body


def test_only_get_and_head(site):
    status, *_ = serve(site, "/list/", {"enabled": True}, method="POST")
    assert status == 405


def test_show_flags_none_lists_names_only(site):
    _status, _sub, _h, body, *_ = serve(site, "/list/", {"enabled": True, "show_flags": ["None"]})
    assert b'<br><br> <A HREF="/list/%3Cimg%20src%3Dx%3E.txt">&lt;img src=x&gt;</A><br>' in body


def test_without_static_file_the_lister_maps_directories_only(site):
    tables = {"server": {"modules": {"remove": ["static_file"]},
                         "directory_browse": {"enabled": True}}}
    app = make_app("/", tables=tables, physical_path=str(site))
    for path, expected in (("/list/b.txt", (404, 4)), ("/list/", (200, 0))):
        ctx = make_ctx(app, path=path)
        Pipeline(app).run_sync(ctx)
        assert ctx.channel.response()[:2] == expected, path
