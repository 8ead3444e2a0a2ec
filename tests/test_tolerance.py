"""The tolerance model: no false alarms in hard regimes, yet 1e-8 errors caught."""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, note
from hypothesis import strategies as st

from gradcheck import (
    _check,
    _inputs,
    _references,
    _tolerance,
    check_batch,
    check_gradients,
    heads,
    mlp,
    network,
    problems,
)
from gradcheck import strategies as gs
from tests.derivations import CORRECT, MUTANTS, params_for
from tests.test_mutants import loss_for

# Regimes where the gradient is resolved well above rounding, so a relative
# 1e-8 error in its largest entry is a real, detectable difference. In a
# perfect fit or a confident classifier the true gradient is itself at the
# level of rounding noise, and no checker can see 1e-8 of it.
RESOLVED = tuple(
    r for r in problems.REGIMES if r not in ("perfect_fit", "perfect_fit_scaled", "confident", "confident_sweep")
)


@pytest.mark.parametrize("regime", problems.REGIMES)
@given(data=st.data())
def test_correct_gradients_never_flagged(regime: str, data: st.DataObject) -> None:
    """Every correct reformulation passes, in every regime, for both tasks."""
    prob = data.draw(gs.problems(regime=regime), label="problem")
    note(prob.describe())
    loss = partial(mlp.loss, task=prob.task)
    for name, grad in CORRECT.items():
        report = check_gradients(loss, partial(grad, task=prob.task), params_for(name, prob.params), prob.x, prob.y)
        assert report.verdict == "pass", f"{name} flagged in regime {regime}:\n{report}"


def _largest_entry(grads: mlp.Params) -> tuple[int, tuple[int, ...]]:
    leaf = max(range(4), key=lambda k: float(np.abs(grads[k]).max()))
    return leaf, tuple(int(i) for i in np.unravel_index(np.argmax(np.abs(grads[leaf])), grads[leaf].shape))


@pytest.mark.parametrize("regime", RESOLVED)
@given(data=st.data())
def test_relative_error_of_1e8_in_largest_entry_is_caught(regime: str, data: st.DataObject) -> None:
    """Wherever the gradient is resolved to better than 1e-8, a 1e-8 error in it is flagged.

    "Resolved" is the measured tolerance of the correct gradient at that entry.
    Where it is coarser (the largest entry is itself a near-cancelling mean, as
    with balanced targets and tiny weights) no checker can see 1e-8. Hypothesis
    fails the test if that filter rejects most examples, and
    `test_typical_problems_are_resolved_to_1e8` shows it rarely does.
    """
    prob = data.draw(gs.problems(regime=regime), label="problem")
    note(prob.describe())
    loss = partial(mlp.loss, task=prob.task)
    grads = mlp.closed_form_gradients(prob.params, prob.x, prob.y, task=prob.task)
    leaf, index = _largest_entry(grads)
    with _references.unscreened():  # the tolerance measured, not the screen's floor
        correct = check_gradients(loss, partial(mlp.closed_form_gradients, task=prob.task), *prob[:3])
    assume(correct.params[leaf].tolerance < 1e-8 * abs(grads[leaf][index]))

    def nudged(p, x, y):  # type: ignore[no-untyped-def]
        g = [a.copy() for a in mlp.closed_form_gradients(p, x, y, task=prob.task)]
        g[leaf][index] *= 1 + 1e-8
        return mlp.Params(*g)

    report = check_gradients(loss, nudged, *prob[:3])
    assert report.verdict == "mismatch", str(report)
    assert report.params[leaf].status == "mismatch"
    assert report.params[leaf].index == index


