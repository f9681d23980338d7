"""Durations and sizes as an admin writes them in wasp.toml, and back.

Durations: "90s", "20m", "29h", "1d", "250ms", a combination such as "1h30m", or a bare number of
seconds. Sizes: "512MB", "64KiB", "1.5GB", "0", or a bare number of bytes. Decimal units are powers
of 1000 and binary units (KiB, MiB, ...) powers of 1024, as on every other Linux tool that tells
them apart.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_DURATION_UNITS = {"ms": Decimal("0.001"), "s": Decimal(1), "m": Decimal(60), "h": Decimal(3600),
                   "d": Decimal(86400)}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")

_SIZE_UNITS = {
    "": 1, "b": 1,
    "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3, "tb": 1000 ** 4,
    "kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3, "tib": 1024 ** 4,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")


def parse_duration(value: str | int | float) -> float:
    """Seconds in a duration; ValueError with a message an admin can act on."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as \"90s\", got a boolean")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite duration")
        if value < 0:
            raise ValueError(f"a duration cannot be negative (got {value!r})")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as \"90s\", got {type(value).__name__}")
    text = value.strip()
    if text.startswith("-"):
        raise ValueError(f"a duration cannot be negative (got \"{value}\")")
    if _NUMBER.fullmatch(text):
        return float(Decimal(text))
    pos, total = 0, Decimal(0)
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += Decimal(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(text):
        raise ValueError(
            f"\"{value}\" is not a duration; write a number with a unit: \"250ms\", \"90s\", \"20m\", "
            f"\"29h\", \"1d\" (or a bare number of seconds)")
    return float(total)


def parse_size(value: str | int) -> int:
    """Bytes in a size; ValueError with a message an admin can act on."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as \"512MB\", got a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative (got {value})")
        return value
    if isinstance(value, float):
        raise ValueError(f"write a size as a whole number of bytes or with a unit (\"1.5GB\"), not {value!r}")
    if not isinstance(value, str):
        raise ValueError(f"expected a size such as \"512MB\", got {type(value).__name__}")
    text = value.strip()
    if text.startswith("-"):
        raise ValueError(f"a size cannot be negative (got \"{value}\")")
    match = _SIZE.fullmatch(text.lower())
    if not match or match.group(2) not in _SIZE_UNITS:
        raise ValueError(
            f"\"{value}\" is not a size; write a number with a unit: \"64KiB\", \"512MB\", \"1.5GB\" "
            f"(KB/MB/GB = 1000^n, KiB/MiB/GiB = 1024^n) or a bare number of bytes")
    try:
        amount = Decimal(match.group(1)) * _SIZE_UNITS[match.group(2)]
    except InvalidOperation:  # pragma: no cover - the regex admits only plain decimals
        raise ValueError(f"\"{value}\" is not a size") from None
    if amount != amount.to_integral_value():
        raise ValueError(f"\"{value}\" is not a whole number of bytes")
    return int(amount)


def format_duration(seconds: float) -> str:
    """The shortest exact spelling: 1200 -> "20m", 104400 -> "29h", 0.25 -> "250ms", 0 -> "0s"."""
    if seconds == 0:
        return "0s"
    for unit, factor in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= factor and seconds % factor == 0:
            return f"{int(seconds // factor)}{unit}"
    millis = seconds * 1000
    if millis == int(millis):
        return f"{int(millis)}ms"
    return f"{seconds:g}s"


def format_size(size: int) -> str:
    """The shortest exact spelling: 16384 -> "16KiB", 512000000 -> "512MB", 0 -> "0"."""
    if size == 0:
        return "0"
    for unit in ("TiB", "TB", "GiB", "GB", "MiB", "MB", "KiB", "KB"):
        factor = _SIZE_UNITS[unit.lower()]
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)
