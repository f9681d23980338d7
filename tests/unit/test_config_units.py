"""Durations and sizes as written in wasp.toml."""

from __future__ import annotations

import pytest

from wasp.config.units import format_duration, format_size, parse_duration, parse_size


@pytest.mark.parametrize("text, seconds", [
    ("90s", 90), ("20m", 1200), ("29h", 104400), ("1d", 86400), ("250ms", 0.25), ("0s", 0),
    ("0", 0), ("90", 90), ("1.5s", 1.5), ("1h30m", 5400), (" 5m ", 300), (90, 90), (1.5, 1.5), (0, 0),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text, fragment", [
    ("-5s", "negative"), (-1, "negative"), (-0.5, "negative"), ("5 minutes", "not a duration"),
    ("s", "not a duration"), ("", "not a duration"), ("5x", "not a duration"), ("m5", "not a duration"),
    (True, "boolean"), (float("inf"), "finite"),
])
def test_parse_duration_rejects(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_duration(text)


@pytest.mark.parametrize("text, size", [
    ("512MB", 512_000_000), ("512MiB", 512 * 1024 ** 2), ("64KiB", 65536), ("64KB", 64000),
    ("1GB", 10 ** 9), ("1.5GB", 1_500_000_000), ("1.5KiB", 1536), ("0", 0), ("100", 100),
    ("100B", 100), ("2TiB", 2 * 1024 ** 4), ("512mb", 512_000_000), ("16 KiB", 16384), (4096, 4096), (0, 0),
])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text, fragment", [
    ("-1MB", "negative"), (-1, "negative"), ("1.5B", "whole number"), ("12XB", "not a size"),
    ("MB", "not a size"), (1.5, "whole number of bytes"), (False, "boolean"),
])
def test_parse_size_rejects(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_size(text)


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (90, "90s"), (1200, "20m"), (104400, "29h"), (86400, "1d"), (0.25, "250ms"), (5400, "90m"),
])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("size, text", [
    (0, "0"), (16384, "16KiB"), (512_000_000, "512MB"), (1024 ** 3, "1GiB"), (1000, "1KB"), (1001, "1001"),
])
def test_format_size(size, text):
    assert format_size(size) == text
    assert parse_size(text) == size
