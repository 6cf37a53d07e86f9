"""The console script exists and says what it is."""

import pytest

from pytest_ascend.cli import main


def test_prints_help_and_succeeds(capsys):
    assert main([]) == 0
    assert "usage: pytest-ascend" in capsys.readouterr().out


def test_unknown_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["history"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: history" in capsys.readouterr().err
