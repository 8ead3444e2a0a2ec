"""The references of a batch of same-shape problems: stacked NumPy first, one compiled call once it pays.

`_stacked_references` runs `_references.StackedEvaluation` until a shape's work has repaid a compile
(`_cost.COMPILE_AFTER_WORK`), then `_batch_references` takes over: `_references.reference_function` vmapped over
a leading problem axis, compiled once per shape and bucket, sharded over every JAX device. `check_batch`
(`_batch`) judges what they return.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Hashable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gradcheck import _caches, _judge, _references, _tolerance
from gradcheck._references import _cost, _interpret, _trace

#: Compiled batched references, keyed by the traced loss (an XLA executable each).
_COMPILED: collections.OrderedDict[Hashable, Callable[..., tuple[jax.Array, ...]]] = _caches.registered(
    collections.OrderedDict()
)


#: Largest model `check_batch` takes: every problem's references are held at
#: once, with 8 Monte Carlo copies of its gradient.
MAX_PARAMETERS = 4096


def _stacked_references(
    loss_fn: Callable[..., Any],
    treedef: Any,
    shapes: tuple[tuple[int, ...], ...],
    leaves: list[np.ndarray],
    data: tuple[np.ndarray, ...],
    seed: int,
    unit_roundoff: float,
    cf: np.ndarray,
    precision: np.dtype,
    elementwise: bool,
    screen: bool = False,
) -> _references.References | None:
    """The batch's references by NumPy, refined; None where the compiled path should run instead.

    With `screen`, without the Monte Carlo runs (`_references.SCREEN`)."""
    bound = _trace.program(loss_fn, treedef, shapes, tuple(a[0] for a in data))
    key = (bound.program.key, tuple(sorted(bound.dims.items())), shapes, elementwise)
    work = len(leaves[0]) * _cost.batch_work(cf.shape[1], data, elementwise, screen)
    if _cost.BATCH.path(key, work) == "xla":
        return None
    directions = None if elementwise else _cost.BATCH_DIRECTIONS
    try:
        evaluation = _references.StackedEvaluation(
            bound, leaves, data, unit_roundoff, int(seed), cf, directions, screen=screen
        )
    except _interpret.Unsupported:
        _cost.BATCH.unsupported.add(key)
        return None
    _cost.BATCH.spend(key, work)
    return _judge.refined_until_agreed(evaluation, cf, precision)


#: Largest P times data values per problem for which a batch takes finite differences along every
#: coordinate: the seed network with up to 16 times its default batch (P = 13, 24 values). Above it
#: (2,048 samples per problem) 6 P loss evaluations per problem would cost several times the rest of
#: the check, and the batch takes them along random directions instead.
ELEMENTWISE_WORK = 13 * 24 * 16
#: Batches are padded up to the next power of two of at least this size, so that the
#: batch function compiles once per shape and bucket, not once per chunk size.
MIN_BUCKET = 8


#: Largest slice of a batch in one compiled call, in data values times Monte Carlo copies: the seed
#: network's default problems go 2,048 at a time, problems of 2,048 samples 64 at a time.
SLICE_VALUES = 64 * 6144 * 8


def _bucket(b: int, devices: int) -> int:
    """The padded batch size: a power of two, at least `MIN_BUCKET`, divisible by the device count."""
    size = max(MIN_BUCKET, 1 << (b - 1).bit_length())
    return size + (-size % devices)


class _CompiledBatch:
    """A compiled batch's references, and finer finite differences for the problems that need them.

    `_judge.refined_until_agreed` drives it, as it drives a single problem's evaluation.
    """

    def __init__(
        self,
        traced: Any,
        references: _references.References,
        theta: np.ndarray,
        data: tuple[np.ndarray, ...],
        seed: int,
        unit_roundoff: float,
        cf: np.ndarray,
    ):
        self.traced, self.references, self.theta, self.data = traced, references, theta, data
        self.seed, self.unit_roundoff, self.cf = seed, unit_roundoff, cf

    def finer(self, scale: float, doubt: np.ndarray) -> _references.References:
        """The references with finite differences retaken at `scale` for the problems (rows) in doubt."""
        rows = np.flatnonzero(doubt.any(axis=1))
        sub = tuple(a[rows] for a in (self.theta, *self.data, self.cf))
        out = _batch_references(
            self.traced,
            sub[0],
            sub[1:-1],
            self.seed,
            self.unit_roundoff,
            sub[-1],
            elementwise=True,
            scale=scale,
        )
        finer = _references.assemble(out)
        fields = [np.array(a, copy=True) for a in self.references[2:5]]
        for field, new in zip(fields, finer[2:5]):
            field[rows] = new
        return self.references._replace(finite_diff=fields[0], fd_error=fields[1], kink=fields[2])


def _batch_references(
    traced: Any,
    theta: np.ndarray,
    data: tuple[np.ndarray, ...],
    seed: int,
    unit_roundoff: float,
    cf: np.ndarray,
    *,
    elementwise: bool,
    scale: float = 1.0,
    screen: bool = False,
) -> tuple[np.ndarray, ...]:
    if theta.shape[1] > MAX_PARAMETERS:
        raise ValueError(
            f"`params` has {theta.shape[1]} entries per problem; batched checking is for small models "
            f"(at most {MAX_PARAMETERS}). Check large models one at a time with check_gradients."
        )
    directions = None if elementwise else _cost.BATCH_DIRECTIONS
    fn = _trace.cached(
        _COMPILED,
        (traced.key, directions, screen),
        lambda: jax.jit(
            jax.vmap(
                _references.reference_function(traced, directions=directions, gradient_noise=not screen),
                in_axes=(0, 0, None, None, 0, None),
            )
        ),
    )
    devices = jax.devices()
    b = theta.shape[0]
    # Problems with much data go in slices, each padded to one size: their intermediates (the Monte
    # Carlo copies above all) stay within memory a cache can serve, and one compile serves them all.
    values = _tolerance.NOISE_SAMPLES * max(1, sum(int(np.prod(a.shape[1:])) for a in data))
    size = _bucket(min(b, max(1, SLICE_VALUES // values)), len(devices))
    sharding = NamedSharding(Mesh(np.array(devices), ("problems",)), PartitionSpec("problems"))
    outs = []
    for start in range(0, b, size):
        rows = np.arange(start, start + size).clip(max=b - 1)  # the last slice padded with its last problem
        inputs = jax.tree_util.tree_map(lambda a, rows=rows: jnp.asarray(a[rows]), (theta, data, cf))
        theta_d, data_d, cf_d = jax.device_put(inputs, sharding)  # every device the same number of problems
        out = fn(theta_d, data_d, jnp.uint32(seed), unit_roundoff, cf_d, scale)
        outs.append([np.asarray(o)[: min(size, b - start)] for o in out])
    return tuple(np.concatenate(parts) for parts in zip(*outs))
