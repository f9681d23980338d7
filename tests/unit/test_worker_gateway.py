"""CGI/FastCGI pieces of the worker without processes: the handler mapping with allow_path_info,
the script lookup (the cgi.fix_pathinfo hole), the meta-variables (httpoxy), the restriction
list and the FastCGI process pool's queue and rapid-fail bookkeeping."""

from __future__ import annotations

import asyncio
import types

import pytest

from wasp.config.sections.cgi import CgiRestriction, RestrictionEntry
from wasp.config.sections.fast_cgi import FastCgiApplication
from wasp.errors import NotFound
from wasp.worker import gateway
from wasp.worker.fastcgi_pool import ProcessPool, QueueFull, RapidFails, is_address
from wasp.worker.handlers import compile_path, script_split
from wasp.worker.modules.cgi import allowed, command_for


def test_script_split_finds_the_first_segment_the_pattern_names():
    match = compile_path("*.php")
    assert script_split(b"/index.php/users/42", match) == len(b"/index.php")
    assert script_split(b"/a/b.php/c.php/d", match) == len(b"/a/b.php")
    assert script_split(b"/nothing/here", match) is None


def ctx_for(path: bytes, script=None, headers=(), query=b"", content_length=-1):
    values = dict(method="GET", path=path, target=path + (b"?" + query if query else b""), query=query,
                  version="1.1", scheme="http", headers=list(headers), client=("127.0.0.1", 5555),
                  server=("127.0.0.1", 8080), content_length=content_length, tls=None)
    head = types.SimpleNamespace(**values)  # the RequestHead fields gateway reads
    app = types.SimpleNamespace(prefix_len=0)
    return types.SimpleNamespace(head=head, app=app, script=script, user=None, auth_type="",
                                 located=False, file_path=None, is_dir=False)


def test_find_script_refuses_a_path_through_a_file(tmp_path):
    (tmp_path / "upload.jpg").write_text("<?php evil();")
    (tmp_path / "index.php").write_text("<?php")
    root = str(tmp_path)
    with pytest.raises(NotFound):
        gateway.find_script(ctx_for(b"/upload.jpg/x.php"), root)
    with pytest.raises(NotFound):
        gateway.find_script(ctx_for(b"/missing.php"), root)
    with pytest.raises(NotFound) as info:
        gateway.find_script(ctx_for(b"/../etc/passwd.php"), root)
    assert info.value.substatus == 5
    script = gateway.find_script(ctx_for(b"/index.php/a/b", script=b"/index.php"), root)
    assert script.path == str(tmp_path / "index.php") and script.path_info == b"/a/b"


def test_environ_drops_proxy_and_underscore_headers(tmp_path):
    (tmp_path / "e.php").write_text("")
    ctx = ctx_for(b"/e.php", headers=[(b"Proxy", b"http://evil"), (b"X_Real", b"1"), (b"X-Ok", b"2"),
                                      (b"Cookie", b"a=1"), (b"Cookie", b"b=2"), (b"Content-Type", b"text/x"),
                                      (b"Host", b"example.test:81")], query=b"q=1", content_length=3)
    env = gateway.environ(ctx, gateway.find_script(ctx, str(tmp_path)))
    assert "HTTP_PROXY" not in env and "HTTP_X_REAL" not in env and env["HTTP_X_OK"] == "2"
    assert env["HTTP_COOKIE"] == "a=1; b=2" and env["CONTENT_TYPE"] == "text/x" and env["CONTENT_LENGTH"] == "3"
    assert env["SERVER_NAME"] == "example.test" and env["SERVER_PORT"] == "8080"
    assert env["REDIRECT_STATUS"] == "200" and env["SCRIPT_FILENAME"] == str(tmp_path / "e.php")


def test_restriction_list():
    section = CgiRestriction(entries=[RestrictionEntry(path="/srv/cgi-bin/"),
                                      RestrictionEntry(path="/srv/cgi-bin/bad.sh", allowed=False),
                                      RestrictionEntry(path="/usr/bin/php-cgi")])
    assert allowed(section, "/srv/cgi-bin/a.sh") and allowed(section, "/usr/bin/php-cgi")
    assert not allowed(section, "/srv/cgi-bin/bad.sh")
    assert not allowed(section, "/srv/cgi-binx/a.sh") and not allowed(section, "/usr/bin/php")
    assert allowed(CgiRestriction(not_listed_cgis_allowed=True), "/anything")


def test_command_for_splits_the_script_processor():
    mapping = types.SimpleNamespace(script_processor="/usr/bin/php-cgi|-d a=1 -d 'b=2 3'")
    assert command_for(mapping, "/w/x.php") == ["/usr/bin/php-cgi", "-d", "a=1", "-d", "b=2 3", "/w/x.php"]
    assert command_for(types.SimpleNamespace(script_processor=""), "/w/x.sh") == ["/w/x.sh"]


def test_addresses():
    assert is_address("unix:/run/php/fpm.sock") and is_address("127.0.0.1:9000") and is_address("[::1]:9000")
    assert not is_address("/usr/bin/php-cgi") and not is_address("/opt/x:9")


def test_queue_length_and_rapid_fails():
    async def main():
        pool = ProcessPool(FastCgiApplication(full_path="/bin/true", max_instances=1, queue_length=1,
                                              rapid_fails_per_minute=2))
        pool.instances.add(object())  # the one instance is busy
        loop = asyncio.get_running_loop()
        waiter = asyncio.ensure_future(pool.acquire(loop.time() + 5))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull) as info:
            await pool.acquire(loop.time() + 5)
        assert (info.value.status, info.value.substatus) == (503, 4)
        waiter.cancel()
        for _ in range(3):
            pool.failed()
        with pytest.raises(RapidFails):
            await pool.acquire(loop.time() + 5)
    asyncio.run(main())
