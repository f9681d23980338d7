"""static_file and default_document: path safety, conditional requests, ranges, IIS errors."""

from __future__ import annotations

import os
from email.utils import formatdate

import pytest

from wasp.worker import modules  # noqa: F401
from wasp.worker.modules import static
from wasp.worker.modules.mime import content_type
from wasp.worker.pipeline import Pipeline
from wasp.worker.registry import Phase

from worker_fakes import make_app, make_ctx


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"0123456789")
    (root / "page.html").write_text("<p>hi</p>")
    (root / "data.unknownext").write_text("x")
    (root / "noext").write_text("x")
    (root / "code.py").write_text("secret = 1")
    (root / "docs").mkdir()
    (root / "docs" / "index.html").write_text("<h1>docs</h1>")
    (root / "bare").mkdir()
    (root / "CaseDir").mkdir()
    (root / "CaseDir" / "DEFAULT.HTM").write_text("case")
    (root / "dir with space").mkdir()
    (root / "dir with space" / "f.txt").write_text("spaced")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (root / "escape").symlink_to(outside)
    (root / "escape.txt").symlink_to(outside / "secret.txt")
    (root / "inside.txt").symlink_to(root / "hello.txt")
    os.mkfifo(root / "pipe.txt")
    return root


def serve(root, path, method="GET", headers=(), app_path="/", query=b"", **app_fields):
    app = make_app(app_path, physical_path=str(root), **app_fields)
    pipeline = Pipeline(app)
    ctx = make_ctx(app, method=method, path=path, headers=headers, query=query)
    pipeline.run_sync(ctx)
    return ctx.channel.response()


# ---- path safety ----

@pytest.mark.parametrize("raw", [b"/../outside/secret.txt", b"/docs/../../outside/secret.txt",
                                 b"/..", b"/a/..", b"/../", b"/docs/../../.."])
def test_dot_dot_segment_is_refused(raw):
    with pytest.raises(static.UnsafePath):
        static.check_path(raw)


@pytest.mark.parametrize("raw", [b"/hello.txt\x00.html", b"/\x00", b"/a\\..\\b", b"/docs\\index.html"])
def test_nul_and_backslash_are_refused(raw):
    with pytest.raises(static.UnsafePath):
        static.check_path(raw)


def test_safe_segments():
    assert static.check_path(b"/a/./b//c/") == ["a", "b", "c"]
    assert static.check_path(b"/a..b/..c/d..") == ["a..b", "..c", "d.."]


@pytest.mark.parametrize("path", ["/../outside/secret.txt", "/docs/../../outside/secret.txt"])
def test_decoded_escapes_arrive_as_404_5(site, path):
    # "%2e%2e%2f" decoded by a front that did not resolve the segments: still refused.
    status, sub, *_ = serve(site, path)
    assert (status, sub) == (404, 5)


def test_encoded_slash_decoded_to_slash_is_just_a_path(site):
    # "/docs%2findex.html" arrives cooked as "/docs/index.html": an ordinary path inside the root.
    status, _sub, _h, _b, kind, span = serve(site, "/docs/index.html")
    assert status == 200 and kind == "file" and span.path.endswith("/docs/index.html")


def test_backslash_and_nul_requests_are_refused(site):
    assert serve(site, "/docs\\index.html")[:2] == (404, 5)
    assert serve(site, b"/hello.txt\x00.html")[:2] == (404, 5)


def test_symlink_out_of_the_root_is_not_served(site):
    assert serve(site, "/escape.txt")[:2] == (404, 0)
    assert serve(site, "/escape/secret.txt")[:2] == (404, 0)


def test_symlink_inside_the_root_is_served(site):
    status, _s, _h, _b, kind, span = serve(site, "/inside.txt")
    assert status == 200 and span.path == str(site / "hello.txt")


def test_only_regular_files(site):
    assert serve(site, "/pipe.txt")[:2] == (404, 0)


# ---- answers ----

