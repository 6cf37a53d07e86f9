"""Telemetry: each platform's reader on recorded or real sources, the region's figures
against an independent computation, and the health gate on planted faults."""

import json
import os
import stat
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from pytest_ascend.platforms.cpu_telemetry import RaplEnergy, cpu_telemetry
from pytest_ascend.platforms.cuda_telemetry import nvml_telemetry, throttle_names
from pytest_ascend.platforms.facts import run_tool
from pytest_ascend.platforms.npu_telemetry import (
    common_figures,
    ecc_counts,
    health_state,
    memory_used_mb,
    merged,
    npu_telemetry,
    parse_blocks,
)
from pytest_ascend.telemetry.health import CardHealth, judge_health
from pytest_ascend.telemetry.reading import FIELDS, CardReading, Unreadable
from pytest_ascend.telemetry.region import region_report
from pytest_ascend.telemetry.sampler import TelemetrySampler

RECORDED = Path(__file__).parent / "data" / "npu-smi"


def recorded(name):
    return (RECORDED / name).read_text()


# npu-smi ---------------------------------------------------------------------------------


def test_the_recorded_910b_common_query_gives_power_temperature_clock_and_usage():
    assert common_figures(recorded("common.txt"), 0) == {
        "power_w": 93.4, "temperature_c": 46.0, "core_clock_mhz": 800.0,
        "utilization_pct": 0.0}


def test_the_board_mcu_block_is_not_the_chip():
    blocks = parse_blocks(recorded("common.txt"))
    assert [b.get("Chip Name") for b in blocks] == [None, None, "mcu"]
    assert blocks[2]["Temperature(C)"] == "38"  # the board's, never read as the chip's


def test_memory_ecc_and_health_queries_as_recorded():
    assert merged(recorded("memory.txt"))["HBM Clock Speed(MHz)"] == "3200"
    assert memory_used_mb(recorded("usages.txt")) == {"memory_used_mb": 65536 * 4 / 100}
    assert ecc_counts(recorded("ecc.txt")) == {
        "ecc_corrected": 0, "ecc_uncorrected": 0, "retired_pages": 0}
    assert health_state(recorded("health.txt")) == {"health": "OK"}


def test_a_query_the_chip_lacks_is_unreadable_with_npu_smis_words():
    with pytest.raises(Unreadable, match="does not support querying power"):
        parse_blocks("\tThis device does not support querying power.\n")


def test_non_numbers_are_null_not_zero():
    text = "\tChip ID                        : 0\n\tNPU Real-time Power(W)         : NA\n"
    assert common_figures(text, 0)["power_w"] is None


def test_a_continued_error_information_line_is_kept():
    text = ("\tHealth Status                  : Alarm\n\tError Code                     : "
            "80E01801 80E18005\n\tError Information              : node type=SOC\n"
            "\t                               : node type=HBM\n")
    fields = merged(text)
    assert fields["Error Information"] == "node type=SOC; node type=HBM"
    assert health_state(text) == {"health": "Alarm"}


