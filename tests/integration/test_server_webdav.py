"""WebDAV (IIS WebDAVModule) through a real server: Debian's litmus suites (basic, copymove,
props, locks), each verb with requests, authoring rules per user, role and path with Basic
against an htpasswd file, locks shared by the two workers of a web garden and kept across a
recycle, and attacks: anonymous writes, web.toml, `..` and encoded paths, symlinks out,
Destination on another host or outside the application, XXE and billion laughs, size limits."""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid

import pytest
import requests
from requests.auth import HTTPBasicAuth

CONFIG = """
{pool_timing}
[http_errors]
error_mode = "Detailed"
[basic_authentication]
max_failed_logons = 0

[[pools]]
name = "Dav"

[[pools]]
name = "Garden"
max_processes = 2
start_mode = "always_running"

[[sites]]
name = "Dav Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]

[[sites.applications]]
path = "/"
pool = "Dav"
physical_path = "www"

[[sites.applications]]
path = "/dav"
pool = "Dav"
physical_path = "davroot"
[sites.applications.web_dav_authoring]
enabled = true
[sites.applications.web_dav_authoring.locks]
enabled = true
[sites.applications.basic_authentication]
enabled = true
user_file = "{dir}/users.htpasswd"
group_file = "{dir}/groups"
[sites.applications.web_dav_authoring_rules]
rules = [ { users = "litmus", path = "*", access = ["Read", "Write", "Source"] },
          { users = "alice", path = "*", access = ["Read"] },
          { users = "alice", path = "/docs/*", access = ["Read", "Write"] },
          { users = "bob", path = "*", access = ["Read"] },
          { roles = "editors", path = "*.txt", access = ["Read", "Write"] } ]

[[sites.applications]]
path = "/small"
pool = "Dav"
physical_path = "small"
[sites.applications.web_dav_authoring]
enabled = true
max_allowed_xml_request_length = "4KB"
[sites.applications.request_filtering.request_limits]
max_allowed_content_length = 1000
[sites.applications.basic_authentication]
enabled = true
user_file = "{dir}/users.htpasswd"
[sites.applications.web_dav_authoring_rules]
rules = [ { users = "litmus", path = "*", access = ["Read", "Write"] } ]

[[sites.applications]]
path = "/garden"
pool = "Garden"
physical_path = "garden"
[sites.applications.web_dav_authoring]
enabled = true
[sites.applications.web_dav_authoring.locks]
enabled = true
[sites.applications.basic_authentication]
enabled = true
user_file = "{dir}/users.htpasswd"
[sites.applications.web_dav_authoring_rules]
rules = [ { users = "litmus, alice", path = "*", access = ["Read", "Write"] } ]
"""

PASSWORDS = {"litmus": "pass", "alice": "alice pw", "bob": "bob pw", "carol": "carol pw"}


@pytest.fixture(scope="module")
def server(wasp_module_server):
    d = wasp_module_server.dir
    users = d / "users.htpasswd"
    users.touch()
    for user, password in PASSWORDS.items():
        subprocess.run(["htpasswd", "-b", "-B", str(users), user, password], check=True,
                       capture_output=True)
    (d / "groups").write_text("editors: carol\n")
    for folder in ("www", "davroot/docs", "small", "garden", "outside"):
        (d / folder).mkdir(parents=True, exist_ok=True)
    (d / "www" / "index.html").write_text("root page")
    (d / "outside" / "secret.txt").write_text("outside the content")
    (d / "davroot" / "web.toml").write_text("# the folder's config\n")
    (d / "davroot" / "readme.txt").write_text("hello")
    os.symlink(d / "outside", d / "davroot" / "out")
    os.symlink(d / "outside" / "secret.txt", d / "davroot" / "outfile.txt")
    server = wasp_module_server(CONFIG)
    server.wait_until = wasp_module_server.wait_until
    return server


