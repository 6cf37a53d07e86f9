"""The soak for real on this host: a worker process per stand-in card (--ascend-devices=2 on
the CPU), the built-in model decoding, matmuls and HBM patterns checked bit for bit. Planted
faults (a bit flipped in one card's one iteration of each workload, a card slowed down) are
caught and named; the soak run from pytest writes its table, JSON, pictures and minute lines;
Ctrl-C and SIGTERM stop every worker and keep what was measured; pytest-timeout cuts it short
in time to write its results."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conftest import ctrl_c_as_in_a_terminal
from pytest_ascend.platforms import open_cards
from pytest_ascend.platforms.selection import parse_card_selection
from pytest_ascend.reports.results_log import read_results_log
from pytest_ascend.soak.runner import SoakPlan, run_soak
from pytest_ascend.soak.workloads import DECODE_STEPS, MATMUL_SIZE

SOAK_TEST = Path(__file__).resolve().parents[1] / "box" / "test_soak.py"


def gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def minute_lines(path):
    return [r for r in read_results_log(path) if r["type"] == "soak_minute"]


def test_two_stand_in_cards_share_the_host():
    cards = open_cards("cpu", parse_card_selection("2"))
    assert [card.index for card in cards] == [0, 1]
    assert cards[0].name == cards[1].name
    assert [c.index for c in open_cards("cpu", parse_card_selection("0,3"))] == [0, 3]
    assert len(open_cards("cpu", parse_card_selection("all"))) == 1


def test_planted_corruption_and_a_slow_card_are_caught_and_named(tmp_path, shared_cache):
    cards = open_cards("cpu", parse_card_selection("2"))
    plan = SoakPlan(cards, seconds=15, dtype="float32", out_dir=tmp_path, model="tiny",
                    cache_dir=shared_cache, minute_s=5, plants={
                        0: "corrupt=1:decode,corrupt=2:matmul,corrupt=3:hbm_patterns",
                        1: "slow=0.02"})
    result = run_soak(plan)
    found = {m.workload: m for m in result.mismatches}
    assert sorted(found) == ["decode", "hbm_patterns", "matmul"], result.failures
    assert len(result.mismatches) == 3 and all(m.card == 0 for m in result.mismatches)
    decode, matmul, patterns = found["decode"], found["matmul"], found["hbm_patterns"]
    assert (decode.iteration, decode.against) == (1, "its own iteration 0")
    assert decode.where.startswith(f"step {DECODE_STEPS // 2}, prompt 0, token id 7: ")
    size = MATMUL_SIZE[False]
    assert (matmul.iteration, matmul.against) == (2, "its own iteration 0")
    assert matmul.where.startswith(f"row {size // 3}, column {size // 5}: ")
    assert (patterns.iteration, patterns.against) == (3, "the values known to be right")
    assert f"byte offset {12345 * 4:#x}" in patterns.where
    slow, fast = result.cards[1], result.cards[0]
    assert any("below its siblings' median" in flag for flag in slow.stability.flags)
    assert fast.stability.below_siblings < 0
    assert not any("below its siblings" in flag for flag in fast.stability.flags)
    saved = json.loads((tmp_path / "soak.json").read_text())
    assert len(saved["mismatches"]) == 3 and saved["failures"] == result.failures
    assert (tmp_path / "soak-card0.png").stat().st_size and (tmp_path / "soak-card1.png").exists()
    lines = minute_lines(tmp_path / "soak.jsonl")
    assert {line["card"] for line in lines} == {0, 1} and len(lines) >= 4
    assert max(line["mismatches"] for line in lines if line["card"] == 0) == 3
    assert all(gone(card.pid) for card in result.cards)


def soak_under_pytest(workdir, *args):
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-m", "npu", str(SOAK_TEST),
         "--ascend-devices=2", "--ascend-report-dir=report", "--ascend-results-log=run.jsonl",
         *args], cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=ctrl_c_as_in_a_terminal, env=dict(os.environ))


def test_a_30_second_soak_from_pytest_writes_its_table_json_pictures_and_minute_lines(
        tmp_path):
    run = soak_under_pytest(tmp_path, "--ascend-soak=30s")
    out, _ = run.communicate(timeout=300)
    assert run.returncode == 0, out[-4000:]
    assert "1 passed" in out
    assert "pytest-ascend: card      chip  iterations  decode tok/s  first window" in out
    soak = tmp_path / "report" / "soak"
    saved = json.loads((soak / "soak.json").read_text())
    assert saved["failures"] == [] and saved["interrupted"] is None
    assert saved["ran_s"] == pytest.approx(30, abs=1)
    assert [card["card"] for card in saved["cards"]] == [0, 1]
    assert all(card["iterations"] >= 2 for card in saved["cards"])
    assert all((soak / f"soak-card{i}.png").stat().st_size for i in (0, 1))
    records = read_results_log(tmp_path / "run.jsonl")
    minutes = [r for r in records if r["type"] == "soak_minute"]
    assert {(r["card"], r["minute"], r["partial"]) for r in minutes} == {(0, 0, True),
                                                                        (1, 0, True)}
    assert all(r["decode_rate"] > 0 and r["iterations"] >= 2 for r in minutes)
    test = next(r for r in records if r["type"] == "test" and r.get("when") == "call")
    assert test["outcome"] == "passed"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupting_the_soak_stops_every_worker_and_keeps_the_results(tmp_path, signum):
    run = soak_under_pytest(tmp_path, "--ascend-soak=10m")
    soak = tmp_path / "report" / "soak"
    pids: dict[int, int] = {}
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and run.poll() is None:
        for card in (0, 1):
            path = soak / f"card-{card}.jsonl"
            lines = [json.loads(line) for line in path.read_text().splitlines()] \
                if path.exists() else []
            pids.update({card: r["pid"] for r in lines if r["type"] == "ready"})
            if card in pids and not any(r["type"] == "iteration" for r in lines):
                pids.pop(card)  # ready, but no iteration yet
        if len(pids) == 2:
            break
        time.sleep(0.5)
    assert len(pids) == 2, "the workers never got going"
    time.sleep(3)
    run.send_signal(signum)
    sent = time.monotonic()
    out, _ = run.communicate(timeout=120)
    assert time.monotonic() - sent < 30, out[-3000:]
    assert run.returncode == 2, out[-3000:]
    assert all(gone(pid) for pid in pids.values()), pids
    saved = json.loads((soak / "soak.json").read_text())
    assert saved["interrupted"].startswith("interrupted (KeyboardInterrupt")
    assert all(card["iterations"] >= 1 for card in saved["cards"])
    assert {line["card"] for line in minute_lines(soak / "soak.jsonl")} == {0, 1}
    records = read_results_log(tmp_path / "run.jsonl")
    assert {r["card"] for r in records if r["type"] == "soak_minute"} == {0, 1}
    assert records[-1]["type"] == "session_end"


def test_pytest_timeout_cuts_the_soak_in_time_to_write_it_and_fails_saying_so(tmp_path):
    run = soak_under_pytest(tmp_path, "--ascend-soak=10m", "--timeout=45")
    out, _ = run.communicate(timeout=300)
    assert run.returncode == 1, out[-4000:]
    assert "the soak was cut to " in out and "of the 600 s asked: pytest-timeout gives this " \
                                             "test 45 s" in out
    assert "Timeout" not in out.split("short test summary")[-1]
    saved = json.loads((tmp_path / "report" / "soak" / "soak.json").read_text())
    assert saved["cut_short"].startswith("the soak was cut to ") and saved["failures"] == []
