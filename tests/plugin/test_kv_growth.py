"""The KV-growth verdict: exact cache tensors everywhere, and a memory figure that can fail
both ways, on a host's resident set as on an accelerator's allocator."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_ascend.measure.memory import (
    HOST_SLACK_BYTES,
    KvGrowth,
    decode_steps_for,
    kv_growth_problem,
)

MiB = 1 << 20
CACHE = 2 * MiB  # a 14B-shaped 2-layer model over 2048 tokens in float16


def growth(memory_bytes, cache_bytes=CACHE, transient=600_000):
    return KvGrowth(2048, cache_bytes, memory_bytes, CACHE, "process RSS", transient)


def test_an_exact_cache_and_a_resident_set_that_holds_it_pass_on_a_host():
    assert kv_growth_problem(growth(CACHE + MiB), allocator=False) is None


def test_a_host_whose_resident_set_grew_54_mib_for_a_2_mib_cache_fails():
    """The reviewer's case: 'cannot fail on excess memory' no more."""
    problem = kv_growth_problem(growth(54 * MiB), allocator=False)
    assert problem is not None and "beyond the cache" in problem


def test_the_host_allowance_is_the_boundary():
    at_limit = growth(0).host_allowance_bytes() + CACHE
    assert kv_growth_problem(growth(at_limit), allocator=False) is None
    assert kv_growth_problem(growth(at_limit + 1), allocator=False) is not None
    assert growth(0).host_allowance_bytes() == int(0.5 * CACHE + 4 * 600_000 + HOST_SLACK_BYTES)


def test_a_cache_tensor_off_by_one_element_fails_everywhere():
    for allocator in (True, False):
        problem = kv_growth_problem(growth(CACHE, cache_bytes=CACHE + 2), allocator=allocator)
        assert problem is not None and "the config says" in problem


def test_a_resident_set_below_most_of_the_cache_fails():
    assert kv_growth_problem(growth(int(0.74 * CACHE)), allocator=False) is not None
    assert kv_growth_problem(growth(int(0.76 * CACHE)), allocator=False) is None


@pytest.mark.parametrize("ratio, ok", [(0.84, False), (0.86, True), (1.14, True), (1.16, False)])
def test_an_allocator_holds_the_cache_within_15_percent(ratio, ok):
    assert (kv_growth_problem(growth(int(ratio * CACHE)), allocator=True) is None) == ok


@given(step_s=st.floats(min_value=1e-5, max_value=10.0), budget=st.floats(1.0, 600.0))
def test_decode_steps_are_bounded_multiples_of_64(step_s, budget):
    steps = decode_steps_for(step_s, budget)
    assert 128 <= steps <= 2048 and steps % 64 == 0
    assert steps == 128 or steps * step_s <= budget


def test_a_slow_host_decodes_fewer_steps():
    """2048 steps of a 14B-shaped layer on this CPU took 18 minutes (0.5 s a step)."""
    assert decode_steps_for(0.5, 60) == 128
    assert decode_steps_for(0.005, 60) == 2048
