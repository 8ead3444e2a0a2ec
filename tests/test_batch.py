"""`check_batch`: the same verdicts as `check_gradients`, problem by problem.

- Every regime, both tasks, the correct closed forms: every problem passes,
  as it does one at a time.
- Every mutant of the mutation suite: the batch gives each problem the
  verdict that `check_gradients` gives it, with its full report.
- The problem axis is validated, a non-batch-aware `grad_fn` is looped, and
  problems are sharded over several devices.
"""

from __future__ import annotations

import contextlib
from functools import partial
from typing import Any

import jax
import numpy as np
import pytest

from gradcheck import _references, check_batch, check_gradients, mlp, problems
from tests.derivations import CORRECT, MUTANTS, params_for
from tests.test_mutants import loss_for


def stack(probs: list[problems.Problem]) -> tuple[Any, np.ndarray, np.ndarray]:
    params = mlp.Params(*(np.stack([p.params[k] for p in probs]) for k in range(4)))
    return params, np.stack([p.x for p in probs]), np.stack([p.y for p in probs])


def draw(task: mlp.Task, regime: problems.Regime, n: int, *, seed: int = 0) -> list[problems.Problem]:
    return [problems.sample(np.random.default_rng([seed, i]), task=task, regime=regime) for i in range(n)]


def careful_verdicts(loss: Any, grad: Any, probs: list[problems.Problem]) -> list[str]:
    return [check_gradients(loss, grad, *p[:3]).verdict for p in probs]


@pytest.mark.parametrize("regime", problems.REGIMES)
@pytest.mark.parametrize("task", mlp.TASKS)
def test_correct_closed_form_passes_in_every_regime_as_one_by_one(task: mlp.Task, regime: problems.Regime) -> None:
    probs = draw(task, regime, 6)
    loss, grad = partial(mlp.loss, task=task), partial(mlp.closed_form_gradients, task=task)
    report = check_batch(loss, grad, *stack(probs))
    assert report.verdicts == ("pass",) * 6
    assert report.ok
    assert report.verdicts == tuple(careful_verdicts(loss, grad, probs))
    assert set(report.worst) == {"w1", "b1", "w2", "b2"}


@pytest.mark.parametrize("name", [n for n in CORRECT if n != "closed_form"])
def test_correct_reformulations_looped_per_problem_pass(name: str) -> None:
    probs = draw("classification", "typical", 4, seed=1)
    grad = partial(CORRECT[name], task="classification")
    params, x, y = stack(probs)
    report = check_batch(partial(mlp.loss, task="classification"), grad, params_for(name, params), x, y, batched=False)
    assert report.verdicts == ("pass",) * 4


@pytest.mark.parametrize("name", list(MUTANTS))
def test_every_mutant_gets_the_verdict_and_report_of_the_careful_path(name: str) -> None:
    mutant = MUTANTS[name]
    k = 3 if mutant.square else None
    for task in mlp.TASKS:
        probs = [
            problems.sample(np.random.default_rng([2, i]), task=task, inputs=k or 2, hidden=k or 3, batch=5)
            for i in range(4)
        ]
        loss, grad = loss_for(mutant, task), partial(mutant.grad, task=task)
        # One path for both (the NumPy and compiled paths agree within noise, not to the bit).
        with _references.forced("numpy"):
            report = check_batch(loss, grad, *stack(probs), batched=False)
            careful = [check_gradients(loss, grad, *p[:3]) for p in probs]
        assert list(report.verdicts) == [r.verdict for r in careful]
        assert "mismatch" in report.verdicts, "the mutant is caught in the batch"
        for b, r in report.failures.items():
            assert str(r) == str(careful[b])  # the same full report, diagnosis and all


