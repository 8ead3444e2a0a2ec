"""Tracing: the loss turned into jaxprs, once per shape pattern where it can be, with caches.

Two kinds of trace:

- `trace_loss`: the loss at concrete shapes (`TracedLoss`), for the compiled
  references (`_references.reference_function`, `check_batch`).
- `program`: the loss, its value and gradient, the same under Monte Carlo
  re-runs, and the loss over a batch of points, traced with *symbolic* shapes
  (`Program`). Every dimension of 2 or more becomes a variable (equal sizes
  share one), so one trace serves every shape with the same pattern, and
  `_interpret` evaluates it with NumPy at each concrete size. A loss that
  cannot be traced symbolically (Python that branches on a size, NumPy
  calls on shapes) is traced at its concrete shapes instead.

Freshness: a user's loss is traced again on every call (a few ms), and the
jaxpr's text and constants key the caches, so a loss that reads a global is
never judged by a stale trace. Only `PURE_LOSSES` are cached by identity.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import math
import warnings
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple, TypeVar

import jax
import jax.extend.core as jcore
import jax.numpy as jnp
import numpy as np
from jax import export

from gradcheck import _caches, _tolerance, mlp, network

#: Traces and compiled references kept. Each compiled entry holds an XLA
#: executable; the bound keeps memory flat when losses keep changing.
COMPILED_CACHE_SIZE = 128

V = TypeVar("V")


def cached(cache: collections.OrderedDict[Hashable, V], key: Hashable, build: Callable[[], V]) -> V:
    """``cache[key]``, built on a miss; at most `COMPILED_CACHE_SIZE` entries, least recently used evicted."""
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = cache[key] = build()
    if len(cache) > COMPILED_CACHE_SIZE:
        cache.popitem(last=False)
    return value


class TracedLoss(NamedTuple):
    """The loss traced for one set of shapes, and a key that identifies it exactly."""

    closed: Any  # jax ClosedJaxpr, inputs: the params' leaves, then the args
    shapes: tuple[tuple[int, ...], ...]
    key: Hashable  # the jaxpr's text and a digest of its constants


#: Losses known to read nothing but their arguments (gradcheck's own models):
#: their traces are cached by identity instead of being redone on every call.
PURE_LOSSES: set[Callable[..., Any]] = {mlp.loss, network.loss}
_PURE_TRACES: dict[Hashable, TracedLoss] = _caches.registered({})

F = TypeVar("F", bound=Callable[..., Any])


def pure_loss(fn: F) -> F:
    """Mark one of gradcheck's own losses as reading nothing but its arguments."""
    PURE_LOSSES.add(fn)
    return fn


def pure_key(loss_fn: Callable[..., Any]) -> Hashable | None:
    """An identity key for a `PURE_LOSSES` function or a partial of one with hashable arguments."""
    func, bound = (
        (loss_fn.func, (loss_fn.args, tuple(sorted(loss_fn.keywords.items()))))
        if isinstance(loss_fn, functools.partial)
        else (loss_fn, ())
    )
    if func not in PURE_LOSSES:
        return None
    try:
        hash(bound)
    except TypeError:
        return None
    return (func, bound)


def trace_loss(
    loss_fn: Callable[..., Any], treedef: Any, shapes: tuple[tuple[int, ...], ...], args: tuple[np.ndarray, ...]
) -> TracedLoss:
    pure = pure_key(loss_fn)
    if pure is None:
        return _trace_concrete(loss_fn, treedef, shapes, args)
    key = (pure, treedef, shapes, tuple((a.shape, str(a.dtype)) for a in args))
    if key not in _PURE_TRACES:
        if len(_PURE_TRACES) >= COMPILED_CACHE_SIZE:
            _PURE_TRACES.clear()
        _PURE_TRACES[key] = _trace_concrete(loss_fn, treedef, shapes, args)
    return _PURE_TRACES[key]


