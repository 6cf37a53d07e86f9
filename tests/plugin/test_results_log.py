"""--ascend-results-log: every finished test is on disk before the next starts, so a run
killed mid-way keeps what it measured; an existing log is appended to, never replaced."""

import json

from pytest_ascend.report_guard import EXIT_REPORT_NOT_WRITTEN
from pytest_ascend.reports.results_log import read_results_log

CRASHING_SUITE = """
import os
import pytest

def test_measured(benchmark):
    benchmark.pedantic(sum, args=([1, 2],), rounds=2, iterations=1)
    benchmark.extra_info["tpot_ms"] = 12.5

def test_wrong():
    assert [1] == [2]

def test_not_here():
    pytest.skip("needs --ascend-run-slow")

def test_hard_crash():
    os._exit(3)  # what a native-code abort or the OOM killer looks like to pytest

def test_never_reached():
    pass
"""


def test_finished_results_survive_a_hard_crash(pytester):
    pytester.makepyfile(CRASHING_SUITE)
    result = pytester.runpytest_subprocess("--ascend-results-log", "run.jsonl", "-p",
                                           "no:cacheprovider")
    assert result.ret == 3
    records = read_results_log(pytester.path / "run.jsonl")
    assert [r["type"] for r in records] == ["session_start", "test", "test", "test"]
    assert records[0]["ascend"]["smoke"] is True
    measured, wrong, skipped = records[1:]
    assert measured["outcome"] == "passed" and measured["metrics"] == {"tpot_ms": 12.5}
    assert wrong["outcome"] == "failed" and "assert [1] == [2]" in wrong["message"]
    assert skipped["outcome"] == "skipped" and "--ascend-run-slow" in skipped["message"]


def test_an_existing_log_is_appended_to(pytester):
    pytester.makepyfile("def test_ok():\n    pass\n")
    for _ in range(2):
        pytester.runpytest("--ascend-results-log", "run.jsonl").assert_outcomes(passed=1)
    kinds = [r["type"] for r in read_results_log(pytester.path / "run.jsonl")]
    assert kinds == ["session_start", "test", "session_end"] * 2


def test_unwritable_log_is_a_one_line_usage_error(pytester):
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest("--ascend-results-log", "/proc/no-such-dir/run.jsonl")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--ascend-results-log /proc/no-such-dir/run.jsonl: cannot "
                                 "append to it*writable path*"])


def test_a_line_cut_short_by_a_kill_is_left_out(tmp_path):
    log = tmp_path / "run.jsonl"
    log.write_text(json.dumps({"type": "test", "outcome": "passed"}) + "\n" + '{"type": "te')
    assert read_results_log(log) == [{"type": "test", "outcome": "passed"}]


def test_a_full_disk_is_one_warning_and_the_tests_go_on(pytester):
    """/dev/full answers every write with ENOSPC, as a full filesystem does."""
    pytester.makepyfile("def test_a():\n    pass\n\ndef test_b():\n    pass\n")
    result = pytester.runpytest_subprocess("--ascend-results-log", "/dev/full",
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert result.ret == EXIT_REPORT_NOT_WRITTEN
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    warnings = [line for line in result.stdout.lines if "WARNING: --ascend-results-log" in line]
    assert len(warnings) == 1 and "No space left on device" in warnings[0]
    result.stdout.fnmatch_lines(["pytest-ascend: the results log /dev/full is incomplete: "
                                 "3 record(s) not written (No space left on device)"])


def test_a_session_after_a_cut_line_starts_on_a_fresh_line(pytester):
    log = pytester.path / "run.jsonl"
    log.write_text(json.dumps({"type": "test", "outcome": "passed"}) + "\n" + '{"type": "te')
    pytester.makepyfile("def test_ok():\n    pass\n")
    pytester.runpytest("--ascend-results-log", str(log)).assert_outcomes(passed=1)
    records = read_results_log(log)
    assert [r["type"] for r in records] == ["test", "session_start", "test", "session_end"]
    assert records.cut_lines == 1


def test_cut_lines_anywhere_are_skipped_and_counted(tmp_path):
    log = tmp_path / "run.jsonl"
    good = json.dumps({"type": "test", "outcome": "passed"})
    log.write_text("\n".join([good, '{"type": "te', good, "[1, 2]", good, '{"ty']) + "\n")
    records = read_results_log(log)
    assert len(records) == 3 and records.cut_lines == 3


def test_two_sessions_sharing_a_log_are_told_apart(tmp_path):
    """A nightly and a manual run appending to one log interleave their lines: each line
    names its session."""
    from pytest_ascend.reports.results_log import ResultsLog

    path = tmp_path / "run.jsonl"
    nightly, manual = ResultsLog(path), ResultsLog(path)
    for log, name in [(nightly, "a"), (manual, "b"), (nightly, "c"), (manual, "d")]:
        log.write("test", nodeid=name)
    nightly.close()
    manual.close()
    sessions = {r["nodeid"]: r["session"] for r in read_results_log(path)}
    assert sessions["a"] == sessions["c"] == nightly.session_id
    assert sessions["b"] == sessions["d"] == manual.session_id
    assert nightly.session_id != manual.session_id
