"""Wrong calls are errors that say what to fix, never mismatches or crashes (issue 23's list, one test each)."""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradcheck import _references, check_gradients, check_jvp, check_vjp, mlp
from gradcheck._references import _primitive_rules as _rules

P = mlp.init_params(0)
X, Y = np.array([[0.5, -1.0], [2.0, 0.0]]), np.array([1.0, 0.0])
LOSS = partial(mlp.loss, task="regression")


def _renamed(**names: str) -> Any:
    def grads(p: mlp.Params, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        g = mlp.closed_form_gradients(p, x, y, task="regression")._asdict()
        return {names.get(k, k): v for k, v in g.items()}

    return grads


@pytest.mark.parametrize(
    ("names", "told"),
    [
        ({"w1": "W1", "w2": "W2"}, ["`W1` (did you mean `w1`?)", "`W2` (did you mean `w2`?)"]),
        ({"w1": "W1", "b1": "B1", "w2": "W2", "b2": "B2"}, ["`B1` (did you mean `b1`?)"]),  # every key slipped
        ({"b1": "bias1"}, ["`bias1` (did you mean `b1`?)"]),
    ],
)
def test_a_key_name_slip_is_an_error_with_did_you_mean(names: dict[str, str], told: list[str]) -> None:
    report = check_gradients(LOSS, _renamed(**names), P, X, Y)
    assert report.verdict == "error", str(report)
    for words in told:
        assert words in str(report)
    assert "named as in `params`: w1 (3, 2), b1 (3,), w2 (1, 3), b2 (1,)" in str(report)


def test_an_extra_entry_is_named_not_ignored() -> None:
    def extra(p: mlp.Params, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        return {**mlp.closed_form_gradients(p, x, y, task="regression")._asdict(), "w3": np.zeros(2)}

    report = check_gradients(LOSS, extra, P, X, Y)
    assert report.verdict == "error"
    assert "`w3` (no such parameter)" in str(report)


def test_a_jvp_returned_as_jax_jvp_returns_it_is_accepted() -> None:
    """``(f(x), J t)``, as ``jax.jvp`` returns them: the tangent is checked, right and wrong."""
    x = np.array([0.3, -0.5, 1.2])
    right = check_jvp(jnp.sin, lambda p, t: (np.sin(p[0]), np.cos(p[0]) * t[0]), x)
    assert right.verdict == "pass", str(right)
    wrong = check_jvp(jnp.sin, lambda p, t: (np.sin(p[0]), -np.cos(p[0]) * t[0]), x)
    assert wrong.verdict == "mismatch", str(wrong)


def test_a_vjp_of_a_forward_written_in_numpy_is_checked_by_finite_differences() -> None:
    def relu_scaled(x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0) * 2.0

    x = np.array([0.3, -0.5, 1.0])
    right = check_vjp(relu_scaled, lambda primals, c: (2.0 * (primals[0] > 0) * c,), x)
    assert right.verdict == "pass", str(right)
    assert "no autodiff reference" in str(right)
    inverted = check_vjp(relu_scaled, lambda primals, c: (2.0 * (primals[0] <= 0) * c,), x)  # the mask inverted
    assert inverted.verdict == "mismatch", str(inverted)


def test_a_wrong_vjp_with_dict_primals_is_a_mismatch_not_a_crash() -> None:
    def f(d: dict[str, Any]) -> Any:
        return jnp.sin(d["a"]) * d["b"]

    def vjp(primals: tuple[dict[str, np.ndarray]], c: np.ndarray) -> tuple[dict[str, np.ndarray]]:
        (d,) = primals
        return ({"a": 2.0 * np.cos(d["a"]) * d["b"] * c, "b": np.sin(d["a"]) * c},)

    report = check_vjp(f, vjp, {"a": np.array([0.3, 0.5]), "b": np.array([1.0, 2.0])})
    assert report.verdict == "mismatch", str(report)


def test_a_scalar_index_runs_on_the_numpy_path() -> None:
    """``jnp.take(w, i)`` with a scalar index: the NumPy interpreter's gather gives a 0-d result."""

    def loss(p: dict[str, Any], i: Any) -> Any:
        return jnp.take(p["w"], i) ** 2

    def grad(p: dict[str, np.ndarray], i: np.ndarray) -> dict[str, np.ndarray]:
        return {"w": np.eye(3)[int(i)] * 2.0 * p["w"][int(i)]}

    with _references.forced("numpy"):
        report = check_gradients(loss, grad, {"w": np.array([1.0, 2.0, 3.0])}, np.int64(1))
    assert report.verdict == "pass", str(report)
    assert report.references == "numpy"


def test_a_numpy_rule_that_fails_falls_back_to_compiling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any exception on the NumPy path is recorded, and the compiled path gives the verdict: never a crash."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise IndexError("a bug in a rule of ours")

    monkeypatch.setitem(_rules.RULES, "tanh", broken)
    _references.clear_caches()

    def loss(p: dict[str, Any]) -> Any:
        return jnp.sum(jnp.tanh(p["w"]) ** 2)

    def grad(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        t = np.tanh(p["w"])
        return {"w": 2 * t * (1 - t**2)}

    report = check_gradients(loss, grad, {"w": np.array([0.3, -1.2, 0.8])})
    assert report.verdict == "pass", str(report)
    assert report.references == "xla"
    assert any("a bug in a rule of ours" in why for why in _references.NUMPY_FAILURES.values())
    assert jax.config.read("jax_enable_x64") is False


def test_a_submission_that_raises_on_some_problems_is_an_error_everywhere(tmp_path: Any) -> None:
    """Right on the generic problem, raising on one sample: the search's verdict, its report, the JSON, the exit
    code and the fixture all say "error" (a wrong call there), with the minimal problem, never "mismatch"."""
    import json

    from gradcheck import _search, cli
    from gradcheck.pytest_plugin import check_property

    def picky(params: mlp.Params, x: np.ndarray, y: np.ndarray, *, task: str = "regression") -> mlp.Params:
        if x.shape[0] == 1:
            raise IndexError("needs two samples")
        return mlp.closed_form_gradients(params, x, y, task=task)  # type: ignore[arg-type]

    result = _search.search(picky, task="regression", examples=30)
    assert result.verdict == "error"
    assert result.report is not None
    assert result.report.verdict == "error"
    with pytest.raises(ValueError, match=r"raised at problem \d+; minimal problem(.|\n)*needs two samples"):
        check_property(picky, task="regression", examples=30)
    (tmp_path / "picky.py").write_text(
        "from gradcheck import mlp\n"
        "def grads(p, x, y, *, task):\n"
        "    if x.shape[0] == 1:\n"
        "        raise IndexError('needs two samples')\n"
        "    return mlp.closed_form_gradients(p, x, y, task=task)\n"
    )
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["check", f"{tmp_path}/picky.py:grads", "--task", "regression", "--examples", "30", "--json"])
    assert code == cli.EXIT_USAGE
    task = json.loads(out.getvalue())["submissions"][0]["tasks"]["regression"]
    assert (task["verdict"], task["report"]["verdict"]) == ("error", "error")


def test_an_error_inside_the_users_code_is_shown_as_theirs_not_as_a_signature_problem(tmp_path: Any) -> None:
    def bad(p: mlp.Params, x: np.ndarray, y: np.ndarray) -> mlp.Params:
        return mlp.Params(p.w1[5], p.b1, p.w2, p.b2)  # an index past the end: the user's own line

    report = check_gradients(LOSS, bad, P, X, Y)
    assert report.verdict == "error"
    text = str(report)
    assert "raised IndexError: index 5 is out of bounds" in text
    assert "It failed inside your code" in text
    assert "return mlp.Params(p.w1[5]" in text  # the user's own line, in their traceback
    assert "is called as grad_fn(params, *args): here" not in text  # no signature problem claimed
    from gradcheck import cli

    (tmp_path / "sub.py").write_text(
        "from gradcheck import mlp\ndef grads(p, x, y, *, task):\n    return mlp.Params(p.w1[5], p.b1, p.w2, p.b2)\n"
    )
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["check", f"{tmp_path}/sub.py:grads", "--task", "regression", "--examples", "3"]) == 2
    assert "gradcheck/cli/" not in out.getvalue()  # the traceback starts in the user's file, not in ours
    assert "sub.py" in out.getvalue()


# --- a course's layer backward(dout, cache) given to check_vjp ------------------------------------------


def affine_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """A course's affine layer, in NumPy: the output and the cache its backward pass reads."""
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w, b)


