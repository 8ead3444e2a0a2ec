"""The two paths to the references: NumPy (no compile) and XLA give the same verdicts and reports."""

from __future__ import annotations

import contextlib
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradcheck import _references, _tolerance, check_gradients, mlp, network, problems
from gradcheck._report import Report
from tests.derivations import CORRECT, MUTANTS, params_for
from tests.test_mutants import loss_for


def both(loss: Any, grad: Any, *problem: Any) -> tuple[Report, Report]:
    """The reports by each path, with the noise measured; with the screen, the same verdicts and statuses."""
    reports = {}
    for screen in (True, False):
        with contextlib.ExitStack() as stack:
            if not screen:
                stack.enter_context(_references.unscreened())
            with _references.forced("numpy"):
                cold = check_gradients(loss, grad, *problem)
            with _references.forced("xla"):
                compiled = check_gradients(loss, grad, *problem)
        reports[screen] = cold, compiled
    statuses = [[(p.name, p.status) for p in r.params] for r in (*reports[True], *reports[False])]
    assert all(s == statuses[0] for s in statuses), "\n---\n".join(map(str, (*reports[True], *reports[False])))
    return reports[False]


def assert_same_report(cold: Report, compiled: Report) -> None:
    """Same verdict, statuses, elements, messages and diagnoses; values within the tolerance model's noise."""
    assert cold.references == "numpy"
    assert compiled.references == "xla"
    assert cold.verdict == compiled.verdict, f"{cold}\n---\n{compiled}"
    for a, b in zip(cold.params, compiled.params):
        assert (a.name, a.status, a.diagnosis) == (b.name, b.status, b.diagnosis), f"{cold}\n---\n{compiled}"
        if a.status == "error":
            assert a.message == b.message
            continue
        # Both autodiff values agree within the tolerance, both finite differences within their bounds.
        tol = max(a.tolerance, b.tolerance)
        if a.index == b.index:
            assert abs(a.autodiff - b.autodiff) <= tol
            if np.isfinite(a.finite_diff) and np.isfinite(b.finite_diff):
                allowed = _tolerance.fd_allowance(a.fd_error + b.fd_error, tol)
                assert abs(a.finite_diff - b.finite_diff) <= allowed
            # The tolerance is measured noise (the largest of 8 Monte Carlo samples, drawn
            # from other streams on each path): the two agree within a small factor.
            assert b.tolerance / 4 <= a.tolerance <= 4 * b.tolerance


@pytest.mark.parametrize("regime", problems.REGIMES)
@pytest.mark.parametrize("task", mlp.TASKS)
def test_every_regime_gets_the_same_report_on_both_paths(task: mlp.Task, regime: problems.Regime) -> None:
    for i in range(2):
        prob = problems.sample(np.random.default_rng([7, i]), task=task, regime=regime, batch=5)
        loss, grad = partial(mlp.loss, task=task), partial(mlp.closed_form_gradients, task=task)
        assert_same_report(*both(loss, grad, *prob[:3]))


@pytest.mark.parametrize("name", list(MUTANTS))
def test_every_mutant_gets_the_same_report_on_both_paths(name: str) -> None:
    mutant = MUTANTS[name]
    k = 3 if mutant.square else None
    for task in mlp.TASKS:
        prob = problems.sample(np.random.default_rng([3, 1]), task=task, inputs=k or 2, hidden=k or 3, batch=5)
        cold, compiled = both(loss_for(mutant, task), partial(mutant.grad, task=task), *prob[:3])
        assert cold.verdict == "mismatch"
        assert_same_report(cold, compiled)
        assert cold.taylor_rate == pytest.approx(compiled.taylor_rate, abs=0.05, nan_ok=True)


@pytest.mark.parametrize("name", list(CORRECT))
def test_every_correct_reformulation_passes_on_both_paths(name: str) -> None:
    for task in mlp.TASKS:
        prob = problems.sample(np.random.default_rng([4, 2]), task=task, batch=5)
        params = params_for(name, prob.params)
        cold, compiled = both(partial(mlp.loss, task=task), partial(CORRECT[name], task=task), params, *prob[1:3])
        assert cold.verdict == "pass"
        assert_same_report(cold, compiled)


@pytest.mark.parametrize("head", ["identity", "sigmoid", "softmax", "poisson"])
def test_general_networks_get_the_same_report_on_both_paths(head: str) -> None:
    net = network.Network((3, 4, 3 if head == "softmax" else 2), activation="tanh", head=head)
    for regime in ("typical", "saturated", "perfect_fit"):
        prob = problems.sample_net(np.random.default_rng(5), net, regime=regime, batch=4)
        loss, grad = partial(network.loss, net=net), partial(network.closed_form_gradients, net=net)
        assert_same_report(*both(loss, grad, prob.params, prob.x, prob.y))


