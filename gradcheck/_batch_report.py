"""`BatchReport`: what `check_batch` found for B problems, and how it prints."""

from __future__ import annotations

import collections
import dataclasses
import html
import math

from gradcheck._report import RIGHT, VERDICT_ORDER, Report, html_report, worst_verdict

WORST_FIELDS = ("max_abs_err_autodiff", "max_rel_err_autodiff", "max_abs_err_fd", "max_rel_err_fd", "tolerance_used")


@dataclasses.dataclass(frozen=True)
class BatchReport:
    """What `check_batch` found for B problems.

    - ``verdicts[b]``: "pass", "imprecise" (a right derivation whose float64
      evaluation loses digits), "mismatch", "inconclusive" or "error" (a wrong
      call: `grad_fn` raised, or returned no gradient) for problem b;
    - ``failures``: the full `Report` of every problem that did not pass,
      from `check_gradients`, by problem index (the imprecise ones too);
    - ``worst[name][field]``: the largest of each `ParamResult` error field
      over the batch, per parameter (fields in ``WORST_FIELDS``); NaN where
      not measured;
    - ``along_used``: for models above `MAX_COORDINATES` parameters, whose
      finite differences run along random directions, the largest fraction of
      the allowance used by autodiff or the closed form against them (at most 1
      where they agree); NaN for smaller models, whose finite differences run
      along every coordinate and fill the ``*_fd`` fields of ``worst``;
    - ``not_judged[b]``: how many elements of problem b sit at a kink (a
      non-differentiable point) and were not judged (`ParamResult.not_judged`);
    - ``screened``: how many problems passed without their rounding noise
      measured, within the least allowances (`_references.SCREEN`); their
      ``tolerance_used`` is against the tolerance's floor, an upper bound;
    - ``rechecked``: how many problems the batch could not settle (their
      references still disagreed after refinement in the batch) and
      `check_gradients` re-checked one by one, along every coordinate (0 where
      every problem was checked one by one from the start: a closed form that
      does not stack, or a narrower one).
    """

    verdicts: tuple[str, ...]
    failures: dict[int, Report]
    worst: dict[str, dict[str, float]]
    along_used: float = math.nan
    not_judged: tuple[int, ...] = ()
    screened: int = 0
    rechecked: int = 0

    @property
    def ok(self) -> bool:
        """Every problem's derivation is right: it passes, or is "imprecise" (use `verdict` to be strict)."""
        return all(v in RIGHT for v in self.verdicts)

    @property
    def verdict(self) -> str:
        """The most severe of `verdicts`, in the order of `VERDICT_ORDER` ("mismatch" first, "pass" last)."""
        return worst_verdict(self.verdicts)

    def __len__(self) -> int:
        return len(self.verdicts)

    def _repr_html_(self) -> str:
        """The summary as a notebook shows it, with the first reports that did not pass as tables."""
        lines = str(self).splitlines()
        shown = "".join(
            f"<details><summary>problem {k}: {html.escape(r.verdict.upper())}</summary>{html_report(r)}</details>"
            for k, r in sorted(self.failures.items())[:SHOWN]
        )
        return f"<div><b>{html.escape(lines[0])}</b><pre>{html.escape(chr(10).join(lines[1:6]))}</pre>{shown}</div>"

    def __str__(self) -> str:
        """A summary: the verdicts counted, the worst errors per parameter, and the problems that did not pass.

        The full reports of the first `SHOWN` problems that did not pass
        follow; a wrong call (verdict "error") is told once, with the problems
        it happened on.
        """
        counts = collections.Counter(self.verdicts)
        tally = ", ".join(f"{counts[v]} {v}" for v in VERDICT_ORDER if counts[v])
        lines = [f"gradcheck: {self.verdict.upper()}, {len(self)} problems ({tally})"]
        rows = [("param", "max |cf-ad|", "max rel vs ad", "tol used")] + [
            (name, *(_g(w[f]) for f in ("max_abs_err_autodiff", "max_rel_err_autodiff", "tolerance_used")))
            for name, w in self.worst.items()
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        if self.screened:
            lines.append(
                f"  {self.screened} problems passed without their rounding noise measured, within the least "
                "allowances (tol used: against the tolerance's floor, an upper bound)"
            )
        if not math.isnan(self.along_used):
            lines.append(
                f"  finite differences along random directions: autodiff and the closed form use at most "
                f"{self.along_used:.2g} of the allowance (problems that do not pass: along every coordinate)"
            )
        kinked = [b for b, n in enumerate(self.not_judged) if n]
        if kinked:
            lines.append(
                f"  {sum(self.not_judged)} elements at a kink (a non-differentiable point), not judged, in problems "
                f"{_listed(kinked)}"
            )
        errors: dict[str, list[int]] = {}
        shown: list[int] = []
        for k, report in sorted(self.failures.items()):
            if report.error is not None:
                errors.setdefault(report.error, []).append(k)
            elif len(shown) < SHOWN:
                shown.append(k)
                lines.append(f"problem {k}:\n{report}")
        for problems in errors.values():
            lines.append(f"problems {_listed(problems)}: {self.failures[problems[0]]}")
        rest = [k for k, r in self.failures.items() if r.error is None and k not in shown]
        if rest:
            lines.append(f"{len(rest)} more problems did not pass: {_listed(rest)} (their reports: `failures[k]`)")
        return "\n".join(lines)


#: Full reports that `str(BatchReport)` shows.
SHOWN = 3


def _listed(indices: list[int], shown: int = 10) -> str:
    return ", ".join(map(str, indices[:shown])) + (", ..." if len(indices) > shown else "")


def _g(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.2e}"
