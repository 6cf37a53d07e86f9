"""The `pytest-ascend` command. Its subcommands (history) arrive with the history issue;
until then it documents itself and rejects anything else with argparse's usage error."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence


def build_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="pytest-ascend",
        description="Tools around the pytest-ascend suite. Run the suite itself with "
        "`pytest -m npu` (see `pytest --help`, section pytest-ascend). This version has "
        "no subcommands yet.",
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
