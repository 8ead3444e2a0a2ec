"""Judgement: the tolerances applied, the comparison with both references, kinks and doubt, verdicts."""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np

from gradcheck import _diagnose, _tolerance
from gradcheck._references import MAX_COORDINATES, REFINE, Along, References, Refinable, refined
from gradcheck._report import ParamResult, Report


def refined_until_agreed(
    evaluation: Refinable, closed: np.ndarray, precision: np.dtype, tol: np.ndarray | None = None
) -> References:
    """``evaluation.references`` with finite differences retaken at each of `REFINE`'s finer steps
    where autodiff and they still disagree (``evaluation.finer(scale, doubt)``).

    `tol` is ``tolerances(refs.autodiff, refs.noise, precision)``, if the caller has it: refinement
    retakes only the finite differences, so it holds throughout.
    """
    refs: References = evaluation.references
    if tol is None:
        tol = tolerances(refs.autodiff, refs.noise, precision)
    for scale in REFINE:
        doubt = reference_doubt(refs, closed, precision, tol)
        if not doubt.any():
            break
        refs = refined(refs, evaluation.finer(scale, doubt), doubt)
    return refs


def reference_doubt(
    refs: References, closed: np.ndarray, precision: np.dtype, tol: np.ndarray | None = None
) -> np.ndarray:
    """Coordinates (or directions) where autodiff and the finite differences disagree, or cross a kink.

    `tol` is ``tolerances(refs.autodiff, refs.noise, precision)``, if the caller has it.
    """
    if tol is None:
        tol = tolerances(refs.autodiff, refs.noise, precision)
    if refs.along is None:
        return compared(closed, refs, tol).doubt
    return along_doubt(refs.along, tol)


def judge(
    names: list[str],
    leaves: list[np.ndarray],
    closed: dict[str, np.ndarray],
    problems: dict[str, str],
    refs: References,
    precision: np.dtype,
    cf_flat: np.ndarray,
    *,
    penalties: bool = True,
    tol: np.ndarray | None = None,
) -> Report:
    """The verdict on every parameter, from the flat references and closed form.

    With `penalties`, an error proportional to a parameter's own value is
    diagnosed as a forgotten penalty's gradient (weight decay); the derivative
    checks, whose "parameters" are a function's inputs, turn that off.
    `tol` is ``tolerances(refs.autodiff, refs.noise, precision)``, if the caller has it.
    """
    tol_flat = tolerances(refs.autodiff, refs.noise, precision) if tol is None else tol
    offsets = np.cumsum([0, *(leaf.size for leaf in leaves)])
    reference = {
        n: (refs.autodiff[a:b].reshape(leaf.shape), tol_flat[a:b].reshape(leaf.shape))
        for n, leaf, a, b in zip(names, leaves, offsets[:-1], offsets[1:])
    }
    # One comparison over the flat vector (`cf_flat` has zeros for the closed
    # form's missing, misshapen or non-finite entries: those are reported apart).
    c_flat = compared(cf_flat, refs, tol_flat)
    results = []
    for name, leaf, a, b in zip(names, leaves, offsets[:-1], offsets[1:]):
        section = slice(a, b)
        ad, tol = reference[name]
        # This parameter's references, in its shape.
        noise, fd, fd_err, kink = (v[section].reshape(leaf.shape) for v in refs[1:5])
        mine = References(ad, noise, fd, fd_err, kink)
        if name in problems:
            diagnosis = _diagnose.diagnose(name, closed.get(name), ad, tol, reference)
            results.append(ParamResult(name, leaf.shape, "error", message=problems[name], diagnosis=diagnosis))
            continue
        c = Comparison(*(v[section].reshape(leaf.shape) for v in c_flat))
        results.append(
            _judge_param(
                name,
                cf_flat[section].reshape(leaf.shape),
                mine,
                tol,
                reference,
                c,
                _itself(name, leaf) if penalties else (),
                elementwise_fd=refs.along is None,
            )
        )
    notes = (
        [] if precision == np.float64 else [f"the closed form returned {precision}; judged at {precision} precision"]
    )
    if refs.along is not None:
        results, note = _judge_along(results, refs.along, tol_flat)
        notes.append(note)
    return Report(tuple(results), precision=str(precision), notes=tuple(notes))