def _trace_concrete(
    loss_fn: Callable[..., Any], treedef: Any, shapes: tuple[tuple[int, ...], ...], args: tuple[np.ndarray, ...]
) -> TracedLoss:
    """Trace `loss_fn` at these concrete shapes now (a few ms), so that nothing is ever stale.

    Caching by the function's identity would freeze any global or attribute
    the loss reads at its first trace, and then pass a gradient that is wrong
    for today's value. The jaxpr and its constants say exactly what is
    computed, so they key the compiled references.
    """
    closed = _trace_jaxpr(loss_fn, treedef, list(shapes), [(a.shape, a.dtype) for a in args])
    return TracedLoss(closed, shapes, jaxpr_key(closed))


def _trace_jaxpr(
    loss_fn: Callable[..., Any], treedef: Any, shapes: list[tuple[Any, ...]], args: list[tuple[tuple[Any, ...], Any]]
) -> Any:
    """``make_jaxpr`` of the loss on abstract inputs; misuse is a `ValueError` naming `loss_fn`."""
    params = jax.tree_util.tree_unflatten(treedef, [jax.ShapeDtypeStruct(s, np.float64) for s in shapes])
    structs = [jax.ShapeDtypeStruct(shape, dtype) for shape, dtype in args]
    try:
        with jax.enable_x64(True):
            # A fresh wrapper each time: JAX caches traces by function identity.
            closed = jax.make_jaxpr(lambda *a: loss_fn(*a))(params, *structs)
            if _narrow_constants(closed) and jaxpr_key(closed) not in _NARROW_BY_DESIGN:
                # A NumPy float64 array the loss closes over comes out float32 when the loss was
                # traced before without x64: JAX keeps that conversion in its caches. Judged
                # against it, a correct float64 closed form would differ by float32 rounding.
                # Clear JAX's caches and trace again; constants still narrow are the user's own.
                jax.clear_caches()
                closed = jax.make_jaxpr(lambda *a: loss_fn(*a))(params, *structs)
                if _narrow_constants(closed):
                    _NARROW_BY_DESIGN.add(jaxpr_key(closed))
                    warnings.warn(NarrowConstants(), stacklevel=5)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # the user's loss: `Untraceable` says what can follow
        raise Untraceable(exc) from exc
    outs = closed.out_avals
    shape = getattr(outs[0], "shape", None) if len(outs) == 1 else None
    if shape is None or not all(isinstance(d, int) and d == 1 for d in shape):
        got = f"shape {shape}" if shape is not None else f"{len(outs)} outputs"
        raise ValueError(f"`loss_fn` must return a scalar, got {got}; reduce it with a sum or mean.")
    return closed


class Untraceable(ValueError):
    """The loss failed under JAX tracing: a forward pass written in NumPy (it converts its inputs to NumPy
    arrays, branches on their values, mixes dtypes as NumPy does), or a loss that fails outright.

    `check_gradients` then evaluates it as it is, on NumPy arrays (`_forward`): if it runs there, its finite
    differences alone are the reference; if not, this error stands.
    """

    def __init__(self, cause: BaseException):
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        self.reason = f"{type(cause).__name__}: {first}"
        super().__init__(
            f"`loss_fn(params, *args)` failed under JAX tracing: {type(cause).__name__}: {cause}. "
            "Write it with jax.numpy, and bind non-array options with functools.partial."
        )


class NarrowConstants(UserWarning):
    """The loss holds float32 (or coarser) constants, so its float64 references are not float64 throughout."""

    def __init__(self) -> None:
        super().__init__(
            "`loss_fn` holds float32 constants: arrays it closes over rather than takes as arguments. If they "
            "are float64 NumPy arrays, JAX converted them to float32 when the loss last ran without x64 and "
            "keeps that copy, and a correct float64 closed form will then differ by float32 rounding. Pass "
            "the data as arguments (check_gradients(loss, grad, params, x, y)), or enable x64 before the "
            "loss first runs."
        )


#: Losses whose narrow (float32, float16) constants survive a clean trace: the user's own data.
_NARROW_BY_DESIGN: set[Hashable] = _caches.registered(set())


def _narrow_constants(closed: Any) -> bool:
    """Whether the jaxpr holds floating constants coarser than float64."""
    return any(
        np.issubdtype(np.asarray(c).dtype, np.floating) and np.asarray(c).dtype != np.float64 for c in closed.consts
    )


