"""Server-side includes: the directive parser, and the module through the pipeline (include
file/virtual with their root and loop limits, echo, config, fsize, flastmod, exec on and off)."""

from __future__ import annotations

import os

import pytest

from wasp.worker import modules  # noqa: F401
from wasp.worker import ssi
from wasp.worker.modules import server_side_include as ssinc
from wasp.worker.pipeline import Pipeline

from worker_fakes import make_app, make_ctx

ERR = ssi.DEFAULT_ERRMSG.encode()


# ---- the parser ----

def test_parse_splits_text_and_directives():
    parts = ssi.parse(b'a<!--#include file="x.inc" -->b<!-- #echo var=\'DATE_LOCAL\'-->c')
    assert parts[0] == b"a" and parts[2] == b"b" and parts[4] == b"c"
    assert parts[1].name == "include" and parts[1].attributes == [("file", "x.inc")]
    assert parts[3].name == "echo" and parts[3].attributes == [("var", "DATE_LOCAL")]


def test_parse_case_and_many_attributes():
    (d,) = ssi.parse(b'<!--#CONFIG TimeFmt="%Y" sizefmt="bytes"-->')
    assert d.name == "config" and d.attributes == [("timefmt", "%Y"), ("sizefmt", "bytes")]


@pytest.mark.parametrize("text", [b"<!-- plain comment -->", b'<!--#include file="x"',
                                  b'<!--#include file=x -->', b"no directives at all"])
def test_what_is_not_a_directive_stays_text(text):
    assert ssi.parse(text) == [text]


