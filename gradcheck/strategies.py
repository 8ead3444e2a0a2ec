"""Hypothesis strategies for the seed network's problems, and for any loss's (`shaped_like`).

Modelled on `hypothesis.extra.numpy`: bounds are keyword-only, every
argument takes a value or a strategy, and bad arguments raise
`hypothesis.errors.InvalidArgument` naming the argument when the strategy is
built. Shrinking heads for small sizes and for 0 and 1, so a failing example
comes out minimal.

Regimes are defined once, in `gradcheck.problems`; these strategies draw the
base values and let `problems.make_problem` apply the regime.
"""

from __future__ import annotations

import functools
from typing import Any, Literal, TypeVar

import jax
import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra import numpy as hnp

from gradcheck import activations, heads, mlp, network
from gradcheck import problems as _problems

__all__ = ["inputs", "network_problems", "networks", "params", "problems", "shaped_like", "targets"]

T = TypeVar("T")

_TASKS = st.sampled_from(mlp.TASKS)
_SMALL = st.integers(1, 3)
_BATCH = st.integers(1, 4)
_ACTIVATIONS = st.sampled_from(tuple(activations.ACTIVATIONS))
_CANONICAL_HEADS = st.sampled_from(heads.CANONICAL)

#: Default range of parameter and input entries. Wide enough to reach
#: moderately saturated units, small enough that "typical" stays typical.
ELEMENT_BOUND = 3.0


def _strategy(name: str, value: Any, check: Any = None) -> st.SearchStrategy[Any]:
    """`value` as a strategy; a plain value is validated by `check` now."""
    if isinstance(value, st.SearchStrategy):
        return value
    if check is not None:
        problem = check(value)
        if problem:
            raise InvalidArgument(f"`{name}` {problem}, got {value!r}.")
    return st.just(value)


def _size(value: Any) -> str | None:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1
    return None if ok else "must be a positive integer or a strategy for one"


@functools.cache
def _default_elements() -> st.SearchStrategy[float]:
    return st.floats(-ELEMENT_BOUND, ELEMENT_BOUND, allow_nan=False, allow_infinity=False, allow_subnormal=False)


#: Entries of targets: regression's, and hard labels.
_REGRESSION_TARGETS = st.floats(-2.0, 2.0, allow_subnormal=False)
_LABELS = st.sampled_from([0.0, 1.0])
#: Seeds of the NumPy generator that draws a large batch.
_SEEDS = st.integers(0, 2**32 - 1)
#: The entries of ``u``, the base draw of a problem's targets.
_UNIT = st.floats(0.0, 1.0, allow_subnormal=False)


@functools.lru_cache(maxsize=4096)
def _arrays(shape: tuple[int, ...], elements: st.SearchStrategy[float]) -> st.SearchStrategy[np.ndarray]:
    """``hnp.arrays(float64, shape, elements)``, one strategy object per shape and elements: building and
    validating a strategy costs more than drawing from it, and a search draws the same few shapes again."""
    return hnp.arrays(np.float64, shape, elements=elements)


@functools.lru_cache(maxsize=1024)
def _params_of(i: int, h: int, entries: st.SearchStrategy[float]) -> st.SearchStrategy[mlp.Params]:
    """`params` at concrete sizes, one strategy object per sizes and elements (as `_arrays`)."""
    return st.builds(
        mlp.Params, _arrays((h, i), entries), _arrays((h,), entries), _arrays((1, h), entries), _arrays((1,), entries)
    )


def _elements(value: Any) -> st.SearchStrategy[float]:
    if value is None:
        return _default_elements()
    if not isinstance(value, st.SearchStrategy):
        raise InvalidArgument(f"`elements` must be a strategy for floats or None, got {value!r}.")
    return value


