"""Visible state: `wasp list pools` (state, workers, queue), `wasp list wp` (pid, pool, state,
uptime, requests served, RSS), and the structured event log through `wasp events [--follow]`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

from process_support import events, get, pid_of, last_seq, process_config, wait_event

CONFIG = """
[[pools]]
name = "Web"
start_mode = "always_running"
max_processes = 2

[[pools]]
name = "Off"
auto_start = false

[[sites]]
name = "Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "Web"
app = "procapp:app"
python_path = ["{procapps}"]
[[sites.applications]]
path = "/off"
pool = "Off"
app = "procapp:app"
python_path = ["{procapps}"]
"""


def test_list_pools_and_worker_processes(wasp_server):
    server = wasp_server(process_config(CONFIG))
    server.wait_until(lambda: len(events(server, 9014, pool="Web")) == 2, 20, what="two ready workers")
    for _ in range(10):
        assert get(server, "/pid").status_code == 200
    lines = server.cli("list", "pools").stdout.splitlines()
    assert 'APPPOOL "Web" (workers:2,queue:0,state:Started)' in lines, lines
    assert 'APPPOOL "Off" (workers:0,queue:0,state:Stopped)' in lines, lines
    assert get(server, "/off/pid").status_code == 503

    def served_rows():
        rows = server.list_json("wp")
        return rows if sum(row["requests"] for row in rows) >= 10 else None

    rows = server.wait_until(served_rows, 10, interval=0.3, what="the request counts from the pongs")
    assert len(rows) == 2
    for row in rows:
        assert row["pool"] == "Web" and row["state"] == "Ready"
        assert row["uptime_s"] > 0 and row["rss"] > 1 << 20
    assert {row["pid"] for row in rows} == {e["pid"] for e in events(server, 9014, pool="Web")}
    text = server.cli("list", "wp").stdout.splitlines()
    assert sorted(text) == sorted(f'WP "{row["pid"]}" (applicationPool:Web)' for row in rows)
    # appcmd's /text:* view carries state, uptime, requests served and RSS in plain text too.
    detail = server.cli("list", "wp", "--text", "*").stdout
    blocks = [block for block in detail.split("WP\n") if block.strip()]
    assert len(blocks) == 2, detail
    for block in blocks:
        fields = dict(line.strip().split(":", 1) for line in block.splitlines())
        assert fields["APPPOOL.NAME"] == '"Web"' and fields["state"] == '"Ready"'
        assert float(fields["uptime_s"].strip('"')) > 0 and int(fields["rss"].strip('"')) > 1 << 20
        assert int(fields["requests"].strip('"')) >= 0
    assert sorted(server.cli("list", "wp", "--text", "pid").stdout.split()) == sorted(str(r["pid"]) for r in rows)


def test_events_carry_iis_ids_in_jsonl_and_through_the_cli(wasp_server):
    server = wasp_server(process_config(CONFIG))
    wait_event(server, 9014, 20, pool="Web", count=2)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(wasp_server.repo), os.environ.get("PYTHONPATH", "")]))
    follow = subprocess.Popen(
        [sys.executable, "-m", "wasp.cli.main", "events", "--follow", "--json", "--since",
         str(last_seq(server)), "-c", str(server.config)],
        cwd=wasp_server.repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: list[dict] = []

    def read():
        for line in follow.stdout:
            seen.append(json.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        server.cli("recycle", "pool", "Web")
        server.wait_until(lambda: [e["id"] for e in seen].count(9016) == 2, 20,
                          what=lambda: f"the recycle's events from `wasp events --follow`: {seen}")
    finally:
        follow.kill()
        follow.wait(10)
        reader.join(10)
    # The admin action itself is event 9075 (who did it, no pool); the pool's events follow.
    audits = [e for e in seen if e["id"] == 9075]
    assert [(e["action"], e["target"]) for e in audits] == [("recycle pool", "Web")]
    seen = [e for e in seen if e["id"] != 9075]
    ids = [e["id"] for e in seen]
    assert ids[0] == 5079 and ids.count(9013) == 2 and ids.count(9014) == 2 and ids.count(9016) == 2, ids
    assert all(e["pool"] == "Web" and e["level"] == "Information" for e in seen)
    history = server.cli("events", "--json").stdout.splitlines()
    records = [json.loads(line) for line in history]
    assert {9001, 9013, 9014, 5079, 9016} <= {r["id"] for r in records}
    assert records == sorted(records, key=lambda r: r["seq"])
    text = server.cli("events").stdout
    assert "5079 Information: An administrator has requested a recycle of all worker processes in " \
           "application pool 'Web'." in text
    assert pid_of(server) > 0