def dav(server, method, path, user="litmus", body=None, headers=None):
    auth = HTTPBasicAuth(user, PASSWORDS[user]) if user else None
    return requests.request(method, server.url + path, data=body, headers=headers or {}, auth=auth,
                            timeout=30, allow_redirects=False)


def substatus(r):
    m = re.search(r"HTTP Error (\d+)\.(\d+)", r.text)
    return (r.status_code, int(m.group(2)) if m else None)


PROPFIND_ALL = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'


def proppatch(ns, name, value):
    return (f'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="{ns}"><D:set><D:prop>'
            f'<Z:{name}>{value}</Z:{name}></D:prop></D:set></D:propertyupdate>').encode()


LOCKINFO = (b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
            b'</D:lockscope><D:locktype><D:write/></D:locktype><D:owner>tester</D:owner></D:lockinfo>')


# ---- litmus ----

def test_litmus_basic_copymove_props_locks_pass(server):
    env = dict(os.environ, TESTS="basic copymove props locks")
    result = subprocess.run(["litmus", f"{server.url}/dav/", "litmus", PASSWORDS["litmus"]],
                            capture_output=True, text=True, timeout=300, env=env, cwd=server.dir)
    out = result.stdout + result.stderr
    summaries = [line for line in out.splitlines() if "summary for" in line]
    warnings = [line for line in out.splitlines() if "WARNING" in line or "warning" in line]
    print("\n".join(summaries + warnings))
    assert len(summaries) == 4, out[-3000:]
    for line in summaries:
        assert " 0 failed" in line, out[-6000:]
    assert result.returncode == 0, out[-3000:]


# ---- the verbs ----

def test_options_advertises_dav_class_2(server):
    r = dav(server, "OPTIONS", "/dav/", user=None)
    assert r.status_code == 200
    assert r.headers["DAV"] == "1, 2"
    assert "PROPFIND" in r.headers["Allow"] and "LOCK" in r.headers["Allow"]


def test_put_get_propfind_proppatch_copy_move_delete(server):
    base = f"/dav/docs/t-{uuid.uuid4().hex[:8]}"
    assert dav(server, "MKCOL", base).status_code == 201
    assert dav(server, "MKCOL", base).status_code == 405
    assert dav(server, "PUT", base + "/a.txt", body=b"first").status_code == 201
    assert dav(server, "PUT", base + "/a.txt", body=b"second").status_code == 204
    r = dav(server, "GET", base + "/a.txt")
    assert (r.status_code, r.content) == (200, b"second")
    # dead property, then PROPFIND Depth 1 shows it and the live ones
    r = dav(server, "PROPPATCH", base + "/a.txt", body=proppatch("urn:t", "colour", "blue"))
    assert r.status_code == 207 and "200 OK" in r.text, r.text
    r = dav(server, "PROPFIND", base + "/", body=PROPFIND_ALL, headers={"Depth": "1"})
    assert r.status_code == 207, r.text
    assert r.text.count("<D:response>") == 2
    assert "<D:getcontentlength>6</D:getcontentlength>" in r.text
    assert "<D:collection/>" in r.text and ">blue<" in r.text and "getetag" in r.text
    # COPY and MOVE carry the dead property
    dest = f"{server.url}{base}/b.txt"
    assert dav(server, "COPY", base + "/a.txt", headers={"Destination": dest}).status_code == 201
    assert dav(server, "COPY", base + "/a.txt", headers={"Destination": dest, "Overwrite": "F"}).status_code == 412
    assert dav(server, "COPY", base + "/a.txt", headers={"Destination": dest}).status_code == 204
    assert dav(server, "MOVE", base + "/b.txt", headers={"Destination": f"{server.url}{base}/c.txt"}).status_code == 201
    assert dav(server, "GET", base + "/b.txt").status_code == 404
    r = dav(server, "PROPFIND", base + "/c.txt", headers={"Depth": "0"},
            body=b'<D:propfind xmlns:D="DAV:"><D:prop><Z:colour xmlns:Z="urn:t"/></D:prop></D:propfind>')
    assert r.status_code == 207 and ">blue<" in r.text, r.text
    # DELETE drops the properties with the file: a new file there starts without them
    assert dav(server, "DELETE", base + "/c.txt").status_code == 204
    assert dav(server, "PUT", base + "/c.txt", body=b"new").status_code == 201
    r = dav(server, "PROPFIND", base + "/c.txt", headers={"Depth": "0"}, body=PROPFIND_ALL)
    assert "blue" not in r.text
    assert dav(server, "DELETE", base + "/").status_code == 204
    assert dav(server, "PROPFIND", base + "/", headers={"Depth": "0"}).status_code == 404


