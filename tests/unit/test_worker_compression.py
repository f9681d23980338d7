"""Compression without sockets: Accept-Encoding negotiation, type lists, the streaming encoders'
flushes, the CPU gate (an injected sampler), the compressed-file store (names, frequent hits, a
file changed while compressed, disk limit) and the dynamic offer through a RequestContext."""

from __future__ import annotations

import gzip
import os
import zlib

import brotli
import pytest
import zstandard

from wasp.config.sections.http_compression import HttpCompression, MimeType, UrlCompression
from wasp.front.cache import Entry, refuses
from wasp.wire import frames
from wasp.worker import encoding
from wasp.worker.compressed_files import CompressedFiles
from wasp.worker.encoding import CpuGate, CpuMonitor, Gate, TypeList, negotiate, parse_accept_encoding
from wasp.worker.modules import dynamic_compression  # noqa: F401  (registers the modules)
from wasp.worker.modules.dynamic_compression import DynamicCompressionModule
from worker_fakes import make_app, make_ctx

OFFERED = ("br", "gzip", "zstd")


# ---- negotiation ----

@pytest.mark.parametrize("header, expected", [
    ("gzip", "gzip"),
    ("gzip, br", "br"),                      # equal q: the server's order
    ("br;q=0.5, gzip", "gzip"),
    ("gzip;q=0.8, zstd;q=0.9", "zstd"),
    ("gzip;q=0", None),
    ("*", "br"),
    ("*;q=0", None),
    ("*;q=0.1, gzip;q=0", "br"),
    ("identity;q=0", None),                  # refuses identity but accepts nothing we have
    ("identity;q=0, gzip", "gzip"),
    ("x-gzip", "gzip"),
    ("GZIP ; Q=1", "gzip"),
    ("gzip;q=abc", None),                    # malformed q: unacceptable, not a guess
    ("gzip;q=2", None),
    ("gzip;q=nan", None),
    ("deflate, compress", None),
    ("", None),
    (",,,", None),
    ("gzip;q=0, gzip", None),                # the first mention counts
])
def test_negotiate(header, expected):
    assert negotiate([header.encode()], OFFERED) == expected


def test_negotiate_joins_several_header_lines_and_none_means_identity():
    assert negotiate([b"gzip;q=0.2", b"zstd;q=0.3"], OFFERED) == "zstd"
    assert negotiate([], OFFERED) is None
    assert negotiate([b"br"], ("gzip",)) is None
    assert parse_accept_encoding([b"a;q=0.5;x=1, b"]) == {"a": 0.5, "b": 1.0}


def test_request_coding_rules():
    settings = HttpCompression()
    app = make_app()

    def coding(headers=(), version="1.1"):
        ctx = make_ctx(app, headers=headers)
        ctx.head.version = version
        return encoding.request_coding(ctx.head, settings, OFFERED)

    assert coding([("Accept-Encoding", "gzip")]) == "gzip"
    assert coding() is None
    # A rule refused a client that accepts a coding: "" (its identity answer is not cacheable).
    assert coding([("Accept-Encoding", "gzip")], version="1.0") == ""
    assert coding([("Accept-Encoding", "gzip"), ("Via", "1.1 p")]) == ""
    assert coding([("Accept-Encoding", "gzip"), ("Range", "bytes=0-1")]) == ""
    assert coding([("Accept-Encoding", "gzip;q=0"), ("Via", "1.1 p")]) is None
    loose = HttpCompression(no_compression_for_http_10=False, no_compression_for_proxies=False,
                            no_compression_for_range=False)
    ctx = make_ctx(app, headers=[("Accept-Encoding", "gzip"), ("Via", "p"), ("Range", "bytes=0-1")])
    ctx.head.version = "1.0"
    assert encoding.request_coding(ctx.head, loose, OFFERED) == "gzip"


