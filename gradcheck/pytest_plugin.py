"""pytest plugin: turn a hand-derived derivative into a test, at one point or as a property.

Registered through the ``pytest11`` entry point, so it is active wherever
gradcheck is installed. It provides the fixture ``gradcheck_property``::

    def test_my_derivation(gradcheck_property):
        gradcheck_property(my_grads, task="classification", examples=100)

where ``my_grads(params, x, y, *, task)`` has the signature of
`gradcheck.mlp.closed_form_gradients`. Hypothesis searches problems in every
regime; on a mismatch the test fails with `GradientMismatch`, whose message
shows the minimal counterexample, the report table, the likely mistake, and
the Taylor-remainder evidence.

For derivatives beyond a scalar loss's gradient it provides one fixture per
check, ``gradcheck_vjp``, ``gradcheck_jvp``, ``gradcheck_jacobian``,
``gradcheck_hessian`` and ``gradcheck_custom_rule`` (each a
`DerivativeCheck`)::

    def test_softmax_vjp(gradcheck_vjp):
        gradcheck_vjp(softmax, softmax_vjp, z)  # at one point
        gradcheck_vjp.property(softmax, softmax_vjp, shapes=[(3, 5)])  # at points Hypothesis draws
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradcheck import _derivatives, _search, mlp
from gradcheck._check import assert_gradients, check_gradients
from gradcheck._report import RIGHT, GradientMismatch, ImpreciseGradient, ReferencesDisagree, Report, misuse_exception
from gradcheck.strategies import ELEMENT_BOUND


def check_property(
    grad_fn: Callable[..., Any],
    *,
    task: mlp.Task | str = "both",
    examples: int = 100,
    seed: int = 0,
    strict: bool = False,
) -> None:
    """Search for a problem on which `grad_fn` fails; raise `GradientMismatch` if one is found.

    A right derivation whose float64 evaluation loses digits on some problem
    (verdict "imprecise") passes; with `strict` it raises `ImpreciseGradient`
    with that problem's report.

    A wrong call (`grad_fn` raises on a typical problem, or returns no
    gradient) raises `TypeError` or `ValueError` instead, as
    `assert_gradients` does, and no search is run.

    This is what the fixture ``gradcheck_property`` returns.

    - `grad_fn`: ``grad_fn(params, x, y, *, task)``, the signature of
      `gradcheck.mlp.closed_form_gradients`.
    - `task`: "regression", "classification" or "both".
    - `examples`: problems searched per task (a positive integer).
    - `seed`: seeds the search; the same seed searches the same problems.

    Examples:
        >>> from gradcheck import mlp
        >>> check_property(mlp.closed_form_gradients, task="regression", examples=3)  # passes: returns None
    """
    __tracebackhide__ = True  # pytest shows the user's test line and the report, not gradcheck's source
    if task not in (*mlp.TASKS, "both"):
        raise ValueError(f"`task` must be one of {(*mlp.TASKS, 'both')}, got {task!r}.")
    if not isinstance(examples, int) or examples < 1:
        raise ValueError(f"`examples` must be a positive integer, got {examples!r}.")
    tasks: list[mlp.Task] = list(mlp.TASKS) if task == "both" else [task]  # type: ignore[list-item]
    for t in tasks:
        result = _search.search(partial(grad_fn, task=t), task=t, examples=examples, random_seed=seed)
        if result.ok:
            if strict and result.imprecise is not None:
                prob, report = result.imprecise
                raise ImpreciseGradient(report, context=f"task {t!r}, at the problem {prob.describe()} (strict):")
            continue
        if result.error is not None:  # a wrong call, not a wrong gradient
            assert result.report is not None
            context = f"`grad_fn` could not be checked for task {t!r}; no search was run."
            if "unexpected keyword argument 'task'" in result.error:
                context += (
                    " gradcheck_property checks the built-in network's gradient, grad_fn(params, x, y, *, task). "
                    "For your own model's loss, use the fixture gradcheck_gradient: "
                    "gradcheck_gradient.property(loss_fn, grad_fn, primals=gradcheck.strategies.shaped_like(example)) "
                    '(docs/pytest.md, "Any other loss").'
                )
            raise misuse_exception(result.report, context) from result.report.cause
        assert result.counterexample is not None
        assert result.report is not None
        prob = result.counterexample
        lines = [f"first failure at problem {result.examples}; minimal counterexample ({prob.describe()}):"]
        if result.flaky:
            lines.append(_search.FLAKY)
        for name, value in prob.arrays().items():
            lines.append(f"  {name} = {np.array2string(np.asarray(value), separator=', ')}")
        if result.report.verdict == "error":  # it raised there: a wrong call on that problem, not a wrong gradient
            lines[0] = f"`grad_fn` raised at problem {result.examples}; minimal problem ({prob.describe()}):"
            raise misuse_exception(result.report, "\n".join(lines)) from result.report.cause
        lines.append(f"diagnosis, confirmed on {_search.GENERIC_PROBLEM} where it fails too:")
        lines += [f"  {n}: {d}" for n, d in result.diagnoses().items()]
        raise GradientMismatch(result.told() or result.report, context="\n".join(lines))


@pytest.fixture
def gradcheck_property() -> Callable[..., None]:
    """``gradcheck_property(grad_fn, task=..., examples=..., seed=..., strict=...)``: a property test of `grad_fn`."""
    return check_property


# --- VJPs, JVPs, Jacobians, Hessians and custom rules --------------------------------------

#: Points a property draws by default: a few dozen, since each point is one
#: full check (two references, several random directions).
DERIVATIVE_EXAMPLES = 25


@dataclass(frozen=True, repr=False)
class DerivativeCheck:
    """A fixture for one derivative check: call it at a point, or `property` over drawn points.

    Calling it is the check's ``assert_`` twin (`gradcheck.assert_vjp` for
    ``gradcheck_vjp``): it returns the `Report` on a pass and raises
    `GradientMismatch` or `ReferencesDisagree` (with the report) otherwise,
    and `TypeError` or `ValueError` for a wrong call.

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from gradcheck.pytest_plugin import JVP
        >>> JVP(jnp.sin, lambda p, t: np.cos(p[0]) * t[0], np.array([0.5, -1.0])).ok
        True
        >>> JVP.property(jnp.sin, lambda p, t: np.cos(p[0]) * t[0], shapes=[(3,)], examples=3)  # passes: None
    """

    #: The check, as `gradcheck` exports it (`gradcheck.check_vjp`), and its ``assert_`` twin.
    check: Callable[..., Report]
    asserting: Callable[..., Report]
    #: The names of the functions it takes before the point: ("f", "vjp_fn").
    functions: tuple[str, ...]
    #: The names of the point's arguments, for the counterexample: "primals" or ("params", "args").
    point: tuple[str, ...] = ("primals",)

    def __repr__(self) -> str:
        point = "params, *args" if self.point == ("params", "args") else "*primals"
        return f"gradcheck_{self.check.__name__.removeprefix('check_')}({', '.join(self.functions)}, {point})"

    def __call__(self, *args: Any, **kwargs: Any) -> Report:
        __tracebackhide__ = True  # pytest shows the user's test line, not this one
        return self.asserting(*args, **kwargs)

    def property(
        self,
        *functions: Callable[..., Any],
        shapes: Any = None,
        primals: st.SearchStrategy[Any] | None = None,
        elements: st.SearchStrategy[float] | None = None,
        examples: int = DERIVATIVE_EXAMPLES,
        seed: int = 0,
        **options: Any,
    ) -> None:
        """Check at `examples` points drawn by Hypothesis; raise on the minimal failing one.

        - `functions`: what the check takes before the point, such as
          ``f, vjp_fn`` (``f`` alone for `gradcheck_custom_rule`).
        - `shapes`: one shape per argument of the point (a tuple of
          positive integers, or a strategy for one, such as
          ``hypothesis.extra.numpy.array_shapes()``), or a strategy that
          draws that whole list, for shapes that depend on each other. Arrays
          of float64 are drawn with these shapes.
        - `primals`: instead of `shapes`, a strategy that draws the point
          itself, a tuple of the check's arguments after the functions
          (pytrees, labels, anything).
        - `elements`: a strategy for the arrays' entries (default: finite
          floats in [-3, 3]); only with `shapes`.
        - `examples`: points drawn (a positive integer).
        - `seed`: seeds the draws and the check; the same seed draws the same points.
        - `options`: passed to the check (``directions=`` for VJPs and JVPs).

        Raises:
            GradientMismatch: at the minimal point Hypothesis shrank to, with
                that point and the report.
            ReferencesDisagree: the references disagreed at every point
                drawn, so nothing was judged.
            TypeError, ValueError: a wrong call: a bad argument here, or the
                hand-written function raised (or returned no derivative) at
                the first point.
        """
        __tracebackhide__ = True  # pytest shows the user's test line, not this one
        label = f"`gradcheck_{self.check.__name__.removeprefix('check_')}.property`"
        if len(functions) != len(self.functions):
            raise TypeError(
                f"{label} takes {len(self.functions)} function{'s' if len(self.functions) > 1 else ''} "
                f"({', '.join(self.functions)}) before its keyword arguments, got {len(functions)}."
            )
        for name, fn in zip(self.functions, functions):
            if not callable(fn):
                raise TypeError(f"`{name}` must be a function, got {type(fn).__name__} {fn!r}.")
        if not isinstance(examples, int) or isinstance(examples, bool) or examples < 1:
            raise ValueError(f"`examples` must be a positive integer, got {examples!r}.")
        points = _points(shapes, primals, elements)
        outcome = _search_points(
            lambda point: self.check(*functions, *point, seed=seed, **options), points, examples, seed
        )
        if outcome.misuse is not None:
            checked = ", ".join(self.functions[1:] or self.functions)
            context = f"{label} could not check {checked} at the first point drawn; no search was run."
            raise misuse_exception(outcome.misuse, context) from outcome.misuse.cause
        if outcome.failure is None:
            if outcome.judged == 0 and outcome.doubt is not None:
                raise ReferencesDisagree(outcome.doubt)
            return
        point, report = outcome.failure
        lines = [f"first failure at point {outcome.first}; minimal counterexample:"]
        if outcome.flaky:
            lines.append("note: the same point passed once and failed once: the function is not deterministic")
        lines += [f"  {name} = {_describe(value)}" for name, value in zip(_names(self.point, len(point)), point)]
        raise GradientMismatch(report, context="\n".join(lines))


VJP = DerivativeCheck(_derivatives.check_vjp, _derivatives.assert_vjp, ("f", "vjp_fn"))
JVP = DerivativeCheck(_derivatives.check_jvp, _derivatives.assert_jvp, ("f", "jvp_fn"))
JACOBIAN = DerivativeCheck(_derivatives.check_jacobian, _derivatives.assert_jacobian, ("f", "jac_fn"))
HESSIAN = DerivativeCheck(
    _derivatives.check_hessian, _derivatives.assert_hessian, ("loss_fn", "hess_fn"), ("params", "args")
)
CUSTOM_RULE = DerivativeCheck(_derivatives.check_custom_rule, _derivatives.assert_custom_rule, ("f",))
#: The gradient of any loss: ``gradcheck_gradient(loss_fn, grad_fn, params, *args)``, and its property over
#: problems ``(params, *args)`` drawn from ``primals=`` (`gradcheck.strategies.shaped_like(example)` draws them
#: like an example) or ``shapes=`` (one array per argument).
GRADIENT = DerivativeCheck(check_gradients, assert_gradients, ("loss_fn", "grad_fn"), ("params", "args"))


@pytest.fixture
def gradcheck_gradient() -> DerivativeCheck:
    """``gradcheck_gradient(loss_fn, grad_fn, params, *args)``, and ``.property(loss_fn, grad_fn,
    primals=shaped_like(example))``: the gradient of any loss (your own model), see `DerivativeCheck`."""
    return GRADIENT


@pytest.fixture
def gradcheck_vjp() -> DerivativeCheck:
    """``gradcheck_vjp(f, vjp_fn, *primals)``, and ``.property(f, vjp_fn, shapes=...)``: see `DerivativeCheck`."""
    return VJP


@pytest.fixture
def gradcheck_jvp() -> DerivativeCheck:
    """``gradcheck_jvp(f, jvp_fn, *primals)``, and ``.property(f, jvp_fn, shapes=...)``: see `DerivativeCheck`."""
    return JVP


@pytest.fixture
def gradcheck_jacobian() -> DerivativeCheck:
    """``gradcheck_jacobian(f, jac_fn, *primals)``, and ``.property(f, jac_fn, shapes=...)``: see `DerivativeCheck`."""
    return JACOBIAN


@pytest.fixture
def gradcheck_hessian() -> DerivativeCheck:
    """``gradcheck_hessian(loss_fn, hess_fn, params, *args)``, and ``.property(loss_fn, hess_fn, shapes=...)``."""
    return HESSIAN


@pytest.fixture
def gradcheck_custom_rule() -> DerivativeCheck:
    """``gradcheck_custom_rule(f, *primals)``, and ``.property(f, shapes=...)``: see `DerivativeCheck`."""
    return CUSTOM_RULE


@dataclass
class _Outcome:
    first: int = 0  # the point (counted from 1) that failed first
    judged: int = 0  # points where the references agreed
    failure: tuple[tuple[Any, ...], Report] | None = None
    misuse: Report | None = None
    doubt: Report | None = None
    flaky: bool = False


def _search_points(
    check: Callable[[tuple[Any, ...]], Report], points: st.SearchStrategy[tuple[Any, ...]], examples: int, seed_: int
) -> _Outcome:
    """Check at drawn points; keep the minimal failure. A wrong call at the first point stops the search."""
    outcome = _Outcome()

    def counted(point: tuple[Any, ...]) -> Report:
        report = check(point)
        if report.verdict == "inconclusive":
            outcome.doubt = report
        elif report.verdict in RIGHT:
            outcome.judged += 1
        return report

    hunt = _search._hunt(points, counted, examples, seed_, first_error_is_misuse=True)
    outcome.first, outcome.misuse, outcome.flaky = hunt.first_failure, hunt.misuse, hunt.flaky
    if hunt.failing:
        outcome.failure = hunt.found()
    return outcome


def _points(shapes: Any, primals: Any, elements: Any) -> st.SearchStrategy[tuple[Any, ...]]:
    """The strategy of points from `property`'s `shapes` or `primals`, its arguments checked now."""
    if (shapes is None) == (primals is None):
        raise ValueError(
            "give either `shapes` (one array shape per argument) or `primals` (a strategy for the arguments), "
            f"not {'both' if shapes is not None else 'neither'}."
        )
    if elements is not None and not isinstance(elements, st.SearchStrategy):
        raise TypeError(f"`elements` must be a strategy for floats or None, got {elements!r}.")
    if primals is not None:
        if elements is not None:
            raise ValueError(
                "`elements` applies to arrays drawn from `shapes`; with `primals`, draw the entries there."
            )
        if not isinstance(primals, st.SearchStrategy):
            raise TypeError(
                f"`primals` must be a Hypothesis strategy for a tuple of the arguments, got {type(primals).__name__}; "
                "wrap fixed values in hypothesis.strategies.just, or give `shapes`."
            )
        return primals.map(lambda p: tuple(p) if isinstance(p, (tuple, list)) else (p,))
    floats = (
        st.floats(-ELEMENT_BOUND, ELEMENT_BOUND, allow_nan=False, allow_infinity=False, allow_subnormal=False)
        if elements is None
        else elements
    )
    if isinstance(shapes, st.SearchStrategy):
        return shapes.flatmap(lambda drawn: _arrays(_shape_list(drawn, "`shapes` drew"), floats))
    return _arrays(_shape_list(shapes, "`shapes` must be"), floats)


