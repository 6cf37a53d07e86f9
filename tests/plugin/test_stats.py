"""Percentiles agree with torch's own (linear interpolation) on the same samples."""

import pytest
import torch

from pytest_ascend.measure.stats import Percentiles, median, percentile


@pytest.mark.parametrize("count", [1, 2, 7, 100, 1001])
def test_percentiles_match_torch_quantile(count):
    samples = torch.rand(count, generator=torch.Generator().manual_seed(count), dtype=torch.float64)
    for q in (0, 1, 50, 90, 95, 99, 100):
        expected = torch.quantile(samples, q / 100, interpolation="linear").item()
        assert percentile(samples.tolist(), q) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_median_of_even_count_interpolates():
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5


def test_percentile_rejects_empty_and_out_of_range():
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="outside 0..100"):
        percentile([1.0], 101)


def test_percentiles_of_nothing_are_nan_with_zero_count():
    empty = Percentiles.of([])
    assert empty.count == 0 and empty.p50 != empty.p50


def test_percentile_edges_and_refusals_in_words():
    assert percentile([3.0, 1.0, 2.0], 0) == 1.0 and percentile([3.0, 1.0, 2.0], 100) == 3.0
    assert percentile([5.0], 37) == 5.0
    assert percentile([0.0, 10.0], 25) == 2.5
    assert percentile(iter([4.0, 2.0]), 50) == 3.0  # any iterable, read once
    with pytest.raises(ValueError, match="^percentile of no values$"):
        percentile([], 50)
    for q in (-0.1, 100.5):
        with pytest.raises(ValueError, match=rf"^percentile q={q} is outside 0..100$"):
            percentile([1.0], q)


def test_percentiles_of_samples_and_their_count():
    values = [float(v) for v in range(101)]
    assert Percentiles.of(values) == Percentiles(50.0, 95.0, 99.0, 101)
    assert Percentiles.of([2.0]) == Percentiles(2.0, 2.0, 2.0, 1)
    empty = Percentiles.of([])
    assert empty.p95 != empty.p95 and empty.p99 != empty.p99
