"""Gradescope's ``results.json``: ``gradcheck check --format gradescope``.

The shape that Gradescope's autograder harness reads from
``/autograder/results/results.json`` (and that other platforms read too;
https://gradescope-autograders.readthedocs.io/en/latest/specs/): a top-level
``score`` and ``output``, and one test per submission × task × parameter with
``name``, ``score``, ``max_score``, ``status`` ("passed" or "failed") and
``output``, plain text shown to the student.

It reads `Results`' graded parts: each submission is worth ``Results.points``,
split over its parts by `_graded.check_results` (which says when a part earns
its share).
"""

from __future__ import annotations

import json
from typing import Any

from gradcheck.cli._results import SCORE_DECIMALS, Results


def document(results: Results) -> bytes:
    """The ``results.json`` document of `results`, UTF-8 encoded."""
    tests: list[dict[str, Any]] = []
    summary = [results.summary]
    points = results.points if results.points is not None else 0.0
    for suite in results.suites:
        for case in suite.cases:
            tests += [
                {
                    "name": f"{suite.name} [{case.name}]: {part.name}",
                    "score": part.score,
                    "max_score": round(part.points, SCORE_DECIMALS),
                    "status": "passed" if part.passed else "failed",
                    "output": part.text,
                    "output_format": "text",
                }
                for part in case.parts
            ]
        summary.append(f"{suite.name}: {suite.earned:g} of {points:g} points, {suite.verdict.upper()}")
    content = {"score": results.score, "output": "\n".join(summary), "output_format": "text", "tests": tests}
    return json.dumps(content, indent=2, allow_nan=False).encode() + b"\n"
