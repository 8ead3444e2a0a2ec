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

import dataclasses
import inspect
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.extend.core as jcore
import jax.numpy as jnp
import numpy as np

from gradcheck import _diagnose, _interpret, _validate
from gradcheck._check import SCREENED_NOTE, Judged, judged
from gradcheck._inputs import describe_exception, own_frames
from gradcheck._report import SEVERITY, GradientMismatch, ParamResult, ReferencesDisagree, Report, misuse_exception

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


# --- helpers ------------------------------------------------------------------


def _sum_over_outputs(
    f: Callable[..., Any],
    in_tree: Any,
    out_leaves: list[Any],
    rows: Callable[[int, int], Any],
    move: Callable[[Any], list[Any]],
) -> Any:
    """``sum over outputs i of f(move(row_i))_i``: each output element sees only its own row.

    ``rows(k, size)`` gives output leaf k's rows (a leading axis of `size`),
    ``move(row)`` the inputs' leaves moved by one row. The gradient of this
    sum in row i is the derivative of output element i alone, so a Jacobian
    (rows: perturbations of the inputs) or a JVP (rows: scalings of a
    tangent) is one gradient, judged elementwise by `check_gradients`.
    """
    total: Any = 0.0
    for k, out_k in enumerate(out_leaves):
        size = int(np.prod(out_k.shape))

        def element(row: Any, unit: Any, k: int = k) -> Any:
            moved = jax.tree_util.tree_unflatten(in_tree, move(row))
            return jnp.vdot(jax.tree_util.tree_leaves(f(*moved))[k].reshape(-1), unit)

        total = total + jnp.sum(jax.vmap(element)(rows(k, size), jnp.eye(size)))
    return total


def _callable(label: str, fn: Any) -> None:
    if not callable(fn):
        raise TypeError(f"`{label}` must be a function, got {type(fn).__name__} {fn!r}.")


def _primals(primals: Sequence[Any]) -> tuple[Any, ...]:
    if not primals:
        raise ValueError("no `primals` given; pass the point to check at, e.g. check_vjp(f, vjp_fn, x).")
    return tuple(
        jax.tree_util.tree_map(lambda a, i=i: _validate.real_finite(f"primals[{i}]", a).astype(np.float64), p)
        for i, p in enumerate(primals)
    )


def _random_like(tree: Any, count: int, seed: int) -> list[Any]:
    """`count` standard normal pytrees shaped like `tree` (arrays or ShapeDtypeStructs), from `seed`."""
    rng = np.random.default_rng([seed, 0x565450])
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return [
        jax.tree_util.tree_unflatten(treedef, [rng.standard_normal(np.shape(x)) for x in leaves]) for _ in range(count)
    ]


#: The first parameter of a course's layer backward, ``backward(dout, cache)`` (CS231n's convention): the
#: upstream gradient. With a second parameter named `CACHE_NAMES`, it is that convention, not a VJP.
UPSTREAM_NAMES = frozenset(
    {"dout", "dy", "dz", "d_out", "dup", "grad_out", "grad_output", "upstream", "dl_dout", "delta"}
)
CACHE_NAMES = frozenset({"cache", "ctx", "saved", "saved_tensors"})


