"""The README is the front door: short, the two commands CI runs, and links that resolve."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# .ci/run greps README.md for exactly these and runs them.
COMMANDS = ('pip install -e ".[test]" && pytest -m npu', "pytest")


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < 200, (f"README.md has {len(lines)} lines: move reference material "
                              f"into docs/ and link it")


def test_readme_opens_with_the_two_ci_commands():
    text = README.read_text(encoding="utf-8")
    block = text.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert [line.split("#", 1)[0].strip() for line in block[:2]] == list(COMMANDS)


def test_readme_links_resolve():
    text = README.read_text(encoding="utf-8")
    anchors = {re.sub(r"[^\w\- ]", "", title).strip().lower().replace(" ", "-")
               for title in re.findall(r"^#+ (.+)$", text, flags=re.M)}
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://")):
            continue
        if target.startswith("#"):
            assert target[1:] in anchors, f"README.md links to a missing heading: {target}"
        else:
            assert (ROOT / target.split("#", 1)[0]).exists(), f"README.md links to {target}"
