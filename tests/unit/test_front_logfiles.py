"""Logs that manage themselves (issue 12 item 3): IIS's periods and file names, max_size with
truncate_size, local_time_rollover, retention, NCSA / IIS / JSON lines, the central W3C log,
stdout, and the writer thread that keeps file I/O off the front's loop."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from front_fakes import FrontRig, make_config
from wasp.config import model
from wasp.config.load import load_text
from wasp.errors import ConfigError
from wasp.front import logwriter
from wasp.front.accesslog import AccessLog, Destination
from wasp.front.logwriter import InlineWriter, ThreadWriter
from wasp.wire import logfiles, w3c

T = 1773705601.0  # 2026-03-17 00:00:01 UTC, a Tuesday


# ---------------------------------------------------------------------- names and keys (sans I/O)

@pytest.mark.parametrize("period,key", [
    ("hourly", "26031700"), ("daily", "260317"), ("weekly", "260303"), ("monthly", "2603"), ("max_size", ""),
])
def test_period_keys(period, key):
    assert logfiles.period_key(T, period) == key


@pytest.mark.parametrize("day,week", [
    # March 2026 starts on a Sunday; December 2026 on a Tuesday (its first Saturday is the 5th).
    ("2026-03-01", 1), ("2026-03-07", 1), ("2026-03-08", 2), ("2026-03-31", 5),
    ("2026-12-01", 1), ("2026-12-05", 1), ("2026-12-06", 2), ("2026-12-31", 5),
])
def test_week_of_month_starts_on_sunday(day, week):
    t = time.strptime(day + " 12", "%Y-%m-%d %H")
    assert logfiles.week_of_month(t) == week


def test_file_names_per_format():
    assert logfiles.file_name("w3c", "260317") == "u_ex260317.log"
    assert logfiles.file_name("w3c", "260317", "_x") == "u_ex260317_x.log"
    assert logfiles.file_name("ncsa", "2603") == "u_nc2603.log"
    assert logfiles.file_name("iis", "26031700") == "u_in26031700.log"
    assert logfiles.file_name("json", "260317") == "u_js260317.log"
    assert logfiles.numbered_name("w3c", 3) == "u_extend3.log"
    assert logfiles.numbered_name("ncsa", 1) == "u_ncsa1.log"
    assert logfiles.numbered_name("iis", 2, "_x") == "u_inetsv2_x.log"
    assert logfiles.name_pattern("w3c", "daily").fullmatch("u_ex260317.log")
    assert not logfiles.name_pattern("w3c", "daily").fullmatch("u_ex26031700.log")   # hourly's
    assert not logfiles.name_pattern("w3c", "daily").fullmatch("u_ex260317_x.log")   # another stream
    assert logfiles.name_pattern("w3c", "max_size").fullmatch("u_extend12.log").group(1) == "12"


def test_truncate_size_has_iis_minimum():
    assert logfiles.truncate_size(10) == 1024 * 1024
    assert logfiles.truncate_size(50 * 1024 * 1024) == 50 * 1024 * 1024


def test_local_time_rollover(monkeypatch):
    monkeypatch.setenv("TZ", "America/Los_Angeles")   # UTC-7 in March 2026 (DST from the 8th)
    time.tzset()
    try:
        assert logfiles.period_key(T, "hourly") == "26031700"
        assert logfiles.period_key(T, "hourly", local=True) == "26031617"
        assert logfiles.period_key(T, "daily", local=True) == "260316"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_expired_by_age_and_count():
    now = 100 * 86400.0
    files = [("a", now - 40 * 86400), ("b", now - 20 * 86400), ("c", now - 1), ("d", now)]
    assert logfiles.expired(files, now, 30, 0) == ["a"]
    assert logfiles.expired(files, now, 0, 2) == ["a", "b"]
    assert logfiles.expired(files, now, 0, 1, keep="c") == ["a", "b"]    # d is newest; c kept anyway
    assert logfiles.expired(files, now, 0, 0) == []


# ---------------------------------------------------------------------- files

def test_max_size_numbers_files_at_truncate_size(tmp_path):
    log = AccessLog(str(tmp_path))
    dest = Destination(1, str(tmp_path / "W3SVC1"), period="max_size", truncate_size=1)  # 1 MiB
    line = b"z" * 999 + b"\n"
    for _ in range(1100):
        log.emit(dest, line, T, w3c.W3C_FIELDS)
    log.close()
    first, second = tmp_path / "W3SVC1" / "u_extend1.log", tmp_path / "W3SVC1" / "u_extend2.log"
    assert 1024 * 1024 - 1000 < first.stat().st_size <= 1024 * 1024
    assert second.read_text().splitlines()[3] == "#Fields: " + w3c.W3C_FIELDS
    # A new process continues the last file while it has room.
    again = AccessLog(str(tmp_path))
    again.emit(dest, b"later\n", T, w3c.W3C_FIELDS)
    again.close()
    assert second.read_text().splitlines()[-1] == "later"
    assert not (tmp_path / "W3SVC1" / "u_extend3.log").exists()


def test_weekly_and_monthly_files(tmp_path):
    log = AccessLog(str(tmp_path))
    weekly = Destination(1, str(tmp_path / "W3SVC1"), period="weekly")
    monthly = Destination(2, str(tmp_path / "W3SVC2"), period="monthly", log_format="ncsa")
    log.emit(weekly, b"a\n", T, w3c.W3C_FIELDS)
    log.emit(weekly, b"b\n", T + 5 * 86400, w3c.W3C_FIELDS)   # Sunday the 22nd: week 4
    log.emit(monthly, b"c\n", T)
    log.close()
    assert (tmp_path / "W3SVC1" / "u_ex260303.log").read_text().splitlines()[-1] == "a"
    assert (tmp_path / "W3SVC1" / "u_ex260304.log").read_text().splitlines()[-1] == "b"
    # NCSA has no header block.
    assert (tmp_path / "W3SVC2" / "u_nc2603.log").read_text() == "c\n"


def test_retention_deletes_old_files_of_its_own_stream_only(tmp_path):
    folder = tmp_path / "W3SVC1"
    folder.mkdir()
    old = time.time() - 40 * 86400
    for name in ("u_ex260101.log", "u_ex260102.log", "u_ex26010100.log", "notes.txt", "u_ex260201.log"):
        (folder / name).write_text("x")
        os.utime(folder / name, (old, old))
    os.utime(folder / "u_ex260201.log", None)    # recent
    log = AccessLog(str(tmp_path))
    dest = Destination(1, str(folder), retention_days=30)
    log.emit(dest, b"a\n", T, w3c.W3C_FIELDS)
    log.close()
    assert sorted(p.name for p in folder.iterdir()) == [
        "notes.txt", "u_ex26010100.log", "u_ex260201.log", "u_ex260317.log"]


def test_retention_keeps_n_newest_files(tmp_path):
    folder = tmp_path / "W3SVC1"
    log = AccessLog(str(tmp_path))
    dest = Destination(1, str(folder), period="hourly", max_files=2)
    for hour in range(5):
        log.emit(dest, b"line\n", T + hour * 3600, w3c.W3C_FIELDS)
        log.flush()
        stamp = T + hour * 3600
        for path in folder.iterdir():   # file times follow the hours
            if path.name == logfiles.file_name("w3c", logfiles.period_key(stamp, "hourly")):
                os.utime(path, (stamp, stamp))
    log.close()
    assert sorted(p.name for p in folder.iterdir()) == ["u_ex26031703.log", "u_ex26031704.log"]


def test_stdout_writes_whole_lines_below_pipe_buf(monkeypatch):
    chunks = []
    monkeypatch.setattr(logwriter, "_write_all", lambda fd, data: chunks.append(bytes(data)))
    data = b"".join(b"%04d " % i + b"x" * 95 + b"\n" for i in range(200)) + b"y" * 5000 + b"\n"
    logwriter._write_pipe(1, data)
    assert b"".join(chunks) == data
    assert all(c.endswith(b"\n") for c in chunks)
    assert all(len(c) <= logwriter.PIPE_BUF for c in chunks[:-1]) and len(chunks[-1]) == 5001


def test_stdout_destination(tmp_path):
    read, write = os.pipe()
    saved = os.dup(1)
    os.dup2(write, 1)
    try:
        log = AccessLog(str(tmp_path))
        dest = Destination("stdout", logwriter.STDOUT)
        log.emit(dest, b"one\r\n", T, w3c.W3C_FIELDS)
        log.emit(dest, b"two\r\n", T + 86400 * 2, "date time")   # no rollover, one header
        log.close()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(write)
    text = os.read(read, 65536).decode()
    os.close(read)
    assert text.count("#Fields:") == 1 and text.endswith("one\r\ntwo\r\n")
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------- the writer thread

def test_thread_writer_never_blocks_and_drops_beyond_its_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(logwriter, "MAX_PENDING", 10_000)
    writer = ThreadWriter()
    gate = threading.Event()
    real = writer.executor.write

    def stalled(stream, data):   # a disk that hangs
        gate.wait(30)
        real(stream, data)

    writer.executor.write = stalled
    log = AccessLog(str(tmp_path), writer)
    dest = Destination(1, str(tmp_path / "W3SVC1"))
    line = b"q" * 99 + b"\n"
    started = time.monotonic()
    for _ in range(20):
        for _ in range(10):
            log.emit(dest, line, T, w3c.W3C_FIELDS)
        log.flush()                # 1 KB hand-overs: the first few queue, the rest are dropped
    handed = time.monotonic() - started
    assert writer.errors and "not keeping up" in writer.errors[0]
    gate.set()
    log.close()
    writer.stop()
    assert handed < 5   # (loose: it returned while the "disk" hung; a blocking write never would)
    body = [l for l in (tmp_path / "W3SVC1" / "u_ex260317.log").read_text().splitlines() if not l.startswith("#")]
    assert 0 < len(body) < 200 and set(body) == {"q" * 99}
    assert any("lines were dropped" in e for e in writer.errors)


def test_thread_writer_keeps_order_and_drains(tmp_path):
    writer = ThreadWriter()
    log = AccessLog(str(tmp_path), writer)
    for i in range(3000):
        log.write(1, "260317", b"%d\r\n" % i, T)
    log.flush()
    writer.drain()
    lines = (tmp_path / "W3SVC1" / "u_ex260317.log").read_text().splitlines()[4:]
    assert lines == [str(i) for i in range(3000)]
    log.close()
    writer.stop()


# ---------------------------------------------------------------------- through the front

def _rig(tmp_path, sites, log_settings=None):
    config = make_config(tmp_path, sites=sites)
    if log_settings is not None:
        config.log = log_settings
    return FrontRig(tmp_path, config=config)


def _site(site_id, **log):
    return model.Site(name=f"S{site_id}", id=site_id, bindings=[f"http/*:{8079 + site_id}:"],
                      log=model.SiteLog(**log), applications=[model.Application(path="/", pool="P")])


def _get(rig, request=b"GET /a%20b?q=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: t 1\r\n\r\n", port=8080,
         worker=None):
    worker = worker or rig.worker()
    conn, transport = rig.connect(sockname=("127.0.0.1", port))
    conn.data_received(request)
    [(stream, _, _)] = worker.requests()
    worker.respond(stream, b"hello", block=b"200 OK\r\nContent-Type: text/plain\r\n")
    rig.server.flush_logs()
    return transport.take()


def test_ncsa_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    rig = _rig(tmp_path, [_site(1, log_format="ncsa")])
    rig.server.refresh_clock(T)
    out = _get(rig)
    rig.server.close_logs()
    [line] = (tmp_path / "logs" / "W3SVC1" / "u_nc260317.log").read_text().splitlines()
    assert line == f'127.0.0.1 - - [17/Mar/2026:00:00:01 +0000] "GET /a+b?q=1 HTTP/1.1" 200 {len(out)}'
    monkeypatch.delenv("TZ")
    time.tzset()


def test_iis_native_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    rig = _rig(tmp_path, [_site(1, log_format="iis")])
    rig.server.refresh_clock(T)
    _get(rig)
    rig.server.close_logs()
    [line] = (tmp_path / "logs" / "W3SVC1" / "u_in260317.log").read_text().splitlines()
    fields = line.split(", ")
    assert fields[:4] == ["127.0.0.1", "-", "03/17/26", "0:00:01"]
    assert fields[4] == "W3SVC1" and fields[6] == "127.0.0.1"
    assert fields[10:12] == ["200", "0"] and fields[12:14] == ["GET", "/a+b"] and fields[14] == "q=1,"
    monkeypatch.delenv("TZ")
    time.tzset()


def test_json_line_with_a_custom_field(tmp_path):
    log = dict(log_format="json", log_ext_file_flags=["Date", "Time", "UriStem", "UserAgent", "HttpStatus", "TimeTaken"],
               custom_fields=[model.CustomLogField(log_field_name="x-ua", source_name="User-Agent",
                                                   source_type="request_header")])
    rig = _rig(tmp_path, [_site(1, **log)])
    rig.server.refresh_clock(T)
    _get(rig)
    rig.server.close_logs()
    [line] = (tmp_path / "logs" / "W3SVC1" / "u_js260317_x.log").read_text().splitlines()
    record = json.loads(line)
    assert list(record) == ["date", "time", "cs-uri-stem", "cs(User-Agent)", "sc-status", "time-taken", "x-ua"]
    assert record["date"] == "2026-03-17" and record["cs-uri-stem"] == "/a b"
    assert record["cs(User-Agent)"] == "t 1" and record["x-ua"] == "t 1" and record["sc-status"] == 200


def test_central_w3c_log_for_all_sites(tmp_path):
    settings = model.LogSettings(central_log_file_mode="central_w3c")
    rig = _rig(tmp_path, [_site(1), _site(2)], settings)
    rig.server.refresh_clock(T)
    worker = rig.worker()
    _get(rig, worker=worker)
    _get(rig, port=8081, worker=worker)
    rig.server.close_logs()
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["W3SVC"]
    lines = (tmp_path / "logs" / "W3SVC" / "u_ex260317.log").read_text().splitlines()
    assert lines[3] == "#Fields: " + w3c.fields_of(model.CENTRAL_LOG_FLAGS)
    names = lines[3].split(" ")[1:]
    assert [dict(zip(names, l.split(" ")))["s-sitename"] for l in lines[4:]] == ["W3SVC1", "W3SVC2"]


def test_stdout_target_writes_no_files(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(logwriter, "_write_pipe", lambda fd, data: seen.append(bytes(data)))
    rig = _rig(tmp_path, [_site(1)], model.LogSettings(log_target="stdout"))
    rig.server.refresh_clock(T)
    _get(rig)
    rig.server.close_logs()
    assert not (tmp_path / "logs" / "W3SVC1").exists()
    text = b"".join(seen).decode()
    assert text.startswith("#Software: wasp") and " GET /a+b q=1 " in text


def test_custom_fields_need_a_format_with_columns():
    text = """
        [[pools]]
        name = "P"
        [[sites]]
        name = "S"
        id = 1
        bindings = ["http/*:80:"]
        [sites.log]
        log_format = "ncsa"
        period = "fortnightly"
        [[sites.log.custom_fields]]
        log_field_name = "x-a"
        source_name = "X-A"
        source_type = "request_header"
        [[sites.applications]]
        path = "/"
        pool = "P"
        app = "m:app"
        """
    with pytest.raises(ConfigError) as info:
        load_text(text)
    assert "sites[0].log.period" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_text(text.replace('period = "fortnightly"', 'period = "weekly"'))
    assert "sites[0].log.custom_fields" in str(info.value) and "ncsa" in str(info.value)
    config = load_text(text.replace('period = "fortnightly"', 'period = "max_size"\ntruncate_size = "5MB"')
                       .replace('log_format = "ncsa"', 'log_format = "json"'))
    assert config.sites[0].log.period == "max_size" and config.sites[0].log.truncate_size == 5_000_000


def test_a_reload_closes_the_logs_of_removed_sites(tmp_path):
    rig = _rig(tmp_path, [_site(1), _site(2)])
    rig.server.refresh_clock(T)
    worker = rig.worker()
    _get(rig, worker=worker)
    _get(rig, port=8081, worker=worker)
    rig.server.flush_logs()
    assert set(rig.server.log_writer.executor.files) == {1, 2}
    rig.server.apply_config(make_config(tmp_path, sites=[_site(1)]))
    rig.server.flush_logs()
    assert set(rig.server.log_writer.executor.files) == {1}
    rig.server.close_logs()


def test_ncsa_quotes_cannot_be_broken_out_of(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        rig = _rig(tmp_path, [_site(1, log_format="ncsa")])
        rig.server.refresh_clock(T)
        _get(rig, request=b'GET /a"b HTTP/1.1\r\nHost: x\r\n\r\n')
        rig.server.close_logs()
        [line] = (tmp_path / "logs" / "W3SVC1" / "u_nc260317.log").read_text().splitlines()
        assert line.count('"') == 2 and '"GET /a%22b HTTP/1.1"' in line
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_a_site_log_directory_of_its_own(tmp_path):
    text = """
        [server]
        log_dir = "logs"
        [log.central_w3c_log_file]
        directory = "central"
        [[pools]]
        name = "P"
        [[sites]]
        name = "S1"
        id = 1
        bindings = ["http/*:8080:"]
        [sites.log]
        directory = "elsewhere"
        [[sites.applications]]
        path = "/"
        pool = "P"
        app = "m:app"
        """
    (tmp_path / "wasp.toml").write_text(text)
    from wasp.config.load import load
    config = load(str(tmp_path / "wasp.toml"))
    assert config.sites[0].log.directory == str(tmp_path / "elsewhere")
    assert config.log.central_w3c_log_file.directory == str(tmp_path / "central")
    rig = FrontRig(tmp_path, config=config)
    rig.server.refresh_clock(T)
    _get(rig)
    rig.server.close_logs()
    assert (tmp_path / "elsewhere" / "W3SVC1" / "u_ex260317.log").exists()
    from wasp.cli import service
    assert str(tmp_path / "elsewhere") in service.writable_dirs(config, [])