def _itself(name: str, value: np.ndarray) -> tuple[_diagnose.Term, ...]:
    """The parameter's own value, which a forgotten penalty's gradient is proportional to."""

    def cause(k: float) -> str:
        if k >= 0:
            return ""
        return f" (the gradient {-k:.6g} `{name}` of a penalty ({-k:.6g}/2) ||`{name}`||^2, weight decay, forgotten?)"

    return (_diagnose.Term(f"`{name}` itself", f"`{name}`", np.asarray(value, dtype=np.float64), cause),)


def along_doubt(along: Along, tol: np.ndarray) -> np.ndarray:
    """Directions (..., D) along which autodiff and the finite differences disagree, or that cross a kink."""
    allowed = _tolerance.along_allowance(along.fd_error, tol)
    doubt: np.ndarray = (np.abs(along.autodiff - along.finite_diff) > allowed) | along.kink | np.isnan(allowed)
    return doubt


def _judge_along(results: list[ParamResult], along: Along, tol: np.ndarray) -> tuple[list[ParamResult], str]:
    """Directional finite differences: they confirm autodiff, or put the verdicts in doubt.

    Along a +-1 direction d, a closed form within ``tol`` of autodiff
    elementwise is within ``sum(tol)`` of it along d, so the allowance is
    ``FD_SAFETY * fd_error + sum(tol)``.
    """
    allowed = _tolerance.along_allowance(along.fd_error, tol)
    gap = np.abs(along.autodiff - along.finite_diff)
    doubt = along_doubt(along, tol)
    used = float((gap / allowed).max(initial=0.0))
    n = len(along.autodiff)
    if not doubt.any():
        return results, (
            f"finite differences along {n} random ±1 directions (the model has {tol.size} parameters, above "
            f"{MAX_COORDINATES}): autodiff agrees with them, using {used:.2g} of the allowance"
        )
    i = int(np.argmax(doubt))
    if along.kink[i]:
        message = (
            f"a non-differentiable point along random direction {i}: the one-sided slopes differ by a jump that "
            "does not shrink with the step, so the reference is in doubt and the closed form is not blamed"
        )
    else:
        message = (
            f"autodiff ({along.autodiff[i]:.6e}) and finite differences ({along.finite_diff[i]:.6e} ± "
            f"{along.fd_error[i]:.1e}) disagree along random direction {i}: the reference is in doubt, so the "
            "closed form is not blamed"
        )
    # The finite differences still blame the closed form where it is farther
    # from them than autodiff is, by more than the allowance, along some
    # direction: then its elementwise mismatches stand. Passes become doubts.
    confirmed = bool((np.abs(along.closed - along.finite_diff) > gap + allowed).any())
    doubted = [
        r
        if r.status == "error" or (r.status == "mismatch" and confirmed)
        else dataclasses.replace(r, status="doubt", message=message)
        for r in results
    ]
    return doubted, f"finite differences along {n} random ±1 directions (the model has {tol.size} parameters)"