@pytest.fixture
def npu_smi(tmp_path, monkeypatch):
    """A stand-in `npu-smi` on PATH printing the recorded outputs, from a folder the test
    may edit between two reads (a planted fault)."""
    served = tmp_path / "served"
    served.mkdir()
    for path in RECORDED.glob("*.txt"):
        (served / path.name).write_text(path.read_text())
    tool = tmp_path / "bin" / "npu-smi"
    tool.parent.mkdir()
    tool.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import sys
        args = sys.argv[1:]
        name = "info-m" if args == ["info", "-m"] else args[args.index("-t") + 1]
        sys.stdout.write(open({str(served)!r} + "/" + name + ".txt").read())
        """))
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tool.parent}{os.pathsep}{os.environ['PATH']}")
    return served


def test_the_npu_reader_reads_every_field_through_npu_smi(npu_smi):
    reader = npu_telemetry("card 0 (Ascend910B1)", 1, 0, tool=run_tool)
    reading = reader.read()
    assert (reading.power_w, reading.temperature_c, reading.core_clock_mhz) == (93.4, 46, 800)
    assert reading.memory_clock_mhz == 3200 and reading.memory_used_mb == 65536 * 0.04
    assert (reading.ecc_uncorrected, reading.health) == (0, "OK")
    assert set(reader.unreadable) == {"energy_j", "throttle_reasons"}
    assert "no energy counter" in reader.unreadable_line()


def planted(served, name, old, new):
    path = served / name
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))


def npu_health(npu_smi_folder):
    reader = npu_telemetry("card 0 (Ascend910B1)", 1, 0, tool=run_tool)
    return {reader.card: CardHealth.read(reader)}


def test_a_double_bit_error_during_the_session_fails_it_naming_the_card(npu_smi):
    before = npu_health(npu_smi)
    planted(npu_smi, "ecc.txt", "HBM Double Bit Error Count               : 0",
            "HBM Double Bit Error Count               : 2")
    verdict = judge_health(before, npu_health(npu_smi))
    assert verdict.failures == [
        "card 0 (Ascend910B1): 2 new uncorrectable ECC error(s) during the session (0 -> 2): "
        "its results may be wrong"]


def test_a_worse_health_state_fails_and_a_single_bit_error_is_reported(npu_smi):
    before = npu_health(npu_smi)
    planted(npu_smi, "health.txt", "OK", "Alarm")
    planted(npu_smi, "ecc.txt", "HBM Single Bit Error Count               : 0",
            "HBM Single Bit Error Count               : 5")
    verdict = judge_health(before, npu_health(npu_smi))
    assert verdict.failures == ["card 0 (Ascend910B1) health went from OK to Alarm during "
                                "the session"]
    assert verdict.notes == ["card 0 (Ascend910B1): 5 new correctable ECC error(s) during "
                             "the session (0 -> 5)"]


def test_a_clock_that_falls_by_a_third_in_a_region_marks_it_throttled(npu_smi):
    reader = npu_telemetry("card 0 (Ascend910B1)", 1, 0, tool=run_tool)
    planted(npu_smi, "common.txt", "curFreq(MHZ)            : 800",
            "curFreq(MHZ)            : 1800")
    start = time.perf_counter()
    first = reader.read()
    time.sleep(0.6)  # past the reader's cache of npu-smi's answers
    planted(npu_smi, "common.txt", "curFreq(MHZ)            : 1800",
            "curFreq(MHZ)            : 1200")
    second = reader.read()
    report = region_report([first, second], start, time.perf_counter())
    assert report["throttled"] is True
    assert report["clock_drop"] == pytest.approx(1 / 3)
    assert report["core_clock_mhz"] == {"min": 1200, "median": 1500, "max": 1800}


# NVML through a stand-in module behind pynvml's interface ---------------------------------


class NotSupported(Exception):
    pass


class FunctionNotFound(Exception):
    pass


def stand_in_nvml(**overrides):
    """pynvml's names and constants (nvidia-ml-py 13.615), answering as an H100 would."""
    def unsupported(*_):
        raise NotSupported("Not Supported")

    module = SimpleNamespace(
        NVMLError_NotSupported=NotSupported, NVMLError_FunctionNotFound=FunctionNotFound,
        NVML_TEMPERATURE_GPU=0, NVML_CLOCK_SM=1, NVML_CLOCK_MEM=2, NVML_VOLATILE_ECC=0,
        NVML_MEMORY_ERROR_TYPE_CORRECTED=0, NVML_MEMORY_ERROR_TYPE_UNCORRECTED=1,
        NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS=0,
        NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR=1,
        nvmlInit=lambda: None,
        nvmlDeviceGetHandleByPciBusId=lambda bus: f"handle {bus}",
        nvmlDeviceGetHandleByIndex=lambda i: f"handle {i}",
        nvmlDeviceGetPowerUsage=lambda h: 412_500,  # mW
        nvmlDeviceGetTotalEnergyConsumption=lambda h: 9_000_000,  # mJ
        nvmlDeviceGetTemperature=lambda h, sensor: 61,
        nvmlDeviceGetClockInfo=lambda h, clock: {1: 1980, 2: 2619}[clock],
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=97, memory=60),
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(used=40 * 2**30),
        nvmlDeviceGetTotalEccErrors=lambda h, kind, counter: {0: 3, 1: 0}[kind],
        nvmlDeviceGetRetiredPages=unsupported,  # Hopper remaps rows instead
        nvmlDeviceGetRemappedRows=lambda h: (1, 0, False, False),
        nvmlDeviceGetCurrentClocksEventReasons=lambda h: 0x1 | 0x40,
        nvmlDeviceGetCurrentClocksThrottleReasons=lambda h: 0x0,
    )
    for name, value in overrides.items():
        setattr(module, name, value)
    return module


def test_nvml_fields_in_the_units_the_report_uses():
    reading = nvml_telemetry("card 0 (H100)", "00000000:1b:00.0", 0, stand_in_nvml()).read()
    assert (reading.power_w, reading.energy_j, reading.temperature_c) == (412.5, 9000, 61)
    assert (reading.core_clock_mhz, reading.memory_clock_mhz) == (1980, 2619)
    assert (reading.utilization_pct, reading.memory_used_mb) == (97, 40 * 1024)
    assert (reading.ecc_corrected, reading.ecc_uncorrected, reading.retired_pages) == (3, 0, 1)
    assert reading.throttle_reasons == ("hardware thermal slowdown",)  # idle is no throttle


