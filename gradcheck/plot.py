"""`gradcheck plot`: the two pictures in the docs, drawn from the code they describe.

- ``fd_vcurve``: the error of finite differences against the step h on one
  coordinate of the seed network, for forward and central differences,
  gradcheck's own three-level Richardson tableau (`_finite_diff.directional`,
  with its error bound), and the complex step. Large steps are ruled by
  truncation (the error falls like h^p), small ones by rounding (it grows like
  eps |L| / h); gradcheck's step is marked.
- ``taylor_remainder``: the Taylor remainder ``|L(theta + h d) - L(theta) - h g.d|``
  against h (`_taylor.remainders`, the evidence printed in failed reports) for a
  correct gradient (slope 2) and a wrong one (slope 1), with the fitted slopes.

The numbers are computed here, in float64, without matplotlib; only drawing
needs it (``pip install "gradcheck[plot]"``). The command line is
`gradcheck.cli._plot`'s, as every command's is in `gradcheck.cli`.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradcheck import _taylor, mlp, problems
from gradcheck._references import _finite_diff

#: Steps of the V-curve, 2^0 down to 2^-46 in half powers of two: wide enough to
#: show both regimes of every scheme on a coordinate of size about 1.
VCURVE_STEPS = 2.0 ** -(np.arange(0, 93) / 2)
#: A point of the V-curve is fitted as truncation when its error exceeds the
#: rounding estimate eps |L| / (h |g|) this many times, at steps up to
#: `FIT_MAX_STEP` (larger steps are not yet in the asymptotic regime).
TRUNCATION_MARGIN = 100.0
FIT_MAX_STEP = 2.0**-2
#: The wrong gradient of the Taylor plot: the batch sum where the mean belongs.
WRONG_LABEL = "wrong gradient (a sum where the mean belongs)"
FIGURES = ("fd_vcurve", "taylor_remainder")


class VCurve(NamedTuple):
    """Relative errors of each scheme at each step, and gradcheck's step."""

    coordinate: str  # e.g. "w2[0, 1]"
    gradient: float  # autodiff, float64
    loss: float
    steps: np.ndarray  # (K,)
    errors: dict[str, np.ndarray]  # scheme -> (K,) |estimate - autodiff| / |autodiff|; NaN where exactly 0
    slopes: dict[str, float]  # scheme -> fitted slope in the truncation regime (NaN if too few points)
    bound: np.ndarray  # (K,) gradcheck's error bound on the Richardson estimate, relative
    rounding: np.ndarray  # (K,) eps |L| / (h |g|)
    chosen_step: float  # FD_STEP max(1, |theta_i|)
    chosen_error: float
    chosen_bound: float


class TaylorCurves(NamedTuple):
    """Taylor remainders of a correct and a wrong gradient along one direction."""

    correct: _taylor.Remainders
    wrong: _taylor.Remainders
    correct_slope: float
    wrong_slope: float
    rounding_level: float  # the remainder below which `_taylor` drops a step


def seed_problem(task: mlp.Task = "classification", seed: int = 0) -> problems.Problem:
    """The fixed problem of the pictures: the CLI's typical problem (inputs 2, hidden 3, batch 8).

    Examples:
        >>> seed_problem("classification", 0).describe()
        'task=classification regime=typical inputs=2 hidden=3 batch=8'
    """
    return problems.sample(np.random.default_rng(seed), task=task)


def _flat(prob: problems.Problem) -> tuple[Any, np.ndarray, list[str]]:
    """The loss as a function of one flat vector, the flat point, and a name per coordinate."""
    shapes = [np.shape(a) for a in prob.params]
    offsets = np.cumsum([0, *(math.prod(s) for s in shapes)])
    names = [
        f"{field}[{', '.join(map(str, index))}]"
        for field, shape in zip(mlp.Params._fields, shapes)
        for index in np.ndindex(*shape)
    ]

    def flat_loss(theta: jax.Array, args: tuple[jax.Array, ...]) -> jax.Array:
        leaves = [theta[a:b].reshape(s) for a, b, s in zip(offsets[:-1], offsets[1:], shapes)]
        return jnp.asarray(mlp.loss(mlp.Params(*leaves), *args, task=prob.task))

    theta = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in prob.params])
    return flat_loss, theta, names