def jaxpr_key(closed: Any) -> Hashable:
    """What a ClosedJaxpr computes, and how it is differentiated: its text and a digest of each constant,
    and, where it calls a ``jax.custom_jvp`` or ``jax.custom_vjp`` rule, the same of its gradient's jaxpr.

    A custom rule prints as ``jvp=<lambda>``: two losses with the same primal and different rules have the
    same text, and would share one cached gradient. Their gradients' jaxprs hold each rule's own arithmetic.
    """
    text = (str(closed.jaxpr), _digests(closed.consts))
    if not _calls_custom_rule(closed.jaxpr):
        return text
    rules = _rule_functions(closed.jaxpr)
    if rules:  # the rules' own functions, held by the key: another function is another rule
        return (*text, rules)
    try:  # no function found to name them by: what the gradient computes (a trace, some milliseconds)
        grad = _gradient_jaxpr(closed)
    except Exception:  # noqa: BLE001 - a rule JAX cannot trace here: a key of its own, shared with nothing
        return (*text, object())
    return (*text, str(grad.jaxpr), _digests(grad.consts))


def _rule_functions(jaxpr: Any) -> tuple[Any, ...]:
    """The Python functions behind every custom rule `jaxpr` calls (the user's ``defjvp``/``defvjp``
    rules, or JAX's own), found through the closures of the rule thunks; () if some rule shows none.

    JAX wraps each rule in closures made afresh at every trace (its memoising thunks): those are skipped,
    so that the same rule gives the same key at every trace, and a different rule (another closure made by
    the same factory, say) a different one.
    """
    found: list[Any] = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name.startswith(("custom_jvp_call", "custom_vjp_call")):
            rules = [f for name, value in eqn.params.items() if name != "call_jaxpr" for f in _functions_in(value)]
            if not rules:
                return ()
            found.extend(rules)
    for sub in jcore.subjaxprs(jaxpr):
        inner = _rule_functions(sub)
        if _calls_custom_rule(sub) and not inner:
            return ()
        found.extend(inner)
    return tuple(found)


def _functions_in(value: Any, depth: int = 0, seen: set[int] | None = None) -> list[Any]:
    """Functions reachable from `value` through a WrappedFun's ``.f`` and closures, but JAX's own inner ones."""
    seen = set() if seen is None else seen
    if id(value) in seen or depth > 8:
        return []
    seen.add(id(value))
    found = []
    if hasattr(value, "f") and hasattr(value, "transforms"):  # a linear_util.WrappedFun
        found += _functions_in(value.f, depth + 1, seen)
    if callable(value) and hasattr(value, "__code__"):
        made_by_jax = (getattr(value, "__module__", "") or "").startswith("jax") and "<locals>" in value.__qualname__
        if not made_by_jax:
            found.append(value)
        for cell in getattr(value, "__closure__", None) or ():
            try:
                found += _functions_in(cell.cell_contents, depth + 1, seen)
            except ValueError:  # an empty cell
                continue
    return found


def _digests(consts: Any) -> tuple[Any, ...]:
    return tuple(
        (np.shape(c), str(np.asarray(c).dtype), hashlib.blake2b(np.asarray(c).tobytes(), digest_size=16).digest())
        for c in consts
    )


def _calls_custom_rule(jaxpr: Any) -> bool:
    """Whether `jaxpr`, or any jaxpr inside it, calls a custom differentiation rule."""
    if any(eqn.primitive.name.startswith(("custom_jvp_call", "custom_vjp_call")) for eqn in jaxpr.eqns):
        return True
    return any(_calls_custom_rule(sub) for sub in jcore.subjaxprs(jaxpr))


def _gradient_jaxpr(closed: Any) -> Any:
    """The jaxpr of the gradient of `closed`'s first output (summed) with respect to its floating inputs."""
    evaluate = jcore.jaxpr_as_fun(closed)
    avals = [v.aval for v in closed.jaxpr.invars]
    floating = [i for i, a in enumerate(avals) if jnp.issubdtype(a.dtype, jnp.floating)]

    def gradient(*inputs: Any) -> Any:
        def value(*wrt: Any) -> Any:
            full = list(inputs)
            for i, w in zip(floating, wrt):
                full[i] = w
            return jnp.sum(evaluate(*full)[0])

        return jax.grad(value, argnums=tuple(range(len(floating))))(*(inputs[i] for i in floating))

    return jax.make_jaxpr(gradient)(*(jax.ShapeDtypeStruct(a.shape, a.dtype) for a in avals))