def affine_backward(dout: np.ndarray, cache: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    x, w, _ = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    return dx, dw, dout.sum(axis=0)


def test_a_layers_backward_dout_cache_is_a_wrong_call_with_the_wrapper_that_fits() -> None:
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal(2)
    report = check_vjp(lambda x, w, b: affine_forward(x, w, b)[0], affine_backward, x, w, b)
    assert report.verdict == "error"
    assert "affine_backward(dout, cache)" in (report.error or "")
    assert "lambda primals, dout: affine_backward(dout, forward(*primals)[1])" in (report.error or "")
    # The wrapper it gives, with this layer's forward pass, passes (a NumPy forward: finite differences alone),
    wrapped = check_vjp(
        lambda x, w, b: affine_forward(x, w, b)[0],
        lambda primals, dout: affine_backward(dout, affine_forward(*primals)[1]),
        x,
        w,
        b,
    )
    assert wrapped.verdict == "pass"

    # and a real mistake in the backward pass (the bias's gradient not summed over the batch) is caught.
    def forgets_the_sum(dout: np.ndarray, cache: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        dx, dw, _ = affine_backward(dout, cache)
        return dx, dw, dout.mean(axis=0)

    wrong = check_vjp(
        lambda x, w, b: affine_forward(x, w, b)[0],
        lambda primals, dout: forgets_the_sum(dout, affine_forward(*primals)[1]),
        x,
        w,
        b,
    )
    assert wrong.verdict == "mismatch"
    assert wrong["primals[2]"].status == "mismatch"
    assert {wrong["primals[0]"].status, wrong["primals[1]"].status} == {"pass"}


def test_a_vjp_whose_names_merely_resemble_the_convention_is_called_as_usual() -> None:
    def vjp(primals: tuple[np.ndarray, ...], cotangent: np.ndarray) -> tuple[np.ndarray, ...]:
        return (np.cos(primals[0]) * cotangent,)

    assert check_vjp(jnp.sin, vjp, np.array([0.3, -1.2])).verdict == "pass"
