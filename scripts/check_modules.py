"""`make lint`: every non-test Python module has a docstring and stays under 300 lines.

A module that grows past 300 lines usually does more than one job: split it by
responsibility (see CONTRIBUTING.md) instead of raising the limit. Test code (anything
under a `tests/` folder) is exempt from the size limit, not from the docstring.
Standard library only; reads the files git tracks (or is about to), from the repository root.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

MAX_LINES = 300
ROOT = Path(__file__).resolve().parents[1]


def python_files() -> list[Path]:
    listed = subprocess.run(
        # git from PATH, as a developer runs it; the arguments are constants.
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / name for name in listed if (ROOT / name).exists()]


def problems(path: Path) -> list[str]:
    text = path.read_text()
    found = []
    is_test = "tests" in path.relative_to(ROOT).parts
    lines = len(text.splitlines())
    if not is_test and lines > MAX_LINES:
        found.append(f"{lines} lines (limit {MAX_LINES}): split it by responsibility")
    if text.strip() and ast.get_docstring(ast.parse(text)) is None:
        found.append("no module docstring: say what the module holds")
    return found


def main() -> int:
    failures = [
        f"{path.relative_to(ROOT)}: {problem}"
        for path in python_files()
        for problem in problems(path)
    ]
    for line in failures:
        print(line, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