def test_a_batch_aware_wrong_gradient_is_caught_in_the_problems_it_breaks() -> None:
    probs = draw("regression", "typical", 5)

    marker = probs[3].x[0, 0]

    def wrong_in_problem_3(p: Any, x: Any, y: Any) -> mlp.Params:
        # A relative error of 1e-8 in one entry, in the problem whose first input is `marker`
        # (so that it is wrong the same way in the batch and one problem at a time).
        g = mlp.closed_form_gradients(p, x, y, task="regression")
        w2 = g.w2.copy()
        w2[..., 0, 1] *= np.where(x[..., 0, 0] == marker, 1 + 1e-8, 1.0)
        return g._replace(w2=w2)

    report = check_batch(partial(mlp.loss, task="regression"), wrong_in_problem_3, *stack(probs))
    assert report.verdicts == ("pass", "pass", "pass", "mismatch", "pass")
    assert list(report.failures) == [3]
    assert report.failures[3]["w2"].status == "mismatch"
    assert report.failures[3]["w2"].index == (0, 1)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((np.zeros((3, 4, 2)), np.zeros((2, 4))), {}, r"`args\[1\]` has shape \(2, 4\), but every argument needs"),
        ((np.zeros((3, 4, 2)), np.zeros((3, 4))), {"seed": -1}, r"`seed` must be an integer in \[0, 2\*\*32\)"),
    ],
    ids=["args-axis", "seed"],
)
def test_bad_batches_raise_naming_the_argument(args: Any, kwargs: Any, message: str) -> None:
    params = mlp.Params(*(np.zeros((3, *s)) for s in [(3, 2), (3,), (1, 3), (1,)]))
    with pytest.raises(ValueError, match=message):
        check_batch(partial(mlp.loss, task="regression"), mlp.closed_form_gradients, params, *args, **kwargs)


