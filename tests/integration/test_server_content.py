"""The content modules through the whole server: static_content (MIME map, client cache,
footer), directory_browse (IIS's listing, hostile names, what wins), default_document merged
down the levels, and server-side includes (include, echo, exec off and on, path attacks)."""

from __future__ import annotations

import html
import os
import re

import pytest
import requests

CONFIG = """
{pool_timing}
[[pools]]
name = "Content"

[[sites]]
name = "Content Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "Content"
physical_path = "www"
[sites.applications.static_content]
mime_map = [{ file_extension = ".jxl", mime_type = "image/jxl" }]
[sites.applications.default_document]
files = ["home.html"]
[[sites.applications]]
path = "/foot"
pool = "Content"
physical_path = "foot"
[sites.applications.static_content]
enable_doc_footer = true
is_doc_footer_file_name = true
default_doc_footer = "{dir}/footer.html"
[[sites.applications]]
path = "/exec"
pool = "Content"
physical_path = "exec"
[sites.applications.server_side_include]
ssi_exec_disable = false
ssi_exec_timeout = "1s"

[[locations]]
path = "Content Site/listed"
[locations.directory_browse]
enabled = true

[[locations]]
path = "Content Site/brief"
[locations.directory_browse]
enabled = true
show_flags = ["LongDate", "Time"]

[[locations]]
path = "Content Site/cached"
[locations.static_content.client_cache]
cache_control_mode = "UseMaxAge"
cache_control_max_age = "2h"
cache_control_custom = "public"

[[locations]]
path = "Content Site/nomime"
[locations.static_content]
mime_map = { remove = [".txt"] }
"""

SECRET = "TOP-SECRET-0xC0FFEE"
HOSTILE = ["<script>alert(1)<script>.txt", 'q"uote\'s.txt', "100%.txt", "new\nline.txt",
           "a&b #1?.txt", "sp ace.txt"]


def write(path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)


