"""wasp.front.accesslog: W3C files per site and period, buffering, HTTPERR rollover."""

from __future__ import annotations

from front_fakes import FrontRig
from wasp.config import model
from wasp.front.accesslog import FLUSH_AT, AccessLog, ErrorLog
from wasp.wire import w3c

T = 1773705601.0  # 2026-03-17 00:00:01 UTC


def content(path):
    return path.read_text().splitlines()


def test_file_created_at_first_line_with_header(tmp_path):
    log = AccessLog(str(tmp_path))
    assert not (tmp_path / "W3SVC1").exists()
    log.write(1, "260317", b"line one\r\n", T)
    log.flush()
    lines = content(tmp_path / "W3SVC1" / "u_ex260317.log")
    assert lines[0].startswith("#Software: wasp ")
    assert lines[1:3] == ["#Version: 1.0", "#Date: 2026-03-17 00:00:01"]
    assert lines[3] == "#Fields: " + w3c.W3C_FIELDS
    assert lines[4] == "line one"


def test_lines_are_buffered_until_flush_or_64k(tmp_path):
    log = AccessLog(str(tmp_path))
    log.write(1, "260317", b"x\r\n", T)
    path = tmp_path / "W3SVC1" / "u_ex260317.log"
    assert path.read_bytes() == b""
    line = b"y" * 1000 + b"\r\n"
    for _ in range(FLUSH_AT // len(line) + 1):
        log.write(1, "260317", line, T)
    assert path.stat().st_size >= FLUSH_AT
    log.close()


def test_new_period_starts_a_new_file_with_its_own_header(tmp_path):
    log = AccessLog(str(tmp_path))
    log.write(2, "26031700", b"a\r\n", T)
    log.write(2, "26031701", b"b\r\n", T + 3600)
    log.close()
    first = content(tmp_path / "W3SVC2" / "u_ex26031700.log")
    second = content(tmp_path / "W3SVC2" / "u_ex26031701.log")
    assert first[-1] == "a" and second[-1] == "b"
    assert second[2] == "#Date: 2026-03-17 01:00:01"


def test_sites_log_separately(tmp_path):
    log = AccessLog(str(tmp_path))
    log.write(1, "260317", b"one\r\n", T)
    log.write(2, "260317", b"two\r\n", T)
    log.close()
    assert content(tmp_path / "W3SVC1" / "u_ex260317.log")[-1] == "one"
    assert content(tmp_path / "W3SVC2" / "u_ex260317.log")[-1] == "two"


def test_unwritable_log_dir_drops_lines_and_reports(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    log = AccessLog(str(blocker))
    log.write(1, "260317", b"x\r\n", T)
    log.close()
    assert log.errors and "cannot open" in log.errors[0]


def test_httperr_rolls_over_after_1mb(tmp_path):
    log = ErrorLog(str(tmp_path))
    line = b"z" * 999 + b"\n"
    for _ in range(1100):
        log.write(line, T)
    log.close()
    first = tmp_path / "httperr" / "httperr1.log"
    second = tmp_path / "httperr" / "httperr2.log"
    assert first.stat().st_size <= w3c.HTTPERR_FILE_SIZE
    assert second.exists()
    assert content(second)[3] == "#Fields: " + w3c.HTTPERR_FIELDS
    # A new process continues the last file while it has room.
    again = ErrorLog(str(tmp_path))
    again.write(b"later\n", T)
    again.close()
    assert content(second)[-1] == "later"


def test_two_fronts_roll_httperr_over_to_the_same_file(tmp_path, monkeypatch):
    """Two ErrorLogs (two fronts) appending to one folder: whole lines only, and when the file
    fills they go on in the same next file, whoever rolls first."""
    monkeypatch.setattr(w3c, "HTTPERR_FILE_SIZE", 20_000)
    a, b = ErrorLog(str(tmp_path)), ErrorLog(str(tmp_path))
    lines = {a: b"a" * 99 + b"\n", b: b"b" * 99 + b"\n"}
    for i in range(300):
        for log in (a, b):
            log.write(lines[log], T)
        if i % 7 == 0:
            a.flush()
        if i % 11 == 0:
            b.flush()
    a.close()
    b.close()
    names = sorted(p.name for p in (tmp_path / "httperr").iterdir())
    texts = [content(tmp_path / "httperr" / n) for n in names]
    body = [line for text in texts for line in text if not line.startswith("#")]
    assert sorted(set(body)) == ["a" * 99, "b" * 99] and len(body) == 600   # none torn or lost
    assert len(names) >= 2 and names == [f"httperr{i}.log" for i in range(1, len(names) + 1)]
    for name in names[:-1]:
        # Full before the next one began (overshooting by at most a flush of the other front).
        assert 20_000 - 200 <= (tmp_path / "httperr" / name).stat().st_size <= 20_000 + 11 * 100 + 1000


def test_server_logs_hourly_sites_by_hour(tmp_path):
    site = model.Site(name="S", id=5, bindings=["http/*:8080:"], log=model.SiteLog(period="hourly"),
                      applications=[model.Application(path="/", pool="P")])
    rig = FrontRig(tmp_path, sites=[site])
    rig.server.refresh_clock(T)
    worker = rig.worker()
    conn, _ = rig.connect()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, _, _)] = worker.requests()
    worker.respond(sid)
    rig.server.close_logs()
    [name] = [p.name for p in (tmp_path / "logs" / "W3SVC5").iterdir()]
    assert name == "u_ex26031700.log"


def test_disabled_site_log_writes_nothing(tmp_path):
    site = model.Site(name="S", id=1, bindings=["http/*:8080:"], log=model.SiteLog(enabled=False),
                      applications=[model.Application(path="/", pool="P")])
    rig = FrontRig(tmp_path, sites=[site])
    worker = rig.worker()
    conn, _ = rig.connect()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, _, _)] = worker.requests()
    worker.respond(sid)
    rig.server.close_logs()
    assert not (tmp_path / "logs" / "W3SVC1").exists()
