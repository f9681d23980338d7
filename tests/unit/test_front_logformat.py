"""The W3C log's field choice (sites.log.log_ext_file_flags), IIS 8.5 custom fields
(sites.log.custom_fields), cs-version, sc-bytes / cs-bytes: wasp/front/logformat.py, the header
and file name (wasp/wire/w3c.py, accesslog.py) and their validation."""

from __future__ import annotations

import textwrap

import pytest

from front_fakes import FrontRig, make_config
from test_front_h2 import GET, Client, body_of
from wasp.config import model
from wasp.config.load import load_text
from wasp.errors import ConfigError
from wasp.front.accesslog import AccessLog
from wasp.front.logformat import compile_format
from wasp.wire import w3c
from wasp.wire.frames import TlsInfo

T = 1773705601.0  # 2026-03-17 00:00:01 UTC


def site_log(**kw) -> model.SiteLog:
    return model.SiteLog(**kw)


def rig_with(tmp_path, log: model.SiteLog, limits=None) -> FrontRig:
    sites = [model.Site(name="S", id=1, bindings=["http/*:8080:"], log=log,
                        applications=[model.Application(path="/", pool="P")])]
    return FrontRig(tmp_path, config=make_config(tmp_path, sites=sites, limits=limits))


def log_lines(tmp_path, name="u_ex*.log") -> list[str]:
    [path] = (tmp_path / "logs" / "W3SVC1").glob(name)
    return path.read_text().splitlines()


def get(rig, request: bytes, body: bytes = b"hello", block=b"200 OK\r\nContent-Type: text/plain\r\n"):
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(request)
    [(stream, _, _)] = worker.requests()
    worker.respond(stream, body, block=block)
    rig.server.flush_logs()
    return transport.take()


# ---- the field set and its order ----

def test_the_default_flags_keep_the_fast_path_and_iis_fields():
    assert compile_format(site_log(), 1) is None
    assert w3c.fields_of(model.DEFAULT_LOG_FLAGS) == w3c.W3C_FIELDS
    # the same set in another order is still the default
    assert compile_format(site_log(log_ext_file_flags=list(reversed(model.DEFAULT_LOG_FLAGS))), 1) is None


def test_fields_are_written_in_iis_order_whatever_the_list_order():
    flags = ["TimeTaken", "BytesRecv", "BytesSent", "Host", "ProtocolVersion", "Date", "SiteName", "Time"]
    fmt = compile_format(site_log(log_ext_file_flags=flags), 3, computer="web 01")
    assert fmt.fields == "date time s-sitename cs-version cs-host sc-bytes cs-bytes time-taken"
    assert fmt.suffix == ""
    every = [flag for flag, _ in w3c.FLAG_FIELDS]
    fmt = compile_format(site_log(log_ext_file_flags=every[::-1]), 3)
    assert fmt.fields == ("date time s-sitename s-computername s-ip cs-method cs-uri-stem cs-uri-query s-port "
                          "cs-username c-ip cs-version cs(User-Agent) cs(Cookie) cs(Referer) cs-host sc-status "
                          "sc-substatus sc-win32-status sc-bytes cs-bytes time-taken")


def test_every_field_of_an_http11_request(tmp_path):
    every = [flag for flag, _ in w3c.FLAG_FIELDS]
    rig = rig_with(tmp_path, site_log(log_ext_file_flags=every))
    request = (b"GET /a%20b?q=1 HTTP/1.1\r\nHost: www.example\r\nUser-Agent: t 1\r\nCookie: a=1\r\n"
               b"Referer: http://r/\r\n\r\n")
    out = get(rig, request)
    lines = log_lines(tmp_path)
    assert lines[3].startswith("#Fields: date time s-sitename s-computername s-ip")
    fields = lines[4].split(" ")
    assert len(fields) == len(every)
    named = dict(zip(lines[3].split(" ")[1:], fields))
    assert named["s-sitename"] == "W3SVC1" and named["cs-method"] == "GET"
    assert named["cs-uri-stem"] == "/a+b" and named["cs-uri-query"] == "q=1"
    assert named["cs-version"] == "HTTP/1.1" and named["cs(User-Agent)"] == "t+1"
    assert named["cs(Cookie)"] == "a=1" and named["cs(Referer)"] == "http://r/"
    assert named["cs-host"] == "www.example" and named["sc-status"] == "200" and named["cs-username"] == "-"
    assert int(named["sc-bytes"]) == len(out)          # status line, headers and body
    assert int(named["cs-bytes"]) == len(request)      # request line, headers, the empty line


