"""Log file names, rollover keys and retention, as IIS names them. No I/O.

IIS's logFile `period` (iis-behaviour.md §1.2 logFile, §5.7): the file's name carries the period
it covers, `u_` first because the log is UTF-8, `_x` last when the site logs custom fields:

    hourly    u_exYYMMDDHH.log        daily     u_exYYMMDD.log
    weekly    u_exYYMMWW.log          monthly   u_exYYMM.log
    max_size  u_extendN.log           (N from 1, a new N after truncate_size bytes)

WW is the week of the month, 01 for the days up to the first Saturday (IIS's weeks start on
Sunday). The boundaries are UTC unless local_time_rollover; the times inside W3C lines are UTC
whatever it says. The prefix is the format's: W3C `ex`/`extend`, NCSA `nc`/`ncsa`, IIS
`in`/`inetsv` (Microsoft's names), JSON lines `js`/`json` (wasp's own).
"""

from __future__ import annotations

import re
import time

#: format -> (prefix of a time-named file, prefix of a size-numbered one)
PREFIXES = {"w3c": ("ex", "extend"), "ncsa": ("nc", "ncsa"), "iis": ("in", "inetsv"), "json": ("js", "json")}

#: IIS's truncateSize minimum: a smaller value is taken as this (S2 logFile).
MIN_TRUNCATE_SIZE = 1024 * 1024

PERIODS = ("max_size", "hourly", "daily", "weekly", "monthly")


def week_of_month(t: time.struct_time) -> int:
    """1 for the days up to the month's first Saturday, then one more each Sunday."""
    first_weekday = (t.tm_wday - (t.tm_mday - 1)) % 7      # Monday = 0 ... Sunday = 6
    offset = (first_weekday + 1) % 7                         # days of that week before the 1st, Sunday-based
    return (t.tm_mday - 1 + offset) // 7 + 1


def period_key(timestamp: float, period: str, local: bool = False) -> str:
    """The part of the file name the period sets; "" for max_size (the writer numbers those)."""
    if period == "max_size":
        return ""
    t = time.localtime(timestamp) if local else time.gmtime(timestamp)
    yy, mm = t.tm_year % 100, t.tm_mon
    if period == "hourly":
        return "%02d%02d%02d%02d" % (yy, mm, t.tm_mday, t.tm_hour)
    if period == "daily":
        return "%02d%02d%02d" % (yy, mm, t.tm_mday)
    if period == "weekly":
        return "%02d%02d%02d" % (yy, mm, week_of_month(t))
    if period == "monthly":
        return "%02d%02d" % (yy, mm)
    raise ValueError(f"unknown log period {period!r}")


def file_name(log_format: str, key: str, suffix: str = "") -> str:
    """`u_<prefix><key><suffix>.log` for a time key."""
    return f"u_{PREFIXES[log_format][0]}{key}{suffix}.log"


def numbered_name(log_format: str, number: int, suffix: str = "") -> str:
    """`u_<size prefix><N><suffix>.log` for period = max_size."""
    return f"u_{PREFIXES[log_format][1]}{number}{suffix}.log"


def name_pattern(log_format: str, period: str, suffix: str = "") -> re.Pattern:
    """What this stream's own files look like (retention never touches anything else). Group 1
    is the key or number."""
    time_prefix, size_prefix = PREFIXES[log_format]
    digits = {"hourly": 8, "daily": 6, "weekly": 6, "monthly": 4}.get(period)
    if digits is None:
        return re.compile(rf"u_{size_prefix}(\d+){re.escape(suffix)}\.log")
    return re.compile(rf"u_{time_prefix}(\d{{{digits}}}){re.escape(suffix)}\.log")


def truncate_size(value: int) -> int:
    return max(MIN_TRUNCATE_SIZE, int(value))


def expired(files: list[tuple[str, float]], now: float, retention_days: float, max_files: int,
            keep: str = "") -> list[str]:
    """Of a stream's files (name, mtime), those retention deletes: older than retention_days
    (0 = no age limit), and beyond the newest max_files (0 = no count limit). `keep` (the file
    being written) is never among them."""
    out: set[str] = set()
    newest_first = sorted(files, key=lambda f: (f[1], f[0]), reverse=True)
    if retention_days > 0:
        limit = now - retention_days * 86400
        out.update(name for name, mtime in newest_first if mtime < limit)
    if max_files > 0:
        out.update(name for name, _ in newest_first[max_files:])
    out.discard(keep)
    return sorted(out)