def _judge_param(
    name: str,
    cf: np.ndarray,
    refs: References,
    tol: np.ndarray,
    reference: dict[str, tuple[np.ndarray, np.ndarray]],
    c: Comparison,
    context: tuple[_diagnose.Term, ...] = (),
    *,
    elementwise_fd: bool = True,
) -> ParamResult:
    """One parameter's verdict: `cf` against its references `refs` (in its shape), compared in `c`."""
    ad, fd, fd_err, kink = refs.autodiff, refs.finite_diff, refs.fd_error, refs.kink
    unmeasured = np.isnan(refs.noise)  # no noise measured: beyond the floor, in doubt rather than blamed
    err_ad, err_fd, ratio_ad, ratio_fd, allowed = c.err_ad, c.err_fd, c.ratio_ad, c.ratio_fd, c.allowed
    # Elements at a kink (a non-differentiable point, where the one-sided slopes
    # differ) have no derivative to check against: they are listed, not judged.
    judged = ~kink
    # Without a kink every element is judged: whole arrays, not masked copies (a model's millions of entries).
    in_judged = (lambda a: a) if not kink.any() else (lambda a: a[judged])
    doubt = c.doubt & judged
    if c.blamed.any():
        status = "mismatch"
    elif doubt.any():
        status = "doubt"
    else:
        status = "pass"
    ratio = np.fmax(ratio_ad, ratio_fd)
    if kink.any():
        ratio = np.where(judged, ratio, -np.inf)
    # The row shows one element, chosen by what both reference paths compute alike (never by the measured
    # noise, whose Monte Carlo runs differ between them): for a mismatch, the blamed element farthest from
    # autodiff; for a doubt, the element in doubt that its message names (the references' worst
    # disagreement); for a pass, the gradient's largest judged entry.
    if status == "doubt":
        gap = np.where(
            doubt, np.nan_to_num(np.abs(ad - fd) / np.maximum(allowed, np.finfo(float).tiny), nan=np.inf), -1
        )
        flat_index = int(np.argmax(gap))
    elif status == "mismatch":
        flat_index = int(np.argmax(np.where(c.blamed, np.nan_to_num(err_ad, nan=np.inf), -1.0)))
    else:
        flat_index = int(np.argmax(np.where(judged, np.abs(ad), -1.0)))
    index: tuple[int, ...] | None = tuple(int(i) for i in np.unravel_index(flat_index, cf.shape))
    message = None
    if status == "doubt":
        where = index
        if unmeasured[where] and np.fmax(ratio_ad[where], ratio_fd[where]) > 1.0:
            message = (
                f"the rounding noise of autodiff could not be measured at index {where} (no Monte Carlo run was "
                f"finite there): the closed form is {err_ad[where]:.1e} from autodiff, beyond the tolerance's floor "
                f"({tol[where]:.1e}), which rounding alone might explain, so it is not blamed"
            )
        elif np.isnan(fd[where]) or np.isnan(fd_err[where]):
            message = (
                f"the loss is not finite at the finite-difference points around index {where}, even with the "
                "finest step: the reference is in doubt, so the closed form is not blamed"
            )
        else:
            message = (
                f"autodiff ({ad[where]:.6e}) and finite differences ({fd[where]:.6e} ± {fd_err[where]:.1e}) "
                f"disagree at index {where}, and the one-sided slopes show no kink there: the reference is in "
                "doubt (is the loss's own derivative rule wrong?), so the closed form is not blamed"
            )
    diagnosis = _diagnose.diagnose(name, cf, ad, tol, reference, context) if status == "mismatch" else None
    at: dict[str, float] = {}
    if judged.any():  # else every element sits at a kink: no element to show
        at = {
            "closed_form": float(cf[index]),
            "autodiff": float(ad[index]),
            "finite_diff": float(fd[index]),
            "fd_error": float(fd_err[index]),
            "abs_error": float(err_ad[index]),
            "rel_error": _relative(float(err_ad[index]), float(ad[index])),
            "tolerance": float(tol[index]),
        }
    else:
        index = None
    return ParamResult(
        name,
        cf.shape,
        status,  # type: ignore[arg-type]
        index=index,
        **at,
        max_abs_err_autodiff=float(in_judged(err_ad).max(initial=0.0)),
        max_rel_err_autodiff=resolved_relative(in_judged(err_ad), in_judged(ad), in_judged(tol)),
        # Finite differences along directions have no elementwise error (NaN): none resolved.
        max_abs_err_fd=float(in_judged(err_fd).max(initial=0.0)) if elementwise_fd else math.nan,
        max_rel_err_fd=(
            resolved_relative(in_judged(err_fd), in_judged(fd), in_judged(allowed)) if elementwise_fd else 0.0
        ),
        tolerance_used=float(ratio.max(initial=0.0)),
        message=message,
        diagnosis=diagnosis,
        not_judged=tuple(tuple(int(i) for i in where) for where in np.argwhere(kink)) if kink.any() else (),
    )


def tolerances(autodiff: np.ndarray, noise: np.ndarray, precision: np.dtype) -> np.ndarray:
    """The tolerance of every element of flat gradients (..., P): the scale is each problem's own.

    Where the noise could not be measured (NaN: no Monte Carlo run was finite there), the floor
    alone; `compare` holds an error beyond it in doubt rather than blaming it.
    """
    eps = float(np.finfo(precision).eps)
    noise = np.where(np.isnan(noise), 0.0, noise)
    floor = _tolerance.absolute_floor(precision)  # a right float32 closed form cannot hold a gradient of 1e-46
    return _tolerance.tolerance(noise, _tolerance.scale(autodiff, noise, eps), eps, floor)


