"""Grade a class: run `gradcheck check --json` over examples/submissions/*.py and print a grade sheet.

Each submission defines ``grads(params, x, y, *, task)`` for the seed network
(see examples/submissions/). The command's JSON report (schema 1, docs/cli.md)
has one entry per submission; a student earns one point per task passed.
gradcheck exits 1 when a submission fails and 2 when one cannot be loaded or
called; for a grader both are results, not errors: every submission gets its
row and its full reason, and this script exits 0 once every submission is
graded. It passes on gradcheck's exit code only when there is no report
(a usage or internal error).

Run: python examples/autograde.py [--examples 25] [--task both] [--submissions "hw2/*.py:grads"]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # commands run from the repository root, like the docs' ones


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", default="25", help="problems searched per task and student")
    parser.add_argument("--task", default="both", choices=("regression", "classification", "both"))
    parser.add_argument("--submissions", default="examples/submissions/*.py:grads", help="FILE:FUNC, globs allowed")
    args = parser.parse_args()

    command = [
        *(sys.executable, "-m", "gradcheck", "check", args.submissions),
        *("--task", args.task, "--examples", args.examples, "--json"),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    try:  # 0 all pass, 1 a mismatch, 2 a submission not loaded or called: a report each time
        report = json.loads(done.stdout)
    except json.JSONDecodeError:  # no report: bad usage (2) or an internal error (4)
        print(done.stderr, file=sys.stderr)
        return done.returncode

    print(f"graded by gradcheck {report['gradcheck']}, {report['examples']} problems per task, seed {report['seed']}")
    graded = 2 if args.task == "both" else 1  # tasks per student, even one whose file failed to load
    for sub in report["submissions"]:
        student = Path(sub["submission"].rsplit(":", 1)[0]).stem
        tasks = sub["tasks"]
        points = sum(t["verdict"] == "pass" for t in tasks.values())
        print(f"{student:<8} {sub['verdict'].upper():<9} {points}/{graded} points")
        if sub["error"]:  # the whole reason: a traceback is the student's to read
            print(textwrap.indent(sub["error"], "    "))
        for task, result in tasks.items():
            if result["error"]:
                print(textwrap.indent(f"{task}: {result['error']}", "    "))
                continue
            for name, diagnosis in result["diagnoses"].items():
                print(f"    {task}: {name}: {diagnosis}")
            if result["verdict"] != "pass":
                print(f"    reproduce: {result['reproduce']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