def _tolerances(prob: problems.Problem) -> list[np.ndarray]:
    """The tolerance every entry of the correct gradient is owed, per parameter.

    Written out from the rule of docs/tolerances.md (NOISE_SAFETY x the measured
    noise + FLOOR_ULPS ulps of the gradient's scale), not read from the checker's
    own tolerance: a checker that loosened some entries' tolerances would
    otherwise only make them look unresolved, and this test would skip them.
    """
    _, leaves, treedef = _inputs.flatten_params(prob.params)
    cf = np.concatenate([np.ravel(g) for g in mlp.closed_form_gradients(*prob[:3], task=prob.task)])
    with jax.enable_x64(True):
        refs = _references.evaluation(
            partial(mlp.loss, task=prob.task), treedef, leaves, (prob.x, prob.y), EPS64 / 2, 0, cf
        ).references
    largest = max(float(np.abs(refs.autodiff).max()), float(refs.noise.max()))
    rounding = refs.noise[refs.noise <= np.sqrt(EPS64 / 2) * largest]  # a spread above sqrt(u): no rounding
    scale = max(largest, float(rounding.max(initial=0.0)) / (EPS64 / 2))  # the terms' magnitude
    tol = _tolerance.NOISE_SAFETY * refs.noise + _tolerance.FLOOR_ULPS * EPS64 * scale
    offsets = np.cumsum([0, *(leaf.size for leaf in leaves)])
    return [tol[a:b].reshape(leaf.shape) for leaf, a, b in zip(leaves, offsets[:-1], offsets[1:])]


EPS64 = float(np.finfo(np.float64).eps)


@pytest.mark.parametrize("regime", RESOLVED)
@given(data=st.data())
def test_relative_error_of_1e8_in_a_random_resolved_entry_is_caught(regime: str, data: st.DataObject) -> None:
    """Not only the largest entry: any entry resolved to better than 1e-8, drawn at random, is caught at 1e-8."""
    prob = data.draw(gs.problems(regime=regime), label="problem")
    note(prob.describe())
    grads = mlp.closed_form_gradients(*prob[:3], task=prob.task)
    tol = _tolerances(prob)
    resolved = [
        (k, tuple(int(i) for i in ix)) for k in range(4) for ix in np.argwhere(tol[k] < 1e-8 * np.abs(grads[k]))
    ]
    assume(resolved)
    leaf, index = data.draw(st.sampled_from(resolved), label="entry")

    def nudged(p, x, y):  # type: ignore[no-untyped-def]
        g = [a.copy() for a in mlp.closed_form_gradients(p, x, y, task=prob.task)]
        g[leaf][index] *= 1 + 1e-8
        return mlp.Params(*g)

    report = check_gradients(partial(mlp.loss, task=prob.task), nudged, *prob[:3])
    assert report.verdict == "mismatch", str(report)
    assert [p.status for p in report.params] == ["mismatch" if k == leaf else "pass" for k in range(4)]
    assert report.params[leaf].index == index


def _a_rounded_slope_passes_with_headroom(prob: problems.Problem, index: tuple[int, ...], autodiff: float) -> None:
    """A saturated unit's w1 entry that the closed form rounds to 0 where autodiff gives `autodiff`: it
    passes, screened or not and in the main job's batch, using at most half of its measured tolerance."""
    loss, grads = partial(mlp.loss, task="classification"), partial(mlp.closed_form_gradients, task="classification")
    assert check_gradients(loss, grads, *prob[:3]).ok
    with _references.unscreened():  # headroom in the tolerance measured
        report = check_gradients(loss, grads, *prob[:3])
    # The case itself: a slope that the closed form rounds to 0, where autodiff keeps it.
    assert grads(*prob[:3]).w1[index] == 0.0
    assert _references.autodiff(loss, *prob[:3]).w1[index] == pytest.approx(autodiff, rel=1e-4)
    assert report.verdict == "pass", str(report)
    assert all(p.tolerance_used <= 0.5 for p in report.params), str(report)
    params = mlp.Params(*(np.asarray(leaf)[None] for leaf in prob.params))
    assert check_batch(loss, grads, params, prob.x[None], prob.y[None]).verdicts == ("pass",)  # the main job's path