def flat_loss(traced: TracedLoss) -> Callable[..., jax.Array]:
    """The traced loss as a function of one flat float64 vector and the args."""
    shapes = traced.shapes
    offsets = np.cumsum([0, *(math.prod(s) for s in shapes)])
    evaluate = jcore.jaxpr_as_fun(traced.closed)

    def flat_loss(theta: jax.Array, args: tuple[jax.Array, ...]) -> jax.Array:
        parts = [theta[a:b].reshape(s) for a, b, s in zip(offsets[:-1], offsets[1:], shapes)]
        return jnp.asarray(evaluate(*parts, *args)[0]).reshape(())

    return flat_loss


# --- programs: traced once per pattern of shapes, evaluated with NumPy --------


class Program(NamedTuple):
    """The jaxprs the NumPy references run, for one loss and one pattern of shapes.

    Inputs are the parameters' leaves, then the args. Sizes in the shapes may
    be dimension variables (``d0``, ``d1``, ... and ``B``); `Bound.dims` gives
    their values for one call.
    """

    value_and_grad: Any  # (leaves, args) -> (loss, grad of each leaf)
    #: Traced on first use: the same, vmapped over a leading axis of NOISE_SAMPLES on every input (for MCA).
    #: A check that passes the screen (`_references.SCREEN`) never measures the noise, nor traces this.
    noisy: Callable[[], Any]
    batched_loss: Any  # (leaves with a leading axis B, args) -> (B,) losses
    batched_grad: Callable[[], Any]  # traced on first use: (leaves with axis B, args) -> (B,) losses, (B, ...) grads
    stacked: Callable[[], tuple[Any, Any]]  # traced on first use: value_and_grad and the loss, every input with axis B
    key: Hashable


class Bound(NamedTuple):
    """A `Program` and the sizes of its dimension variables for one call."""

    program: Program
    dims: dict[str, int]


#: The dimension variable of the finite-difference points' batch axis.
BATCH = "B"
_PROGRAMS: collections.OrderedDict[Hashable, Program] = _caches.registered(collections.OrderedDict())
#: Pure losses whose symbolic trace failed, by identity and pattern: traced concretely from then on.
_CONCRETE_ONLY: set[Hashable] = _caches.registered(set())


def program(
    loss_fn: Callable[..., Any], treedef: Any, shapes: tuple[tuple[int, ...], ...], args: tuple[np.ndarray, ...]
) -> Bound:
    """The `Program` for `loss_fn` at these shapes, from the cache when its pattern was seen before.

    Raises the `ValueError` of `trace_loss` when the loss cannot be traced.
    """
    concrete = [*shapes, *(a.shape for a in args)]
    pattern, dims = _pattern(concrete)
    dtypes = tuple(str(a.dtype) for a in args)
    pure = pure_key(loss_fn)
    symbolic = pure is None or (pure, pattern) not in _CONCRETE_ONLY
    if pure is not None:
        key: Hashable = (pure, treedef, pattern if symbolic else tuple(concrete), dtypes)
        if key in _PROGRAMS:
            _PROGRAMS.move_to_end(key)
            return Bound(_PROGRAMS[key], dims if symbolic else {})
    closed = None
    if symbolic:
        variables = _scope(len(dims))
        sym_shapes = [tuple(variables[d] if isinstance(d, str) else d for d in s) for s in pattern]
        try:
            closed = _trace_jaxpr(
                loss_fn, treedef, sym_shapes[: len(shapes)], list(zip(sym_shapes[len(shapes) :], dtypes))
            )
        except ValueError:
            if pure is not None:
                _CONCRETE_ONLY.add((pure, pattern))
    if closed is None:
        # Python that needs the sizes themselves (or a failing loss: its concrete trace raises the error).
        variables, sym_shapes, dims = _scope(0), concrete, {}
        closed = _trace_jaxpr(loss_fn, treedef, list(shapes), list(zip(concrete[len(shapes) :], dtypes)))
    # A pure loss is known by identity; a user's loss by what its jaxpr computes.
    key = (pure, treedef, pattern if dims else tuple(concrete), dtypes) if pure is not None else jaxpr_key(closed)
    build = functools.partial(_build, closed, len(shapes), sym_shapes, dtypes, variables[BATCH], key)
    return Bound(cached(_PROGRAMS, key, build), dims)