def vcurve(prob: problems.Problem) -> VCurve:
    """Finite-difference errors against the step, on the hidden weight with the largest gradient.

    Examples:
        >>> v = vcurve(seed_problem())
        >>> {scheme: round(slope) for scheme, slope in v.slopes.items()}
        {'forward': 1, 'central': 2, 'Richardson': 6, 'complex step': 2}
        >>> bool(v.chosen_error <= v.chosen_bound)
        True
    """
    flat_loss, theta, names = _flat(prob)
    eps = float(np.finfo(np.float64).eps)
    with jax.enable_x64(True):
        args = (jnp.asarray(prob.x), jnp.asarray(prob.y))
        f = jax.jit(lambda t: flat_loss(t, args))
        grad = np.asarray(jax.grad(f)(jnp.asarray(theta)))
        # The hidden weight with the largest gradient: the loss is far from quadratic
        # there (in b2 or w2 a regression loss is exactly quadratic, and central
        # differences have no truncation error at all).
        hidden = np.size(prob.params.w1)
        i = int(np.argmax(np.abs(grad[:hidden])))
        g, loss = float(grad[i]), float(f(jnp.asarray(theta)))
        e = np.zeros_like(theta)
        e[i] = 1.0
        hs = VCURVE_STEPS
        plus, minus = theta + hs[:, None] * e, theta - hs[:, None] * e
        f_plus, f_minus = (np.asarray(jax.vmap(f)(jnp.asarray(p))) for p in (plus, minus))
        h_eff = (plus - minus)[:, i] / 2  # the steps actually taken after rounding theta +- h
        estimates = {
            "forward": (f_plus - loss) / (plus[:, i] - theta[i]),
            "central": (f_plus - f_minus) / (2 * h_eff),
        }
        richardson = partial(_finite_diff.directional, f)
        chosen_step = _finite_diff.FD_STEP * max(1.0, abs(float(theta[i])))
        steps = np.append(hs, chosen_step)
        fd = jax.jit(richardson)(
            jnp.asarray(theta),
            jnp.asarray(np.tile(e, (steps.size, 1))),
            jnp.asarray(steps),
            jnp.zeros(()),  # no measured noise: the bound's rounding part is EVAL_ULPS ulps of each value
            f(jnp.asarray(theta)),
        )
        value, bound = np.asarray(fd.value), np.asarray(fd.error)
    estimates["Richardson"] = value[:-1]
    estimates["complex step"] = np.array([_complex_step(prob, theta, i, h) for h in hs])
    rounding = eps * abs(loss) / (hs * abs(g))
    errors = {k: _relative(v, g) for k, v in estimates.items()}
    slopes = {k: _truncation_slope(hs, err, rounding) for k, err in errors.items()}
    return VCurve(
        coordinate=names[i],
        gradient=g,
        loss=loss,
        steps=hs,
        errors=errors,
        slopes=slopes,
        bound=bound[:-1] / abs(g),
        rounding=rounding,
        chosen_step=chosen_step,
        chosen_error=abs(float(value[-1]) - g) / abs(g),
        chosen_bound=float(bound[-1]) / abs(g),
    )


def _complex_step(prob: problems.Problem, theta: np.ndarray, i: int, h: float) -> float:
    """``Im L(theta + i h e_i) / h``, through `mlp.loss` in NumPy complex128.

    It works for this model because every operation is analytic and the
    branches of the sigmoid and softplus (`gradcheck.activations`) test
    ``z >= 0``, which NumPy decides on the real part first. gradcheck does not
    use it: a user's loss may not be analytic (``abs``, ``max``, a comparison
    on complex values).
    """
    point = theta.astype(np.complex128)
    point[i] += 1j * h
    leaves, start = [], 0
    for a in prob.params:
        size = np.size(a)
        leaves.append(point[start : start + size].reshape(np.shape(a)))
        start += size
    return float(np.imag(mlp.loss(mlp.Params(*leaves), prob.x, prob.y, task=prob.task))) / h


def _relative(estimate: np.ndarray, g: float) -> np.ndarray:
    err = np.abs(estimate - g) / abs(g)
    return np.where(err > 0, err, np.nan)  # an exact 0 has no place on a log axis


def _truncation_slope(hs: np.ndarray, err: np.ndarray, rounding: np.ndarray) -> float:
    """Slope of log error against log h where truncation dominates; NaN with fewer than 3 points."""
    mask = (hs <= FIT_MAX_STEP) & np.isfinite(err) & (err > TRUNCATION_MARGIN * rounding)
    if mask.sum() < 3:
        return math.nan
    slope, _ = np.polyfit(np.log(hs[mask]), np.log(err[mask]), 1)
    return float(slope)


def taylor(prob: problems.Problem, seed: int = 0) -> TaylorCurves:
    """Taylor remainders along a seeded random direction, as `_taylor.rate` computes them.

    Examples:
        >>> t = taylor(seed_problem())
        >>> round(t.correct_slope), round(t.wrong_slope)
        (2, 1)
    """
    flat_loss, theta, _ = _flat(prob)
    correct = mlp.closed_form_gradients(*prob[:3], task=prob.task)
    g = np.concatenate([np.ravel(a) for a in correct])
    wrong = g * prob.x.shape[0]  # the batch sum where the mean belongs
    v = np.random.default_rng(seed).standard_normal(theta.shape)
    args = (prob.x, prob.y)
    losses = _taylor.jax_losses(flat_loss, args)
    right = _taylor.remainders(losses, theta, g, v)
    bad = _taylor.remainders(losses, theta, wrong, v)
    with jax.enable_x64(True):
        loss = float(flat_loss(jnp.asarray(theta), tuple(jnp.asarray(a) for a in args)))
    level = _taylor.ROUNDING_ULPS * float(np.finfo(np.float64).eps) * abs(loss)
    return TaylorCurves(right, bad, _taylor.slope(right), _taylor.slope(bad), level)