def test_the_numpy_references_match_the_compiled_ones_elementwise() -> None:
    prob = problems.sample(np.random.default_rng(11), task="classification", hidden=4, batch=6)
    loss = partial(mlp.loss, task="classification")
    leaves = [np.asarray(a, np.float64) for a in prob.params]
    treedef = jax.tree_util.tree_structure(prob.params)
    cf = np.concatenate([a.ravel() for a in mlp.closed_form_gradients(*prob[:3], task="classification")])
    u = float(np.finfo(np.float64).eps) / 2
    with jax.enable_x64(True), _references.forced("numpy"):
        cold = _references.evaluation(loss, treedef, leaves, (prob.x, prob.y), u, 0, cf).references
    with jax.enable_x64(True), _references.forced("xla"):
        compiled = _references.evaluation(loss, treedef, leaves, (prob.x, prob.y), u, 0, cf).references
    tol = _tolerance.tolerance(np.maximum(cold.noise, compiled.noise), np.abs(compiled.autodiff).max(), 2 * u)
    np.testing.assert_array_less(np.abs(cold.autodiff - compiled.autodiff), tol)
    np.testing.assert_array_less(
        np.abs(cold.finite_diff - compiled.finite_diff), _tolerance.fd_allowance(cold.fd_error + compiled.fd_error, 0.0)
    )
    assert not cold.kink.any()
    assert not compiled.kink.any()
    # The measured noise: same order of magnitude wherever either is resolved.
    resolved = np.maximum(cold.noise, compiled.noise) > 0
    ratio = cold.noise[resolved] / np.maximum(compiled.noise[resolved], 1e-300)
    assert np.all((ratio > 0.05) & (ratio < 20)), ratio


def test_a_new_shape_takes_the_numpy_path_and_a_frequent_one_compiles() -> None:
    loss = partial(mlp.loss, task="regression")
    grad = partial(mlp.closed_form_gradients, task="regression")
    # 65 problems of one shape (a problem checked again reuses its references: one check at the shape).
    probs = [problems.sample(np.random.default_rng([0, k]), task="regression", hidden=7, batch=13) for k in range(65)]
    paths = [check_gradients(loss, grad, *prob[:3]).references for prob in probs]
    assert paths[:64] == ["numpy"] * 64  # the number docs/references.md states, written out
    assert paths[-1] == "xla"


def test_a_primitive_without_a_numpy_rule_falls_back_to_the_compiled_path() -> None:
    def sorted_loss(w: jax.Array, x: jax.Array) -> jax.Array:
        return jnp.sum(jnp.sort(w * x) ** 2)  # `sort` has no NumPy rule

    def sorted_grad(w: np.ndarray, x: np.ndarray) -> np.ndarray:
        return 2 * (w * x) * x

    w, x = np.array([0.3, -1.2, 2.0]), np.array([1.5, 0.5, -0.25])
    report = check_gradients(sorted_loss, sorted_grad, w, x)
    assert report.ok, str(report)
    assert report.references == "xla"
    wrong = check_gradients(sorted_loss, lambda w, x: 2 * sorted_grad(w, x), w, x)
    assert wrong.verdict == "mismatch"


def test_a_loss_that_needs_concrete_sizes_still_runs_without_a_compile() -> None:
    def sized_loss(w: jax.Array, x: jax.Array) -> jax.Array:
        n = x.shape[0]
        scale = 1.0 / n if n > 3 else 1.0  # Python on a size: not traceable with a symbolic size
        return scale * jnp.sum(jnp.tanh(x @ w))

    def sized_grad(w: np.ndarray, x: np.ndarray) -> np.ndarray:
        scale = 1.0 / len(x) if len(x) > 3 else 1.0
        return scale * x.T @ (1 - np.tanh(x @ w) ** 2)

    for n in (2, 5):
        x = np.random.default_rng(n).normal(size=(n, 3))
        report = check_gradients(sized_loss, sized_grad, np.array([0.1, -0.4, 0.7]), x)
        assert report.ok, str(report)
        assert report.references == "numpy"


def test_a_loss_that_reads_a_global_is_never_judged_by_a_stale_trace() -> None:
    state = {"scale": 1.0}

    def loss(w: jax.Array) -> jax.Array:
        return state["scale"] * jnp.sum(w**2)

    w = np.array([0.5, -2.0])
    assert check_gradients(loss, lambda w: 2 * w, w).ok
    state["scale"] = 3.0
    assert check_gradients(loss, lambda w: 6 * w, w).ok
    assert check_gradients(loss, lambda w: 2 * w, w).verdict == "mismatch"


