"""check_gradients / assert_gradients: verdicts, reports, and misuse."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given

from gradcheck import GradientMismatch, ReferencesDisagree, _references, assert_gradients, check_gradients, mlp
from gradcheck import strategies as gs
from tests.derivations import MUTANTS, typo_w1_for_w2

P = mlp.init_params(0)
X = np.array([[0.5, -1.0], [2.0, 0.25], [-1.5, 1.0]])
Y = np.array([1.0, 0.0, 1.0])


def losses(task: mlp.Task):  # type: ignore[no-untyped-def]
    return partial(mlp.loss, task=task), partial(mlp.closed_form_gradients, task=task)


@given(gs.problems(regime="any"))
def test_closed_form_agrees_with_both_references(prob) -> None:  # type: ignore[no-untyped-def]
    loss, grads = losses(prob.task)
    report = check_gradients(loss, grads, prob.params, prob.x, prob.y)
    assert report.ok, str(report)
    assert report.verdict == "pass"
    with _references.unscreened():
        measured = check_gradients(loss, grads, prob.params, prob.x, prob.y)
    for p in measured.params:
        assert p.tolerance_used <= 0.5  # headroom: a correct gradient uses at most half its measured allowance


@given(gs.problems(regime="typical"))
def test_known_wrong_derivation_is_caught(prob) -> None:  # type: ignore[no-untyped-def]
    loss, _ = losses(prob.task)
    report = check_gradients(loss, partial(MUTANTS["residual_sign"].grad, task=prob.task), prob.params, prob.x, prob.y)
    # The sign flip is invisible only where the true gradient vanishes.
    grads = mlp.closed_form_gradients(prob.params, prob.x, prob.y, task=prob.task)
    assume(max(np.abs(g).max() for g in grads) > 1e-6)
    assert report.verdict == "mismatch"
    assert any("sign flipped" in (p.diagnosis or "") for p in report.params)


@pytest.mark.parametrize("task", mlp.TASKS)
def test_source_text_typo_is_caught(task: mlp.Task) -> None:
    """The seed text's dL/db1 uses w1 where w2 belongs; inputs == hidden makes it computable."""
    p = mlp.init_params(3, inputs=2, hidden=2)
    loss, _ = losses(task)
    report = check_gradients(loss, partial(typo_w1_for_w2, task=task), p, X, Y)
    assert report.verdict == "mismatch"
    assert [q.name for q in report.params if not q.ok] == ["b1"]


def test_report_names_parameter_index_and_values() -> None:
    loss, grads = losses("classification")

    def off_by_1e8(p, x, y):  # type: ignore[no-untyped-def]
        g = grads(p, x, y)
        w1 = g.w1.copy()
        w1[1, 0] *= 1 + 1e-8
        return g._replace(w1=w1)

    report = check_gradients(loss, off_by_1e8, P, X, Y)
    w1 = report["w1"]
    assert (w1.status, w1.index) == ("mismatch", (1, 0))
    assert w1.closed_form == pytest.approx(w1.autodiff * (1 + 1e-8), rel=1e-12)
    assert w1.rel_error == pytest.approx(1e-8, rel=1e-3)
    assert w1.fd_error > 0
    assert w1.tolerance > 0
    text = str(report)
    assert "MISMATCH in 1 of 4" in text
    assert "w1" in text
    assert "(1, 0)" in text
    assert "only 1 of 6 entries wrong" in (w1.diagnosis or "")


def test_assert_gradients_raises_readable_mismatch() -> None:
    loss, grads = losses("regression")
    with pytest.raises(
        GradientMismatch,
        match=r"(?s)MISMATCH in 4 of 4.*likely mistake: off by a constant factor 2 \(on this problem\)",
    ) as info:
        assert_gradients(loss, lambda p, x, y: mlp.Params(*(2 * g for g in grads(p, x, y))), P, X, Y)
    assert isinstance(info.value, AssertionError)
    assert info.value.report.verdict == "mismatch"
    assert assert_gradients(loss, grads, P, X, Y).ok


