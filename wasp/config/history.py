"""Configuration history and backups on disk (IIS configHistory and appcmd's BACKUP object).

History: every change applied through wasp/config/commit.py leaves a numbered snapshot of the file
it changed, as IIS's configHistory leaves `CFGHISTORY_0000000001\\applicationHost.config`:

    <history>/CFGHISTORY_0000000007/config.toml   the file as it was after change 7
    <history>/CFGHISTORY_0000000007/change.json   {number, time, user, file, what, diff}

`<history>` is `[server.config_history] path`, by default `<run_dir>/history`; the newest
`max_histories` (IIS's 10) are kept. When a file differs from its newest snapshot (it was edited
by hand, or this is its first change) a snapshot of it as found is taken first, so every change
can be rolled back, the first one too.

Backups: `<run_dir>/backup/NAME/wasp.toml` and `backup.json`, wasp.toml only (IIS's backup holds
applicationHost.config, not the sites' web.config files). Directories are 0700, files 0600.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import shutil
import tomllib
from typing import NamedTuple

PREFIX = "CFGHISTORY_"
SNAPSHOT = "config.toml"
CHANGE = "change.json"
BACKUP_FILE = "wasp.toml"
BACKUP_META = "backup.json"
DEFAULT_MAX_HISTORIES = 10
_BACKUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class HistoryError(Exception):
    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


class Settings(NamedTuple):
    enabled: bool
    max_histories: int
    path: str  # absolute


def settings_from(data: dict, config_file: str, run_dir: str) -> Settings:
    """`[server.config_history]` read from a parsed file without validating it (the loader checks
    it; history must keep working while the file is broken)."""
    server = data.get("server") if isinstance(data.get("server"), dict) else {}
    table = server.get("config_history") if isinstance(server.get("config_history"), dict) else {}
    enabled = table.get("enabled", True)
    count = table.get("max_histories", DEFAULT_MAX_HISTORIES)
    path = table.get("path", "")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        count = DEFAULT_MAX_HISTORIES
    if not isinstance(path, str) or not path:
        path = os.path.join(run_dir, "history")
    else:
        path = os.path.normpath(os.path.join(os.path.dirname(config_file), os.path.expanduser(path)))
    return Settings(enabled is not False, count, path)


def settings_of_file(config_file: str, run_dir: str) -> Settings:
    try:
        with open(config_file, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        data = {}
    return settings_from(data, config_file, run_dir)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def now_text() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def private_dir(path: str) -> str:
    os.makedirs(path, mode=0o700, exist_ok=True)
    if os.path.islink(path):
        raise HistoryError(500, f"refusing {path}: it is a symlink")
    return path


def _write_private(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


# ---------------------------------------------------------------------- history

def _numbers(directory: str) -> list[int]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        if name.startswith(PREFIX) and name[len(PREFIX):].isdigit():
            found.append(int(name[len(PREFIX):]))
    return sorted(found)


def _dir(directory: str, number: int) -> str:
    return os.path.join(directory, f"{PREFIX}{number:010d}")


def entries(directory: str) -> list[dict]:
    """Every snapshot's change.json, oldest first (a damaged one is skipped)."""
    out = []
    for number in _numbers(directory):
        try:
            with open(os.path.join(_dir(directory, number), CHANGE), encoding="utf-8") as f:
                record = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(record, dict):
            record["number"] = number
            out.append(record)
    return out


def entry(directory: str, number: int) -> tuple[dict, str]:
    """(change.json, the snapshot's text) of snapshot `number`."""
    folder = _dir(directory, number)
    try:
        with open(os.path.join(folder, CHANGE), encoding="utf-8") as f:
            record = json.load(f)
        with open(os.path.join(folder, SNAPSHOT), encoding="utf-8") as f:
            text = f.read()
    except (OSError, ValueError):
        known = ", ".join(str(n) for n in _numbers(directory)) or "none"
        raise HistoryError(404, f'Cannot find HISTORY object with identifier "{number}". '
                                f"(snapshots: {known})") from None
    record["number"] = number
    return record, text


