"""When a compile pays: the references' one cost model, ski rental, for one problem and for a batch.

A check's references come by NumPy (`_numpy_evaluation`: no compile, each check costs the same whatever
came before) or by XLA (`_compiled_evaluation`: a compile of 0.1-1.5 s, then each check nearly free).
Which is cheaper depends on how often a shape will be checked, which nobody knows in advance: the
ski-rental problem. NumPy runs at a key (one loss at one shape) until the work it has done there would
pass the cost of one compile; then the compiled path takes over there. That never costs much more than
twice the better choice made in hindsight. Work is counted, not timed, so that a run's output does not
depend on the machine's load.

One rule (`Rental`), two budgets, for the two compiles it weighs:

- `ONE_PROBLEM`: `check_gradients`'s references, counted in checks. A small problem's NumPy check costs
  its per-primitive overhead (2-5 ms whatever its size), its compile 0.13-0.3 s: `COMPILE_AFTER` checks.
- `BATCH`: `check_batch`'s stacked references, counted in loss evaluations times data values
  (`batch_work`): a stack's cost grows with its problems, and its compile costs 1-1.5 s:
  `COMPILE_AFTER_WORK` units.
"""

from __future__ import annotations

import collections
import contextlib
import os
from collections.abc import Hashable, Iterator

import numpy as np

from gradcheck import _caches, _tolerance
from gradcheck._references import _finite_diff, _trace
from gradcheck._references._evaluation import Path

#: Checks of one loss at one shape on the NumPy path before the compiled path takes over.
#: One XLA compile of the seed network's references costs 0.13-0.3 s on a 2-core machine,
#: one NumPy check 2-5 ms (benchmarks/cold.py measures both): a compile is worth about 64
#: NumPy checks, after which each compiled check saves 1-4 ms.
COMPILE_AFTER = 64

#: Work done by NumPy on one loss and shape of a batch before the batch compiles, in loss
#: evaluations times data values per problem (`batch_work`). NumPy does about 10-20 million such
#: units a second on a 2-core machine, and a compile of the batched references costs 1-1.5 s
#: there (benchmarks/regimes.py measures both): NumPy until it has done about a compile's worth,
#: about 4,000 seed-network problems (P = 13, 24 data values: 2,520 units each). A batch whose own
#: work exceeds this compiles at once (2,048 samples per problem: 400 problems).
COMPILE_AFTER_WORK = 4096 * (6 * 13 + 27) * 24

#: Random +-1 directions along which each problem of a batch takes its finite differences where it
#: does not take them along every coordinate. A problem that does not pass is re-checked along every
#: coordinate.
BATCH_DIRECTIONS = 2

_FORCED: list[Path] = []


@contextlib.contextmanager
def forced(path: Path) -> Iterator[None]:
    """Within the block, every check takes `path` (tests and benchmarks compare the two): "numpy" wherever
    NumPy can run (a loss with a primitive that has no NumPy rule still compiles), "xla" always."""
    _FORCED.append(path)
    try:
        yield
    finally:
        _FORCED.pop()


#: Environment variable that fixes the path for a whole run: "numpy", "xla" or "auto" (the default).
ENVIRONMENT = "GRADCHECK_REFERENCES"


def preferred_path() -> Path | None:
    """The path fixed by `forced` or by `GRADCHECK_REFERENCES`, or None for the cost model's choice."""
    return _FORCED[-1] if _FORCED else _from_environment()


def _from_environment() -> Path | None:
    value = os.environ.get(ENVIRONMENT, "auto").strip().lower()
    if value in ("numpy", "xla"):
        return value  # type: ignore[return-value]
    if value in ("auto", ""):
        return None
    raise ValueError(f"`{ENVIRONMENT}` must be numpy, xla or auto, got {value!r}; unset it for the default (auto).")


class Rental:
    """Ski rental at each key: NumPy while the work done there, this check's included, is within `budget`."""

    def __init__(self, budget: int):
        self.budget = budget
        #: Work done by NumPy, per key (least recently used forgotten, as `_trace.cached` forgets compiles).
        self.spent: collections.OrderedDict[Hashable, int] = _caches.registered(collections.OrderedDict())
        #: Keys where NumPy cannot run (a primitive with no NumPy rule, a rule that failed): compiled always.
        self.unsupported: set[Hashable] = _caches.registered(set())

    def path(self, key: Hashable, work: int) -> Path:
        """The path for a check of `work` units at `key`: the forced one, XLA where NumPy cannot run or has
        spent a compile's worth, NumPy otherwise."""
        want = preferred_path()
        if want == "xla" or key in self.unsupported:
            return "xla"
        if want == "numpy":
            return "numpy"
        return "numpy" if _trace.cached(self.spent, key, int) + work <= self.budget else "xla"

    def spend(self, key: Hashable, work: int) -> None:
        """Count `work` units done by NumPy at `key`."""
        self.spent[key] = _trace.cached(self.spent, key, int) + work


ONE_PROBLEM = Rental(COMPILE_AFTER)
BATCH = Rental(COMPILE_AFTER_WORK)


def batch_work(p: int, data: tuple[np.ndarray, ...], elementwise: bool, screen: bool = False) -> int:
    """One problem's references in loss evaluations times data values: the finite differences'
    2 LEVELS points per coordinate or direction, and autodiff with its Monte Carlo copies
    (about 3 evaluations each; none under the screen)."""
    size = max(1, sum(int(np.prod(a.shape[1:])) for a in data))
    along = p if elementwise else BATCH_DIRECTIONS
    return (2 * _finite_diff.LEVELS * along + 3 * (1 + (0 if screen else _tolerance.NOISE_SAMPLES))) * size