def params(
    *, inputs: int | st.SearchStrategy[int] = 2, hidden: int | st.SearchStrategy[int] = 3, elements: Any = None
) -> st.SearchStrategy[mlp.Params]:
    """Parameters of the seed network.

    - `inputs`: number of input features (positive int, or a strategy).
    - `hidden`: number of hidden units (positive int, or a strategy).
    - `elements`: strategy for the entries; default floats in [-3, 3].

    Examples:
        >>> p = params(inputs=2, hidden=3).example()
        >>> [a.shape for a in p]
        [(3, 2), (3,), (1, 3), (1,)]
    """
    sizes = st.tuples(_strategy("inputs", inputs, _size), _strategy("hidden", hidden, _size))
    entries = _elements(elements)

    return sizes.flatmap(lambda shape: _params_of(shape[0], shape[1], entries))


def inputs(
    *, batch: int | st.SearchStrategy[int] = 4, features: int | st.SearchStrategy[int] = 2, elements: Any = None
) -> st.SearchStrategy[np.ndarray]:
    """Input matrices x of shape (batch, features).

    - `batch`: number of samples N (positive int, or a strategy).
    - `features`: number of input features I (positive int, or a strategy).
    - `elements`: strategy for the entries; default floats in [-3, 3].

    Examples:
        >>> inputs(batch=5, features=2).example().shape
        (5, 2)
    """
    shape = st.tuples(_strategy("batch", batch, _size), _strategy("features", features, _size))
    return hnp.arrays(np.float64, shape, elements=_elements(elements))


def targets(
    task: str | st.SearchStrategy[str], *, batch: int | st.SearchStrategy[int] = 4, soft: bool = False
) -> st.SearchStrategy[np.ndarray]:
    """Targets y of shape (batch,) for `task`.

    - `task`: "regression" (reals in [-2, 2]) or "classification" (labels 0/1,
      or probabilities in [0, 1] when `soft`), or a strategy for one.
    - `batch`: number of samples N (positive int, or a strategy).
    - `soft`: soft labels for classification.

    Examples:
        >>> set(targets("classification", batch=6).example()) <= {0.0, 1.0}
        True
    """
    task_st = _strategy("task", task, lambda t: None if t in mlp.TASKS else f"must be one of {mlp.TASKS}")
    if not isinstance(soft, bool):
        raise InvalidArgument(f"`soft` must be True or False, got {soft!r}.")
    n_st = _strategy("batch", batch, _size)

    def build(args: tuple[str, int]) -> st.SearchStrategy[np.ndarray]:
        t, n = args
        if t == "regression":
            return _arrays((n,), _REGRESSION_TARGETS)
        return _arrays((n,), _UNIT if soft else _LABELS)

    return st.tuples(task_st, n_st).flatmap(build)


def problems(
    *,
    task: str | st.SearchStrategy[str] = _TASKS,
    regime: str | st.SearchStrategy[str] = "typical",
    inputs: int | st.SearchStrategy[int] = _SMALL,
    hidden: int | st.SearchStrategy[int] = _SMALL,
    batch: int | st.SearchStrategy[int] = _BATCH,
    elements: Any = None,
) -> st.SearchStrategy[_problems.Problem]:
    """Whole problems (params, x, y, task) in a numerical regime.

    - `task`: "regression" or "classification", or a strategy (default both).
    - `regime`: one of `gradcheck.problems.REGIMES`, "any" for a mixture, or a
      strategy. "large_batch" fixes the batch at 2,048 rows, drawn from a
      seeded NumPy generator so that generation stays fast.
    - `inputs`, `hidden`, `batch`: sizes (positive ints, or strategies).
    - `elements`: strategy for parameter and input entries.

    Examples:
        >>> prob = problems(task="regression", regime="perfect_fit").example()
        >>> prob.regime
        'perfect_fit'
    """
    task_st = _strategy("task", task, lambda t: None if t in mlp.TASKS else f"must be one of {mlp.TASKS}")
    valid = (*_problems.REGIMES, "any")
    regime_st = _strategy("regime", regime, lambda r: None if r in valid else f"must be one of {valid}")
    regime_st = regime_st.flatmap(lambda r: st.sampled_from(_problems.REGIMES) if r == "any" else st.just(r))
    sizes = st.tuples(
        _strategy("inputs", inputs, _size), _strategy("hidden", hidden, _size), _strategy("batch", batch, _size)
    )
    entries = _elements(elements)

    @st.composite
    def build(draw: st.DrawFn) -> _problems.Problem:
        t, r = draw(task_st), draw(regime_st)
        i, h, n = draw(sizes)
        p = draw(_params_of(i, h, entries))
        if r == "large_batch":
            rng = np.random.default_rng(draw(_SEEDS))
            x, u = rng.normal(size=(_problems.LARGE_BATCH, i)), rng.random(_problems.LARGE_BATCH)
        else:
            x = draw(_arrays((n, i), entries))
            u = draw(_arrays((n,), _UNIT))
        return _problems.make_problem(p, x, u, task=t, regime=r)

    return build()


