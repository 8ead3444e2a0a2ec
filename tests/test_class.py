"""A class in one run: every submission gets the verdict and report it gets alone, and passing searches are shared.

A search that passes draws exactly the problems the first passing search drew
(Hypothesis is seeded), so the later submissions of a class replay them against
references taken once (`_search._replayed`, `_references.evaluation`). These
tests hold that sharing to what matters: the same problems, the same verdicts
and reports, and a failure still searched and shrunk as if alone.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest
from hypothesis import strategies as st

from gradcheck import _caches, _references, _search, cli, mlp
from gradcheck import strategies as gs
from gradcheck._references import _cost
from gradcheck._report import ParamResult, Report
from tests.test_cli import CORRECT_SUBMISSION, RAISES, SIGN_FLIPPED

#: Right, but its sigmoid 0.5 (1 + tanh(z/2)) cancels for z << 0: IMPRECISE on a confident problem.
TANH_SIGMOID = CORRECT_SUBMISSION.replace("1 / (1 + np.exp(-np.clip(z2, -500, 500)))", "0.5 * (1 + np.tanh(0.5 * z2))")
#: Wrong only on batches of three or more (the third sample's error is dropped): found past the first problems.
LATE_MISTAKE = CORRECT_SUBMISSION.replace("d2 = a2 - y", "d2 = (a2 - y) * (np.arange(len(y)) < 2)")
#: Wrong for one task only.
REGRESSION_ONLY_WRONG = CORRECT_SUBMISSION.replace(
    "d2 = a2 - y", "d2 = (a2 - y) * (1.5 if task == 'regression' else 1.0)"
)


@pytest.fixture
def big_class(tmp_path: Path) -> Path:
    """Eight students: right ones around wrong, broken, imprecise and partly wrong ones."""
    files = {
        "a_right.py": CORRECT_SUBMISSION,
        "b_sign.py": SIGN_FLIPPED,
        "c_right_again.py": CORRECT_SUBMISSION,
        "d_raises.py": RAISES,
        "e_tanh.py": TANH_SIGMOID,
        "f_late.py": LATE_MISTAKE,
        "g_broken.py": "import not_a_module_anywhere\n",
        "h_half.py": REGRESSION_ONLY_WRONG,
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def _graded(spec: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, Any]]]:
    code = cli.main(["check", spec, "--examples", "25", "--json", "--regimes", "typical,confident,saturated"])
    return code, json.loads(capsys.readouterr().out)["submissions"]


def _what_matters(sub: dict[str, Any]) -> dict[str, Any]:
    """A submission's JSON without the numbers that depend on the reference path taken (its last digits)."""
    tasks = {}
    for task, r in sub["tasks"].items():
        report = r["report"]
        tasks[task] = {
            **{k: r[k] for k in ("verdict", "error", "examples", "flaky", "diagnoses", "counterexample", "reproduce")},
            "imprecise": r["imprecise"]["problem"] if r["imprecise"] else None,
            "params": [(p["name"], p["status"], p["index"]) for p in report["params"]] if report else None,
        }
    return {"submission": sub["submission"], "verdict": sub["verdict"], "error": sub["error"], "tasks": tasks}


def test_a_class_gets_the_verdicts_and_reports_each_submission_gets_alone(
    big_class: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alone = []
    for path in sorted(big_class.glob("*.py")):
        _caches.clear()  # as a process of its own would run it
        alone += _graded(f"{path}:grads", capsys)[1]
    _caches.clear()
    code, together = _graded(f"{big_class}/*.py:grads", capsys)
    assert [_what_matters(s) for s in together] == [_what_matters(s) for s in alone]
    verdicts = {Path(s["submission"]).name.split(".")[0]: s["verdict"] for s in together}
    assert verdicts == {
        "a_right": "pass",
        "b_sign": "mismatch",
        "c_right_again": "pass",
        "d_raises": "error",
        "e_tanh": "imprecise",
        "f_late": "mismatch",
        "g_broken": "error",
        "h_half": "mismatch",
    }
    assert code == cli.EXIT_MISMATCH
    late = next(s for s in together if "f_late" in s["submission"])["tasks"]["regression"]
    assert late["examples"] > 1, "the late mistake is found after problems that pass, as the search finds it alone"


def test_a_passing_search_replays_exactly_the_problems_that_a_search_draws() -> None:
    _caches.clear()
    grad = partial(mlp.closed_form_gradients, task="classification")
    first = _search.search(grad, task="classification", examples=30, random_seed=3, regime="any")
    assert first.ok
    (recorded,) = [v for k, v in _search._DRAWN.items() if k[:4] == ("classification", "any", 30, 3)]
    # What Hypothesis draws for a search that passes, seen afresh by a probe of its own:
    strategy = gs.problems(
        task="classification", regime="any", inputs=_search.SIZES, hidden=_search.SIZES, batch=_search.BATCHES
    )
    seen: list[Any] = []

    def passing(prob: Any) -> Report:
        seen.append(prob)
        return Report((ParamResult("w1", (1,), "pass"),))

    _search._hunt(strategy, passing, 30, 3)
    assert len(recorded) == len(seen) == first.examples == 30
    for mine, theirs in zip(recorded, seen):
        for a, b in zip([*mine.params, mine.x, mine.y], [*theirs.params, theirs.x, theirs.y]):
            np.testing.assert_array_equal(a, b)


def test_a_replayed_search_shares_the_references_and_a_failing_one_still_searches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _caches.clear()
    right = partial(mlp.closed_form_gradients, task="regression")

    def wrong_b2(params: mlp.Params, x: np.ndarray, y: np.ndarray) -> mlp.Params:
        g = right(params, x, y)
        return g._replace(b2=g.b2 * 1.001)

    alone = _search.search(wrong_b2, task="regression", examples=20, random_seed=1)
    _caches.clear()
    first = _search.search(right, task="regression", examples=24, random_seed=1)
    taken: list[int] = []
    fresh = _references._fresh_evaluation
    monkeypatch.setattr(_references, "_fresh_evaluation", lambda *a: taken.append(1) or fresh(*a))
    again = _search.search(right, task="regression", examples=24, random_seed=1)
    assert again.ok
    assert again.examples == first.examples == 24
    assert taken == [], "the second passing search takes no reference afresh (a large_batch problem's neither)"
    monkeypatch.undo()
    after = _search.search(wrong_b2, task="regression", examples=20, random_seed=1)
    assert after.verdict == alone.verdict == "mismatch"
    assert after.examples == alone.examples
    assert after.diagnoses() == alone.diagnoses()
    assert after.counterexample is not None
    assert alone.counterexample is not None
    mine, theirs = jax.tree_util.tree_leaves(after.counterexample), jax.tree_util.tree_leaves(alone.counterexample)
    assert len(mine) == len(theirs)
    for u, v in zip(mine, theirs):
        np.testing.assert_array_equal(u, v)


def test_a_regime_strategy_named_by_its_values_is_shared_and_one_named_by_an_object_is_not() -> None:
    assert _search._search_key("regression", st.sampled_from(("saturated", "confident")), 10, 0) is not None
    unnamed = st.just(object())  # its text names an object (at 0x...): nothing to share it by
    assert _search._search_key("regression", unnamed, 10, 0) is None


def test_clear_empties_every_registered_cache() -> None:
    _search.search(partial(mlp.closed_form_gradients, task="regression"), task="regression", examples=3)
    assert _references._EVALUATIONS
    assert _search._DRAWN
    _caches.clear()
    assert not _references._EVALUATIONS
    assert not _search._DRAWN
    assert not _cost.ONE_PROBLEM.spent
