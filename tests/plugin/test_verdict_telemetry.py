"""The verdicts telemetry decides, on synthetic readings: a region's energy, gauges and
throttling against an independent computation, and the health gate's rules. Pure logic and
fast: .ci/mutation judges telemetry/region.py and telemetry/health.py by these."""

import pytest

from pytest_ascend.telemetry.health import CardHealth, judge_health
from pytest_ascend.telemetry.reading import CardReading, Source, TelemetryReader
from pytest_ascend.telemetry.region import (
    THROTTLE_CLOCK_DROP,
    energy_j,
    energy_per_token_j,
    gauge_summary,
    region_report,
    throttle,
)


# A region's figures against an independent computation ----------------------------------


def readings(times, **series):
    return [CardReading(at_s=t, **{k: v[i] for k, v in series.items()})
            for i, t in enumerate(times)]


def test_energy_is_the_counters_rise_where_there_is_one():
    got = readings([0, 1, 2], energy_j=[100.0, 160.0, 250.0], power_w=[1.0, 1.0, 1.0])
    assert energy_j(got) == 150.0


def test_energy_without_a_counter_integrates_power_over_uneven_intervals():
    got = readings([0.0, 0.5, 2.0, 2.25], power_w=[100.0, 300.0, 200.0, None])
    # trapezoids by hand: 0.5 x 200 + 1.5 x 250 (the None reading is skipped)
    assert energy_j(got) == pytest.approx(0.5 * 200 + 1.5 * 250)
    assert energy_j(got[:1]) is None


def test_gauges_summarise_as_min_median_max_and_null_when_never_read():
    summary = gauge_summary(readings([0, 1, 2, 3], temperature_c=[50, 70, 60, None]))
    assert summary["temperature_c"] == {"min": 50, "median": 60, "max": 70}
    assert summary["power_w"] is None


@pytest.mark.parametrize("low, throttled", [
    (1000 * (1 - THROTTLE_CLOCK_DROP) + 1, False), (1000 * (1 - THROTTLE_CLOCK_DROP), True)])
def test_the_throttle_threshold_is_a_fall_from_the_regions_top_clock(low, throttled):
    assert throttle(readings([0, 1, 2], core_clock_mhz=[1000, low, 1000])).throttled \
        is throttled


def test_a_reason_named_by_the_platform_is_throttling_whatever_the_clock():
    found = throttle(readings([0, 1], core_clock_mhz=[1000, 1000],
                              throttle_reasons=[(), ("software power cap",)]))
    assert found.throttled and found.reasons == ("software power cap",)


def test_only_readings_inside_the_region_count():
    got = readings([0, 1, 2, 3], power_w=[900, 100, 100, 900])
    report = region_report(got, 1, 2)
    assert report["samples"] == 2 and report["power_w"]["max"] == 100
    assert report["energy_j"] == pytest.approx(100)


def test_energy_per_token_is_a_decode_steps_energy_shared_by_the_batch():
    assert energy_per_token_j(300.0, 20.0, batch_size=4) == pytest.approx(300 * 0.02 / 4)
    assert energy_per_token_j(None, 20.0) is None


# The health gate's rules ------------------------------------------------------------------


def health(card="card 0", present=True, state="OK", corrected=0, uncorrected=0, pages=0):
    """One card's health reading, as judge_health takes it."""
    return {card: CardHealth(card, present, state, corrected, uncorrected, pages)}


@pytest.mark.parametrize("after, failures, notes", [
    (health(), 0, 0),
    (health(uncorrected=1), 1, 0),
    (health(state="Warning"), 1, 0),
    (health(corrected=7), 0, 1),
    (health(pages=1), 0, 1),
    (health(present=False), 1, 0),
    ({}, 1, 0),
])
def test_the_gate_fails_on_what_makes_results_untrustworthy(after, failures, notes):
    verdict = judge_health(health(), after)
    assert (len(verdict.failures), len(verdict.notes)) == (failures, notes)
    assert verdict.failed is bool(failures)