# --- drawing -------------------------------------------------------------------

_COLOURS = {"forward": "C0", "central": "C1", "Richardson": "C2", "complex step": "C3"}
_THEORY = {"forward": 1, "central": 2, "Richardson": 6, "complex step": 2}


def slope_text(slope: float) -> str:
    return "n/a" if math.isnan(slope) else f"{slope:.2f}"


def draw_vcurve(data: VCurve, path: Path, *, title: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 6), layout="constrained")
    ax = fig.add_subplot()
    for name, err in data.errors.items():
        style = "--" if name == "complex step" else "-"
        ax.loglog(
            data.steps,
            err,
            style,
            marker=".",
            markersize=4,
            color=_COLOURS[name],
            label=f"{name}: fitted slope {slope_text(data.slopes[name])} (theory {_THEORY[name]})",
        )
    ax.loglog(data.steps, data.bound, ":", color=_COLOURS["Richardson"], label="gradcheck's error bound on Richardson")
    ax.loglog(data.steps, data.rounding, ":", color="grey", label=r"rounding estimate $\varepsilon|L|/(h|g|)$")
    ax.axvline(data.chosen_step, color="black", linewidth=0.8)
    shown = data.chosen_error if data.chosen_error > 0 else np.nan
    ax.plot([data.chosen_step], [shown], "*", color="black", markersize=12, label="gradcheck's step")
    error_text = f"{data.chosen_error:.1e}" if data.chosen_error > 0 else "0"
    ax.annotate(
        f"gradcheck's step\n$h = 2^{{-7}} \\max(1, |\\theta_i|)$\nerror {error_text}\nbound {data.chosen_bound:.1e}",
        xy=(data.chosen_step, 0.02),
        xycoords=("data", "axes fraction"),
        xytext=(6, 0),
        textcoords="offset points",
        fontsize=8,
    )
    ax.text(0.98, 0.97, "truncation regime\nerror $\\propto h^p$", transform=ax.transAxes, ha="right", va="top")
    ax.text(0.02, 0.97, "rounding regime\nerror $\\propto \\varepsilon|L|/h$", transform=ax.transAxes, va="top")
    ax.set_xlabel("step h (for Richardson: the largest of h, h/2, h/4)")
    ax.set_ylabel("relative error |estimate − autodiff| / |autodiff|")
    _finish(fig, ax, title, path)


def draw_taylor(data: TaylorCurves, path: Path, *, title: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 6), layout="constrained")
    ax = fig.add_subplot()
    curves = (
        ("correct gradient", data.correct, data.correct_slope, "C2"),
        (WRONG_LABEL, data.wrong, data.wrong_slope, "C3"),
    )
    for label, r, slope, colour in curves:
        ax.loglog(r.steps, r.remainder, "-", color=colour, alpha=0.5)
        ax.loglog(
            r.steps[r.usable], r.remainder[r.usable], "o", color=colour, label=f"{label}: fitted slope {slope:.2f}"
        )
        if (~r.usable).any():
            ax.loglog(r.steps[~r.usable], r.remainder[~r.usable], "o", mfc="none", color=colour)
        if not math.isnan(slope):
            fit = np.polyfit(np.log(r.steps[r.usable]), np.log(r.remainder[r.usable]), 1)
            ax.loglog(r.steps, np.exp(np.polyval(fit, np.log(r.steps))), "--", color=colour, linewidth=0.8)
    ax.axhline(data.rounding_level, color="grey", linestyle=":", label="rounding level: hollow points are not fitted")
    ax.set_xlabel("step h (relative to max(1, |θ|∞))")
    ax.set_ylabel("Taylor remainder |L(θ + h d) − L(θ) − h g·d|")
    _finish(fig, ax, title, path)


def _finish(fig: Any, ax: Any, title: str, path: Path) -> None:
    """Title, grid and legend as every figure has them; then the file."""
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    fig.legend(fontsize=8, loc="outside lower center", ncols=2)
    fig.savefig(path, **_save_options(path))


def _save_options(path: Path) -> dict[str, Any]:
    # No software version or date in the file: the committed images change only when the pictures do.
    if path.suffix == ".svg":
        return {"metadata": {"Date": None, "Creator": None}}
    return {"dpi": 110, "metadata": {"Software": None}}