def test_put_into_a_missing_collection_is_409_and_mkcol_with_a_body_415(server):
    assert dav(server, "PUT", "/dav/docs/nowhere/x.txt", body=b"x").status_code == 409
    assert dav(server, "MKCOL", "/dav/docs/withbody", body=b"<x/>").status_code == 415


def test_propfind_depth_infinity_is_refused_as_iis_does(server):
    r = dav(server, "PROPFIND", "/dav/", headers={"Depth": "infinity"})
    assert r.status_code == 403 and "propfind-finite-depth" in r.text
    r = dav(server, "PROPFIND", "/dav/")  # no Depth header means infinity
    assert r.status_code == 403


def test_dav_is_off_where_authoring_is_not_enabled(server):
    assert dav(server, "PROPFIND", "/", user=None).status_code == 405
    assert dav(server, "PUT", "/new.txt", user=None, body=b"x").status_code in (404, 405)
    assert not (server.dir / "www" / "new.txt").exists()
    assert dav(server, "GET", "/index.html", user=None).text == "root page"


# ---- authoring rules ----

def test_anonymous_writes_and_propfind_are_refused_with_a_challenge(server):
    r = dav(server, "PUT", "/dav/anon.txt", user=None, body=b"x")
    assert substatus(r) == (401, 2) and "Basic" in r.headers.get("WWW-Authenticate", "")
    assert not (server.dir / "davroot" / "anon.txt").exists()
    assert dav(server, "PROPFIND", "/dav/", user=None, headers={"Depth": "0"}).status_code == 401
    assert dav(server, "DELETE", "/dav/readme.txt", user=None).status_code == 401
    assert (server.dir / "davroot" / "readme.txt").exists()


def test_authoring_rules_by_user_role_and_path(server):
    # bob may only read
    assert dav(server, "PROPFIND", "/dav/", user="bob", headers={"Depth": "0"}).status_code == 207
    assert substatus(dav(server, "PUT", "/dav/bob.txt", user="bob", body=b"x")) == (403, 3)
    # alice writes below /docs only
    assert dav(server, "PUT", "/dav/docs/alice.txt", user="alice", body=b"x").status_code == 201
    assert substatus(dav(server, "PUT", "/dav/alice.txt", user="alice", body=b"x")) == (403, 3)
    assert dav(server, "DELETE", "/dav/docs/alice.txt", user="alice").status_code == 204
    # carol's role "editors" writes *.txt anywhere, nothing else (and reads only those)
    assert dav(server, "PUT", "/dav/carol.txt", user="carol", body=b"x").status_code == 201
    assert substatus(dav(server, "PUT", "/dav/carol.bin", user="carol", body=b"x")) == (403, 3)
    assert dav(server, "DELETE", "/dav/carol.txt", user="carol").status_code == 204
    # COPY needs Write on the destination: bob cannot copy what he reads
    r = dav(server, "COPY", "/dav/readme.txt", user="bob",
            headers={"Destination": f"{server.url}/dav/docs/bob.txt"})
    assert substatus(r) == (403, 3)


# ---- attacks ----

