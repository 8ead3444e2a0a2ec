"""The tolerance model: how far apart two correct gradients may be.

The rule (``docs/tolerances.md`` gives the reasoning and the measurements)::

    tol_i = NOISE_SAFETY * noise_i  +  FLOOR_ULPS * eps * scale

- ``noise_i`` is the measured rounding noise of element i: the largest
  deviation over ``NOISE_SAMPLES`` Monte Carlo arithmetic re-runs of the
  float64 autodiff gradient, with every operation perturbed at the unit
  roundoff of the closed form's precision (see `_noise`).
- ``scale`` is the largest magnitude of the terms the gradient is made of,
  over all parameters together: the larger of the largest entry of the
  reference gradient and of its noise in units of the unit roundoff (the
  Monte Carlo arithmetic perturbs a sum by u times the magnitude of its
  terms, so ``noise_j / u`` measures the terms that entry j sums; a spread
  above sqrt(u) of the largest entry is a flipped branch, not rounding, and is
  left out). A stable
  algorithm's error is a few ulps of the magnitude of the terms it combines,
  and rounding a vector moves each entry by up to a few ulps of its largest:
  normwise, not componentwise, accuracy, with the terms' magnitude as the norm
  where the sums cancel.
- ``eps`` is the machine epsilon of the closed form's dtype, so a float32
  closed form is judged at float32 precision.
- an absolute floor (`absolute_floor`): ``sqrt(float64 tiny)`` (1.5e-154),
  or a coarser closed form's own smallest normal number where larger,
  covers gradients that vanish exactly.

A closed form agrees with the finite differences when it lies no farther
from them than autodiff does, give or take the allowance (`fd_allowance`):
``|cf_i - fd_i| - |ad_i - fd_i| <= FD_SAFETY * fd_err_i + tol_i``; along
random +-1 directions, the sum of the tolerances takes tol_i's place
(`along_allowance`).
"""

from __future__ import annotations

import numpy as np

#: Monte Carlo arithmetic re-runs of the autodiff reference. The maximum of 8
#: samples of a symmetric spread lands near its 90th percentile.
NOISE_SAMPLES = 8
#: Multiplier on the measured noise. The largest ratio |closed form - autodiff|
#: / noise seen by ``benchmarks/calibrate_tolerance.py`` where the noise decides
#: is 2.5 (see docs/tolerances.md); 16 leaves a factor of 6 to spare.
NOISE_SAFETY = 16.0
#: Absolute floor, in ulps of the gradient's scale (`scale`). Covers closed forms
#: that lose accuracy where autodiff does not, e.g. a1 (1 - a1) = 0 for a
#: saturated unit whose true slope is 4e-18. It was 64 ulps of the largest
#: gradient entry until the main job's 100,000 classification problems met a
#: saturated one whose w1 entry needed 77 (per-sample output errors of both
#: signs made the gradient's largest entry, a mean, smaller than its terms),
#: then 256 until 200,000 problems met one that needed 300 (problem 191713:
#: output errors summing to 3e-5 from terms of 3.75 in all). Since then the
#: scale is the terms' magnitude, which that case exceeds its largest entry by
#: 1e5: the floor there is 256 ulps of 3.3, and the w1 entry uses 1e-6 of it.
FLOOR_ULPS = 256.0
#: Multiplier on the finite differences' own error estimate. The largest ratio
#: |closed form - finite diff| / (fd_err + tol) seen by the calibration is
#: 2.5 (a confident classifier, whose loss is a difference of two numbers near
#: 35); 16 leaves a factor of 6 to spare.
FD_SAFETY = 16.0


def tolerance(noise: np.ndarray, scale: np.ndarray | float, eps: float, floor: float | None = None) -> np.ndarray:
    """``NOISE_SAFETY * noise + FLOOR_ULPS * eps * scale + floor``, elementwise.

    The last term is an absolute floor, `absolute_floor` of the closed form's
    precision (float64's by default): a gradient that vanishes exactly (a
    perfect fit of an underflowed sigmoid) leaves no scale to measure against.
    """
    absolute = absolute_floor(np.float64) if floor is None else floor
    tol: np.ndarray = NOISE_SAFETY * noise + FLOOR_ULPS * eps * scale + absolute
    return tol