@pytest.mark.parametrize(
    ("kinked", "claims"),
    [
        # kink at index 0 (autodiff and the central difference both say 1/2 there); slope 1 at index 1
        pytest.param(lambda t: jnp.sum(jnp.maximum(t, 0.0)), [[0.0, 1.0], [1.0, 1.0]], id="maximum"),
        # slope -1 at index 0; kink at index 1
        pytest.param(lambda t: jnp.sum(jnp.abs(t - 1.0)), [[-1.0, 0.0], [-1.0, 1.0]], id="abs"),
    ],
)
def test_a_kink_is_not_judged_and_the_rest_is(kinked, claims) -> None:  # type: ignore[no-untyped-def]
    theta = np.array([0.0, 1.0])
    kink = 0 if claims[0][1] == 1.0 else 1
    for claimed in map(np.array, claims):  # either one-sided slope is a defensible closed form
        report = check_gradients(kinked, lambda t, c=claimed: c, theta)
        assert report.verdict == "pass", str(report)
        assert report.params[0].not_judged == ((kink,),)
        assert report.not_judged == 1
        assert f"1 element at a kink (a non-differentiable point), not judged: ({kink},)" in str(report)
        # The element away from the kink is still judged.
        wrong = claimed.copy()
        wrong[1 - kink] += 1e-3
        assert check_gradients(kinked, lambda t, c=wrong: c, theta).verdict == "mismatch"


def test_smooth_losses_near_a_kink_are_judged() -> None:
    """Just beside the kink (farther than the steps reach) the loss is smooth: a verdict is given."""
    loss = lambda t: jnp.sum(jnp.maximum(t, 0.0) ** 2)  # noqa: E731
    theta = np.array([0.5, -0.5])
    assert check_gradients(loss, lambda t: 2 * np.maximum(t, 0.0), theta).ok
    assert check_gradients(loss, lambda t: 3 * np.maximum(t, 0.0), theta).verdict == "mismatch"


def test_references_in_doubt_do_not_blame_the_closed_form() -> None:
    """A loss whose own derivative rule is wrong: autodiff says 2 t^2, the finite differences 3 t^2."""

    @jax.custom_jvp
    def cube(t):  # type: ignore[no-untyped-def]
        return t**3

    cube.defjvp(lambda primals, tangents: (cube(primals[0]), 2 * primals[0] ** 2 * tangents[0]))

    def loss(theta):  # type: ignore[no-untyped-def]
        return jnp.sum(cube(theta))

    right = lambda theta: 3 * theta**2  # noqa: E731
    report = check_gradients(loss, right, np.array([1.0, 2.0]))
    assert report.verdict == "inconclusive"
    assert report.params[0].status == "doubt"
    assert "reference is in doubt" in (report.params[0].message or "")
    assert "no kink" in (report.params[0].message or "")
    with pytest.raises(ReferencesDisagree, match="INCONCLUSIVE"):
        assert_gradients(loss, right, np.array([1.0, 2.0]))


def _raises(p, x, y):  # type: ignore[no-untyped-def]
    raise ZeroDivisionError("oops in student code")


def _y_as_column(p, x, y):  # type: ignore[no-untyped-def]
    return mlp.closed_form_gradients(p, x, y[:, None], task="regression")


#: Wrong calls: `grad_fn` cannot be checked at all. Verdict "error", told once;
#: `assert_gradients` raises the exception class given, naming the fix.
WRONG_CALLS = [
    pytest.param(
        _raises,
        ValueError,
        r"`grad_fn` raised ZeroDivisionError: oops in student code\nTraceback(.|\n)*in _raises",
        id="raises",
    ),
    pytest.param(
        lambda p, x: p,
        TypeError,
        r"takes 2 positional arguments but 3 were given\n`grad_fn` is called as grad_fn\(params, \*args\): here "
        r"with `params` and 2 further arguments of shapes \(3, 2\), \(3,\)",
        id="wrong-signature",
    ),
    pytest.param(
        lambda p, x, y: None,
        TypeError,
        r"`grad_fn` returned NoneType \(a missing `return`\?\), which is not a gradient of `params`(.|\n)*"
        r"w1 \(3, 2\), b1 \(3,\), w2 \(1, 3\), b2 \(1,\)",
        id="none",
    ),
    pytest.param(
        lambda p, x, y: [np.zeros((3, 2))],
        TypeError,
        r"`grad_fn` returned list with entries \['0'\], which is not a gradient of `params`",
        id="wrong-structure",
    ),
    pytest.param(
        _y_as_column,
        ValueError,
        r"raised ValueError: `y` has shape \(3, 1\) but expected \(3,\)(.|\n)*in _y_as_column",
        id="data-of-the-wrong-shape",
    ),
]


