"""Grade a class: run `gradcheck check --json` over examples/submissions/*.py and print a grade sheet.

Each submission defines ``grads(params, x, y, *, task)`` for the seed network
(see examples/submissions/). The command's JSON report (schema 1, docs/cli.md)
has one entry per submission; a student earns one point per task passed.
gradcheck exits 1 when a submission is wrong and 2 when one fails to load,
which for a grader are results, not errors: this script exits 0 once every
submission is graded (a file that fails to load earns no points).

Run: python examples/autograde.py [--examples 25] [--task both]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # commands run from the repository root, like the docs' ones


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", default="25", help="problems searched per task and student")
    parser.add_argument("--task", default="both", choices=("regression", "classification", "both"))
    args = parser.parse_args()

    command = [
        *(sys.executable, "-m", "gradcheck", "check", "examples/submissions/*.py:grads"),
        *("--task", args.task, "--examples", args.examples, "--json"),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    try:  # exit 1 (a submission is wrong) and 2 (one failed to load) come with a report: grade it
        report = json.loads(done.stdout)
    except json.JSONDecodeError:  # no report: bad usage (2) or an internal error (4)
        print(done.stderr, file=sys.stderr)
        return done.returncode
    tasks_checked = 2 if args.task == "both" else 1

    print(f"graded by gradcheck {report['gradcheck']}, {report['examples']} problems per task, seed {report['seed']}")
    for sub in report["submissions"]:
        student = Path(sub["submission"].rsplit(":", 1)[0]).stem
        tasks = sub["tasks"]
        points = sum(t["verdict"] == "pass" for t in tasks.values())
        print(f"{student:<8} {sub['verdict'].upper():<9} {points}/{tasks_checked} points")
        if sub["error"]:  # what failed to load, and the exception (the traceback's last line)
            lines = sub["error"].splitlines()
            print(f"    {lines[0]} {lines[-1]}" if len(lines) > 1 else f"    {lines[0]}")
        for task, result in tasks.items():
            for name, diagnosis in result["diagnoses"].items():
                print(f"    {task}: {name}: {diagnosis}")
            if result["verdict"] != "pass":
                print(f"    reproduce: {result['reproduce']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