def test_params_without_a_common_problem_axis_are_refused() -> None:
    params = mlp.Params(np.zeros((3, 3, 2)), np.zeros((3, 3)), np.zeros((2, 1, 3)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="same leading problem axis"):
        check_batch(partial(mlp.loss, task="regression"), mlp.closed_form_gradients, params, np.zeros((3, 4, 2)))


# Sharding over every device: tests/test_pinned.py runs a batch of 7 problems on 3 devices (which also
# catches a bucket not rounded to the device count, as 2 devices would not).


def test_the_user_jax_configuration_is_unchanged() -> None:
    before = jax.config.jax_enable_x64
    probs = draw("regression", "typical", 2)
    check_batch(
        partial(mlp.loss, task="regression"), partial(mlp.closed_form_gradients, task="regression"), *stack(probs)
    )
    assert jax.config.jax_enable_x64 == before


def test_a_closed_form_that_needs_the_problem_axis_is_rechecked_with_its_own_values() -> None:
    probs = draw("regression", "typical", 4)
    marker = probs[1].x[0, 0]

    def stacks_only(p: Any, x: Any, y: Any) -> mlp.Params:
        assert np.ndim(x) == 3, "this closed form is written for a stack of problems"
        g = mlp.closed_form_gradients(p, x, y, task="regression")
        return g._replace(b2=g.b2 * np.where(x[:, 0, 0] == marker, 2.0, 1.0)[:, None])

    report = check_batch(partial(mlp.loss, task="regression"), stacks_only, *stack(probs))
    assert report.verdicts == ("pass", "mismatch", "pass", "pass")
    assert report.failures[1]["b2"].status == "mismatch"  # blamed for its value, not an `error` from the call
    assert "constant factor 2" in (report.failures[1]["b2"].diagnosis or "")


def test_relu_networks_whose_directions_cross_kinks_get_the_careful_verdict() -> None:
    # The directional step crosses ReLU kinks, so its finite differences confirm
    # autodiff only loosely: the batch hands such problems to check_gradients.
    import jax

    from gradcheck import network

    net = network.Network((8, 16, 3), activation="relu", head="softmax")
    probs = [problems.sample_net(np.random.default_rng(i), net, batch=16) for i in range(4)]
    params = {k: np.stack([p.params[k] for p in probs]) for k in net.param_names}
    x, y = np.stack([p.x for p in probs]), np.stack([p.y for p in probs])
    grads = partial(network.closed_form_gradients, net=net)

    def blind(p: Any, x: Any, y: Any) -> Any:  # autodiff cannot see the 1e-3 term
        return network.loss(p, x, y, net=net) + 1e-3 * jax.lax.stop_gradient(p["b1"]).sum()

    report = check_batch(blind, grads, params, x, y)
    careful = [check_gradients(blind, grads, p.params, p.x, p.y).verdict for p in probs]
    assert list(report.verdicts) == careful
    assert "pass" not in careful


@pytest.mark.parametrize("path", ["numpy", "xla"])
@pytest.mark.parametrize("task", mlp.TASKS)
def test_no_correct_problem_of_any_regime_is_rechecked_one_by_one(task: mlp.Task, path: str) -> None:
    """Doubtful problems are refined in the batch: a correct closed form never reaches check_gradients."""

    loss, grad = partial(mlp.loss, task=task), partial(mlp.closed_form_gradients, task=task)
    with _references.forced(path):  # type: ignore[arg-type]
        for regime in problems.REGIMES:
            probs = draw(task, regime, 4 if regime == "large_batch" else 24, seed=5)
            report = check_batch(loss, grad, *stack(probs))
            assert report.verdict == "pass", f"{regime}: {report.failures}"
            assert report.rechecked == 0, f"{regime}: re-checked one by one"
            # Every parameter's finite-difference columns are measured in the batch (along every
            # coordinate), except for 2,048 samples per problem, where they run along directions.
            measured = all(np.isfinite(w["max_abs_err_fd"]) for w in report.worst.values())
            assert measured == (regime != "large_batch"), regime


def _one_problem_at_a_time(p: Any, x: Any, y: Any) -> mlp.Params:
    """A closed form written for one problem: `.T` and `len(y)` assume no problem axis."""
    act = mlp.forward(p, x, task="regression")
    d2 = (act.a2 - y)[:, None] / len(y)
    d1 = d2 @ p.w2 * act.a1 * (1 - act.a1)
    return mlp.Params(d1.T @ x, d1.sum(0), d2.T @ act.a1, d2.sum(0))


def test_a_per_problem_grad_fn_under_batched_true_is_named_with_the_fix() -> None:
    probs = draw("regression", "typical", 4)
    loss = partial(mlp.loss, task="regression")
    assert check_batch(loss, _one_problem_at_a_time, *stack(probs), batched=False).verdicts == ("pass",) * 4
    with pytest.raises(ValueError, match=r"`grad_fn` takes one problem at a time(.|\n)*Pass `batched=False`"):
        check_batch(loss, _one_problem_at_a_time, *stack(probs))


def test_a_wrong_call_in_a_batch_is_an_error_told_once() -> None:
    probs = draw("regression", "typical", 3)
    report = check_batch(partial(mlp.loss, task="regression"), lambda p, x: p, *stack(probs))
    assert report.verdicts == ("error",) * 3
    assert report.verdict == "error"
    text = str(report)
    assert text.startswith("gradcheck: ERROR, 3 problems (3 error)")
    assert text.count("takes 2 positional arguments but 3 were given") == 1
    assert "problems 0, 1, 2: gradcheck: ERROR" in text


def test_a_batch_report_prints_a_summary_not_a_repr() -> None:
    probs = draw("regression", "typical", 5)

    def b2_doubled_in_problems_1_and_3(p: Any, x: Any, y: Any) -> mlp.Params:
        g = mlp.closed_form_gradients(p, x, y, task="regression")
        return g._replace(b2=g.b2 * np.array([1.0, 2.0, 1.0, 2.0, 1.0])[:, None])

    report = check_batch(partial(mlp.loss, task="regression"), b2_doubled_in_problems_1_and_3, *stack(probs))
    text = str(report)
    assert "BatchReport(" not in text
    lines = text.splitlines()
    assert lines[0] == "gradcheck: MISMATCH, 5 problems (2 mismatch, 3 pass)"
    assert lines[1].split() == ["param", "max", "|cf-ad|", "max", "rel", "vs", "ad", "tol", "used"]
    assert [line.split()[0] for line in lines[2:6]] == ["w1", "b1", "w2", "b2"]
    assert "problem 1:\ngradcheck: MISMATCH in 1 of 4 parameters" in text
    assert "problem 3:\ngradcheck: MISMATCH in 1 of 4 parameters" in text
    assert "b2: likely mistake: off by a constant factor 2" in text


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        (("pass", "inconclusive", "error", "mismatch"), "mismatch"),
        (("pass", "inconclusive", "error"), "error"),
        (("pass", "inconclusive"), "inconclusive"),
        (("pass",), "pass"),
    ],
)
def test_a_batch_verdict_is_its_most_severe_mismatch_error_inconclusive(verdicts: Any, expected: str) -> None:
    from gradcheck._batch import BatchReport

    assert BatchReport(verdicts, {}, {}).verdict == expected