def test_http10_and_a_post_body_count(tmp_path):
    rig = rig_with(tmp_path, site_log(log_ext_file_flags=["ProtocolVersion", "BytesRecv", "HttpStatus"]))
    worker = rig.worker()
    conn, transport = rig.connect()
    request = b"POST / HTTP/1.0\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    conn.data_received(request)
    [(stream, _, _)] = worker.requests()
    worker.frames()
    worker.respond(stream, b"ok")
    rig.server.flush_logs()
    assert log_lines(tmp_path)[-1] == f"HTTP/1.0 200 {len(request)}"   # (sc-status before cs-bytes)


def test_an_error_page_counts_its_bytes(tmp_path):
    rig = rig_with(tmp_path, site_log(log_ext_file_flags=["HttpStatus", "BytesSent"]),
                   limits=model.Limits(max_allowed_content_length=model.Size(10)))
    rig.worker()
    conn, transport = rig.connect()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n")
    rig.server.flush_logs()
    out = transport.take()
    assert out.startswith(b"HTTP/1.1 413 ")
    assert log_lines(tmp_path)[-1] == f"413 {len(out)}"


def test_http2_is_logged_as_http_2_with_its_frame_bytes(tmp_path):
    rig = rig_with(tmp_path, site_log(log_ext_file_flags=["ProtocolVersion", "BytesSent", "BytesRecv"]))
    worker = rig.worker()
    client = Client(rig)
    sid = client.request(GET + [(b"user-agent", b"t/1")])
    [(stream, _, _)] = worker.requests()
    worker.respond(stream, b"hello h2")
    raw = bytes(client.transport.out)
    events = client.events()
    assert body_of(events, sid) == b"hello h2"
    rig.server.flush_logs()
    version, sent, received = log_lines(tmp_path)[-1].split(" ")
    assert version == "HTTP/2"
    # the stream's frames: HEADERS (9 + HPACK block) and DATA (9 + 8)
    frames = []
    data = raw
    while data:
        n = int.from_bytes(data[:3], "big")
        frames.append((data[3], int.from_bytes(data[5:9], "big") & 0x7FFFFFFF, 9 + n))
        data = data[9 + n:]
    assert int(sent) == sum(size for ftype, s, size in frames if s == sid and ftype in (0, 1))
    head = GET + [(b"user-agent", b"t/1")]
    assert int(received) == sum(len(k) + len(v) + 4 for k, v in head)


# ---- custom fields ----

def custom(name, source, kind) -> model.CustomLogField:
    return model.CustomLogField(log_field_name=name, source_name=source, source_type=kind)


