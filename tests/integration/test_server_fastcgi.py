"""FastCGI with real PHP: php-cgi processes the worker runs (IIS's fastCgi application), and an
external php-fpm by address, through a real server.

One server, one pool, several applications over the same php_apps/ pages:
  /      php-cgi managed, *.php with allow_path_info, index.php the default document
  /fpm   the same pages through the test's own php-fpm (unix socket)
  /rec   php-cgi with instance_max_requests = 3 and one instance (recycling)
  /one   php-cgi with max_instances = 1 and queue_length = 1 (503.4)
  /slow  php-cgi with activity_timeout = 10 s, request_timeout = 12 s
  /ign   php-cgi with stderr_mode = IgnoreAndReturn200
  /term  php-cgi with stderr_mode = TerminateProcess
  /idle  php-cgi with idle_timeout = 10 s
  /fail  a "FastCGI application" that exits at once (/bin/false), rapid_fails_per_minute = 2
  /mon   php-cgi with monitor_changes_to = watched.ini
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import threading
import time

import psutil
import pytest
import requests

from php_support import PHP_CGI, PHP_FPM, copy_pages, start_fpm, stop_fpm

pytestmark = pytest.mark.skipif(not os.path.exists(PHP_CGI) or not PHP_FPM,
                                reason="php-cgi and php-fpm (Debian php-cgi, php-fpm) are needed")


def app(path: str, processor: str, extra: str = "") -> str:
    return f"""
[[sites.applications]]
path = "{path}"
pool = "Php"
physical_path = "www"
default_document = {{ files = ["index.php"] }}
[[sites.applications.handlers]]
name = "PHP_via_FastCGI"
path = "*.php"
verb = "GET,HEAD,POST"
modules = "fast_cgi"
script_processor = "{processor}"
resource_type = "Either"
allow_path_info = true
{extra}
"""


CONFIG = """
{pool_timing}
[http_errors]
error_mode = "Detailed"

[[fast_cgi]]
full_path = "%(cgi)s"

[[fast_cgi]]
full_path = "%(cgi)s"
arguments = "-d wasp.test=rec"
instance_max_requests = 3
max_instances = 1

[[fast_cgi]]
full_path = "%(cgi)s"
arguments = "-d wasp.test=one"
max_instances = 1
queue_length = 1

[[fast_cgi]]
full_path = "%(cgi)s"
arguments = "-d wasp.test=slow"
activity_timeout = "10s"
request_timeout = "12s"

[[fast_cgi]]
full_path = "%(cgi)s"
arguments = "-d wasp.test=ign"
stderr_mode = "IgnoreAndReturn200"

[[fast_cgi]]
full_path = "%(cgi)s"
arguments = "-d wasp.test=term"
stderr_mode = "TerminateProcess"
max_instances = 1

[[fast_cgi]]
full_path = "%(cgi)s"
arguments = "-d wasp.test=idle"
idle_timeout = "10s"
max_instances = 1

[[fast_cgi]]
full_path = "/bin/false"
rapid_fails_per_minute = 2

[[fast_cgi]]
full_path = "%(cgi)s"
arguments = "-d wasp.test=mon"
monitor_changes_to = "{dir}/watched.ini"
max_instances = 1

[[pools]]
name = "Php"

