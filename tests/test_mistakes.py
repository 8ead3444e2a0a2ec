"""The seed network's common mistakes are named by recomputation, on every shape and regime they show in."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

from gradcheck import check_gradients, mlp, problems
from gradcheck import strategies as gs
from tests.derivations import MUTANTS

#: Mutant -> the words its diagnosis must hold, in the parameters it breaks.
NAMED = {
    "typo_w1_for_w2": "the source text's typo: w1 where w2 belongs",
    "missing_sigmoid_slope": "sigma'(z1) = a1 (1 - a1) forgotten",
    "slope_of_z": "sigma' taken of z1 instead of a1",
    "tanh_slope": "tanh's derivative 1 - a1^2 where the sigmoid's",
    "z1_for_a1": "z1 where a1 belongs in dL/dw2",
    "bias_mean_wrong_axis": "dL/db1 averaged over the hidden units (axis 1) where the batch belongs",
}
AWAY_FROM_ZERO = st.floats(0.3, 2.0) | st.floats(-2.0, -0.3)


@settings(max_examples=40)
@given(
    name=st.sampled_from(sorted(NAMED)),
    regime=st.sampled_from(["typical", "soft_labels", "large_targets", "duplicated"]),
    size=st.integers(2, 4),
    data=st.data(),
)
def test_each_catalogued_mistake_is_named_on_every_shape_and_regime(
    name: str, regime: str, size: int, data: st.DataObject
) -> None:
    mutant = MUTANTS[name]
    hidden = size if mutant.square else data.draw(st.integers(1, 4), label="hidden")
    prob = data.draw(
        gs.problems(regime=regime, inputs=st.just(size), hidden=st.just(hidden), batch=st.integers(2, 6)),
        label="problem",
    )
    note(prob.describe())
    # No vanishing weight hides the mistake, and no two equal ones make two mistakes coincide (with equal
    # weights and inputs of 0, the typo's dL/db1 is twice the right one, and so is the sum over the hidden units).
    params = mlp.Params(
        *(np.where(np.abs(a) < 0.3, 0.7 + 0.11 * np.arange(a.size).reshape(a.shape), a) for a in prob.params)
    )
    report = check_gradients(
        partial(mlp.loss, task=prob.task), partial(mutant.grad, task=prob.task), params, *prob[1:3]
    )
    # Blamed: a mismatch, or a closed form of the wrong shape (a mean over the wrong axis changes it).
    blamed = [p for p in report.params if p.status in ("mismatch", "error")]
    assume(blamed)  # a mistake the problem cannot show (a zero residual) is no mismatch to name
    for p in blamed:
        assert p.name in mutant.broken
        assert NAMED[name] in (p.diagnosis or ""), (p.name, p.diagnosis, str(report))


@pytest.mark.parametrize("name", sorted(set(MUTANTS) - set(NAMED)))
def test_other_mistakes_are_never_given_a_catalogue_name(name: str) -> None:
    mutant = MUTANTS[name]
    k = 3 if mutant.square else None
    for seed in range(3):
        prob = problems.sample(
            np.random.default_rng([seed, 9]), task="classification", inputs=k or 2, hidden=k or 3, batch=5
        )
        report = check_gradients(
            partial(mlp.loss, task="classification"), partial(mutant.grad, task="classification"), *prob[:3]
        )
        for p in report.params:
            assert not any(words in (p.diagnosis or "") for words in NAMED.values()), (name, p.diagnosis)


def test_the_readme_example_names_the_source_texts_typo() -> None:
    from tests.test_readme import ROOT

    readme = (ROOT / "README.md").read_text()
    assert "b1: likely mistake: the source text's typo: w1 where w2 belongs" in readme


def test_a_search_tells_one_diagnosis_per_parameter_everywhere() -> None:
    """The counterexample's report, the diagnoses and the pytest failure agree, parameter by parameter."""
    from gradcheck._search import search

    result = search(partial(MUTANTS["slope_of_z"].grad, task="regression"), task="regression", examples=40)
    told = result.told()
    assert told is not None
    diagnoses = result.diagnoses()
    for p in told.params:
        if p.status in ("mismatch", "error"):
            assert p.diagnosis == diagnoses[p.name]


