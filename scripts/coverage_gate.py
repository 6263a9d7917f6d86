"""Fail unless total line coverage reaches the floor and critical modules are fully covered.

Usage: ``python scripts/coverage_gate.py coverage.json``. The floor and the critical modules (glob
patterns matched against the end of each file path) are read from
``[tool.synapsenet.coverage]`` in pyproject.toml.
"""

from __future__ import annotations

import json
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path


def main(report_path: str) -> int:
    config = tomllib.loads(Path("pyproject.toml").read_text())["tool"]["synapsenet"]["coverage"]
    report = json.loads(Path(report_path).read_text())
    failures: list[str] = []
    total = float(report["totals"]["percent_covered"])
    if total < config["floor"]:
        failures.append(f"total coverage {total:.2f}% is under the {config['floor']}% floor")
    files = {Path(name).as_posix(): data for name, data in report["files"].items()}
    checked = 0
    for pattern in config["critical"]:
        matches = {name: data for name, data in files.items() if fnmatch(name, f"*{pattern}")}
        if not matches:
            failures.append(f"critical module {pattern} is missing from the coverage report")
        for name, data in sorted(matches.items()):
            checked += 1
            if data["summary"]["missing_lines"]:
                missing = data["missing_lines"]
                failures.append(f"critical module {name} misses lines {missing}")
    for failure in failures:
        print(f"coverage gate: {failure}", file=sys.stderr)
    if not failures:
        print(f"coverage gate: total {total:.2f}%, {checked} critical modules at 100%")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