def test_type_lists_pick_the_most_specific_entry():
    types = TypeList(HttpCompression().static_types)
    assert types.allows("text/css") and types.allows(b"text/html; charset=utf-8")
    assert types.allows("application/javascript") and types.allows("APPLICATION/ATOM+XML")
    assert not types.allows("image/png") and not types.allows("") and not types.allows(None)
    custom = TypeList([MimeType(mime_type="text/csv", enabled=False), MimeType(mime_type="text/*"),
                       MimeType(mime_type="*/*", enabled=True)])
    assert not custom.allows("text/csv") and custom.allows("text/plain") and custom.allows("image/png")
    dynamic = TypeList(HttpCompression().dynamic_types)
    assert dynamic.allows("text/event-stream") and not dynamic.allows("application/json")


# ---- encoders ----

DECODERS = {
    "gzip": lambda: zlib.decompressobj(31),
    "br": lambda: brotli.Decompressor(),
    "zstd": lambda: zstandard.ZstdDecompressor().decompressobj(),
}


def _inflate(decoder, data: bytes) -> bytes:
    return decoder.process(data) if hasattr(decoder, "process") else decoder.decompress(data)


@pytest.mark.parametrize("coding", encoding.CODINGS)
@pytest.mark.parametrize("level", [0, 7, 11])
def test_each_flush_makes_everything_so_far_decodable(coding, level):
    encoder = encoding.new_encoder(coding, level)
    decoder = DECODERS[coding]()
    seen = b""
    for i in range(5):
        event = b"data: event %d\n\n" % i
        seen += _inflate(decoder, encoder.compress(event) + encoder.flush())
        assert seen.endswith(event)  # decodable now, before the stream ends
    seen += _inflate(decoder, encoder.finish())
    assert seen == b"".join(b"data: event %d\n\n" % i for i in range(5))


def test_levels_map_to_the_libraries():
    assert encoding.library_level("gzip", 0) == 1 and encoding.library_level("gzip", 10) == 9
    assert encoding.library_level("br", 0) == 0 and encoding.library_level("br", 11) == 11
    assert encoding.library_level("zstd", 0) == 1


def test_variant_etags_differ_from_the_identity_one():
    assert encoding.variant_etag('"1d2:30"', "gzip") == '"1d2:30-gzip"'
    assert encoding.variant_etag('W/"x"', "br") == 'W/"x-br"'
    assert encoding.variant_etag("unquoted", "zstd") == "unquoted"


# ---- CPU thresholds ----

def test_the_gate_stops_above_disable_and_resumes_below_enable():
    gate = CpuGate(disable=90, enable=50)
    moves = [gate.update(p) for p in (10, 91, 80, 50, 49, 95, 100, 20)]
    assert moves == [Gate.ON, Gate.OFF, Gate.OFF, Gate.OFF, Gate.ON, Gate.OFF, Gate.OFF, Gate.ON]
    never = CpuGate(disable=100, enable=50)
    assert never.update(100.0) is Gate.ON  # CPU cannot be above 100 %


def test_the_monitor_averages_an_injected_sampler_over_its_window():
    samples = iter([(0, 0), (50, 100), (150, 200), (250, 300), (260, 400), (270, 500)])
    monitor = CpuMonitor(sampler=lambda: next(samples), interval=5, window=10)
    gate = CpuGate(disable=90, enable=50)
    monitor.gates.append(gate)  # not watch(): no thread in a unit test
    assert monitor.sample_once() is None                  # one sample: no average yet
    assert monitor.sample_once() == 50.0 and gate.on
    assert monitor.sample_once() == 75.0 and gate.on      # (150-0)/(200-0)
    assert monitor.sample_once() == 100.0 and not gate.on  # window of 2 intervals: (250-50)/(300-100)
    assert monitor.sample_once() == 55.0 and not gate.on  # (260-150)/(400-200): not below 50 yet
    assert monitor.sample_once() == 10.0 and gate.on      # (270-250)/(500-300)


