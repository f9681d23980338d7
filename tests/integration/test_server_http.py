"""HTTP/1.1 on the wire through the front: HEAD, keep-alive, pipelining, chunked bodies,
100-continue, malformed requests, header limits, and the W3C access log."""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import socket
import uuid

import pytest
import requests

SITE_ID = 3

CONFIG = """
{pool_timing}
[[pools]]
name = "Web"
threads = 4

[[sites]]
name = "HTTP Site"
id = 3
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "Web"
app = "flask_app:app"
python_path = ["{apps}"]
"""


@pytest.fixture(scope="module")
def server(wasp_module_server):
    server = wasp_module_server(CONFIG)
    r = requests.get(server.url + "/", timeout=30)
    assert r.status_code == 200, server.diagnostics()
    return server


def test_head_has_length_and_no_body(server):
    with server.connect() as conn:
        head = conn.request("HEAD", "/")
        assert head.status == 200, head.raw_head
        assert head.header("content-length") == str(len("Hello from Flask"))
        # Had the front written a body for HEAD, it would be read here as the next response.
        after = conn.request("GET", "/echo?after=head")
        assert after.status == 200 and after.body == b"|/echo|after=head", after.raw_head


def test_keep_alive_serves_several_requests_on_one_socket(server):
    with server.connect() as conn:
        for i in range(5):
            r = conn.request("GET", f"/echo?n={i}")
            assert r.status == 200 and r.body == f"|/echo|n={i}".encode()
            assert (r.header("connection") or "").lower() != "close"
            assert r.header("date") and r.header("server")


def test_pipelined_requests_are_answered_in_order(server):
    with server.connect() as conn:
        conn.send(b"".join(server.build_request("GET", f"/echo?p={i}") for i in range(3)))
        bodies = [conn.read_response().body for _ in range(3)]
    assert bodies == [b"|/echo|p=0", b"|/echo|p=1", b"|/echo|p=2"]


def test_pipelined_slow_first_request_still_in_order(server):
    with server.connect() as conn:
        conn.send(server.build_request("GET", "/slow?s=0.5") + server.build_request("GET", "/echo?p=after"))
        first, second = conn.read_response(), conn.read_response()
    assert first.body.startswith(b"slept 0.5")
    assert second.body == b"|/echo|p=after"


def chunked(parts: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


@pytest.mark.parametrize("path", ["/upload-raw", "/upload"])
def test_chunked_request_body(server, path):
    parts = [b"a" * 1, b"b" * 1000, b"c" * 65536, b"d" * 100_000, b"e" * 7]
    body = b"".join(parts)
    with server.connect() as conn:
        conn.send(server.build_request("POST", path, {"Transfer-Encoding": "chunked"}) + chunked(parts))
        r = conn.read_response()
    assert r.status == 200, (r.status, r.body[:300])
    result = json.loads(r.body)
    assert result["bytes"] == len(body), (path, result)
    assert result["sha256"] == hashlib.sha256(body).hexdigest()


def test_expect_100_continue(server):
    body = b"hello world"
    with server.connect(timeout=15) as conn:
        conn.send(server.build_request("POST", "/upload-raw", {
            "Content-Length": str(len(body)), "Expect": "100-continue"}))
        try:
            interim = conn.read_response()
        except socket.timeout:
            pytest.fail("no '100 Continue' before the body was sent")
        assert interim.status == 100, interim.raw_head
        conn.send(body)
        final = conn.read_response()
    assert final.status == 200, final.raw_head
    assert b'"bytes":11' in final.body.replace(b" ", b"")


@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
], ids=["garbage", "header-without-colon", "bad-content-length", "control-char-in-url"])
def test_malformed_request_gets_400_and_a_clean_close(server, raw):
    with server.connect() as conn:
        conn.send(raw)
        r = conn.read_response()
        assert r.status == 400, (r.status, r.raw_head)
        try:
            rest = conn.read_until_close()
        except ConnectionResetError:
            pytest.fail("connection reset instead of closed after the 400")
        except socket.timeout:
            pytest.fail("connection left open after a 400 for a malformed request")
    assert rest == b""
    assert server.proc.poll() is None
    assert requests.get(server.url + "/", timeout=30).status_code == 200


def test_20k_header_is_431(server):
    with server.connect() as conn:
        r = conn.request("GET", "/", {"X-Big": "a" * 20 * 1024})
    assert r.status == 431, (r.status, r.raw_head)


def test_access_log_has_fields_header_and_a_line_per_request(server):
    tag = uuid.uuid4().hex[:12]
    count = 7
    agent = "wasp test/1.0 (spaces inside)"
    for i in range(count):
        r = requests.get(server.url + f"/echo?tag={tag}-{i}", headers={"User-Agent": agent}, timeout=30)
        assert r.status_code == 200
    folder = server.logs / f"W3SVC{SITE_ID}"
    now = datetime.datetime.now(datetime.timezone.utc)
    names = {f"u_ex{(now - datetime.timedelta(minutes=m)).strftime('%y%m%d')}.log" for m in (0, 5)}

    def logged():
        files = [folder / n for n in names if (folder / n).is_file()]
        text = "".join(f.read_text(errors="replace") for f in files)
        return sum(f"tag={tag}-" in line for line in text.splitlines()) >= count and text

    def listing():
        return sorted(str(p.relative_to(server.logs)) for p in server.logs.rglob("*")) if server.logs.is_dir() else []

    text = server.wait_until(logged, 15, what=lambda: f"{count} lines in {folder}/{sorted(names)}; logs has {listing()}")
    lines = text.splitlines()
    fields_lines = [line for line in lines if line.startswith("#Fields:")]
    assert fields_lines, "no #Fields header"
    assert fields_lines[0] == ("#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username "
                               "c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken")
    assert any(line == "#Version: 1.0" for line in lines), lines[:4]
    assert any(re.fullmatch(r"#Date: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", line) for line in lines), lines[:4]
    assert any(line.startswith("#Software: ") for line in lines), lines[:4]
    fields = fields_lines[-1].split()[1:]
    data = [line for line in lines if not line.startswith("#")]
    bad = [line for line in data if len(line.split(" ")) != len(fields)]
    assert not bad, f"lines without exactly {len(fields)} space-separated fields: {bad[:3]}"
    rows = [dict(zip(fields, line.split(" "))) for line in data]
    mine = sorted((r for r in rows if r.get("cs-uri-query", "").startswith(f"tag={tag}-")),
                  key=lambda r: r["cs-uri-query"])
    assert [r["cs-uri-query"] for r in mine] == [f"tag={tag}-{i}" for i in range(count)]
    for row in mine:
        assert row["cs-method"] == "GET" and row["cs-uri-stem"] == "/echo" and row["sc-status"] == "200", row
        assert row["s-port"] == str(server.port) and row["c-ip"] == "127.0.0.1", row
        assert row["cs(User-Agent)"] == "wasp+test/1.0+(spaces+inside)", row
        assert (row["sc-substatus"], row["sc-win32-status"], row["cs-username"], row["cs(Referer)"]) == ("0", "0", "-", "-"), row
        assert row["time-taken"].isdigit(), row
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", row["date"]) and re.fullmatch(r"\d\d:\d\d:\d\d", row["time"]), row