# --- the general network ------------------------------------------------------


def networks(
    *,
    activation: str | st.SearchStrategy[str] = _ACTIVATIONS,
    head: str | st.SearchStrategy[str] = _CANONICAL_HEADS,
    max_depth: int = 3,
    max_width: int = 3,
) -> st.SearchStrategy[network.Network]:
    """Architectures: 1 to `max_depth` weight layers of 1 to `max_width` units.

    - `activation`: a hidden activation name, or a strategy (default any).
    - `head`: an output head name, or a strategy (default any canonical head).
    - `max_depth`, `max_width`: upper bounds (positive ints). Shrinks towards
      one layer of one unit; a softmax head always gets at least 2 outputs.

    Examples:
        >>> networks(head="softmax").example().head
        'softmax'
    """
    act_st = _strategy(
        "activation",
        activation,
        lambda a: None if a in activations.ACTIVATIONS else f"must be one of {tuple(activations.ACTIVATIONS)}",
    )
    head_st = _strategy("head", head, lambda h: None if h in heads.HEADS else f"must be one of {tuple(heads.HEADS)}")
    for name, value in (("max_depth", max_depth), ("max_width", max_width)):
        if _size(value):
            raise InvalidArgument(f"`{name}` must be a positive integer, got {value!r}.")
    layers = st.integers(1, max_depth).flatmap(
        lambda d: st.lists(st.integers(1, max_width), min_size=d + 1, max_size=d + 1)
    )

    def build(sizes: list[int], activation: str, head: str) -> network.Network:
        if head.startswith("softmax"):  # a softmax needs two classes at least
            sizes = [*sizes[:-1], max(sizes[-1], 2)]
        return network.Network(tuple(sizes), activation=activation, head=head)

    return st.builds(build, layers, act_st, head_st)


def network_problems(
    *,
    net: network.Network | st.SearchStrategy[network.Network] | None = None,
    regime: str | st.SearchStrategy[str] = "typical",
    batch: int | st.SearchStrategy[int] = _BATCH,
    elements: Any = None,
) -> st.SearchStrategy[_problems.NetProblem]:
    """Whole problems for a general network, in a regime of `problems.NET_REGIMES`.

    - `net`: a `network.Network`, or a strategy for one (default `networks()`).
    - `regime`: one of `gradcheck.problems.NET_REGIMES`, "any", or a strategy.
    - `batch`: number of samples N (positive int, or a strategy).
    - `elements`: strategy for parameter and input entries.

    Examples:
        >>> prob = network_problems(net=network.Network((2, 3, 3), head="softmax")).example()
        >>> bool((prob.y.sum(axis=-1) == 1).all())
        True
    """
    if net is None:
        net = networks()
    net_st = _strategy(
        "net", net, lambda n: None if isinstance(n, network.Network) else "must be a network.Network or a strategy"
    )
    valid = (*_problems.NET_REGIMES, "any")
    regime_st = _strategy("regime", regime, lambda r: None if r in valid else f"must be one of {valid}")
    regime_st = regime_st.flatmap(lambda r: st.sampled_from(_problems.NET_REGIMES) if r == "any" else st.just(r))
    n_st = _strategy("batch", batch, _size)
    entries = _elements(elements)

    @st.composite
    def build(draw: st.DrawFn) -> _problems.NetProblem:
        n_, r, n = draw(net_st), draw(regime_st), draw(n_st)
        p = {k: draw(_arrays(tuple(shape), entries)) for k, shape in n_.shapes.items()}
        x = draw(_arrays((n, n_.layers[0]), entries))
        u = draw(_arrays((n, n_.layers[-1]), _UNIT))
        return _problems.make_net_problem(n_, p, x, u, regime=r)

    return build()