def test_proc_stat_is_read(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n")
    assert encoding.read_proc_stat(str(stat)) == (200, 1000)
    stat.write_text("nonsense\n")
    assert encoding.read_proc_stat(str(stat)) is None
    assert encoding.read_proc_stat(str(tmp_path / "missing")) is None


# ---- the compressed-file store ----

def _inline(fn, job):
    fn(job)


def make_store(tmp_path, **kwargs):
    clock = kwargs.pop("clock", None) or (lambda: 0.0)
    return CompressedFiles(str(tmp_path / "cache" / "Pool"), kwargs.pop("max_bytes", 1 << 20),
                           clock=clock, run=_inline, **kwargs)


def source(tmp_path, name="a.css", data=b"body { color: red }\n" * 500):
    path = tmp_path / name
    path.write_bytes(data)
    real = os.path.realpath(path)
    return real, os.stat(real)


def test_copy_names_never_come_from_the_path(tmp_path):
    store = make_store(tmp_path)
    st = os.stat(tmp_path)
    for evil in ("/srv/../../etc/passwd", "/a/b/../../../x", "/x/\x00y", "/" + "a/" * 300):
        name = store.name_for(evil, st, "gzip")
        path = store.path_of(name)
        assert "/" not in name and ".." not in name and "\x00" not in name and len(name) < 80
        assert os.path.dirname(os.path.dirname(path)) == store.root


def test_frequent_hits_within_the_period(tmp_path):
    now = [0.0]
    store = make_store(tmp_path, clock=lambda: now[0], threshold=2, period=10.0)
    assert not store.frequently_hit("/f")
    now[0] = 11.0                                # the window passed: counting starts again
    assert not store.frequently_hit("/f")
    now[0] = 15.0
    assert store.frequently_hit("/f")


def test_a_copy_is_made_once_and_found_while_the_file_is_unchanged(tmp_path):
    store = make_store(tmp_path)
    real, st = source(tmp_path)
    assert store.lookup(real, st, "gzip") is None
    assert store.schedule(real, st, "gzip", 7)
    path, size = store.lookup(real, st, "gzip")
    assert gzip.decompress(open(path, "rb").read()) == open(real, "rb").read()
    assert size == os.path.getsize(path) and store.total == size
    # The file changes: the old copy no longer matches, a new one replaces it.
    with open(real, "ab") as f:
        f.write(b"/* more */\n")
    st2 = os.stat(real)
    assert store.lookup(real, st2, "gzip") is None
    store.schedule(real, st2, "gzip", 7)
    assert store.lookup(real, st2, "gzip") is not None and not os.path.exists(path)


def test_a_file_changed_since_the_request_looked_is_not_copied(tmp_path):
    store = make_store(tmp_path)
    real, st = source(tmp_path)
    os.utime(real, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    store.schedule(real, st, "gzip", 7)
    assert store.lookup(real, st, "gzip") is None
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_a_file_changed_while_it_is_compressed_is_not_copied(tmp_path, monkeypatch):
    store = make_store(tmp_path)
    real, st = source(tmp_path)
    real_new = encoding.new_encoder

    class Meddling:
        def __init__(self, inner):
            self.inner = inner
            self.done = False

        def compress(self, data):
            if not self.done:
                self.done = True
                with open(real, "ab") as f:  # a writer appends while we read
                    f.write(b"x")
            return self.inner.compress(data)

        def finish(self):
            return self.inner.finish()

    monkeypatch.setattr("wasp.worker.compressed_files.new_encoder",
                        lambda name, level: Meddling(real_new(name, level)))
    store.schedule(real, st, "gzip", 7)
    assert store.lookup(real, st, "gzip") is None
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_copies_over_the_limit_or_no_smaller_are_dropped_and_not_retried(tmp_path):
    store = make_store(tmp_path, max_bytes=10_000)
    real, st = source(tmp_path, "noise.txt", os.urandom(64 * 1024).hex().encode())  # ~64 KB gz
    assert store.schedule(real, st, "gzip", 7)
    assert store.lookup(real, st, "gzip") is None
    assert not store.schedule(real, st, "gzip", 7)  # marked: not tried again
    rand, rst = source(tmp_path, "random.bin", os.urandom(4000))  # incompressible
    store.schedule(rand, rst, "gzip", 7)
    assert store.lookup(rand, rst, "gzip") is None
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_the_least_recently_used_copies_go_above_90_percent(tmp_path):
    store = make_store(tmp_path, max_bytes=30_000)
    made = []
    for i in range(6):
        real, st = source(tmp_path, f"f{i}.txt", os.urandom(8 * 1024).hex().encode())  # ~9 KB gz
        store.schedule(real, st, "gzip", 7)
        made.append((real, st))
        if i == 1:
            assert store.lookup(*made[0], "gzip") is not None  # f0 used again: f1 is older now
    on_disk = sum(p.stat().st_size for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert on_disk <= 27_000 and store.total == on_disk
    assert store.lookup(*made[-1], "gzip") is not None
    assert store.lookup(*made[1], "gzip") is None


def test_an_unusable_directory_turns_static_compression_off(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = CompressedFiles(str(blocker / "Pool"), 1 << 20)
    real, st = source(tmp_path)
    assert not store.schedule(real, st, "gzip", 7) and store.lookup(real, st, "gzip") is None
    assert not store.usable and "file" in store.error


# ---- the dynamic offer through a context ----

def dynamic_ctx(headers=(("Accept-Encoding", "gzip"),), method="GET", **settings):
    tables = {"server": {"http_compression": settings}} if settings else None
    app = make_app(tables=tables)
    module = DynamicCompressionModule()
    module.setup(app)
    ctx = make_ctx(app, method=method, headers=list(headers))
    module.pre_execute_request_handler(ctx)
    return ctx


PAGE = b"<p>" + b"hello world " * 1000 + b"</p>"


def test_a_whole_response_is_compressed_with_its_length():
    ctx = dynamic_ctx()
    ctx.respond(b"200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n" % len(PAGE), PAGE)
    status, _sub, headers, body, kind, length = ctx.channel.response()
    assert headers["content-encoding"] == "gzip" and headers["vary"] == "Accept-Encoding"
    assert int(headers["content-length"]) == len(body) == length and gzip.decompress(body) == PAGE


@pytest.mark.parametrize("block", [
    b"200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n",
    b"200 OK\r\nContent-Type: image/png\r\n",
    b"204 No Content\r\nContent-Type: text/html\r\n",
    b"304 Not Modified\r\nContent-Type: text/html\r\n",
    b"206 Partial Content\r\nContent-Type: text/html\r\n",
    b"200 OK\r\n",
], ids=["encoded", "png", "204", "304", "206", "no-type"])
def test_responses_left_alone(block):
    ctx = dynamic_ctx()
    ctx.respond(block, PAGE)
    _status, _sub, headers, body, _kind, _length = ctx.channel.response()
    assert "content-encoding" not in headers or headers["content-encoding"] == "gzip" and body == PAGE
    assert body == PAGE


def test_small_bodies_and_head_are_not_compressed():
    ctx = dynamic_ctx()
    ctx.respond(b"200 OK\r\nContent-Type: text/html\r\n", b"tiny")
    assert ctx.channel.response()[3] == b"tiny"
    ctx = dynamic_ctx(method="HEAD")
    assert ctx.compression is None


def test_a_stream_is_flushed_per_write_and_bounded_in_pieces():
    ctx = dynamic_ctx(dynamic_compression_buffer_limit=4096)
    ctx.start_response(b"200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 99\r\n"
                       b"ETag: \"v1\"\r\nVary: Cookie\r\n")
    inflater = zlib.decompressobj(31)
    seen = b""
    for i in range(3):
        before = len(ctx.channel.written)
        ctx.send_body(b"data: %d\n\n" % i)
        sent = b"".join(p for t, _f, _s, p in frames.FrameReader().feed(b"".join(ctx.channel.written[before:]))
                        if t == frames.FrameType.BODY)
        seen += inflater.decompress(sent)
        assert seen.endswith(b"data: %d\n\n" % i)
    before = len(ctx.channel.written)
    ctx.send_body(os.urandom(50_000))  # one big write: fed in 4 KiB steps, sent as zlib emits
    pieces = [p for t, _f, _s, p in frames.FrameReader().feed(b"".join(ctx.channel.written[before:]))
              if t == frames.FrameType.BODY]
    assert len(pieces) >= 2  # not held back until the whole write was compressed
    ctx.end()
    _status, _sub, headers, body, kind, length = ctx.channel.response()
    assert kind == "stream" and length == -1 and "content-length" not in headers
    assert headers["etag"] == '"v1-gzip"' and headers["vary"] == "Cookie, Accept-Encoding"
    assert gzip.decompress(body).startswith(b"data: 0\n\ndata: 1\n\ndata: 2\n\n")


def test_the_cpu_gate_turns_dynamic_compression_off():
    app = make_app()
    module = DynamicCompressionModule()
    module.setup(app)
    module.gate.update(95.0)
    ctx = make_ctx(app, headers=[("Accept-Encoding", "gzip")])
    module.pre_execute_request_handler(ctx)
    assert ctx.compression is None
    module.gate.update(10.0)
    ctx = make_ctx(app, headers=[("Accept-Encoding", "gzip")])
    module.pre_execute_request_handler(ctx)
    assert ctx.compression is not None and ctx.compression.coding == "gzip"


def test_url_compression_turns_dynamic_compression_off_per_url():
    tables = {"applications": {"1/": {"url_compression": {"do_dynamic_compression": False}}}}
    app = make_app(tables=tables)
    assert app.sections.url_compression == UrlCompression(do_dynamic_compression=False)
    module = DynamicCompressionModule()
    module.setup(app)
    ctx = make_ctx(app, headers=[("Accept-Encoding", "gzip")])
    module.pre_execute_request_handler(ctx)
    assert ctx.compression is None


# ---- the front never answers HTTP/1.0 or Via requests from a compressed entry ----

def test_front_entries_refuse_what_the_worker_said():
    entry = Entry(("k",), ("1/", b"h", b"/a"), 1, "P", b"200 OK\r\nContent-Encoding: gzip\r\n",
                  b"x", 1, 0.0, 0.0, ())
    entry.not_for = frames.NOT_FOR_HTTP_10 | frames.NOT_FOR_PROXIES
    assert refuses(entry, "1.0", [])
    assert refuses(entry, "1.1", [(b"Via", b"1.1 p")])
    assert not refuses(entry, "1.1", [(b"Accept-Encoding", b"gzip")])
    entry.not_for = 0
    assert not refuses(entry, "1.0", [(b"via", b"p")])


# ---- configuration ----

SITE = """
[[pools]]
name = "P"
[[sites]]
name = "S"
id = 1
bindings = ["http/*:8080:"]
[[sites.applications]]
path = "/"
pool = "P"
physical_path = "."
"""


def test_http_compression_is_server_level_only_and_its_thresholds_are_checked():
    from wasp.config.load import load_text
    from wasp.errors import ConfigError

    config = load_text("[http_compression]\nmin_file_size_for_comp = \"1KiB\"\n"
                       "schemes = { clear = true, add = [ { name = \"gzip\", dynamic_compression_level = 4 } ] }\n"
                       + SITE + "[sites.applications.url_compression]\ndo_static_compression = false\n")
    assert config.sections["server"]["http_compression"]["min_file_size_for_comp"] == "1KiB"
    with pytest.raises(ConfigError) as info:
        load_text(SITE.replace('physical_path = "."', 'physical_path = "."\n[sites.applications.http_compression]\n'
                                                     'min_file_size_for_comp = 10'))
    assert "sites[0].applications[0].http_compression: this section is AppHostOnly" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_text("[http_compression]\ndynamic_compression_enable_cpu_usage = 95\n" + SITE)
    assert "http_compression.dynamic_compression_enable_cpu_usage: 95 is above" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_text("[http_compression]\nschemes = [ { name = \"deflate\" } ]\n" + SITE)
    assert "http_compression.schemes[0].name" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_text("[http_compression]\nstatic_types = [ { mime_type = \"text\" } ]\n" + SITE)
    assert "http_compression.static_types[0].mime_type" in str(info.value)


def test_vary_only_where_the_response_could_be_compressed():
    from wasp.config import model
    from wasp.worker.hosting import wsgi
    from wasp.worker.pipeline import Pipeline

    profile = model.CacheProfile(extension="*", kernel_caching_policy="CacheForTimePeriod", duration=10)

    def run(body, headers=(), tables=None):
        app = make_app(app="m:app", caching=model.Caching(profiles=[profile]), tables=tables)
        app.interface = "wsgi"

        def callable_(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/html")])
            return [body]
        app.host = wsgi.WSGIHost(app, callable_)
        pipeline = Pipeline(app)
        ctx = make_ctx(app, headers=list(headers))
        if pipeline.run_front(ctx):
            pipeline.run_handler_sync(ctx)
        return ctx.channel

    small = run(b"<p>tiny</p>")
    assert "vary" not in small.response()[2] and small.cache_hint().vary == []
    big = run(PAGE)  # no Accept-Encoding: identity, but it varies
    assert big.response()[2]["vary"] == "Accept-Encoding"
    assert big.cache_hint().vary == ["accept-encoding"]
    gz = run(PAGE, [("Accept-Encoding", "gzip")])  # compressed: not front-cached (HTTP.sys rule 3)
    assert gz.response()[2]["content-encoding"] == "gzip" and gz.cache_hint() is None
    # dynamic_compression_before_cache: the front may keep it, never for HTTP/1.0 or Via requests.
    before = run(PAGE, [("Accept-Encoding", "gzip")],
                 {"server": {"url_compression": {"dynamic_compression_before_cache": True}}})
    hint = before.cache_hint()
    assert hint is not None and hint.vary == ["accept-encoding"]
    assert hint.not_for == frames.NOT_FOR_HTTP_10 | frames.NOT_FOR_PROXIES


def test_the_manager_gives_the_pool_its_compressed_files_folder(tmp_path):
    from wasp.config.load import load_text
    from wasp.manager.identity import Account
    from wasp.manager.isolation import Isolation

    config = load_text(f'[server]\nrun_dir = "{tmp_path}/run"\n[http_compression]\n'
                       f'directory = "{tmp_path}/copies"\n' + SITE)
    isolation = Isolation(events=None, cpu_count=2, manager_pid=os.getpid())
    pool = config.pools[0]
    isolation.prepare_compression(config, pool, None)
    root = tmp_path / "copies" / "P"
    assert root.is_dir() and (root.stat().st_mode & 0o777) == 0o711
    if os.geteuid() == 0:
        account = Account(user="nobody", uid=65534, gid=65534, groups=(), home="/")
        isolation.prepare_compression(config, pool, account)
        assert (root.stat().st_uid, root.stat().st_gid) == (65534, 65534)
    # The worker computes the same folder from the same settings.
    from wasp.config.sections.http_compression import compression_root
    assert compression_root(f"{tmp_path}/copies", config.source, config.server.run_dir, "P") == str(root)
    assert compression_root("", "", "/srv/run", "a/b") == "/srv/run/compressed/a_b"


def test_a_web_toml_cannot_set_http_compression_but_may_set_url_compression(tmp_path):
    from wasp.config.load import load_text
    from wasp.worker.application import pool_applications

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "web.toml").write_text('[http_compression]\nmin_file_size_for_comp = 1\n')
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "web.toml").write_text('[url_compression]\ndo_static_compression = false\n')
    config = load_text(SITE.replace('physical_path = "."', f'physical_path = "{tmp_path}"'))
    app = pool_applications(config, "P")[0]
    locked = make_ctx(app, path="/a/x.css").config.fault
    assert locked is not None and locked.substatus == 19 and "http_compression" in str(locked)
    b = make_ctx(app, path="/b/x.css").config
    assert b.fault is None and b.url_compression.do_static_compression is False
    assert make_ctx(app, path="/x.css").config.url_compression.do_static_compression is True
