"""The `gradcheck` command.

- ``gradcheck``: the main job, the seed network's closed form on many problems;
- ``gradcheck check FILE:FUNC ...``: a user's gradient function (autograder,
  CI gate), searched by Hypothesis for a minimal failing problem;
- ``gradcheck prove``: the closed forms proved (or refuted) symbolically with SymPy;
- ``gradcheck plot --out DIR``: the docs' figures (`gradcheck.plot`).

Exit codes: 0 every check passed; 1 a closed form disagrees with the
references; 2 usage, input or load error; 3 inconclusive (the references
disagree with each other, so nothing is blamed); 4 an internal error in
gradcheck.
"""

from gradcheck.cli._app import main
from gradcheck.cli._main_job import net_problem_for, problem_for
from gradcheck.cli._render import (
    EXIT_INCONCLUSIVE,
    EXIT_INTERNAL,
    EXIT_MISMATCH,
    EXIT_OK,
    EXIT_USAGE,
    JSON_SCHEMA,
    JSON_SCHEMA_LOSS,
)

__all__ = [
    "EXIT_INCONCLUSIVE",
    "EXIT_INTERNAL",
    "EXIT_MISMATCH",
    "EXIT_OK",
    "EXIT_USAGE",
    "JSON_SCHEMA",
    "JSON_SCHEMA_LOSS",
    "main",
    "net_problem_for",
    "problem_for",
]