def test_a_card_unhealthy_from_the_start_is_reported_not_failed_unless_it_worsens():
    start = health(state="Warning")
    assert judge_health(start, health(state="Warning")).notes == [
        "card 0 was already Warning before the session"]
    assert not judge_health(start, health(state="Warning")).failed
    assert judge_health(start, health(state="Critical")).failed
    assert judge_health(start, health(state="OK")).failures == []


def test_unknown_counts_never_invent_a_rise():
    verdict = judge_health(health(uncorrected=None), health(uncorrected=5))
    assert verdict.failures == []


def test_the_gate_says_each_finding_in_one_line_naming_the_card_and_judges_every_card():
    before = {**health("card 0", corrected=2, uncorrected=1, pages=3), **health("card 1"),
              **health("card 2")}
    after = {**health("card 0", state="Critical", corrected=3, uncorrected=4, pages=5),
             **health("card 1", present=False), **health("card 2", state="UNKNOWN")}
    verdict = judge_health(before, after)
    assert verdict.failures == [
        "card 0 health went from OK to Critical during the session",
        "card 0: 3 new uncorrectable ECC error(s) during the session (1 -> 4): its results "
        "may be wrong",
        "card 1 vanished during the session: its driver no longer lists it",
        "card 2 health went from OK to UNKNOWN during the session",  # not a state: not OK
    ]
    assert verdict.notes == [
        "card 0: 1 new correctable ECC error(s) during the session (2 -> 3)",
        "card 0: 2 memory page(s) retired during the session (3 -> 5)",
    ]


def test_a_counter_read_at_both_edges_is_enough():
    assert energy_j(readings([0, 1], energy_j=[100.0, 160.0], power_w=[1.0, 1.0])) == 60.0


def test_energy_per_token_at_its_edges():
    assert energy_per_token_j(300.0, 20.0) == pytest.approx(6.0)
    assert energy_per_token_j(300.0, 20.0, batch_size=1) == pytest.approx(6.0)
    assert energy_per_token_j(300.0, 20.0, batch_size=0) is None
    assert energy_per_token_j(300.0, None, batch_size=4) is None


def test_a_region_report_whole():
    got = readings([0, 1, 2], core_clock_mhz=[1500, 1000, 1500], power_w=[100, 200, 100],
                   throttle_reasons=[(), ("hardware slowdown",), ("hardware slowdown",)])
    report = region_report(got, 0, 2)
    assert report == {
        "samples": 3, "seconds": 2,
        "power_w": {"min": 100, "median": 100, "max": 200}, "temperature_c": None,
        "core_clock_mhz": {"min": 1000, "median": 1500, "max": 1500},
        "memory_clock_mhz": None, "utilization_pct": None, "memory_used_mb": None,
        "energy_j": 300.0, "throttled": True, "clock_drop": pytest.approx(1 / 3),
        "throttle_reasons": ["hardware slowdown"],
    }


def test_a_region_away_from_zero_reports_its_own_length():
    assert region_report(readings([1.0, 3.0], power_w=[1.0, 1.0]), 1.0, 3.0)["seconds"] == 2.0


@pytest.mark.parametrize("clocks, kept", [([0.0, 0.0], None), ([1.0, 0.5], 0.5),
                                          ([2000.0, 1000.0], 0.5)])
def test_a_clock_that_never_ran_says_nothing_of_throttling(clocks, kept):
    found = throttle(readings(range(len(clocks)), core_clock_mhz=clocks))
    assert found.kept == kept and found.throttled is (kept is not None)


def reader_of(values, present):
    return TelemetryReader("card 3", [Source(tuple(values), lambda: values)], present=present)


def test_a_health_reading_is_the_cards_own_or_nothing_when_it_is_gone():
    values = {"health": "Alarm", "ecc_corrected": 4, "ecc_uncorrected": 1, "retired_pages": 2}
    assert CardHealth.read(reader_of(values, lambda: True)) == CardHealth(
        "card 3", True, "Alarm", 4, 1, 2)
    assert CardHealth.read(reader_of(values, None)) == CardHealth(
        "card 3", None, "Alarm", 4, 1, 2)
    assert CardHealth.read(reader_of(values, lambda: False)) == CardHealth(
        "card 3", False, None, None, None, None)

    def unlisted():
        raise RuntimeError("driver gone")

    assert CardHealth.read(reader_of(values, unlisted)).present is False
