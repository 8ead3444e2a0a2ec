"""What a command found, in one neutral model that every report format reads: `Results`.

A command builds its `Results` once; a format (`cli/_formats.FORMATS`) is a function from it to the
bytes of a document. The model is the test report's common ground:

    Results: the run (its name, a summary line, the points per suite where graded)
      Suite: one submission (``gradcheck check``) or one task (the main job), with its verdict
        Case: one task of a submission, or one parameter of a task: passed, or an `Outcome`
          Part: a graded piece of a case (one parameter of a task), with its share of the points

JUnit XML reads suites and cases; Gradescope reads suites and parts. A new format is one module with a
``document(results) -> bytes`` and a registration in `cli/_formats.FORMATS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

#: Decimals kept in a score: shares of the total are exact, and sums of them
#: lose no point to a float's last bits (0.1 + 0.2).
SCORE_DECIMALS = 6


@dataclass(frozen=True)
class Outcome:
    """Why a test case did not pass: a ``failure`` (the check failed) or an ``error`` (it could not be made)."""

    kind: Literal["failure", "error"]
    type: str  # what failed, for the reporter: "GradientMismatch", "LoadError", ...
    message: str  # one line: the diagnosis
    text: str  # the whole report


@dataclass(frozen=True)
class Part:
    """A graded piece of a case (one parameter of a task): its share of the points, earned when it passes."""

    name: str
    passed: bool
    points: float
    text: str  # why it earns its points or not, for the student

    @property
    def score(self) -> float:
        """The points it earns."""
        return round(self.points if self.passed else 0.0, SCORE_DECIMALS)


@dataclass(frozen=True)
class Case:
    """One test case: passed when `outcome` is None."""

    name: str
    classname: str
    outcome: Outcome | None = None
    #: Seconds, when the case was timed on its own (a main job's parameters are
    #: checked together: their time is the suite's).
    time: float | None = None
    output: str = ""  # what a passing case measured
    parts: Sequence[Part] = ()


@dataclass(frozen=True)
class Suite:
    """One suite: the cases of one submission (``gradcheck check``) or of one task (main job)."""

    name: str
    time: float
    cases: Sequence[Case] = field(default_factory=tuple)
    verdict: str = ""  # "pass", "imprecise", "mismatch" or "error"

    @property
    def earned(self) -> float:
        """The points its parts earn."""
        return round(sum(part.points for case in self.cases for part in case.parts if part.passed), SCORE_DECIMALS)


@dataclass(frozen=True)
class Results:
    """A run's results: its suites, a one-line summary of how it ran, and the points each suite is worth
    where it is graded (None where not)."""

    name: str
    suites: Sequence[Suite]
    summary: str = ""
    points: float | None = None

    @property
    def score(self) -> float:
        """The points every part earns, in all."""
        return round(
            sum(part.score for suite in self.suites for case in suite.cases for part in case.parts), SCORE_DECIMALS
        )

    def of(self, suite: Suite) -> Results:
        """These results for `suite` alone (a grading platform that grades one submission per run)."""
        return replace(self, suites=(suite,))
