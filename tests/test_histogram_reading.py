"""The driver's histograms read at once with numpy give exactly what hdrh's own (pure
Python) lookups give: percentiles, recorded values and counts above a threshold."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.driver.histogram import (
    HIGHEST_NS,
    PERCENTILES,
    count_at_or_above,
    empty,
    from_buckets,
    percentiles,
    recorded,
)

buckets = st.lists(
    st.tuples(st.integers(1, HIGHEST_NS), st.integers(0, 1000)), min_size=1, max_size=40
)


@settings(max_examples=150, deadline=None)
@given(buckets)
def test_percentiles_equal_hdrh_s_own(pairs: list[tuple[int, int]]) -> None:
    hist = from_buckets(pairs)
    found = percentiles(hist)
    if hist.get_total_count() == 0:
        assert set(found.values()) == {None}
        return
    for name, pct in PERCENTILES:
        assert found[name] == float(hist.get_value_at_percentile(pct)), name


@settings(max_examples=50, deadline=None)
@given(buckets, st.integers(1, HIGHEST_NS))
def test_recorded_values_and_counts_above_agree_with_hdrh_s_iterator(
    pairs: list[tuple[int, int]], threshold: int
) -> None:
    hist = from_buckets(pairs)
    expected = [
        (int(item.value_iterated_to), int(item.total_count_to_this_value))
        for item in hist.get_recorded_iterator()
    ]
    assert recorded(hist) == expected
    above = sum(
        item.count_added_in_this_iter_step
        for item in hist.get_recorded_iterator()
        if item.value_iterated_to >= threshold
    )
    assert count_at_or_above(hist, threshold) == above


def test_an_empty_histogram_has_no_percentiles() -> None:
    assert percentiles(empty()) == {name: None for name, _ in PERCENTILES}