def test_file_answer_is_a_file_frame_with_iis_headers(site):
    status, _sub, headers, _body, kind, span = serve(site, "/hello.txt")
    assert (status, kind) == (200, "file")
    assert (span.offset, span.length) == (0, 10)
    st = os.stat(site / "hello.txt")
    assert headers["content-type"] == "text/plain"
    assert headers["accept-ranges"] == "bytes"
    assert headers["content-length"] == "10"
    assert headers["last-modified"] == formatdate(int(st.st_mtime), usegmt=True)
    assert headers["etag"] == static.etag_of(st)
    assert headers["etag"].startswith('"') and headers["etag"].endswith(':a"')


def test_head_has_headers_and_no_body(site):
    status, _s, headers, body, kind, length = serve(site, "/hello.txt", method="HEAD")
    assert (status, kind, body, length) == (200, "response", b"", 10)
    assert headers["content-length"] == "10"


def test_unmapped_extension_is_404_3(site):
    assert serve(site, "/data.unknownext")[:2] == (404, 3)
    assert serve(site, "/noext")[:2] == (404, 3)
    assert serve(site, "/code.py")[:2] == (404, 3)  # app source is never served


def test_missing_file_is_404_0_with_iis_page(site):
    status, sub, headers, body, _k, _ = serve(site, "/missing.txt")
    assert (status, sub) == (404, 0)
    assert b"404 - File or directory not found." in body


def test_directory_without_default_document_is_403_14(site):
    status, sub, _h, body, _k, _ = serve(site, "/bare/")
    assert (status, sub) == (403, 14)


def test_directory_without_slash_redirects_keeping_query(site):
    status, _s, headers, body, _k, _ = serve(site, "/docs", query=b"a=1&b=2")
    assert status == 301 and headers["location"] == "/docs/?a=1&b=2"
    assert b"Object Moved" in body
    status, _s, headers, *_ = serve(site, "/dir with space")
    assert status == 301 and headers["location"] == "/dir%20with%20space/"


def test_application_root_without_slash_redirects(site):
    status, _s, headers, *_ = serve(site, "/app", app_path="/app")
    assert status == 301 and headers["location"] == "/app/"


def test_default_documents_in_order_and_case_insensitive(site):
    (site / "docs" / "Default.htm").write_text("first")
    _st, _s, _h, _b, _k, span = serve(site, "/docs/")
    assert span.path.endswith("Default.htm")
    _st, _s, _h, _b, _k, span = serve(site, "/docs/", default_documents=["index.html", "Default.htm"])
    assert span.path.endswith("index.html")
    _st, _s, _h, _b, _k, span = serve(site, "/CaseDir/")
    assert span.path.endswith("DEFAULT.HTM")


def test_other_methods_are_405_with_allow(site):
    status, _s, headers, *_ = serve(site, "/hello.txt", method="POST")
    assert status == 405 and headers["allow"] == "GET, HEAD"


def test_app_with_physical_path_gets_what_static_does_not_claim(site, tmp_path):
    (tmp_path / "tinyapp.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [environ['PATH_INFO'].encode()]\n")
    fields = {"app": "tinyapp:app", "python_path": [str(tmp_path)]}
    from wasp.worker.application import load
    for path, expected in (("/hello.txt", "file"), ("/docs/", "file"), ("/bare/", b"/bare/"),
                           ("/nothing", b"/nothing")):
        app = make_app("/", physical_path=str(site), **fields)
        load(app, threads=1, multiprocess=False)
        ctx = make_ctx(app, path=path)
        app.pipeline.run_sync(ctx)
        result = ctx.channel.response()
        assert (result[4] if expected == "file" else result[3]) == expected, path