def absolute_floor(precision: np.dtype | type) -> float:
    """The tolerance's absolute floor for a closed form of `precision`.

    In float64, the square root of the smallest normal number, 1.5e-154: below
    it a product of two such values underflows and rounding stops being
    relative. A coarser closed form cannot hold a gradient below its own
    smallest normal number faithfully (float32's 1.2e-38: a gradient of 1e-46
    comes back as 0), so that is its floor when it is the larger.
    """
    return max(float(np.sqrt(np.finfo(np.float64).tiny)), float(np.finfo(precision).tiny))


def scale(autodiff: np.ndarray, noise: np.ndarray, eps: float) -> np.ndarray:
    """The magnitude of the terms of flat gradients (..., P): ``max(|autodiff|, noise / u)`` over the last axis.

    `noise` is the measured rounding noise at unit roundoff ``u = eps / 2``; the
    Monte Carlo arithmetic perturbs each sum by about u times its terms'
    magnitude (`_noise`), so ``noise / u`` is that magnitude where the sums
    cancel, and below ``|autodiff|`` where they do not. A spread above ``sqrt(u)``
    of the largest entry is no rounding (a branch that flips under the noise, at
    a kink) and tells nothing of the terms: such entries are left out, so a
    cancellation of up to 8 digits in float64 is recognised.
    """
    u = eps / 2
    most_noise = noise.max(axis=-1, keepdims=True)
    largest = np.maximum(np.abs(autodiff).max(axis=-1, keepdims=True), most_noise)
    cutoff = np.sqrt(u) * largest
    if np.all(most_noise <= cutoff):  # no spread left out (the common case): no masked copy
        rounding = most_noise
    else:
        rounding = np.where(noise <= cutoff, noise, 0.0).max(axis=-1, keepdims=True)
    terms: np.ndarray = np.maximum(largest, rounding / u)
    return terms


def fd_allowance(fd_error: np.ndarray, tol: np.ndarray | float) -> np.ndarray:
    """How far finite differences may lie from a correct gradient, elementwise: ``FD_SAFETY * fd_error + tol``.

    Every comparison with finite differences uses it: a closed form judged against them
    (`_judge.compare`), and a closed form judged against finite differences that stand in for
    autodiff (a loss JAX cannot trace: `_forward`), whose tolerance it is.
    """
    allowed: np.ndarray = FD_SAFETY * fd_error + tol
    return allowed


def along_allowance(fd_error: np.ndarray, tol: np.ndarray) -> np.ndarray:
    """`fd_allowance` along random +-1 directions: finite differences (..., D) against flat tolerances (..., P).

    A closed form within ``tol`` of autodiff elementwise is within ``sum(tol)`` of it along a +-1 direction,
    so the allowance is ``FD_SAFETY * fd_error + sum(tol)``.
    """
    return fd_allowance(fd_error, tol.sum(axis=-1, keepdims=True))


def samples_safety(samples: int) -> float:
    """Widening of the measured noise when it comes from fewer than `NOISE_SAMPLES` samples.

    The largest deviation of s samples sits lower in a symmetric spread as s
    falls (for a Gaussian, about 1.8 standard deviations for 8 samples and 1.0
    for 2), roughly as sqrt(s); ``sqrt(NOISE_SAMPLES / s)`` restores the
    8-sample scale the safety factor was calibrated for. It is 1 for 8.
    """
    return float(np.sqrt(NOISE_SAMPLES / samples))


def precision_of(dtypes: list[np.dtype]) -> np.dtype:
    """The coarsest floating dtype among `dtypes` (float64 if none is floating)."""
    floats = [np.dtype(d) for d in dtypes if np.issubdtype(d, np.floating)]
    return max(floats, key=lambda d: float(np.finfo(d).eps), default=np.dtype(np.float64))