def test_the_environment_variable_fixes_the_path(monkeypatch: pytest.MonkeyPatch) -> None:
    loss, grad = partial(mlp.loss, task="regression"), partial(mlp.closed_form_gradients, task="regression")
    prob = problems.sample(np.random.default_rng(1), task="regression", batch=3)
    monkeypatch.setenv(_references.ENVIRONMENT, "xla")
    assert check_gradients(loss, grad, *prob[:3]).references == "xla"
    monkeypatch.setenv(_references.ENVIRONMENT, "numpy")
    assert check_gradients(loss, grad, *prob[:3]).references == "numpy"
    monkeypatch.setenv(_references.ENVIRONMENT, "fast")
    with pytest.raises(ValueError, match=r"`GRADCHECK_REFERENCES` must be numpy, xla or auto, got 'fast'"):
        check_gradients(loss, grad, *prob[:3])


def test_the_cold_path_leaves_the_users_jax_configuration_alone() -> None:
    before = jax.config.jax_enable_x64
    prob = problems.sample(np.random.default_rng(2), task="classification", hidden=5, batch=9)
    with _references.forced("numpy"):
        check_gradients(
            partial(mlp.loss, task="classification"),
            partial(mlp.closed_form_gradients, task="classification"),
            *prob[:3],
        )
    assert jax.config.jax_enable_x64 == before


def test_a_loss_closing_over_data_it_ran_on_without_x64_is_warned_about() -> None:
    """JAX keeps a float32 copy of a NumPy array a function closed over when it ran without x64.

    Checked later in float64, such a loss is not float64 throughout: the check says so, and how to avoid it.
    """
    from gradcheck._references._trace import NarrowConstants

    x = np.random.default_rng(1).normal(size=(5, 2))

    def loss(w: jax.Array) -> jax.Array:
        return jnp.sum(jnp.tanh(x @ w))

    w = np.array([0.3, -0.2])
    jax.jit(loss)(w)  # the user's own earlier run, in JAX's default float32
    with jax.enable_x64(True):
        consts = jax.make_jaxpr(loss)(w).consts
    if all(np.asarray(c).dtype == np.float64 for c in consts):
        pytest.skip("this JAX keeps no float32 copy of closed-over arrays")
    with pytest.warns(NarrowConstants, match="holds float32 constants"):
        check_gradients(loss, lambda w: x.T @ (1 - np.tanh(x @ w) ** 2), w)
    # Passed as an argument, the same data is float64 and the same closed form passes.
    assert check_gradients(lambda w, x: jnp.sum(jnp.tanh(x @ w)), lambda w, x: x.T @ (1 - np.tanh(x @ w) ** 2), w, x).ok


def _squared_with_rule(slope: float) -> Any:
    """x^2 with a custom JVP of the given slope (right for slope 2): the rule is not in the jaxpr's text."""

    @jax.custom_jvp
    def f(x: Any) -> Any:
        return x**2

    f.defjvp(lambda p, t: (f(p[0]), slope * p[0] * t[0]))
    return f


@pytest.mark.parametrize("order", [(2.0, 3.0), (3.0, 2.0)])
def test_two_losses_that_differ_only_in_their_custom_rule_do_not_share_a_gradient(order: tuple[float, float]) -> None:
    """The cache key covers the rule: each loss is judged by its own autodiff, in either order, on both paths."""
    w = {"w": np.array([0.5, -1.5, 2.0])}
    for path in ("numpy", "xla"):
        with _references.forced(path):  # type: ignore[arg-type]
            for slope in order:
                f = _squared_with_rule(slope)
                report = check_gradients(lambda p, f=f: f(p["w"]).sum(), lambda p, s=slope: {"w": s * p["w"]}, w)
                # autodiff follows the rule: slope x; the finite differences follow the primal: 2 x
                assert report["w"].autodiff == pytest.approx(slope * w["w"][report["w"].index])
                assert report.verdict == ("pass" if slope == 2.0 else "inconclusive"), (path, slope, str(report))


@pytest.mark.parametrize("name", [n for n, m in MUTANTS.items() if not m.square])
def test_the_same_check_shows_the_same_elements_on_either_path(name: str) -> None:
    """The row's element is chosen by what both paths compute alike, never by the measured noise (whose Monte
    Carlo runs differ): the same index and values to 10 digits, the same statuses, whatever ran before."""
    mutant = MUTANTS[name]
    for seed in range(4):
        prob = problems.sample(np.random.default_rng([seed, 3]), task="classification", batch=5)
        loss, grad = partial(mlp.loss, task="classification"), partial(mutant.grad, task="classification")
        with _references.forced("numpy"):
            cold = check_gradients(loss, grad, *prob[:3])
        with _references.forced("xla"):
            compiled = check_gradients(loss, grad, *prob[:3])
        for a, b in zip(cold.params, compiled.params):
            assert (a.name, a.status, a.index) == (b.name, b.status, b.index), (seed, str(cold), str(compiled))
            if a.index is not None:
                assert a.closed_form == b.closed_form
                assert a.autodiff == pytest.approx(b.autodiff, rel=1e-10, abs=1e-300)