@pytest.fixture(scope="module")
def server(wasp_module_server):
    d = wasp_module_server.dir
    www = d / "www"
    write(d / "secret.txt", SECRET)
    write(d / "footer.html", "<footer>the footer</footer>")
    write(www / "pic.jxl", b"JXL")
    write(www / "plain.txt", "plain")
    write(www / "data.unknownext", "x")
    write(www / "cached" / "c.txt", "cached")
    write(www / "nomime" / "t.txt", "t")
    write(www / "listed" / "sub" / "x.txt", "x")
    write(www / "listed" / "b.txt", "bb")
    write(www / "listed" / ".dot", "hidden")
    write(www / "listed" / "web.toml", "")
    write(www / "listed" / "bin" / "x.txt", "bin")
    for name in HOSTILE:
        write(www / "listed" / name, f"hostile {name!r}")
    with open(os.path.join(os.fsencode(www / "listed"), b"caf\xe9.txt"), "wb") as f:
        f.write(b"latin-1 name")
    os.symlink(d / "secret.txt", www / "listed" / "link-out.txt")
    write(www / "listed" / "withdoc" / "home.html", "home of withdoc")
    write(www / "listed" / "withdoc" / "other.txt", "o")
    write(www / "brief" / "f.txt", "f")
    write(www / "unlisted" / "f.txt", "f")
    # default_document: the application's home.html before the server's list; web.toml merges.
    write(www / "docs" / "index.html", "docs index")
    write(www / "docs" / "home.html", "docs home")
    write(www / "wt" / "web.toml", '[default_document]\nfiles = { remove = ["home.html"], add = ["start.htm"] }\n')
    write(www / "wt" / "home.html", "wt home")
    write(www / "wt" / "start.htm", "wt start")
    write(www / "wt" / "index.html", "wt index")
    write(www / "wtclear" / "web.toml", '[default_document]\nfiles = { clear = true }\n')
    write(www / "wtclear" / "index.html", "never")
    write(www / "lockfoot" / "web.toml", "[static_content]\nis_doc_footer_file_name = true\n"
                                         f'enable_doc_footer = true\ndefault_doc_footer = "{d}/secret.txt"\n')
    write(www / "lockfoot" / "p.html", "p")
    write(www / "lockexec" / "web.toml", "[server_side_include]\nssi_exec_disable = false\n")
    write(www / "lockexec" / "p.shtml", '<!--#exec cmd="echo owned" -->')
    # server-side includes
    write(www / "inc" / "head.inc", "<b>head</b>")
    write(www / "inc" / "loop.inc", 'L<!--#include file="loop.inc" -->')
    os.symlink(d / "secret.txt", www / "inc" / "out.inc")
    write(www / "ssi.shtml", 'A<!--#include virtual="/inc/head.inc" -->'
                             '<!--#include file="inc/head.inc" -->'
                             '|<!--#echo var="QUERY_STRING_UNESCAPED" -->'
                             '|<!--#echo var="HTTP_USER_AGENT" -->'
                             '|<!--#config sizefmt="bytes" --><!--#fsize file="plain.txt" -->'
                             '|<!--#exec cmd="echo should-not-run" -->Z')
    write(www / "attack.stm", "".join(f"[<!--#include {a} -->]" for a in (
        'file="../secret.txt"', 'file="/etc/passwd"', 'file="inc/out.inc"',
        'virtual="/../secret.txt"', 'virtual="/inc/%2e%2e/%2e%2e/secret.txt"',
        'virtual="/listed/web.toml"', 'file="inc/loop.inc"')))
    write(www / "page.shtm", "shtm page")
    write(d / "exec" / "run.shtml", 'cmd:<!--#exec cmd="printf %s $REMOTE_ADDR" -->'
                                    '|cgi:<!--#exec cgi="/exec/hello.cgi" -->'
                                    '|slow:<!--#exec cmd="sleep 20" -->|end')
    write(d / "exec" / "hello.cgi", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nhello %s' \"$QUERY_STRING\"\n")
    os.chmod(d / "exec" / "hello.cgi", 0o755)
    write(d / "foot" / "page.html", "<p>page</p>")
    write(d / "foot" / "pic.png", b"\x89PNG")
    return wasp_module_server(CONFIG)


def get(server, path: str, **headers) -> requests.Response:
    return requests.get(server.url + path, headers=headers, timeout=30, allow_redirects=False)


# ---- static_content ----

def test_mime_map_entry_added_in_wasp_toml_and_unknown_is_404_3(server):
    r = get(server, "/pic.jxl")
    assert (r.status_code, r.headers["Content-Type"], r.content) == (200, "image/jxl", b"JXL"), server.diagnostics()
    r = get(server, "/data.unknownext")
    assert r.status_code == 404 and "404.3" in r.text


def test_a_location_removes_a_mime_entry(server):
    assert get(server, "/plain.txt").status_code == 200
    r = get(server, "/nomime/t.txt")
    assert r.status_code == 404 and "404.3" in r.text


def test_client_cache_of_a_location(server):
    r = get(server, "/cached/c.txt")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "max-age=7200, public"
    assert "Cache-Control" not in get(server, "/plain.txt").headers  # NoControl elsewhere
    again = get(server, "/cached/c.txt", **{"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304 and again.headers["Cache-Control"] == "max-age=7200, public"


def test_footer_file_on_html_only(server):
    r = get(server, "/foot/page.html")
    assert r.text == "<p>page</p><footer>the footer</footer>"
    assert int(r.headers["Content-Length"]) == len(r.content)
    assert get(server, "/foot/pic.png").content == b"\x89PNG"


def test_web_toml_cannot_set_the_locked_footer_attribute(server):
    r = get(server, "/lockfoot/p.html")
    assert r.status_code == 500 and "500.19" in r.text and SECRET not in r.text
    assert "is_doc_footer_file_name" in r.text


# ---- directory_browse ----

def test_listing_is_off_by_default(server):
    r = get(server, "/unlisted/")
    assert r.status_code == 403 and "403.14" in r.text


def test_iis_listing_look(server):
    r = get(server, "/listed/")
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/html; charset=utf-8"
    text = r.text
    assert text.startswith("<html><head><title>127.0.0.1 - /listed/</title></head><body>"
                           "<H1>127.0.0.1 - /listed/</H1><hr>\r\n\r\n<pre><A HREF=\"/\">"
                           "[To Parent Directory]</A><br><br>")
    assert text.endswith("</pre><hr></body></html>")
    assert re.search(r'(?:\d|\s)\d/\d{1,2}/\d{4} [ 1]\d:\d\d [AP]M +2 <A HREF="/listed/b.txt">b.txt</A><br>',
                     text), text
    assert re.search(r'[AP]M        &lt;dir&gt; <A HREF="/listed/sub/">sub</A><br>', text)


def test_listing_leaves_out_hidden_and_escaping_entries(server):
    text = get(server, "/listed/").text
    for name in (".dot", "web.toml", ">bin<", "link-out.txt"):
        assert name not in text


def test_hostile_names_are_text_and_their_links_work(server):
    text = get(server, "/listed/").text
    assert "<script>" not in text and "&lt;script&gt;" in text
    hrefs = re.findall(r'<A HREF="([^"]*)">', text)
    for name in HOSTILE + ["caf\udce9.txt"]:
        shown = html.escape(name.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
        assert f">{shown}</A>" in text, name
    fetched = 0
    for href in hrefs:
        target = html.unescape(href)
        if not target.startswith("/listed/") or target.endswith("/"):
            continue
        r = requests.get(server.url + target, timeout=30)
        if "new%0Aline" in target and r.status_code == 400:
            continue  # the front refuses a control character in a path: not served, no harm
        assert r.status_code == 200, (target, r.status_code, r.text[:200])
        assert r.text != SECRET
        fetched += 1
    assert fetched >= len(HOSTILE)


def test_show_flags_long_date_and_time(server):
    text = get(server, "/brief/").text
    assert re.search(r'<br><br>(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), '
                     r'[A-Z][a-z]+ \d\d, \d{4} [ 1]\d:\d\d [AP]M <A HREF="/brief/f.txt">f</A><br>', text), text  # no Extension flag


def test_default_document_wins_over_the_listing_and_redirect(server):
    r = get(server, "/listed/withdoc/")
    assert (r.status_code, r.text) == (200, "home of withdoc")
    r = get(server, "/listed")
    assert r.status_code == 301 and r.headers["Location"].endswith("/listed/")


def test_request_filtering_still_applies_below_a_listed_folder(server):
    assert get(server, "/listed/bin/x.txt").status_code == 404
    assert get(server, "/listed/web.toml").status_code == 404


# ---- default_document merged down the levels ----

@pytest.mark.parametrize("path, body", [
    ("/docs/", "docs home"),        # the application's home.html before the server's index.html
    ("/wt/", "wt start"),           # the web.toml removed home.html and put start.htm first
])
def test_default_document_files_merge(server, path, body):
    r = get(server, path)
    assert (r.status_code, r.text) == (200, body), (r.status_code, r.text[:300])


def test_default_document_cleared_by_web_toml(server):
    r = get(server, "/wtclear/")
    assert r.status_code == 403 and "403.14" in r.text


# ---- server-side includes ----

def test_ssi_includes_echo_fsize_and_exec_off(server):
    r = get(server, "/ssi.shtml?x=%3Cb%3E", **{"User-Agent": "<ua>"})
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/html"
    assert r.text == ("A<b>head</b><b>head</b>|x=&lt;b&gt;|&lt;ua&gt;|5"
                      "|[an error occurred while processing this directive]Z")
    assert get(server, "/page.shtm").text == "shtm page"


def test_ssi_include_attacks(server):
    r = get(server, "/attack.stm")
    assert r.status_code == 200 and SECRET not in r.text and "root:" not in r.text
    err = "[an error occurred while processing this directive]"
    assert r.text == f"[{err}]" * 6 + f"[L{err}]", r.text  # the loop stops after one level


def test_ssi_exec_runs_when_enabled_with_its_timeout(server):
    r = get(server, "/exec/run.shtml?q=1")
    assert r.status_code == 200
    assert r.text == ("cmd:127.0.0.1|cgi:hello q=1|slow:[an error occurred while processing this "
                      "directive]|end")


def test_web_toml_cannot_enable_exec(server):
    r = get(server, "/lockexec/p.shtml")
    assert r.status_code == 500 and "500.19" in r.text and "owned" not in r.text


def test_ssi_answers_post_and_head(server):
    r = requests.post(server.url + "/page.shtm", data=b"x" * 5000, timeout=30)
    assert (r.status_code, r.text) == (200, "shtm page")
    r = requests.head(server.url + "/ssi.shtml", timeout=30)
    assert r.status_code == 200 and int(r.headers["Content-Length"]) > 0 and r.content == b""
    assert get(server, "/page.shtm").text == "shtm page"  # the connection pool still works


def test_validate_names_the_locked_web_toml_keys(server, wasp_module_server):
    result = wasp_module_server.run_wasp("validate", "-c", str(server.config))
    out = result.stdout
    assert result.returncode == 2, out
    assert "www/lockfoot/web.toml:2: This configuration section cannot be used at this path." in out
    assert "static_content.is_doc_footer_file_name" in out
    assert "www/lockexec/web.toml:1:" in out


def test_a_bad_mime_type_in_wasp_toml_names_its_key(server, wasp_module_server, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[static_content]\nmime_map = [{ file_extension = ".x", mime_type = "text/html\\r\\nX: y" }]\n'
                   '[static_content.client_cache]\nhttp_expires = "soon"\n')
    result = wasp_module_server.run_wasp("validate", "-c", str(bad))
    assert result.returncode == 2
    assert "static_content.mime_map[0].mime_type" in result.stdout, result.stdout
    assert "static_content.client_cache.http_expires" in result.stdout