# --- any loss: problems shaped like an example -------------------------------


def shaped_like(example: Any, *, elements: Any = None) -> st.SearchStrategy[Any]:
    """Values with the structure, shapes and dtypes of `example`, a pytree of arrays.

    ``gradcheck check --loss ... --example FILE:NAME`` draws its problems
    ``(params, *args)`` with it. Each leaf is drawn with the example's shape
    and dtype:

    - floating leaves: finite floats in [-B, B], B the larger of 3 and the
      leaf's largest magnitude (the example's own scale), or from `elements`;
    - integer leaves (class labels, indices): integers between the leaf's
      smallest and largest value, so that labels stay valid labels;
    - boolean leaves (masks): booleans.

    - `example`: a pytree (tuple, dict, NamedTuple) of real or boolean arrays.
    - `elements`: strategy for the floating entries, or None for the default.

    Examples:
        >>> import numpy as np
        >>> drawn = shaped_like(({"w": np.zeros(3)}, np.ones((5, 3)), np.array([0, 2, 1, 0, 2]))).example()
        >>> [np.shape(a) for a in (drawn[0]["w"], drawn[1], drawn[2])], set(drawn[2]) <= {0, 1, 2}
        ([(3,), (5, 3), (5,)], True)
    """
    leaves, treedef = jax.tree_util.tree_flatten(example)
    if not leaves:
        raise InvalidArgument(f"`example` holds no arrays, got {example!r}; pass a tuple (params, *args) of arrays.")
    floats = None if elements is None else _elements(elements)
    strategies = [_like_leaf(path, np.asarray(leaf), floats) for path, leaf in _paths(example)]
    return st.tuples(*strategies).map(lambda drawn: jax.tree_util.tree_unflatten(treedef, drawn))


def _paths(tree: Any) -> list[tuple[str, Any]]:
    with_path = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [(jax.tree_util.keystr(path), leaf) for path, leaf in with_path]


def _like_leaf(path: str, leaf: np.ndarray, floats: st.SearchStrategy[float] | None) -> st.SearchStrategy[np.ndarray]:
    """A strategy for arrays like `leaf` (at `path` in the example), by its dtype."""
    if leaf.dtype == np.bool_:
        return hnp.arrays(leaf.dtype, leaf.shape, elements=st.booleans())
    if np.issubdtype(leaf.dtype, np.integer):
        low, high = (int(leaf.min()), int(leaf.max())) if leaf.size else (0, 0)
        return hnp.arrays(leaf.dtype, leaf.shape, elements=st.integers(low, high))
    if not np.issubdtype(leaf.dtype, np.floating):
        raise InvalidArgument(
            f"`example{path}` has dtype {leaf.dtype}; every leaf must be a real or boolean array "
            f"(got {type(leaf).__name__})."
        )
    if floats is None:
        finite = leaf[np.isfinite(leaf)]
        bound = max(ELEMENT_BOUND, float(np.abs(finite).max()) if finite.size else 0.0)
        width: Literal[16, 32, 64] = {2: 16, 4: 32}.get(leaf.dtype.itemsize, 64)  # type: ignore[assignment]
        floats = st.floats(-bound, bound, allow_nan=False, allow_infinity=False, allow_subnormal=False, width=width)
    return hnp.arrays(leaf.dtype, leaf.shape, elements=floats)