def test_size_and_cgi_output_helpers():
    assert ssi.format_size(1234, "bytes") == "1,234"
    assert ssi.format_size(100, "abbrev") == "100"
    assert ssi.format_size(1025, "abbrev") == "2K"
    assert ssi.format_size(3 * 1024 * 1024 // 2, "abbrev") == "1.5M"
    assert ssi.header_split(b"Content-Type: text/plain\r\n\r\nbody") == b"body"
    assert ssi.header_split(b"no headers here\n\nbody") == b"no headers here\n\nbody"


# ---- the module ----

@pytest.fixture
def site(tmp_path):
    root = tmp_path / "www"
    (root / "inc").mkdir(parents=True)
    (root / "inc" / "head.inc").write_text("<head>H</head>")
    (root / "inc" / "nested.inc").write_text('N[<!--#include file="head.inc" -->]')
    (root / "inc" / "loop.inc").write_text('L<!--#include file="loop.inc" -->')
    (root / "inc" / "web.toml").write_text("[default_document]\n")
    (root / "inc" / "x.config").write_text("secret config")
    (root / "inc" / "deep.inc").write_text('D<!--#include file="deep.inc" -->')
    (tmp_path / "secret.txt").write_text("TOP-SECRET")
    (root / "inc" / "out.inc").symlink_to(tmp_path / "secret.txt")
    (root / "ten.bin").write_bytes(b"x" * 2000)
    script = root / "inc" / "hello.cgi"
    script.write_text("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\ncgi says %s' \"$QUERY_STRING\"\n")
    script.chmod(0o755)
    return root


def page(root, text, query=b"", headers=(), exec_=None, app_path="/", name="p.shtml"):
    (root / name).write_text(text)
    tables = None
    if exec_ is not None:
        tables = {"server": {"server_side_include": exec_}}
    app = make_app(app_path, tables=tables, physical_path=str(root))
    url = (app_path.rstrip("/") + "/" + name)
    ctx = make_ctx(app, path=url, query=query, headers=headers)
    Pipeline(app).run_sync(ctx)
    status, _sub, hdrs, body, *_ = ctx.channel.response()
    return status, hdrs, body


def test_include_file_and_virtual_and_nesting(site):
    status, headers, body = page(site, 'A<!--#include file="inc/head.inc" -->'
                                       '<!--#include virtual="/inc/nested.inc" -->'
                                       '<!--#include virtual="inc/head.inc" -->Z')
    assert status == 200 and headers["content-type"] == "text/html"
    assert body == b"A<head>H</head>N[<head>H</head>]<head>H</head>Z"


@pytest.mark.parametrize("directive", [
    '<!--#include file="../secret.txt" -->',
    '<!--#include file="/etc/passwd" -->',
    '<!--#include file="inc/out.inc" -->',
    '<!--#include virtual="/../secret.txt" -->',
    '<!--#include virtual="/inc/../../secret.txt" -->',
    '<!--#include virtual="/inc/%2e%2e/%2e%2e/secret.txt" -->',
    '<!--#include virtual="/inc/web.toml" -->',
    '<!--#include file="inc/web.toml" -->',
    '<!--#include file="inc/x.config" -->',
    '<!--#include virtual="//etc/passwd" -->',
    '<!--#include file="inc/loop.inc" -->',
    '<!--#include file="nosuch.inc" -->',
    '<!--#include file="inc" -->',
    '<!--#include virtual="/inc/head.inc?x=1" -->',
])
def test_includes_that_must_fail_show_the_error_message_only(site, directive):
    status, _h, body = page(site, f"[{directive}]")
    assert status == 200
    assert b"TOP-SECRET" not in body and b"root:" not in body and b"secret config" not in body
    if "loop" in directive:
        assert body.startswith(b"[L") and body.endswith(ERR + b"]")
    else:
        assert body == b"[" + ERR + b"]"


def test_a_document_including_itself_is_stopped(site):
    status, _h, body = page(site, 'S<!--#include file="p.shtml" -->')
    assert status == 200 and body == b"S" + ERR


def test_virtual_include_outside_the_application_is_refused(site):
    status, _h, body = page(site, '<!--#include virtual="/other/x.inc" -->'
                                  '<!--#include virtual="/app/inc/head.inc" -->', app_path="/app")
    assert body == ERR + b"<head>H</head>"


def test_echo_is_html_escaped(site):
    status, _h, body = page(site, '<!--#echo var="QUERY_STRING_UNESCAPED" -->|'
                                  '<!--#echo var="HTTP_X_EVIL" -->|<!--#echo var="DOCUMENT_NAME" -->|'
                                  '<!--#echo var="DOCUMENT_URI" -->|<!--#echo var="NOPE" -->',
                            query=b"q=%3Cscript%3E", headers=[("X-Evil", '"><img src=x>')])
    assert body == b"q=&lt;script&gt;|&quot;&gt;&lt;img src=x&gt;|p.shtml|/p.shtml|(none)"


def test_config_fsize_flastmod(site):
    os.utime(site / "ten.bin", (0, 86400 * 365))
    status, _h, body = page(site, '<!--#fsize file="ten.bin" -->|<!--#config sizefmt="bytes" -->'
                                  '<!--#fsize virtual="/ten.bin" -->|<!--#config timefmt="%Y" -->'
                                  '<!--#flastmod file="ten.bin" -->|<!--#config errmsg="[oops]" -->'
                                  '<!--#fsize file="../x" -->|<!--#bogus -->')
    assert body == b"2K|2,000|1971|[oops]|[oops]"


def test_exec_is_off_by_default(site):
    status, _h, body = page(site, '<!--#exec cmd="echo ran" -->')
    assert status == 200 and body == ERR


def test_exec_cmd_and_cgi_when_enabled(site):
    status, _h, body = page(site, '<!--#exec cmd="echo ran in $(basename $PWD)" -->|'
                                  '<!--#exec cgi="/inc/hello.cgi" -->', query=b"a=1",
                            exec_={"ssi_exec_disable": False})
    assert body == b"ran in www\n|cgi says a=1"


def test_exec_timeout_kills_and_shows_the_error(site, tmp_path):
    marker = tmp_path / "late"
    status, _h, body = page(site, f'<!--#exec cmd="sleep 30; touch {marker}" -->after',
                            exec_={"ssi_exec_disable": False, "ssi_exec_timeout": "0.5s"})
    assert body == ERR + b"after" and not marker.exists()


def test_proxy_header_never_reaches_a_program(site):
    ctx = make_ctx(make_app(), headers=[("Proxy", "http://evil")])
    env = ssinc.server_variables(ctx, ssinc.Document("/x/p.shtml", b"/p.shtml", os.stat("/")))
    assert "HTTP_PROXY" not in env and env["HTTP_HOST"] == "example.test"


def test_missing_document_is_404_and_other_methods_go_on_to_static_file(site):
    app = make_app("/", physical_path=str(site))
    ctx = make_ctx(app, path="/nope.shtml")
    Pipeline(app).run_sync(ctx)
    assert ctx.channel.response()[0] == 404
    (site / "p.stm").write_text("x")
    ctx = make_ctx(app, path="/p.stm", method="PUT")
    Pipeline(app).run_sync(ctx)
    # SSINC-stm lists GET,HEAD,POST: PUT goes on to StaticFile, which has no type for .stm (IIS)
    assert ctx.channel.response()[:2] == (404, 3)


def test_next_to_a_python_app_an_existing_shtml_goes_to_ssi(site):
    (site / "p.shtml").write_text("x")
    app = make_app("/", physical_path=str(site))
    app.host = object()  # the application has a Python app: PythonApp is mapped first
    pipeline = Pipeline(app)
    ctx = make_ctx(app, path="/p.shtml")
    pipeline.map_for(app.sections.handlers).map(ctx)
    assert ctx.handler.id == "server_side_include"
    ctx = make_ctx(app, path="/missing.shtml")
    pipeline.map_for(app.sections.handlers).map(ctx)
    assert ctx.handler.id == "python_app"  # no such file: the app's URL space


def test_head_has_the_length_and_no_body(site):
    (site / "h.shtml").write_text('a<!--#include file="inc/head.inc" -->')
    app = make_app("/", physical_path=str(site))
    ctx = make_ctx(app, path="/h.shtml", method="HEAD")
    Pipeline(app).run_sync(ctx)
    status, _sub, _headers, body, _kind, length = ctx.channel.response()
    assert (status, body, length) == (200, b"", len("a<head>H</head>"))