def _course_backward(vjp_fn: Callable[..., Any]) -> str | None:
    """What to write instead, if `vjp_fn` has the signature of a layer's ``backward(dout, cache)``; else None.

    `check_vjp` calls ``vjp_fn(primals, cotangent)``: called so, such a function takes the primals for the
    upstream gradient and the cotangent for its cache, and returns arrays of the wrong shape or raises.
    """
    try:
        names = [
            p.name.lower()
            for p in inspect.signature(vjp_fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):  # a builtin, or a callable with no signature
        return None
    if len(names) != 2 or names[0] not in UPSTREAM_NAMES or names[1] not in CACHE_NAMES:
        return None
    name = getattr(vjp_fn, "__name__", "backward")
    return (
        f"`vjp_fn` is `{name}({names[0]}, {names[1]})`, a layer's backward pass in the course convention (the "
        f"upstream gradient, then the cache that its forward pass returned), but check_vjp calls "
        f"vjp_fn(primals, cotangent). Wrap it with the forward pass that makes the cache, e.g. for "
        f"`out, cache = forward(x, w, b)`:\n"
        f"    check_vjp(lambda x, w, b: forward(x, w, b)[0],\n"
        f"              lambda primals, dout: {name}(dout, forward(*primals)[1]),\n"
        f"              x, w, b)\n"
        f"(f must be written with jax.numpy for autodiff; a NumPy forward is checked by finite differences alone)."
    )


def _as_tuple(value: Any, label: str, n: int | None) -> tuple[Any, ...]:
    out = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if n is not None and len(out) != n:
        raise ValueError(f"`{label}` returned {len(out)} cotangents, one per primal expected ({n}).")
    return out


def _as_matrix(found: Judged, label: str, outputs: int) -> Report:
    """The report, with an unclassified mismatch of the Jacobian `label` diagnosed as a matrix (outputs by inputs)."""
    row = found.report[label]
    if row.diagnosis is None or not row.diagnosis.startswith("unclassified") or label not in found.arrays:
        return found.report
    shape = _diagnose.matrix(*(a.reshape(outputs, -1) for a in found.arrays[label]))
    if shape is None:
        return found.report
    params = tuple(dataclasses.replace(p, diagnosis=shape) if p.name == label else p for p in found.report.params)
    return dataclasses.replace(found.report, params=params)


def _shape_of(f: Callable[..., Any], inputs: tuple[Any, ...]) -> Any:
    """``jax.eval_shape(f, *inputs)``; for a function written in NumPy, which JAX cannot trace, the shapes of
    what it returns on the inputs themselves (the check then takes its finite differences alone: `_forward`)."""
    with jax.enable_x64(True):  # shapes only; outside x64 JAX would cache float32 copies of f's constants
        try:
            return jax.eval_shape(f, *inputs)
        except KeyboardInterrupt:
            raise
        except Exception as traced:  # noqa: BLE001 - the user's function: run as it is, or its error told
            try:
                value = f(*inputs)
            except Exception:  # noqa: BLE001 - it fails on NumPy arrays too: JAX's error, told plainly
                raise ValueError(
                    f"`f` failed under JAX tracing ({type(traced).__name__}: {str(traced).splitlines()[0]}) and on "
                    "the primals themselves; check that it takes the primals as given."
                ) from traced
            return jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(np.shape(a), np.float64), value)


def _output(f: Callable[..., Any], inputs: tuple[Any, ...]) -> list[np.ndarray]:
    """The leaves of ``f(*inputs)``, in float64."""
    with jax.enable_x64(True):
        return [np.asarray(o, dtype=np.float64) for o in jax.tree_util.tree_leaves(f(*inputs))]


def _worst_of(
    checks: list[Judged], what: str, call: str, context: Callable[[str], tuple[_diagnose.Term, ...]]
) -> Report:
    """One report from several random directions: each parameter at its worst direction.

    A wrong call (the hand-written function raised, or returned no
    derivative) is one error, told as `call`, not a row per direction. A
    mismatch that one direction leaves unclassified is diagnosed from all of
    them (`_diagnose.across`), with `context(name)`'s arrays to name a
    missing term by.
    """
    reports = [_called_as(c.report, call) for c in checks]
    failed = next((r for r in reports if r.verdict == "error"), None)
    if failed is not None:
        return failed
    rank = {s: i for i, s in enumerate(SEVERITY)}
    worst: list[ParamResult] = []
    chosen: dict[str, int] = {}
    for name in (p.name for p in reports[0].params):
        k, best = min(
            enumerate(r[name] for r in reports),
            key=lambda kp: (rank[kp[1].status], -np.nan_to_num(kp[1].tolerance_used, nan=0.0)),
        )
        if (
            best.diagnosis is not None
            and best.diagnosis.startswith("unclassified")
            and all(name in c.arrays for c in checks)
        ):
            cf, ad, tol = zip(*(c.arrays[name] for c in checks))
            shape = _diagnose.across(cf, ad, tol, what, context(name))
            best = best if shape is None else dataclasses.replace(best, diagnosis=shape)
        worst.append(best)
        chosen[name] = k
    failing = next((r for r in reports if r.verdict == "mismatch"), reports[0])
    # The screen's note only if every direction was screened: the rows may come from any of them.
    screened = all(SCREENED_NOTE in r.notes for r in reports)
    notes = (
        f"checked along {len(reports)} random {what}s; each row is its worst",
        *(n for n in failing.notes if (n not in reports[0].notes or failing is reports[0]) and n != SCREENED_NOTE),
        *((SCREENED_NOTE,) if screened else ()),
    )
    return Report(
        tuple(worst),
        precision=failing.precision,
        notes=notes,
        taylor_rate=failing.taylor_rate,
        references=failing.references,
    )


