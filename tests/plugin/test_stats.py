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
