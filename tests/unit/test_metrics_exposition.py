"""wasp.common.exposition: the Prometheus text format, byte for byte."""

from __future__ import annotations

import math

import pytest

from wasp.common.exposition import (DURATION_BOUNDS, ExpositionError, Family, bucket_index,
                                    escape_label, format_value, render)


def test_counter_and_gauge_lines_with_help_and_type():
    c = Family("wasp_x_total", "counter", "Things.")
    c.add((("site", "a"), ("method", "GET")), 3)
    g = Family("wasp_y", "gauge", "Now.")
    g.add((), 1.5)
    assert render([c, g]) == (
        "# HELP wasp_x_total Things.\n# TYPE wasp_x_total counter\n"
        'wasp_x_total{site="a",method="GET"} 3\n'
        "# HELP wasp_y Now.\n# TYPE wasp_y gauge\nwasp_y 1.5\n")


def test_label_values_from_site_names_are_escaped():
    f = Family("wasp_site_current_connections", "gauge", "c")
    f.add((("site", 'a"b\\c\nd} e="x"'),), 1)
    line = render([f]).splitlines()[-1]
    assert line == 'wasp_site_current_connections{site="a\\"b\\\\c\\nd} e=\\"x\\""} 1'
    assert escape_label('\\"') == '\\\\\\"'
    # A name cannot add a line (a forged sample): the whole exposition is three lines.
    assert len(render([f]).splitlines()) == 3


def test_help_text_escapes_backslash_and_newline_only():
    f = Family("wasp_a", "gauge", 'one\\two\nthree "quoted"')
    f.add((), 0)
    assert render([f]).splitlines()[0] == '# HELP wasp_a one\\\\two\\nthree "quoted"'


def test_values():
    assert format_value(3) == "3"
    assert format_value(2.0) == "2"
    assert format_value(0.25) == "0.25"
    assert format_value(math.inf) == "+Inf"
    assert format_value(-math.inf) == "-Inf"
    assert format_value(math.nan) == "NaN"
    assert format_value(True) == "1"
    assert format_value(1e20) == "1e+20"


def test_histogram_is_cumulative_with_inf_sum_and_count():
    h = Family("wasp_d_seconds", "histogram", "d")
    h.add_histogram((("pool", "P"),), (0.1, 1.0), [2, 0, 3], 7.5)
    assert render([h]).splitlines()[2:] == [
        'wasp_d_seconds_bucket{pool="P",le="0.1"} 2',
        'wasp_d_seconds_bucket{pool="P",le="1"} 2',
        'wasp_d_seconds_bucket{pool="P",le="+Inf"} 5',
        'wasp_d_seconds_sum{pool="P"} 7.5',
        'wasp_d_seconds_count{pool="P"} 5',
    ]


def test_bucket_index_puts_a_value_on_a_bound_in_that_bound_bucket():
    assert bucket_index(DURATION_BOUNDS, 0.0) == 0
    assert bucket_index(DURATION_BOUNDS, 0.005) == 0          # le="0.005" includes 0.005
    assert bucket_index(DURATION_BOUNDS, 0.0051) == 1
    assert bucket_index(DURATION_BOUNDS, 10.0) == len(DURATION_BOUNDS) - 1
    assert bucket_index(DURATION_BOUNDS, 10.5) == len(DURATION_BOUNDS)   # the +Inf-only bucket


def test_bucket_count_must_match_the_bounds():
    h = Family("wasp_d_seconds", "histogram", "d")
    with pytest.raises(ExpositionError):
        h.add_histogram((), (0.1, 1.0), [1, 2], 0.0)


@pytest.mark.parametrize("name,kind", [("wasp_requests", "counter"), ("9bad", "gauge"),
                                       ("wasp-x", "gauge"), ("wasp_x", "summary")])
def test_bad_families_are_refused(name, kind):
    with pytest.raises(ExpositionError):
        Family(name, kind, "")


@pytest.mark.parametrize("label", ["__name__", "bad-name", "1x"])
def test_bad_label_names_are_refused(label):
    with pytest.raises(ExpositionError):
        Family("wasp_g", "gauge", "").add(((label, "v"),), 1)


def test_le_is_reserved_in_histograms():
    with pytest.raises(ExpositionError):
        Family("wasp_h", "histogram", "").add_histogram((("le", "1"),), (1.0,), [0, 0], 0.0)


def test_a_family_twice_is_refused_and_an_empty_one_left_out():
    a, b = Family("wasp_g", "gauge", ""), Family("wasp_g", "gauge", "")
    a.add((), 1)
    with pytest.raises(ExpositionError):
        render([a, b])
    assert render([Family("wasp_empty", "gauge", "")]) == ""