def test_web_toml_can_never_be_read_or_written_through_dav(server):
    assert dav(server, "PUT", "/dav/web.toml", body=b"[x]").status_code == 404
    assert dav(server, "PUT", "/dav/WEB.TOML", body=b"[x]").status_code == 404
    assert dav(server, "PROPFIND", "/dav/web.toml", headers={"Depth": "0"}).status_code == 404
    assert dav(server, "DELETE", "/dav/web.toml").status_code == 404
    r = dav(server, "COPY", "/dav/readme.txt", headers={"Destination": f"{server.url}/dav/web.toml"})
    assert r.status_code == 403
    r = dav(server, "MOVE", "/dav/readme.txt", headers={"Destination": f"{server.url}/dav/docs/../web.toml"})
    assert r.status_code == 403
    r = dav(server, "PROPFIND", "/dav/", headers={"Depth": "1"})
    assert "web.toml" not in r.text and "readme.txt" in r.text
    # request filtering's denied extensions hold for a Destination too (and for the URL)
    assert dav(server, "PUT", "/dav/docs/x.config", body=b"x").status_code == 404
    r = dav(server, "COPY", "/dav/readme.txt", headers={"Destination": f"{server.url}/dav/docs/x.config"})
    assert r.status_code == 403
    assert not (server.dir / "davroot" / "docs" / "x.config").exists()
    assert (server.dir / "davroot" / "web.toml").read_text() == "# the folder's config\n"


def test_dot_dot_and_encoded_paths_stay_inside(server):
    for path in ("/dav/..%2f..%2foutside%2fx.txt", "/dav/%2e%2e/%2e%2e/outside/x.txt",
                 "/dav/docs/..%5c..%5cx.txt", "/dav/docs/%00x.txt"):
        r = dav(server, "PUT", path, body=b"escape")
        assert r.status_code >= 400, (path, r.status_code)
    assert not (server.dir / "outside" / "x.txt").exists()
    assert not (server.dir / "x.txt").exists()
    assert sorted(p.name for p in (server.dir / "outside").iterdir()) == ["secret.txt"]


def test_symlinks_out_are_never_followed(server):
    assert dav(server, "PROPFIND", "/dav/out/", headers={"Depth": "1"}).status_code == 403
    assert dav(server, "PUT", "/dav/out/x.txt", body=b"x").status_code == 403
    assert dav(server, "PROPFIND", "/dav/outfile.txt", headers={"Depth": "0"}).status_code == 403
    r = dav(server, "COPY", "/dav/outfile.txt", headers={"Destination": f"{server.url}/dav/docs/leak.txt"})
    assert r.status_code == 403
    assert dav(server, "DELETE", "/dav/out").status_code == 403
    r = dav(server, "PROPFIND", "/dav/", headers={"Depth": "1"})
    assert "/dav/out" not in r.text
    assert (server.dir / "outside" / "secret.txt").read_text() == "outside the content"


def test_destination_on_another_host_or_application_is_502(server):
    for dest in ("http://evil.example/dav/x.txt", f"http://evil.example:{server.port}/dav/x.txt",
                 f"{server.url}/x.txt", f"{server.url}/small/x.txt", "ftp://127.0.0.1/dav/x.txt"):
        r = dav(server, "COPY", "/dav/readme.txt", headers={"Destination": dest})
        assert r.status_code == 502, (dest, r.status_code)
    assert not (server.dir / "www" / "x.txt").exists()
    assert dav(server, "COPY", "/dav/readme.txt").status_code == 400  # no Destination
    r = dav(server, "COPY", "/dav/readme.txt", headers={"Destination": "/dav/%2e%2e/x.txt"})
    assert r.status_code in (403, 502)
    assert not (server.dir / "x.txt").exists()


