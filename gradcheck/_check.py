"""`check_gradients`: a closed form against autodiff and finite differences.

The pipeline, one stage per module::

    inputs checked (`_inputs`) -> references (`_references`: autodiff, Monte
    Carlo noise, finite differences, by NumPy or compiled) -> judgement
    (`_judge`: tolerances, comparison, kinks) -> report (`_report`, with
    `_diagnose` and the Taylor test of `_taylor`)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from gradcheck import _forward, _inputs, _judge, _mistakes, _precision, _references, _taylor, _tolerance, _validate
from gradcheck._references import _trace
from gradcheck._report import (
    RIGHT,
    GradientMismatch,
    ImpreciseGradient,
    ParamResult,
    ReferencesDisagree,
    Report,
    misuse_exception,
)


def check_gradients(
    loss_fn: Callable[..., Any],
    grad_fn: Callable[..., Any],
    params: Any,
    *args: Any,
    seed: int = 0,
) -> Report:
    """Check `grad_fn` against float64 autodiff and finite differences of `loss_fn`.

    Args:
        loss_fn: ``loss_fn(params, *args)`` returns a scalar; written with
            ``jax.numpy`` (or any code JAX can trace).
        grad_fn: ``grad_fn(params, *args)`` returns the gradient with the same
            structure as `params` (a NamedTuple, dict or tuple; a dict with the
            same field names as a NamedTuple also matches), as NumPy arrays.
        params: the point to check at, a pytree of real arrays.
        *args: further arguments of both functions (data, targets).
        seed: seeds the Monte Carlo arithmetic that measures rounding noise.

    Returns:
        A `Report`; ``report.ok`` is true when every parameter passes.

    Examples:
        >>> from functools import partial
        >>> import numpy as np
        >>> from gradcheck import check_gradients, mlp
        >>> p = mlp.init_params(0)
        >>> x, y = np.array([[0.5, -1.0], [2.0, 0.0]]), np.array([1.0, 0.0])
        >>> loss = partial(mlp.loss, task="classification")
        >>> grads = partial(mlp.closed_form_gradients, task="classification")
        >>> check_gradients(loss, grads, p, x, y).ok
        True
    """
    return judged(loss_fn, grad_fn, params, *args, seed=seed).report


class Judged(NamedTuple):
    """A report, and the arrays behind each mismatched parameter's verdict."""

    report: Report
    #: For each parameter judged "mismatch", by name: (closed form, autodiff, tolerance).
    arrays: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]


