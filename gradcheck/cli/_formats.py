"""The report formats, by name: each a function from a command's `Results` to the bytes of a document.

``--format NAME`` (``gradcheck check``) offers every format registered here, and ``--junit-xml FILE``
(every command that reports to CI) writes ``FORMATS["junit"]``. A new format (TAP, say) is one module
with a ``document(results) -> bytes`` and one entry in `FORMATS`: the flags, their choices and help
read it, and docs/cli.md's usage blocks are generated from them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gradcheck.cli import _gradescope, _junit
from gradcheck.cli._results import Results, Suite


@dataclass(frozen=True)
class Format:
    """A report format: its document, the file name a reader expects, and what it is, in words."""

    document: Callable[[Results], bytes]
    file_name: str  # suggested for --output, and each submission's under --output-dir
    title: str  # "Gradescope results", for the line that says a file was written
    #: Whether it reads the points (``--points``): a score per part.
    graded: bool = False

    def told(self, results: Results, of: str = "") -> str:
        """What a file of this format holds, in words: "Gradescope results of hw/a.py:grads (score 75)"."""
        what = f"{self.title} of {of}" if of else self.title
        return f"{what} (score {results.score:g})" if self.graded else what


FORMATS: dict[str, Format] = {
    "gradescope": Format(_gradescope.document, "results.json", "Gradescope results", graded=True),
    "junit": Format(_junit.document, "gradcheck.xml", "JUnit XML"),
}


def folder_names(results: Results) -> dict[str, Suite]:
    """A folder name for each suite's document (``--output-dir``): its submission's file name without the
    suffix ("alice" for hw/alice.py:grads), with the function's after it where two files share a name, and a
    number where that is not enough."""

    def stem(suite: Suite) -> str:
        return Path(suite.name.rsplit(":", 1)[0]).stem or "submission"

    counts = Counter(stem(suite) for suite in results.suites)
    named: dict[str, Suite] = {}
    for suite in results.suites:
        name = stem(suite) if counts[stem(suite)] == 1 else f"{stem(suite)}-{suite.name.rsplit(':', 1)[-1]}"
        base, k = name, 2
        while name in named:
            name, k = f"{base}-{k}", k + 1
        named[name] = suite
    return named