def test_custom_fields_follow_the_standard_ones_and_name_the_file_x(tmp_path):
    log = site_log(log_ext_file_flags=["HttpStatus"], custom_fields=[
        custom("x-https", "HTTPS", "server_variable"), custom("x-fwd", "X-Forwarded-For", "request_header"),
        custom("x-ct", "content-type", "response_header"), custom("x-proto", "SERVER_PROTOCOL", "server_variable"),
        custom("x-secure", "server_port_secure", "server_variable"), custom("x-tls", "CRYPT_PROTOCOL", "server_variable"),
        custom("x-remote", "REMOTE_ADDR", "server_variable"), custom("x-host", "HTTP_HOST", "server_variable"),
    ])
    rig = rig_with(tmp_path, log)
    get(rig, b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.2.3.4\r\nx-forwarded-for: 5.6.7.8\r\n\r\n")
    assert not list((tmp_path / "logs" / "W3SVC1").glob("u_ex??????.log"))
    lines = log_lines(tmp_path, "u_ex*_x.log")
    assert lines[3] == "#Fields: sc-status x-https x-fwd x-ct x-proto x-secure x-tls x-remote x-host"
    assert lines[4] == "200 off 1.2.3.4,5.6.7.8 text/plain HTTP/1.1 0 - 127.0.0.1 h"


def test_server_variables_of_a_tls_connection(tmp_path):
    log = site_log(log_ext_file_flags=["ServerPort"], custom_fields=[
        custom("x-https", "HTTPS", "server_variable"), custom("x-secure", "SERVER_PORT_SECURE", "server_variable"),
        custom("x-tls", "CRYPT_PROTOCOL", "server_variable"), custom("x-cipher", "CRYPT_CIPHER_ALG_ID", "server_variable"),
    ])
    fmt = compile_format(log, 1)

    class Conn:
        tls = TlsInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", 0x1302)
        s_port = b"443"

    class Req:
        pass

    assert fmt.line(Conn, Req, b"2026-03-17 00:00:01", 0) == b"443 on 1 TLSv1.3 TLS_AES_256_GCM_SHA384\r\n"


def test_custom_values_are_escaped_and_capped():
    log = site_log(log_ext_file_flags=["HttpStatus"],
                   custom_fields=[custom(f"x-{i}", "x-big", "request_header") for i in range(20)])
    fmt = compile_format(log, 1)

    class Conn:
        pass

    class Req:
        status = 200
        headers = [(b"X-Big", b"a b\tc" + b"z" * 5000)]

    line = fmt.line(Conn, Req, b"", 0)
    fields = line.rstrip(b"\r\n").split(b" ")
    assert fields[0] == b"200" and len(fields) == 21
    first = fields[1]
    assert first.startswith(b"a+b+c") and len(first) == w3c.MAX_CUSTOM_FIELD   # maxCustomFieldLength
    custom_bytes = sum(len(f) for f in fields[1:] if f != b"-")
    assert custom_bytes == w3c.MAX_CUSTOM_TOTAL                                 # 16 x 4096
    assert fields[-4:] == [b"-"] * 4                                              # no room left
    Req.headers = []
    assert fmt.line(Conn, Req, b"", 0) == b"200" + b" -" * 20 + b"\r\n"


def test_a_new_field_set_writes_a_new_header_in_the_same_file(tmp_path):
    log = AccessLog(str(tmp_path))
    log.write(1, "260317", b"a\r\n", T)
    log.write(1, "260317", b"b\r\n", T, "date time cs-version")
    log.write(1, "260317", b"c\r\n", T, "date time cs-version")
    log.write(1, "260317", b"d\r\n", T, "date x-https", "_x")
    log.close()
    lines = (tmp_path / "W3SVC1" / "u_ex260317.log").read_text().splitlines()
    assert [line for line in lines if line.startswith("#Fields")] == [
        "#Fields: " + w3c.W3C_FIELDS, "#Fields: date time cs-version"]
    assert [line for line in lines if not line.startswith("#")] == ["a", "b", "c"]
    x = (tmp_path / "W3SVC1" / "u_ex260317_x.log").read_text().splitlines()
    assert x[3] == "#Fields: date x-https" and x[4] == "d"


# ---- validation ----

SITE = """\
[[pools]]
name = "P"
[[sites]]
name = "s"
id = 1
bindings = ["http/*:80:"]
[sites.log]
{log}
[[sites.applications]]
path = "/"
pool = "P"
app = "m:app"
"""


def problems(log: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigError) as info:
        load_text(SITE.format(log=textwrap.dedent(log)))
    return [(p.path, p.line, p.message) for p in info.value.problems]


def test_an_unknown_flag_is_refused_with_its_path_and_line():
    [(path, line, message)] = problems('log_ext_file_flags = ["Date", "Protocol"]')
    assert path == "sites[0].log.log_ext_file_flags[1]" and line == 8 and '"Protocol" is not allowed' in message


@pytest.mark.parametrize("entry, path, fragment", [
    ('log_field_name = "x"\nsource_name = "HTTPZ"\nsource_type = "server_variable"', "source_name",
     "not a server variable"),
    ('log_field_name = "x"\nsource_name = "a b"\nsource_type = "request_header"', "source_name",
     "not an HTTP header name"),
    ('log_field_name = "x y"\nsource_name = "a"\nsource_type = "response_header"', "log_field_name",
     "not a log field name"),
    ('log_field_name = "cs-host"\nsource_name = "a"\nsource_type = "request_header"', "log_field_name",
     "a standard field"),
    ('log_field_name = "x"\nsource_name = "a"\nsource_type = "cookie"', "source_type", "not allowed"),
])
def test_bad_custom_fields_are_refused(entry, path, fragment):
    found = problems("[[sites.log.custom_fields]]\n" + entry)
    assert [p for p in found if p[0] == f"sites[0].log.custom_fields[0].{path}" and fragment in p[2]], found


def test_a_custom_field_name_twice_is_refused():
    entry = '[[sites.log.custom_fields]]\nlog_field_name = "X-A"\nsource_name = "HTTPS"\nsource_type = "server_variable"\n'
    found = problems(entry + entry.replace("X-A", "x-a"))
    assert [p[0] for p in found] == ["sites[0].log.custom_fields[1].log_field_name"]


def test_a_good_log_table_loads():
    config = load_text(SITE.format(log=textwrap.dedent("""\
        log_ext_file_flags = ["Date", "Time", "ProtocolVersion"]
        [[sites.log.custom_fields]]
        log_field_name = "x-https"
        source_name = "https"
        source_type = "server_variable"
        """)))
    log = config.sites[0].log
    assert log.log_ext_file_flags == ["Date", "Time", "ProtocolVersion"]
    assert compile_format(log, 1).fields == "date time cs-version x-https"
