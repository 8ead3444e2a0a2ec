"""Check results: one `ParamResult` per parameter, gathered in a `Report`."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["pass", "imprecise", "mismatch", "doubt", "error"]
Verdict = Literal["pass", "imprecise", "mismatch", "inconclusive", "error"]

#: Verdicts, most severe first: what a run of many checks (a batch, the CLI's
#: exit code) reports when its checks differ. A gradient proven wrong outranks
#: one that could not be checked (a wrong call), which outranks one that the
#: references could not judge, which outranks a right derivation whose float64
#: evaluation loses digits ("imprecise": it passes unless strict).
VERDICT_ORDER: tuple[Verdict, ...] = ("mismatch", "error", "inconclusive", "imprecise", "pass")

#: Verdicts that say the derivation is right: what a check that is not strict passes.
RIGHT: tuple[Verdict, ...] = ("pass", "imprecise")


def worst_verdict(verdicts: Iterable[str]) -> Verdict:
    """The most severe of `verdicts` by `VERDICT_ORDER` ("pass" for none)."""
    found = set(verdicts)
    return next((v for v in VERDICT_ORDER if v in found), "pass")


#: Status, most severe first; a report's verdict follows its worst parameter.
SEVERITY: tuple[Status, ...] = ("error", "mismatch", "doubt", "imprecise", "pass")


@dataclass(frozen=True)
class ParamResult:
    """The verdict on one parameter, told at its worst element.

    ``index`` is the element shown, chosen alike on either reference path:
    for a mismatch the blamed element farthest from autodiff, for a doubt the
    references' worst disagreement, for a pass the largest entry; the values
    are taken there. ``max_abs_err_*`` are the largest
    absolute errors over all elements; ``max_rel_err_*`` the largest relative
    errors over the elements whose reference exceeds its tolerance (below it,
    the reference is rounding noise and a relative error means nothing).
    ``tolerance_used`` is the largest ratio of error to tolerance, against
    either reference: at most 1 for a pass. ``fd_error`` is the finite
    differences' own error bound; a closed form may differ from them by
    ``FD_SAFETY * fd_error + tolerance``. ``message`` explains an ``error``, ``doubt`` or ``imprecise``
    status; ``diagnosis`` names the likely mistake of a ``mismatch``.

    ``imprecise``: the closed form broke the float64 tolerance, but evaluated
    again in a wider type (`gradcheck._precision`) its error shrank as rounding
    error does: the derivation is right, and its float64 evaluation keeps only
    ``digits_kept`` significant digits. It passes unless the check is strict.

    Examples:
        A gradient with one mistake, dL/db2 with its sign flipped:

        >>> from functools import partial
        >>> import numpy as np
        >>> from gradcheck import check_gradients, mlp
        >>> loss = partial(mlp.loss, task="regression")
        >>> def wrong(p, x, y):
        ...     g = mlp.closed_form_gradients(p, x, y, task="regression")
        ...     return g._replace(b2=-g.b2)
        >>> x, y = np.array([[0.5, -1.0], [2.0, 0.0]]), np.array([1.0, 0.0])
        >>> report = check_gradients(loss, wrong, mlp.init_params(0), x, y)
        >>> report["w2"].status, report["w2"].shape, report["w2"].tolerance_used <= 1
        ('pass', (1, 3), True)
        >>> b2 = report["b2"]
        >>> b2.status, b2.index, b2.closed_form == -b2.autodiff
        ('mismatch', (0,), True)
        >>> print(b2.diagnosis)
        sign flipped: the closed form is -1 x the reference (a residual written y - a2 where a2 - y belongs?)
    """

    name: str
    shape: tuple[int, ...]
    status: Status
    index: tuple[int, ...] | None = None
    closed_form: float = math.nan
    autodiff: float = math.nan
    finite_diff: float = math.nan
    fd_error: float = math.nan
    abs_error: float = math.nan
    rel_error: float = math.nan
    tolerance: float = math.nan
    max_abs_err_autodiff: float = math.nan
    max_rel_err_autodiff: float = math.nan
    max_abs_err_fd: float = math.nan
    max_rel_err_fd: float = math.nan
    tolerance_used: float = math.nan
    message: str | None = None
    diagnosis: str | None = None
    #: Elements at a kink (a non-differentiable point: the one-sided slopes differ, so there is
    #: no derivative to check against). They are listed here and not judged.
    not_judged: tuple[tuple[int, ...], ...] = ()

    @property
    def ok(self) -> bool:
        """The derivation is right: "pass", or "imprecise" (right, with digits lost in float64)."""
        return self.status in ("pass", "imprecise")

    @property
    def digits_kept(self) -> float:
        """Significant decimal digits the closed form keeps at its worst resolved element (``-log10`` of
        ``max_rel_err_autodiff``; infinite where it equals autodiff, NaN where nothing was compared)."""
        rel = self.max_rel_err_autodiff
        if math.isnan(rel):
            return math.nan
        return math.inf if rel == 0.0 else max(0.0, -math.log10(rel))


@dataclass(frozen=True)
class Report:
    """Everything one check found. ``ok`` is true only when every parameter passes.

    ``str(report)`` is the table that failed checks raise and the CLI prints;
    ``report[name]`` is one parameter's `ParamResult`; `to_dict` is for JSON.

    Examples:
        >>> from functools import partial
        >>> import numpy as np
        >>> from gradcheck import check_gradients, mlp
        >>> p = mlp.init_params(0)
        >>> x, y = np.array([[0.5, -1.0], [2.0, 0.0]]), np.array([1.0, 0.0])
        >>> loss = partial(mlp.loss, task="classification")
        >>> grads = partial(mlp.closed_form_gradients, task="classification")
        >>> report = check_gradients(loss, grads, p, x, y)
        >>> report.ok, report.verdict, [r.name for r in report.params]
        (True, 'pass', ['w1', 'b1', 'w2', 'b2'])
        >>> print(str(report).splitlines()[0])
        gradcheck: PASS, 4 parameters (closed form judged at float64 precision)
    """

    params: tuple[ParamResult, ...]
    precision: str = "float64"
    notes: tuple[str, ...] = field(default=())
    #: Observed rate of the Taylor remainder along the error (about 2 for a
    #: correct gradient, 1 for a wrong one); computed for mismatches only.
    taylor_rate: float = math.nan
    #: Which path computed the references: "numpy" (the jaxprs run by NumPy, no
    #: compile: shapes seen for the first time) or "xla" (compiled: shapes
    #: checked often, large models). Both give the same verdicts.
    references: Literal["numpy", "xla"] = "xla"
    #: Set when `grad_fn` could not be checked at all (a wrong call, not a wrong
    #: gradient): it raised, or returned something that is not a gradient of
    #: `params`. The message says what happened, with the user's traceback, and
    #: how to fix the call; the verdict is then "error" and nothing was compared.
    error: str | None = None
    #: The exception `grad_fn` raised, if it raised (`assert_gradients` chains it).
    cause: BaseException | None = field(default=None, repr=False, compare=False)
    #: The name of the hand-written function checked, as an `error` tells it
    #: ("vjp_fn" for `check_vjp`).
    function: str = field(default="grad_fn", repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """The derivation is right: every parameter passes, or is right with digits lost in float64
        ("imprecise"; `strict_ok` fails those too)."""
        return self.error is None and all(p.ok for p in self.params)

    def strict_ok(self, strict: bool = True) -> bool:
        """`ok`, and with `strict` every parameter within the float64 tolerance (no "imprecise")."""
        return self.verdict == "pass" if strict else self.ok

    @property
    def not_judged(self) -> int:
        """How many elements sit at a kink and were not judged (``--strict`` fails on any)."""
        return sum(len(p.not_judged) for p in self.params)

    @property
    def verdict(self) -> Verdict:
        """ "error" for a wrong call (`error`); else "mismatch" when a parameter is wrong, "inconclusive"
        when the references disagree with each other, "pass" otherwise."""
        if self.error is not None:
            return "error"
        statuses = {p.status for p in self.params}
        if statuses & {"error", "mismatch"}:
            return "mismatch"
        if "doubt" in statuses:
            return "inconclusive"
        return "imprecise" if "imprecise" in statuses else "pass"

    def __getitem__(self, name: str) -> ParamResult:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(f"no parameter named {name!r}; have {[p.name for p in self.params]}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (non-finite floats become "nan"/"inf"/"-inf")."""
        return {
            "verdict": self.verdict,
            "ok": self.ok,
            "precision": self.precision,
            "notes": list(self.notes),
            "taylor_rate": jsonable(self.taylor_rate),
            "references": self.references,
            "error": self.error,
            "params": [jsonable({**asdict(p), "digits_kept": p.digits_kept}) for p in self.params],
        }

    def _repr_html_(self) -> str:
        """The report as a notebook shows it: the verdict, the table, and the notes, as HTML."""
        return html_report(self)

    def __str__(self) -> str:
        if self.error is not None:
            return (
                f"gradcheck: ERROR, `{self.function}` could not be checked (a wrong call, not a wrong gradient; "
                f"nothing was compared)\n{self.error}"
            )
        blamed = [p for p in self.params if p.status in ("mismatch", "error")]
        head = {
            "pass": f"gradcheck: PASS, {len(self.params)} parameters",
            "mismatch": f"gradcheck: MISMATCH in {len(blamed)} of {len(self.params)} parameters",
            "inconclusive": "gradcheck: INCONCLUSIVE, the references disagree with each other",
            "imprecise": (
                f"gradcheck: IMPRECISE, the derivation is right, but its float64 evaluation loses digits in "
                f"{sum(p.status == 'imprecise' for p in self.params)} of {len(self.params)} parameters"
            ),
        }[self.verdict]
        lines = [f"{head} (closed form judged at {self.precision} precision)", _table(self.params)]
        for p in self.params:
            if p.message:
                lines.append(f"  {p.name}: {p.message}")
            if p.diagnosis:
                lines.append(f"  {p.name}: likely mistake: {p.diagnosis}")
            if p.not_judged:
                lines.append(f"  {p.name}: {_not_judged(p.not_judged)}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


#: The colour of each status in a notebook: the console's (cli._render.VERDICT_COLOURS).
_HTML_COLOURS = {"pass": "green", "imprecise": "darkorange", "mismatch": "red", "doubt": "darkorange", "error": "red"}


def html_report(report: Report) -> str:
    """`report` as HTML, for Jupyter (`Report._repr_html_`): the same words and figures as ``str(report)``."""
    lines = str(report).splitlines()
    head = html.escape(lines[0])
    if report.error is not None:
        return f"<div><b>{head}</b><pre>{html.escape(report.error)}</pre></div>"
    cells = "".join(f"<th>{html.escape(c)}</th>" for c in _COLUMNS)
    rows = []
    for p, row in zip(report.params, _rows(report.params)):
        colour = _HTML_COLOURS.get(p.status, "black")
        tds = "".join(
            f'<td style="color:{colour}"><b>{html.escape(c)}</b></td>' if k == 2 else f"<td>{html.escape(c)}</td>"
            for k, c in enumerate(row)
        )
        rows.append(f"<tr>{tds}</tr>")
    notes = "".join(f"<li>{html.escape(line.strip())}</li>" for line in lines[len(report.params) + 2 :])
    return (
        f"<div><b>{head}</b><table><thead><tr>{cells}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        + (f"<ul>{notes}</ul>" if notes else "")
        + "</div>"
    )


def misuse_exception(report: Report, context: str = "") -> Exception:
    """The exception for a report whose verdict is "error" (a wrong call), its message the report.

    `TypeError` when `grad_fn` returned no gradient or raised `TypeError` (a
    wrong signature, say); `ValueError` when it raised anything else. Raise it
    ``from report.cause`` so that the user's own exception is chained.
    """
    kind = TypeError if report.cause is None or isinstance(report.cause, TypeError) else ValueError
    return kind(f"{context}\n{report}" if context else str(report))


class GradientMismatch(AssertionError):
    """A closed-form gradient disagrees with the references; ``str()`` is the report.

    `context` (for example the counterexample that was searched for) is
    printed before the report.

    Examples:
        >>> from functools import partial
        >>> import numpy as np
        >>> from gradcheck import GradientMismatch, assert_gradients, mlp
        >>> p = mlp.init_params(0)
        >>> x, y = np.array([[0.5, -1.0], [2.0, 0.0]]), np.array([1.0, 0.0])
        >>> def doubled(params, x, y):  # a missing 1/2
        ...     return mlp.Params(*(2 * g for g in mlp.closed_form_gradients(params, x, y, task="regression")))
        >>> try:
        ...     assert_gradients(partial(mlp.loss, task="regression"), doubled, p, x, y)
        ... except GradientMismatch as err:
        ...     print(err.report.verdict, err.report["b2"].diagnosis.split(" (")[0])
        mismatch off by a constant factor 2
    """

    def __init__(self, report: Report, context: str = ""):
        super().__init__(f"{context}\n{report}" if context else str(report))
        self.report = report


class ImpreciseGradient(AssertionError):
    """A right derivation whose float64 evaluation loses digits, raised only by strict checks; ``str()`` is the report.

    The closed form broke the float64 tolerance, but its error shrank as rounding error does when it was
    evaluated again in a wider type (`gradcheck._precision`): the formula is right, the float64
    implementation is not accurate to the tolerance. Non-strict checks pass it with the report's note.
    """

    def __init__(self, report: Report, context: str = ""):
        super().__init__(f"{context}\n{report}" if context else str(report))
        self.report = report


class ReferencesDisagree(AssertionError):
    """Autodiff and finite differences disagree, so the closed form can't be judged.

    Examples:
        A loss whose own derivative rule is wrong (a ``jax.custom_jvp`` that
        says 2 t^2 for t^3): autodiff and the finite differences disagree, so
        the closed form is not blamed, even though it is right:

        >>> import jax
        >>> import numpy as np
        >>> from gradcheck import ReferencesDisagree, assert_gradients
        >>> @jax.custom_jvp
        ... def cube(t):
        ...     return t**3
        >>> _ = cube.defjvp(lambda primals, tangents: (cube(primals[0]), 2 * primals[0] ** 2 * tangents[0]))
        >>> try:
        ...     assert_gradients(lambda p: cube(p["t"]).sum(), lambda p: {"t": 3 * p["t"] ** 2}, {"t": np.ones(2)})
        ... except ReferencesDisagree as err:
        ...     print(err.report.verdict, err.report["t"].status)
        inconclusive doubt

        At a kink, by contrast (``max(t, 0)`` at 0), there is no derivative to
        check: the element is listed as not judged, and the rest still passes.

        >>> import jax.numpy as jnp
        >>> def relu_loss(p):
        ...     return jnp.maximum(p["t"], 0.0).sum()
        >>> report = assert_gradients(relu_loss, lambda p: {"t": (p["t"] > 0) * 1.0}, {"t": np.array([0.0, 2.0])})
        >>> report.verdict, report["t"].not_judged
        ('pass', ((0,),))
    """

    def __init__(self, report: Report):
        super().__init__(str(report))
        self.report = report


_COLUMNS = (
    "param",
    "shape",
    "status",
    "index",
    "closed form",
    "autodiff",
    "finite diff ± err",
    "|cf-ad|",
    "rel",
    "tol",
)


def _table(params: tuple[ParamResult, ...]) -> str:
    rows = [_COLUMNS, *_rows(params)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    return "\n".join("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _rows(params: tuple[ParamResult, ...]) -> list[tuple[str, ...]]:
    """One row of the table's cells per parameter, as text."""
    return [
        (
            p.name,
            str(p.shape),
            p.status.upper() if p.status != "pass" else "pass",
            "-" if p.index is None else str(p.index),
            _g(p.closed_form, 10),
            _g(p.autodiff, 10),
            f"{_g(p.finite_diff, 10)} ± {_g(p.fd_error, 1)}",
            _g(p.abs_error, 2),
            _g(p.rel_error, 2),
            _g(p.tolerance, 2),
        )
        for p in params
    ]


def _not_judged(indices: tuple[tuple[int, ...], ...], shown: int = 8) -> str:
    """ "2 elements at a kink, not judged: (0, 1), (2, 0)"."""
    listed = ", ".join(str(i) for i in indices[:shown]) + (", ..." if len(indices) > shown else "")
    noun = "element" if len(indices) == 1 else "elements"
    return f"{len(indices)} {noun} at a kink (a non-differentiable point), not judged: {listed}"


def _g(x: float, digits: int) -> str:
    return "-" if math.isnan(x) else f"{x:.{digits}e}"


def jsonable(value: Any) -> Any:
    """`value` as strict JSON: tuples become lists, and non-finite floats the strings "nan", "inf", "-inf"."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


# The exceptions are gradcheck's public API: named so in tracebacks and in pytest's summary
# ("gradcheck.GradientMismatch", not "gradcheck._report.GradientMi...").
for _exception in (GradientMismatch, ImpreciseGradient, ReferencesDisagree):
    _exception.__module__ = "gradcheck"
