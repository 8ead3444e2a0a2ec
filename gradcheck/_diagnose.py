"""Name the likely mistake behind a failed parameter.

A diagnosis is stated only when it is confirmed: the implied fix is applied
to the closed form and the result passes the same tolerance. Facts that need
no confirmation (a wrong shape, a NaN, all zeros) are stated as facts.
Anything else is "unclassified", with the evidence.
"""

from __future__ import annotations

import numpy as np

#: How many of the worst entries to list for "only some entries wrong".
WORST_SHOWN = 3


def diagnose(
    name: str,
    cf: np.ndarray | None,
    ad: np.ndarray,
    tol: np.ndarray,
    reference: dict[str, tuple[np.ndarray, np.ndarray]],
) -> str | None:
    """The likely mistake in `cf` (the closed form for `name`), or None if it has none.

    `ad` and `tol` are the reference and the tolerance for `name`;
    `reference` maps every parameter's name to its (reference, tolerance), for
    spotting swapped parameters.
    """
    if cf is None:
        return None
    cf = np.asarray(cf, dtype=np.float64)

    def passes(candidate: np.ndarray) -> bool:
        return bool(np.all(np.abs(candidate - ad) <= tol))

    if cf.shape != ad.shape:
        if cf.ndim == 2 and cf.T.shape == ad.shape and passes(cf.T):
            return f"transposed: shape {cf.shape} where {ad.shape} belongs, and the transpose is right"
        if cf.size == ad.size and passes(cf.reshape(ad.shape)):
            return f"wrong shape {cf.shape}, expected {ad.shape}; the values are right once reshaped"
        return f"wrong shape: expected {ad.shape}, got {cf.shape}"
    finite = np.isfinite(cf)
    if not finite.all():
        where = [tuple(int(i) for i in ix) for ix in np.argwhere(~finite)[:WORST_SHOWN]]
        rest = "; the other entries are right" if passes(np.where(finite, cf, ad)) else ""
        return f"non-finite values at {', '.join(map(str, where))}{rest}"
    if not cf.any() and np.any(np.abs(ad) > tol):
        return "all zeros, but the reference is not: is this gradient ever written?"
    if passes(-cf):
        return "sign flipped: the closed form is -1 x the reference (a residual written y - a2 where a2 - y belongs?)"
    for other, (other_ad, other_tol) in reference.items():
        if other != name and other_ad.shape == cf.shape and np.all(np.abs(cf - other_ad) <= other_tol):
            return f"swapped: these values are the gradient of `{other}`"
    factor = _best_factor(cf, ad)
    if factor is not None and passes(cf / factor):
        return f"off by a constant factor {_format_factor(factor)}{_factor_cause(factor)}"
    bad = np.abs(cf - ad) > tol
    if bad.sum() < cf.size:
        order = np.argsort(-(np.abs(cf - ad) / np.maximum(tol, np.finfo(float).tiny)).ravel())
        worst = [tuple(int(i) for i in np.unravel_index(k, cf.shape)) for k in order[: min(WORST_SHOWN, bad.sum())]]
        return f"only {int(bad.sum())} of {cf.size} entries wrong; worst at {', '.join(map(str, worst))}"
    return f"unclassified: closed form / reference ranges over {_ratio_range(cf, ad)}"


def _best_factor(cf: np.ndarray, ad: np.ndarray) -> float | None:
    """Least-squares c with cf ~ c * ad, or None if the reference is zero."""
    denominator = float(np.vdot(ad, ad))
    if denominator == 0.0:
        return None
    c = float(np.vdot(cf, ad)) / denominator
    return c if c != 0.0 else None


def _format_factor(c: float) -> str:
    """``2``, ``0.25`` or, close to 1, ``1 + 1.0e-08`` (so a tiny error still shows)."""
    return f"1 {'+' if c > 1 else '-'} {abs(c - 1):.1e}" if abs(c - 1) < 1e-4 else f"{c:.6g}"


def _factor_cause(c: float) -> str:
    near = round(c)
    if abs(c - 2.0) < 1e-9 * 2:
        return (
            " (a missing 1/2: the derivative of 1/2 (y - a2)^2 is (a2 - y), not 2 (a2 - y);"
            " or a sum where a mean belongs, if your batch has 2 samples)"
        )
    if abs(c - 0.5) < 1e-9:
        return " (an extra 1/2)"
    if near >= 3 and abs(c - near) < 1e-9 * near:
        return f" (a sum where a mean belongs, if your batch has {near} samples)"
    inverse = round(1.0 / c) if c > 0 else 0
    if inverse >= 3 and abs(1.0 / c - inverse) < 1e-9 * inverse:
        return f" (divided by N twice, if your batch has {inverse} samples)"
    return ""


def _ratio_range(cf: np.ndarray, ad: np.ndarray) -> str:
    nonzero = ad != 0
    if not nonzero.any():
        return "nothing (the reference is zero)"
    ratios = cf[nonzero] / ad[nonzero]
    return f"[{ratios.min():.6g}, {ratios.max():.6g}]"
