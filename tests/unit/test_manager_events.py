"""The event log: IIS wording, the file, numbering across restarts."""

from __future__ import annotations

import io
import json

from wasp.manager.events import CATALOGUE, EventLog, format_message, read_events


def test_iis_wording():
    level, text = format_message(5074, "DefaultAppPool", 42, {})
    assert level == "Information"
    assert text == ("A worker process with process id of '42' serving application pool 'DefaultAppPool' "
                    "has requested a recycle because the worker process reached its allowed processing "
                    "time limit.")
    assert format_message(5186, "P", 7, {"minutes": "20"})[1].endswith(
        "Application Pool timeout configuration was set to 20 minutes. "
        "A new worker process will be started when needed.")
    assert format_message(5002, "P", 0, {})[0] == "Error"


def test_every_required_id_is_there():
    for event_id in (5002, 5009, 5010, 5013, 5074, 5075, 5079, 5080, 5186):
        assert event_id in CATALOGUE


def test_missing_field_does_not_raise():
    level, text = format_message(5009, "P", 1, {})
    assert "P" in text


def test_log_file_stderr_and_since(tmp_path):
    path = tmp_path / "events.jsonl"
    err = io.StringIO()
    log = EventLog(str(path), err)
    log.write(5079, "P")
    log.write(5010, "P", 99)
    log.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["seq"], r["id"], r["pool"]) for r in lines] == [(1, 5079, "P"), (2, 5010, "P")]
    assert "event 5010" in err.getvalue() and "'99'" in err.getvalue()
    again = EventLog(str(path), io.StringIO())
    assert again.write(5002, "P")["seq"] == 3
    assert [r["seq"] for r in again.since(0)] == [3]
    again.close()
    assert [r["id"] for r in read_events(str(path), since=1)] == [5010, 5002]