@pytest.mark.parametrize("task", mlp.TASKS)
def test_typical_problems_are_resolved_to_1e8(task: mlp.Task) -> None:
    """On the CLI's typical problems, the largest gradient entry is resolved far below 1e-8."""
    resolution = []
    for seed in range(40):
        prob = problems.sample(np.random.default_rng(seed), task=task, regime="typical")
        grads = mlp.closed_form_gradients(*prob[:3], task=task)
        leaf, index = _largest_entry(grads)
        with _references.unscreened():  # the tolerance measured, not the screen's floor
            report = check_gradients(
                partial(mlp.loss, task=task), partial(mlp.closed_form_gradients, task=task), *prob[:3]
            )
        resolution.append(report.params[leaf].tolerance / abs(grads[leaf][index]))
    assert np.median(resolution) < 1e-11  # 1.4e-12 for classification with the floor over the terms
    assert np.mean(np.array(resolution) < 1e-8) >= 0.95


@given(gs.problems(regime="any"))
def test_float32_closed_form_is_judged_at_float32(prob: problems.Problem) -> None:
    loss = partial(mlp.loss, task=prob.task)
    params32 = params_for("float32", prob.params)
    report = check_gradients(loss, partial(CORRECT["float32"], task=prob.task), params32, prob.x, prob.y)
    assert report.ok, str(report)
    assert report.precision == "float32"
    assert "judged at float32 precision" in str(report)


@given(gs.problems(regime="typical"))
def test_float32_closed_form_with_a_real_mistake_is_caught(prob: problems.Problem) -> None:
    def wrong32(p, x, y):  # type: ignore[no-untyped-def]
        return mlp.Params(*(np.float32(2.0) * g for g in CORRECT["float32"](p, x, y, task=prob.task)))

    params32 = params_for("float32", prob.params)
    report = check_gradients(partial(mlp.loss, task=prob.task), wrong32, params32, prob.x, prob.y)
    largest = max(
        float(np.abs(g).max()) for g in mlp.closed_form_gradients(prob.params, prob.x, prob.y, task=prob.task)
    )
    if largest > 1e-3:  # a factor of 2 on a gradient below float32 resolution is not a visible mistake
        assert report.verdict == "mismatch", str(report)


def test_no_fixed_tolerance_pair_serves_both_regimes() -> None:
    """Why the tolerance is measured: one (atol, rtol) pair cannot pass a perfect fit and catch 1e-8.

    Catching a relative 1e-8 error at a gradient entry g needs
    atol + rtol |g| < 1e-8 |g|, so atol < 1e-8 |g|. Passing a correct perfect
    fit needs atol + rtol |ad| >= |cf - ad| there. A regression problem at a
    small scale (targets and output layer times 1e-5, a well-conditioned
    gradient of about 1e-5) and a perfect fit with output weights of 1e3
    (large rounding) cannot both be served; gradcheck measures the noise at each
    point and serves both.
    """
    rng = np.random.default_rng(7)
    small = problems.sample(rng, task="regression", regime="typical")
    small = small._replace(
        y=small.y * 1e-5, params=small.params._replace(w2=small.params.w2 * 1e-5, b2=small.params.b2 * 1e-5)
    )
    fit = problems.sample(rng, task="regression", regime="perfect_fit_scaled")
    loss = partial(mlp.loss, task="regression")
    grads = partial(CORRECT["per_sample_loop"], task="regression")
    fit_report = check_gradients(loss, grads, *fit[:3])
    assert fit_report.ok
    worst = max(fit_report.params, key=lambda p: p.max_abs_err_autodiff)
    atol_needed_by_fit = worst.max_abs_err_autodiff - 1e-8 * abs(worst.autodiff)

    g = mlp.closed_form_gradients(*small[:3], task="regression")
    leaf, index = _largest_entry(g)
    atol_allowed_by_small = 1e-8 * abs(g[leaf][index])
    assert atol_needed_by_fit > atol_allowed_by_small, (atol_needed_by_fit, atol_allowed_by_small)

    def nudged(p, x, y):  # type: ignore[no-untyped-def]
        out = [a.copy() for a in grads(p, x, y)]
        out[leaf][index] *= 1 + 1e-8
        return mlp.Params(*out)

    assert check_gradients(loss, grads, *small[:3]).ok
    assert check_gradients(loss, nudged, *small[:3]).verdict == "mismatch"


