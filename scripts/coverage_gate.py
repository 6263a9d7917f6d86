"""Fail unless total line coverage reaches the floor and critical modules are fully covered.

Usage: ``python scripts/coverage_gate.py coverage.json``. The floor and the critical modules
are read from ``[tool.synapsenet.coverage]`` in pyproject.toml.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path


def main(report_path: str) -> int:
    config = tomllib.loads(Path("pyproject.toml").read_text())["tool"]["synapsenet"]["coverage"]
    report = json.loads(Path(report_path).read_text())
    failures: list[str] = []
    total = float(report["totals"]["percent_covered"])
    if total < config["floor"]:
        failures.append(f"total coverage {total:.2f}% is under the {config['floor']}% floor")
    files = {Path(name).as_posix(): data for name, data in report["files"].items()}
    for critical in config["critical"]:
        matches = [data for name, data in files.items() if name.endswith(critical)]
        if not matches:
            failures.append(f"critical module {critical} is missing from the coverage report")
            continue
        summary = matches[0]["summary"]
        if summary["missing_lines"]:
            missing = matches[0]["missing_lines"]
            failures.append(f"critical module {critical} misses lines {missing}")
    for failure in failures:
        print(f"coverage gate: {failure}", file=sys.stderr)
    if not failures:
        count = len(config["critical"])
        print(f"coverage gate: total {total:.2f}%, {count} critical modules at 100%")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