def test_an_older_driver_answers_through_the_throttle_reasons_call():
    def missing(h):
        raise FunctionNotFound("Function Not Found")

    nvml = stand_in_nvml(nvmlDeviceGetCurrentClocksEventReasons=missing,
                         nvmlDeviceGetCurrentClocksThrottleReasons=lambda h: 0x4)
    assert nvml_telemetry("card 0", None, 0, nvml).read().throttle_reasons == (
        "software power cap",)


def test_what_a_card_lacks_is_null_with_nvmls_reason_and_not_asked_again():
    asked = []

    def no_energy(h):
        asked.append(h)
        raise NotSupported("Not Supported")

    reader = nvml_telemetry("card 0 (T4)", None, 0,
                            stand_in_nvml(nvmlDeviceGetTotalEnergyConsumption=no_energy))
    assert reader.read().energy_j is None and reader.read().energy_j is None
    assert len(asked) == 1
    assert reader.unreadable["energy_j"] == "NVML: Not Supported"


def test_a_card_that_fell_off_the_bus_is_not_present():
    def lost(bus):
        raise RuntimeError("GPU is lost")

    reader = nvml_telemetry("card 0", "00000000:1b:00.0", 0,
                            stand_in_nvml(nvmlDeviceGetHandleByPciBusId=lost))
    before = {"card 0": CardHealth("card 0", True, None, 0, 0, 0)}
    verdict = judge_health(before, {"card 0": CardHealth.read(reader)})
    assert verdict.failures == ["card 0 vanished during the session: its driver no longer "
                                "lists it"]


@pytest.mark.parametrize("mask, names", [
    (0x0, ()), (0x1, ()), (0x2 | 0x10 | 0x100, ()),
    (0x4 | 0x8, ("software power cap", "hardware slowdown")),
    (0x20 | 0x80, ("software thermal slowdown", "hardware power brake")),
])
def test_only_the_reasons_that_slow_a_busy_card_count(mask, names):
    assert throttle_names(mask) == names


# The CPU: psutil for real, RAPL and EDAC from recorded sysfs trees ------------------------


def test_the_cpu_reader_reads_psutil_here_and_names_what_it_cannot(tmp_path):
    reader = cpu_telemetry("card 0 (cpu)", powercap=tmp_path / "none", edac=tmp_path / "none")
    reading = reader.read()
    assert reading.memory_used_mb > 0 and 0 <= reading.utilization_pct <= 100
    assert reading.energy_j is None and reading.health is None
    assert reader.unreadable["energy_j"].startswith("no RAPL package counter under")
    assert reader.unreadable["health"] == "a CPU reports no health state"
    assert set(reader.unreadable) | {n for n in FIELDS if getattr(reading, n) is not None} \
        == set(FIELDS)


def rapl_tree(root, *counters, span=1_000_000):
    for socket, value in enumerate(counters):
        domain = root / f"intel-rapl:{socket}"
        (domain / f"intel-rapl:{socket}:0").mkdir(parents=True, exist_ok=True)  # a core subdomain: skipped
        (domain / "energy_uj").write_text(f"{value}\n")
        (domain / "max_energy_range_uj").write_text(f"{span}\n")


def test_rapl_energy_sums_the_sockets_and_undoes_a_wrap(tmp_path):
    rapl_tree(tmp_path, 900_000, 100)
    energy = RaplEnergy(tmp_path)
    rapl_tree(tmp_path, 200_000, 50_100)  # socket 0 wrapped: 100_000 + 200_000 uJ
    assert energy.read()["energy_j"] == pytest.approx((300_000 + 50_000) / 1e6)


def test_edac_counts_are_read_as_ecc(tmp_path):
    for mc, (ce, ue) in enumerate([(4, 0), (1, 1)]):
        (tmp_path / f"mc{mc}").mkdir()
        (tmp_path / f"mc{mc}" / "ce_count").write_text(f"{ce}\n")
        (tmp_path / f"mc{mc}" / "ue_count").write_text(f"{ue}\n")
    reading = cpu_telemetry("cpu", powercap=tmp_path / "none", edac=tmp_path).read()
    assert (reading.ecc_corrected, reading.ecc_uncorrected) == (5, 1)


# The sampler ------------------------------------------------------------------------------