@pytest.mark.parametrize(("grad_fn", "exception", "message"), WRONG_CALLS)
def test_a_wrong_call_is_an_error_not_a_mismatch(grad_fn, exception: type, message: str) -> None:  # type: ignore[no-untyped-def]
    loss = partial(mlp.loss, task="regression")
    report = check_gradients(loss, grad_fn, P, X, Y)
    assert report.verdict == "error"
    assert not report.ok
    assert report.error is not None
    assert re.search(message, report.error), report.error
    text = str(report)
    assert text.startswith("gradcheck: ERROR, `grad_fn` could not be checked (a wrong call, not a wrong gradient")
    assert text.count(report.error.splitlines()[0]) == 1  # told once, not once per parameter
    assert "MISMATCH" not in text
    assert report.to_dict()["verdict"] == "error"
    assert report.to_dict()["error"] == report.error
    with pytest.raises(exception, match=message) as raised:
        assert_gradients(loss, grad_fn, P, X, Y)
    assert not isinstance(raised.value, AssertionError)  # misuse, not a failed check
    cause = raised.value.__cause__  # the user's own exception, chained
    assert type(cause) is type(report.cause)
    assert str(cause) == str(report.cause)


GRAD_FN_FAULTS = [
    pytest.param(
        lambda p, x, y: {"w1": np.zeros((3, 2))}, "w2", r"returned only \['w1'\], with no entry", id="missing-key"
    ),
    pytest.param(
        lambda p, x, y: mlp.closed_form_gradients(p, x, y, task="regression")._replace(b1=np.zeros(4)),
        "b1",
        r"returned shape \(4,\) for `b1`, expected \(3,\)",
        id="wrong-shape",
    ),
    pytest.param(
        lambda p, x, y: mlp.closed_form_gradients(p, x, y, task="regression")._replace(b2=np.array([np.inf])),
        "b2",
        r"returned inf for `b2` at index \(0,\)",
        id="non-finite",
    ),
    pytest.param(
        lambda p, x, y: mlp.closed_form_gradients(p, x, y, task="regression")._replace(b2=np.array(["a"])),
        "b2",
        r"returned dtype <U1 for `b2`; expected real numbers",
        id="strings",
    ),
]


@pytest.mark.parametrize(("grad_fn", "param", "message"), GRAD_FN_FAULTS)
def test_faulty_grad_fn_gives_a_failed_report_not_a_crash(grad_fn, param: str, message: str) -> None:  # type: ignore[no-untyped-def]
    report = check_gradients(partial(mlp.loss, task="regression"), grad_fn, P, X, Y)
    assert not report.ok
    assert report.verdict == "mismatch"
    result = report[param]
    assert result.status == "error"
    assert result.message is not None
    assert __import__("re").search(message, result.message), result.message


MISUSE = [
    pytest.param(
        dict(params=P._replace(w1=np.full((3, 2), np.nan))),
        ValueError,
        r"`params.w1` must be finite, got nan at index \(0, 0\)",
        id="params-nan",
    ),
    pytest.param(
        dict(args=(X, np.array([1.0, np.inf, 0.0]))),
        ValueError,
        r"`args\[1\]` must be finite, got inf at index \(1,\)",
        id="args-inf",
    ),
    pytest.param(dict(params=()), ValueError, r"`params` holds no arrays", id="params-empty"),
    pytest.param(
        dict(params={"w": np.array(["x"])}),
        ValueError,
        r"`params.w` must be a real array, got dtype <U1",
        id="params-strings",
    ),
    pytest.param(dict(loss_fn=3), TypeError, r"`loss_fn` must be a function, got int 3", id="loss-not-callable"),
    pytest.param(dict(grad_fn=None), TypeError, r"`grad_fn` must be a function, got NoneType", id="grad-not-callable"),
    pytest.param(
        dict(loss_fn=lambda p, x, y: p.w1.sum(axis=0)),
        ValueError,
        r"`loss_fn` must return a scalar, got shape \(2,\)",
        id="loss-not-scalar",
    ),
    pytest.param(  # fails under JAX and on NumPy arrays too (a NumPy loss that runs is checked: tests/test_forward.py)
        dict(loss_fn=lambda p, x, y: float(np.sum(np.asarray(p.w1) @ np.ones(7)))),
        ValueError,
        r"(?s)`loss_fn\(params, \*args\)` failed under JAX tracing.*Write it with jax.numpy",
        id="loss-not-traceable",
    ),
]