def _called_as(report: Report, call: str) -> Report:
    """`report` told with the hand-written function's name and call (`vjp_fn`), not `grad_fn`'s."""
    name = call.split("(")[0]
    params = tuple(
        dataclasses.replace(p, message=p.message.replace("`grad_fn`", f"`{name}`")) if p.message else p
        for p in report.params
    )
    report = dataclasses.replace(report, params=params)
    if report.error is None:
        return report
    if report.cause is not None:
        trace = f"{describe_exception(report.cause)}\n" if own_frames(report.cause) else ""
        error = f"`{name}` raised {type(report.cause).__name__}: {report.cause}\n{trace}"
    else:  # it returned something that is not a derivative; the check's own words, renamed
        error = report.error.replace("`grad_fn`", f"`{name}`").split("\n`" + name + "` is called as")[0] + "\n"
    return dataclasses.replace(report, error=f"{error}`{name}` is called as {call}.", function=name)


def _named(label: str, value: Any) -> dict[str, Any] | None:
    """``{label: value}``, the one entry of a derivative with one array; None stays None (a missing `return`)."""
    return None if value is None else {label: value}


def _renamed(report: Report, rule: str) -> Report:
    params = tuple(dataclasses.replace(p, name=f"{rule}: {p.name}") for p in report.params)
    return dataclasses.replace(report, params=params, notes=tuple(f"{rule}: {n}" for n in report.notes))


def _rule_name(eqn: Any) -> str:
    info = getattr(eqn.params["call_jaxpr"].jaxpr, "debug_info", None)
    return str(getattr(info, "func_name", None) or eqn.primitive.name)


def _flat(h: Any, sizes: list[int]) -> np.ndarray:
    """A Hessian in jax.hessian's layout (or already flat) as one (P, P) matrix."""
    if isinstance(h, np.ndarray) and h.shape == (sum(sizes), sum(sizes)):
        return np.asarray(h, dtype=np.float64)
    blocks, n = jax.tree_util.tree_leaves(h), len(sizes)
    rows = [
        np.concatenate([np.reshape(blocks[i * n + j], (sizes[i], sizes[j])) for j in range(n)], axis=1)
        for i in range(n)
    ]
    return np.concatenate(rows, axis=0).astype(np.float64)


def _with_symmetry_note(report: Report, hessian: Any, sizes: list[int]) -> Report:
    """A note when the closed-form Hessian (as `hess_fn` returned it) is not symmetric (a Hessian always is)."""
    try:
        h = _flat(hessian, sizes)
    except Exception:  # noqa: BLE001 - a malformed Hessian is already reported by the check
        return report
    gap = np.abs(h - h.T)
    scale = float(np.abs(h).max(initial=0.0))
    if gap.max(initial=0.0) > 64 * np.finfo(float).eps * max(scale, np.finfo(float).tiny):
        i, j = (int(v) for v in np.unravel_index(np.argmax(gap), gap.shape))
        note = f"the closed form is not symmetric: |H[{i}, {j}] - H[{j}, {i}]| = {gap[i, j]:.3e} (a Hessian is)"
        return dataclasses.replace(report, notes=(*report.notes, note))
    return report