@pytest.mark.parametrize("name", ["factor_two", "relative_1e-6", "residual_sign"])
def test_tolerance_reports_why_it_failed(name: str) -> None:
    prob = problems.sample(np.random.default_rng(1), task="classification")
    report = check_gradients(
        partial(mlp.loss, task="classification"), partial(MUTANTS[name].grad, task="classification"), *prob[:3]
    )
    worst = max(report.params, key=lambda p: p.tolerance_used)
    assert worst.tolerance_used > 1.0
    assert worst.abs_error > worst.tolerance


# --- confident and right: the closed form's a - y cancels -------------------------


def textbook(p: mlp.Params, x: np.ndarray, y: np.ndarray, *, task: mlp.Task) -> mlp.Params:
    """The textbook closed form: a2 = sigma(z2) first, then the output error a2 - y."""
    act = mlp.forward(mlp.Params(*map(np.asarray, p)), x, task=task)
    a2 = mlp.sigmoid(act.z2) if task == "classification" else act.z2
    return mlp.backward(p, x, act.a1, a2 - y)


@given(gs.problems(regime="confident_sweep"))
def test_confident_sweep_textbook_closed_form_never_flagged(prob: problems.Problem) -> None:
    """|z2| from 4 to 40 with every label right: a2 - y loses most of its digits, and that is not a mistake.

    The tolerance covers the rounding of the terms an addition is made of
    (`_noise`), so the closed form's own cancellation is allowed for, with room
    to spare (at most half the tolerance used).
    """
    note(prob.describe() + f" |z2| ~ {abs(prob.params.b2[0]):.1f}")
    assert check_gradients(partial(mlp.loss, task=prob.task), partial(textbook, task=prob.task), *prob[:3]).ok
    with _references.unscreened():  # headroom in the tolerance measured
        report = check_gradients(partial(mlp.loss, task=prob.task), partial(textbook, task=prob.task), *prob[:3])
    assert report.ok, str(report)
    assert max(p.tolerance_used for p in report.params) <= 0.5, str(report)


@st.composite
def confident_heads(draw: st.DrawFn) -> tuple[network.Network, dict[str, np.ndarray], np.ndarray, np.ndarray, float]:
    """A confident, right network for a canonical head: output logits about t in [4, 40], targets that agree."""
    head = draw(st.sampled_from(["sigmoid", "softmax", "poisson"]), label="head")
    k = 3 if head == "softmax" else 1
    net = network.Network((2, draw(st.integers(1, 4), label="hidden"), k), activation="tanh", head=head)
    n = draw(st.integers(1, 21), label="batch")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    t = draw(st.floats(*problems.CONFIDENT_SWEEP), label="t")
    rng = np.random.default_rng(seed)
    p = {name: rng.normal(0.0, 1.0, shape) for name, shape in net.shapes.items()}
    x = rng.normal(size=(n, 2))
    p["w2"] /= max(1.0, float(np.abs(network.forward(p, x, net=net)[-2].a @ p["w2"].T).max()))
    if head == "softmax":
        winner = int(rng.integers(k))
        p["b2"] = np.where(np.arange(k) == winner, t, 0.0)
        y = np.tile(np.eye(k)[winner], (n, 1))
    elif head == "sigmoid":
        p["b2"] = np.array([t if rng.random() < 0.5 else -t])
        y = (network.forward(p, x, net=net)[-1].z > 0).astype(np.float64)
    else:  # Poisson counts equal to their rate exp(t): a - y cancels as completely
        p["b2"] = np.array([t])
        y = np.asarray(network.forward(p, x, net=net)[-1].a, dtype=np.float64)
    return net, p, x, y, t