@pytest.mark.parametrize(("change", "error", "message"), MISUSE)
def test_misuse_names_argument_value_and_fix(change: dict, error: type, message: str) -> None:  # type: ignore[type-arg]
    call = {
        "loss_fn": partial(mlp.loss, task="regression"),
        "grad_fn": partial(mlp.closed_form_gradients, task="regression"),
        "params": P,
        "args": (X, Y),
    }
    call.update(change)
    with pytest.raises(error, match=message):
        check_gradients(call["loss_fn"], call["grad_fn"], call["params"], *call["args"])


@pytest.mark.parametrize("x64_before", [False, True])
def test_global_jax_configuration_is_unchanged(x64_before: bool) -> None:
    jax.config.update("jax_enable_x64", x64_before)
    try:
        loss, grads = losses("classification")
        assert check_gradients(loss, grads, P, X, Y).ok
        assert jax.config.jax_enable_x64 is x64_before
        assert jnp.zeros(1).dtype == (jnp.float64 if x64_before else jnp.float32)
    finally:
        jax.config.update("jax_enable_x64", False)


def _front_ends() -> dict[str, Any]:
    from gradcheck import _search, plot
    from gradcheck.pytest_plugin import check_property

    wrong = partial(MUTANTS["residual_sign"].grad, task="regression")
    seed_problem = plot.seed_problem("classification", 0)
    return {
        "search-pass": lambda: _search.search(
            partial(mlp.closed_form_gradients, task="regression"), task="regression", examples=3
        ),
        "search-mismatch": lambda: _search.search(wrong, task="regression", examples=3),  # shrinks and confirms
        "plugin": lambda: check_property(mlp.closed_form_gradients, task="regression", examples=3),
        "plot": lambda: (plot.vcurve(seed_problem), plot.taylor(seed_problem, 0)),
    }


@pytest.mark.parametrize("front_end", ["search-pass", "search-mismatch", "plugin", "plot"])
@pytest.mark.parametrize("x64_before", [False, True])
def test_global_jax_configuration_is_unchanged_by_every_front_end(front_end: str, x64_before: bool) -> None:
    jax.config.update("jax_enable_x64", x64_before)
    try:
        _front_ends()[front_end]()
        assert jax.config.jax_enable_x64 is x64_before
        assert jnp.zeros(1).dtype == (jnp.float64 if x64_before else jnp.float32)
    finally:
        jax.config.update("jax_enable_x64", False)


def test_to_dict_is_strict_json() -> None:
    loss, grads = losses("classification")
    report = check_gradients(loss, lambda p, x, y: grads(p, x, y)._replace(b1=np.array([np.nan, 0, 0])), P, X, Y)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["verdict"] == "mismatch"
    assert data["ok"] is False
    assert [p["name"] for p in data["params"]] == ["w1", "b1", "w2", "b2"]
    assert data["params"][1]["status"] == "error"
    assert data["params"][0]["shape"] == [3, 2]


def test_dict_params_and_plain_tuple_results_are_matched() -> None:
    def loss(p, x):  # type: ignore[no-untyped-def]
        return jnp.sum(p["a"] ** 2 * x) + jnp.sum(p["b"])

    report = check_gradients(
        loss, lambda p, x: {"b": np.ones(2), "a": 2 * p["a"] * x}, {"a": np.ones(3), "b": np.zeros(2)}, np.arange(3.0)
    )
    assert report.ok, str(report)
    assert [p.name for p in report.params] == ["a", "b"]
    tuple_report = check_gradients(
        lambda t: jnp.sum(t[0] ** 3) + t[1][0], lambda t: (3 * t[0] ** 2, np.ones(1)), (np.ones(2), np.zeros(1))
    )
    assert tuple_report.ok, str(tuple_report)