@pytest.mark.parametrize("task", mlp.TASKS)
def test_directional_references_by_numpy_are_the_compiled_ones(task: mlp.Task) -> None:
    """Large problems take their finite differences along random directions on either path:
    the same directions, and the same references within their error bounds."""
    import jax

    from gradcheck import _batch, _batch_references
    from gradcheck._references import _trace

    params, x, y = stack(draw(task, "large_batch", 3, seed=7))
    loss = partial(mlp.loss, task=task)
    _, leaves, treedef = _batch._stacked_params(params)
    cf = np.concatenate([g.reshape(3, -1) for g in mlp.closed_form_gradients(params, x, y, task=task)], axis=1)
    shapes = tuple(leaf.shape[1:] for leaf in leaves)
    u = float(np.finfo(np.float64).eps) / 2
    with _references.forced("numpy"):
        numpy_refs = _batch_references._stacked_references(
            loss, treedef, shapes, leaves, (x, y), 0, u, cf, np.dtype(np.float64), False
        )
    assert numpy_refs is not None
    assert numpy_refs.along is not None
    traced = _trace.trace_loss(loss, treedef, shapes, (x[0], y[0]))
    theta = np.concatenate([leaf.reshape(3, -1) for leaf in leaves], axis=1)
    with jax.enable_x64(True):
        xla_refs = _references.assemble(
            _batch_references._batch_references(traced, theta, (x, y), 0, u, cf, elementwise=False)
        )
    assert xla_refs.along is not None
    np.testing.assert_allclose(numpy_refs.autodiff, xla_refs.autodiff, rtol=1e-12, atol=1e-300)
    # The same random directions: the closed form's and autodiff's derivatives along them agree.
    np.testing.assert_allclose(numpy_refs.along.closed, xla_refs.along.closed, rtol=1e-12)
    np.testing.assert_allclose(numpy_refs.along.autodiff, xla_refs.along.autodiff, rtol=1e-12, atol=1e-300)
    gap = np.abs(numpy_refs.along.finite_diff - xla_refs.along.finite_diff)
    assert (gap <= numpy_refs.along.fd_error + xla_refs.along.fd_error).all()
    assert not numpy_refs.along.kink.any()
    assert not xla_refs.along.kink.any()


# --- the screen in the batch (`_references.SCREEN`) -------------------------------------------


def _nudged(rel: float, task: mlp.Task) -> Any:
    """The closed form with its largest entry of w1 off by `rel`, problem by problem (batch-aware)."""

    def grad(p: Any, x: Any, y: Any) -> mlp.Params:
        g = mlp.closed_form_gradients(p, x, y, task=task)
        w1 = np.array(g.w1, copy=True)
        flat = w1.reshape(w1.shape[0], -1)
        flat[np.arange(len(flat)), np.abs(flat).argmax(axis=1)] *= 1 + rel
        return g._replace(w1=w1)

    return grad


@pytest.mark.parametrize("path", ["numpy", "xla"])
@pytest.mark.parametrize("task", mlp.TASKS)
def test_the_batch_screen_changes_no_verdict(task: mlp.Task, path: str) -> None:
    """Large problems (the batch screens those: finite differences along directions), correct and nudged by
    1e-16..1e-6: the screened batch gives every problem the verdict, and every failure the report, of the
    batch with the noise always measured."""
    probs = draw(task, "large_batch", 4, seed=5)
    loss = partial(mlp.loss, task=task)
    for grad in (partial(mlp.closed_form_gradients, task=task), *(_nudged(10.0**e, task) for e in (-16, -12, -9, -6))):
        with _references.forced(path):  # type: ignore[arg-type]
            screened = check_batch(loss, grad, *stack(probs))
            with _references.unscreened():
                measured = check_batch(loss, grad, *stack(probs))
        assert screened.verdicts == measured.verdicts
        assert {k: str(r) for k, r in screened.failures.items()} == {k: str(r) for k, r in measured.failures.items()}
        assert measured.screened == 0
        assert screened.screened <= screened.verdicts.count("pass")