@given(confident_heads())
def test_confident_heads_textbook_closed_form_never_flagged(case: tuple) -> None:  # type: ignore[type-arg]
    """Sigmoid, softmax and Poisson heads share a - y; a textbook closed form passes all of them."""
    net, p, x, y, t = case
    note(f"{net.describe()} batch={len(x)} t={t:.1f}")

    def closed(p: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        layers = network.forward(p, x, net=net)
        a = heads.HEADS[net.head].activation(layers[-1].z)  # the head's output, rounded
        return network.backward(p, x, layers, a - y, net=net)

    assert check_gradients(partial(network.loss, net=net), closed, p, x, y).ok
    with _references.unscreened():  # headroom in the tolerance measured
        report = check_gradients(partial(network.loss, net=net), closed, p, x, y)
    assert report.ok, str(report)
    assert max(r.tolerance_used for r in report.params) <= 0.5, str(report)


def test_confident_sweep_still_catches_mistakes_it_can_resolve() -> None:
    """The sensitivity left where the cancellation is real.

    The output error a2 - y is about exp(-|z2|), and any evaluation that forms
    a2 first rounds it to an absolute u, a relative u exp(|z2|): that is the
    resolution of the closed form itself. A relative error 1e3 times above it
    (eps exp(|z2| + 1) with the +-1 spread of the logits) is caught, down to 1e-8.
    """
    caught = 0
    for i in range(40):
        prob = problems.sample(np.random.default_rng([5, i]), task="classification", regime="confident_sweep")
        t = abs(float(prob.params.b2[0]))
        rel = max(1e-8, 1e3 * np.finfo(float).eps * np.exp(t + 1.0))
        if rel > 1e-2:  # |z2| above about 22: a2 - y is rounding alone, for every closed form that forms a2
            continue
        grads = textbook(*prob[:3], task="classification")
        leaf, index = _largest_entry(grads)

        def nudged(p, x, y, leaf=leaf, index=index, rel=rel):  # type: ignore[no-untyped-def]
            g = [a.copy() for a in textbook(p, x, y, task="classification")]
            g[leaf][index] *= 1 + rel
            return mlp.Params(*g)

        report = check_gradients(partial(mlp.loss, task="classification"), nudged, *prob[:3])
        assert report.params[leaf].status == "mismatch", f"|z2| ~ {t:.1f}, relative error {rel:.1e}\n{report}"
        caught += 1
    assert caught >= 10


def test_a_saturated_unit_under_cancelling_output_errors_passes_with_headroom() -> None:
    """Problem 191713 of ``gradcheck --examples 200000 --task classification`` (seed 0), the second false
    alarm ever found (docs/tolerances.md, "The floor").

    A saturated unit's closed-form w1 entry rounds to 0 where autodiff gives -2.8e-19, and the output
    errors, of both signs, sum to 3.3e-5 from terms of 3.75 in all: 300 ulps of the largest gradient
    entry, which the floor measured until then. Measured against the terms' magnitude, it uses 1e-6.
    """
    from gradcheck.cli._main_job import problem_for

    prob = problem_for(191713, seed=0, task="classification", inputs=2, hidden=3, batch=8)
    assert prob.regime == "saturated"
    # The screen's floor (the largest entry) fails it; with the noise measured, it passes.
    _a_rounded_slope_passes_with_headroom(prob, (0, 0), -2.7857e-19)
    # The floor measured against the largest entry alone (the rule until this problem) flags it.
    loss, grads = partial(mlp.loss, task="classification"), partial(mlp.closed_form_gradients, task="classification")
    _, leaves, treedef = _inputs.flatten_params(prob.params)
    cf = np.concatenate([np.ravel(g) for g in grads(*prob[:3])])
    with jax.enable_x64(True):
        refs = _references.evaluation(loss, treedef, leaves, (prob.x, prob.y), EPS64 / 2, 0, cf).references
    largest_entry = max(float(np.abs(refs.autodiff).max()), float(refs.noise.max()))
    old = _tolerance.NOISE_SAFETY * refs.noise + _tolerance.FLOOR_ULPS * EPS64 * largest_entry
    assert np.abs(cf - refs.autodiff)[0] > old[0]


# --- the screen (`_references.SCREEN`): no Monte Carlo runs until a check needs them ----------


@given(
    prob=gs.problems(regime="any"),
    grad=st.sampled_from(["correct", *sorted(MUTANTS)]),
    log_rel=st.one_of(st.none(), st.floats(-16.0, -6.0)),
)
def test_the_screen_changes_no_verdict(prob: problems.Problem, grad: str, log_rel: float | None) -> None:
    """Correct, mutated or nudged closed forms in every regime: the screen's verdict is the full check's,
    and a check the screen does not settle is reported exactly as without it."""
    if grad == "correct":
        loss, closed = partial(mlp.loss, task=prob.task), partial(mlp.closed_form_gradients, task=prob.task)
    else:
        loss, closed = loss_for(MUTANTS[grad], prob.task), partial(MUTANTS[grad].grad, task=prob.task)
    if log_rel is not None:
        rel = 10**log_rel

        def nudged(p: mlp.Params, x: np.ndarray, y: np.ndarray) -> mlp.Params:
            g = [np.array(a, dtype=np.float64) for a in mlp.closed_form_gradients(p, x, y, task=prob.task)]
            leaf, index = _largest_entry(mlp.Params(*g))
            g[leaf][index] *= 1 + rel
            return mlp.Params(*g)

        closed = nudged
    with _references.forced("numpy"):  # one path for both: the paths' noise draws differ
        screened = check_gradients(loss, closed, *prob[:3])
        with _references.unscreened():
            measured = check_gradients(loss, closed, *prob[:3])
    assert [(p.name, p.status) for p in screened.params] == [(p.name, p.status) for p in measured.params]
    if _check.SCREENED_NOTE in screened.notes:
        assert screened.verdict == "pass"
        assert not any(p.not_judged for p in screened.params)
        # The screen's tolerance is the floor, which the measured noise only widens.
        assert all(p.tolerance <= m.tolerance for p, m in zip(screened.params, measured.params) if p.index == m.index)
    else:
        assert str(screened) == str(measured)


# --- Monte Carlo runs that are not finite ----------------------------------------------------


def _sqrt_at_the_edge(p: dict[str, Any], x: Any) -> Any:
    """sqrt of 2^-52 (exact in float64): a perturbation of one ulp pushes its argument below zero."""
    return jnp.sum(p["w"] ** 2) * jnp.sqrt(x[0] * x[1] - x[2])


def _only_at_the_point(p: dict[str, Any], x: Any) -> Any:
    """Finite only where x0 + x1 rounds to 0.1 + 0.2: every Monte Carlo run of the NumPy references (which
    perturbs that sum) is NaN, the point itself and its finite differences (which move only `w`) are not."""
    return jnp.sum(p["w"] ** 2) * jnp.where(x[0] + x[1] == 0.1 + 0.2, 1.0, jnp.nan)


@pytest.mark.parametrize("path", ["numpy", "xla"])
@pytest.mark.parametrize("size", [3, 600])  # coordinate-wise, and directional finite differences
def test_monte_carlo_runs_that_are_not_finite_are_left_out(path: str, size: int) -> None:
    """Some runs NaN: the others measure the noise, and a correct closed form passes, screen or not."""
    p = {"w": np.linspace(-1.2, 0.7, size)}
    x = np.array([1.0, 1.0, 1.0 - 2.0**-52])

    def grad(p: dict[str, Any], x: Any) -> dict[str, np.ndarray]:
        return {"w": 2 * p["w"] * np.sqrt(x[0] * x[1] - x[2])}

    with _references.forced(path):  # type: ignore[arg-type]
        assert check_gradients(_sqrt_at_the_edge, grad, p, x).verdict == "pass"
        with _references.unscreened():
            assert check_gradients(_sqrt_at_the_edge, grad, p, x).verdict == "pass"


def test_noise_that_cannot_be_measured_allows_the_floor_and_blames_nothing() -> None:
    """Every run NaN: within the tolerance's floor passes; beyond it is a doubt that says why, not a mismatch."""
    p, x = {"w": np.array([0.3, -1.2, 0.7])}, np.array([0.1, 0.2])
    right = {"w": 2 * p["w"]}
    off = {"w": right["w"] * np.array([1.0, 1.0 + 1e-10, 1.0])}
    with _references.forced("numpy"), _references.unscreened():
        assert check_gradients(_only_at_the_point, lambda p, x: right, p, x).verdict == "pass"
        report = check_gradients(_only_at_the_point, lambda p, x: off, p, x)
    assert report.verdict == "inconclusive", str(report)
    assert "could not be measured at index (1,)" in str(report["w"].message)
    with _references.forced("numpy"):
        assert str(check_gradients(_only_at_the_point, lambda p, x: off, p, x)) == str(report)  # the screen: the same
