"""Recycling arithmetic: jitter, scheduled times, memory samples, spawn back-off. Pure functions."""

from __future__ import annotations

import random
import time as _time

#: Largest spread added to recycling.time, so a web garden's workers do not all restart at once.
MAX_JITTER_S = 60.0
#: Samples in a row over a memory limit before a worker is recycled: one request that allocates a
#: lot and frees it again must not recycle the worker. Samples come with each pong.
MEMORY_SAMPLES = 3


def jitter(period_s: float, rng: random.Random) -> float:
    """Seconds added to one worker's recycling.time deadline: up to 2% of it, at most a minute."""
    return rng.uniform(0.0, min(MAX_JITTER_S, period_s * 0.02))


def parse_time_of_day(text: str) -> int:
    """"HH:MM" or "HH:MM:SS" -> seconds after midnight. Raises ValueError."""
    parts = text.strip().split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a time of day: {text!r}")
    hours, minutes = int(parts[0]), int(parts[1])
    seconds = int(parts[2]) if len(parts) == 3 else 0
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"not a time of day: {text!r}")
    return hours * 3600 + minutes * 60 + seconds


def next_scheduled(schedule: list[str], wall: float) -> float | None:
    """The first wall-clock time strictly after `wall` that matches a schedule entry (local time).

    Entries that do not parse are skipped (the config validator reports them)."""
    offsets = []
    for entry in schedule:
        try:
            offsets.append(parse_time_of_day(entry))
        except ValueError:
            continue
    if not offsets:
        return None
    best = None
    lt = _time.localtime(wall)
    for day in range(0, 3):
        for offset in offsets:
            h, rem = divmod(offset, 3600)
            m, s = divmod(rem, 60)
            # mktime with an out-of-range day normalises it, and picks the DST offset itself.
            candidate = _time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday + day, h, m, s, 0, 0, -1))
            if candidate > wall and (best is None or candidate < best):
                best = candidate
        if best is not None:
            return best
    return best


def spawn_backoff(consecutive_failures: int) -> float:
    """Delay before starting a worker after this many failures in a row.

    The first replacement starts at once; later ones back off (0.25 s doubling, at most 10 s), so a
    pool whose app cannot load does not fork in a tight loop even with rapid-fail protection off."""
    if consecutive_failures <= 1:
        return 0.0
    return min(10.0, 0.25 * 2 ** (consecutive_failures - 2))


#: A failed replacement (a broken deploy, the old worker still serving) is retried after 1 s,
#: doubling up to this cap.
REPLACEMENT_BACKOFF_CAP = 60.0


def replacement_backoff(attempts: int) -> float:
    """Delay before the next try after `attempts` failed replacements in a row: 1, 2, 4 ... 60 s."""
    return min(REPLACEMENT_BACKOFF_CAP, 2.0 ** max(0, attempts - 1))


def memory_verdict(recycling, w) -> int | None:
    """Count the worker's latest memory sample (`w.vms`, `w.uss`) against the pool's limits.

    Returns the recycle event id (5077 virtual, 5117 private) once a limit has been exceeded by
    MEMORY_SAMPLES samples in a row, else None. A sample under the limit starts the count over."""
    w.over_vms = w.over_vms + 1 if recycling.memory > 0 and w.vms > recycling.memory else 0
    w.over_uss = (w.over_uss + 1 if recycling.private_memory > 0 and w.uss > recycling.private_memory
                  else 0)
    if w.over_vms >= MEMORY_SAMPLES:
        return 5077
    if w.over_uss >= MEMORY_SAMPLES:
        return 5117
    return None