[[sites]]
name = "Php Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
""" + app("/", "%(cgi)s") + app("/fpm", "unix:{dir}/fpm.sock") \
    + app("/rec", "%(cgi)s|-d wasp.test=rec") + app("/one", "%(cgi)s|-d wasp.test=one") \
    + app("/slow", "%(cgi)s|-d wasp.test=slow") + app("/ign", "%(cgi)s|-d wasp.test=ign") \
    + app("/term", "%(cgi)s|-d wasp.test=term") + app("/idle", "%(cgi)s|-d wasp.test=idle") \
    + app("/fail", "/bin/false") + app("/mon", "%(cgi)s|-d wasp.test=mon")


@pytest.fixture(scope="module")
def server(wasp_module_server):
    d = wasp_module_server.dir
    copy_pages(d / "www")
    (d / "watched.ini").write_text("memory_limit = 64M\n")
    fpm = start_fpm(d)
    try:
        yield wasp_module_server(CONFIG % {"cgi": PHP_CGI})
    finally:
        wasp_module_server.stop_all()
        stop_fpm(fpm)


def get(server, path: str, **kw) -> requests.Response:
    return requests.get(server.url + path, timeout=kw.pop("timeout", 30), **kw)


PREFIXES = ["", "/fpm"]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_get_with_query_and_cookies(server, prefix):
    r = get(server, f"{prefix}/echo.php?a=1&b=two&set=v1", cookies={"c": "3"},
            headers={"X-Test": "yes"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    assert r.cookies.get("seen") == "v1"
    data = r.json()
    assert data["get"] == {"a": "1", "b": "two", "set": "v1"}
    assert data["cookie"] == {"c": "3"}
    s = data["server"]
    assert s["REQUEST_METHOD"] == "GET" and s["SCRIPT_NAME"] == f"{prefix}/echo.php"
    assert s["SCRIPT_FILENAME"] == str(server.dir / "www" / "echo.php")
    assert s["QUERY_STRING"] == "a=1&b=two&set=v1"
    assert s["REQUEST_URI"] == f"{prefix}/echo.php?a=1&b=two&set=v1"
    assert s["HTTP_X_TEST"] == "yes" and s["HTTPS"] == "off" and s["REDIRECT_STATUS"] == "200"
    assert s["SERVER_PORT"] == str(server.port) and s["GATEWAY_INTERFACE"] == "CGI/1.1"


@pytest.mark.parametrize("prefix", PREFIXES)
def test_post_form_and_raw_body(server, prefix):
    r = requests.post(server.url + f"{prefix}/echo.php", data={"name": "wasp", "n": "5"}, timeout=30)
    assert r.status_code == 200 and r.json()["post"] == {"name": "wasp", "n": "5"}
    blob = os.urandom(300_000)
    r = requests.post(server.url + f"{prefix}/echo.php", data=blob, timeout=30,
                      headers={"Content-Type": "application/octet-stream"})
    assert r.json()["raw_len"] == len(blob) and r.json()["raw_md5"] == hashlib.md5(blob).hexdigest()
    # chunked (no Content-Length): read whole, then sent with CONTENT_LENGTH
    r = requests.post(server.url + f"{prefix}/echo.php", data=iter([blob[:1000], blob[1000:]]), timeout=30,
                      headers={"Content-Type": "application/octet-stream"})
    assert r.json()["raw_len"] == len(blob) and r.json()["raw_md5"] == hashlib.md5(blob).hexdigest()


@pytest.mark.parametrize("prefix", PREFIXES)
def test_multipart_upload(server, prefix):
    blob = os.urandom(1_500_000)
    r = requests.post(server.url + f"{prefix}/echo.php", timeout=30, data={"title": "t"},
                      files={"doc": ("report.bin", blob, "application/octet-stream")})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["post"] == {"title": "t"}
    assert data["files"]["doc"] == {"name": "report.bin", "size": len(blob), "error": 0,
                                    "md5": hashlib.md5(blob).hexdigest()}


@pytest.mark.parametrize("prefix", PREFIXES)
def test_front_controller_by_path_info(server, prefix):
    r = get(server, f"{prefix}/index.php/users/42")
    assert r.status_code == 200 and r.json() == {"user": 42, "script": f"{prefix}/index.php"}
    assert get(server, f"{prefix}/").text == "home"  # the default document is the script
    r = get(server, f"{prefix}/index.php/nothing")
    assert r.status_code == 404 and r.text == "no route /nothing"
    r = get(server, f"{prefix}/index.php/go", allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "/index.php/users/7"


@pytest.mark.parametrize("prefix", PREFIXES)
def test_big_response_streams(server, prefix):
    r = get(server, f"{prefix}/big.php?n=3000000")
    assert r.status_code == 200 and len(r.content) == 3_000_000
    assert r.content[:20] == b"abcdefghijabcdefghij"


@pytest.mark.parametrize("prefix", PREFIXES)
def test_head_has_no_body(server, prefix):
    r = requests.head(server.url + f"{prefix}/hello.php", timeout=30)
    assert r.status_code == 200 and r.content == b""


@pytest.mark.parametrize("prefix", PREFIXES)
def test_a_missing_script_is_404_and_never_reaches_php(server, prefix):
    assert get(server, f"{prefix}/nope.php").status_code == 404
    # the cgi.fix_pathinfo hole: upload.jpg holds PHP code; /upload.jpg/x.php must not run it
    r = get(server, f"{prefix}/upload.jpg/x.php")
    assert r.status_code == 404 and "UPLOADED CODE RAN" not in r.text
    r = get(server, f"{prefix}/upload.jpg/x.php/more")
    assert r.status_code == 404 and "UPLOADED CODE RAN" not in r.text


def raw(server, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(request)
        out = b""
        while b"\r\n\r\n" not in out:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        return out


def test_nul_and_dot_dot_in_the_script_path(server):
    status = raw(server, b"GET /echo%00.php HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").split(b"\r\n")[0]
    assert status.split()[1] in (b"400", b"404")
    status = raw(server, b"GET /fpm/../../etc/passwd.php HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status.split(b"\r\n")[0].split()[1] in (b"400", b"404")
    assert get(server, "/%2e%2e/%2e%2e/etc/x.php").status_code in (400, 404)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_httpoxy_the_proxy_header_never_becomes_http_proxy(server, prefix):
    r = get(server, f"{prefix}/echo.php", headers={"Proxy": "http://evil.test:3128"})
    data = r.json()
    assert data["server"]["HTTP_PROXY"] is None and data["proxy_env"] is False


def test_instance_max_requests_recycles_the_process(server):
    pids = [get(server, "/rec/pid.php").text for _ in range(7)]
    assert len(set(pids[0:3])) == 1 and len(set(pids[3:6])) == 1
    assert pids[0] != pids[3] != pids[6]
    server.wait_until(lambda: not psutil.pid_exists(int(pids[0])) or
                      psutil.Process(int(pids[0])).status() == psutil.STATUS_ZOMBIE, 10, what="old php-cgi gone")


def test_queue_length_full_is_503_4(server):
    results = {}

    def slow(key):
        results[key] = get(server, "/one/sleep.php?s=3", timeout=30).status_code

    first = threading.Thread(target=slow, args=("first",))
    first.start()
    # the first request holds the one instance: its php-cgi is up (ordering only, nothing timed)
    server.wait_until(lambda: any("wasp.test=one" in " ".join(p.cmdline()) for p in server.children()),
                      20, what="the /one php-cgi")
    time.sleep(0.5)
    second = threading.Thread(target=slow, args=("second",))
    second.start()
    time.sleep(0.5)
    r = get(server, "/one/pid.php")
    first.join(30)
    second.join(30)
    assert r.status_code == 503 and "503.4" in r.text
    assert results == {"first": 200, "second": 200}


def test_activity_and_request_timeouts_are_500(server):
    results = {}

    def call(key, path):
        results[key] = get(server, path, timeout=60)

    threads = [threading.Thread(target=call, args=("activity", "/slow/sleep.php?s=20")),
               threading.Thread(target=call, args=("request", "/slow/sleep.php?s=20&drip=1"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for key in ("activity", "request"):
        assert results[key].status_code == 500, results[key].text
    log = server.stderr_path.read_text(errors="replace")
    assert "exceeded the configured activity_timeout" in log
    assert "exceeded the configured request_timeout" in log
    assert get(server, "/slow/pid.php").status_code == 200  # fresh processes


def test_stderr_modes(server):
    r = get(server, "/stderr.php")  # ReturnStdErrIn500, IIS's default
    assert r.status_code == 500 and "oops from php" in r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    r = get(server, "/ign/stderr.php")
    assert r.status_code == 200 and r.text == "after stderr"
    before = get(server, "/term/pid.php").text
    r = get(server, "/term/stderr.php")
    assert r.status_code == 500
    after = get(server, "/term/pid.php").text
    assert after != before  # TerminateProcess killed the instance


def test_a_php_cgi_killed_mid_request_is_500_and_the_next_request_works(server):
    pidfile = server.dir / "victim.pid"
    result = {}

    def call():
        result["r"] = get(server, f"/sleep.php?s=20&pidfile={pidfile}", timeout=60)

    t = threading.Thread(target=call)
    t.start()
    server.wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 20, what="pid file")
    os.kill(int(pidfile.read_text()), signal.SIGKILL)
    t.join(60)
    assert result["r"].status_code == 500
    assert get(server, "/pid.php").status_code == 200


def test_idle_timeout_stops_the_process(server):
    pid = int(get(server, "/idle/pid.php").text)
    server.wait_until(lambda: not psutil.pid_exists(pid) or
                      psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, 40, what="idle php-cgi stopped")
    assert int(get(server, "/idle/pid.php").text) != pid


def test_rapid_fails_turn_into_503(server):
    statuses = [get(server, "/fail/pid.php").status_code for _ in range(3)]
    assert statuses == [500, 500, 500]
    r = get(server, "/fail/pid.php")
    assert r.status_code == 503
    assert get(server, "/pid.php").status_code == 200  # other applications are not affected


def test_monitor_changes_to_recycles_the_processes(server):
    first = get(server, "/mon/pid.php").text
    assert get(server, "/mon/pid.php").text == first  # the same process while nothing changed
    (server.dir / "watched.ini").write_text("memory_limit = 128M\n")
    # the file is looked at (at most once a second) when a request needs a process
    server.wait_until(lambda: get(server, "/mon/pid.php").text != first, 20, what="a new php-cgi")


def test_php_processes_go_with_the_worker(server, wasp_module_server):
    children = [p for p in server.children() if "php-cgi" in " ".join(p.cmdline())]
    assert children, "php-cgi processes run below the worker"
    for p in children:
        assert os.getpgid(p.pid) == p.pid  # each in its own process group


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_php_cgi_is_recycled_with_the_pool(server):
    pid = int(get(server, "/pid.php").text)
    server.cli("recycle", "pool", "Php")
    server.wait_until(lambda: gone(pid), 30, what="the old worker's php-cgi gone")
    server.wait_until(lambda: get(server, "/pid.php").status_code == 200, 30, what="the new worker")
    assert int(get(server, "/pid.php").text) != pid


def test_php_cgi_dies_with_a_killed_worker(server):
    pid = int(get(server, "/pid.php").text)
    worker = psutil.Process(pid).ppid()
    assert worker in server.worker_pids("Php")
    os.kill(worker, signal.SIGKILL)  # no cleanup runs: PR_SET_PDEATHSIG takes php-cgi with it
    server.wait_until(lambda: gone(pid), 30, what="php-cgi gone with its worker")
    server.wait_until(lambda: get(server, "/pid.php").status_code == 200, 60, what="a new worker")


REWRITE_CONFIG = """
[[pools]]
name = "Php"
[[sites]]
name = "Rewrite Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.rewrite.rules]]
name = "front-controller"
stop_processing = true
match = { url = "^shop/(.*)$" }
conditions = { entries = [
  { input = "{REQUEST_FILENAME}", match_type = "IsFile", negate = true },
  { input = "{REQUEST_FILENAME}", match_type = "IsDirectory", negate = true },
] }
action = { type = "Rewrite", url = "index.php?route={R:1}" }
[[fast_cgi]]
full_path = "%(cgi)s"
""" + app("/", "%(cgi)s")


def _has_rewrite() -> bool:
    from wasp.config import sections
    return "rewrite" in sections.registered()


@pytest.mark.skipif(not _has_rewrite(), reason="URL Rewrite is on the rewrite branch: enabled when it merges")
def test_front_controller_behind_a_rewrite_rule(wasp_server):
    copy_pages(wasp_server.dir / "www")
    server = wasp_server(REWRITE_CONFIG % {"cgi": PHP_CGI})
    r = requests.get(server.url + "/shop/users/9", timeout=30)
    assert r.status_code == 200 and r.json() == {"user": 9, "script": "/index.php"}
    assert requests.get(server.url + "/hello.php", timeout=30).text == "hello"
