"""Derivation or precision: a closed form that fails in float64 is evaluated again in wider arithmetic.

A float64 closed form can disagree with the references for two reasons: its
formula is wrong (a mistake in the derivation), or its formula is right and its
float64 evaluation loses digits (``0.5 * (1 + tanh(z / 2))`` for z << 0 cancels,
as does ``log(1 - sigmoid(z))``). The float64 comparison cannot tell the two
apart; a change of working precision can, since rounding error shrinks with the
unit roundoff and a wrong formula does not. The user's closed form is called
again, unchanged, on the same inputs held in a wider type:

1. **Arbitrary precision** (mpmath), for problems of up to `MP_MAX_ENTRIES`
   numbers: object arrays of mpmath numbers at `MP_BITS` bits, then at
   ``MP_BITS[-1]`` if needed. NumPy runs ``@``, sums and ufuncs (``np.tanh``,
   ``np.exp``, ``np.log``, ...) on them elementwise. The derivation is right
   when the wide closed form lies within ``tol / 16`` of autodiff
   (`REFERENCE_SHARE`: that bounds the float64 reference's own error, so a
   mistake just above the tolerance cannot hide in the rest of it); it is wrong when
   it stays outside at two precisions that agree with each other; when they
   disagree, even 1024 bits were not enough, and it is not decided.
2. **Long double** (``np.longdouble``: on x86-64 Linux the x87 80-bit type, a
   64-bit significand, unit roundoff ``2^-11`` of float64's), where
   arbitrary precision cannot run (a larger problem, or code that needs a
   float dtype): the error must shrink as rounding does::

       |cf_wide_i - ad_i|  <=  SHRINK_SAFETY * (eps_wide / eps_64) * max_j |cf_64_j - ad_j|  +  tol_i / 16

   A mistake in the formula keeps its size, so it breaks this by a factor of
   about ``eps_64 / (SHRINK_SAFETY * eps_wide)`` = 32. It can only decide
   "rounding": when the error does not shrink, the cancellation may be beyond
   long double's 11 extra bits too, so the float64 verdict stands with a note.

What cannot be decided is said in the report, and the float64 verdict stands:
long double is float64 on the platform (Windows, macOS on arm64) and the problem
is too large for arbitrary precision; the closed form does not keep the wide type
(it returns float64: an explicit cast, an array made with ``dtype=float``, JAX
or compiled code inside), or raises on it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import mpmath
import numpy as np

from gradcheck import _inputs, _tolerance

#: The wider NumPy type, where arbitrary precision cannot run.
WIDE: type[np.floating[Any]] = np.longdouble
#: Allowance on the predicted shrink of a rounding error in `WIDE` (its size is random within a
#: few units of the roundoff in either precision, so the ratio of the two varies).
SHRINK_SAFETY = 64.0
#: Bits of the arbitrary-precision evaluations: the first decides most cases (a right derivation, and a
#: mistake whose value is the float64 one); the second tells a mistake (the same result) from a
#: cancellation that 256 bits did not absorb (a result that moves).
MP_BITS = (256, 1024)
#: Numbers (parameters and data together) up to which arbitrary precision runs: each operation is a
#: Python call, some microseconds, so a model of thousands of entries takes seconds.
MP_MAX_ENTRIES = 5_000
#: The float64 reference's own error, as a share of the tolerance: tol = NOISE_SAFETY * noise + floor, so
#: tol / NOISE_SAFETY bounds its measured noise (and 16 ulps of the terms' magnitude). A closed form evaluated
#: wider must come this close to autodiff: a mistake just above the tolerance cannot hide in the rest of it.
REFERENCE_SHARE = 1.0 / _tolerance.NOISE_SAFETY

#: NumPy ufuncs call the method of the same name on each element of an object array.
_MP_METHODS = {
    "exp": "exp",
    "expm1": "expm1",
    "log": "log",
    "log1p": "log1p",
    "log2": "log",
    "log10": "log10",
    "sqrt": "sqrt",
    "tanh": "tanh",
    "sinh": "sinh",
    "cosh": "cosh",
    "sin": "sin",
    "cos": "cos",
    "tan": "tan",
    "arctan": "atan",
    "arcsin": "asin",
    "arccos": "acos",
    "arctanh": "atanh",
}


class Call(NamedTuple):
    """How to call the closed form again: the function, and the check's float64 inputs and structure."""

    grad_fn: Callable[..., Any]
    treedef: Any
    names: list[str]
    leaves: list[np.ndarray]
    args: tuple[np.ndarray, ...]
    #: Whether a tuple returned for tuple parameters is paired by position (`_inputs.match_structure`).
    positional: bool

    def again(self, convert: Callable[[np.ndarray], Any]) -> Any:
        """The closed form on the inputs converted by `convert` (floating data only; labels stay as they are)."""
        params = jax.tree_util.tree_unflatten(self.treedef, [convert(leaf) for leaf in self.leaves])
        args = tuple(convert(a) if np.issubdtype(a.dtype, np.floating) else a.copy() for a in self.args)
        return self.grad_fn(params, *args)


