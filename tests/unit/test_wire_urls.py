"""wasp.wire.urls: the cooked URL, as HTTP.sys makes it (reference §5.5)."""

from __future__ import annotations

import pytest

from wasp.wire.http import InvalidUrl
from wasp.wire.urls import cook_path, cook_target, percent_decode, remove_dot_segments, split_target


@pytest.mark.parametrize("raw, cooked", [
    (b"/", b"/"),
    (b"/a/b/c.txt", b"/a/b/c.txt"),
    (b"/a%20b", b"/a b"),
    (b"/caf%C3%A9", b"/caf\xc3\xa9"),
    (b"/caf%c3%a9", b"/caf\xc3\xa9"),
    (b"/%41%42", b"/AB"),
    (b"/a%2Fb", b"/a/b"),                     # %2F is decoded before IIS sees it
    (b"/a%5Cb", b"/a/b"),                     # %5C arrives as "/"
    (b"/a\\b\\c", b"/a/b/c"),
    (b"/%u00e9", b"/\xc3\xa9"),               # PercentUAllowed
    (b"/%U20AC", b"/\xe2\x82\xac"),
    (b"/a/./b", b"/a/b"),
    (b"/a/b/../c", b"/a/c"),
    (b"/RootTest/SubDir1\\SubDir2/../../SubDir5/SubDir6", b"/RootTest/SubDir5/SubDir6"),  # KB 896287
    (b"/a/b/..", b"/a/"),
    (b"/a/b/.", b"/a/b/"),
    (b"/a/..", b"/"),
    (b"/.", b"/"),
    (b"/a/%2e%2e/b", b"/b"),
    (b"/.hidden/x", b"/.hidden/x"),
    (b"/a/..b/c", b"/a/..b/c"),
    (b"/a//b", b"/a//b"),                     # empty segments are kept
    (b"/%25", b"/%"),                         # decoded once, never twice
    (b"/%2525", b"/%25"),
])
def test_cook_path(raw, cooked):
    assert cook_path(raw) == cooked


@pytest.mark.parametrize("raw", [
    b"/%", b"/%4", b"/%zz", b"/%4g", b"/a%", b"/%u12", b"/%uzzzz", b"/% 41", b"/%+1",
    b"/..", b"/../x", b"/a/../..", b"/%2e%2e", b"/a/%2e%2e/%2e%2e/b", b"/a\\..\\..",
    b"/%00", b"/a%0Ab", b"/%0d%0a", b"/%1f", b"/%7f", b"/%c2%85", b"/%u0000", b"/%u009F",
    b"/%ud800",
])
def test_cook_path_rejects(raw):
    with pytest.raises(InvalidUrl) as info:
        cook_path(raw)
    assert info.value.status == 400
    assert info.value.reason == "URL"


def test_fast_path_returns_the_same_object():
    raw = b"/plain/path/index.html"
    assert cook_path(raw) is raw


@pytest.mark.parametrize("target, expected", [
    (b"/", (b"/", b"", None)),
    (b"/p?q=1&r=%zz", (b"/p", b"q=1&r=%zz", None)),        # the query is opaque
    (b"/p?", (b"/p", b"", None)),
    (b"/p?a?b", (b"/p", b"a?b", None)),
    (b"/p#frag", (b"/p", b"", None)),
    (b"*", (b"*", b"", None)),
    (b"http://Example.test:8080/x/y?z", (b"/x/y", b"z", b"Example.test:8080")),
    (b"http://example.test", (b"/", b"", b"example.test")),
    (b"HTTP://example.test?q", (b"/", b"q", b"example.test")),
    (b"https://h/p", (b"/p", b"", b"h")),
])
def test_split_target(target, expected):
    assert split_target(target) == expected


@pytest.mark.parametrize("target", [b"ftp://h/p", b"example.test/p", b"http:///p", b"http://u@h/p", b"p"])
def test_split_target_rejects(target):
    with pytest.raises(InvalidUrl):
        split_target(target)


def test_cook_target_keeps_the_raw_query_and_cooks_the_path():
    assert cook_target(b"/a/../b%20c?x=%20") == (b"/b c", b"x=%20", None)
    assert cook_target(b"*") == (b"*", b"", None)


def test_percent_decode_and_dot_segments_alone():
    assert percent_decode(b"%41%u0042c") == b"ABc"
    assert remove_dot_segments(b"/a/./b/../../c/") == b"/c/"
    with pytest.raises(InvalidUrl):
        remove_dot_segments(b"relative/..")