@pytest.mark.parametrize("task", mlp.TASKS)
def test_taylor_rate_separates_right_from_wrong(task: mlp.Task) -> None:
    from gradcheck import _inputs, _taylor
    from gradcheck._references import _trace

    loss, grads = losses(task)
    _, leaves, treedef = _inputs.flatten_params(P)
    traced = _trace.trace_loss(loss, treedef, tuple(leaf.shape for leaf in leaves), (X, Y))
    flat = _taylor.jax_losses(_trace.flat_loss(traced), (X, Y))
    theta = np.concatenate([leaf.ravel() for leaf in leaves])
    right = np.concatenate([g.ravel() for g in grads(P, X, Y)])
    direction = np.random.default_rng(0).standard_normal(theta.shape)
    assert _taylor.rate(flat, theta, right, direction) == pytest.approx(2.0, abs=0.15)
    wrong = right * 1.01
    assert _taylor.rate(flat, theta, wrong, direction) == pytest.approx(1.0, abs=0.15)
    report = check_gradients(loss, lambda p, x, y: mlp.Params(*(1.01 * g for g in grads(p, x, y))), P, X, Y)
    assert report.taylor_rate == pytest.approx(1.0, abs=0.15)
    assert "Taylor remainder shrinks like h^1" in str(report)


def test_swapped_parameters_are_diagnosed() -> None:
    def loss(p):  # type: ignore[no-untyped-def]
        return jnp.sum(p["a"] ** 2) + jnp.sum(jnp.sin(p["b"]))

    params = {"a": np.array([0.5, -1.0, 2.0]), "b": np.array([0.1, 0.2, 0.3])}
    report = check_gradients(loss, lambda p: {"a": np.cos(p["b"]), "b": 2 * p["a"]}, params)
    assert report["a"].diagnosis == "swapped: these values are the gradient of `b`"
    assert report["b"].diagnosis == "swapped: these values are the gradient of `a`"


# --- regressions found in review --------------------------------------------------------

LAM = 0.0


def _decayed(p):  # type: ignore[no-untyped-def]
    return jnp.sum(p**3) + 0.5 * LAM * jnp.sum(p**2)  # reads a global: must never be frozen


def test_a_changed_global_in_the_loss_is_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    p = np.array([0.5, -1.0, 2.0])
    forgetful = lambda q: 3 * q**2  # noqa: E731 - ignores the decay
    assert check_gradients(_decayed, forgetful, p).ok
    monkeypatch.setitem(_decayed.__globals__, "LAM", 0.5)
    assert check_gradients(_decayed, forgetful, p).verdict == "mismatch"


def test_grad_fn_cannot_move_the_data_the_references_use() -> None:
    def loss(w, x):  # type: ignore[no-untyped-def]
        return jnp.sum((x @ w) ** 2) / 2

    def centring(w, x):  # type: ignore[no-untyped-def]
        x -= x.mean(axis=0)  # in place: its own copy, not the references'
        return x.T @ (x @ w)

    x = np.arange(12.0).reshape(4, 3)
    assert check_gradients(loss, centring, np.array([0.1, 0.2, 0.3]), x).verdict == "mismatch"
    np.testing.assert_array_equal(x, np.arange(12.0).reshape(4, 3))


def test_sys_exit_in_grad_fn_is_reported_not_raised() -> None:
    report = check_gradients(lambda p: jnp.sum(p**2), lambda p: sys.exit(0), np.ones(2))
    assert report.verdict == "error"
    assert "`grad_fn` raised SystemExit" in (report.error or "")


def test_mismatched_dict_keys_are_named_not_paired() -> None:
    params = {"weight": np.array([1.0, 2.0]), "bias": np.array([0.5])}

    def loss(p):  # type: ignore[no-untyped-def]
        return jnp.sum(p["weight"] ** 2) + jnp.sum(p["bias"])

    report = check_gradients(loss, lambda p: {"dW": 2 * p["weight"], "db": np.ones(1)}, params)
    assert {r.status for r in report.params} == {"error"}
    assert report.verdict == "error"
    assert "returned dict with entries ['dW', 'db'], which is not a gradient of `params`" in (report.error or "")
    assert "one array per parameter: bias (1,), weight (2,)" in (report.error or "")


def test_integer_labels_stay_integers() -> None:
    def loss(w, x, labels):  # type: ignore[no-untyped-def]
        logits = x @ w
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(labels.shape[0]), labels])

    def grads(w, x, labels):  # type: ignore[no-untyped-def]
        assert labels.dtype.kind == "i"
        z = x @ w
        prob = np.exp(z - z.max(axis=1, keepdims=True))
        prob /= prob.sum(axis=1, keepdims=True)
        prob[np.arange(len(labels)), labels] -= 1
        return x.T @ prob / len(labels)

    rng = np.random.default_rng(0)
    report = check_gradients(loss, grads, rng.normal(size=(3, 4)), rng.normal(size=(5, 3)), np.array([0, 2, 1, 3, 3]))
    assert report.ok, str(report)