class Decision(NamedTuple):
    """The wide evaluation's verdict on each parameter that failed in float64."""

    #: By parameter: whether the error is rounding (True: the derivation is right; False: a mistake).
    rounding: dict[str, bool]
    #: By parameter: the largest relative error of the wide closed form against autodiff.
    wide_rel_error: dict[str, float]
    #: Set when the question could not be decided: why (the float64 verdict stands).
    undecided: str | None = None
    #: The arithmetic that decided, in words ("256-bit arithmetic (mpmath)", "long double (64-bit significand)").
    how: str = ""


def decide(call: Call, failed: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Decision:
    """Whether each failed parameter's float64 error is rounding: `grad_fn` evaluated in wider arithmetic.

    `failed` maps a parameter's name to its (float64 closed form, autodiff,
    tolerance) arrays; `call` holds the float64 inputs of the check.
    """
    if (why := _not_reproduced(call, failed)) is not None:
        return Decision({}, {}, why)
    entries = sum(leaf.size for leaf in call.leaves) + sum(a.size for a in call.args)
    why_not_mp = f"the problem has {entries} numbers, above {MP_MAX_ENTRIES} for arbitrary precision"
    if entries <= MP_MAX_ENTRIES:
        decided = _decide_mp(call, failed)
        if isinstance(decided, Decision):
            return decided
        why_not_mp = decided
    by_long_double = _decide_long_double(call, failed)
    if by_long_double.undecided is not None:
        return by_long_double._replace(undecided=f"{why_not_mp}; {by_long_double.undecided}")
    if not all(by_long_double.rounding.values()):
        # Long double tells "rounding" only: a cancellation beyond its 11 extra bits looks like a mistake.
        return by_long_double._replace(
            undecided=(
                f"{why_not_mp}, and in {by_long_double.how} the error of "
                f"{', '.join(n for n, r in by_long_double.rounding.items() if not r)} did not shrink as rounding "
                "does (a mistake, or a cancellation beyond its 11 extra bits)"
            )
        )
    return by_long_double


def _not_reproduced(call: Call, failed: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> str | None:
    """Why `grad_fn`, called again on the same float64 inputs, is no evidence about the closed form judged
    (it returns other values: it is not deterministic, or depends on more than this one problem); None if it
    reproduces it, to the tolerance."""
    try:
        returned = call.again(np.copy)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - the user's code
        return f"called again on the same float64 inputs, the closed form raised {_short(exc)}"
    closed, _ = _inputs.match_structure(call.names, call.leaves, returned, positional=call.positional)
    for name, (cf, _, tol) in failed.items():
        again = closed.get(name)
        if again is None or again.shape != cf.shape or not np.all(np.abs(again.astype(np.float64) - cf) <= tol):
            return (
                f"called again on the same float64 inputs, the closed form returns other values for `{name}` "
                "(it is not deterministic, or depends on more than this one problem)"
            )
    return None


@functools.cache
def _context(bits: int) -> Any:
    """An mpmath context of its own at `bits` bits, whose numbers answer NumPy's ufuncs (``np.tanh(a)``
    calls ``a[i].tanh()`` on an object array). Its own: no other user of mpmath sees the methods."""
    ctx = mpmath.MPContext()
    ctx.prec = bits
    for method, function in _MP_METHODS.items():
        setattr(ctx.mpf, method, (lambda f: lambda self: f(self))(getattr(ctx, function)))
    return ctx


def _decide_mp(call: Call, failed: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Decision | str:
    """The decision in arbitrary precision, or why it could not be made that way."""
    results: list[dict[str, np.ndarray]] = []
    for bits in MP_BITS:
        ctx = _context(bits)

        def held(a: np.ndarray, ctx: Any = ctx) -> np.ndarray:
            out = np.empty(a.shape, dtype=object)
            out.ravel()[:] = [ctx.mpf(float(v)) for v in a.ravel()]
            return out

        try:
            with np.errstate(all="ignore"):
                returned = call.again(held)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - the user's code, on inputs of a type it may not take
            return f"in arbitrary precision the closed form raised {_short(exc)}"
        closed = _paired(call.names, returned, positional=call.positional)
        values = {}
        for name in failed:
            got = np.asarray(closed.get(name))
            if (
                got.dtype != object
                or got.shape != failed[name][1].shape
                or not all(isinstance(v, ctx.mpf) for v in got.ravel())
            ):
                kind = "no usable gradient" if name not in closed else f"{got.dtype}"
                return f"given arbitrary-precision numbers, the closed form returned {kind} for `{name}`"
            values[name] = got
        results.append(values)
        rounding, wide_rel = _judged_mp(values, failed)
        if all(rounding.values()):  # within the tolerance already: nothing a finer evaluation could change
            return Decision(rounding, wide_rel, how=f"{bits}-bit arithmetic (mpmath)")
        # Outside it, and the same as in float64 (to the tolerance): the formula loses nothing to rounding even
        # in float64, so no finer evaluation could move it either. A mistake, decided without the second.
        stable = all(_agree(values[n], failed[n][0], failed[n][2]) for n, r in rounding.items() if not r)
        if bits == MP_BITS[0] and stable:
            return Decision(rounding, wide_rel, how=f"{bits}-bit arithmetic (mpmath)")
    # Outside the tolerance at every precision: a mistake where the two precisions agree.
    coarse, fine = results
    moved = [name for name in failed if not _agree(coarse[name], fine[name], failed[name][2])]
    rounding, wide_rel = _judged_mp(fine, failed)
    how = f"{MP_BITS[-1]}-bit arithmetic (mpmath)"
    if moved:
        return Decision(
            rounding,
            wide_rel,
            undecided=(
                f"the closed form of {', '.join(moved)} still changes between {MP_BITS[0]}- and {MP_BITS[-1]}-bit "
                "arithmetic: a cancellation too deep for either"
            ),
            how=how,
        )
    return Decision(rounding, wide_rel, how=how)


def _paired(names: list[str], returned: Any, *, positional: bool) -> dict[str, Any]:
    """The returned leaves by parameter name, as `_inputs.match_structure` pairs them (by name, else by
    position), without its checks for real dtypes: these leaves are object arrays."""
    try:
        with_path = jax.tree_util.tree_flatten_with_path(returned)[0]
    except Exception:  # noqa: BLE001 - any odd object: nothing paired
        return {}
    got = {jax.tree_util.keystr(path, simple=True, separator=".") or "params": leaf for path, leaf in with_path}
    if set(got) != set(names) and positional and len(names) == len(with_path):
        got = dict(zip(names, (leaf for _, leaf in with_path)))
    return got


def _judged_mp(
    values: dict[str, np.ndarray], failed: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
) -> tuple[dict[str, bool], dict[str, float]]:
    """Per parameter: whether the arbitrary-precision closed form lies within the tolerance of autodiff, and
    its largest relative error (each difference taken in that precision, rounded once to float64)."""
    rounding, wide_rel = {}, {}
    for name, (_, ad, tol) in failed.items():
        error = np.array([float(abs(v - float(a))) for v, a in zip(values[name].ravel(), ad.ravel())])
        error = error.reshape(ad.shape)
        rounding[name] = bool(np.all(error <= REFERENCE_SHARE * tol))
        wide_rel[name] = _largest_relative(error, ad, tol)
    return rounding, wide_rel


def _agree(coarse: np.ndarray, fine: np.ndarray, tol: np.ndarray) -> bool:
    """Whether two arbitrary-precision evaluations agree to the float64 tolerance."""
    gap = np.array([float(abs(a - b)) for a, b in zip(coarse.ravel(), fine.ravel())]).reshape(tol.shape)
    return bool(np.all(gap <= tol))


def wide_digits() -> int:
    """Binary digits of `WIDE`'s significand (64 for x87 extended, 53 where it is float64)."""
    return int(np.finfo(WIDE).nmant) + 1


def _decide_long_double(call: Call, failed: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Decision:
    """The shrink test in `WIDE` (see the module's docstring)."""
    how = f"long double ({wide_digits()}-bit significand)"
    if np.finfo(WIDE).eps >= np.finfo(np.float64).eps:
        return Decision({}, {}, f"np.longdouble is float64 on this platform ({wide_digits()}-bit significand)")
    try:
        returned = call.again(lambda a: a.astype(WIDE))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - the user's code, on inputs of a type it may not take
        return Decision({}, {}, f"in long double it raised {_short(exc)}")
    closed, problems = _inputs.match_structure(call.names, call.leaves, returned, positional=call.positional)
    kept = [n for n in failed if n in closed and closed[n].dtype == WIDE]
    if len(kept) < len(failed) or any(n in problems for n in failed):
        lost = sorted({str(closed[n].dtype) for n in failed if n in closed and closed[n].dtype != WIDE})
        return Decision(
            {},
            {},
            f"given long double, {', '.join(lost) or 'no usable gradient'}: the closed form computes in float64 "
            "inside (an explicit cast, an array made with dtype=float, JAX or compiled code)",
        )
    ratio = float(np.finfo(WIDE).eps / np.finfo(np.float64).eps)
    rounding, wide_rel = {}, {}
    for name, (cf64, ad, tol) in failed.items():
        wide = np.asarray(closed[name], dtype=WIDE)
        err_wide = np.abs(wide - ad.astype(WIDE)).astype(np.float64)  # rounded once, at the end
        err_64 = np.abs(cf64 - ad)
        allowed = SHRINK_SAFETY * ratio * float(err_64.max()) + REFERENCE_SHARE * tol
        rounding[name] = bool(np.all(err_wide <= allowed))
        wide_rel[name] = _largest_relative(err_wide, ad, tol)
    return Decision(rounding, wide_rel, how=how)


def _short(exc: BaseException, limit: int = 90) -> str:
    """An exception in a few words: its type and the start of its message's first line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(exc).__name__} ({text})" if text else type(exc).__name__


def digits_kept(error: np.ndarray, reference: np.ndarray, tol: np.ndarray) -> float:
    """Significant decimal digits that a closed form with elementwise `error` keeps, at its worst element
    (relative to the reference's largest entry where no entry rises above its tolerance)."""
    rel = _largest_relative(error, reference, tol)
    if rel == 0.0:
        return math.inf
    return max(0.0, -math.log10(rel))


def _largest_relative(error: np.ndarray, reference: np.ndarray, tol: np.ndarray) -> float:
    """Largest ``error / |reference|`` over the entries the reference resolves (above its tolerance); else
    against the largest entry."""
    magnitude = np.abs(reference)
    resolved = magnitude > tol
    if resolved.any():
        return float(np.max(error[resolved] / magnitude[resolved]))
    largest = float(magnitude.max())
    return float(error.max() / largest) if largest > 0 else (0.0 if float(error.max()) == 0 else math.inf)
