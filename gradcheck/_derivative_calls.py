"""Calling a hand-written derivative and telling its report: the parts `_derivatives`' checks share.

The arguments checked (`_primals`, `_callable`), the random directions drawn (`_random_like`), the shapes of
a function's output (`_shape_of`, for a NumPy function too), a wrong call named (`_course_backward`,
`_as_tuple`, `_called_as`), and one report from several directions (`_worst_of`).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradcheck import _diagnose, _validate
from gradcheck._check import SCREENED_NOTE, Judged
from gradcheck._inputs import own_frames, user_traceback
from gradcheck._report import SEVERITY, ParamResult, Report


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
        trace = f"{user_traceback(report.cause)}\n" if own_frames(report.cause) else ""
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
