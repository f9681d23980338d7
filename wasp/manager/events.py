"""The manager's event log: IIS WAS event ids and texts, written to log_dir/events.jsonl.

Events IIS has are logged under IIS's id with IIS's wording (reference §8.2). What IIS has no
event for (the front, config reloads, start-up) uses ids from 9000 up, which IIS does not use.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from typing import TextIO

# id -> (level, message template). Templates take pool, pid and the event's own data.
CATALOGUE: dict[int, tuple[str, str]] = {
    5002: ("Error", "Application pool '{pool}' is being automatically disabled due to a series of "
                    "failures in the process(es) serving that application pool."),
    5009: ("Warning", "A process serving application pool '{pool}' terminated unexpectedly. The "
                      "process id was '{pid}'. The process exit code was '{code}'."),
    5010: ("Warning", "A process serving application pool '{pool}' failed to respond to a ping. "
                      "The process id was '{pid}'."),
    5013: ("Warning", "A process serving application pool '{pool}' exceeded time limits during "
                      "shut down. The process id was '{pid}'."),
    5074: ("Information", "A worker process with process id of '{pid}' serving application pool "
                          "'{pool}' has requested a recycle because the worker process reached "
                          "its allowed processing time limit."),
    5075: ("Information", "A worker process with process id of '{pid}' serving application pool "
                          "'{pool}' has requested a recycle because it reached its allowed "
                          "request limit."),
    5076: ("Information", "A worker process with process id of '{pid}' serving application pool "
                          "'{pool}' has requested a recycle because it reached its scheduled "
                          "recycle time."),
    5077: ("Information", "A worker process with process id of '{pid}' serving application pool "
                          "'{pool}' has requested a recycle because it reached its virtual memory "
                          "limit."),
    5079: ("Information", "An administrator has requested a recycle of all worker processes in "
                          "application pool '{pool}'."),
    5080: ("Information", "The worker processes serving application pool '{pool}' are being "
                          "recycled due to 1 or more configuration changes in the application "
                          "pool properties which necessitate a restart of the processes."),
    5117: ("Information", "A worker process serving application pool '{pool}' has requested a "
                          "recycle because it reached its private bytes memory limit."),
    5186: ("Information", "A worker process with process id of '{pid}' serving application pool "
                          "'{pool}' was shutdown due to inactivity. Application Pool timeout "
                          "configuration was set to {minutes} minutes. A new worker process will "
                          "be started when needed."),
    # wasp's own.
    9001: ("Information", "wasp started (pid {pid}); listening on {listeners}."),
    9002: ("Information", "wasp is shutting down."),
    9003: ("Information", "wasp stopped."),
    9004: ("Information", "Configuration reloaded from {source}."),
    9005: ("Error", "Configuration reload rejected: {problems}"),
    9006: ("Error", "The front process (pid {pid}) exited unexpectedly with code {code}; "
                    "restarting it."),
    9007: ("Warning", "The front process (pid {pid}) failed to respond to a ping; killing it."),
    9008: ("Warning", "A process serving application pool '{pool}' did not start within the "
                      "startup time limit. The process id was '{pid}'."),
    9009: ("Error", "A process serving application pool '{pool}' failed to load its "
                    "application: {error}. The process id was '{pid}'."),
    9010: ("Information", "Application pool '{pool}' was started."),
    9011: ("Information", "Application pool '{pool}' was stopped."),
    9012: ("Error", "Could not start a process for application pool '{pool}': {error}"),
    9013: ("Information", "A process serving application pool '{pool}' was started as user "
                          "'{user}'. The process id was '{pid}'."),
    9014: ("Information", "A process serving application pool '{pool}' is ready after "
                          "{startup_s} seconds and now takes requests. The process id was '{pid}'."),
    9015: ("Warning", "A process serving application pool '{pool}' failed ({reason}) and was "
                      "orphaned: it is left running, detached from the pool. The process id was "
                      "'{pid}'."),
    9016: ("Information", "A process serving application pool '{pool}' exited (code {code}). "
                          "The process id was '{pid}'."),
    9017: ("Warning", "The CPU and memory limits of application pool '{pool}' are not applied: "
                      "{reason}"),
    9018: ("Information", "Application pool '{pool}' runs in cgroup {cgroup} ({limits})."),
    9019: ("Warning", "Application pool '{pool}': {reason}"),
    9020: ("Warning", "Application pool '{pool}' used {used_pct}% CPU over the last {window_s} "
                      "seconds, over its limit of {limit_pct}%; the action is {action}."),
    9021: ("Error", "A replacement process for application pool '{pool}' failed to start "
                    "(attempt {attempt}): {error}. The pool's running workers keep serving; the "
                    "next try is in {retry_s} seconds."),
    9022: ("Information", "The worker processes serving application pool '{pool}' are being "
                          "recycled because its Python code changed (wasp serve --reload): "
                          "{files}."),
    9023: ("Information", "The worker processes serving application pool '{pool}' are being "
                          "recycled because a file in its recycling.monitor_changes_to changed: "
                          "{files}."),
    # Configuration changes through the admin API (docs/appcmd.md).
    9070: ("Information", "The configuration was changed by {user}: {what} ({file}; history "
                          "{history})."),
    9071: ("Warning", "A configuration change by {user} was refused: {error} {problems}"),
    9072: ("Information", "The configuration was restored from {source} by {user} ({file}; "
                          "history {history})."),
    9073: ("Information", "Configuration backup '{backup}' was added by {user}."),
    9074: ("Information", "Configuration backup '{backup}' was deleted by {user}."),
    9080: ("Information", "Upgrade: a new manager (pid {pid}) is starting from the installed wasp."),
    9081: ("Error", "Upgrade failed: {reason}; the running manager keeps serving."),
    9082: ("Information", "Upgrade: the new manager (pid {pid}) serves; the old one ({old}) drains and exits."),
    9075: ("Information", "Admin action '{action}' on '{target}' by {user}: {outcome}."),
    # Automatic certificates (docs/acme.md).
    9060: ("Information", "A certificate for '{host}' was issued by the ACME CA {directory} "
                          "(serial {serial}, expires {expires}); it is served from now on."),
    9061: ("Information", "The certificate for '{host}' was renewed by the ACME CA {directory} "
                          "(serial {serial}, expires {expires}); it is served from now on."),
    9062: ("Warning", "Obtaining a certificate for '{host}' from the ACME CA {directory} failed: "
                      "{error}. The certificate served now keeps serving; the next try is in "
                      "{retry_s} seconds."),
    # Request execution (from 9030): the worker's thread stacks are in the message and in `stacks`.
    9030: ("Error", "Request execution limit exceeded: {url} (application {app}) in application "
                    "pool '{pool}' still runs after {elapsed_s} seconds, past its "
                    "execution_timeout of {limit_s} seconds and a grace period. The process id "
                    "was '{pid}'; it is being replaced. Thread stacks:\n{stacks}"),
}


#: The recycling trigger behind each recycle event (IIS logEventOnRecycle flag names, snake_case),
#: written as the event's `reason` field.
RECYCLE_REASONS = {5074: "time", 5075: "requests", 5076: "schedule", 5077: "memory",
                   5079: "on_demand", 5080: "config_change", 5117: "private_memory",
                   9022: "code_change", 9023: "monitor_changes_to"}


def format_message(event_id: int, pool: str, pid: int, data: dict) -> tuple[str, str]:
    """(level, message) for an event."""
    level, template = CATALOGUE.get(event_id, ("Information", "{text}"))
    fields = _Fields(pool=pool, pid=pid, text="")
    fields.update(data)
    return level, template.format_map(fields)


class _Fields(dict):
    def __missing__(self, key: str) -> str:
        return "?"  # an event with a field missing still gets written


class EventLog:
    """Appends events to events.jsonl, echoes them to stderr, and keeps recent ones in memory
    for the admin API's /events."""

    KEEP = 1000

    def __init__(self, path: str, stderr: TextIO | None = None):
        self.path = path
        self.stderr = stderr if stderr is not None else sys.stderr
        self.seq = _last_seq(path)
        self.recent: list[dict] = []
        self._file = open(path, "a", encoding="utf-8", buffering=1)

    def write(self, event_id: int, pool: str = "", pid: int = 0, data: dict | None = None) -> dict:
        data = data or {}
        level, message = format_message(event_id, pool, pid, data)
        self.seq += 1
        now = datetime.datetime.now(datetime.timezone.utc)
        record = {"seq": self.seq, "time": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                  "id": event_id, "level": level, "pool": pool, "pid": pid, "message": message}
        if event_id in RECYCLE_REASONS:
            record["reason"] = RECYCLE_REASONS[event_id]
        for key, value in data.items():
            record.setdefault(key, value)
        try:
            self._file.write(json.dumps(record, default=str) + "\n")
        except OSError:
            pass  # a full disk must not take the server down; stderr still has it
        self.recent.append(record)
        if len(self.recent) > self.KEEP:
            del self.recent[: len(self.recent) - self.KEEP]
        try:
            self.stderr.write(f"wasp: event {event_id} {level}: {message}\n")
            self.stderr.flush()
        except (OSError, ValueError):
            pass
        return record

    def since(self, seq: int) -> list[dict]:
        return [r for r in self.recent if r["seq"] > seq]

    def close(self) -> None:
        self._file.close()


def _last_seq(path: str) -> int:
    """The seq of the last event already in the file, so numbering goes on across restarts."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 65536))
            tail = f.read().splitlines()
    except OSError:
        return 0
    for line in reversed(tail):
        try:
            return int(json.loads(line)["seq"])
        except (ValueError, KeyError, TypeError):
            continue
    return 0


def read_events(path: str, since: int = 0) -> list[dict]:
    """Events in the file with seq > since (for `wasp events` when the server is not running)."""
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and record.get("seq", 0) > since:
                    out.append(record)
    except OSError:
        pass
    return out