def _shape_list(shapes: Any, what: str) -> list[Any]:
    if isinstance(shapes, (str, bytes)) or not isinstance(shapes, Sequence) or not shapes:
        raise ValueError(f"{what} a non-empty list of shapes, one per argument, got {shapes!r}; e.g. shapes=[(3, 4)].")
    for i, shape in enumerate(shapes):
        if isinstance(shape, st.SearchStrategy):
            continue
        ok = isinstance(shape, tuple) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape)
        if not ok:
            hint = f"; for one argument of shape {tuple(shapes)} write shapes=[{tuple(shapes)}]" if i == 0 else ""
            raise ValueError(
                f"`shapes[{i}]` must be a tuple of positive integers or a strategy for one, got {shape!r}{hint}."
            )
    return list(shapes)


def _arrays(shapes: list[Any], elements: st.SearchStrategy[float]) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.tuples(*(hnp.arrays(np.float64, shape, elements=elements) for shape in shapes))


def _names(point: tuple[str, ...], n: int) -> list[str]:
    """``primals[0], primals[1]`` or ``params, args[0]``: how the check's docs call the point's arguments."""
    if point == ("primals",):
        return [f"primals[{i}]" for i in range(n)]
    return [point[0], *(f"{point[1]}[{i}]" for i in range(n - 1))]


def _describe(value: Any) -> str:
    """An array as NumPy prints it; a pytree as ``{path: array, ...}``."""

    def array(leaf: Any) -> str:
        return np.array2string(np.asarray(leaf), separator=", ")

    if isinstance(value, np.ndarray | float | int):
        return array(value)
    leaves = jax.tree_util.tree_flatten_with_path(value)[0]
    return (
        "{"
        + ", ".join(f"{jax.tree_util.keystr(path, simple=True, separator='.')}: {array(leaf)}" for path, leaf in leaves)
        + "}"
    )