class Comparison(NamedTuple):
    """The closed form against both references, elementwise (any shape, e.g. (P,) or (B, P))."""

    err_ad: np.ndarray  # |cf - ad|
    err_fd: np.ndarray  # |cf - fd|
    ratio_ad: np.ndarray  # err_ad / tol: above 1 breaks the tolerance
    ratio_fd: np.ndarray  # (err_fd - |ad - fd|)+ / allowed: how much farther than autodiff, over the allowance
    allowed: np.ndarray  # FD_SAFETY * fd_err + tol: how far a finite difference may be
    doubt: np.ndarray  # the references disagree with each other, or a kink: nothing is blamed
    blamed: np.ndarray  # the closed form breaks a tolerance where the references agree


def compared(closed: np.ndarray, refs: References, tol: np.ndarray) -> Comparison:
    """`compare` of `closed` with the references `refs` (of one problem (P,), or a batch (B, P)), at `tol`."""
    return compare(
        closed,
        refs.autodiff,
        tol,
        refs.finite_diff,
        refs.fd_error,
        refs.kink,
        elementwise_fd=refs.along is None,
        unmeasured=np.isnan(refs.noise),
    )


def compare(
    cf: np.ndarray,
    ad: np.ndarray,
    tol: np.ndarray,
    fd: np.ndarray,
    fd_err: np.ndarray,
    kink: np.ndarray,
    *,
    elementwise_fd: bool = True,
    unmeasured: np.ndarray | None = None,
) -> Comparison:
    """The verdict's arithmetic, shared by `check_gradients` and `check_batch`.

    With `elementwise_fd` false the finite differences were taken along
    directions (NaN here by design); otherwise a NaN finite difference (the
    loss is not finite at theta +- h) puts its element in doubt. `unmeasured`
    marks elements whose noise could not be measured (`tolerances`: the floor
    alone): beyond it they are in doubt, not blamed.
    """
    err_ad = np.abs(cf - ad)
    ratio_ad = err_ad / np.maximum(tol, np.finfo(float).tiny)
    if not elementwise_fd:  # no finite differences to compare with here: what they give is NaN throughout
        none = np.broadcast_to(np.nan, np.shape(fd))
        doubt_along = kink | np.isnan(tol)
        if unmeasured is not None:
            doubt_along = doubt_along | (unmeasured & (ratio_ad > 1.0))
        return Comparison(err_ad, none, ratio_ad, none, none, doubt_along, (ratio_ad > 1.0) & ~doubt_along)
    err_fd = np.abs(cf - fd)
    allowed = _tolerance.fd_allowance(fd_err, tol)
    # The finite differences blame the closed form only for the distance by which it lies farther
    # from them than autodiff does. Where the two references differ by nearly the allowance (a step
    # across a kink that the slopes did not show), a closed form equal to autodiff would otherwise
    # sit at the allowance's edge; autodiff, exact to rounding, already judges it to its tolerance.
    ratio_fd = np.maximum(err_fd - np.abs(ad - fd), 0.0) / np.maximum(allowed, np.finfo(float).tiny)
    # A tolerance that cannot be measured (NaN noise) blames nothing either, nor does a NaN finite
    # difference (the loss is not finite at theta +- h).
    doubt = (np.abs(ad - fd) > allowed) | kink | np.isnan(tol) | np.isnan(fd) | np.isnan(fd_err)
    if unmeasured is not None:
        doubt |= unmeasured & ((ratio_ad > 1.0) | (ratio_fd > 1.0))
    blamed = ((ratio_ad > 1.0) | (ratio_fd > 1.0)) & ~doubt
    return Comparison(err_ad, err_fd, ratio_ad, ratio_fd, allowed, doubt, blamed)


def resolved_relative(error: np.ndarray, reference: np.ndarray, tol: np.ndarray) -> float:
    """Largest elementwise relative error among elements the reference resolves (|ref| > tol)."""
    magnitude = np.asarray(np.abs(reference))  # an array even for a 0-d parameter (it is written in place)
    resolved = magnitude > tol
    if not resolved.any():
        return 0.0
    ratio = np.divide(error, magnitude, out=magnitude, where=resolved)  # in place: a model's millions of entries
    return float(np.max(ratio, where=resolved, initial=0.0))


def _relative(error: float, reference: float) -> float:
    if error == 0.0:
        return 0.0
    return float(error / abs(reference)) if reference != 0.0 else math.inf
