"""The `pytest-ascend` command. Its subcommands (history) arrive with the history issue;
until then it documents itself and says plainly that nothing else is there yet."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pytest-ascend",
        description="Tools around the pytest-ascend suite. Run the suite itself with "
        "`pytest -m npu` (see `pytest --help`, section pytest-ascend).",
    )
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