def _pattern(shapes: list[tuple[int, ...]]) -> tuple[tuple[tuple[int | str, ...], ...], dict[str, int]]:
    """Shapes with each size of 2 or more replaced by a variable, equal sizes by the same one.

    Sizes 0 and 1 stay concrete: broadcasting treats 1 apart, so a trace made
    for a variable (at least 2) would not hold for it.
    """
    names: dict[int, str] = {}
    pattern = tuple(tuple(d if d < 2 else names.setdefault(d, f"d{len(names)}") for d in s) for s in shapes)
    return pattern, {name: size for size, name in names.items()}


@functools.lru_cache(maxsize=64)
def _scope(count: int) -> dict[str, Any]:
    """Dimension variables ``d0 .. d{count-1}`` (each at least 2) and ``B``, in one symbolic scope."""
    names = [f"d{k}" for k in range(count)]
    spec = ", ".join([*names, BATCH])
    dims = export.symbolic_shape(spec, constraints=[f"{n} >= 2" for n in names])
    return dict(zip([*names, BATCH], dims))


def _build(
    closed: Any, n: int, shapes: list[tuple[Any, ...]], arg_dtypes: tuple[str, ...], batch: Any, key: Hashable
) -> Program:
    """Trace the value and gradient and the batched loss, from the loss's own jaxpr; their MCA form, the batched
    gradients and the stacked programs on first use."""
    loss = jcore.jaxpr_as_fun(closed)

    def scalar_loss(*inputs: Any) -> Any:
        return jnp.reshape(loss(*inputs)[0], ())

    def value_and_grad(*inputs: Any) -> tuple[Any, ...]:
        value, grads = jax.value_and_grad(scalar_loss, argnums=tuple(range(n)))(*inputs)
        return (value, *grads)

    dtypes = [np.dtype(np.float64)] * n + [np.dtype(d) for d in arg_dtypes]
    structs = [jax.ShapeDtypeStruct(s, d) for s, d in zip(shapes, dtypes)]
    samples = _tolerance.NOISE_SAMPLES
    stacked = [jax.ShapeDtypeStruct((samples, *s.shape), s.dtype) for s in structs]
    points = [jax.ShapeDtypeStruct((batch, *s.shape), s.dtype) for s in structs[:n]]
    in_axes = (0,) * n + (None,) * len(arg_dtypes)

    @functools.cache
    def batched_grad() -> Any:
        # Needed only where the references still disagree after refinement (kinks within the steps).
        with jax.enable_x64(True):
            return jax.make_jaxpr(jax.vmap(value_and_grad, in_axes=in_axes))(*points, *structs[n:])

    @functools.cache
    def noisy() -> Any:
        with jax.enable_x64(True):
            return jax.make_jaxpr(jax.vmap(value_and_grad))(*stacked)

    @functools.cache
    def stacked_problems() -> tuple[Any, Any]:
        # For `check_batch`: B problems, each with its own data, in one NumPy evaluation.
        every = [jax.ShapeDtypeStruct((batch, *s.shape), s.dtype) for s in structs]
        with jax.enable_x64(True):
            return (
                jax.make_jaxpr(jax.vmap(value_and_grad))(*every),
                jax.make_jaxpr(jax.vmap(scalar_loss))(*every),
            )

    with jax.enable_x64(True):
        return Program(
            value_and_grad=jax.make_jaxpr(value_and_grad)(*structs),
            noisy=noisy,
            batched_loss=jax.make_jaxpr(jax.vmap(scalar_loss, in_axes=in_axes))(*points, *structs[n:]),
            batched_grad=batched_grad,
            stacked=stacked_problems,
            key=key,
        )
