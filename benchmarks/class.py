"""Grading a class: what each extra submission costs in one `gradcheck check` over a glob.

The command an instructor runs (docs/cli.md), timed end to end as a process
(imports, loading every file, the searches, the Gradescope report), on:

- one correct submission alone (``examples/submissions/alice.py``);
- ``--students`` correct submissions (copies of it, each its own file);
- ``--students`` mixed ones: of every four, two correct, one wrong (a sum
  over the batch where the loss takes the mean, ``bob.py``) and one broken
  (a file whose import raises, ``carol.py``).

"per extra" is (the class's time - one alone) / (students - 1): what each
submission after the first adds. "x one alone" divides it by the time of the
one alone, measured in the same run. The last column extrapolates to a class
of 500 as one alone plus 499 extras.

Every correct submission meets the same problems: a search that passes draws
exactly the problems the first one drew (Hypothesis is seeded), so the later
ones replay them against references taken once (`gradcheck._search._replayed`,
`gradcheck._references.evaluation`); only a failing one searches and shrinks.

Run: python benchmarks/class.py [--students 40] [--examples 100] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUBMISSIONS = ROOT / "examples" / "submissions"
#: The mixed class, four students at a time: two right, one wrong, one that cannot be loaded.
MIX = ("alice", "alice", "bob", "carol")
CLASS = 500


def write_class(folder: Path, students: int, mix: tuple[str, ...]) -> None:
    """`students` submission files in `folder`, student k a copy of ``mix[k % len(mix)]``."""
    folder.mkdir(parents=True)
    for k in range(students):
        shutil.copy(SUBMISSIONS / f"{mix[k % len(mix)]}.py", folder / f"student_{k:03d}.py")


def grade(folder: Path, examples: int, output: Path) -> tuple[float, dict[str, int]]:
    """Seconds to grade every file in `folder`, both tasks, to a Gradescope report; and the verdicts' counts."""
    command = [
        *(sys.executable, "-m", "gradcheck", "check", f"{folder}/*.py:grads", "--task", "both"),
        *("--examples", str(examples), "--json", "--format", "gradescope", "--output", str(output)),
    ]
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    seconds = time.perf_counter() - began
    if done.returncode not in (0, 1, 2):
        raise SystemExit(f"gradcheck check failed ({done.returncode}):\n{done.stderr}")
    counts: dict[str, int] = {}
    for sub in json.loads(done.stdout)["submissions"]:
        counts[sub["verdict"]] = counts.get(sub["verdict"], 0) + 1
    return seconds, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=40, help="submissions in the class (default 40)")
    parser.add_argument("--examples", type=int, default=100, help="problems per task (default 100, the CLI's)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        runs = [("one correct submission alone", 1, ("alice",)), ("correct submissions", args.students, ("alice",))]
        runs.append(("mixed: right, wrong, broken", args.students, MIX))
        rows = []
        for k, (label, students, mix) in enumerate(runs):
            folder = root / f"class_{k}"
            write_class(folder, students, mix)
            seconds, counts = grade(folder, args.examples, root / f"results_{k}.json")
            rows.append((label, students, seconds, counts))
    alone = rows[0][2]
    header = ("class", "submissions", "verdicts", "s", "per extra (s)", "x one alone", f"{CLASS} extrapolated (s)")
    table = []
    for label, students, seconds, counts in rows:
        verdicts = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
        if students == 1:
            table.append((label, "1", verdicts, f"{seconds:.1f}", "", "", ""))
            continue
        extra = (seconds - alone) / (students - 1)
        projected = alone + (CLASS - 1) * extra
        ratio = f"{extra / alone:.3f}"
        table.append((label, str(students), verdicts, f"{seconds:.1f}", f"{extra:.3f}", ratio, f"{projected:.0f}"))
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for row in table:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(r[i]) for r in (header, *table)) for i in range(len(header))]
        for row in (header, *table):
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    print(f"\n{args.examples} problems per task, both tasks; one process per class, on this machine.")


if __name__ == "__main__":
    main()
