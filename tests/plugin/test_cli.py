"""The console script exists, says what it is, and rejects what it does not know."""

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
    assert "'lots' is not a number" in capsys.readouterr().err
