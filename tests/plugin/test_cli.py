"""The console script exists, says what it is, and rejects what it does not know."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_ascend.cli import main


def test_prints_help_and_succeeds(capsys):
    assert main([]) == 0
    assert "history" in capsys.readouterr().out


def test_unknown_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["hisotry"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'hisotry'" in capsys.readouterr().err


def test_bad_threshold_is_a_one_line_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["history", "--min-change", "lots"])
    assert exit_info.value.code == 2
    assert "'lots': not a number of 0 or more" in capsys.readouterr().err


DATA = Path(__file__).parent / "data"


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "pytest_ascend", *args], capture_output=True,
                          text=True, timeout=120)


def test_plan_json_is_the_documented_shape():
    """14B fp16 on an Atlas 800T (8 x 32 GiB): the model split over cards 0,1, the server
    on 2,3, the torchrun ranks on all eight; planned bytes the sum of what each card holds."""
    proc = run_cli("plan", "--box=8x32GiB", f"--model={DATA / 'Qwen2.5-14B-Instruct'}",
                   "--sglang", "--json")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert set(plan) == {"cards", "skipped"} and plan["skipped"] == {}
    assert [card["index"] for card in plan["cards"]] == list(range(8))
    assert all(set(card) == {"index", "capacity_bytes", "planned_bytes", "holds"}
               for card in plan["cards"])
    assert all(card["capacity_bytes"] == 32 * 2**30 for card in plan["cards"])
    holds = [card["holds"] for card in plan["cards"]]
    assert holds[:4] == [["model", "torchrun"]] * 2 + [["torchrun", "sglang"]] * 2
    assert holds[4:] == [["torchrun"]] * 4
    assert all(card["planned_bytes"] <= card["capacity_bytes"] for card in plan["cards"])


def test_plan_table_names_the_skipped_server():
    proc = run_cli("plan", "--box=1x64GiB", f"--model={DATA / 'Qwen2.5-14B-Instruct'}",
                   "--sglang")
    assert proc.returncode == 0, proc.stderr
    assert "sglang skipped: " in proc.stdout and "--ascend-devices=0,1" in proc.stdout


@pytest.mark.parametrize("box", ["8x32", "eightx32GiB", "0x32GiB", "8x32QB"])
def test_plan_bad_box_is_one_line_with_the_accepted_form(box):
    proc = run_cli("plan", f"--box={box}", f"--model={DATA / 'Qwen2.5-7B-Instruct'}")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stdout == ""
    assert f"--box {box!r}" in proc.stderr and "e.g. 8x32GiB" in proc.stderr


def test_plan_without_a_config_is_a_usage_error(tmp_path):
    proc = run_cli("plan", "--box=8x64GiB", f"--model={tmp_path}")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"pytest-ascend plan: {tmp_path}: no config.json there; " \
                                  f"pass a checkpoint directory"


def test_golden_record_takes_the_cache_from_pytest_ascend_cache(tmp_path):
    """Its help says "as --ascend-cache": PYTEST_ASCEND_CACHE holds for it as for the plugin."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest_ascend", "golden", "record", "--out", str(tmp_path / "g"),
         "--device", "cpu"], capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "PYTEST_ASCEND_CACHE": "/dev/null/cache"})
    assert done.returncode == 2, done.stderr[-2000:]
    assert "--ascend-cache /dev/null/cache: cannot build the built-in model there" in done.stderr


def test_a_threshold_reads_as_the_plugin_reads_it():
    """One number reader: "10%" is 0.1 for the command as for the plugin's options."""
    from pytest_ascend.cli import build_parser

    args = build_parser().parse_args(["history", "--min-change", "10%"])
    assert args.min_change == pytest.approx(0.1)