# --- where the wrong entries are: real layers' backward passes ----------------------------------


def test_an_inverted_relu_mask_is_named() -> None:
    from gradcheck import check_vjp

    x = np.array([[0.3, -0.5, 1.0], [-1.2, 0.7, -0.1]])
    report = check_vjp(lambda x: jnp.maximum(x, 0.0), lambda primals, c: (c * (primals[0] <= 0),), x)
    assert report.verdict == "mismatch"
    assert "a mask inverted" in (report.params[0].diagnosis or ""), str(report)


def test_softmax_without_the_one_hot_is_one_entry_per_row() -> None:
    labels = np.array([2, 0, 1, 1, 0])

    def loss(p: dict, labels: np.ndarray):  # type: ignore[no-untyped-def,type-arg]
        z = p["z"]
        return jnp.mean(jax.nn.logsumexp(z, axis=1) - z[jnp.arange(5), labels])

    def forgot_one_hot(p: dict, labels: np.ndarray) -> dict:  # type: ignore[type-arg]
        e = np.exp(p["z"] - p["z"].max(axis=1, keepdims=True))
        return {"z": e / e.sum(axis=1, keepdims=True) / 5}  # softmax - one_hot, without the - one_hot

    z = np.random.default_rng(0).normal(size=(5, 3))
    report = check_gradients(loss, forgot_one_hot, {"z": z}, labels)
    diagnosis = report["z"].diagnosis or ""
    assert "one entry per row is wrong, at columns [2, 0, 1, 1, 0], each off by 0.2" in diagnosis, str(report)


def test_a_hessian_without_its_ridge_term_is_the_diagonal() -> None:
    from gradcheck import check_hessian

    x = np.random.default_rng(1).normal(size=(6, 3))

    def loss(w: np.ndarray, x: np.ndarray):  # type: ignore[no-untyped-def]
        return jnp.sum((x @ w) ** 2) / 2 + 0.5 * 0.3 * jnp.sum(w**2)

    report = check_hessian(loss, lambda w, x: x.T @ x, np.array([0.2, -0.1, 0.4]), x)  # lambda I forgotten
    diagnosis = " ".join(p.diagnosis or "" for p in report.params)
    assert "only the diagonal is wrong; each off by -0.3: a term 0.3 I missing" in diagnosis, str(report)


def test_a_stride_in_the_indexing_is_named() -> None:
    from gradcheck import check_vjp

    def every_other(x: np.ndarray):  # type: ignore[no-untyped-def]
        return 3.0 * x[::2]

    def vjp(primals: tuple[np.ndarray], c: np.ndarray) -> tuple[np.ndarray]:
        dx = np.zeros_like(primals[0])
        dx[::2] = 3.0 * c
        dx[1::2] = 3.0 * c[: dx[1::2].size]  # written to the odd entries too: the stride ignored
        return (dx,)

    report = check_vjp(every_other, vjp, np.linspace(-1.0, 1.0, 8))
    assert "every 2nd entry is wrong" in (report.params[0].diagnosis or ""), str(report)


def test_a_ratio_close_to_one_is_shown_with_its_digits() -> None:
    from gradcheck._diagnose import _ratio_range

    assert _ratio_range(np.array([1.000001, 2.0]), np.array([1.0, 1.0])) == "[1 + 1.0e-06, 2]"


def test_a_closed_form_that_two_mistakes_fit_is_not_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """The evidence must single out one mistake: where two fit alike, neither is named (the report shows the
    general diagnosis instead of a coincidence)."""
    from gradcheck import _mistakes

    twin = _mistakes.MISTAKES[1]._replace(words="a twin of the missing slope")
    monkeypatch.setattr(_mistakes, "MISTAKES", (*_mistakes.MISTAKES, twin))
    prob = problems.sample(np.random.default_rng([0, 9]), task="classification", inputs=2, hidden=3, batch=5)
    grad = partial(MUTANTS["missing_sigmoid_slope"].grad, task="classification")
    report = check_gradients(partial(mlp.loss, task="classification"), grad, *prob[:3])
    for p in report.params:
        assert "forgotten in the hidden layer" not in (p.diagnosis or "")
        assert "twin" not in (p.diagnosis or "")