def test_large_correct_problems_are_settled_by_the_screen_and_say_so() -> None:
    loss, grad = partial(mlp.loss, task="classification"), partial(mlp.closed_form_gradients, task="classification")
    report = check_batch(loss, grad, *stack(draw("classification", "large_batch", 4)))
    assert report.verdicts == ("pass",) * 4
    assert report.screened == 4
    assert "4 problems passed without their rounding noise measured" in str(report)
    # A 1e-6 error in every problem's largest entry: none passes the screen, every one is caught.
    wrong = check_batch(loss, _nudged(1e-6, "classification"), *stack(draw("classification", "large_batch", 4)))
    assert (wrong.screened, wrong.verdicts) == (0, ("mismatch",) * 4)
    # Small problems (finite differences along every coordinate) are not screened: it would not pay.
    assert check_batch(loss, grad, *stack(draw("classification", "typical", 8))).screened == 0


def test_the_batch_screen_runs_no_monte_carlo_for_what_it_settles(monkeypatch: pytest.MonkeyPatch) -> None:
    """The screen is a saving, not a relabelling: a batch it settles makes no Monte Carlo run at all."""
    from gradcheck._references import _interpret

    runs = []
    real = _interpret.Noise
    monkeypatch.setattr(_interpret, "Noise", lambda *a, **k: runs.append(1) or real(*a, **k))
    loss, grad = partial(mlp.loss, task="regression"), partial(mlp.closed_form_gradients, task="regression")
    batch = stack(draw("regression", "large_batch", 3, seed=6))
    with _references.forced("numpy"):
        assert check_batch(loss, grad, *batch).screened == 3
        assert runs == []
        with _references.unscreened():
            assert check_batch(loss, grad, *batch).screened == 0
    assert runs != []


@pytest.mark.parametrize("path", ["numpy", "xla"])
def test_a_mixed_batch_splices_the_measured_problems_into_their_own_rows(path: str) -> None:
    """Half the problems wrong by 1e-6: those leave the screen, are judged again on the measured noise and
    spliced back in their own rows; exactly they are re-checked one by one, as without the screen."""

    task: mlp.Task = "classification"
    probs = draw(task, "large_batch", 4, seed=7)
    right = partial(mlp.closed_form_gradients, task=task)

    def half_wrong(p: Any, x: Any, y: Any) -> mlp.Params:
        g, wrong = right(p, x, y), _nudged(1e-6, task)(p, x, y)
        keep = np.array([True, False, True, False])
        return mlp.Params(*(np.where(keep.reshape(-1, *[1] * (a.ndim - 1)), a, b) for a, b in zip(g, wrong)))

    counts = []
    for screen in (True, False):
        with contextlib.ExitStack() as stack_:
            stack_.enter_context(_references.forced(path))  # type: ignore[arg-type]
            if not screen:
                stack_.enter_context(_references.unscreened())
            report = check_batch(partial(mlp.loss, task=task), half_wrong, *stack(probs))
            counts.append(report.rechecked)
        assert report.verdicts == ("pass", "mismatch", "pass", "mismatch")
        assert report.screened == (2 if screen else 0)
    assert counts == [2, 2]


@pytest.mark.parametrize("along", [False, True])
def test_spliced_references_put_each_problem_in_its_own_row(along: bool) -> None:
    from gradcheck import _batch

    def refs(b: int, offset: float, along: bool) -> _references.References:
        rows = offset + np.arange(b, dtype=float)[:, None]  # row k holds offset + k
        flat = [rows * np.ones((b, 3)) for _ in range(4)]
        directions = _references.Along(*(rows * np.ones((b, 2)) for _ in range(4)), np.zeros((b, 2), bool))
        return _references.References(*flat, np.zeros((b, 3), bool), directions if along else None)

    whole, part = refs(5, 0.0, along), refs(2, 100.0, along)
    out = _batch._spliced(whole, part, np.array([1, 3]))
    for field in (*out[:4], *(out.along[:4] if out.along is not None else ())):
        np.testing.assert_array_equal(field[:, 0], [0.0, 100.0, 2.0, 101.0, 4.0])
    assert (out.along is not None) == along
    assert whole.autodiff[1, 0] == 1.0  # the batch's own references are left as they were
    with pytest.raises(ValueError, match="along coordinates and along directions"):
        _batch._spliced(whole, refs(2, 0.0, not along), np.array([1, 3]))