def test_only_the_wsgi_handler_is_handed_to_a_thread(site, tmp_path):
    """run_front (on the loop) answers files, default documents, redirects and their errors
    itself; only a request the WSGI app handles is left for run_handler_sync on a thread."""
    (tmp_path / "tinyapp.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [environ['PATH_INFO'].encode()]\n")
    from wasp.worker.application import load
    app = make_app("/", physical_path=str(site), app="tinyapp:app", python_path=[str(tmp_path)])
    load(app, threads=1, multiprocess=False)
    for path, method, status in (("/hello.txt", "GET", 200), ("/docs/", "GET", 200),
                                 ("/docs", "GET", 301), ("/hello.txt", "POST", 405)):
        ctx = make_ctx(app, path=path, method=method)
        assert app.pipeline.run_front(ctx) is False, path
        assert ctx.finished and ctx.channel.finished == [ctx], path
        assert ctx.channel.response()[0] == status, path
    for path in ("/nothing", "/bare/"):
        ctx = make_ctx(app, path=path)
        assert app.pipeline.run_front(ctx) is True, path
        assert not ctx.started and ctx.channel.written == [] and ctx.channel.finished == []
        # the last step before the hand-off: PRE_EXECUTE (custom_error, compression)
        assert ctx.phase is Phase.PRE_EXECUTE_REQUEST_HANDLER and ctx.handler.id == "python_app"
        app.pipeline.run_handler_sync(ctx)
        assert ctx.channel.response()[3] == path.encode() and ctx.channel.finished == [ctx]


# ---- conditional requests and ranges ----

def test_if_none_match_gives_304(site):
    etag = serve(site, "/hello.txt")[2]["etag"]
    status, _s, headers, body, _k, _ = serve(site, "/hello.txt", headers=[("If-None-Match", etag)])
    assert status == 304 and body == b"" and headers["etag"] == etag
    assert "content-length" not in headers
    assert serve(site, "/hello.txt", headers=[("If-None-Match", f'"x", W/{etag}')])[0] == 304
    assert serve(site, "/hello.txt", headers=[("If-None-Match", '"other"')])[0] == 200


def test_if_modified_since(site):
    last = serve(site, "/hello.txt")[2]["last-modified"]
    assert serve(site, "/hello.txt", headers=[("If-Modified-Since", last)])[0] == 304
    assert serve(site, "/hello.txt", headers=[("If-Modified-Since", "Thu, 01 Jan 1998 00:00:00 GMT")])[0] == 200
    assert serve(site, "/hello.txt", headers=[("If-Modified-Since", "garbage")])[0] == 200


@pytest.mark.parametrize("value,offset,length,content_range", [
    ("bytes=0-3", 0, 4, "bytes 0-3/10"),
    ("bytes=5-", 5, 5, "bytes 5-9/10"),
    ("bytes=-3", 7, 3, "bytes 7-9/10"),
    ("bytes=8-100", 8, 2, "bytes 8-9/10"),
    ("bytes=-100", 0, 10, "bytes 0-9/10"),
])
def test_single_range_is_206(site, value, offset, length, content_range):
    status, _s, headers, _b, kind, span = serve(site, "/hello.txt", headers=[("Range", value)])
    assert (status, kind) == (206, "file")
    assert (span.offset, span.length) == (offset, length)
    assert headers["content-range"] == content_range and headers["content-length"] == str(length)


@pytest.mark.parametrize("value", ["bytes=10-", "bytes=20-30", "bytes=-0"])
def test_unsatisfiable_range_is_416(site, value):
    status, _s, headers, *_ = serve(site, "/hello.txt", headers=[("Range", value)])
    assert status == 416 and headers["content-range"] == "bytes */10"


@pytest.mark.parametrize("value", ["bytes=0-1,4-5", "items=0-1", "bytes=5-2", "bytes=x-y", "bytes"])
def test_multiple_or_malformed_ranges_give_the_whole_file(site, value):
    status, _s, _h, _b, _k, span = serve(site, "/hello.txt", headers=[("Range", value)])
    assert status == 200 and (span.offset, span.length) == (0, 10)


def test_if_range_mismatch_gives_the_whole_file(site):
    etag = serve(site, "/hello.txt")[2]["etag"]
    assert serve(site, "/hello.txt", headers=[("Range", "bytes=0-1"), ("If-Range", etag)])[0] == 206
    assert serve(site, "/hello.txt", headers=[("Range", "bytes=0-1"), ("If-Range", '"stale"')])[0] == 200


def test_mime_map():
    assert content_type("/a/b.HTML") == "text/html"
    assert content_type("x.js") == "application/javascript"
    assert content_type("x.json") == "application/json"
    assert content_type("x.woff2") == "application/font-woff2"
    assert content_type("x.py") is None and content_type("wasp.toml") is None
    assert content_type("x.nosuchext") is None