def test_the_sampler_reads_every_card_on_its_interval_and_at_each_mark(tmp_path):
    reader = cpu_telemetry("card 0 (cpu)", powercap=tmp_path, edac=tmp_path)
    sampler = TelemetrySampler([reader], interval_s=0.05).start()
    time.sleep(0.3)
    sampler.mark()
    sampler.stop()
    got = sampler.readings("card 0 (cpu)")
    assert len(got) >= 4
    assert [r.at_s for r in got] == sorted(r.at_s for r in got)


# In a session: the gate and the marks, on a card whose reader has planted faults -----------

PLANTED_CARD = '''
import itertools
import pytest
from pytest_ascend.platforms.cpu import CpuPlatform
from pytest_ascend.telemetry.reading import Source, TelemetryReader

STATE = {"clock": 1800.0, "uncorrected": 0}


def planted(self, device):
    def read():
        return {"core_clock_mhz": STATE["clock"], "ecc_uncorrected": STATE["uncorrected"],
                "health": "OK"}
    return TelemetryReader("card 0 (planted)",
                           [Source(("core_clock_mhz", "ecc_uncorrected", "health"), read)])


CpuPlatform.telemetry = planted


@pytest.fixture
def plant():
    return STATE
'''

SESSION_TESTS = '''
import time
import pytest

@pytest.mark.npu
def test_cool(benchmark):
    benchmark.pedantic(time.sleep, args=(0.05,), rounds=2)

@pytest.mark.npu
def test_hot(benchmark, plant):
    plant["clock"] = 1200.0  # a third of the clock lost mid-region
    benchmark.pedantic(time.sleep, args=(0.05,), rounds=2)
    plant["clock"] = 1800.0

@pytest.mark.npu
def test_last(plant):
    plant["uncorrected"] = {uncorrected}
'''


@pytest.mark.parametrize("uncorrected, exit_code", [(0, 0), (1, 1)])
def test_the_session_marks_a_throttled_region_and_fails_on_a_new_uncorrectable_error(
        pytester, uncorrected, exit_code):
    pytester.makeconftest(PLANTED_CARD)
    pytester.makepyfile(SESSION_TESTS.format(uncorrected=uncorrected))
    result = pytester.runpytest("--benchmark-json=bench.json", "-p", "no:cacheprovider",
                                "--ascend-telemetry-interval=0.01", "--ascend-report-dir=out")
    assert result.ret == exit_code
    picture = pytester.path / "out" / "telemetry.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result.stdout.fnmatch_lines(["pytest-ascend: telemetry over time: out/telemetry.png"])
    bench = {b["name"]: b for b in json.loads((pytester.path / "bench.json").read_text())[
        "benchmarks"]}
    hot = bench["test_hot"]["extra_info"]["telemetry"]
    assert hot["throttled"] is True and hot["clock_drop"] == pytest.approx(1 / 3)
    assert bench["test_cool"]["extra_info"]["telemetry"]["throttled"] is False
    gate = "*HEALTH GATE FAILED: card 0 (planted): 1 new uncorrectable ECC error(s)*"
    if uncorrected:
        result.stdout.fnmatch_lines([gate])
        result.assert_outcomes(passed=3)  # every test passed: the card failed the session
    else:
        result.stdout.no_fnmatch_line(gate)


def test_the_picture_draws_what_was_read_with_the_tests_marked(tmp_path):
    from pytest_ascend.telemetry.plot import write_telemetry_plot

    def readings(times, **series):
        return [CardReading(at_s=t, **{k: v[i] for k, v in series.items()})
                for i, t in enumerate(times)]

    series = {"card 0": readings([0.0, 1.0, 2.0, 3.0], power_w=[100, 250, 240, 90],
                                 core_clock_mhz=[1800, 1800, 1200, 1800])}
    path = write_telemetry_plot(series, [("t.py::test_a", 0.5, 2.5)], 0.0, tmp_path / "t.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no card read any gauge"):
        write_telemetry_plot({"card 0": readings([0.0], health=["OK"])}, [], 0.0,
                             tmp_path / "none.png")


def test_a_region_shorter_than_the_interval_has_a_reading_at_each_edge(tmp_path):
    from pytest_ascend.telemetry.watch import CardWatch

    watch = CardWatch([cpu_telemetry("card 0 (cpu)", powercap=tmp_path, edac=tmp_path)],
                      interval_s=600)
    try:
        time.sleep(0.3)  # past the sampler's own first reading
        start = watch.begin()
        report = watch.end("t.py::test_short", start)
    finally:
        watch.finish()
    assert report["samples"] == 2 and report["core_clock_mhz"] is not None