def test_xxe_and_billion_laughs_are_refused(server):
    xxe = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b'<D:propfind xmlns:D="DAV:"><D:prop><D:x>&x;</D:x></D:prop></D:propfind>')
    r = dav(server, "PROPFIND", "/dav/readme.txt", body=xxe, headers={"Depth": "0"})
    assert r.status_code == 400 and "root:" not in r.text
    laughs = b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "lol">' + b"".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode() for i in range(9)) + \
        b']><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><Z:p xmlns:Z="urn:z">&j;</Z:p></D:prop>' \
        b'</D:set></D:propertyupdate>'
    r = dav(server, "PROPPATCH", "/dav/readme.txt", body=laughs)
    assert r.status_code == 400
    r = dav(server, "PROPFIND", "/dav/readme.txt", body=b"<D:propfind xmlns:D='DAV:'><D:prop>",
            headers={"Depth": "0"})
    assert r.status_code == 400
    assert dav(server, "OPTIONS", "/dav/").status_code == 200  # and the server is fine


def test_size_limits_on_put_and_xml(server):
    assert dav(server, "PUT", "/small/ok.txt", body=b"x" * 1000).status_code == 201
    assert substatus(dav(server, "PUT", "/small/ok.txt", body=b"y" * 1001)) == (413, 1)

    def chunks():
        for _ in range(20):
            yield b"z" * 100

    r = dav(server, "PUT", "/small/ok.txt", body=chunks())
    assert r.status_code == 413
    # the failed uploads left the old content whole and no temporary file behind
    assert (server.dir / "small" / "ok.txt").read_bytes() == b"x" * 1000
    assert sorted(p.name for p in (server.dir / "small").iterdir()) == ["ok.txt"]
    big = proppatch("urn:t", "big", "v" * 5000)
    assert dav(server, "PROPPATCH", "/small/ok.txt", body=big).status_code == 413


# ---- locks in a web garden ----

def test_locks_hold_across_the_workers_of_a_web_garden_and_a_recycle(server):
    pids = server.wait_until(lambda: len(p := server.worker_pids("Garden")) == 2 and p, 30,
                             what="two Garden workers")
    assert dav(server, "PUT", "/garden/f.txt", body=b"v1").status_code in (201, 204)
    r = dav(server, "LOCK", "/garden/f.txt", body=LOCKINFO, headers={"Timeout": "Second-600"})
    assert r.status_code == 200, r.text
    token = r.headers["Lock-Token"].strip("<>")
    assert token.startswith("urn:uuid:")
    # Fresh connections: the front spreads them over both workers; none may ignore the lock.
    for _ in range(12):
        assert dav(server, "PUT", "/garden/f.txt", body=b"intruder").status_code == 423
        assert dav(server, "LOCK", "/garden/f.txt", user="alice", body=LOCKINFO).status_code == 423
    assert dav(server, "PUT", "/garden/f.txt", body=b"v2", headers={"If": f"(<{token}>)"}).status_code == 204
    # alice does not own the lock: its token in her If header does not let her write
    r = dav(server, "PUT", "/garden/f.txt", user="alice", body=b"x", headers={"If": f"(<{token}>)"})
    assert r.status_code == 423
    # lockdiscovery shows it on every worker
    for _ in range(4):
        r = dav(server, "PROPFIND", "/garden/f.txt", headers={"Depth": "0"},
                body=b'<D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>')
        assert token in r.text
    mark = server.list_json("wp")
    server.cli("recycle", "pool", "Garden")
    server.wait_until(lambda: len(p := server.worker_pids("Garden")) == 2 and not set(p) & set(pids), 60,
                      what=f"new Garden workers after {mark}")
    assert dav(server, "PUT", "/garden/f.txt", body=b"intruder").status_code == 423
    assert dav(server, "UNLOCK", "/garden/f.txt", user="alice",
               headers={"Lock-Token": f"<{token}>"}).status_code == 403
    assert dav(server, "UNLOCK", "/garden/f.txt", headers={"Lock-Token": f"<{token}>"}).status_code == 204
    assert dav(server, "PUT", "/garden/f.txt", body=b"v3").status_code == 204
    assert dav(server, "GET", "/garden/f.txt").content == b"v3"


