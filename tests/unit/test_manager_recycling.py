"""Recycling arithmetic."""

from __future__ import annotations

import random
import time

import pytest

from wasp.manager.recycling import jitter, next_scheduled, parse_time_of_day, spawn_backoff


def test_jitter_is_small_and_bounded():
    rng = random.Random(3)
    for _ in range(100):
        assert 0 <= jitter(100.0, rng) <= 2.0
        assert 0 <= jitter(29 * 3600.0, rng) <= 60.0


@pytest.mark.parametrize("text,seconds", [("03:00", 10800), ("23:59", 86340), ("00:00:30", 30)])
def test_parse_time_of_day(text, seconds):
    assert parse_time_of_day(text) == seconds


@pytest.mark.parametrize("text", ["24:00", "3", "aa:bb", "12:60", ""])
def test_parse_time_of_day_rejects(text):
    with pytest.raises(ValueError):
        parse_time_of_day(text)


def test_next_scheduled_picks_the_next_local_time():
    base = time.mktime((2024, 6, 1, 12, 0, 0, 0, 0, -1))
    assert next_scheduled(["13:30"], base) == time.mktime((2024, 6, 1, 13, 30, 0, 0, 0, -1))
    assert next_scheduled(["11:00"], base) == time.mktime((2024, 6, 2, 11, 0, 0, 0, 0, -1))
    assert next_scheduled(["11:00", "12:30"], base) == time.mktime((2024, 6, 1, 12, 30, 0, 0, 0, -1))
    assert next_scheduled(["12:00"], base) == time.mktime((2024, 6, 2, 12, 0, 0, 0, 0, -1))
    assert next_scheduled([], base) is None
    assert next_scheduled(["bogus"], base) is None


def test_spawn_backoff_grows_and_caps():
    assert spawn_backoff(0) == spawn_backoff(1) == 0
    assert 0 < spawn_backoff(2) < spawn_backoff(3) < spawn_backoff(4)
    assert spawn_backoff(50) == 10.0
