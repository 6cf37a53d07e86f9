import sys

from pytest_ascend.cli import main

sys.exit(main())
