"""W3C Trace Context parsing (wasp/wire/tracecontext.py): valid values, and malformed or hostile
ones, which are ignored (the request starts a new trace) rather than passed on."""

from __future__ import annotations

import pytest

from wasp.wire.tracecontext import (TRACESTATE_LIMIT, client_context, format_traceparent,
                                    parse_traceparent, parse_tracestate, replace_headers)

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"
GOOD = f"00-{TRACE}-{SPAN}-01"


def test_a_valid_traceparent_gives_its_ids_and_flags():
    tp = parse_traceparent(GOOD)
    assert tp == (int(TRACE, 16), int(SPAN, 16), 1)
    assert tp.sampled and tp.trace_id == int(TRACE, 16) and tp.span_id == int(SPAN, 16)
    assert not parse_traceparent(f"00-{TRACE}-{SPAN}-00").sampled
    assert parse_traceparent(GOOD.encode()) == tp


def test_http_whitespace_around_the_value_is_not_part_of_it():
    assert parse_traceparent(f" \t{GOOD} ") is not None


@pytest.mark.parametrize("value", [
    "",
    "00",
    GOOD[:-1],                                    # short
    GOOD + "0",                                   # version 00 must be exactly 55 characters
    GOOD + "-extra",                              # ... even with a "-"
    GOOD.upper(),                                 # hex is lower case
    f"00-{TRACE.upper()}-{SPAN}-01",
    f"ff-{TRACE}-{SPAN}-01",                      # version ff is invalid
    f"0g-{TRACE}-{SPAN}-01",
    f"00-{'0' * 32}-{SPAN}-01",                   # all-zero trace id
    f"00-{TRACE}-{'0' * 16}-01",                  # all-zero parent id
    f"00_{TRACE}-{SPAN}-01",                      # wrong separators
    f"00-{TRACE}_{SPAN}-01",
    f"00-{TRACE}-{SPAN}_01",
    f"00-{TRACE[:-1]}x-{SPAN}-01",
    f"00-{TRACE}-{SPAN}-0x",
    f"00-{TRACE}-{SPAN}-1",
    f"00-{TRACE}0-{SPAN[1:]}-01",                 # fields shifted, same length
    f"00-{TRACE}-{SPAN}-01\r\nX-Injected: 1",     # header injection
    f"00-{TRACE}-{SPAN}-0\x00",
    f"00-{TRACE}-{SPAN}-ü1",                      # non-ASCII
    f"01-{TRACE}-{SPAN}-01x",                     # a later version: after 55 only "-..."
    "0" * 10000,                                  # huge
    f"-0-{TRACE}-{SPAN}-01",
])
def test_malformed_and_hostile_traceparents_are_ignored(value):
    assert parse_traceparent(value) is None


def test_a_later_version_is_read_as_00_and_its_unknown_flags_dropped():
    assert parse_traceparent(f"01-{TRACE}-{SPAN}-03") == (int(TRACE, 16), int(SPAN, 16), 1)
    assert parse_traceparent(f"cc-{TRACE}-{SPAN}-00-what-the-future-says") == (
        int(TRACE, 16), int(SPAN, 16), 0)


def test_format_is_the_inverse_of_parse():
    tp = parse_traceparent(GOOD)
    assert format_traceparent(*tp) == GOOD


def test_tracestate_members_are_combined_across_lines():
    assert parse_tracestate([b"congo=t61rcWkgMzE", b"rojo=00f067aa0ba902b7"]) == (
        "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
    assert parse_tracestate([b" a=1 , ,b=2,"]) == "a=1,b=2"   # empty members are allowed
    assert parse_tracestate([b"tenant@vendor=x"]) == "tenant@vendor=x"
    assert parse_tracestate([b""]) == ""


@pytest.mark.parametrize("values", [
    [b"Upper=1"],                     # keys are lower case
    [b"a=1,a=2"],                     # duplicate key
    [b"a=1", b"a=2"],                 # ... across lines
    [b"novalue"],
    [b"a="],                          # empty value
    [b"a=x y,b=1=2"],                 # "=" in a value
    [b"a=1\r\nSet-Cookie: x=1"],      # injection
    [b"a=\x00"],
    [b"1abc=x"],                      # a simple key starts with a letter
    [b"t@" + b"v" * 20 + b"=x"],     # system id too long
    [b"k=" + b"v" * 300],             # value over 256
    [",".join(f"k{i}=v" for i in range(33)).encode()],   # over 32 members
])
def test_an_invalid_tracestate_is_dropped_whole(values):
    assert parse_tracestate(values) is None


def test_a_long_tracestate_loses_whole_members_from_the_end():
    members = [f"k{i}={'v' * 60}" for i in range(20)]
    out = parse_tracestate([",".join(members).encode()])
    assert len(out) <= TRACESTATE_LIMIT
    kept = out.split(",")
    assert kept == members[:len(kept)] and len(kept) >= 7


def test_client_context_reads_the_header_list():
    headers = [(b"Host", b"x"), (b"TraceParent", GOOD.encode()), (b"tracestate", b"a=1"),
               (b"TRACESTATE", b"b=2")]
    parent, state = client_context(headers)
    assert parent == parse_traceparent(GOOD) and state == "a=1,b=2"


def test_two_traceparent_headers_are_invalid():
    headers = [(b"traceparent", GOOD.encode()), (b"traceparent", GOOD.encode())]
    assert client_context(headers) is None


def test_no_traceparent_or_a_bad_one_is_no_context_and_a_bad_tracestate_is_dropped():
    assert client_context([(b"tracestate", b"a=1")]) is None
    assert client_context([(b"traceparent", b"garbage")]) is None
    parent, state = client_context([(b"traceparent", GOOD.encode()), (b"tracestate", b"A=1")])
    assert parent is not None and state == ""


def test_replace_headers_puts_wasp_s_context_in_place_of_the_client_s():
    headers = [(b"Host", b"x"), (b"traceparent", b"evil"), (b"TraceState", b"evil=1"), (b"X", b"y")]
    out = replace_headers(headers, GOOD, "a=1")
    assert out == [(b"Host", b"x"), (b"X", b"y"), (b"traceparent", GOOD.encode()),
                   (b"tracestate", b"a=1")]
    assert replace_headers([], GOOD, "") == [(b"traceparent", GOOD.encode())]