def test_float16_closed_form_is_not_waved_through() -> None:
    def loss(p):  # type: ignore[no-untyped-def]
        return 3e-3 * jnp.sum(p**2)

    report = check_gradients(loss, lambda p: np.zeros(2, np.float16), np.array([1.0, -0.2]))
    assert report.precision == "float16"
    assert report.verdict == "mismatch"


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True])
def test_seed_is_validated(seed: object) -> None:
    with pytest.raises(ValueError, match=r"`seed` must be an integer in \[0, 2\*\*32\)"):
        check_gradients(lambda p: jnp.sum(p**2), lambda p: 2 * p, np.ones(2), seed=seed)  # type: ignore[arg-type]


def test_empty_parameter_is_misuse() -> None:
    with pytest.raises(ValueError, match=r"`params.b` is empty \(shape \(0,\)\)"):
        check_gradients(lambda p: jnp.sum(p["a"] ** 2), lambda p: p, {"a": np.ones(2), "b": np.ones(0)})


@pytest.mark.parametrize(
    "closed_form",
    [lambda t: 3 * t**2, lambda t: 2 * t**2],  # the right derivative; the one the wrong rule gives
    ids=["right", "agrees-with-the-wrong-rule"],
)
def test_an_inconclusive_row_shows_the_element_its_message_names(closed_form: Callable[[Any], Any]) -> None:
    """The row shows the element in doubt that its message names, not the worst ratio (there, all 0 or
    largest elsewhere)."""

    @jax.custom_jvp
    def cube(t):  # type: ignore[no-untyped-def]
        return t**3

    cube.defjvp(lambda primals, tangents: (cube(primals[0]), 2 * primals[0] ** 2 * tangents[0]))  # wrong: 3 t^2
    t = np.array([0.5, 2.0, 1.0])  # the references disagree most at t = 2, by t^2
    report = check_gradients(lambda p: cube(p["t"]).sum(), lambda p: {"t": closed_form(p["t"])}, {"t": t})
    row = report["t"]
    assert row.status == "doubt"
    assert row.index == (1,)
    assert "disagree at index (1,)" in (row.message or "")


def test_a_parameter_wholly_at_kinks_shows_no_element() -> None:
    def relu_loss(p):  # type: ignore[no-untyped-def]
        return jnp.maximum(p["t"], 0.0).sum() + jnp.sum(p["u"] ** 2)

    params = {"t": np.zeros(2), "u": np.array([1.0])}
    report = check_gradients(relu_loss, lambda p: {"t": np.zeros(2), "u": 2 * p["u"]}, params)
    assert report.verdict == "pass"
    assert report["t"].not_judged == ((0,), (1,))
    assert report["t"].index is None
    assert np.isnan(report["t"].closed_form)
    row = next(line for line in str(report).splitlines() if line.split()[0] == "t")
    assert row.split()[2:5] == ["pass", "-", "-"]


def test_a_scalar_parameter_is_checked_like_any_other() -> None:
    """A 0-d parameter (a bias `b` of shape ()): judged, with its statistics, right and wrong."""
    x, y = np.array([0.5, -1.0, 2.0]), np.array([1.0, 0.0, 1.0])

    def loss(p: dict[str, Any], x: np.ndarray, y: np.ndarray) -> Any:
        return jnp.mean((p["w"] * x + p["b"] - y) ** 2)

    def grads(p: dict[str, Any], x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        r = p["w"] * x + p["b"] - y
        return {"w": np.asarray(2 * np.mean(r * x)), "b": np.asarray(2 * np.mean(r))}

    params = {"w": np.asarray(0.3), "b": np.asarray(-0.2)}
    report = check_gradients(loss, grads, params, x, y)
    assert report.verdict == "pass", str(report)
    assert report["b"].max_rel_err_autodiff < 1e-14
    wrong = check_gradients(loss, lambda p, x, y: {**grads(p, x, y), "b": grads(p, x, y)["b"] * 2}, params, x, y)
    assert (wrong["w"].status, wrong["b"].status) == ("pass", "mismatch")
    assert wrong["b"].max_rel_err_autodiff == pytest.approx(1.0)
