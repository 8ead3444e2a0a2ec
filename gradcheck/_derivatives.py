"""Beyond scalar losses: hand-written VJPs, JVPs, Jacobians, Hessians and JAX custom rules.

Each check is turned into the gradient of a scalar function, so that it is
judged by `check_gradients` itself: float64 autodiff, Monte Carlo noise,
Richardson finite differences, kinks, diagnosis and the Taylor test, with no
second copy of that machinery.

- **VJP** ``vjp_fn(primals, c)`` is the gradient of ``<c, f(primals)>``, for
  random cotangents c.
- **Jacobian** ``J[i, j] = df_i/dx_j`` is the gradient of
  ``E -> sum_i f(x + E[i])_i`` at E = 0, where row ``E[i]`` moves the inputs
  of output i alone: every entry of J is an element of that gradient, so the
  report names the output and input element of a wrong entry.
- **JVP** ``J t`` is the gradient of ``e -> sum_i f(x + e_i t)_i`` at e = 0,
  for random tangents t: one element per output element.
- **Hessian** is the Jacobian of the gradient (autodiff differentiates the
  gradient, the finite differences difference it).
- **Custom rules** (``jax.custom_vjp``, ``jax.custom_jvp``): each rule, at the
  point where `f` calls it, against autodiff of its own primal
  implementation with the rule removed.

Every check returns a `Report` and has an ``assert_`` twin.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import jax
import jax.extend.core as jcore
import jax.numpy as jnp
import numpy as np

from gradcheck import _diagnose, _validate
from gradcheck._check import Judged, judged
from gradcheck._derivative_calls import (  # the checks' shared parts
    _as_matrix,
    _as_tuple,
    _callable,
    _called_as,
    _course_backward,
    _named,
    _output,
    _primals,
    _random_like,
    _renamed,
    _rule_name,
    _shape_of,
    _sum_over_outputs,
    _with_symmetry_note,
    _worst_of,
)
from gradcheck._references import _interpret
from gradcheck._report import GradientMismatch, ParamResult, ReferencesDisagree, Report, misuse_exception

#: Random cotangents (VJP) or tangents (JVP) each check draws: a wrong rule is
#: caught along almost every direction, and a few guard against an unlucky one.
DIRECTIONS = 3


def check_vjp(
    f: Callable[..., Any], vjp_fn: Callable[..., Any], *primals: Any, directions: int = DIRECTIONS, seed: int = 0
) -> Report:
    """Check a hand-written VJP: ``vjp_fn(primals, cotangent)`` returns one cotangent per primal.

    It is the gradient of ``<cotangent, f(*primals)>``, checked for `directions`
    random cotangents against `jax.vjp` in float64 and finite differences.

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from gradcheck import check_vjp
        >>> def softmax_vjp(primals, c):
        ...     (z,) = primals
        ...     s = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        ...     return (s * (c - np.dot(c, s)),)
        >>> check_vjp(lambda z: jnp.exp(z) / jnp.exp(z).sum(), softmax_vjp, np.array([0.5, -1.0, 2.0])).ok
        True
    """
    _callable("f", f)
    _callable("vjp_fn", vjp_fn)
    inputs = _primals(primals)
    keys = [f"primals[{i}]" for i in range(len(inputs))]
    course = _course_backward(vjp_fn)
    if course is not None:  # a layer's backward(dout, cache): a wrong call, told with the wrapper that fits
        shapes = [np.shape(x) for x in inputs]
        return Report(tuple(ParamResult(k, s, "error") for k, s in zip(keys, shapes)), error=course, function="vjp_fn")
    with jax.enable_x64(True):  # shapes only; outside x64 JAX would cache float32 copies of f's constants
        cotangents = _random_like(_shape_of(f, inputs), directions, seed)
    c_tree = jax.tree_util.tree_structure(cotangents[0])

    # The cotangent is an argument, not a constant: the loss traces to the same program for every one.
    def loss(p: dict[str, Any], *c: Any) -> Any:
        out = jax.tree_util.tree_leaves(f(*(p[k] for k in keys)))
        return sum(jnp.vdot(ci, o) for ci, o in zip(c, out))

    def grad(p: dict[str, Any], *c: Any) -> dict[str, Any]:
        cotangent = jax.tree_util.tree_unflatten(c_tree, list(c))
        return dict(zip(keys, _as_tuple(vjp_fn(tuple(p[k] for k in keys), cotangent), "vjp_fn", len(keys))))

    def check(c: Any) -> Judged:
        return judged(loss, grad, dict(zip(keys, inputs)), *jax.tree_util.tree_leaves(c), seed=seed, penalties=False)

    def context(name: str) -> tuple[_diagnose.Term, ...]:  # the output where shaped like this input, and the input
        x = inputs[keys.index(name)]
        out = [_diagnose.Term("the output f(x)", "f(x)", o) for o in _output(f, inputs) if o.shape == np.shape(x)]
        return (*out[:1], _diagnose.Term(f"the input `{name}`", f"`{name}`", np.asarray(x)))

    return _worst_of([check(c) for c in cotangents], "cotangent", "vjp_fn(primals, cotangent)", context)


def check_jvp(
    f: Callable[..., Any], jvp_fn: Callable[..., Any], *primals: Any, directions: int = DIRECTIONS, seed: int = 0
) -> Report:
    """Check a hand-written JVP: ``jvp_fn(primals, tangents)`` returns the output tangent.

    Each output element of ``J t`` is checked, for `directions` random tangents
    t, against autodiff and finite differences of ``e -> f(x + e t)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from gradcheck import check_jvp
        >>> x = np.array([0.3, -2.0, 1.5])
        >>> check_jvp(jnp.tanh, lambda p, t: (1 - np.tanh(p[0]) ** 2) * t[0], x).ok
        True
    """
    _callable("f", f)
    _callable("jvp_fn", jvp_fn)
    inputs = _primals(primals)
    with jax.enable_x64(True):  # shapes only; outside x64 JAX would cache float32 copies of f's constants
        out = _shape_of(f, inputs)
    out_leaves, out_tree = jax.tree_util.tree_flatten(out)

    in_leaves, in_tree = jax.tree_util.tree_flatten(inputs)
    n = len(in_leaves)

    # The point and the tangent are arguments, not constants: one program serves every tangent and point.
    def loss(e: Any, *data: Any) -> Any:
        x, t = data[:n], data[n:]
        rows = jax.tree_util.tree_leaves(e)
        return _sum_over_outputs(
            f, in_tree, out_leaves, lambda k, _: rows[k].reshape(-1), lambda s: [xi + s * ti for xi, ti in zip(x, t)]
        )

    def grad(e: Any, *data: Any) -> Any:
        # The point from the data (not a copy kept aside): called again in wider arithmetic, `jvp_fn` sees it so.
        x = tuple(jax.tree_util.tree_unflatten(in_tree, list(data[:n])))
        t = jax.tree_util.tree_unflatten(in_tree, list(data[n:]))
        returned = jvp_fn(x, tuple(t))
        if (
            jax.tree_util.treedef_is_leaf(out_tree)
            and isinstance(returned, (tuple, list))
            and len(returned) == 2
            and all(np.shape(r) == out_leaves[0].shape for r in returned)
        ):  # (f(x), J t), as jax.jvp returns them: the tangent is the second
            return returned[1]
        return returned

    def check(t: Any) -> Judged:
        zeros = jax.tree_util.tree_unflatten(out_tree, [np.zeros(o.shape) for o in out_leaves])
        data = (*in_leaves, *jax.tree_util.tree_leaves(t))
        if jax.tree_util.treedef_is_leaf(out_tree):  # one array out: name it
            return judged(
                lambda e, *d: loss(e["jvp"], *d),
                lambda e, *d: _named("jvp", grad(None, *d)),
                {"jvp": zeros},
                *data,
                seed=seed,
                penalties=False,
            )
        return judged(loss, grad, zeros, *data, seed=seed, penalties=False)

    def context(name: str) -> tuple[_diagnose.Term, ...]:  # the output, for one array out
        return (_diagnose.Term("the output f(x)", "f(x)", _output(f, inputs)[0]),) if name == "jvp" else ()

    return _worst_of(
        [check(t) for t in _random_like(inputs, directions, seed + 1)],
        "tangent",
        "jvp_fn(primals, tangents)",
        context,
    )


def check_jacobian(
    f: Callable[..., Any], jac_fn: Callable[..., Any], *primals: Any, seed: int = 0, _label: str = "jacobian"
) -> Report:
    """Check a hand-written Jacobian: ``jac_fn(*primals)`` in `jax.jacrev`'s layout.

    For one array input and one array output that is an array of shape
    ``out.shape + in.shape``; for several primals, a tuple over them.

    Examples:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from gradcheck import check_jacobian
        >>> A, x = np.array([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]]), np.array([0.2, -0.7])
        >>> check_jacobian(lambda x: A @ jnp.tanh(x), lambda x: A * (1 - np.tanh(x) ** 2), x).ok
        True
    """
    _callable("f", f)
    _callable("jac_fn", jac_fn)
    inputs = _primals(primals)
    argnums: Any = 0 if len(inputs) == 1 else tuple(range(len(inputs)))
    with jax.enable_x64(True):
        layout = jax.eval_shape(jax.jacrev(f, argnums=argnums), *inputs)
        out_leaves = jax.tree_util.tree_leaves(jax.eval_shape(f, *inputs))
    in_leaves, in_tree = jax.tree_util.tree_flatten(inputs)
    blocks, block_tree = jax.tree_util.tree_flatten(layout)
    n_in = len(in_leaves)

    # The point is an argument, not a constant: one program serves every point of these shapes.
    def loss(jacobian: Any, *x: Any) -> Any:
        e = jax.tree_util.tree_leaves(jacobian)

        def rows(k: int, size: int) -> list[Any]:  # row i of every block: output i's perturbation of each input
            return [e[k * n_in + j].reshape(size, *in_leaves[j].shape) for j in range(n_in)]

        return _sum_over_outputs(f, in_tree, out_leaves, rows, lambda d: [xi + di for xi, di in zip(x, d)])

    zeros = jax.tree_util.tree_unflatten(block_tree, [np.zeros(b.shape) for b in blocks])
    call = "jac_fn(*primals)" if _label == "jacobian" else "hess_fn(params, *args)"

    def at(*x: Any) -> Any:
        """`jac_fn` at the point `x` (the flat inputs): where the check calls it again in wider arithmetic."""
        return jac_fn(*jax.tree_util.tree_unflatten(in_tree, list(x)))

    if jax.tree_util.treedef_is_leaf(block_tree):  # one array in, one out: name it
        found = judged(
            lambda e, *x: loss(e[_label], *x),
            lambda *_: _named(_label, jac_fn(*inputs)),
            {_label: zeros},
            *in_leaves,
            seed=seed,
            penalties=False,
            rerun=lambda _, *x: _named(_label, at(*x)),
        )
        report = _as_matrix(found, _label, int(np.prod(out_leaves[0].shape)))
    else:
        report = judged(
            loss, lambda *_: jac_fn(*inputs), zeros, *in_leaves, seed=seed, rerun=lambda _, *x: at(*x)
        ).report
    return _called_as(report, call)


def check_hessian(
    loss_fn: Callable[..., Any], hess_fn: Callable[..., Any], params: Any, *args: Any, seed: int = 0
) -> Report:
    """Check a hand-written Hessian: ``hess_fn(params, *args)`` in `jax.hessian`'s layout, or a flat (P, P) matrix.

    The references are autodiff of the gradient and finite differences of
    the gradient. The report says when the closed form is not symmetric.

    Examples:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from gradcheck import check_hessian
        >>> X, y = np.array([[1.0, 0.5], [-0.3, 2.0], [0.7, -1.0]]), np.array([1.0, 0.0, 1.0])
        >>> def loss(w, X, y):
        ...     z = X @ w
        ...     return jnp.mean(jax.nn.softplus(z) - y * z)
        >>> def hessian(w, X, y):
        ...     s = 1 / (1 + np.exp(-X @ w))
        ...     return X.T @ (X * (s * (1 - s))[:, None]) / len(y)
        >>> check_hessian(loss, hessian, np.array([0.1, -0.2]), X, y).ok
        True
    """
    _callable("loss_fn", loss_fn)
    _callable("hess_fn", hess_fn)
    data = tuple(_validate.data_argument(f"args[{i}]", a) for i, a in enumerate(args))
    leaves, tree = jax.tree_util.tree_flatten(params)
    sizes = [int(np.size(leaf)) for leaf in leaves]

    def gradient(p: Any) -> Any:
        return jax.grad(loss_fn)(p, *data)

    returned: list[Any] = []

    def hessian(p: Any) -> Any:
        h = hess_fn(p, *data)
        returned.append(h)
        total = sum(sizes)
        if isinstance(h, np.ndarray) and h.shape == (total, total):
            # A flat (P, P) matrix: cut it into jax.hessian's blocks.
            offsets = np.cumsum([0, *sizes])
            shapes = [np.shape(leaf) for leaf in leaves]
            rows = [
                jax.tree_util.tree_unflatten(
                    tree, [h[a:b, c:d].reshape(*si, *sj) for (c, d), sj in zip(itertools.pairwise(offsets), shapes)]
                )
                for (a, b), si in zip(itertools.pairwise(offsets), shapes)
            ]
            return jax.tree_util.tree_unflatten(tree, rows)
        return h

    report = check_jacobian(gradient, hessian, params, seed=seed, _label="hessian")
    return _with_symmetry_note(report, returned[0], sizes) if returned else report  # the float64 call's


def check_custom_rule(f: Callable[..., Any], *primals: Any, seed: int = 0) -> Report:
    """Check every `jax.custom_vjp` and `jax.custom_jvp` rule that `f` calls, at the point where it calls it.

    Each rule is judged against autodiff of its own primal implementation,
    with the rule removed, and against finite differences; the report names
    each rule by its function's name ("logsumexp: primals[0]").

    Examples:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from gradcheck import check_custom_rule
        >>> @jax.custom_jvp
        ... def safe_norm(x):
        ...     return jnp.sqrt(jnp.sum(x**2))
        >>> @safe_norm.defjvp
        ... def _(primals, tangents):
        ...     (x,), (t,) = primals, tangents
        ...     n = safe_norm(x)
        ...     return n, jnp.where(n > 0, jnp.vdot(x, t) / n, 0.0)
        >>> check_custom_rule(lambda x: safe_norm(x) ** 2, np.array([3.0, -4.0])).ok
        True
    """
    _callable("f", f)
    inputs = _primals(primals)
    flat, _ = jax.tree_util.tree_flatten(inputs)
    with jax.enable_x64(True):
        closed = jax.make_jaxpr(lambda *a: f(*jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(inputs), a)))(
            *flat
        )
    calls: list[tuple[Any, list[np.ndarray]]] = []
    _interpret.evaluate(closed, flat, watch=lambda eqn, invals: calls.append((eqn, invals)))
    if not calls:
        raise ValueError(
            "`f` calls no jax.custom_vjp or jax.custom_jvp function; check_custom_rule checks such rules. "
            "For a hand-written derivative of f itself, use check_vjp, check_jvp or check_jacobian."
        )
    reports = []
    for eqn, invals in calls:
        name = _rule_name(eqn)
        primal = jcore.jaxpr_as_fun(eqn.params["call_jaxpr"])  # the implementation, its rule removed

        def with_rule(*a: Any, eqn: Any = eqn) -> Any:  # the call itself: autodiff goes through its rule
            params = eqn.primitive.get_bind_params(
                eqn.params
            )  # the rule's own functions, as jax.core.eval_jaxpr rebinds them
            out = eqn.primitive.bind(*a, **params)
            return out if eqn.primitive.multiple_results else [out]

        def rule_vjp(p: tuple[Any, ...], c: Any, with_rule: Any = with_rule) -> tuple[Any, ...]:
            with jax.enable_x64(True):
                _, pullback = jax.vjp(with_rule, *p)
                return tuple(np.asarray(g) for g in pullback(list(_as_tuple(c, "cotangent", None))))

        report = check_vjp(primal, rule_vjp, *invals, seed=seed)
        reports.append(_renamed(report, name))
    merged = [p for r in reports for p in r.params]
    notes = tuple(n for r in reports for n in r.notes)
    rate = next((r.taylor_rate for r in reports if r.verdict == "mismatch"), float("nan"))
    return Report(tuple(merged), notes=notes, taylor_rate=rate, references=reports[0].references)


def _asserting(check: Callable[..., Report]) -> Callable[..., Report]:
    def assert_(*args: Any, **kwargs: Any) -> Report:
        __tracebackhide__ = True  # pytest shows the caller's line, not this one
        report = check(*args, **kwargs)
        if report.verdict == "error":  # a wrong call, not a wrong derivative
            raise misuse_exception(report) from report.cause
        if report.verdict == "mismatch":
            raise GradientMismatch(report)
        if report.verdict == "inconclusive":
            raise ReferencesDisagree(report)
        return report

    assert_.__name__ = check.__name__.replace("check_", "assert_")
    assert_.__doc__ = (
        f"Like `{check.__name__}`, but raise `GradientMismatch` or `ReferencesDisagree` unless it passes, "
        "and `TypeError` or `ValueError` for a wrong call (the hand-written function raised, or returned "
        "no derivative), with its traceback."
    )
    return assert_


assert_vjp = _asserting(check_vjp)
assert_jvp = _asserting(check_jvp)
assert_jacobian = _asserting(check_jacobian)
assert_hessian = _asserting(check_hessian)
assert_custom_rule = _asserting(check_custom_rule)