def test_if_header_tagged_lists_etags_and_not(server):
    assert dav(server, "PUT", "/garden/g.txt", body=b"g").status_code in (201, 204)
    r = dav(server, "LOCK", "/garden/g.txt", body=LOCKINFO)
    token = r.headers["Lock-Token"].strip("<>")
    etag = dav(server, "GET", "/garden/g.txt").headers["ETag"]
    url = f"{server.url}/garden/g.txt"
    ok = [lambda e: f"<{url}> (<{token}> [{e}])", lambda e: f"(<{token}>) (Not <DAV:no-lock>)",
          lambda e: f'(<{token}> ["bad"]) (Not <DAV:no-lock> [{e}])']
    for make in ok:
        value = make(etag)
        r = dav(server, "PUT", "/garden/g.txt", body=b"g", headers={"If": value})
        assert r.status_code == 204, (value, r.status_code)
        etag = dav(server, "GET", "/garden/g.txt").headers["ETag"]
    for value in (f'(<{token}> ["bad"])', "(<urn:uuid:00000000-0000-0000-0000-000000000000>)",
                  f"<{server.url}/garden/other.txt> (<{token}>)"):
        assert dav(server, "PUT", "/garden/g.txt", body=b"g", headers={"If": value}).status_code == 412
    # true only through Not <DAV:no-lock>: the lock's token was not submitted
    r = dav(server, "PUT", "/garden/g.txt", body=b"g", headers={"If": "(<urn:uuid:x>) (Not <DAV:no-lock>)"})
    assert r.status_code == 423
    assert dav(server, "PUT", "/garden/g.txt", body=b"g", headers={"If": "(garbage"}).status_code == 400
    assert dav(server, "UNLOCK", "/garden/g.txt", headers={"Lock-Token": f"<{token}>"}).status_code == 204


def test_a_depth_0_lock_on_a_collection_guards_its_membership(server):
    assert dav(server, "MKCOL", "/garden/col0").status_code == 201
    r = dav(server, "LOCK", "/garden/col0", body=LOCKINFO, headers={"Depth": "0"})
    assert r.status_code == 200 and "<D:depth>0</D:depth>" in r.text
    token = r.headers["Lock-Token"].strip("<>")
    assert dav(server, "PUT", "/garden/col0/new.txt", user="alice", body=b"x").status_code == 423
    assert dav(server, "LOCK", "/garden/col0/lnull.txt", user="alice", body=LOCKINFO).status_code == 423
    r = dav(server, "PUT", "/garden/col0/new.txt", body=b"x", headers={"If": f"(<{token}>)"})
    assert r.status_code == 201
    # the member itself is not locked by a depth-0 lock: changing its content needs no token
    assert dav(server, "PUT", "/garden/col0/new.txt", user="alice", body=b"y").status_code == 204
    assert dav(server, "DELETE", "/garden/col0/new.txt", user="alice").status_code == 423
    assert dav(server, "UNLOCK", "/garden/col0", headers={"Lock-Token": f"<{token}>"}).status_code == 204
    assert dav(server, "DELETE", "/garden/col0", user="alice").status_code == 204


def test_lock_timeout_ends_the_lock(server):
    assert dav(server, "PUT", "/garden/t.txt", body=b"t").status_code in (201, 204)
    r = dav(server, "LOCK", "/garden/t.txt", body=LOCKINFO, headers={"Timeout": "Second-1"})
    assert r.status_code == 200 and "Second-1" in r.text
    assert dav(server, "PUT", "/garden/t.txt", body=b"x").status_code == 423
    server.wait_until(lambda: dav(server, "PUT", "/garden/t.txt", body=b"x").status_code == 204, 15,
                      what="the lock to time out")