def latest_for(directory: str, file: str) -> dict | None:
    for record in reversed(entries(directory)):
        if record.get("file") == file:
            return record
    return None


def record(settings: Settings, file: str, text: str, user: str, what: str, diff: str) -> int | None:
    """Keep a snapshot of `file` as `text` now is; -> its number (None when history is off)."""
    if not settings.enabled:
        return None
    private_dir(settings.path)
    numbers = _numbers(settings.path)
    number = (numbers[-1] if numbers else 0) + 1
    folder = _dir(settings.path, number)
    os.mkdir(folder, 0o700)
    _write_private(os.path.join(folder, SNAPSHOT), text)
    _write_private(os.path.join(folder, CHANGE), json.dumps(
        {"number": number, "time": now_text(), "user": user, "file": file, "what": what,
         "diff": diff, "sha256": sha(text)}, indent=1))
    prune(settings)
    return number


def baseline(settings: Settings, file: str, text: str) -> int | None:
    """A snapshot of the file as found, when its newest snapshot is not that text."""
    if not settings.enabled:
        return None
    last = latest_for(settings.path, file)
    if last is not None and last.get("sha256") == sha(text):
        return None
    what = ("the file as it was before its first change through wasp" if last is None
            else "the file as found: it was changed outside wasp since the last snapshot")
    return record(settings, file, text, "(outside wasp)", what, "")


def forget(settings: Settings, number: int | None) -> None:
    if number is not None:
        shutil.rmtree(_dir(settings.path, number), ignore_errors=True)


def prune(settings: Settings) -> None:
    numbers = _numbers(settings.path)
    for number in numbers[:max(0, len(numbers) - settings.max_histories)]:
        shutil.rmtree(_dir(settings.path, number), ignore_errors=True)


# ---------------------------------------------------------------------- backups

def backup_dir(run_dir: str) -> str:
    return os.path.join(run_dir, "backup")


def check_name(name: str) -> str:
    if not _BACKUP_NAME.fullmatch(name or ""):
        raise HistoryError(400, f'"{name}" is not a backup name: use letters, digits, ".", "_" and '
                                '"-" (at most 64, not starting with "." or "-")')
    return name


def auto_name() -> str:
    """appcmd's automatic backup name: 20060519T172530."""
    return datetime.datetime.now().strftime("%Y%m%dT%H%M%S")


def backup_add(run_dir: str, name: str, text: str, user: str, file: str) -> dict:
    check_name(name)
    root = private_dir(backup_dir(run_dir))
    folder = os.path.join(root, name)
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        raise HistoryError(409, f'Failed to add duplicate collection element "{name}".') from None
    meta = {"name": name, "time": now_text(), "user": user, "file": file, "sha256": sha(text)}
    _write_private(os.path.join(folder, BACKUP_FILE), text)
    _write_private(os.path.join(folder, BACKUP_META), json.dumps(meta, indent=1))
    return meta


def backups(run_dir: str) -> list[dict]:
    root = backup_dir(run_dir)
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        try:
            with open(os.path.join(root, name, BACKUP_META), encoding="utf-8") as f:
                meta = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict):
            meta["name"] = name
            out.append(meta)
    return out


def backup_text(run_dir: str, name: str) -> str:
    check_name(name)
    try:
        with open(os.path.join(backup_dir(run_dir), name, BACKUP_FILE), encoding="utf-8") as f:
            return f.read()
    except OSError:
        raise HistoryError(404, f'Cannot find BACKUP object with identifier "{name}".') from None


def backup_delete(run_dir: str, name: str) -> None:
    check_name(name)
    folder = os.path.join(backup_dir(run_dir), name)
    if not os.path.isdir(folder) or os.path.islink(folder):
        raise HistoryError(404, f'Cannot find BACKUP object with identifier "{name}".')
    shutil.rmtree(folder)