def judged(
    loss_fn: Callable[..., Any],
    grad_fn: Callable[..., Any],
    params: Any,
    *args: Any,
    seed: int = 0,
    penalties: bool = True,
    rerun: Callable[..., Any] | None = None,
) -> Judged:
    """`check_gradients`, with the arrays of what it found wrong (for a diagnosis across several checks).

    `penalties=False`: `params` are a function's inputs, not a model's
    parameters, so an error proportional to them is no forgotten penalty.
    `rerun`: the closed form as a function of this problem alone, called again in wider arithmetic where
    it fails (`_precision`); `grad_fn` itself by default (`check_batch` passes its closed form, computed
    for the whole batch, as `grad_fn`).
    """
    for label, fn in (("loss_fn", loss_fn), ("grad_fn", grad_fn)):
        if not callable(fn):
            raise TypeError(f"`{label}` must be a function, got {type(fn).__name__} {fn!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"`seed` must be an integer in [0, 2**32), got {seed!r}.")
    names, leaves, treedef = _inputs.flatten_params(params)
    ref_args = tuple(_validate.data_argument(f"args[{i}]", a) for i, a in enumerate(args))
    try:
        # The user's function gets its own copies: it may not move the data
        # that the references are computed from.
        returned = grad_fn(params, *(np.array(a, copy=True) for a in args))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - the user's code (even sys.exit): reported, not raised
        return Judged(_misuse(names, leaves, _inputs.call_failed(exc, names, leaves, ref_args), exc), {})
    positional = isinstance(params, (tuple, list)) and isinstance(returned, (tuple, list))
    slip = _inputs.entries_not_parameters(names, leaves, returned, positional=positional)
    if slip is not None:  # a key-name slip or an extra entry: a wrong call, not a wrong gradient
        return Judged(_misuse(names, leaves, slip), {})
    closed, problems = _inputs.match_structure(names, leaves, returned, positional=positional)
    if not closed:  # nothing returned matches any parameter: not a gradient of `params` at all
        return Judged(_misuse(names, leaves, _inputs.not_a_gradient(returned, names, leaves)), {})
    widened: list[str] = []
    if _narrowed_by_jax(params, closed, returned):
        # float64 inputs, float32 JAX arrays back: JAX's x64 is off (its default), not the user's intent.
        # Called again with x64 on for this call only (the user's configuration is left as it was).
        try:
            with jax.enable_x64(True):
                again = grad_fn(params, *(np.array(a, copy=True) for a in args))
                again_closed, again_problems = _inputs.match_structure(names, leaves, again, positional=positional)
        except KeyboardInterrupt:
            raise
        except BaseException:  # noqa: BLE001 - the user's code: the float32 result stands, and says why below
            again_closed = {}
        if again_closed and _tolerance.precision_of([c.dtype for c in again_closed.values()]) == np.float64:
            closed, problems = again_closed, again_problems
            widened.append(X64_NOTE)
    precision = _tolerance.precision_of([c.dtype for c in closed.values()])
    accidental = precision != np.float64 and all(leaf_dtype == np.float64 for leaf_dtype in _input_dtypes(params))
    eps = float(np.finfo(precision).eps)
    cf = np.concatenate(
        [
            closed[n].astype(np.float64).ravel()
            if n in closed and closed[n].shape == leaf.shape
            else np.zeros(leaf.size)
            for n, leaf in zip(names, leaves)
        ]
    )
    cf = np.where(np.isfinite(cf), cf, 0.0)  # non-finite entries are reported apart
    with jax.enable_x64(True):
        try:
            evaluation: _references.Evaluation = _references.evaluation(
                loss_fn, treedef, leaves, ref_args, eps / 2, seed, cf, screen=_references.SCREEN
            )
        except _trace.Untraceable as untraceable:  # a forward pass in NumPy: its finite differences alone
            evaluation = _forward.ForwardEvaluation(loss_fn, treedef, leaves, ref_args, seed, untraceable)
        refs, tol = refine(evaluation, cf, precision)
        report = _judge.judge(names, leaves, closed, problems, refs, precision, cf, penalties=penalties, tol=tol)
        if evaluation.screened and not _settled(report, refs):  # judged again, on the measured noise
            evaluation = evaluation.measured()
            refs, tol = refine(evaluation, cf, precision)
            report = _judge.judge(names, leaves, closed, problems, refs, precision, cf, penalties=penalties, tol=tol)
    if evaluation.screened:
        report = dataclasses.replace(report, notes=(*report.notes, SCREENED_NOTE))
    if isinstance(evaluation, _forward.ForwardEvaluation):
        report = dataclasses.replace(report, notes=(evaluation.note(), *report.notes))
    report = dataclasses.replace(report, references=evaluation.path, notes=(*widened, *report.notes))
    offsets = np.cumsum([0, *(leaf.size for leaf in leaves)])
    # Each mismatched parameter's (closed form, autodiff, tolerance): what the wider evaluation, the
    # catalogue of mistakes and a diagnosis across checks read.
    mismatched = {
        r.name: (cf[a:b].reshape(leaf.shape), refs.autodiff[a:b].reshape(leaf.shape), tol[a:b].reshape(leaf.shape))
        for r, leaf, a, b in zip(report.params, leaves, offsets[:-1], offsets[1:])
        if r.status == "mismatch"
    }
    wide_found_mistake = False
    if mismatched and precision == np.float64:
        call = _precision.Call(rerun or grad_fn, treedef, names, leaves, ref_args, positional)
        decision = _precision.decide(call, mismatched)
        report = _decided(report, decision, mismatched)
        wide_found_mistake = any(not r for r in decision.rounding.values())
        mismatched = {n: arrays for n, arrays in mismatched.items() if report[n].status == "mismatch"}
    task = _mistakes.seed_problem(loss_fn, params)
    if task is not None and report.verdict in ("mismatch", "error") and len(ref_args) == 2 and report.error is None:
        # The seed network's common mistakes, recomputed on this problem: the one that fits is named. A closed
        # form of the wrong shape is a candidate too (a mean over the wrong axis changes the shape).
        misshapen = {
            r.name: (np.asarray(closed[r.name], dtype=np.float64), refs.autodiff[a:b].reshape(leaf.shape), tol[a:b])
            for r, leaf, a, b in zip(report.params, leaves, offsets[:-1], offsets[1:])
            if r.status == "error" and r.name in closed and np.shape(closed[r.name]) != leaf.shape
        }
        found = _mistakes.named(params, ref_args[0], ref_args[1], task, {**mismatched, **misshapen})
        report = with_diagnoses(report, {n: f"{w} (recomputed on this problem)" for n, w in found.items()})
    if accidental and report.verdict in RIGHT:
        report = _misuse(names, leaves, _inputs.accidental_float32(precision))
        return Judged(report, {})
    if report.verdict == "mismatch" and not problems:
        direction = _taylor.along_error(cf, refs.autodiff, np.random.default_rng(seed))
        observed = _taylor.rate(evaluation.losses, evaluation.theta, cf, direction)
        note = _taylor.describe(observed, mismatch=True, mistake_confirmed=wide_found_mistake)
        report = dataclasses.replace(report, notes=(*report.notes, note), taylor_rate=observed)
    return Judged(report, mismatched)


#: The note of a closed form that returned float32 JAX arrays for float64 inputs, and was called again.
X64_NOTE = (
    "the closed form returned float32 JAX arrays for float64 inputs (JAX's x64 mode is off, its default); "
    "it was called again with x64 on for that call only, and its float64 result judged"
)


def with_diagnoses(report: Report, diagnoses: dict[str, str]) -> Report:
    """`report` with the given diagnoses in place of its own, for the parameters it blames: one diagnosis per
    parameter wherever the report is told (text, JSON, Gradescope, JUnit, a pytest failure)."""
    params = tuple(
        dataclasses.replace(p, diagnosis=diagnoses[p.name])
        if p.name in diagnoses and p.status in ("mismatch", "error")
        else p
        for p in report.params
    )
    return dataclasses.replace(report, params=params)


def _input_dtypes(params: Any) -> list[np.dtype]:
    """The dtypes of the user's own parameter leaves, as they passed them."""
    return [np.asarray(leaf).dtype for leaf in jax.tree_util.tree_leaves(params)]


def _narrowed_by_jax(params: Any, closed: dict[str, np.ndarray], returned: Any) -> bool:
    """Whether float64 parameters came back as float32 JAX arrays (x64 off), not as the user's own cast."""
    if jax.config.read("jax_enable_x64") or not all(d == np.float64 for d in _input_dtypes(params)):
        return False
    narrow = [leaf for leaf in jax.tree_util.tree_leaves(returned) if isinstance(leaf, jax.Array)]
    return bool(narrow) and any(leaf.dtype == np.float32 for leaf in narrow)


def _decided(
    report: Report, decision: _precision.Decision, failed: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
) -> Report:
    """`report` with the wide evaluation's verdict: "imprecise" where the error shrank as rounding does."""
    if decision.undecided is not None:
        note = (
            f"whether the mismatch is only rounding in float64 could not be decided: {decision.undecided}; "
            "the float64 verdict stands"
        )
        return dataclasses.replace(report, notes=(*report.notes, note))
    params, notes = [], list(report.notes)
    for r in report.params:
        if r.name not in decision.rounding:
            params.append(r)
            continue
        cf, ad, tol = failed[r.name]
        wide = decision.wide_rel_error[r.name]
        if decision.rounding[r.name]:
            digits = _precision.digits_kept(np.abs(cf - ad), ad, tol)
            message = (
                f"the derivation is right, but its float64 evaluation keeps {_digits(digits)} (relative error "
                f"{r.max_rel_err_autodiff:.1e}); evaluated in {decision.how} it "
                f"agrees with autodiff (relative error {wide:.1e})"
            )
            params.append(dataclasses.replace(r, status="imprecise", message=message, diagnosis=None))
        else:
            params.append(r)
            notes.append(
                f"{r.name}: evaluated in {decision.how} the closed form is still off by {wide:.1e} relative "
                f"(float64: {r.max_rel_err_autodiff:.1e}): not rounding, a mistake in the derivation"
            )
    if any(r.status == "imprecise" for r in params):
        notes.append(IMPRECISE_NOTE)
    return dataclasses.replace(report, params=tuple(params), notes=tuple(notes))


def _digits(digits: float) -> str:
    """ "only about 4.4 significant digits", or "no significant digit" below a half."""
    return "no significant digit" if digits < 0.5 else f"only about {digits:.1f} significant digits"


#: Where to look when a right derivation loses digits in float64 (verdict "imprecise").
IMPRECISE_NOTE = (
    "imprecise: digits lost to cancellation, as in 0.5 (1 + tanh(z/2)) or 1 - sigmoid(z) for large |z|, "
    "log(1 - sigmoid(z)), or a - y once a rounds to y; 1 / (1 + exp(-z)) and log-sum-exp forms keep them. "
    "It passes unless the check is strict (--strict, strict=True)"
)


#: The note of a check that the screen settled (`_references.SCREEN`).
SCREENED_NOTE = (
    "rounding noise not measured: every entry passed even within the smallest tolerances (tol: the floor "
    f"alone, {_tolerance.FLOOR_ULPS:.0f} ulps of the largest entry; ± err: no rounding noise counted), which "
    "measuring the noise could only widen"
)


def _settled(report: Report, refs: _references.References) -> bool:
    """Whether a screened check stands (`_references.SCREEN`): a pass, with no kink found.

    Measured noise only widens the tolerances and the finite differences' error bounds, so a pass
    stands. It makes the kink tests less sensitive, so a kink the screen found (an element not
    judged) might be judged with the noise measured, and then fail.
    """
    kinks = bool(np.any(refs.kink)) or (refs.along is not None and bool(np.any(refs.along.kink)))
    return report.verdict == "pass" and not kinks


def _misuse(names: list[str], leaves: list[np.ndarray], message: str, cause: BaseException | None = None) -> Report:
    """The report of a wrong call: verdict "error", told once, and nothing compared."""
    results = tuple(ParamResult(n, leaf.shape, "error") for n, leaf in zip(names, leaves))
    return Report(results, error=message, cause=cause)


def refine(
    evaluation: _references.Evaluation, closed: np.ndarray, precision: np.dtype
) -> tuple[_references.References, np.ndarray]:
    """The references, with finite differences retaken at finer steps where they disagree with autodiff,
    and the tolerances (which refining leaves alone: it retakes only the finite differences)."""
    first = evaluation.references
    tol = _judge.tolerances(first.autodiff, first.noise, precision)  # refining retakes only the finite differences
    if evaluation.reference_error is not None:  # finite differences stand in for autodiff: their error counts
        tol = _tolerance.fd_allowance(evaluation.reference_error, tol)
    refs = _judge.refined_until_agreed(evaluation, closed, precision, tol)
    if refs.along is None:
        # Still in doubt after the finest step: a kink within it, where autodiff's own gradient jumps?
        doubt = _judge.reference_doubt(refs, closed, precision, tol) & ~refs.kink
        if doubt.any():
            where = np.flatnonzero(doubt)
            kink = refs.kink.copy()
            kink[where] = evaluation.kinks_within_steps(where, tol)
            refs = refs._replace(kink=kink)
    return refs, tol


def assert_gradients(
    loss_fn: Callable[..., Any],
    grad_fn: Callable[..., Any],
    params: Any,
    *args: Any,
    seed: int = 0,
    strict: bool = False,
) -> Report:
    """Like `check_gradients`, but raise unless the derivation is right.

    A right derivation whose float64 evaluation loses digits (verdict
    "imprecise") passes, with its note in the report; with `strict` it raises
    `ImpreciseGradient`.

    Raises:
        GradientMismatch: the closed form disagrees with the references (an
            `AssertionError` whose message is the report).
        ReferencesDisagree: autodiff and finite differences disagree with each
            other (for example at a non-differentiable point).
        ImpreciseGradient: with `strict`, the derivation is right but its float64
            evaluation is not accurate to the tolerance (verdict "imprecise").
        TypeError: a wrong call, not a wrong gradient: `grad_fn` does not take
            ``(params, *args)`` (it raised `TypeError`), or it returned
            something that is not a gradient of `params` (None, say). The
            message says which, with the user's traceback; the exception
            `grad_fn` raised is chained.
        ValueError: `grad_fn` raised any other exception (data of a shape it
            does not take, say); the same message, and the exception chained.
    """
    __tracebackhide__ = True  # pytest shows the user's test line and the report, not gradcheck's source
    report = check_gradients(loss_fn, grad_fn, params, *args, seed=seed)
    if report.verdict == "error":
        raise misuse_exception(report) from report.cause
    if report.verdict == "mismatch":
        raise GradientMismatch(report)
    if report.verdict == "inconclusive":
        raise ReferencesDisagree(report)
    if strict and report.verdict == "imprecise":
        raise ImpreciseGradient(report)
    return report
